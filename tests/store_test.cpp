// Store format: write then read, validation errors, fit_square.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <opencv2/imgproc.hpp>

#include "common/error.h"
#include "data/hdf5.h"
#include "data/image.h"
#include "data/manifest.h"
#include "data/shard_writer.h"
#include "data/store.h"
#include "data/verify.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace starft;
using namespace starft::data;
using starft::testing::TempDir;
using starft::testing::error_of;

namespace {

// A deterministic RGB image with structure (so crops and resizes are visible).
cv::Mat store_pattern(int h, int w, int seed) {
  cv::Mat m(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      m.at<cv::Vec3b>(y, x) = cv::Vec3b((x * 7 + seed * 31) & 255, (y * 5 + seed * 17) & 255, ((x ^ y) + seed) & 255);
  return m;
}

Manifest layout(int size, int64_t shard_size) {
  Manifest m;
  m.dataset = "unit";
  m.split = "train";
  m.class_names = {"cat", "dog", "bird"};
  m.class_ids = {"n1", "n2", "n3"};
  m.image_size = size;
  m.shard_size = shard_size;
  m.has_groups = true;
  m.has_captions = true;
  m.attribute_names = {"place"};
  m.attribute_values["place"] = {"land", "water"};
  return m;
}

struct Written {
  std::vector<cv::Mat> images;  // as they should be stored
  std::vector<SampleMeta> metas;
};

Written write_store(const std::string& dir, int size, int64_t shard_size, int n, int compression = 0) {
  Manifest m = layout(size, shard_size);
  m.compression = compression;
  StoreWriter writer(dir, m, false);
  Written w;
  for (int i = 0; i < n; ++i) {
    SampleMeta meta;
    meta.label = i % 3;
    meta.group = i % 4;
    meta.attributes["place"] = i % 2;
    meta.caption = "a photo of a caf\u00e9 \u2615 number " + std::to_string(i);
    meta.source = "dir/image_" + std::to_string(i) + ".jpg";
    // Mixed sizes: exact, larger (shrunk), smaller (enlarged), non-square.
    cv::Mat img = store_pattern(i % 3 == 0 ? size : size + 7 * i, i % 2 ? size : size * 2 - i, i);
    writer.add(img, meta);
    w.images.push_back(fit_square(img, size));
    w.metas.push_back(meta);
  }
  writer.finish();
  return w;
}

bool same_pixels(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

}  // namespace

TEST(StoreTest, WriteThenReadGivesBackEverything) {
  for (int compression : {0, 4}) {
    TempDir dir;
    Written w = write_store(dir.path().string(), 24, 3, 8, compression);
    Store store(dir.path().string());
    ASSERT_EQ(store.size(), 8);
    EXPECT_EQ(store.manifest().shards.size(), 3u);  // 3 + 3 + 2
    EXPECT_EQ(store.manifest().shards[2].count, 2);
    EXPECT_EQ(store.manifest().class_names, layout(24, 3).class_names);
    EXPECT_EQ(store.manifest().compression, compression);
    for (int i = 0; i < 8; ++i) {
      Sample s = store.get(i);
      EXPECT_TRUE(same_pixels(s.image, w.images[i])) << "sample " << i << " compression " << compression;
      EXPECT_EQ(s.label, w.metas[i].label);
      EXPECT_EQ(s.group, w.metas[i].group);
      ASSERT_EQ(s.attributes.size(), 1u);
      EXPECT_EQ(s.attributes[0], w.metas[i].attributes.at("place"));
      EXPECT_EQ(s.caption, w.metas[i].caption);
      EXPECT_EQ(s.source, w.metas[i].source);
      EXPECT_EQ(store.labels()[i], w.metas[i].label);
      EXPECT_EQ(store.groups()[i], w.metas[i].group);
      EXPECT_EQ(store.attribute("place")[i], w.metas[i].attributes.at("place"));
    }
    EXPECT_NO_THROW(store.verify());
    EXPECT_TRUE(fs::exists(dir / "manifest.json"));
    for (const auto& e : fs::directory_iterator(dir.path()))
      EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  }
}

TEST(StoreTest, FitSquareResizesShorterSideAndCropsCentre) {
  // Left third red, middle green, right third blue: the centre crop of 90x30 is all green.
  cv::Mat img(30, 90, CV_8UC3, cv::Scalar(0, 0, 0));
  img(cv::Rect(0, 0, 30, 30)).setTo(cv::Scalar(255, 0, 0));
  img(cv::Rect(30, 0, 30, 30)).setTo(cv::Scalar(0, 255, 0));
  img(cv::Rect(60, 0, 30, 30)).setTo(cv::Scalar(0, 0, 255));
  cv::Mat out = fit_square(img, 10);
  ASSERT_EQ(out.rows, 10);
  ASSERT_EQ(out.cols, 10);
  // Away from the borders (the area filter mixes neighbours there) it is pure green.
  for (int y = 0; y < 10; ++y)
    for (int x = 1; x < 9; ++x) EXPECT_EQ(out.at<cv::Vec3b>(y, x), cv::Vec3b(0, 255, 0)) << x << "," << y;
  // Grey input becomes three equal channels; exact size is kept as is.
  cv::Mat grey = cv::Mat(10, 10, CV_8UC1, cv::Scalar(77));
  cv::Mat rgb = fit_square(grey, 10);
  EXPECT_EQ(rgb.type(), CV_8UC3);
  EXPECT_EQ(rgb.at<cv::Vec3b>(3, 4), cv::Vec3b(77, 77, 77));
}

TEST(StoreTest, ManifestJsonRoundTrip) {
  Manifest m = layout(32, 10);
  m.shards = {{"shard-00000.h5", 10, "crc32:0000abcd"}, {"shard-00001.h5", 4, "crc32:12345678"}};
  m.skipped = {{"bad.jpg", "cannot decode"}};
  m.compression = 3;
  Manifest back = Manifest::from_json(m.to_json(), "test");
  EXPECT_EQ(back.to_json(), m.to_json());
  EXPECT_EQ(back.count(), 14);
  EXPECT_EQ(back.to_json().at("image_shape"), nlohmann::json({32, 32, 3}));
}

TEST(StoreTest, MissingShardIsNamed) {
  TempDir dir;
  write_store(dir.path().string(), 16, 2, 5);
  fs::remove(dir / "shard-00001.h5");
  std::string err = error_of([&] { Store s(dir.path().string()); });
  EXPECT_NE(err.find("shard-00001.h5"), std::string::npos) << err;
  EXPECT_NE(err.find("missing"), std::string::npos) << err;
}

TEST(StoreTest, DamagedShardIsNamed) {
  TempDir dir;
  write_store(dir.path().string(), 16, 2, 5);
  auto path = dir / "shard-00002.h5";
  fs::resize_file(path, fs::file_size(path) / 2);
  std::string err = error_of([&] { Store s(dir.path().string()); });
  EXPECT_NE(err.find("shard-00002.h5"), std::string::npos) << err;
}

// A store in a repository cloned without Git LFS: a shard (an HDF5 file, as the teacher cache is)
// or the manifest that is a pointer is named as one with `git lfs pull`, not as a damaged file.
TEST(StoreTest, AShardOrManifestThatIsAGitLfsPointerNamesTheFileAndGitLfsPull) {
  const std::string pointer =
      "version https://git-lfs.github.com/spec/v1\n"
      "oid sha256:4d7a2146e1d3c5a8f0b9e6a3c2d1f0e9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3\n"
      "size 48213\n";
  for (const char* name : {"shard-00001.h5", "manifest.json"}) {
    TempDir dir;
    write_store(dir.path().string(), 16, 2, 5);
    std::ofstream(dir / name, std::ios::binary | std::ios::trunc) << pointer;
    const std::string err = error_of([&] { Store s(dir.path().string()); });
    EXPECT_NE(err.find(dir / name), std::string::npos) << err;
    EXPECT_NE(err.find("git lfs pull --include \"" + std::string(name) + "\""), std::string::npos) << err;
  }
  TempDir dir;
  std::ofstream(dir / "teacher-cache.h5", std::ios::binary) << pointer;
  const std::string err = error_of([&] { h5::open_read(dir / "teacher-cache.h5"); });
  EXPECT_NE(err.find("git lfs pull --include \"teacher-cache.h5\""), std::string::npos) << err;
}

TEST(StoreTest, WrongManifestIsRefused) {
  TempDir a, b;
  write_store(a.path().string(), 16, 2, 5);
  // Same shape and counts, different pixels: b's manifest does not describe a's shards.
  {
    Manifest m = layout(16, 2);
    StoreWriter writer(b.path().string(), m, false);
    for (int i = 0; i < 5; ++i) {
      SampleMeta meta;
      meta.label = i % 3;
      meta.attributes["place"] = 0;
      writer.add(store_pattern(16, 16, 100 + i), meta);
    }
    writer.finish();
  }
  fs::copy_file(b / "manifest.json", a / "manifest.json", fs::copy_options::overwrite_existing);
  std::string err = error_of([&] { Store s(a.path().string()); });
  EXPECT_NE(err.find("checksum"), std::string::npos) << err;
  EXPECT_NE(err.find("shard-00000.h5"), std::string::npos) << err;

  // A manifest of another format version, or whose counts disagree with the shards.
  auto edit = [&](const std::function<void(nlohmann::json&)>& change) {
    TempDir c;
    write_store(c.path().string(), 16, 2, 5);
    nlohmann::json j;
    std::ifstream(c / "manifest.json") >> j;
    change(j);
    std::ofstream(c / "manifest.json") << j.dump();
    return error_of([&] { Store s(c.path().string()); });
  };
  err = edit([](nlohmann::json& j) { j["format_version"] = 99; });
  EXPECT_NE(err.find("format version 99"), std::string::npos) << err;
  err = edit([](nlohmann::json& j) {
    j["shards"][0]["count"] = 3;
    j["count"] = 6;
  });
  EXPECT_NE(err.find("holds 2 samples"), std::string::npos) << err;
  err = edit([](nlohmann::json& j) { j["image_shape"] = {8, 8, 3}; });
  EXPECT_NE(err.find("'images' has shape"), std::string::npos) << err;
  err = edit([](nlohmann::json& j) { j.erase("class_names"); });
  EXPECT_NE(err.find("malformed manifest"), std::string::npos) << err;
}

TEST(StoreTest, StoreWithoutManifestIsIncomplete) {
  TempDir dir;
  write_store(dir.path().string(), 16, 2, 3);
  fs::remove(dir / "manifest.json");
  std::string err = error_of([&] { Store s(dir.path().string()); });
  EXPECT_NE(err.find("incomplete"), std::string::npos) << err;
}

TEST(StoreTest, VerifyFindsChangedPixels) {
  TempDir dir;
  write_store(dir.path().string(), 16, 2, 5);
  {
    // Overwrite image 0 of shard 1 behind the manifest's back.
    auto guard = h5::lock();
    h5::Handle f(H5Fopen((dir / "shard-00001.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    ASSERT_TRUE(f.valid());
    h5::Handle ds(H5Dopen2(f.get(), "images", H5P_DEFAULT));
    hsize_t start[4] = {0, 0, 0, 0}, count[4] = {1, 16, 16, 3};
    h5::Handle fspace(H5Dget_space(ds.get()));
    H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
    h5::Handle mspace(H5Screate_simple(4, count, nullptr));
    std::vector<uint8_t> zeros(16 * 16 * 3, 0);
    ASSERT_GE(H5Dwrite(ds.get(), H5T_NATIVE_UINT8, mspace.get(), fspace.get(), H5P_DEFAULT, zeros.data()), 0);
  }
  Store store(dir.path().string());
  std::string err = error_of([&] { store.verify(); });
  EXPECT_NE(err.find("shard-00001.h5"), std::string::npos) << err;
}

TEST(StoreTest, NonEmptyOutputNeedsOverwrite) {
  TempDir dir;
  write_store(dir.path().string(), 16, 2, 3);
  std::string err = error_of([&] { StoreWriter w(dir.path().string(), layout(16, 2), false); });
  EXPECT_NE(err.find("--overwrite"), std::string::npos) << err;
  // With overwrite the old store's files go, others stay.
  std::ofstream(dir / "notes.txt") << "keep me";
  StoreWriter w(dir.path().string(), layout(16, 2), true);
  EXPECT_FALSE(fs::exists(dir / "manifest.json"));
  EXPECT_FALSE(fs::exists(dir / "shard-00000.h5"));
  EXPECT_TRUE(fs::exists(dir / "notes.txt"));
}

TEST(StoreTest, UnfinishedShardLeavesNothing) {
  TempDir dir;
  {
    ShardWriter writer(dir.path().string(), "shard-00000.h5", layout(8, 4));
    SampleMeta meta;
    meta.attributes["place"] = 1;
    writer.add(store_pattern(8, 8, 1), meta);
    EXPECT_TRUE(fs::exists(dir / "shard-00000.h5.tmp"));
  }  // destroyed without finish(), as when a conversion fails
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(StoreTest, SkippedItemsKeepShardBoundaries) {
  TempDir dir;
  Manifest m = layout(8, 2);
  m.has_groups = m.has_captions = false;
  m.attribute_names.clear();
  m.attribute_values.clear();
  StoreWriter writer(dir.path().string(), m, false);
  SampleMeta meta;
  writer.add(store_pattern(8, 8, 0), meta);
  writer.skip("broken.jpg", "cannot decode");
  writer.add(store_pattern(8, 8, 2), meta);
  writer.add(store_pattern(8, 8, 3), meta);
  Manifest out = writer.finish();
  ASSERT_EQ(out.shards.size(), 2u);
  EXPECT_EQ(out.shards[0].count, 1);  // items 0-1, item 1 skipped
  EXPECT_EQ(out.shards[1].count, 2);
  ASSERT_EQ(out.skipped.size(), 1u);
  EXPECT_EQ(out.skipped[0].source, "broken.jpg");
  Store store(dir.path().string());
  EXPECT_EQ(store.size(), 3);
  EXPECT_FALSE(store.manifest().has_captions);
  EXPECT_EQ(store.caption(0), "");
}

// ---- starft verify (data/verify.h) -----------------------------------------------------------

namespace {

// Overwrites `n` bytes of the stored chunk of `row` in `shard` in place (bit rot, a bad copy):
// same size, same HDF5 metadata.
void zero_chunk_bytes(const fs::path& shard, hsize_t row, size_t n) {
  haddr_t addr = 0;
  hsize_t size = 0;
  {
    auto guard = h5::lock();
    h5::Handle file = h5::open_read(shard.string());
    h5::Handle ds = h5::open_dataset(file.get(), "images", shard.string());
    hsize_t offset[4] = {row, 0, 0, 0};
    unsigned mask = 0;
    ASSERT_GE(H5Dget_chunk_info_by_coord(ds.get(), offset, &mask, &addr, &size), 0);
  }
  ASSERT_GT(size, 20 + n);
  std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(addr + 20));
  const std::string zeros(n, '\0');
  f.write(zeros.data(), static_cast<std::streamsize>(n));
}

}  // namespace

TEST(VerifyTest, AnIntactStoreIsSound) {
  TempDir dir;
  write_store(dir.path().string(), 16, 4, 10);
  StoreReport r = verify_store(dir.path().string());
  EXPECT_TRUE(r.sound());
  EXPECT_EQ(r.shards, 3);
  EXPECT_EQ(r.samples, 10);
  EXPECT_EQ(r.samples_checked, 10);
  EXPECT_TRUE(r.per_image_checksums);
  EXPECT_TRUE(r.notes.empty());
}

TEST(VerifyTest, ZeroedBytesInsideAShardNameTheShardAndTheSample) {
  for (int compression : {0, 4}) {
    TempDir dir;
    write_store(dir.path().string(), 16, 4, 10, compression);
    zero_chunk_bytes(dir.path() / "shard-00001.h5", 2, compression ? 8 : 200);
    EXPECT_NO_THROW(Store(dir.path().string()));  // the open-time checks cannot see it
    StoreReport r = verify_store(dir.path().string());
    ASSERT_EQ(r.problems.size(), 1u) << compression;
    EXPECT_EQ(r.problems[0].file, "shard-00001.h5");
    EXPECT_EQ(r.problems[0].row, 2);
    EXPECT_EQ(r.problems[0].index, 6);
    EXPECT_EQ(r.problems[0].source, "dir/image_6.jpg");
  }
}

TEST(VerifyTest, CutMissingAndSwappedShardsAreEachNamed) {
  TempDir dir, other;
  write_store(dir.path().string(), 16, 4, 12);
  write_store(other.path().string(), 12, 4, 12);
  fs::resize_file(dir / "shard-00000.h5", fs::file_size(dir / "shard-00000.h5") / 2);
  fs::remove(dir / "shard-00001.h5");
  fs::copy_file(other / "shard-00002.h5", dir / "shard-00002.h5", fs::copy_options::overwrite_existing);
  std::ofstream(dir / "shard-00003.h5.tmp") << "left over";
  StoreReport r = verify_store(dir.path().string());
  ASSERT_EQ(r.problems.size(), 3u);
  EXPECT_EQ(r.problems[0].file, "shard-00000.h5");
  EXPECT_NE(r.problems[0].what.find("not a readable HDF5 file"), std::string::npos) << r.problems[0].what;
  EXPECT_EQ(r.problems[1].file, "shard-00001.h5");
  EXPECT_NE(r.problems[1].what.find("missing"), std::string::npos) << r.problems[1].what;
  EXPECT_EQ(r.problems[2].file, "shard-00002.h5");
  EXPECT_NE(r.problems[2].what.find("another conversion"), std::string::npos) << r.problems[2].what;
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_NE(r.notes[0].find("shard-00003.h5.tmp"), std::string::npos);
}

TEST(VerifyTest, AMissingOrBrokenManifestIsAProblemNotAnException) {
  TempDir dir;
  write_store(dir.path().string(), 8, 4, 4);
  std::ofstream(dir / "manifest.json") << "{\"format\": ";
  StoreReport r = verify_store(dir.path().string());
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0].file, "manifest.json");
  fs::remove(dir / "manifest.json");
  EXPECT_FALSE(verify_store(dir.path().string()).sound());
}

TEST(VerifyTest, TheCommandsExitStatusSaysWhetherTheStoreIsSound) {
  TempDir dir;
  write_store(dir.path().string(), 16, 4, 10);
  std::string log;
  const std::string cmd = starft::testing::starft_binary() + " verify " + dir.path().string();
  ASSERT_EQ(starft::testing::run_command(cmd, &log), 0) << log;
  EXPECT_NE(log.find("sound: 10 samples in 3 shards"), std::string::npos) << log;
  zero_chunk_bytes(dir.path() / "shard-00002.h5", 1, 100);
  EXPECT_EQ(starft::testing::run_command(cmd, &log), 1) << log;
  EXPECT_NE(log.find("shard-00002.h5 row 1 (sample 9) 'dir/image_9.jpg'"), std::string::npos) << log;
  EXPECT_NE(log.find("DAMAGED"), std::string::npos) << log;
}

// ---- per-sample field checksums (meta_crc32) ------------------------------------------------

namespace {

// Replaces the one occurrence of `from` in the file with `to` (same length), in place: what a
// tester did with a hex editor. Fails the test unless `from` occurs exactly once.
void replace_bytes(const fs::path& file, const std::string& from, const std::string& to) {
  ASSERT_EQ(from.size(), to.size());
  std::string bytes;
  {
    std::ifstream in(file, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const auto at = bytes.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  ASSERT_EQ(bytes.find(from, at + 1), std::string::npos) << from << " occurs more than once";
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(at));
  f.write(to.data(), static_cast<std::streamsize>(to.size()));
}

// XORs byte `byte` of the contiguous dataset `name` with `mask`, in place.
void flip_byte(const fs::path& shard, const std::string& name, size_t byte, uint8_t mask) {
  haddr_t offset = HADDR_UNDEF;
  {
    auto guard = h5::lock();
    h5::Handle file = h5::open_read(shard.string());
    h5::Handle ds = h5::open_dataset(file.get(), name, shard.string());
    offset = H5Dget_offset(ds.get());
  }
  ASSERT_NE(offset, HADDR_UNDEF) << name << " is not contiguous";
  std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset + byte));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ mask);
  f.seekp(static_cast<std::streamoff>(offset + byte));
  f.write(&c, 1);
}

// Turns `file` of the store in `dir` into a shard as written before meta_crc32 existed: the
// dataset removed, the checksum (attribute and manifest entry) over images then labels only.
void make_pre_field_checksum_shard(const fs::path& dir, const std::string& file) {
  const std::string path = (dir / file).string();
  std::string checksum;
  {
    auto guard = h5::lock();
    h5::Handle f(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    ASSERT_TRUE(f.valid());
    ASSERT_GE(H5Ldelete(f.get(), kMetaCrcDataset, H5P_DEFAULT), 0);
    h5::Handle crc_ds(H5Dopen2(f.get(), kImageCrcDataset, H5P_DEFAULT));
    h5::Handle labels_ds(H5Dopen2(f.get(), "labels", H5P_DEFAULT));
    const hsize_t n = h5::shape(crc_ds.get())[0], s = h5::shape(h5::open_dataset(f.get(), "images", path).get())[1];
    std::vector<uint32_t> crcs(n);
    std::vector<int64_t> labels(n);
    ASSERT_GE(H5Dread(crc_ds.get(), H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, crcs.data()), 0);
    ASSERT_GE(H5Dread(labels_ds.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels.data()), 0);
    uLong crc = crc32(0L, Z_NULL, 0);
    for (uint32_t c : crcs) crc = crc32_combine(crc, c, static_cast<z_off_t>(s * s * 3));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(labels.data()), static_cast<uInt>(n * 8));
    char text[20];
    std::snprintf(text, sizeof text, "crc32:%08x", static_cast<unsigned>(crc));
    checksum = text;
    ASSERT_GE(H5Adelete(f.get(), "checksum"), 0);
    h5::write_attribute(f.get(), "checksum", checksum);
  }
  Manifest m = Manifest::read(dir.string());
  for (auto& shard : m.shards)
    if (shard.file == file) shard.checksum = checksum;
  m.write(dir.string());
}

}  // namespace

TEST(VerifyTest, FieldChecksumsFollowTheDocumentedSerialisation) {
  TempDir dir;
  write_store(dir.path().string(), 8, 4, 4);
  const Manifest m = Manifest::read(dir.path().string());
  EXPECT_EQ(meta_crc_columns(m), (std::vector<std::string>{"label", "group", "attributes/place", "caption", "source"}));
  std::vector<uint32_t> table(4 * 5);
  std::string columns;
  {
    auto guard = h5::lock();
    const std::string path = (dir.path() / "shard-00000.h5").string();
    h5::Handle file = h5::open_read(path);
    h5::Handle ds = h5::open_dataset(file.get(), kMetaCrcDataset, path);
    EXPECT_EQ(h5::shape(ds.get()), (std::vector<hsize_t>{4, 5}));
    ASSERT_GE(H5Dread(ds.get(), H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, table.data()), 0);
    columns = h5::read_string_attribute(ds.get(), "columns", path);
  }
  EXPECT_EQ(columns, "label,group,attributes/place,caption,source");
  // Row 3: label 0 (int64 LE), group 3 and place 1 (int32 LE), caption and source as UTF-8.
  auto crc = [](const void* p, size_t n) {
    return static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), static_cast<const Bytef*>(p), static_cast<uInt>(n)));
  };
  const uint8_t label[8] = {0, 0, 0, 0, 0, 0, 0, 0}, group[4] = {3, 0, 0, 0}, place[4] = {1, 0, 0, 0};
  const std::string caption = "a photo of a caf\u00e9 \u2615 number 3", source = "dir/image_3.jpg";
  EXPECT_EQ(table[15], crc(label, 8));
  EXPECT_EQ(table[15], 0x6522df69u);  // the README's example
  EXPECT_EQ(table[16], crc(group, 4));
  EXPECT_EQ(table[17], crc(place, 4));
  EXPECT_EQ(table[18], crc(caption.data(), caption.size()));
  EXPECT_EQ(table[19], crc(source.data(), source.size()));
}

