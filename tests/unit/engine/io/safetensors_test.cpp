#include "engine/io/safetensors.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "support/reference.h"
#include "unit/engine/io/test_files.h"

namespace kiln::engine {
namespace {
namespace fs = std::filesystem;
using kiln::test::safetensors_bytes;
using kiln::test::TempDir;

// Runs `f` and checks it throws Error of `kind` whose message mentions `needle`.
template <typename F>
void expect_error(F&& f, ErrorKind kind, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an Error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

std::vector<std::pair<std::string, torch::Tensor>> every_dtype() {
  torch::manual_seed(3);
  return {
      {"f16", torch::randn({3, 5}).to(torch::kFloat16)},
      {"bf16", torch::randn({7}).to(torch::kBFloat16)},
      {"f32", torch::randn({2, 3, 4})},
      {"f64", torch::randn({4, 1}, torch::kFloat64)},
      {"i64", torch::arange(-5, 6, torch::kInt64)},
      {"i32", torch::randint(-1000, 1000, {3, 3}, torch::kInt32)},
      {"i16", torch::randint(-1000, 1000, {5}, torch::kInt16)},
      {"i8", torch::randint(-100, 100, {9}, torch::kInt8)},
      {"u8", torch::randint(0, 256, {2, 2, 3}, torch::kUInt8)},
      {"bool", torch::rand({6}) > 0.5},
      {"scalar", torch::tensor(3.25f)},            // 0-d
      {"empty", torch::empty({0, 4})},             // empty
      {"empty_i64", torch::empty({3, 0}, torch::kInt64)},
      {"noncontig", torch::arange(12, torch::kFloat32).view({3, 4}).t()},
  };
}

TEST(SafeTensors, RoundTripsEveryDtypeWithMetadata) {
  TempDir dir;
  const auto tensors = every_dtype();
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"ss_note", "ünïcode \"quoted\""}};
  save_safetensors(dir / "all.safetensors", tensors, metadata);

  const std::string bytes = kiln::test::read_bytes(dir / "all.safetensors");
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ(header_len % 8, 0u) << "the header must be padded so the data is 8-byte aligned";

  auto file = SafeTensorsFile::open(dir / "all.safetensors");
  EXPECT_EQ(file->metadata(), metadata);
  ASSERT_EQ(file->tensors().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, expected] = tensors[i];
    EXPECT_EQ(file->tensors()[i].name, name) << "tensors() lists data order, which is the order given";
    const torch::Tensor got = file->tensor(name);
    EXPECT_EQ(got.scalar_type(), expected.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), expected.sizes()) << name;
    EXPECT_TRUE(torch::equal(got, expected)) << name;
  }
  EXPECT_EQ(file->info("scalar").shape, std::vector<int64_t>{});
  EXPECT_EQ(file->info("bf16").dtype, "BF16");
  EXPECT_TRUE(file->contains("u8"));
  EXPECT_FALSE(file->contains("nope"));
  expect_error([&] { file->info("nope"); }, ErrorKind::NotFound, "nope");
}

TEST(SafeTensors, TensorsAreZeroCopyViewsThatKeepTheMappingAlive) {
  TempDir dir;
  save_safetensors(dir / "z.safetensors", {{"a", torch::arange(16, torch::kFloat32)}, {"b", torch::ones({4, 4}, torch::kFloat16)}});
  torch::Tensor a, b;
  {
    auto file = SafeTensorsFile::open(dir / "z.safetensors");
    a = file->tensor("a");
    b = file->tensor("b");
    const auto* lo = file->data();
    const auto* hi = lo + file->data_size();
    for (const auto& t : {a, b}) {
      const auto* p = static_cast<const uint8_t*>(t.data_ptr());
      EXPECT_TRUE(p >= lo && p + t.nbytes() <= hi) << "tensor data must point into the mapping";
    }
  }
  // The file object is gone; the views must still read the mapped bytes.
  fs::remove(dir / "z.safetensors");
  EXPECT_TRUE(torch::equal(a, torch::arange(16, torch::kFloat32)));
  EXPECT_TRUE(torch::equal(b, torch::ones({4, 4}, torch::kFloat16)));
}

