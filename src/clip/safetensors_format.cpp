#include "clip/safetensors_format.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "common/lfs_pointer.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors stores little-endian bytes; this reader copies them as they are");

namespace starft::safetensors {
namespace {

// Above this the header is certainly not a safetensors header (the reference reader uses the
// same bound); refusing early keeps a corrupt length from allocating gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

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
  } catch (const nlohmann::json::out_of_range& e) {
    // a number beyond a double's range (1e400): valid JSON grammar, but no value to read
    fail(where(file), ": the header holds a number out of range (", e.what(),
         "); the file is damaged or not a safetensors file");
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

// A PyTorch zip archive (torch.save since 1.6) or a plain pickle (protocol 2 to 5).
void refuse_pickle(std::string_view head, const std::string& file) {
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

const std::vector<DtypeInfo>& dtypes() {
  static const std::vector<DtypeInfo> table = {
      {"F64", Dtype::F64, 8}, {"F32", Dtype::F32, 4},   {"F16", Dtype::F16, 2}, {"BF16", Dtype::BF16, 2},
      {"I64", Dtype::I64, 8}, {"I32", Dtype::I32, 4},   {"I16", Dtype::I16, 2}, {"I8", Dtype::I8, 1},
      {"U8", Dtype::U8, 1},   {"BOOL", Dtype::BOOL, 1},
  };
  return table;
}

const DtypeInfo* dtype_by_name(std::string_view name) {
  for (const auto& d : dtypes())
    if (name == d.name) return &d;
  return nullptr;
}

std::string supported_dtypes() {
  std::string s;
  for (const auto& d : dtypes()) s += (s.empty() ? "" : " ") + std::string(d.name);
  return s;
}

std::string where(const std::string& file) { return "safetensors file '" + file + "'"; }
std::string where(const std::string& file, const std::string& tensor) {
  return where(file) + ": tensor '" + tensor + "'";
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

Header parse_header(std::string_view text, uint64_t data_size, const std::string& file) {
  nlohmann::json j = parse_json(text, file);
  if (!j.is_object()) fail(where(file), ": the header is a JSON ", j.type_name(), ", expected an object");

  Header h;
  h.data_start = 8 + text.size();
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

Header parse_layout(std::string_view bytes, const std::string& file) {
  const uint64_t n = header_length(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), file);
  return parse_header(bytes.substr(8, n), bytes.size() - 8 - n, file);
}

void check_bools(const unsigned char* bytes, const Entry& e, const std::string& file) {
  if (e.dtype->dtype != Dtype::BOOL) return;
  for (uint64_t i = 0; i < e.end - e.begin; ++i)
    if (bytes[i] > 1)
      fail(where(file, e.name), ": BOOL element ", i, " has the byte value ", int(bytes[i]), " (must be 0 or 1)");
}

void refuse_foreign_format(std::string_view head, const std::string& file) {
  refuse_lfs_pointer(head, where(file), file, "the weights");
  refuse_pickle(head, file);
}

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

}  // namespace starft::safetensors