// The one problem verify_store must report: where (shard file, row, sample index, source; row -1
// for a shard-level problem) and a part of what it says.
static void expect_one_problem(const StoreReport& r, const std::string& file, int64_t row, int64_t index,
                               const std::string& source, const std::string& what_part) {
  ASSERT_EQ(r.problems.size(), 1u);
  const auto& p = r.problems[0];
  EXPECT_EQ(p.file, file);
  EXPECT_EQ(p.row, row);
  if (index >= 0) {
    EXPECT_EQ(p.index, index);
  }
  if (!source.empty()) {
    EXPECT_EQ(p.source, source);
  }
  EXPECT_NE(p.what.find(what_part), std::string::npos) << p.what;
}

TEST(VerifyTest, ASameLengthCaptionChangeNamesTheSampleAndTheField) {
  TempDir dir;
  write_store(dir.path().string(), 16, 4, 10);
  replace_bytes(dir / "shard-00001.h5", "\u2615 number 6", "\u2615 NUMBER 6");
  EXPECT_NO_THROW(Store(dir.path().string()));  // the open-time checks cannot see it
  StoreReport r = verify_store(dir.path().string());
  expect_one_problem(r, "shard-00001.h5", 2, 6, "dir/image_6.jpg",
                     "caption (now 'a photo of a caf\u00e9 \u2615 NUMBER 6')");
  EXPECT_EQ(r.problems[0].what.find("source"), std::string::npos) << r.problems[0].what;
  // Store::verify and the command say the same.
  std::string err = error_of([&] { Store(dir.path().string()).verify(); });
  EXPECT_NE(err.find("shard-00001.h5 row 2 (sample 6) 'dir/image_6.jpg': changed since conversion: caption"),
            std::string::npos)
      << err;
  std::string log;
  EXPECT_EQ(starft::testing::run_command(starft::testing::starft_binary() + " verify " + dir.path().string(), &log), 1)
      << log;
  EXPECT_NE(log.find("shard-00001.h5 row 2 (sample 6) 'dir/image_6.jpg': changed since conversion: caption"),
            std::string::npos)
      << log;
}

