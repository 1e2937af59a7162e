#pragma once
// The byte-level half of the safetensors reader (safetensors.h), without LibTorch: the 8-byte
// little-endian header length, the JSON header and its strict checks (dtype, shape, data_offsets
// that tile the data area with no overlap, hole or bytes left over; unique names and keys), BOOL
// bytes, and the files often found under a .safetensors name (a Git LFS pointer, a PyTorch
// pickle). Every refusal is a starft::Error naming the file and, where there is one, the tensor.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace starft::safetensors {

using Metadata = std::map<std::string, std::string>;

// The header key that holds the metadata object instead of a tensor.
constexpr const char* kMetadataKey = "__metadata__";

// The element types starft reads and writes (safetensors' names in DtypeInfo::name).
enum class Dtype { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

struct DtypeInfo {
  const char* name;  // as the header spells it: "F32"
  Dtype dtype;
  uint64_t size;  // bytes per element
};

// Every supported dtype, in the order messages list them: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL.
const std::vector<DtypeInfo>& dtypes();
// The entry of dtypes() for a header's dtype string; nullptr if it is not supported.
const DtypeInfo* dtype_by_name(std::string_view name);
// The supported names, space-separated (for messages).
std::string supported_dtypes();

// One tensor as the header describes it, checked against the data area.
struct Entry {
  std::string name;
  const DtypeInfo* dtype;
  std::vector<int64_t> shape;  // every dimension <= INT64_MAX, their product * dtype size addressable
  uint64_t begin, end;         // bytes relative to the start of the data area; end - begin = numel * size
};

struct Header {
  std::vector<Entry> entries;  // sorted by data offset; together they tile the data area exactly
  Metadata metadata;           // the "__metadata__" object (string values), empty if absent
  uint64_t data_start = 0;     // the file offset of the data area: 8 + the header's length
};

// How every message of the reader starts: "safetensors file 'FILE'" (": tensor 'NAME'").
std::string where(const std::string& file);
std::string where(const std::string& file, const std::string& tensor);

// The header length stored in the first 8 bytes `prefix` of a file of `file_size` bytes (prefix
// is read only when file_size >= 8). Refuses a file shorter than 8 bytes, a length past the end
// of the file, and one above 100,000,000 bytes (the reference reader's bound).
uint64_t header_length(const unsigned char* prefix, uint64_t file_size, const std::string& file);

// Parses and checks the JSON header `text` (the header length's bytes after the first 8) against
// a data area of `data_size` bytes. Refuses invalid JSON, a non-object, a name or key given twice,
// an entry without dtype / shape / data_offsets, an unknown dtype, a negative or non-integer size
// or offset, a shape too large to address, data_offsets whose span differs from the shape's bytes
// or that reach past the data area, overlapping tensors, bytes of the data area that belong to no
// tensor, and __metadata__ that is not an object of strings.
Header parse_header(std::string_view text, uint64_t data_size, const std::string& file);

// header_length() and parse_header() of an in-memory image of a whole file.
Header parse_layout(std::string_view bytes, const std::string& file);

// Refuses a BOOL tensor `e` whose bytes (the e.end - e.begin bytes at `bytes`) hold a value other
// than 0 or 1, which is not a valid bool for LibTorch; other dtypes pass unchecked.
void check_bools(const unsigned char* bytes, const Entry& e, const std::string& file);

// Refuses what is often found under a .safetensors name, from the file's first bytes `head` (up
// to 512): a Git LFS pointer (a clone without git-lfs), named with `git lfs pull`, and a PyTorch
// zip archive or pickle, named with conversion_hint(). Anything else passes.
void refuse_foreign_format(std::string_view head, const std::string& file);

// What to do with the PyTorch pickle `path` (.bin, .pt, .pth): the one-line Python command that
// converts it to a .safetensors file starft reads.
std::string conversion_hint(const std::string& path);

}  // namespace starft::safetensors
