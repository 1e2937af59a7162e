#include "common/text.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "common/error.h"
#include "common/lfs_pointer.h"

namespace starft {

std::string strip_bom(std::string text) {
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);
  return text;
}

void check_utf8_text(const std::string& text, const std::string& what, const std::string& path) {
  auto starts = [&](const char* bytes, size_t n) { return text.size() >= n && text.compare(0, n, bytes, n) == 0; };
  std::string found, from;  // the encoding in words; iconv's name for it
  if (starts("\xFF\xFE\0\0", 4)) {
    found = "UTF-32 (little-endian, byte-order mark FF FE 00 00)", from = "UTF-32";
  } else if (starts("\0\0\xFE\xFF", 4)) {
    found = "UTF-32 (big-endian, byte-order mark 00 00 FE FF)", from = "UTF-32";
  } else if (starts("\xFF\xFE", 2)) {
    found = "UTF-16 (little-endian, byte-order mark FF FE; Excel's \"Unicode Text\" writes it)", from = "UTF-16";
  } else if (starts("\xFE\xFF", 2)) {
    found = "UTF-16 (big-endian, byte-order mark FE FF)", from = "UTF-16";
  } else if (starts("PK\x03\x04", 4)) {
    fail(what, " ", path,
         " is a zip archive (an Excel .xlsx workbook?), not text: save it from Excel as \"CSV UTF-8\" or "
         "\"Text (Tab delimited)\"");
  } else {
    const size_t line_end = std::min(text.find('\n'), text.size());
    if (text.find('\0') >= line_end) return;
    // Without a mark, the place of the NULs in the first code unit tells the width and byte order.
    auto zero = [&](size_t i) { return i < text.size() && text[i] == '\0'; };
    if (!zero(0) && zero(1) && zero(2) && zero(3)) {
      found = "UTF-32 (little-endian, no byte-order mark: NUL bytes in the first line)", from = "UTF-32LE";
    } else if (zero(0) && zero(1) && zero(2) && !zero(3)) {
      found = "UTF-32 (big-endian, no byte-order mark: NUL bytes in the first line)", from = "UTF-32BE";
    } else if (!zero(0) && zero(1)) {
      found = "UTF-16 (little-endian, no byte-order mark: NUL bytes in the first line)", from = "UTF-16LE";
    } else if (zero(0) && !zero(1)) {
      found = "UTF-16 (big-endian, no byte-order mark: NUL bytes in the first line)", from = "UTF-16BE";
    } else {
      fail(what, " ", path,
           " has NUL bytes in its first line: it is not a text file (or in an encoding starft does not read); "
           "starft reads UTF-8 text");
    }
  }
  const std::filesystem::path p(path);
  const std::string converted = (p.parent_path() / (p.stem().string() + "-utf8" + p.extension().string())).string();
  fail(what, " ", path, " is ", found, "; starft reads UTF-8 text. Convert it: iconv -f ", from, " -t UTF-8 ", path,
       " > ", converted, " (or save it again as UTF-8, e.g. Excel's \"CSV UTF-8\")");
}

std::string normalize_text(std::string text) {
  text = strip_bom(std::move(text));
  if (text.find('\r') == std::string::npos) return text;
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\r') {
      out += text[i];
    } else {
      out += '\n';
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    }
  }
  return out;
}

std::string read_text_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(what, " ", path, " is a directory, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read ", what, " ", path, ": ", std::strerror(errno), " (does it exist, is it readable?)");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) fail("cannot read ", what, " ", path, ": read error");
  std::string text = buffer.str();
  refuse_lfs_pointer(text, what + " " + path, path, "the file's content");
  check_utf8_text(text, what, path);
  return normalize_text(std::move(text));
}

std::string join(const std::vector<std::string>& items, size_t limit) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < limit; ++i) out += (i ? ", " : "") + items[i];
  if (items.size() > limit) out += ", ... (" + std::to_string(items.size() - limit) + " more)";
  return out;
}

}  // namespace starft
