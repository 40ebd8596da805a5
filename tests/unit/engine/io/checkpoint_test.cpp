#include "engine/io/checkpoint.h"

#include <algorithm>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "support/reference.h"
#include "unit/engine/io/test_files.h"

namespace kiln::engine {
namespace {
namespace fs = std::filesystem;
using kiln::test::TempDir;

fs::path fixture(const std::string& rel) { return kiln::test::sd15_tiny_dir() / rel; }

template <typename F>
void expect_error(F&& f, ErrorKind kind, std::initializer_list<const char*> needles) {
  try {
    f();
    ADD_FAILURE() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const char* n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << "message: " << e.what();
  }
}

// A copy of the diffusers fixture that a test may change.
fs::path copy_diffusers(const TempDir& dir) {
  const fs::path to = dir / "model";
  fs::copy(fixture("diffusers"), to, fs::copy_options::recursive);
  return to;
}

// Tiny stand-ins for checkpoints of other families: only the names and shapes detection reads.
void save_fake(const fs::path& path, const std::vector<std::pair<std::string, std::vector<int64_t>>>& layout) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& [name, shape] : layout) tensors.emplace_back(name, torch::zeros(shape, torch::kFloat16));
  save_safetensors(path, tensors);
}

const std::vector<std::pair<std::string, std::vector<int64_t>>> kSd1Like = {
    {"model.diffusion_model.input_blocks.0.0.weight", {8, 4, 3, 3}},
    {"model.diffusion_model.out.2.weight", {4, 8, 3, 3}},
    {"first_stage_model.decoder.conv_in.weight", {8, 4, 3, 3}},
    {"first_stage_model.decoder.mid.attn_1.q.weight", {8, 8}},  // stored as Linear, as some files do
    {"cond_stage_model.transformer.embeddings.token_embedding.weight", {10, 8}},  // no "text_model." level
    {"cond_stage_model.transformer.embeddings.position_ids", {1, 77}},
    {"model_ema.decay", {}},
    {"alphas_cumprod", {1000}},
};

TEST(Checkpoint, OpensTheSingleFileFixture) {
  auto ckpt = Checkpoint::open(fixture("model.safetensors"));
  EXPECT_EQ(ckpt->info().family, ModelFamily::SD1);
  EXPECT_FALSE(ckpt->info().inpainting);
  EXPECT_EQ(ckpt->info().unet_in_channels, 4);
  EXPECT_EQ(ckpt->info().layout, "single-file");
  EXPECT_EQ(ckpt->info().describe(), "SD1.x (single-file)");

  const auto& unet = ckpt->unet();
  EXPECT_EQ(unet.component(), "UNet");
  EXPECT_EQ(unet.shape("input_blocks.1.1.proj_in.weight"), (std::vector<int64_t>{32, 32, 1, 1}));
  EXPECT_TRUE(unet.contains("time_embed.0.weight"));
  EXPECT_TRUE(unet.contains("out.2.weight"));
  EXPECT_EQ(unet.dtype("out.2.weight"), torch::kFloat16);
  EXPECT_EQ(ckpt->vae().shape("decoder.mid.attn_1.q.weight"), (std::vector<int64_t>{64, 64, 1, 1}));
  EXPECT_TRUE(ckpt->vae().contains("quant_conv.weight"));
  const auto& te = ckpt->text_encoder();
  EXPECT_TRUE(te.contains("text_model.embeddings.token_embedding.weight"));
  EXPECT_TRUE(te.contains("text_model.final_layer_norm.weight"));
  EXPECT_FALSE(te.contains("text_model.embeddings.position_ids"));
  EXPECT_EQ(unet.size() + ckpt->vae().size() + te.size(), 999u - 1u) << "everything but position_ids";

  const auto names = unet.names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  expect_error([&] { unet.get("no.such.weight"); }, ErrorKind::NotFound, {"UNet", "no.such.weight"});
}

