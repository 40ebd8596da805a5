#pragma once
// safetensors: https://github.com/huggingface/safetensors — an 8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then raw data.
// Files are memory-mapped; tensors are views of the mapping where the bytes allow it.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace kiln::engine {

struct TensorInfo {
  std::string name;
  std::string dtype;             // "F16", "BF16", "F32", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;   // byte offsets relative to the end of the header
};

// The LibTorch dtype of a validated entry.
torch::ScalarType scalar_type(const TensorInfo& info);

class SafeTensorsFile {
 public:
  // Maps and validates the file. Throws Error(NotFound) or Error(BadFormat) naming the file and
  // the problem (header size, JSON, dtype, shape × dtype ≠ byte length, offsets out of range or
  // overlapping, ...). Error(Unsupported) for valid dtypes LibTorch cannot hold (U16/U32/U64, F8).
  // Never crashes on malformed input.
  static std::shared_ptr<const SafeTensorsFile> open(const std::filesystem::path& path);

  // The same validation over bytes already in memory (fuzzing, files received over IPC).
  // `display_name` stands in for the path in error messages.
  static std::shared_ptr<const SafeTensorsFile> from_bytes(std::string bytes, const std::string& display_name);

  const std::filesystem::path& path() const;
  const std::map<std::string, std::string>& metadata() const;
  const std::vector<TensorInfo>& tensors() const;  // in data order (by begin offset)
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws Error(NotFound)

  // A CPU tensor of the stored dtype. Zero-copy (it keeps the mapping alive) when the data is
  // suitably aligned, else one copy. Read-only in spirit: do not write into it.
  torch::Tensor tensor(const std::string& name) const;

  // The raw data section (everything after the header), e.g. for the kohya/A1111 model hashes
  // that are computed over it. Valid while this object lives.
  const uint8_t* data() const;
  uint64_t data_size() const;

  ~SafeTensorsFile();
  SafeTensorsFile(const SafeTensorsFile&) = delete;
  SafeTensorsFile& operator=(const SafeTensorsFile&) = delete;

 private:
  struct Impl;
  explicit SafeTensorsFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Writes tensors (any device; copied to CPU, made contiguous) in the given order with metadata.
// Atomic: a temporary file in the same directory, fsync, rename. Throws Error on failure.
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace kiln::engine