TEST(VerifyTest, AChangedSourceNamesTheSampleAndTheField) {
  TempDir dir;
  write_store(dir.path().string(), 16, 4, 10);
  replace_bytes(dir / "shard-00002.h5", "dir/image_9.jpg", "dir/image_Q.jpg");
  expect_one_problem(verify_store(dir.path().string()), "shard-00002.h5", 1, 9, "dir/image_Q.jpg",
                     "source (now 'dir/image_Q.jpg')");
}

TEST(VerifyTest, AFlippedLabelByteNamesTheSample) {
  TempDir dir;
  write_store(dir.path().string(), 16, 4, 10);
  flip_byte(dir / "shard-00001.h5", "labels", 2 * 8, 1);  // row 2 = sample 6: label 0 -> 1
  EXPECT_EQ(Store(dir.path().string()).labels()[6], 1);   // in range: the open-time checks pass
  expect_one_problem(verify_store(dir.path().string()), "shard-00001.h5", 2, 6, "dir/image_6.jpg",
                     "label (now 1 'dog')");
}

TEST(VerifyTest, ADamagedFieldChecksumTableIsNotBlamedOnTheSample) {
  TempDir dir;
  write_store(dir.path().string(), 16, 4, 10);
  flip_byte(dir / "shard-00000.h5", kMetaCrcDataset, (1 * 5 + 3) * 4, 0x10);  // row 1's caption entry
  expect_one_problem(verify_store(dir.path().string()), "shard-00000.h5", -1, -1, "",
                     "'meta_crc32' is damaged at 1 row(s) (first: row 1)");
}