TEST(Checkpoint, ModelSpecResolutionGivesTheNativeSize) {
  EXPECT_EQ(Checkpoint::inspect(fixture("model.safetensors")).native_size, 0) << "no ModelSpec: the family's size";
  TempDir dir;
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& [name, shape] : kSd1Like) tensors.emplace_back(name, torch::zeros(shape, torch::kFloat16));
  save_safetensors(dir / "mini.safetensors", tensors, {{"modelspec.resolution", "64x64"}});
  EXPECT_EQ(Checkpoint::inspect(dir / "mini.safetensors").native_size, 64);
  save_safetensors(dir / "odd.safetensors", tensors, {{"modelspec.resolution", "huge"}});
  EXPECT_EQ(Checkpoint::inspect(dir / "odd.safetensors").native_size, 0) << "unreadable: ignored, not an error";

  EXPECT_EQ(native_size_from_modelspec("1024x768"), 768);
  EXPECT_EQ(native_size_from_modelspec("512x512"), 512);
  for (const char* bad : {"", "x", "64x", "x64", "64*64", "-64x64", "4x4", "99999999999x64", "64x64x64"})
    EXPECT_EQ(native_size_from_modelspec(bad), 0) << bad;
}

TEST(Checkpoint, WeightsAreViewsOfTheMappedFile) {
  auto ckpt = Checkpoint::open(fixture("model.safetensors"));
  auto file = SafeTensorsFile::open(fixture("model.safetensors"));
  const torch::Tensor w = ckpt->unet().get("input_blocks.0.0.weight");
  EXPECT_TRUE(torch::equal(w, file->tensor("model.diffusion_model.input_blocks.0.0.weight")));
  // The same tensor read twice shares the mapping: no copy was made.
  EXPECT_EQ(w.data_ptr(), ckpt->unet().get("input_blocks.0.0.weight").data_ptr());
}

TEST(Checkpoint, OpensTheDiffusersFixtureAndItsModelIndex) {
  for (const auto& path : {fixture("diffusers"), fixture("diffusers/model_index.json")}) {
    auto ckpt = Checkpoint::open(path);
    EXPECT_EQ(ckpt->info().family, ModelFamily::SD1);
    EXPECT_EQ(ckpt->info().layout, "diffusers");
    EXPECT_EQ(ckpt->info().describe(), "SD1.x (diffusers)");
    EXPECT_EQ(ckpt->path(), fixture("diffusers"));
  }
}

TEST(Checkpoint, BothLayoutsGiveTheSameNamesShapesAndBits) {
  auto single = Checkpoint::open(fixture("model.safetensors"));
  auto diffusers = Checkpoint::open(fixture("diffusers"));
  const std::pair<const WeightSource*, const WeightSource*> parts[] = {
      {&single->unet(), &diffusers->unet()},
      {&single->vae(), &diffusers->vae()},
      {&single->text_encoder(), &diffusers->text_encoder()},
  };
  for (const auto& [a, b] : parts) {
    SCOPED_TRACE(a->component());
    EXPECT_EQ(a->names(), b->names());
    for (const auto& name : a->names()) {
      if (!b->contains(name)) continue;
      ASSERT_EQ(a->shape(name), b->shape(name)) << name;
      const torch::Tensor ta = a->get(name), tb = b->get(name);
      EXPECT_EQ(ta.sizes(), torch::IntArrayRef(a->shape(name))) << name;
      EXPECT_EQ(ta.scalar_type(), tb.scalar_type()) << name;
      EXPECT_TRUE(torch::equal(ta, tb)) << name << " differs between the layouts";
    }
  }
}

