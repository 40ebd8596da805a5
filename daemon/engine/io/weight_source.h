#pragma once
// One model component's weights (UNet, VAE or text encoder) under the original single-file (LDM)
// names without the component prefix, whatever layout the checkpoint had on disk:
//   UNet          "input_blocks.1.1.proj_in.weight", "time_embed.0.weight", "out.2.weight"
//   VAE           "encoder.conv_in.weight", "quant_conv.weight", "decoder.mid.attn_1.q.weight"
//                 (attention q/k/v/proj_out always as 1x1 conv weights [C, C, 1, 1])
//   text encoder  "text_model.embeddings.token_embedding.weight", "text_model.final_layer_norm.weight"
// Nothing is read until get(): shapes come from the file headers, data from the memory mapping.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace kiln::engine {

class SafeTensorsFile;

class WeightSource {
 public:
  explicit WeightSource(std::string component) : component_(std::move(component)) {}

  // For tests and tools: a source over tensors already in memory.
  static WeightSource from_tensors(std::string component, const std::map<std::string, torch::Tensor>& tensors);

  // Registers `name` as the tensor `stored` of `file`, seen with `shape` (which may differ from the
  // stored shape only by a reshape with the same element count). Used by the checkpoint readers.
  void add(const std::string& name, std::shared_ptr<const SafeTensorsFile> file, const std::string& stored,
           std::vector<int64_t> shape);
  // Registers `name` as a part of `stored` seen another way: rows [part·n, (part+1)·n) of its first
  // dimension split into `parts` equal blocks (an OpenCLIP fused in_proj holding q, k and v), or
  // the whole of it (part -1), transposed when `transpose` (a 2-D OpenCLIP text_projection).
  // Nothing is copied here; get() returns the strided view, which the model's one copy converts.
  void add_part(const std::string& name, std::shared_ptr<const SafeTensorsFile> file, const std::string& stored,
                int64_t part, int64_t parts, bool transpose);

  const std::string& component() const { return component_; }  // "UNet", "VAE", "text encoder"
  const std::vector<std::string>& names() const { return names_; }  // sorted
  size_t size() const { return names_.size(); }
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  // Shape and dtype without reading data. Error(NotFound) naming the component for unknown names.
  const std::vector<int64_t>& shape(const std::string& name) const;
  torch::ScalarType dtype(const std::string& name) const;
  // A CPU tensor of the stored dtype: a zero-copy view of the mapped file where possible. Treat as
  // read-only; copy it into a parameter (converting dtype/device in that one copy).
  torch::Tensor get(const std::string& name) const;
  // Where a name comes from, for messages: "<file> : <stored name>".
  std::string origin(const std::string& name) const;

 private:
  struct Entry {
    std::shared_ptr<const SafeTensorsFile> file;  // null for in-memory tensors
    std::string stored;
    std::vector<int64_t> shape;
    torch::Tensor tensor;  // in-memory tensors only
    int64_t part = -1, parts = 1;  // add_part(): rows of the stored tensor
    bool transpose = false;
  };
  const Entry& entry(const std::string& name) const;

  std::string component_;
  std::map<std::string, Entry> entries_;
  std::vector<std::string> names_;
};

}  // namespace kiln::engine