TEST(VerifyTest, ShardsWrittenBeforeFieldChecksumsStillVerifyWithANote) {
  TempDir dir;
  write_store(dir.path().string(), 16, 4, 10);
  make_pre_field_checksum_shard(dir.path(), "shard-00001.h5");
  EXPECT_NO_THROW(Store(dir.path().string()).verify());
  StoreReport r = verify_store(dir.path().string());
  EXPECT_TRUE(r.sound());
  EXPECT_EQ(r.samples_checked, 10);
  EXPECT_EQ(r.shards_without_field_checksums, 1);
  EXPECT_NE(r.coverage.find("1 of 3 shards predate per-sample field checksums"), std::string::npos) << r.coverage;
  EXPECT_NE(r.coverage.find("captions, sources, groups and attributes are covered by no checksum"), std::string::npos)
      << r.coverage;
  std::string log;
  const std::string cmd = starft::testing::starft_binary() + " verify " + dir.path().string();
  ASSERT_EQ(starft::testing::run_command(cmd, &log), 0) << log;
  EXPECT_NE(log.find("predate per-sample field checksums"), std::string::npos) << log;
  EXPECT_NE(log.find("sound: 10 samples in 3 shards"), std::string::npos) << log;

  // What such a shard has is still checked: a label flip is found, though only per shard.
  flip_byte(dir / "shard-00001.h5", "labels", 2 * 8, 1);
  r = verify_store(dir.path().string());
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0].file, "shard-00001.h5");
  EXPECT_EQ(r.problems[0].row, -1);
  EXPECT_NE(r.problems[0].what.find("the labels changed"), std::string::npos) << r.problems[0].what;
  // ...while the new shards beside it still name their samples.
  replace_bytes(dir / "shard-00002.h5", "dir/image_9.jpg", "dir/image_Q.jpg");
  r = verify_store(dir.path().string());
  ASSERT_EQ(r.problems.size(), 2u);
  EXPECT_EQ(r.problems[1].index, 9);
}