TEST(Checkpoint, AcceptsFp16VariantsAndShardedComponents) {
  TempDir dir;
  const fs::path model = copy_diffusers(dir);
  fs::rename(model / "vae/diffusion_pytorch_model.safetensors", model / "vae/diffusion_pytorch_model.fp16.safetensors");
  fs::rename(model / "text_encoder/model.safetensors", model / "text_encoder/model.fp16.safetensors");

  // Split the UNet into two shards with an index, as large diffusers models are stored.
  auto unet = SafeTensorsFile::open(model / "unet/diffusion_pytorch_model.safetensors");
  std::vector<std::pair<std::string, torch::Tensor>> first, second;
  nlohmann::json weight_map;
  for (size_t i = 0; i < unet->tensors().size(); ++i) {
    const auto& name = unet->tensors()[i].name;
    (i % 2 ? second : first).emplace_back(name, unet->tensor(name).clone());
    weight_map[name] = i % 2 ? "part-2.safetensors" : "part-1.safetensors";
  }
  unet.reset();
  fs::remove(model / "unet/diffusion_pytorch_model.safetensors");
  save_safetensors(model / "unet/part-1.safetensors", first);
  save_safetensors(model / "unet/part-2.safetensors", second);
  kiln::test::write_bytes(model / "unet/diffusion_pytorch_model.safetensors.index.json",
                          nlohmann::json{{"metadata", nlohmann::json::object()}, {"weight_map", weight_map}}.dump());

  auto ckpt = Checkpoint::open(model);
  auto reference = Checkpoint::open(fixture("model.safetensors"));
  EXPECT_EQ(ckpt->unet().names(), reference->unet().names());
  EXPECT_TRUE(torch::equal(ckpt->unet().get("output_blocks.8.2.conv.weight"), reference->unet().get("output_blocks.8.2.conv.weight")));
  EXPECT_TRUE(torch::equal(ckpt->vae().get("encoder.mid.attn_1.k.weight"), reference->vae().get("encoder.mid.attn_1.k.weight")));

  // An index that points outside the model folder is refused.
  weight_map[weight_map.begin().key()] = "../part-1.safetensors";
  kiln::test::write_bytes(model / "unet/diffusion_pytorch_model.safetensors.index.json",
                          nlohmann::json{{"weight_map", weight_map}}.dump());
  expect_error([&] { Checkpoint::open(model); }, ErrorKind::BadFormat, {"index.json", "invalid shard"});
  // And one that names a tensor its shard lacks.
  weight_map[weight_map.begin().key()] = "part-2.safetensors";
  kiln::test::write_bytes(model / "unet/diffusion_pytorch_model.safetensors.index.json",
                          nlohmann::json{{"weight_map", weight_map}}.dump());
  expect_error([&] { Checkpoint::open(model); }, ErrorKind::BadFormat, {"part-2.safetensors", "incomplete"});
}

TEST(Checkpoint, SingleFileNamesAreNormalised) {
  TempDir dir;
  save_fake(dir / "old.safetensors", kSd1Like);
  auto ckpt = Checkpoint::open(dir / "old.safetensors");
  EXPECT_EQ(ckpt->text_encoder().names(), std::vector<std::string>{"text_model.embeddings.token_embedding.weight"});
  EXPECT_EQ(ckpt->vae().shape("decoder.mid.attn_1.q.weight"), (std::vector<int64_t>{8, 8, 1, 1}));
  EXPECT_EQ(ckpt->vae().get("decoder.mid.attn_1.q.weight").sizes(), (torch::IntArrayRef{8, 8, 1, 1}));
  EXPECT_EQ(ckpt->unet().size(), 2u) << "EMA and scheduler buffers are not UNet weights";
}

