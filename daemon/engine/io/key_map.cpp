#include "engine/io/key_map.h"

#include <cstddef>

namespace kiln::engine {

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = s.find('.', start);
    parts.push_back(s.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

// parts[from..] joined with '.', with a leading '.' when not empty.
std::string tail(const std::vector<std::string>& parts, size_t from) {
  std::string out;
  for (size_t i = from; i < parts.size(); ++i) out += "." + parts[i];
  return out;
}

// A small non-negative decimal index ("0".."9999"); -1 otherwise.
int index_of(const std::vector<std::string>& parts, size_t i) {
  if (i >= parts.size() || parts[i].empty() || parts[i].size() > 4) return -1;
  int v = 0;
  for (char c : parts[i]) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

struct Rename {
  const char* from;
  const char* to;
};

// Inside a ResNet block. Each LDM name is a dotted pair; the diffusers name one token.
constexpr Rename kUnetResnet[] = {
    {"norm1", "in_layers.0"},      {"conv1", "in_layers.2"},  {"time_emb_proj", "emb_layers.1"},
    {"norm2", "out_layers.0"},     {"conv2", "out_layers.3"}, {"conv_shortcut", "skip_connection"},
};

// Maps the part of a path below a ResNet block; nullopt for an unknown child.
std::optional<std::string> resnet_diffusers_to_ldm(const std::vector<std::string>& p, size_t from) {
  if (from >= p.size()) return std::string();
  for (const auto& r : kUnetResnet)
    if (p[from] == r.from) return "." + std::string(r.to) + tail(p, from + 1);
  return std::nullopt;
}

std::optional<std::string> resnet_ldm_to_diffusers(const std::vector<std::string>& p, size_t from) {
  if (from >= p.size()) return std::string();
  for (const auto& r : kUnetResnet) {
    const std::vector<std::string> to = split(r.to);
    bool match = from + to.size() <= p.size();
    for (size_t k = 0; match && k < to.size(); ++k) match = p[from + k] == to[k];
    if (match) return "." + std::string(r.from) + tail(p, from + to.size());
  }
  return std::nullopt;
}

std::string block(const char* name, int k, int sub) {
  return std::string(name) + "." + std::to_string(k) + "." + std::to_string(sub);
}

}  // namespace

std::optional<std::string> unet_module_diffusers_to_ldm(const std::string& path, const UnetLayout& layout) {
  const auto p = split(path);
  const int L = layout.layers_per_block;
  const std::string& head = p[0];

  if (head == "conv_in") return "input_blocks.0.0" + tail(p, 1);
  if (head == "conv_norm_out") return "out.0" + tail(p, 1);
  if (head == "conv_out") return "out.2" + tail(p, 1);
  if (head == "time_embedding" && p.size() >= 2) {
    if (p[1] == "linear_1") return "time_embed.0" + tail(p, 2);
    if (p[1] == "linear_2") return "time_embed.2" + tail(p, 2);
    return std::nullopt;
  }
  // SDXL's embedding of the pooled text and size vector (sgm label_emb, diffusers add_embedding).
  if (head == "add_embedding" && p.size() >= 2) {
    if (p[1] == "linear_1") return "label_emb.0.0" + tail(p, 2);
    if (p[1] == "linear_2") return "label_emb.0.2" + tail(p, 2);
    return std::nullopt;
  }

  if (head == "mid_block" && p.size() >= 3) {
    const int j = index_of(p, 2);
    if (p[1] == "resnets" && (j == 0 || j == 1)) {
      auto rest = resnet_diffusers_to_ldm(p, 3);
      if (rest) return "middle_block." + std::to_string(2 * j) + *rest;
    } else if (p[1] == "attentions" && j == 0) {
      return "middle_block.1" + tail(p, 3);
    }
    return std::nullopt;
  }

  if ((head == "down_blocks" || head == "up_blocks") && p.size() >= 4) {
    const bool down = head == "down_blocks";
    const int i = index_of(p, 1), j = index_of(p, 3);
    if (i < 0 || j < 0) return std::nullopt;
    const std::string& kind = p[2];
    const int resnets = down ? L : L + 1;
    const int k = down ? 1 + i * (L + 1) + j : i * (L + 1) + j;
    const char* ldm = down ? "input_blocks" : "output_blocks";
    if (kind == "resnets" && j < resnets) {
      auto rest = resnet_diffusers_to_ldm(p, 4);
      if (rest) return block(ldm, k, 0) + *rest;
    } else if (kind == "attentions" && j < resnets) {
      return block(ldm, k, 1) + tail(p, 4);
    } else if (down && kind == "downsamplers" && j == 0) {
      const std::string at = block(ldm, (i + 1) * (L + 1), 0);
      if (p.size() == 4) return at;
      if (p[4] == "conv") return at + ".op" + tail(p, 5);
    } else if (!down && kind == "upsamplers" && j == 0) {
      const bool attn = static_cast<size_t>(i) < layout.up_block_has_attention.size() && layout.up_block_has_attention[i];
      const std::string at = block(ldm, i * (L + 1) + L, attn ? 2 : 1);
      if (p.size() == 4) return at;
      if (p[4] == "conv") return at + ".conv" + tail(p, 5);
    }
    return std::nullopt;
  }
  return std::nullopt;
}

std::optional<std::string> unet_module_ldm_to_diffusers(const std::string& path, const UnetLayout& layout) {
  const auto p = split(path);
  const int L = layout.layers_per_block;
  const std::string& head = p[0];

  if (head == "time_embed" || head == "out") {
    const int k = index_of(p, 1);
    const char* name = nullptr;
    if (head == "time_embed") name = k == 0 ? "time_embedding.linear_1" : k == 2 ? "time_embedding.linear_2" : nullptr;
    else name = k == 0 ? "conv_norm_out" : k == 2 ? "conv_out" : nullptr;
    if (!name) return std::nullopt;
    return name + tail(p, 2);
  }

  if (head == "label_emb") {
    if (index_of(p, 1) != 0) return std::nullopt;
    const int k = index_of(p, 2);
    if (k == 0) return "add_embedding.linear_1" + tail(p, 3);
    if (k == 2) return "add_embedding.linear_2" + tail(p, 3);
    return std::nullopt;
  }

  if (head == "middle_block") {
    const int k = index_of(p, 1);
    if (k == 1) return "mid_block.attentions.0" + tail(p, 2);
    if (k == 0 || k == 2) {
      auto rest = resnet_ldm_to_diffusers(p, 2);
      if (rest) return "mid_block.resnets." + std::to_string(k / 2) + *rest;
    }
    return std::nullopt;
  }

  if (head != "input_blocks" && head != "output_blocks") return std::nullopt;
  const bool down = head == "input_blocks";
  const int k = index_of(p, 1), sub = index_of(p, 2);
  if (k < 0 || sub < 0) return std::nullopt;

  if (down) {
    if (k == 0) return sub == 0 ? std::optional<std::string>("conv_in" + tail(p, 3)) : std::nullopt;
    if (k % (L + 1) == 0) {  // a downsampler: input_blocks.k.0.op
      if (sub != 0) return std::nullopt;
      const std::string at = "down_blocks." + std::to_string(k / (L + 1) - 1) + ".downsamplers.0";
      if (p.size() == 3) return at;
      if (p[3] == "op") return at + ".conv" + tail(p, 4);
      return std::nullopt;
    }
    const std::string blk = "down_blocks." + std::to_string((k - 1) / (L + 1));
    const std::string j = std::to_string((k - 1) % (L + 1));
    if (sub == 0) {
      auto rest = resnet_ldm_to_diffusers(p, 3);
      if (rest) return blk + ".resnets." + j + *rest;
    } else if (sub == 1) {
      return blk + ".attentions." + j + tail(p, 3);
    }
    return std::nullopt;
  }

  const int i = k / (L + 1), j = k % (L + 1);
  const std::string blk = "up_blocks." + std::to_string(i);
  // The upsampler is the child named "conv" of the last sub-module of every (L+1)-th block.
  if (j == L && sub >= 1 && (p.size() == 3 || p[3] == "conv")) {
    const bool attn = static_cast<size_t>(i) < layout.up_block_has_attention.size() && layout.up_block_has_attention[i];
    if (sub == (attn ? 2 : 1)) return blk + ".upsamplers.0" + tail(p, 3);
    if (p.size() > 3) return std::nullopt;  // ".conv" at the wrong position for this layout
  }
  if (sub == 0) {
    auto rest = resnet_ldm_to_diffusers(p, 3);
    if (rest) return blk + ".resnets." + std::to_string(j) + *rest;
  } else if (sub == 1) {
    return blk + ".attentions." + std::to_string(j) + tail(p, 3);
  }
  return std::nullopt;
}

std::optional<std::string> vae_diffusers_to_ldm(const std::string& name, int up_blocks) {
  const auto p = split(name);
  if (p[0] == "quant_conv" || p[0] == "post_quant_conv") return name;
  if ((p[0] != "encoder" && p[0] != "decoder") || p.size() < 2) return std::nullopt;
  const std::string& side = p[0];
  const std::string& part = p[1];

  if (part == "conv_in" || part == "conv_out") return name;
  if (part == "conv_norm_out") return side + ".norm_out" + tail(p, 2);

  auto resnet_child = [&](size_t from) -> std::optional<std::string> {
    if (from >= p.size()) return std::string();
    if (p[from] == "conv_shortcut") return ".nin_shortcut" + tail(p, from + 1);
    if (p[from] == "norm1" || p[from] == "norm2" || p[from] == "conv1" || p[from] == "conv2") return tail(p, from);
    return std::nullopt;
  };

  if (part == "mid_block" && p.size() >= 4) {
    const int j = index_of(p, 3);
    if (p[2] == "resnets" && (j == 0 || j == 1)) {
      auto rest = resnet_child(4);
      if (rest) return side + ".mid.block_" + std::to_string(j + 1) + *rest;
      return std::nullopt;
    }
    if (p[2] == "attentions" && j == 0) {
      const std::string at = side + ".mid.attn_1";
      if (p.size() == 4) return at;
      static const Rename kAttn[] = {{"group_norm", "norm"}, {"to_q", "q"},   {"to_k", "k"},
                                     {"to_v", "v"},          {"query", "q"},  {"key", "k"},
                                     {"value", "v"},         {"proj_attn", "proj_out"}};
      if (p[4] == "to_out" && index_of(p, 5) == 0) return at + ".proj_out" + tail(p, 6);
      for (const auto& r : kAttn)
        if (p[4] == r.from) return at + "." + r.to + tail(p, 5);
    }
    return std::nullopt;
  }

  const bool down = side == "encoder" && part == "down_blocks";
  const bool up = side == "decoder" && part == "up_blocks";
  if ((down || up) && p.size() >= 5) {
    const int i = index_of(p, 2), j = index_of(p, 4);
    if (i < 0 || j < 0 || (up && i >= up_blocks)) return std::nullopt;
    const std::string level = side + (down ? ".down." : ".up.") + std::to_string(down ? i : up_blocks - 1 - i);
    if (p[3] == "resnets") {
      auto rest = resnet_child(5);
      if (rest) return level + ".block." + std::to_string(j) + *rest;
    } else if (p[3] == (down ? "downsamplers" : "upsamplers") && j == 0) {
      const std::string at = level + (down ? ".downsample" : ".upsample");
      if (p.size() == 5) return at;
      if (p[5] == "conv") return at + tail(p, 5);
    }
  }
  return std::nullopt;
}

bool is_vae_attention_projection(const std::string& n) {
  const auto p = split(n);
  return p.size() == 5 && (p[0] == "encoder" || p[0] == "decoder") && p[1] == "mid" && p[2] == "attn_1" &&
         (p[3] == "q" || p[3] == "k" || p[3] == "v" || p[3] == "proj_out") && p[4] == "weight";
}

std::optional<std::string> text_encoder_normalize(const std::string& name) {
  const auto ends_with = [&](const char* s) {
    const std::string suffix(s);
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with("position_ids")) return std::nullopt;
  const std::string head = name.substr(0, name.find('.'));
  if (head == "text_model" || head == "text_projection") return name;
  if (head == "embeddings" || head == "encoder" || head == "final_layer_norm") return "text_model." + name;
  return std::nullopt;
}

std::optional<std::vector<OpenClipPiece>> open_clip_text_to_hf(const std::string& name) {
  const auto p = split(name);
  using Pieces = std::vector<OpenClipPiece>;
  if (name == "token_embedding.weight") return Pieces{{"text_model.embeddings.token_embedding.weight"}};
  if (name == "positional_embedding") return Pieces{{"text_model.embeddings.position_embedding.weight"}};
  if (name == "text_projection") return Pieces{{"text_projection.weight", -1, true}};
  if (name == "logit_scale" || name == "attn_mask") return Pieces{};  // not part of the text tower's weights
  if (p.size() == 2 && p[0] == "ln_final") return Pieces{{"text_model.final_layer_norm." + p[1]}};
  // transformer.resblocks.N.<part>
  const int n = index_of(p, 2);
  if (p.size() < 5 || p[0] != "transformer" || p[1] != "resblocks" || n < 0) return std::nullopt;
  const std::string layer = "text_model.encoder.layers." + std::to_string(n) + ".";
  const std::string& leaf = p.back();
  if (p.size() == 5 && p[3] == "attn" && (p[4] == "in_proj_weight" || p[4] == "in_proj_bias")) {
    const std::string kind = p[4] == "in_proj_weight" ? "weight" : "bias";
    return Pieces{{layer + "self_attn.q_proj." + kind, 0}, {layer + "self_attn.k_proj." + kind, 1},
                  {layer + "self_attn.v_proj." + kind, 2}};
  }
  // The LayerNorms are one level deep (ln_1.weight), the Linears two (mlp.c_fc.weight).
  if (p.size() == 5 && (p[3] == "ln_1" || p[3] == "ln_2"))
    return Pieces{{layer + (p[3] == "ln_1" ? "layer_norm1." : "layer_norm2.") + leaf}};
  if (p.size() != 6) return std::nullopt;
  static const Rename kParts[] = {{"attn.out_proj", "self_attn.out_proj"}, {"mlp.c_fc", "mlp.fc1"},
                                  {"mlp.c_proj", "mlp.fc2"}};
  const std::string middle = p[3] + "." + p[4];
  for (const auto& r : kParts)
    if (middle == r.from) return Pieces{{layer + r.to + "." + leaf}};
  return std::nullopt;
}

}  // namespace kiln::engine
