#include "clip/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/error.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors stores little-endian bytes; this reader copies them as they are");

// The byte-level checks (header length, JSON header, BOOL bytes, foreign formats) are in
// safetensors_format.cpp; this file turns their result into tensors and writes files.
namespace starft::safetensors {
namespace {

// The LibTorch type of each Dtype.
constexpr std::pair<Dtype, torch::ScalarType> kScalarTypes[] = {
    {Dtype::F64, torch::kFloat64},   {Dtype::F32, torch::kFloat32}, {Dtype::F16, torch::kFloat16},
    {Dtype::BF16, torch::kBFloat16}, {Dtype::I64, torch::kInt64},   {Dtype::I32, torch::kInt32},
    {Dtype::I16, torch::kInt16},     {Dtype::I8, torch::kInt8},     {Dtype::U8, torch::kUInt8},
    {Dtype::BOOL, torch::kBool},
};

torch::ScalarType scalar_type(Dtype d) {
  for (const auto& [dtype, type] : kScalarTypes)
    if (dtype == d) return type;
  fail("safetensors: dtype ", static_cast<int>(d), " has no LibTorch type");
}

const DtypeInfo* dtype_by_type(torch::ScalarType t) {
  for (const auto& d : dtypes())
    if (t == scalar_type(d.dtype)) return &d;
  return nullptr;
}

torch::Tensor empty_for(const Entry& e) {
  return torch::empty(e.shape, torch::TensorOptions().dtype(scalar_type(e.dtype->dtype)));
}

// Closes a descriptor on every path out; removes a temporary file unless released.
struct FileGuard {
  int fd = -1;
  std::string unlink_path;
  ~FileGuard() {
    if (fd >= 0) ::close(fd);
    if (!unlink_path.empty()) ::unlink(unlink_path.c_str());
  }
};

void read_exact(int fd, void* dst, uint64_t n, uint64_t offset, const std::string& file, const std::string& what) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    ssize_t got = ::pread(fd, p, std::min<uint64_t>(n, 1ull << 30), static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail(where(file), ": cannot read ", what, ": ", std::strerror(errno));
    if (got == 0) fail(where(file), ": the file ended while reading ", what, "; was it truncated?");
    p += got;
    n -= static_cast<uint64_t>(got);
    offset += static_cast<uint64_t>(got);
  }
}

void write_all(int fd, const void* src, uint64_t n, const std::string& file) {
  const auto* p = static_cast<const char*>(src);
  while (n > 0) {
    ssize_t put = ::write(fd, p, std::min<uint64_t>(n, 1ull << 30));
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) fail("cannot write '", file, "': ", std::strerror(errno));
    p += put;
    n -= static_cast<uint64_t>(put);
  }
}

}  // namespace

Contents parse(const std::string& bytes, const std::string& name) {
  Header h = parse_layout(bytes, name);
  Contents c;
  c.metadata = std::move(h.metadata);
  for (const Entry& e : h.entries) {
    torch::Tensor t = empty_for(e);
    if (e.end > e.begin) std::memcpy(t.data_ptr(), bytes.data() + h.data_start + e.begin, e.end - e.begin);
    check_bools(static_cast<const unsigned char*>(t.data_ptr()), e, name);
    c.tensors.emplace(e.name, std::move(t));
  }
  return c;
}

Contents load(const std::string& path) {
  FileGuard f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) fail(where(path), ": cannot open: ", std::strerror(errno));
  struct stat st;
  if (::fstat(f.fd, &st) != 0) fail(where(path), ": cannot stat: ", std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(where(path), ": not a regular file");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);

  {
    std::string head(std::min<uint64_t>(file_size, 512), '\0');
    if (!head.empty()) read_exact(f.fd, head.data(), head.size(), 0, path, "the first bytes");
    refuse_foreign_format(head, path);
  }
  unsigned char prefix[8] = {0};
  if (file_size >= 8) read_exact(f.fd, prefix, 8, 0, path, "the header length");
  const uint64_t n = header_length(prefix, file_size, path);
  std::string text(n, '\0');
  read_exact(f.fd, text.data(), n, 8, path, "the header");
  Header h = parse_header(text, file_size - 8 - n, path);

  // Straight into each tensor's storage, in file order: one copy, no second image of the file.
  Contents c;
  c.metadata = std::move(h.metadata);
  for (const Entry& e : h.entries) {
    torch::Tensor t = empty_for(e);
    read_exact(f.fd, t.data_ptr(), e.end - e.begin, h.data_start + e.begin, path, "tensor '" + e.name + "'");
    check_bools(static_cast<const unsigned char*>(t.data_ptr()), e, path);
    c.tensors.emplace(e.name, std::move(t));
  }
  return c;
}

void save(const std::string& path, const TensorMap& tensors, const Metadata& metadata) {
  // Header first: it fixes every offset. ordered_json keeps __metadata__ first and the
  // tensors in name order, as the data area is laid out.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header[kMetadataKey] = std::move(m);
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == kMetadataKey) fail("cannot save '", path, "': '", name, "' is reserved for metadata");
    if (!t.defined()) fail("cannot save '", path, "': tensor '", name, "' is undefined");
    const DtypeInfo* d = dtype_by_type(t.scalar_type());
    if (!d)
      fail("cannot save '", path, "': tensor '", name, "' has dtype ", t.scalar_type(),
           ", which safetensors cannot hold (supported: ", supported_dtypes(), "); convert it first");
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * d->size;
    header[name] = {{"dtype", d->name}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // pad with spaces so the data starts 8-aligned
  const uint64_t n = text.size();

  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  FileGuard f;
  f.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f.fd < 0) fail("cannot create '", tmp, "' (to write '", path, "'): ", std::strerror(errno));
  f.unlink_path = tmp;
  write_all(f.fd, &n, 8, tmp);
  write_all(f.fd, text.data(), n, tmp);
  for (const auto& [name, t] : tensors) {
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    write_all(f.fd, c.data_ptr(), static_cast<uint64_t>(c.numel()) * c.element_size(), tmp);
  }
  if (::fsync(f.fd) != 0) fail("cannot flush '", tmp, "' to disk: ", std::strerror(errno));
  const int fd = f.fd;
  f.fd = -1;
  if (::close(fd) != 0) fail("cannot close '", tmp, "': ", std::strerror(errno));
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    fail("cannot rename '", tmp, "' to '", path, "': ", std::strerror(errno));
  f.unlink_path.clear();
  // Make the rename itself durable.
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace starft::safetensors