TEST(SafeTensors, MisalignedDataIsCopied) {
  TempDir dir;
  // A 3-byte-longer header than needed puts the F32 data at an odd address.
  const std::string header = R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}   )";
  ASSERT_NE((8 + header.size()) % 4, 0u);
  const float values[3] = {1.5f, -2.0f, 1e-3f};
  kiln::test::write_bytes(dir / "odd.safetensors", safetensors_bytes(header, std::string(reinterpret_cast<const char*>(values), 12)));
  auto file = SafeTensorsFile::open(dir / "odd.safetensors");
  const torch::Tensor x = file->tensor("x");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x.data_ptr()) % 4, 0u);
  EXPECT_TRUE(torch::equal(x, torch::tensor({1.5f, -2.0f, 1e-3f})));
}

TEST(SafeTensors, FromBytesMatchesOpen) {
  TempDir dir;
  save_safetensors(dir / "m.safetensors", {{"w", torch::randn({3, 2})}}, {{"k", "v"}});
  auto a = SafeTensorsFile::open(dir / "m.safetensors");
  auto b = SafeTensorsFile::from_bytes(kiln::test::read_bytes(dir / "m.safetensors"), "in-memory.safetensors");
  EXPECT_EQ(b->metadata(), a->metadata());
  EXPECT_TRUE(torch::equal(a->tensor("w"), b->tensor("w")));
}

struct BadHeader {
  const char* label;
  std::string header;
  size_t data_bytes;
  std::string needle;  // part of the expected message besides the file name
};

TEST(SafeTensors, MalformedHeadersAreBadFormatNamingTheFile) {
  const std::string f32x2 = R"("dtype":"F32","shape":[2])";
  const std::vector<BadHeader> cases = {
      {"not json", "{\"a\": [1, 2", 0, "not valid JSON"},
      {"json array", "[1,2,3,4]", 0, "not an object"},
      {"entry not object", R"({"a": 5})", 0, "not an object"},
      {"unknown dtype", R"({"a":{"dtype":"X17","shape":[1],"data_offsets":[0,1]}})", 1, "unknown dtype"},
      {"dtype missing", R"({"a":{"shape":[1],"data_offsets":[0,1]}})", 1, "dtype"},
      {"dtype not string", R"({"a":{"dtype":4,"shape":[1],"data_offsets":[0,1]}})", 1, "dtype"},
      {"shape missing", R"({"a":{"dtype":"U8","data_offsets":[0,1]}})", 1, "shape"},
      {"negative dim", R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", 1, "non-negative"},
      {"fractional dim", R"({"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}})", 1, "non-negative"},
      {"string dim", R"({"a":{"dtype":"U8","shape":["1"],"data_offsets":[0,1]}})", 1, "non-negative"},
      {"overflowing shape", R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0, "overflow"},
      {"overflow by dtype size", R"({"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}})", 0, "overflow"},
      {"huge dim", R"({"a":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,1]}})", 1, "non-negative"},
      {"offsets missing", "{\"a\":{" + f32x2 + "}}", 8, "data_offsets"},
      {"offsets one value", "{\"a\":{" + f32x2 + ",\"data_offsets\":[0]}}", 8, "data_offsets"},
      {"offsets negative", "{\"a\":{" + f32x2 + ",\"data_offsets\":[-8,0]}}", 8, "data_offsets"},
      {"begin after end", "{\"a\":{" + f32x2 + ",\"data_offsets\":[8,0]}}", 8, "begin after end"},
      {"end beyond data", "{\"a\":{" + f32x2 + ",\"data_offsets\":[8,16]}}", 8, "truncated"},
      {"size mismatch", "{\"a\":{" + f32x2 + ",\"data_offsets\":[0,4]}}", 8, "need 8"},
      {"overlap", "{\"a\":{" + f32x2 + ",\"data_offsets\":[0,8]},\"b\":{" + f32x2 + ",\"data_offsets\":[4,12]}}", 12, "overlap"},
      {"nested overlap", "{\"a\":{\"dtype\":\"U8\",\"shape\":[12],\"data_offsets\":[0,12]},\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]}}", 12, "overlap"},
      {"metadata not object", R"({"__metadata__":"x"})", 0, "__metadata__"},
      {"metadata value not string", R"({"__metadata__":{"epochs":3}})", 0, "epochs"},
      {"duplicate name", "{\"a\":{" + f32x2 + ",\"data_offsets\":[0,8]},\"a\":{" + f32x2 + ",\"data_offsets\":[8,16]}}", 16, "twice"},
  };
  TempDir dir;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    const fs::path path = dir / "broken-model.safetensors";
    kiln::test::write_bytes(path, safetensors_bytes(c.header, std::string(c.data_bytes, '\x01')));
    try {
      SafeTensorsFile::open(path);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::BadFormat) << e.what();
      EXPECT_NE(std::string(e.what()).find("broken-model.safetensors"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.needle), std::string::npos) << e.what();
    }
  }
}

