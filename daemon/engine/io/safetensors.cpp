#include "engine/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <ostream>
#include <system_error>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "engine/error.h"
#include "engine/io/atomic_file.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; Kiln maps it as-is");

namespace kiln::engine {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;  // the limit the reference implementation uses

struct DtypeEntry {
  const char* name;
  torch::ScalarType type;
  size_t size;
};
constexpr DtypeEntry kDtypes[] = {
    {"F16", torch::kFloat16, 2}, {"BF16", torch::kBFloat16, 2}, {"F32", torch::kFloat32, 4},
    {"F64", torch::kFloat64, 8}, {"I64", torch::kInt64, 8},     {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},   {"I8", torch::kInt8, 1},       {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
};
// Valid safetensors dtypes that LibTorch (1.13) cannot hold: a clear "unsupported", not "corrupt".
constexpr const char* kKnownButUnsupported[] = {"U16", "U32", "U64", "F8_E4M3", "F8_E5M2"};

const DtypeEntry* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeEntry* find_dtype(torch::ScalarType type) {
  for (const auto& d : kDtypes)
    if (type == d.type) return &d;
  return nullptr;
}

std::string in_quotes(const std::string& name) { return "'" + name + "'"; }

[[noreturn]] void bad_format(const std::string& file, const std::string& problem) {
  throw Error(ErrorKind::BadFormat,
              in_quotes(file) + " is not a valid safetensors file: " + problem +
                  ". The file is damaged or incomplete, or is not a safetensors file; download or export it again.");
}

// The bytes behind a SafeTensorsFile: a read-only file mapping or an owned buffer.
class Storage {
 public:
  virtual ~Storage() = default;
  const uint8_t* bytes = nullptr;
  uint64_t size = 0;
};

class MappedStorage final : public Storage {
 public:
  MappedStorage(void* base, uint64_t length) : base_(base), length_(length) {
    bytes = static_cast<const uint8_t*>(base);
    size = length;
  }
  ~MappedStorage() override { ::munmap(base_, length_); }

 private:
  void* base_;
  uint64_t length_;
};

class BufferStorage final : public Storage {
 public:
  explicit BufferStorage(std::string buffer) : buffer_(std::move(buffer)) {
    bytes = reinterpret_cast<const uint8_t*>(buffer_.data());
    size = buffer_.size();
  }

 private:
  std::string buffer_;
};

std::shared_ptr<Storage> map_file(const fs::path& path) {
  const std::string name = path.string();
  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw Error(ErrorKind::NotFound, in_quotes(name) + " is a folder, not a safetensors file; choose the .safetensors file itself.");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT)
      throw Error(ErrorKind::NotFound, in_quotes(name) + " does not exist; check the path.");
    throw Error(ErrorKind::NotFound, "Cannot open " + in_quotes(name) + ": " + std::strerror(err) + ". Check that the file is readable.");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(ErrorKind::NotFound, "Cannot read " + in_quotes(name) + ": " + std::strerror(err) + ".");
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    bad_format(name, "it is only " + std::to_string(size) + " bytes long, too short for a header");
  }
  // Read-only and private: a stray write into a zero-copy tensor faults instead of changing the file.
  void* base = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping keeps the file open
  if (base == MAP_FAILED)
    throw Error(ErrorKind::Internal, "Cannot memory-map " + in_quotes(name) + ": " + std::strerror(err) +
                                         ". Check free memory and the file system the file is on.");
  return std::make_shared<MappedStorage>(base, size);
}

// Non-negative JSON integer that fits int64; nullopt otherwise (negative, fractional, too large).
std::optional<uint64_t> as_count(const nlohmann::json& v) {
  if (!v.is_number_unsigned()) return std::nullopt;
  const auto x = v.get<uint64_t>();
  if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return x;
}

