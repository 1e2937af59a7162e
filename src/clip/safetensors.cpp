#include "clip/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <vector>

#include "common/error.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors stores little-endian bytes; this reader copies them as they are");

namespace starft::safetensors {
namespace {

// Above this the header is certainly not a safetensors header (the reference reader uses the
// same bound); refusing early keeps a corrupt length from allocating gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  uint64_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {"F64", torch::kFloat64, 8},   {"F32", torch::kFloat32, 4}, {"F16", torch::kFloat16, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kInt64, 8},   {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},     {"I8", torch::kInt8, 1},     {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
};

std::string supported_dtypes() {
  std::string s;
  for (const auto& d : kDtypes) s += (s.empty() ? "" : " ") + std::string(d.name);
  return s;
}

const DtypeInfo* dtype_by_name(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeInfo* dtype_by_type(torch::ScalarType t) {
  for (const auto& d : kDtypes)
    if (t == d.type) return &d;
  return nullptr;
}

// One tensor as the header describes it, checked against the data area.
struct Entry {
  std::string name;
  const DtypeInfo* dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;  // relative to the start of the data area
};

struct Header {
  std::vector<Entry> entries;  // sorted by data offset
  Metadata metadata;
};

std::string where(const std::string& file) { return "safetensors file '" + file + "'"; }
std::string where(const std::string& file, const std::string& tensor) {
  return where(file) + ": tensor '" + tensor + "'";
}

// Reads a JSON number that must be a non-negative integer.
uint64_t non_negative_integer(const nlohmann::json& v, const std::string& file, const std::string& tensor,
                              const char* field) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer())
    fail(where(file, tensor), ": ", field, " holds the negative value ", v.dump(),
         "; sizes and offsets must be non-negative integers");
  fail(where(file, tensor), ": ", field, " holds ", v.dump(),
       ", which is not an integer; sizes and offsets must be non-negative integers");
}

// nlohmann keeps the last of two equal keys; the format forbids them, so watch the parse.
nlohmann::json parse_json(std::string_view text, const std::string& file) {
  std::vector<std::set<std::string>> open_objects;
  std::string top_key;
  auto on_event = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) {
      open_objects.emplace_back();
    } else if (event == E::object_end) {
      open_objects.pop_back();
    } else if (event == E::key) {
      const std::string key = parsed.get<std::string>();
      if (open_objects.size() == 1) top_key = key;
      if (!open_objects.back().insert(key).second) {
        if (open_objects.size() == 1) fail(where(file, key), " appears twice in the header; names must be unique");
        fail(where(file, top_key), ": key '", key, "' appears twice in its header entry");
      }
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), on_event);
  } catch (const nlohmann::json::parse_error& e) {
    fail(where(file), ": the header is not valid JSON (", e.what(), "); the file is damaged or not a safetensors file");
  }
}

Entry parse_entry(const std::string& name, const nlohmann::json& v, const std::string& file) {
  if (!v.is_object())
    fail(where(file, name), ": header entry is ", v.type_name(),
         ", expected an object with dtype, shape and data_offsets");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!v.contains(field)) fail(where(file, name), ": header entry has no '", field, "'");

  Entry e;
  e.name = name;
  const auto& dtype = v["dtype"];
  if (!dtype.is_string()) fail(where(file, name), ": dtype is ", dtype.dump(), ", expected a string");
  e.dtype = dtype_by_name(dtype.get<std::string>());
  if (!e.dtype)
    fail(where(file, name), ": unknown dtype '", dtype.get<std::string>(), "' (supported: ", supported_dtypes(), ")");

  const auto& shape = v["shape"];
  if (!shape.is_array()) fail(where(file, name), ": shape is ", shape.dump(), ", expected an array");
  uint64_t numel = 1;
  bool overflow = false;
  for (const auto& d : shape) {
    uint64_t n = non_negative_integer(d, file, name, "shape");
    if (n > static_cast<uint64_t>(INT64_MAX)) overflow = true;
    overflow |= __builtin_mul_overflow(numel, n, &numel);
    e.shape.push_back(static_cast<int64_t>(n));
  }
  uint64_t nbytes = 0;
  overflow |= __builtin_mul_overflow(numel, e.dtype->size, &nbytes);
  if (overflow) fail(where(file, name), ": shape ", shape.dump(), " is too large to address");

  const auto& offsets = v["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    fail(where(file, name), ": data_offsets is ", offsets.dump(), ", expected [begin, end]");
  e.begin = non_negative_integer(offsets[0], file, name, "data_offsets");
  e.end = non_negative_integer(offsets[1], file, name, "data_offsets");
  if (e.begin > e.end) fail(where(file, name), ": data_offsets [", e.begin, ", ", e.end, "] begin after end");
  if (e.end - e.begin != nbytes)
    fail(where(file, name), ": data_offsets [", e.begin, ", ", e.end, "] span ", e.end - e.begin, " bytes but shape ",
         shape.dump(), " of ", e.dtype->name, " needs ", nbytes);
  return e;
}