TEST(SafeTensors, HeaderLengthFieldIsChecked) {
  TempDir dir;
  const fs::path path = dir / "len.safetensors";
  auto with_length = [&](uint64_t n, const std::string& rest) {
    std::string bytes(8, '\0');
    std::memcpy(bytes.data(), &n, 8);
    kiln::test::write_bytes(path, bytes + rest);
  };
  with_length(1, "{}");
  expect_error([&] { SafeTensorsFile::open(path); }, ErrorKind::BadFormat, "len.safetensors");
  with_length(101ull * 1024 * 1024, std::string(64, ' '));
  expect_error([&] { SafeTensorsFile::open(path); }, ErrorKind::BadFormat, "header length");
  with_length(64, "{}");  // longer than the file
  expect_error([&] { SafeTensorsFile::open(path); }, ErrorKind::BadFormat, "header length");
  with_length(~0ull, "{}");
  expect_error([&] { SafeTensorsFile::open(path); }, ErrorKind::BadFormat, "header length");
  kiln::test::write_bytes(path, "abc");
  expect_error([&] { SafeTensorsFile::open(path); }, ErrorKind::BadFormat, "too short");
  kiln::test::write_bytes(path, "");
  expect_error([&] { SafeTensorsFile::open(path); }, ErrorKind::BadFormat, "too short");
  with_length(2, "{}");  // the smallest valid file
  EXPECT_TRUE(SafeTensorsFile::open(path)->tensors().empty());
}

