#include "clip/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "common/error.h"
#include "test_util.h"

namespace st = starft::safetensors;
using starft::testing::fixture;
using starft::testing::TempDir;
using starft::testing::write_file;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A file image built by hand: 8-byte little-endian header length, the header, the data.
std::string raw_file(const std::string& header, const std::string& data, uint64_t length_field) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &length_field, 8);
  return s + header + data;
}
std::string raw_file(const std::string& header, const std::string& data) {
  return raw_file(header, data, header.size());
}

bool same_bytes(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  auto ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

// Random bits of every byte, so NaN payloads, negative zeros and denormals all round-trip.
torch::Tensor random_bits(torch::ScalarType type, at::IntArrayRef shape) {
  torch::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(type));
  if (type == torch::kBool) return torch::randint(0, 2, shape).to(torch::kBool);
  torch::Tensor bytes = torch::randint(0, 256, {t.numel() * t.element_size()}, torch::kUInt8);
  if (t.numel() > 0) std::memcpy(t.data_ptr(), bytes.data_ptr(), bytes.numel());
  return t;
}

// Expects `fn` to throw starft::Error whose message contains every one of `parts`.
template <typename Fn>
void expect_error(Fn fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown; expected one mentioning " << *parts.begin();
  } catch (const starft::Error& e) {
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << "message lacks '" << p << "': " << e.what();
  }
}

}  // namespace

TEST(Safetensors, RoundTripsEveryDtypeBitwise) {
  TempDir dir;
  const std::vector<torch::ScalarType> types = {torch::kFloat64, torch::kFloat32, torch::kFloat16, torch::kBFloat16,
                                                torch::kInt64,   torch::kInt32,   torch::kInt16,   torch::kInt8,
                                                torch::kUInt8,   torch::kBool};
  const std::vector<std::vector<int64_t>> shapes = {{}, {0}, {3, 0, 2}, {5}, {2, 3, 4}};
  st::TensorMap tensors;
  for (auto type : types)
    for (size_t s = 0; s < shapes.size(); ++s)
      tensors[std::string(c10::toString(type)) + "_" + std::to_string(s)] = random_bits(type, shapes[s]);
  const std::string path = dir / "all.safetensors";
  st::save(path, tensors);

  st::Contents back = st::load(path);
  EXPECT_TRUE(back.metadata.empty());
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(back.tensors.count(name)) << name;
    EXPECT_TRUE(same_bytes(back.tensors.at(name), t)) << name;
    EXPECT_TRUE(back.tensors.at(name).is_contiguous());
  }
  // parse() of the same bytes agrees with load().
  st::Contents parsed = st::parse(read_bytes(path), "in-memory");
  for (const auto& [name, t] : tensors) EXPECT_TRUE(same_bytes(parsed.tensors.at(name), t)) << name;
}

TEST(Safetensors, ZeroDimensionalTensorKeepsNoDimensions) {
  TempDir dir;
  st::save(dir / "s.safetensors", {{"scale", torch::tensor(4.5f).reshape({})}});
  auto t = st::load(dir / "s.safetensors").tensors.at("scale");
  EXPECT_EQ(t.dim(), 0);
  EXPECT_EQ(t.item<float>(), 4.5f);
}

TEST(Safetensors, MetadataRoundTrips) {
  TempDir dir;
  st::Metadata meta = {{"format", "pt"}, {"note", "ünïcode \"quoted\"\nline"}, {"empty", ""}};
  st::save(dir / "m.safetensors", {{"w", torch::ones({2})}}, meta);
  st::Contents back = st::load(dir / "m.safetensors");
  EXPECT_EQ(back.metadata, meta);
}

