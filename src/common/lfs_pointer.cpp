#include "common/lfs_pointer.h"

#include <filesystem>
#include <fstream>

#include "common/error.h"

namespace starft {
namespace {

constexpr std::string_view kVersionLine = "version https://git-lfs.github.com/spec/v1";

// The value of the pointer's line "<key> <value>", or "" when it has none.
std::string_view value_of(std::string_view head, std::string_view key) {
  size_t begin = 0;
  while (begin < head.size()) {
    size_t end = head.find('\n', begin);
    if (end == std::string_view::npos) end = head.size();
    std::string_view line = head.substr(begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > key.size() && line.compare(0, key.size(), key) == 0 && line[key.size()] == ' ')
      return line.substr(key.size() + 1);
    begin = end + 1;
  }
  return {};
}

}  // namespace

bool is_lfs_pointer(std::string_view head) {
  if (head.compare(0, kVersionLine.size(), kVersionLine) != 0) return false;
  const std::string_view rest = head.substr(kVersionLine.size());
  return rest.compare(0, 1, "\n") == 0 || rest.compare(0, 2, "\r\n") == 0;
}

std::string lfs_pointer_reason(std::string_view head, const std::string& path, const std::string& content) {
  const std::string_view oid = value_of(head, "oid"), size = value_of(head, "size");
  std::string what = "a Git LFS pointer";
  if (!oid.empty() || !size.empty()) {
    what += " (";
    what += oid.empty() ? "?" : oid;
    what += ", ";
    what += size.empty() ? "?" : size;
    what += " bytes)";
  }
  return what + ", not " + content +
         ": the repository was cloned without Git LFS, so only this small text file arrived. Fetch the file: `git "
         "lfs pull --include \"" +
         std::filesystem::path(path).filename().string() +
         "\"` in the repository's folder (after `git lfs install`), or download the file itself";
}

void refuse_lfs_pointer(std::string_view head, const std::string& where, const std::string& path,
                        const std::string& content) {
  if (is_lfs_pointer(head)) fail(where, ": ", lfs_pointer_reason(head, path, content));
}

void refuse_lfs_pointer_file(const std::string& path, const std::string& where, const std::string& content) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return;
  std::string head(kLfsPointerHeadBytes, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  refuse_lfs_pointer(head, where, path, content);
}

}  // namespace starft