TEST(Checkpoint, OtherFamiliesAreUnsupportedAndNamed) {
  TempDir dir;
  auto with = [&](std::vector<std::pair<std::string, std::vector<int64_t>>> extra, const char* drop = nullptr) {
    auto layout = kSd1Like;
    if (drop)
      layout.erase(std::remove_if(layout.begin(), layout.end(), [&](const auto& e) { return e.first.rfind(drop, 0) == 0; }),
                   layout.end());
    layout.insert(layout.end(), extra.begin(), extra.end());
    return layout;
  };
  save_fake(dir / "sd2.safetensors",
            with({{"cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight", {24, 8}}}, "cond_stage_model."));
  expect_error([&] { Checkpoint::open(dir / "sd2.safetensors"); }, ErrorKind::Unsupported, {"sd2.safetensors", "SD2.x", "SD1.x"});
  EXPECT_EQ(Checkpoint::inspect(dir / "sd2.safetensors").family, ModelFamily::SD2);

  // SDXL opens (its fixture tests are in checkpoint_sdxl_test.cpp); without its second text
  // encoder it is incomplete, and the message says where that encoder should be.
  save_fake(dir / "sdxl.safetensors",
            with({{"conditioner.embedders.0.transformer.text_model.final_layer_norm.weight", {8}},
                  {"conditioner.embedders.1.model.ln_final.weight", {8}},
                  {"model.diffusion_model.label_emb.0.0.weight", {8, 16}}},
                 "cond_stage_model."));
  EXPECT_EQ(Checkpoint::open(dir / "sdxl.safetensors")->text_encoders().size(), 2u);
  EXPECT_EQ(Checkpoint::inspect(dir / "sdxl.safetensors").family, ModelFamily::SDXL);
  save_fake(dir / "sdxl-one-encoder.safetensors",
            with({{"conditioner.embedders.0.transformer.text_model.final_layer_norm.weight", {8}},
                  {"model.diffusion_model.label_emb.0.0.weight", {8, 16}}},
                 "cond_stage_model."));
  expect_error([&] { Checkpoint::open(dir / "sdxl-one-encoder.safetensors"); }, ErrorKind::NotFound,
               {"sdxl-one-encoder.safetensors", "text encoder 2", "conditioner.embedders.1.model.*", "SDXL"});

  auto inpaint = kSd1Like;
  inpaint[0].second = {8, 9, 3, 3};
  save_fake(dir / "inpaint.safetensors", inpaint);
  // Inpainting checkpoints open (they run through the same loader; sampling adds their conditioning).
  EXPECT_TRUE(Checkpoint::open(dir / "inpaint.safetensors")->info().inpainting);
  const ModelInfo info = Checkpoint::inspect(dir / "inpaint.safetensors");
  EXPECT_EQ(info.family, ModelFamily::SD1);
  EXPECT_TRUE(info.inpainting);
  EXPECT_EQ(info.describe(), "SD1.x inpainting (single-file)");

  auto pix2pix = kSd1Like;
  pix2pix[0].second = {8, 8, 3, 3};
  save_fake(dir / "ip2p.safetensors", pix2pix);
  expect_error([&] { Checkpoint::open(dir / "ip2p.safetensors"); }, ErrorKind::Unsupported,
               {"8 input channels", "inpainting (9-channel)"});

  save_fake(dir / "flux.safetensors", {{"model.diffusion_model.double_blocks.0.img_attn.qkv.weight", {24, 8}}});
  expect_error([&] { Checkpoint::open(dir / "flux.safetensors"); }, ErrorKind::Unsupported, {"flux.safetensors", "does not recognise"});

  // diffusers: a second text encoder makes it SDXL (this one's folder is empty).
  const fs::path xl = copy_diffusers(dir);
  fs::create_directories(xl / "text_encoder_2");
  EXPECT_EQ(Checkpoint::inspect(xl).family, ModelFamily::SDXL);
  expect_error([&] { Checkpoint::open(xl); }, ErrorKind::NotFound, {"text_encoder_2/", "second text encoder"});
}