TEST(Safetensors, WritesTheReferenceLayout) {
  TempDir dir;
  // Non-contiguous and requiring grad: written as their values, row-major.
  torch::Tensor base = torch::arange(6, torch::kFloat32).reshape({2, 3});
  torch::Tensor transposed = base.t();
  torch::Tensor trainable = torch::ones({3}, torch::requires_grad());
  st::save(dir / "l.safetensors", {{"zeta", transposed}, {"alpha", trainable}}, {{"k", "v"}});
  const std::string bytes = read_bytes(dir / "l.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u) << "data area must start 8-byte aligned";
  const std::string header = bytes.substr(8, n);
  const std::string trimmed = header.substr(0, header.find_last_not_of(' ') + 1);
  EXPECT_EQ(header.substr(trimmed.size()), std::string(header.size() - trimmed.size(), ' '));
  EXPECT_EQ(trimmed, R"({"__metadata__":{"k":"v"},"alpha":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                     R"("zeta":{"dtype":"F32","shape":[3,2],"data_offsets":[12,36]}})");
  ASSERT_EQ(bytes.size(), 8 + n + 36);
  std::vector<float> zeta(6);
  std::memcpy(zeta.data(), bytes.data() + 8 + n + 12, 24);
  EXPECT_EQ(zeta, (std::vector<float>{0, 3, 1, 4, 2, 5}));
}

TEST(Safetensors, SaveReplacesAtomicallyAndLeavesNoTemporary) {
  TempDir dir;
  const std::string path = dir / "w.safetensors";
  st::save(path, {{"a", torch::ones({2})}});
  // A failing save (complex dtype) leaves the previous file intact and no temporary behind.
  expect_error(
      [&] {
        st::save(path, {{"a", torch::zeros({2})}, {"z", torch::zeros({2}, torch::kComplexFloat)}});
      },
      {path, "'z'", "F32"});
  EXPECT_TRUE(torch::equal(st::load(path).tensors.at("a"), torch::ones({2})));
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    ++entries;
    EXPECT_EQ(e.path().filename(), "w.safetensors");
  }
  EXPECT_EQ(entries, 1);
  expect_error(
      [&] {
        st::save(dir / "no/such/dir/x.safetensors", {{"a", torch::ones({1})}});
      },
      {"no/such/dir/x.safetensors"});
  expect_error([&] { st::save(path, {{"__metadata__", torch::ones({1})}}); }, {path, "__metadata__"});
}

TEST(Safetensors, LoadsTheOpenAiFixture) {
  st::Contents c = st::load(fixture("clip/tiny_clip_openai.safetensors"));
  const auto& w = c.tensors.at("visual.conv1.weight");
  EXPECT_EQ(w.scalar_type(), torch::kHalf);
  EXPECT_EQ(w.sizes(), (std::vector<int64_t>{128, 3, 8, 8}));
  EXPECT_TRUE(torch::isfinite(w.to(torch::kFloat32)).all().item<bool>());
  EXPECT_GT(w.to(torch::kFloat32).abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(c.tensors.at("token_embedding.weight").sizes(), (std::vector<int64_t>{49408, 128}));
  EXPECT_EQ(c.tensors.at("logit_scale").numel(), 1);
}

TEST(Safetensors, LoadsTheHuggingFaceFixtureWithPositionIds) {
  st::Contents c = st::load(fixture("clip/tiny_clip_hf.safetensors"));
  int found = 0;
  for (const auto& [name, t] : c.tensors) {
    if (name.find("position_ids") == std::string::npos) continue;
    ++found;
    EXPECT_EQ(t.scalar_type(), torch::kInt64) << name;
    EXPECT_TRUE(torch::equal(t.flatten(), torch::arange(t.numel(), torch::kInt64))) << name;
  }
  EXPECT_GE(found, 1);
  EXPECT_EQ(c.tensors.at("vision_model.pre_layrnorm.weight").scalar_type(), torch::kHalf);
}

TEST(Safetensors, MissingFileNamesThePath) {
  TempDir dir;
  expect_error([&] { st::load(dir / "absent.safetensors"); }, {"absent.safetensors", "cannot open"});
}

// Each malformed file is checked through load() (on disk) and parse() (in memory).
struct Malformed {
  const char* label;
  std::string bytes;
  std::vector<std::string> mentions;  // besides the file name
};

class MalformedFile : public ::testing::TestWithParam<Malformed> {};

TEST_P(MalformedFile, IsRejectedWithTheFileAndTensorNamed) {
  const Malformed& m = GetParam();
  TempDir dir;
  const std::string path = dir / (std::string(m.label) + ".safetensors");
  write_file(path, m.bytes);
  for (bool from_disk : {true, false}) {
    const std::string name = from_disk ? path : std::string("mem-") + m.label;
    try {
      if (from_disk)
        st::load(path);
      else
        st::parse(m.bytes, name);
      ADD_FAILURE() << m.label << ": accepted";
    } catch (const starft::Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(name), std::string::npos) << msg;
      for (const auto& p : m.mentions) EXPECT_NE(msg.find(p), std::string::npos) << "lacks '" << p << "': " << msg;
    }
  }
}