TensorInfo parse_entry(const std::string& file, const std::string& name, const nlohmann::json& entry, uint64_t data_size) {
  const std::string where = "tensor " + in_quotes(name);
  if (!entry.is_object()) bad_format(file, where + " is described by a JSON " + entry.type_name() + ", not an object");
  TensorInfo info;
  info.name = name;

  const auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) bad_format(file, where + " has no \"dtype\" string");
  info.dtype = dtype_it->get<std::string>();
  const DtypeEntry* dtype = find_dtype(info.dtype);
  if (!dtype) {
    for (const char* known : kKnownButUnsupported)
      if (info.dtype == known)
        throw Error(ErrorKind::Unsupported, in_quotes(file) + ": " + where + " uses the number type " + info.dtype +
                                                ", which Kiln cannot load. Convert the file to F16, BF16 or F32.");
    bad_format(file, where + " has the unknown dtype \"" + info.dtype + "\"");
  }

  const auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) bad_format(file, where + " has no \"shape\" list");
  // The product of the non-zero dimensions must fit (LibTorch checks it too, even for empty tensors).
  uint64_t numel = 1;
  bool overflow = false, empty = false;
  for (const auto& dim : *shape_it) {
    const auto d = as_count(dim);
    if (!d) bad_format(file, where + " has a shape entry that is not a non-negative integer: " + dim.dump());
    info.shape.push_back(static_cast<int64_t>(*d));
    if (*d == 0) empty = true;
    else overflow = overflow || __builtin_mul_overflow(numel, *d, &numel);
  }
  uint64_t nbytes = 0;
  overflow = overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(dtype->size), &nbytes);
  if (overflow || nbytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    bad_format(file, where + " has a shape so large its size overflows");
  if (empty) nbytes = 0;

  const auto off_it = entry.find("data_offsets");
  if (off_it == entry.end() || !off_it->is_array() || off_it->size() != 2)
    bad_format(file, where + " has no \"data_offsets\" pair [begin, end]");
  const auto begin = as_count((*off_it)[0]);
  const auto end = as_count((*off_it)[1]);
  if (!begin || !end) bad_format(file, where + " has data_offsets that are not non-negative integers");
  if (*begin > *end) bad_format(file, where + " has data_offsets with begin after end");
  if (*end > data_size)
    bad_format(file, where + " ends at byte " + std::to_string(*end) + " of the data section, but the data section has only " +
                         std::to_string(data_size) + " bytes (the file is probably truncated)");
  if (*end - *begin != nbytes)
    bad_format(file, where + " occupies " + std::to_string(*end - *begin) + " bytes but its shape and dtype need " +
                         std::to_string(nbytes));
  info.begin = *begin;
  info.end = *end;
  return info;
}

}  // namespace

torch::ScalarType scalar_type(const TensorInfo& info) {
  const DtypeEntry* dtype = find_dtype(info.dtype);
  if (!dtype) throw Error(ErrorKind::Internal, "tensor '" + info.name + "' has the unknown dtype " + info.dtype);
  return dtype->type;
}

struct SafeTensorsFile::Impl {
  fs::path path;
  std::string display_name;
  std::shared_ptr<Storage> storage;
  const uint8_t* data = nullptr;  // start of the data section
  uint64_t data_size = 0;
  std::vector<TensorInfo> tensors;
  std::unordered_map<std::string, size_t> index;
  std::map<std::string, std::string> metadata;

  void parse();
};

void SafeTensorsFile::Impl::parse() {
  const std::string& file = display_name;
  const uint64_t size = storage->size;
  if (size < 8) bad_format(file, "it is only " + std::to_string(size) + " bytes long, too short for a header");
  uint64_t header_len = 0;
  std::memcpy(&header_len, storage->bytes, 8);
  if (header_len < 2 || header_len > kMaxHeaderBytes || header_len > size - 8)
    bad_format(file, "the header length field says " + std::to_string(header_len) + " bytes, but the file has " +
                         std::to_string(size - 8) + " bytes after it (a header is 2 bytes to 100 MB)");

  const auto* header_begin = reinterpret_cast<const char*>(storage->bytes + 8);
  // nlohmann keeps the last of duplicated keys silently; a duplicated tensor name is ambiguous, so find it.
  std::string duplicate;
  std::unordered_set<std::string> seen;
  const nlohmann::json::parser_callback_t callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 && duplicate.empty()) {
      auto key = parsed.get<std::string>();
      if (!seen.insert(key).second) duplicate = std::move(key);
    }
    return true;
  };
  const nlohmann::json header =
      nlohmann::json::parse(header_begin, header_begin + header_len, callback, /*allow_exceptions=*/false);
  if (header.is_discarded()) bad_format(file, "its header is not valid JSON");
  if (!header.is_object()) bad_format(file, std::string("its header is a JSON ") + header.type_name() + ", not an object");
  if (!duplicate.empty()) bad_format(file, "its header names " + in_quotes(duplicate) + " twice");

  data = storage->bytes + 8 + header_len;
  data_size = size - 8 - header_len;

  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) bad_format(file, "its __metadata__ is not a JSON object of strings");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) bad_format(file, "its __metadata__ entry " + in_quotes(mk) + " is not a string");
        metadata.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    tensors.push_back(parse_entry(file, key, value, data_size));
  }

  // File order = data order. Sorting also makes the overlap check one pass.
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered_to = 0;
  const TensorInfo* last = nullptr;
  for (const auto& t : tensors) {
    if (t.begin < covered_to)
      bad_format(file, "tensors " + in_quotes(last->name) + " and " + in_quotes(t.name) + " overlap in the data section");
    if (t.end > covered_to) {
      covered_to = t.end;
      last = &t;
    }
  }
  index.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) index.emplace(tensors[i].name, i);
}