TEST(Checkpoint, FilesThatAreNotCheckpointsSaySo) {
  expect_error([&] { Checkpoint::open(fixture("lora_rank4.safetensors")); }, ErrorKind::BadFormat,
               {"lora_rank4.safetensors", "not a Stable Diffusion checkpoint", "LoRA"});
  TempDir dir;
  save_fake(dir / "vae.safetensors", {{"encoder.down.0.block.0.conv1.weight", {8, 8, 3, 3}}, {"decoder.up.0.block.0.conv1.weight", {8, 8, 3, 3}}});
  expect_error([&] { Checkpoint::open(dir / "vae.safetensors"); }, ErrorKind::BadFormat, {"vae.safetensors", "VAE on its own"});
  save_fake(dir / "unet.safetensors", {{"down_blocks.0.resnets.0.conv1.weight", {8, 8, 3, 3}}});
  expect_error([&] { Checkpoint::open(dir / "unet.safetensors"); }, ErrorKind::BadFormat, {"unet.safetensors", "model_index.json"});
  save_fake(dir / "embedding.safetensors", {{"emb_params", {2, 768}}});
  expect_error([&] { Checkpoint::open(dir / "embedding.safetensors"); }, ErrorKind::BadFormat, {"embedding"});

  std::string noise(4096, '\0');
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<char>((i * 2654435761u) >> 13);
  kiln::test::write_bytes(dir / "random.safetensors", noise);
  expect_error([&] { Checkpoint::open(dir / "random.safetensors"); }, ErrorKind::BadFormat, {"random.safetensors"});

  const std::string full = kiln::test::read_bytes(fixture("model.safetensors"));
  kiln::test::write_bytes(dir / "truncated.safetensors", full.substr(0, full.size() / 2));
  expect_error([&] { Checkpoint::open(dir / "truncated.safetensors"); }, ErrorKind::BadFormat, {"truncated.safetensors", "truncated"});
}

TEST(Checkpoint, MissingPiecesAreNotFound) {
  TempDir dir;
  expect_error([&] { Checkpoint::open(dir / "nowhere.safetensors"); }, ErrorKind::NotFound, {"nowhere.safetensors"});
  expect_error([&] { Checkpoint::open(dir.path()); }, ErrorKind::NotFound, {"model_index.json"});

  auto no_vae = kSd1Like;
  no_vae.erase(std::remove_if(no_vae.begin(), no_vae.end(), [](const auto& e) { return e.first.rfind("first_stage_model.", 0) == 0; }),
               no_vae.end());
  save_fake(dir / "novae.safetensors", no_vae);
  expect_error([&] { Checkpoint::open(dir / "novae.safetensors"); }, ErrorKind::NotFound, {"novae.safetensors", "no VAE"});

  const fs::path model = copy_diffusers(dir);
  fs::remove_all(model / "vae");
  expect_error([&] { Checkpoint::open(model); }, ErrorKind::NotFound, {"vae/"});
  fs::create_directories(model / "vae");
  expect_error([&] { Checkpoint::open(model); }, ErrorKind::NotFound, {"vae/", "VAE"});
}

TEST(Checkpoint, PicklesAreRefused) {
  TempDir dir;
  for (const char* name : {"model.ckpt", "model.pt", "model.PTH", "text_encoder.bin"}) {
    kiln::test::write_bytes(dir / name, "PK\x03\x04 not really a zip");
    expect_error([&] { Checkpoint::open(dir / name); }, ErrorKind::Unsupported, {name, "pickle", ".safetensors"});
  }
  // A pickle renamed to .safetensors is recognised by its first bytes.
  kiln::test::write_bytes(dir / "renamed.safetensors", std::string("\x80\x02}q\x00(X\x05\x00\x00\x00state", 16));
  expect_error([&] { Checkpoint::open(dir / "renamed.safetensors"); }, ErrorKind::Unsupported, {"renamed.safetensors", "pickle"});

  const fs::path model = copy_diffusers(dir);
  fs::remove(model / "vae/diffusion_pytorch_model.safetensors");
  kiln::test::write_bytes(model / "vae/diffusion_pytorch_model.bin", "PK\x03\x04");
  expect_error([&] { Checkpoint::open(model); }, ErrorKind::Unsupported, {"diffusion_pytorch_model.bin", "pickle"});
}

}  // namespace
}  // namespace kiln::engine