// Checks the JSON header against a data area of `data_size` bytes.
Header parse_header(std::string_view text, uint64_t data_size, const std::string& file) {
  nlohmann::json j = parse_json(text, file);
  if (!j.is_object()) fail(where(file), ": the header is a JSON ", j.type_name(), ", expected an object");

  Header h;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == kMetadataKey) {
      if (!it->is_object()) fail(where(file), ": __metadata__ is ", it->type_name(), ", expected an object of strings");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          fail(where(file), ": __metadata__ key '", m.key(), "' holds ", m->dump(),
               "; metadata values must be strings");
        h.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    h.entries.push_back(parse_entry(it.key(), *it, file));
    const Entry& e = h.entries.back();
    if (e.end > data_size)
      fail(where(file, e.name), ": data_offsets [", e.begin, ", ", e.end, "] reach past the data area of ", data_size,
           " bytes; the file is truncated");
  }

  // The tensors must tile the data area exactly: no overlap, no holes, nothing left over.
  std::sort(h.entries.begin(), h.entries.end(),
            [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : h.entries) {
    if (e.begin < covered)
      fail(where(file, e.name), ": data_offsets [", e.begin, ", ", e.end, "] overlap tensor '", previous->name, "' [",
           previous->begin, ", ", previous->end, "]");
    if (e.begin > covered)
      fail(where(file, e.name), ": bytes [", covered, ", ", e.begin,
           ") before its data_offsets belong to no tensor; the format allows no holes");
    covered = e.end;
    previous = &e;
  }
  if (covered != data_size)
    fail(where(file), ": bytes [", covered, ", ", data_size,
         ") at the end of the data area belong to no tensor; the format allows no holes");
  return h;
}

uint64_t header_length(const unsigned char* prefix, uint64_t file_size, const std::string& file) {
  if (file_size < 8)
    fail(where(file), ": only ", file_size,
         " bytes, shorter than the 8-byte header length; the file is truncated or not safetensors");
  uint64_t n = 0;
  std::memcpy(&n, prefix, 8);
  if (n > file_size - 8)
    fail(where(file), ": the header length ", n, " reaches past the end of the file (", file_size,
         " bytes); the file is truncated or not safetensors");
  if (n > kMaxHeaderBytes) fail(where(file), ": the header length ", n, " exceeds ", kMaxHeaderBytes, " bytes");
  return n;
}

torch::Tensor empty_for(const Entry& e) { return torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype->type)); }