SafeTensorsFile::SafeTensorsFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SafeTensorsFile::~SafeTensorsFile() = default;

std::shared_ptr<const SafeTensorsFile> SafeTensorsFile::open(const fs::path& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->display_name = path.string();
  impl->storage = map_file(path);
  impl->parse();
  return std::shared_ptr<const SafeTensorsFile>(new SafeTensorsFile(std::move(impl)));
}

std::shared_ptr<const SafeTensorsFile> SafeTensorsFile::from_bytes(std::string bytes, const std::string& display_name) {
  auto impl = std::make_unique<Impl>();
  impl->path = display_name;
  impl->display_name = display_name;
  impl->storage = std::make_shared<BufferStorage>(std::move(bytes));
  impl->parse();
  return std::shared_ptr<const SafeTensorsFile>(new SafeTensorsFile(std::move(impl)));
}

const fs::path& SafeTensorsFile::path() const { return impl_->path; }
const std::map<std::string, std::string>& SafeTensorsFile::metadata() const { return impl_->metadata; }
const std::vector<TensorInfo>& SafeTensorsFile::tensors() const { return impl_->tensors; }
bool SafeTensorsFile::contains(const std::string& name) const { return impl_->index.count(name) != 0; }
const uint8_t* SafeTensorsFile::data() const { return impl_->data; }
uint64_t SafeTensorsFile::data_size() const { return impl_->data_size; }

const TensorInfo& SafeTensorsFile::info(const std::string& name) const {
  const auto it = impl_->index.find(name);
  if (it == impl_->index.end())
    throw Error(ErrorKind::NotFound, in_quotes(impl_->display_name) + " has no tensor named " + in_quotes(name) + ".");
  return impl_->tensors[it->second];
}

torch::Tensor SafeTensorsFile::tensor(const std::string& name) const {
  const TensorInfo& t = info(name);
  const DtypeEntry* dtype = find_dtype(t.dtype);  // validated in parse()
  const auto options = torch::TensorOptions().dtype(dtype->type).device(torch::kCPU);
  const uint8_t* src = impl_->data + t.begin;
  const uint64_t nbytes = t.end - t.begin;
  if (nbytes == 0) return torch::empty(t.shape, options);
  if (reinterpret_cast<uintptr_t>(src) % dtype->size == 0) {
    // The deleter owns a reference to the storage, so the mapping outlives every view of it.
    auto keep = impl_->storage;
    return torch::from_blob(const_cast<uint8_t*>(src), t.shape, [keep](void*) mutable { keep.reset(); }, options);
  }
  // Misaligned (odd header length): one copy into aligned memory.
  torch::Tensor out = torch::empty(t.shape, options);
  std::memcpy(out.data_ptr(), src, nbytes);
  return out;
}

void save_safetensors(const fs::path& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const std::string file = path.string();
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::unordered_set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__" || !names.insert(name).second)
      throw Error(ErrorKind::InvalidArgument, "Cannot save " + in_quotes(file) + ": the tensor name " + in_quotes(name) +
                                                  " is reserved or used twice.");
    if (!tensor.defined())
      throw Error(ErrorKind::InvalidArgument, "Cannot save " + in_quotes(file) + ": tensor " + in_quotes(name) + " is empty (undefined).");
    const DtypeEntry* dtype = find_dtype(tensor.scalar_type());
    if (!dtype)
      throw Error(ErrorKind::Unsupported, "Cannot save " + in_quotes(file) + ": tensor " + in_quotes(name) + " has type " +
                                              std::string(c10::toString(tensor.scalar_type())) +
                                              ", which safetensors files from Kiln do not hold; convert it to float first.");
    const uint64_t nbytes = static_cast<uint64_t>(tensor.numel()) * dtype->size;
    header[name] = {{"dtype", dtype->name}, {"shape", tensor.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string json = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned: readers can map tensors in place.
  json.append((8 - json.size() % 8) % 8, ' ');
  const uint64_t header_len = json.size();

  try {
    write_file_atomically(path, [&](std::ostream& out) {
      out.write(reinterpret_cast<const char*>(&header_len), 8);
      out.write(json.data(), static_cast<std::streamsize>(json.size()));
      for (const auto& entry : tensors) {
        const torch::Tensor cpu = entry.second.to(torch::kCPU).contiguous();  // one tensor at a time bounds memory
        out.write(static_cast<const char*>(cpu.data_ptr()), static_cast<std::streamsize>(cpu.nbytes()));
      }
    });
  } catch (const std::system_error& e) {
    const ErrorKind kind = e.code() == std::errc::no_such_file_or_directory ? ErrorKind::NotFound : ErrorKind::Internal;
    throw Error(kind, "Could not write " + in_quotes(file) + ": " + e.what() +
                          ". Check that the folder exists, is writable and has free space.");
  }
}

}  // namespace kiln::engine