TEST(SafeTensors, RecognisedButUnloadableDtypeIsUnsupported) {
  TempDir dir;
  kiln::test::write_bytes(dir / "fp8.safetensors",
                          safetensors_bytes(R"({"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", "ab"));
  expect_error([&] { SafeTensorsFile::open(dir / "fp8.safetensors"); }, ErrorKind::Unsupported, "F8_E4M3");
}

TEST(SafeTensors, TruncatedFileIsBadFormat) {
  TempDir dir;
  save_safetensors(dir / "full.safetensors", {{"w", torch::randn({64, 64})}});
  const std::string bytes = kiln::test::read_bytes(dir / "full.safetensors");
  kiln::test::write_bytes(dir / "cut.safetensors", bytes.substr(0, bytes.size() - 100));
  expect_error([&] { SafeTensorsFile::open(dir / "cut.safetensors"); }, ErrorKind::BadFormat, "cut.safetensors");
  kiln::test::write_bytes(dir / "cut-header.safetensors", bytes.substr(0, 30));
  expect_error([&] { SafeTensorsFile::open(dir / "cut-header.safetensors"); }, ErrorKind::BadFormat, "cut-header.safetensors");
}

TEST(SafeTensors, OtherFileTypesAreBadFormat) {
  // A PNG: its first 8 bytes read as an absurd header length.
  expect_error([&] { SafeTensorsFile::open(kiln::test::sd15_tiny_dir() / "ref_init_image.png"); }, ErrorKind::BadFormat,
               "ref_init_image.png");
  // JSON text: the "length" is made of characters.
  expect_error([&] { SafeTensorsFile::open(kiln::test::sd15_tiny_dir() / "reference.json"); }, ErrorKind::BadFormat,
               "reference.json");
}

TEST(SafeTensors, MissingFileAndFolderAreNotFound) {
  TempDir dir;
  expect_error([&] { SafeTensorsFile::open(dir / "absent.safetensors"); }, ErrorKind::NotFound, "absent.safetensors");
  expect_error([&] { SafeTensorsFile::open(dir.path()); }, ErrorKind::NotFound, "folder");
}

TEST(SafeTensors, SaveReplacesAtomicallyAndLeavesNoTemporaries) {
  TempDir dir;
  save_safetensors(dir / "w.safetensors", {{"v", torch::zeros({2})}});
  save_safetensors(dir / "w.safetensors", {{"v", torch::ones({3})}});
  EXPECT_TRUE(torch::equal(SafeTensorsFile::open(dir / "w.safetensors")->tensor("v"), torch::ones({3})));
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1u);
}

TEST(SafeTensors, SaveRejectsBadInput) {
  TempDir dir;
  expect_error([&] { save_safetensors(dir / "d.safetensors", {{"a", torch::zeros({1})}, {"a", torch::zeros({1})}}); },
               ErrorKind::InvalidArgument, "used twice");
  expect_error([&] { save_safetensors(dir / "d.safetensors", {{"__metadata__", torch::zeros({1})}}); },
               ErrorKind::InvalidArgument, "reserved");
  expect_error([&] { save_safetensors(dir / "c.safetensors", {{"c", torch::zeros({1}, torch::kComplexFloat)}}); },
               ErrorKind::Unsupported, "c.safetensors");
  expect_error([&] { save_safetensors(dir / "no" / "such" / "x.safetensors", {{"a", torch::zeros({1})}}); },
               ErrorKind::NotFound, "x.safetensors");
  EXPECT_FALSE(fs::exists(dir / "d.safetensors"));
}

TEST(SafeTensors, ReadsTheFixtureCheckpoint) {
  auto file = SafeTensorsFile::open(kiln::test::sd15_tiny_dir() / "model.safetensors");
  EXPECT_EQ(file->tensors().size(), 999u);
  const auto& emb = file->info("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight");
  EXPECT_EQ(emb.dtype, "F16");
  EXPECT_EQ(emb.shape, (std::vector<int64_t>{49408, 128}));
  const torch::Tensor w = file->tensor("model.diffusion_model.input_blocks.0.0.weight");
  EXPECT_EQ(w.sizes(), (torch::IntArrayRef{32, 4, 3, 3}));
  EXPECT_EQ(w.scalar_type(), torch::kFloat16);
  EXPECT_TRUE(torch::isfinite(w.to(torch::kFloat32)).all().item<bool>());
  EXPECT_GT(w.to(torch::kFloat32).abs().sum().item<float>(), 0.0f);
  const torch::Tensor pos = file->tensor("cond_stage_model.transformer.text_model.embeddings.position_ids");
  EXPECT_TRUE(torch::equal(pos.to(torch::kInt64), torch::arange(77).unsqueeze(0)));
}

TEST(SafeTensors, ReadsTheFixtureReferenceTensors) {
  auto file = SafeTensorsFile::open(kiln::test::sd15_tiny_dir() / "reference.safetensors");
  const auto& ref = kiln::test::Reference::get();
  const auto& c = ref.case_by_id("tokenize/p00");
  const torch::Tensor ids = file->tensor(c.at("outputs").at("ids77").at("tensor").get<std::string>());
  ASSERT_EQ(ids.scalar_type(), torch::kInt64);
  const auto expected = c.at("expected").at("ids77").get<std::vector<int64_t>>();
  EXPECT_TRUE(torch::equal(ids, torch::tensor(expected)));
  bool has_u8 = false;
  for (const auto& t : file->tensors()) has_u8 = has_u8 || t.dtype == "U8";
  EXPECT_TRUE(has_u8);
}

}  // namespace
}  // namespace kiln::engine