// A BOOL byte other than 0 or 1 is not a valid bool for LibTorch.
void check_bools(const torch::Tensor& t, const Entry& e, const std::string& file) {
  if (e.dtype->type != torch::kBool) return;
  const auto* bytes = reinterpret_cast<const unsigned char*>(t.data_ptr());
  for (int64_t i = 0; i < t.numel(); ++i)
    if (bytes[i] > 1)
      fail(where(file, e.name), ": BOOL element ", i, " has the byte value ", int(bytes[i]), " (must be 0 or 1)");
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

// A Git LFS pointer: "version https://git-lfs.github.com/spec/v1\noid sha256:...\nsize N\n".
void refuse_lfs_pointer(const std::string& head, const std::string& file) {
  if (head.rfind("version https://git-lfs.github.com/spec/", 0) != 0) return;
  std::string oid = "?", size = "?";
  const auto o = head.find("oid ");
  if (o != std::string::npos) oid = head.substr(o + 4, head.find('\n', o) - o - 4);
  const auto s = head.find("size ");
  if (s != std::string::npos) size = head.substr(s + 5, head.find('\n', s) - s - 5);
  fail(where(file), ": a Git LFS pointer (", oid, ", ", size,
       " bytes), not the weights: the repository was "
       "cloned without Git LFS, so only this small text file arrived. Fetch the file: `git lfs pull --include \"",
       std::filesystem::path(file).filename().string(),
       "\"` in the repository's folder (after `git lfs install`), "
       "or download the file itself");
}

// A PyTorch zip archive (torch.save since 1.6) or a plain pickle (protocol 2 to 5).
void refuse_pickle(const std::string& head, const std::string& file) {
  const bool zip = head.rfind("PK\x03\x04", 0) == 0;
  const bool pickle = head.size() >= 2 && static_cast<unsigned char>(head[0]) == 0x80 && head[1] >= 2 && head[1] <= 5;
  // A safetensors file whose header length happens to start with these bytes has its JSON at byte 8.
  const bool json_header = head.size() > 8 && head[8] == '{';
  if ((!zip && !pickle) || json_header) return;
  fail(where(file), ": ",
       zip ? "a zip archive (PyTorch's torch.save format)" : "a Python pickle (PyTorch's torch.save)",
       ", not safetensors; starft does not unpickle (it runs code from the file). ", conversion_hint(file));
}

}  // namespace

std::string conversion_hint(const std::string& path) {
  const std::filesystem::path p(path);
  std::string name = p.stem().string();
  if (name == "pytorch_model") name = "model";
  if (name == "open_clip_pytorch_model") name = "open_clip_model";
  const std::string out = (p.parent_path() / (name + ".safetensors")).string();
  return "Convert it once with PyTorch: python3 -c \"import torch, safetensors.torch as st; "
         "m = torch.load('" +
         path +
         "', map_location='cpu', weights_only=True); m = m.get('state_dict', m); "
         "st.save_file({k: v.contiguous() for k, v in m.items()}, '" +
         out +
         "')\" (for OpenAI's TorchScript .pt "
         "files: m = torch.jit.load('" +
         path + "', map_location='cpu').state_dict()), then give " + out +
         " (with --model, or config.json beside it, for the architecture)";
}

Contents parse(const std::string& bytes, const std::string& name) {
  const uint64_t n = header_length(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), name);
  const uint64_t data_start = 8 + n;
  Header h = parse_header(std::string_view(bytes).substr(8, n), bytes.size() - data_start, name);
  Contents c;
  c.metadata = std::move(h.metadata);
  for (const Entry& e : h.entries) {
    torch::Tensor t = empty_for(e);
    if (e.end > e.begin) std::memcpy(t.data_ptr(), bytes.data() + data_start + e.begin, e.end - e.begin);
    check_bools(t, e, name);
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
    refuse_lfs_pointer(head, path);
    refuse_pickle(head, path);
  }
  unsigned char prefix[8] = {0};
  if (file_size >= 8) read_exact(f.fd, prefix, 8, 0, path, "the header length");
  const uint64_t n = header_length(prefix, file_size, path);
  std::string text(n, '\0');
  read_exact(f.fd, text.data(), n, 8, path, "the header");
  const uint64_t data_start = 8 + n;
  Header h = parse_header(text, file_size - data_start, path);

  // Straight into each tensor's storage, in file order: one copy, no second image of the file.
  Contents c;
  c.metadata = std::move(h.metadata);
  for (const Entry& e : h.entries) {
    torch::Tensor t = empty_for(e);
    read_exact(f.fd, t.data_ptr(), e.end - e.begin, data_start + e.begin, path, "tensor '" + e.name + "'");
    check_bools(t, e, path);
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
