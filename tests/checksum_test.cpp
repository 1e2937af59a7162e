// CRC-32 and its text form (common/checksum.h), which stores, checkpoints and the teacher cache
// record: the standard check value, pieces equal to the whole, and files.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "common/checksum.h"
#include "test_util.h"

using starft::testing::TempDir;

TEST(Checksum, Crc32OfTheStandardCheckInput) {
  // CRC-32/ISO-HDLC (zlib's) of "123456789" is 0xcbf43926 (the catalogue's check value).
  EXPECT_EQ(starft::crc32_of("123456789", 9), 0xcbf43926u);
  EXPECT_EQ(starft::crc32_text(0xcbf43926u), "crc32:cbf43926");
  EXPECT_EQ(starft::crc32_text(0x1u), "crc32:00000001");
  EXPECT_EQ(starft::crc32_of("", 0), 0u);
}

TEST(Checksum, PiecesContinueTheWhole) {
  std::vector<unsigned char> bytes(100000);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 131 + 7);
  uint32_t crc = 0;
  for (size_t begin = 0; begin < bytes.size(); begin += 777)
    crc = starft::crc32_update(crc, bytes.data() + begin, std::min<size_t>(777, bytes.size() - begin));
  EXPECT_EQ(crc, starft::crc32_of(bytes.data(), bytes.size()));
}

TEST(Checksum, FileTextIsTheCrcOfItsBytesAndEmptyWhenUnreadable) {
  TempDir tmp;
  std::ofstream(tmp / "f.bin", std::ios::binary) << "123456789";
  EXPECT_EQ(starft::file_crc32_text(tmp / "f.bin"), "crc32:cbf43926");
  EXPECT_EQ(starft::file_crc32_text(tmp / "absent.bin"), "");
  EXPECT_EQ(starft::file_crc32_text(tmp.path().string()), "");  // a folder
}
