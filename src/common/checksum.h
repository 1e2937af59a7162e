#pragma once
// CRC-32 checksums (zlib's, the IEEE 802.3 polynomial) and the text form every starft file records
// them in: "crc32:xxxxxxxx", eight lower-case hex digits. Stores (manifest shards, meta_crc32),
// checkpoints (state.json) and the teacher cache's fingerprint all use these, so a value computed
// by one can be compared with another's.
#include <cstddef>
#include <cstdint>
#include <string>

namespace starft {

// CRC-32 of `size` bytes at `data` continued from `crc` (0 starts a new one). Any size: zlib takes
// at most 4 GiB per call, so larger buffers are fed in pieces.
uint32_t crc32_update(uint32_t crc, const void* data, size_t size);

// CRC-32 of `size` bytes at `data`.
inline uint32_t crc32_of(const void* data, size_t size) { return crc32_update(0, data, size); }

// "crc32:xxxxxxxx".
std::string crc32_text(uint32_t crc);

// CRC-32 of the whole file at `path` as "crc32:xxxxxxxx"; "" when the file cannot be opened or
// read to its end (the caller names the file and what to do).
std::string file_crc32_text(const std::string& path);

}  // namespace starft