const std::string kF32x2 = R"("dtype":"F32","shape":[2])";
const std::string k8Bytes(8, '\x01');

INSTANTIATE_TEST_SUITE_P(
    Safetensors, MalformedFile,
    ::testing::Values(
        Malformed{"short", std::string(5, '\0'), {"shorter than the 8-byte"}},
        Malformed{"empty", "", {"shorter than the 8-byte"}},
        Malformed{"header_past_end", raw_file("{}", "", 1000), {"past the end"}},
        Malformed{"not_json", raw_file("{\"a\": ", ""), {"not valid JSON"}},
        Malformed{"not_object", raw_file("[1,2]", ""), {"expected an object"}},
        Malformed{"entry_not_object", raw_file(R"({"w":5})", ""), {"'w'", "expected an object"}},
        Malformed{"no_dtype", raw_file(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", k8Bytes), {"'w'", "'dtype'"}},
        Malformed{"no_shape", raw_file(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", k8Bytes), {"'w'", "'shape'"}},
        Malformed{"no_offsets", raw_file(R"({"w":{"dtype":"F32","shape":[2]}})", k8Bytes), {"'w'", "'data_offsets'"}},
        Malformed{"unknown_dtype",
                  raw_file(R"({"w":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", k8Bytes),
                  {"'w'", "unknown dtype 'F8_E4M3'", "BF16"}},
        Malformed{"negative_shape",
                  raw_file(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", k8Bytes),
                  {"'w'", "negative"}},
        Malformed{"fractional_shape",
                  raw_file(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", k8Bytes),
                  {"'w'", "not an integer"}},
        // found by tests/fuzz (safetensors): nlohmann's out_of_range escaped as another exception type
        Malformed{"number_out_of_range",
                  raw_file(R"({"w":{"dtype":"F32","shape":[1e400],"data_offsets":[0,8]}})", k8Bytes),
                  {"a number out of range", "1e400"}},
        Malformed{"string_shape",
                  raw_file(R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", k8Bytes),
                  {"'w'", "shape"}},
        Malformed{"offsets_out_of_range",
                  raw_file("{\"w\":{" + kF32x2 + R"(,"data_offsets":[8,16]}})", k8Bytes),
                  {"'w'", "past the data area"}},
        Malformed{"negative_offset",
                  raw_file("{\"w\":{" + kF32x2 + R"(,"data_offsets":[-8,0]}})", k8Bytes),
                  {"'w'", "negative"}},
        Malformed{"begin_after_end",
                  raw_file("{\"w\":{" + kF32x2 + R"(,"data_offsets":[8,0]}})", k8Bytes),
                  {"'w'", "begin after end"}},
        Malformed{"size_mismatch",
                  raw_file(R"({"w":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", k8Bytes),
                  {"'w'", "needs 16"}},
        Malformed{
            "overlap",
            raw_file("{\"a\":{" + kF32x2 + R"(,"data_offsets":[0,8]},"b":{)" + kF32x2 + R"(,"data_offsets":[4,12]}})",
                     std::string(12, '\0')),
            {"'b'", "overlap", "'a'"}},
        Malformed{
            "hole",
            raw_file("{\"a\":{" + kF32x2 + R"(,"data_offsets":[0,8]},"b":{)" + kF32x2 + R"(,"data_offsets":[12,20]}})",
                     std::string(20, '\0')),
            {"'b'", "no holes"}},
        Malformed{"trailing_bytes",
                  raw_file("{\"a\":{" + kF32x2 + R"(,"data_offsets":[0,8]}})", std::string(12, '\0')),
                  {"no holes", "[8, 12)"}},
        Malformed{
            "duplicate_name",
            raw_file("{\"a\":{" + kF32x2 + R"(,"data_offsets":[0,8]},"a":{)" + kF32x2 + R"(,"data_offsets":[8,16]}})",
                     std::string(16, '\0')),
            {"'a'", "twice"}},
        Malformed{"metadata_not_string",
                  raw_file(R"({"__metadata__":{"epoch":3},"a":{)" + kF32x2 + R"(,"data_offsets":[0,8]}})", k8Bytes),
                  {"__metadata__", "'epoch'", "strings"}},
        Malformed{"bad_bool",
                  raw_file(R"({"m":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", std::string("\x01\x02")),
                  {"'m'", "BOOL"}}),
    [](const ::testing::TestParamInfo<Malformed>& info) { return std::string(info.param.label); });
