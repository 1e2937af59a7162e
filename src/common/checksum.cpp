#include "common/checksum.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <vector>

namespace starft {

uint32_t crc32_update(uint32_t crc, const void* data, size_t size) {
  uLong c = crc;
  const auto* p = static_cast<const Bytef*>(data);
  while (size > 0) {
    const uInt chunk = static_cast<uInt>(std::min<size_t>(size, size_t{1} << 30));
    c = ::crc32(c, p, chunk);
    p += chunk;
    size -= chunk;
  }
  return static_cast<uint32_t>(c);
}

std::string crc32_text(uint32_t crc) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "crc32:%08x", static_cast<unsigned>(crc));
  return buf;
}

std::string file_crc32_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::vector<char> buf(size_t{4} << 20);
  uint32_t crc = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto got = in.gcount();
    if (got > 0) crc = crc32_update(crc, buf.data(), static_cast<size_t>(got));
  }
  if (in.bad()) return "";
  return crc32_text(crc);
}

}  // namespace starft
