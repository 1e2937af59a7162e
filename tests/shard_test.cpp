// `starft shard`: the converters end to end through the command, with 1, 2 and 3 ranks.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "data/image.h"
#include "data/class_list.h"
#include "data/store.h"
#include "sharding/sources.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace starft;
using namespace starft::data;
using starft::testing::error_of;
using starft::testing::run_command;
using starft::testing::starft_binary;
using starft::testing::read_file;
using starft::testing::TempDir;
using starft::testing::write_file;

namespace {

cv::Mat pattern(int h, int w, int seed) {
  cv::Mat m(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      m.at<cv::Vec3b>(y, x) = cv::Vec3b((x * 3 + seed * 41) & 255, (y * 9 + seed * 13) & 255, ((x + y) * seed) & 255);
  return m;
}

// root/<class>/img_<k>.png|jpg for three classes, sizes varying, plus one corrupt file.
std::string make_folder_dataset(const TempDir& tmp, int per_class = 4) {
  fs::path root = tmp.path() / "data" / "val";
  int k = 0;
  for (const char* cls : {"zebra", "ant", "moth"}) {
    fs::create_directories(root / cls);
    for (int i = 0; i < per_class; ++i, ++k) {
      std::string ext = i % 2 ? ".jpg" : ".png";
      cv::imwrite((root / cls / ("img_" + std::to_string(i) + ext)).string(), pattern(30 + 5 * i, 50 - 3 * i, k));
    }
  }
  std::ofstream(root / "ant" / "broken.jpg") << "this is not a JPEG";
  return root.string();
}

std::string shard_cmd(const std::string& args) { return starft_binary() + " shard " + args; }

std::string mpirun_np(int np, const std::string& command) {
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np " + std::to_string(np) +
         " --oversubscribe --bind-to none " + command;
}

void expect_same_samples(const std::string& a_dir, const std::string& b_dir) {
  Store a(a_dir), b(b_dir);
  ASSERT_EQ(a.size(), b.size());
  for (int64_t i = 0; i < a.size(); ++i) {
    Sample x = a.get(i), y = b.get(i);
    EXPECT_EQ(cv::norm(x.image, y.image, cv::NORM_INF), 0) << i;
    EXPECT_EQ(x.label, y.label);
    EXPECT_EQ(x.source, y.source);
    EXPECT_EQ(x.caption, y.caption);
  }
}

}  // namespace

TEST(ShardTest, FolderConversionSkipsAndReportsCorruptImages) {
  TempDir tmp;
  std::string root = make_folder_dataset(tmp);
  std::string out = tmp / "store", log;
  ASSERT_EQ(run_command(shard_cmd("--from folder --input " + root + " --out " + out +
                                  " --image-size 32 --shard-size 5 --workers 2"),
                        &log),
            0)
      << log;
  EXPECT_NE(log.find("ant/broken.jpg"), std::string::npos) << log;
  EXPECT_NE(log.find("1 image(s) skipped"), std::string::npos) << log;
  Store store(out);
  const Manifest& m = store.manifest();
  EXPECT_EQ(m.split, "val");
  EXPECT_EQ(m.dataset, "data");
  EXPECT_EQ(m.class_names, (std::vector<std::string>{"ant", "moth", "zebra"}));
  EXPECT_TRUE(m.class_ids.empty());
  ASSERT_EQ(m.skipped.size(), 1u);
  EXPECT_EQ(m.skipped[0].source, "ant/broken.jpg");
  ASSERT_EQ(store.size(), 12);
  // 13 items in shards of 5: the first shard lost the corrupt image.
  ASSERT_EQ(m.shards.size(), 3u);
  EXPECT_EQ(m.shards[0].count, 4);
  // Sorted by relative path; stored pixels are the fitted decoded file (PNG is lossless).
  EXPECT_EQ(store.source(0), "ant/img_0.png");
  EXPECT_EQ(store.source(4), "moth/img_0.png");
  EXPECT_EQ(store.labels()[4], 1);
  cv::Mat want = fit_square(read_image_rgb(root + "/moth/img_0.png"), 32);
  EXPECT_EQ(cv::norm(store.get(4).image, want, cv::NORM_INF), 0);
  EXPECT_NO_THROW(store.verify());
}

TEST(ShardTest, StrictStopsAtTheCorruptImage) {
  TempDir tmp;
  std::string root = make_folder_dataset(tmp);
  std::string out = tmp / "store", log;
  EXPECT_NE(
      run_command(shard_cmd("--from folder --input " + root + " --out " + out + " --image-size 16 --strict"), &log), 0);
  EXPECT_NE(log.find("ant/broken.jpg"), std::string::npos) << log;
  EXPECT_NE(log.find("--strict"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(fs::path(out) / "manifest.json"));
  for (const auto& e : fs::directory_iterator(out)) ADD_FAILURE() << "left behind: " << e.path();
}

TEST(ShardTest, NonEmptyOutputIsRefusedWithoutOverwrite) {
  TempDir tmp;
  std::string root = make_folder_dataset(tmp, 2);
  std::string out = tmp / "store", log;
  std::string cmd = shard_cmd("--from folder --input " + root + " --out " + out);
  ASSERT_EQ(run_command(cmd + " --image-size 16", &log), 0) << log;
  EXPECT_NE(run_command(cmd + " --image-size 16", &log), 0);
  EXPECT_NE(log.find("not empty"), std::string::npos) << log;
  EXPECT_NE(log.find("--overwrite"), std::string::npos) << log;
  ASSERT_EQ(run_command(cmd + " --overwrite --image-size 8", &log), 0) << log;
  EXPECT_EQ(Store(out).image_size(), 8);
}

TEST(ShardTest, OneTwoAndThreeRanksWriteTheSameStore) {
  TempDir tmp;
  std::string root = make_folder_dataset(tmp, 5);
  std::string args = "--from folder --input " + root + " --image-size 24 --shard-size 2 --workers 1 --out ";
  std::string log;
  ASSERT_EQ(run_command(shard_cmd(args + (tmp / "one")), &log), 0) << log;
  for (int np : {2, 3}) {
    std::string out = tmp / ("ranks" + std::to_string(np));
    ASSERT_EQ(run_command(mpirun_np(np, shard_cmd(args + out)), &log), 0) << log;
    // The manifest (shard files, counts, checksums, skipped list) is identical byte for byte.
    EXPECT_EQ(read_file(fs::path(out) / "manifest.json"), read_file(tmp.path() / "one" / "manifest.json"));
    expect_same_samples(tmp / "one", out);
  }
}

TEST(ShardTest, StrictFailureOnAnyRankEndsTheJob) {
  TempDir tmp;
  std::string root = make_folder_dataset(tmp, 3);
  // With shards of 2 the corrupt ant/broken.jpg (item 0) is in shard 0 (rank 0), and moving it
  // to the last class puts it on rank 1's shard: both must end the whole job.
  for (const char* cls : {"ant", "zebra"}) {
    if (std::string(cls) == "zebra")
      fs::rename(fs::path(root) / "ant" / "broken.jpg", fs::path(root) / "zebra" / "broken.jpg");
    std::string out = tmp / (std::string("strict_") + cls), log;
    EXPECT_NE(run_command(mpirun_np(2, shard_cmd("--from folder --input " + root + " --out " + out +
                                                 " --image-size 8 --shard-size 2 --strict")),
                          &log),
              0);
    EXPECT_NE(log.find(std::string(cls) + "/broken.jpg"), std::string::npos) << log;
    EXPECT_FALSE(fs::exists(fs::path(out) / "manifest.json"));
  }
}

TEST(ShardTest, FolderWithWordNetMapping) {
  TempDir tmp;
  fs::path root = tmp.path() / "train";
  for (const char* wnid : {"n01440764", "n01443537"}) {
    fs::create_directories(root / wnid);
    cv::imwrite((root / wnid / "a.png").string(), pattern(20, 20, 1));
  }
  std::ofstream(tmp / "LOC_synset_mapping.txt") << "n01440764 tench, Tinca tinca\n"
                                                   "n01443537 goldfish, Carassius auratus\n"
                                                   "n01484850 great white shark, white shark\n";
  std::string out = tmp / "store", log;
  ASSERT_EQ(run_command(shard_cmd("--from folder --input " + root.string() + " --out " + out + " --image-size 8 " +
                                  "--class-names " + (tmp / "LOC_synset_mapping.txt") + " --dataset imagenet"),
                        &log),
            0)
      << log;
  Manifest m = Manifest::read(out);
  EXPECT_EQ(m.dataset, "imagenet");
  EXPECT_EQ(m.split, "train");
  EXPECT_EQ(m.class_names, (std::vector<std::string>{"tench", "goldfish"}));
  EXPECT_EQ(m.class_ids, (std::vector<std::string>{"n01440764", "n01443537"}));

  // A folder the mapping does not know is an error naming it.
  fs::create_directories(root / "n99999999");
  cv::imwrite((root / "n99999999" / "a.png").string(), pattern(20, 20, 2));
  EXPECT_NE(run_command(shard_cmd("--from folder --input " + root.string() + " --out " + (tmp / "x") +
                                  " --class-names " + (tmp / "LOC_synset_mapping.txt")),
                        &log),
            0);
  EXPECT_NE(log.find("n99999999"), std::string::npos) << log;
}

TEST(ShardTest, CsvWithTitlesBecomesCaptions) {
  TempDir tmp;
  fs::create_directories(tmp.path() / "imgs");
  for (int i = 0; i < 3; ++i) cv::imwrite(tmp / ("imgs/" + std::to_string(i) + ".png"), pattern(16, 16, i));
  std::ofstream(tmp / "train.csv") << "filepath\ttitle\tlabel\n"
                                      "imgs/0.png\ta photo of a tench.\t0\n"
                                      "imgs/1.png\t\"a \"\"quoted\"\" goldfish\"\t1\n"
                                      "imgs/2.png\ta photo of a shark.\t2\n";
  std::ofstream(tmp / "names.txt") << "tench\ngoldfish\ngreat white shark\n";
  std::string out = tmp / "store", log;
  ASSERT_EQ(run_command(shard_cmd("--from csv --input " + (tmp / "train.csv") + " --class-names " +
                                  (tmp / "names.txt") + " --out " + out + " --image-size 16"),
                        &log),
            0)
      << log;
  Store store(out);
  ASSERT_EQ(store.size(), 3);
  EXPECT_TRUE(store.manifest().has_captions);
  EXPECT_EQ(store.caption(0), "a photo of a tench.");
  EXPECT_EQ(store.caption(1), "a \"quoted\" goldfish");
  EXPECT_EQ(store.labels()[2], 2);
  EXPECT_EQ(store.manifest().class_names[2], "great white shark");
  EXPECT_EQ(store.source(1), "imgs/1.png");

  std::ofstream(tmp / "bad.csv") << "filepath\ttitle\tlabel\nimgs/0.png\tx\tseven\n";
  EXPECT_NE(run_command(shard_cmd("--from csv --input " + (tmp / "bad.csv") + " --out " + (tmp / "o2")), &log), 0);
  EXPECT_NE(log.find("label 'seven' is not an integer"), std::string::npos) << log;
}

TEST(ShardTest, WaterbirdsSplitsGroupsAndPlaces) {
  TempDir tmp;
  fs::path root = tmp.path() / "waterbird_complete95_forest2water2";
  fs::create_directories(root / "001.Albatross");
  std::ofstream meta(root / "metadata.csv");
  meta << "img_id,img_filename,y,split,place,place_filename\n";
  // (y, split, place) for 8 images.
  int rows[8][3] = {{0, 0, 0}, {0, 0, 1}, {1, 0, 0}, {1, 0, 1}, {1, 1, 1}, {0, 1, 0}, {1, 2, 0}, {0, 2, 1}};
  for (int i = 0; i < 8; ++i) {
    std::string file = "001.Albatross/bird_" + std::to_string(i) + ".png";
    cv::imwrite((root / file).string(), pattern(24, 30, i));
    meta << i + 1 << "," << file << "," << rows[i][0] << "," << rows[i][1] << "," << rows[i][2] << ",/x/y.jpg\n";
  }
  meta.close();
  std::string out = tmp / "wb", log;
  ASSERT_EQ(
      run_command(shard_cmd("--from waterbirds --input " + root.string() + " --out " + out + " --image-size 16"), &log),
      0)
      << log;
  Store train(out + "/train"), val(out + "/val"), test(out + "/test");
  EXPECT_EQ(train.size(), 4);
  EXPECT_EQ(val.size(), 2);
  EXPECT_EQ(test.size(), 2);
  EXPECT_EQ(train.manifest().class_names, (std::vector<std::string>{"landbird", "waterbird"}));
  EXPECT_EQ(train.manifest().attribute_names, (std::vector<std::string>{"place"}));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(train.labels()[i], rows[i][0]);
    EXPECT_EQ(train.attribute("place")[i], rows[i][2]);
    EXPECT_EQ(train.groups()[i], 2 * rows[i][0] + rows[i][2]);
  }
  EXPECT_EQ(test.groups()[0], 2);  // waterbird on land
  EXPECT_EQ(test.manifest().group_names[2], "waterbird on land");
  EXPECT_EQ(val.source(0), "001.Albatross/bird_4.png");
}

namespace {
void write_idx(const std::string& path, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  gzFile f = gzopen(path.c_str(), "wb");
  auto put = [&](uint32_t v) {
    unsigned char b[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
    gzwrite(f, b, 4);
  };
  put(0x0800 | static_cast<uint32_t>(dims.size()));
  for (auto d : dims) put(d);
  gzwrite(f, data.data(), static_cast<unsigned>(data.size()));
  gzclose(f);
}
}  // namespace

TEST(ShardTest, FashionMnistIdxFiles) {
  TempDir tmp;
  std::string dir = tmp / "fm";
  fs::create_directories(dir);
  auto images = [](int n) {
    std::vector<uint8_t> px(n * 28 * 28);
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 7);
    return px;
  };
  write_idx(dir + "/train-images-idx3-ubyte.gz", {5, 28, 28}, images(5));
  write_idx(dir + "/train-labels-idx1-ubyte.gz", {5}, {9, 0, 3, 5, 1});
  write_idx(dir + "/t10k-images-idx3-ubyte.gz", {2, 28, 28}, images(2));
  write_idx(dir + "/t10k-labels-idx1-ubyte.gz", {2}, {2, 8});
  std::string out = tmp / "store", log;
  ASSERT_EQ(run_command(shard_cmd("--from fashion-mnist --input " + dir + " --out " + out + " --image-size 28"), &log),
            0)
      << log;
  Store train(out + "/train"), test(out + "/test");
  ASSERT_EQ(train.size(), 5);
  ASSERT_EQ(test.size(), 2);
  EXPECT_EQ(train.manifest().class_names[9], "Ankle boot");
  EXPECT_EQ(train.labels(), (std::vector<int64_t>{9, 0, 3, 5, 1}));
  EXPECT_EQ(test.source(1), "test/00001");
  Sample s = train.get(1);
  auto px = images(5);
  for (int y = 0; y < 28; ++y)
    for (int x = 0; x < 28; ++x) {
      uint8_t v = px[28 * 28 + y * 28 + x];
      ASSERT_EQ(s.image.at<cv::Vec3b>(y, x), cv::Vec3b(v, v, v));
    }
  // --split writes only that split; an unknown one is refused.
  ASSERT_EQ(run_command(shard_cmd("--from fashion-mnist --input " + dir + " --out " + (tmp / "only") + " --split test"),
                        &log),
            0)
      << log;
  EXPECT_TRUE(fs::exists(tmp.path() / "only" / "test" / "manifest.json"));
  EXPECT_FALSE(fs::exists(tmp.path() / "only" / "train"));
  EXPECT_NE(
      run_command(shard_cmd("--from fashion-mnist --input " + dir + " --out " + (tmp / "o3") + " --split dev"), &log),
      0);
  EXPECT_NE(log.find("'dev' is not one of"), std::string::npos) << log;
}

TEST(ShardTest, BadOptionsAreExplained) {
  TempDir tmp;
  std::string log;
  EXPECT_NE(run_command(shard_cmd("--from tarball --input x --out " + (tmp / "o")), &log), 0);
  EXPECT_NE(log.find("'tarball' is not a known source"), std::string::npos) << log;
  EXPECT_NE(run_command(
                shard_cmd("--from folder --input " + tmp.path().string() + " --out " + (tmp / "o") + " --image-size 0"),
                &log),
            0);
  EXPECT_NE(log.find("--image-size 0"), std::string::npos) << log;
  EXPECT_NE(run_command(shard_cmd("--from folder --input " + (tmp / "nothing") + " --out " + (tmp / "o")), &log), 0);
  EXPECT_NE(log.find("not a directory"), std::string::npos) << log;
  EXPECT_NE(run_command(shard_cmd("--from folder"), &log), 0);
  EXPECT_NE(log.find("--out"), std::string::npos) << log;
  ASSERT_EQ(run_command(shard_cmd("--help"), &log), 0);
  EXPECT_NE(log.find("--strict"), std::string::npos) << log;
  EXPECT_NE(log.find("--workers"), std::string::npos) << log;
  EXPECT_EQ(log.find("--threads"), std::string::npos) << log;
}

// The decode threads were --threads; published scripts still pass it, so it is read as --workers
// with a warning naming --workers, on the command line and in a --config file.
TEST(ShardTest, ThreadsIsReadAsWorkersWithAWarning) {
  TempDir tmp;
  std::string log;
  run_command(shard_cmd("--from folder --input " + tmp.path().string() + " --out " + (tmp / "o") + " --threads 2"),
              &log);
  EXPECT_NE(log.find("--threads is deprecated: read as --workers"), std::string::npos) << log;
  EXPECT_EQ(log.find("was renamed"), std::string::npos) << log;
  std::ofstream(tmp / "old.ini") << "threads = 2\n";
  run_command(shard_cmd("--from folder --input " + tmp.path().string() + " --out " + (tmp / "o") + " --config " +
                        (tmp / "old.ini")),
              &log);
  EXPECT_NE(log.find("old.ini"), std::string::npos) << log;
  EXPECT_NE(log.find("read as --workers"), std::string::npos) << log;
  std::ofstream(tmp / "bad.ini") << "threads = many\n";
  EXPECT_NE(run_command(shard_cmd("--from folder --input " + tmp.path().string() + " --out " + (tmp / "o") +
                                  " --config " + (tmp / "bad.ini")),
                        &log),
            0);
  EXPECT_NE(log.find("workers"), std::string::npos) << log;
}

// ---- real-world files (issue 14) -------------------------------------------------------------

namespace {

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A photo-like image (gradients and noise), so JPEG entropy data spans many bytes.
cv::Mat photo(int h, int w, int seed) {
  cv::Mat m = pattern(h, w, seed);
  cv::Mat noise(h, w, CV_8UC3);
  cv::randu(noise, 0, 40);
  return m + noise;
}

std::string jpeg(const cv::Mat& rgb, bool progressive = false, bool grey = false) {
  std::vector<uchar> buf;
  cv::Mat img;
  if (grey)
    cv::cvtColor(rgb, img, cv::COLOR_RGB2GRAY);
  else
    cv::cvtColor(rgb, img, cv::COLOR_RGB2BGR);
  cv::imencode(".jpg", img, buf, {cv::IMWRITE_JPEG_QUALITY, 92, cv::IMWRITE_JPEG_PROGRESSIVE, progressive ? 1 : 0});
  return std::string(buf.begin(), buf.end());
}

// `rgb` encoded by OpenCV as `ext` (".png", ".bmp", ".tiff", ".webp", ".ppm", ".pgm" as grey, ...).
std::string encoded(const cv::Mat& rgb, const std::string& ext, const std::vector<int>& params = {}) {
  std::vector<uchar> buf;
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, ext == ".pgm" ? cv::COLOR_RGB2GRAY : cv::COLOR_RGB2BGR);
  cv::imencode(ext, bgr, buf, params);
  return std::string(buf.begin(), buf.end());
}

std::string png(const cv::Mat& rgb) { return encoded(rgb, ".png"); }

// What tests/fuzz found aborting the process inside OpenCV's GDCM decoder (gdcmReader.cxx:
// "Assertion `is.good()' failed"): a damaged PNG signature, then "DICM" at byte 128.
std::string fuzz_dicom_crash() {
  return std::string("\x89PNG\xc3j\r\xba\x1a", 9) + std::string(118, '\xff') + "\nDICM\t\\";
}

// A good TIFF whose bytes 128..131 also read "DICM" (in its pixel data), as TIFF/DICOM
// dual-format files have.
std::string tiff_with_dicom_preamble(const cv::Mat& rgb) {
  std::string t = encoded(rgb, ".tiff", {cv::IMWRITE_TIFF_COMPRESSION, 1});
  t.replace(128, 4, "DICM");
  return t;
}

// `jpg` with an EXIF APP1 segment holding only an orientation tag, inserted after SOI.
std::string with_exif_orientation(const std::string& jpg, int orientation) {
  std::string tiff = std::string("II*\0", 4) + std::string("\x08\0\0\0", 4) + std::string("\x01\0", 2);
  tiff += std::string("\x12\x01\x03\0\x01\0\0\0", 8) + static_cast<char>(orientation) + std::string("\0\0\0", 3);
  tiff += std::string("\0\0\0\0", 4);  // no next IFD
  const std::string payload = std::string("Exif\0\0", 6) + tiff;
  const size_t len = payload.size() + 2;
  std::string app1 = std::string("\xFF\xE1", 2) + static_cast<char>(len >> 8) + static_cast<char>(len & 255) + payload;
  return jpg.substr(0, 2) + app1 + jpg.substr(2);
}

// Every kind of unusable file, each beside good images of the same kinds.
struct DamagedSet {
  std::string root;
  std::vector<std::string> bad;   // relative paths, sorted
  std::vector<std::string> good;  // relative paths, sorted
};

DamagedSet make_damaged_set(const TempDir& tmp) {
  DamagedSet set;
  fs::path root = tmp.path() / "web" / "train";
  const cv::Mat a = photo(90, 120, 1), b = photo(64, 64, 2);
  const std::string base = jpeg(a), prog = jpeg(a, true), grey = jpeg(b, false, true), pngs = png(b);
  auto put = [&](const std::string& rel, const std::string& bytes, bool good) {
    write_file(root / rel, bytes);
    (good ? set.good : set.bad).push_back(rel);
  };
  put("bird/a_good.jpg", base, true);
  put("bird/b_progressive.jpg", prog, true);
  put("bird/c_grey.jpg", grey, true);
  put("bird/d_png_named.JPEG", pngs, true);
  put("bird/e_good.png", pngs, true);
  put("bird/f_rotated.jpg", with_exif_orientation(base, 6), true);
  put("fish/cut_baseline.jpg", base.substr(0, base.size() * 4 / 10), false);
  put("fish/cut_progressive.jpg", prog.substr(0, prog.size() * 6 / 10), false);
  put("fish/cut_before_eoi.jpg", base.substr(0, base.size() - 2), false);
  put("fish/cut_rotated.jpg", with_exif_orientation(base, 6).substr(0, base.size() / 2), false);
  put("fish/extraneous_bytes.jpg", base.substr(0, base.size() - 2) + std::string(40, '\x17') + "\xFF\xD9", false);
  put("fish/empty.jpg", "", false);
  put("fish/html_page.jpg", "<html><body>404 Not Found</body></html>\n", false);
  put("fish/cut.png", pngs.substr(0, pngs.size() * 4 / 10), false);
  put("fish/cut_in_iend.png", pngs.substr(0, pngs.size() - 6), false);
  put("fish/dicom_crash.png", fuzz_dicom_crash(), false);
  put("fish/dicom_preamble.tiff", tiff_with_dicom_preamble(b), false);
  put("fish/gif_named.png", std::string("GIF89a\x01\0\x01\0\0\0\0;", 13), false);
  put("fish/z_good.jpg", base, true);
  std::sort(set.bad.begin(), set.bad.end());
  std::sort(set.good.begin(), set.good.end());
  set.root = root.string();
  return set;
}

}  // namespace

TEST(ShardTest, EveryImageThatDoesNotDecodeCompletelyIsSkippedByPath) {
  TempDir tmp;
  const DamagedSet set = make_damaged_set(tmp);
  std::string out = tmp / "store", log;
  ASSERT_EQ(run_command(shard_cmd("--from folder --input " + set.root + " --out " + out + " --image-size 32"), &log), 0)
      << log;
  Store store(out);
  const Manifest& m = store.manifest();
  std::vector<std::string> skipped, stored;
  for (const auto& s : m.skipped) skipped.push_back(s.source);
  std::sort(skipped.begin(), skipped.end());
  EXPECT_EQ(skipped, set.bad);
  for (int64_t i = 0; i < store.size(); ++i) stored.push_back(store.source(i));
  EXPECT_EQ(stored, set.good);
  std::map<std::string, std::string> reason;
  for (const auto& s : m.skipped) reason[s.source] = s.reason;
  EXPECT_NE(reason["fish/cut_baseline.jpg"].find("Premature end of JPEG file"), std::string::npos);
  EXPECT_NE(reason["fish/cut_progressive.jpg"].find("Premature end of JPEG file"), std::string::npos);
  EXPECT_NE(reason["fish/cut_before_eoi.jpg"].find("Premature end of JPEG file"), std::string::npos);
  EXPECT_NE(reason["fish/extraneous_bytes.jpg"].find("extraneous bytes"), std::string::npos);
  EXPECT_NE(reason["fish/empty.jpg"].find("empty file (0 bytes)"), std::string::npos);
  EXPECT_NE(reason["fish/html_page.jpg"].find("not an image"), std::string::npos);
  EXPECT_NE(reason["fish/html_page.jpg"].find("<html>"), std::string::npos);
  EXPECT_NE(reason["fish/cut.png"].find("damaged PNG, cut short"), std::string::npos);
  EXPECT_NE(reason["fish/cut_in_iend.png"].find("damaged PNG"), std::string::npos);
  EXPECT_NE(reason["fish/dicom_crash.png"].find("not an image starft reads"), std::string::npos);
  EXPECT_NE(reason["fish/dicom_preamble.tiff"].find("starts as TIFF but carries DICOM's signature"), std::string::npos);
  EXPECT_NE(reason["fish/gif_named.png"].find("\"GIF89a"), std::string::npos);
  for (const auto& [source, why] : reason) EXPECT_NE(why.find(source), std::string::npos) << why;  // names the file
  EXPECT_NE(log.find(std::to_string(set.bad.size()) + " image(s) skipped"), std::string::npos) << log;
  // The stored good images are the decoded files' pixels.
  for (int64_t i = 0; i < store.size(); ++i) {
    const cv::Mat want = fit_square(read_image_rgb(set.root + "/" + store.source(i)), 32);
    EXPECT_EQ(cv::norm(store.get(i).image, want, cv::NORM_INF), 0) << store.source(i);
  }
}

TEST(ShardTest, StrictFailsNamingEachKindOfDamagedImage) {
  TempDir tmp;
  const DamagedSet set = make_damaged_set(tmp);
  for (const auto& bad : set.bad) {
    // One class folder holding a good JPEG and this one damaged file only.
    TempDir one;
    fs::path root = one.path() / "in";
    write_file(root / "c" / "a_good.jpg", file_bytes(fs::path(set.root) / "bird" / "a_good.jpg"));
    fs::copy_file(fs::path(set.root) / bad, root / "c" / fs::path(bad).filename());
    std::string out = one / "out", log;
    EXPECT_NE(
        run_command(shard_cmd("--from folder --input " + root.string() + " --out " + out + " --image-size 16 --strict"),
                    &log),
        0)
        << bad;
    EXPECT_NE(log.find("c/" + fs::path(bad).filename().string()), std::string::npos) << log;
    EXPECT_NE(log.find("--strict"), std::string::npos) << log;
    EXPECT_FALSE(fs::exists(fs::path(out) / "manifest.json")) << bad;
  }
}

TEST(ShardTest, DecodedPixelsEqualOpenCvForEveryOrientationAndColourKind) {
  TempDir tmp;
  const cv::Mat a = photo(40, 70, 3);
  auto opencv = [](const std::string& path) {
    cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR), rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    return rgb;
  };
  std::vector<std::pair<std::string, std::string>> files = {
      {"base.jpg", jpeg(a)},
      {"prog.jpg", jpeg(a, true)},
      {"grey.jpg", jpeg(a, false, true)},
      {"p.JPEG", png(a)},
      {"b.bmp", encoded(a, ".bmp")},
      {"t.tiff", encoded(a, ".tiff")},
      {"w.webp", encoded(a, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101})},
      {"p.ppm", encoded(a, ".ppm")},
      {"g.pgm", encoded(a, ".pgm")},
      {"a.ppm", encoded(a, ".ppm", {cv::IMWRITE_PXM_BINARY, 0})}};
  for (int o = 1; o <= 8; ++o)
    files.push_back({"exif" + std::to_string(o) + ".jpg", with_exif_orientation(jpeg(a), o)});
  for (const auto& [name, bytes] : files) {
    write_file(tmp.path() / name, bytes);
    const cv::Mat got = read_image_rgb(tmp / name), want = opencv(tmp / name);
    ASSERT_EQ(got.size(), want.size()) << name;
    EXPECT_EQ(cv::norm(got, want, cv::NORM_INF), 0) << name;
  }
  EXPECT_EQ(read_image_rgb(tmp / "exif6.jpg").size(), cv::Size(40, 70));  // rotated 90 degrees
}

TEST(ShardTest, ImageFormatIsReadFromTheFirstBytes) {
  const cv::Mat a = photo(9, 7, 4);
  EXPECT_EQ(image_format(jpeg(a)), ImageFormat::jpeg);
  EXPECT_EQ(image_format(png(a)), ImageFormat::png);
  EXPECT_EQ(image_format(encoded(a, ".bmp")), ImageFormat::bmp);
  EXPECT_EQ(image_format(encoded(a, ".webp")), ImageFormat::webp);
  EXPECT_EQ(image_format(encoded(a, ".tiff")), ImageFormat::tiff);
  EXPECT_EQ(image_format(encoded(a, ".ppm")), ImageFormat::pnm);
  EXPECT_EQ(image_format(encoded(a, ".pgm")), ImageFormat::pnm);
  for (const std::string& other : {std::string(""), std::string("\xFF\xD8", 2), fuzz_dicom_crash(),
                                   std::string("GIF89a"), std::string("P7\nWIDTH 1\n"), std::string("RIFF\0\0\0\0WAVE"),
                                   std::string("\x76\x2f\x31\x01", 4), std::string(128, '\0') + "DICM"})
    EXPECT_EQ(image_format(other), ImageFormat::unknown) << other.size() << " bytes";
}

TEST(ShardTest, ExifOrientationParserStaysInsideItsBuffer) {
  const std::string good = with_exif_orientation(jpeg(photo(8, 8, 1)), 6).substr(6);  // the APP1 payload
  const auto* p = reinterpret_cast<const uint8_t*>(good.data());
  EXPECT_EQ(exif_orientation(p, 6 + 8 + 2 + 12 + 4), 6);
  for (size_t n = 0; n < 6 + 8 + 2 + 12; ++n) EXPECT_EQ(exif_orientation(p, n), 0) << n;  // cut anywhere: none
  std::string big_count = good;
  big_count[6 + 8] = '\xFF';  // 255 entries claimed, one present
  EXPECT_EQ(exif_orientation(reinterpret_cast<const uint8_t*>(big_count.data()), 6 + 8 + 2 + 12 + 4), 6);
}

TEST(ShardTest, HiddenFilesAndFoldersAreSkippedAtEveryDepth) {
  TempDir tmp;
  fs::path root = tmp.path() / "train";
  const std::string img = png(pattern(12, 12, 1));
  write_file(root / "cat" / "a.png", img);
  write_file(root / "cat" / "sub" / "b.png", img);
  write_file(root / "dog" / "c.png", img);
  write_file(root / ".ipynb_checkpoints" / "stale.png", img);                 // hidden class folder
  write_file(root / "cat" / ".ipynb_checkpoints" / "a-checkpoint.png", img);  // hidden folder in a class
  write_file(root / "cat" / "sub" / ".cache" / "deep" / "x.png", img);        // two levels further down
  write_file(root / "dog" / "._c.png", "\0\5\26\7AppleDouble");               // AppleDouble file
  write_file(root / ".DS_Store", "\0\0\0\1Bud1");
  write_file(root / "dog" / ".DS_Store", "\0\0\0\1Bud1");
  write_file(root / "dog" / "Thumbs.db", "\xd0\xcf\x11\xe0");
  std::string out = tmp / "store", log;
  ASSERT_EQ(
      run_command(shard_cmd("--from folder --input " + root.string() + " --out " + out + " --image-size 8"), &log), 0)
      << log;
  Store store(out);
  EXPECT_EQ(store.manifest().class_names, (std::vector<std::string>{"cat", "dog"}));
  ASSERT_EQ(store.size(), 3);
  EXPECT_EQ(store.source(0), "cat/a.png");
  EXPECT_EQ(store.source(1), "cat/sub/b.png");
  EXPECT_EQ(store.source(2), "dog/c.png");
  EXPECT_TRUE(store.manifest().skipped.empty());
  EXPECT_NE(log.find("hidden"), std::string::npos) << log;
}

TEST(ShardTest, ImagesBesideClassFoldersAndClassesWithoutFolderAreReported) {
  TempDir tmp;
  const std::string img = png(pattern(12, 12, 1));
  std::ofstream(tmp / "LOC_synset_mapping.txt") << "n01440764 tench, Tinca tinca\n"
                                                   "n01443537 goldfish, Carassius auratus\n"
                                                   "n01484850 great white shark, white shark\n";
  const std::string names = " --class-names " + (tmp / "LOC_synset_mapping.txt");
  std::string log;
  // ImageNet's val as it unpacks: every image flat, no class folder.
  fs::path flat = tmp.path() / "val_flat";
  for (int i = 1; i <= 4; ++i) write_file(flat / ("ILSVRC2012_val_0000000" + std::to_string(i) + ".JPEG"), img);
  EXPECT_NE(run_command(shard_cmd("--from folder --input " + flat.string() + names + " --out " + (tmp / "o1")), &log),
            0);
  EXPECT_NE(log.find("4 image files"), std::string::npos) << log;
  EXPECT_NE(log.find("no class sub-folders"), std::string::npos) << log;
  EXPECT_NE(log.find("LOC_val_solution.csv"), std::string::npos) << log;
  // Half sorted: 1 image moved into its class folder, 3 still beside it.
  fs::path half = tmp.path() / "val_half";
  fs::copy(flat, half);
  fs::create_directories(half / "n01440764");
  fs::rename(half / "ILSVRC2012_val_00000001.JPEG", half / "n01440764" / "ILSVRC2012_val_00000001.JPEG");
  EXPECT_NE(run_command(shard_cmd("--from folder --input " + half.string() + names + " --out " + (tmp / "o2")), &log),
            0);
  EXPECT_NE(log.find("3 image file(s) lie beside the 1 class folders"), std::string::npos) << log;
  EXPECT_NE(log.find("ILSVRC2012_val_00000002.JPEG"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(tmp.path() / "o2" / "manifest.json"));
  // Sorted: the 2 listed classes without a folder are named in a warning.
  for (int i = 2; i <= 4; ++i) fs::remove(half / ("ILSVRC2012_val_0000000" + std::to_string(i) + ".JPEG"));
  ASSERT_EQ(run_command(shard_cmd("--from folder --input " + half.string() + names + " --out " + (tmp / "o3")), &log),
            0)
      << log;
  EXPECT_NE(log.find("lists 2 class(es) with no folder"), std::string::npos) << log;
  EXPECT_NE(log.find("n01443537 (goldfish)"), std::string::npos) << log;
  EXPECT_NE(log.find("n01484850 (great white shark)"), std::string::npos) << log;
}

TEST(ShardTest, CsvAndClassListsWithByteOrderMarksCrlfCommasAndFloatLabels) {
  TempDir tmp;
  for (int i = 0; i < 2; ++i) write_file(tmp.path() / "images" / (std::to_string(i) + ".png"), png(pattern(16, 16, i)));
  const std::string bom = "\xEF\xBB\xBF";
  write_file(tmp.path() / "names.txt", bom + "tench\r\ngoldfish\r\n");
  const std::map<std::string, std::string> files = {
      {"bom.tsv", bom + "title\tfilepath\tlabel\na tench\timages/0.png\t0\na goldfish\timages/1.png\t1\n"},
      {"crlf.tsv", "title\tfilepath\tlabel\r\na tench\timages/0.png\t0\r\na goldfish\timages/1.png\t1\r\n"},
      {"bomcrlf.tsv", bom + "title\tfilepath\tlabel\r\na tench\timages/0.png\t0\r\na goldfish\timages/1.png\t1\r\n"},
      {"comma.csv", "title,filepath,label\na tench,images/0.png,0\na goldfish,images/1.png,1\n"},
      {"float.tsv", "\ttitle\tfilepath\tlabel\n0\ta tench\timages/0.png\t0.0\n1\ta goldfish\timages/1.png\t1.0\n"},
  };
  for (const auto& [name, text] : files) {
    write_file(tmp.path() / name, text);
    std::string out = tmp / ("store-" + name), log;
    ASSERT_EQ(run_command(shard_cmd("--from csv --input " + (tmp / name) + " --class-names " + (tmp / "names.txt") +
                                    " --out " + out + " --image-size 8"),
                          &log),
              0)
        << name << ": " << log;
    Store store(out);
    ASSERT_EQ(store.size(), 2) << name;
    EXPECT_EQ(store.caption(0), "a tench") << name;
    EXPECT_EQ(store.caption(1), "a goldfish") << name;
    EXPECT_EQ(store.source(1), "images/1.png") << name;
    EXPECT_EQ(store.labels(), (std::vector<int64_t>{0, 1})) << name;
    EXPECT_EQ(store.manifest().class_names, (std::vector<std::string>{"tench", "goldfish"})) << name;
  }
  std::string log;
  write_file(tmp.path() / "half.tsv", "title\tfilepath\tlabel\nx\timages/0.png\t1.5\n");
  EXPECT_NE(run_command(shard_cmd("--from csv --input " + (tmp / "half.tsv") + " --out " + (tmp / "o")), &log), 0);
  EXPECT_NE(log.find("label '1.5' is not an integer"), std::string::npos) << log;
}

TEST(ShardTest, WaterbirdsMetadataWithByteOrderMarkAndCrlf) {
  TempDir tmp;
  fs::path root = tmp.path() / "wb";
  std::string meta = "\xEF\xBB\xBFimg_id,img_filename,y,split,place,place_filename\r\n";
  for (int i = 0; i < 3; ++i) {
    const std::string file = "001.Albatross/b" + std::to_string(i) + ".png";
    write_file(root / file, png(pattern(16, 16, i)));
    meta += std::to_string(i + 1) + "," + file + ",1," + std::to_string(i) + ",0,/x.jpg\r\n";
  }
  write_file(root / "metadata.csv", meta);
  std::string out = tmp / "out", log;
  ASSERT_EQ(
      run_command(shard_cmd("--from waterbirds --input " + root.string() + " --out " + out + " --image-size 8"), &log),
      0)
      << log;
  EXPECT_EQ(Store(out + "/test").source(0), "001.Albatross/b2.png");
  EXPECT_EQ(Store(out + "/train").labels()[0], 1);
}

TEST(ShardTest, TableSeparatorIsDecidedFromTheHeaderLineAlone) {
  using sharding::detect_separator;
  using sharding::kDetectSeparator;
  using sharding::parse_table;
  using Rows = std::vector<std::vector<std::string>>;
  char used = 0;
  // A tab inside a quoted caption of a comma-separated file, in a middle column.
  EXPECT_EQ(
      parse_table("filepath,title,label\nimages/0.jpg,\"a fish\twith a tab\",0\n", kDetectSeparator, "t.csv", &used),
      (Rows{{"filepath", "title", "label"}, {"images/0.jpg", "a fish\twith a tab", "0"}}));
  EXPECT_EQ(used, ',');
  // A comma inside a TSV caption, quoted or not.
  EXPECT_EQ(parse_table("filepath\ttitle\tlabel\na.jpg\ta fish, a tench\t0\nb.jpg\t\"x, \"\"y\"\"\"\t1\n",
                        kDetectSeparator, "t.tsv", &used),
            (Rows{{"filepath", "title", "label"}, {"a.jpg", "a fish, a tench", "0"}, {"b.jpg", "x, \"y\"", "1"}}));
  EXPECT_EQ(used, '\t');
  // Only the header decides: separators inside its quoted names do not count.
  EXPECT_EQ(detect_separator("\"a,b,c\"\tfilepath\n"), '\t');
  EXPECT_EQ(detect_separator("\"title\twith\ttabs\",filepath\n"), ',');
  EXPECT_EQ(detect_separator("\"multi\nline,header\"\tb\nx,y,z,w\tq\n"), '\t');
  EXPECT_EQ(detect_separator("\ttitle\tfilepath\tlabel\n0\ta, b, c\tx.jpg\t1\n"), '\t');  // pandas' index column
  EXPECT_EQ(detect_separator("a,b\tc\n"), '\t');  // a tie: the reference code's TSV
  EXPECT_EQ(detect_separator("title\n"), '\t');
  EXPECT_EQ(detect_separator("\xEF\xBB\xBFtitle,filepath,label\r\n"), ',');
  EXPECT_EQ(detect_separator(""), '\t');
  // Quoted fields with line ends, CRLF, a BOM, in a comma-separated file.
  EXPECT_EQ(
      parse_table("\xEF\xBB\xBFtitle,filepath,label\r\n\"two\r\nlines\",a.jpg,0\r\n\r\n\"\"\"q\"\"\t\",b.jpg,1\r\n",
                  kDetectSeparator, "t.csv"),
      (Rows{{"title", "filepath", "label"}, {"two\r\nlines", "a.jpg", "0"}, {"\"q\"\t", "b.jpg", "1"}}));
  // A wrong row names the row, its line when they differ, and how the file was read.
  std::string err = error_of([] {
    parse_table("title,filepath,label\n\"a\nb\",a.jpg,0\n\nan unquoted, comma,b.jpg,1\n", kDetectSeparator, "t.csv");
  });
  EXPECT_NE(err.find("table t.csv: row 3 (line 5) has 4 fields, the header has 3 (the file is read as comma-separated"),
            std::string::npos)
      << err;
  err = error_of([] { parse_table("a\tb\nx\"y\tz\"\n", kDetectSeparator, "q.tsv"); });
  EXPECT_EQ(err, "");  // a quote inside a field is text
  err = error_of([] { parse_table("a\tb\n\"x\ty\n", kDetectSeparator, "q.tsv"); });
  EXPECT_NE(err.find("table q.tsv: a quoted field is not closed"), std::string::npos) << err;
}

TEST(ShardTest, CsvWithATabInAQuotedCaptionAndTsvWithACommaInOne) {
  TempDir tmp;
  for (int i = 0; i < 2; ++i) write_file(tmp.path() / "images" / (std::to_string(i) + ".png"), png(pattern(16, 16, i)));
  const std::map<std::string, std::string> files = {
      {"t.csv", "filepath,title,label\nimages/0.png,\"a fish\twith a tab\",0\nimages/1.png,plain,1\n"},
      {"t.tsv", "filepath\ttitle\tlabel\nimages/0.png\ta fish\twith a tab\t0\n"},  // unquoted: a refusal
      {"c.tsv", "filepath\ttitle\tlabel\nimages/0.png\ta fish, with a comma\t0\nimages/1.png\t\"x,\ty\"\t1\n"},
  };
  for (const auto& [name, text] : files) write_file(tmp.path() / name, text);
  std::string log;
  ASSERT_EQ(
      run_command(shard_cmd("--from csv --input " + (tmp / "t.csv") + " --out " + (tmp / "s1") + " --image-size 8"),
                  &log),
      0)
      << log;
  EXPECT_NE(log.find("reading it as comma-separated"), std::string::npos) << log;
  Store comma(tmp / "s1");
  ASSERT_EQ(comma.size(), 2);
  EXPECT_EQ(comma.caption(0), "a fish\twith a tab");
  EXPECT_EQ(comma.source(0), "images/0.png");
  EXPECT_EQ(comma.labels(), (std::vector<int64_t>{0, 1}));
  ASSERT_EQ(
      run_command(shard_cmd("--from csv --input " + (tmp / "c.tsv") + " --out " + (tmp / "s2") + " --image-size 8"),
                  &log),
      0)
      << log;
  Store tab(tmp / "s2");
  ASSERT_EQ(tab.size(), 2);
  EXPECT_EQ(tab.caption(0), "a fish, with a comma");
  EXPECT_EQ(tab.caption(1), "x,\ty");
  EXPECT_NE(run_command(shard_cmd("--from csv --input " + (tmp / "t.tsv") + " --out " + (tmp / "s3")), &log), 0);
  EXPECT_NE(log.find("row 2 has 4 fields, the header has 3 (the file is read as tab-separated"), std::string::npos)
      << log;
  write_file(tmp.path() / "semi.csv", "filepath;title;label\nimages/0.png;x;0\n");
  EXPECT_NE(run_command(shard_cmd("--from csv --input " + (tmp / "semi.csv") + " --out " + (tmp / "s4")), &log), 0);
  EXPECT_NE(log.find("no 'title' column"), std::string::npos) << log;
  EXPECT_NE(log.find("semicolon-separated"), std::string::npos) << log;
}

namespace {

// `ascii` in UTF-16 or UTF-32 (each byte one code unit), little- or big-endian, with `bom` first.
std::string wide(const std::string& ascii, int width, bool little, bool bom) {
  std::string out;
  auto unit = [&](uint32_t c) {
    for (int b = 0; b < width; ++b)
      out += static_cast<char>(little ? (c >> (8 * b)) & 255 : (c >> (8 * (width - 1 - b))) & 255);
  };
  if (bom) unit(0xFEFF);
  for (unsigned char c : ascii) unit(c);
  return out;
}

}  // namespace

TEST(ShardTest, Utf16AndUtf32TablesAndClassListsAreRefusedNamingTheEncoding) {
  using sharding::kDetectSeparator;
  using sharding::parse_table;
  const std::string tsv = "title\tfilepath\tlabel\na\tx.jpg\t0\nb\ty.jpg\t1\nc\tz.jpg\t2\n";
  struct Case {
    std::string bytes, found, from;
  };
  const std::vector<Case> cases = {
      {wide(tsv, 2, true, true), "UTF-16 (little-endian, byte-order mark FF FE; Excel's \"Unicode Text\"", "UTF-16"},
      {wide(tsv, 2, false, true), "UTF-16 (big-endian, byte-order mark FE FF)", "UTF-16"},
      {wide(tsv, 4, true, true), "UTF-32 (little-endian, byte-order mark FF FE 00 00)", "UTF-32"},
      {wide(tsv, 4, false, true), "UTF-32 (big-endian, byte-order mark 00 00 FE FF)", "UTF-32"},
      {wide(tsv, 2, true, false), "UTF-16 (little-endian, no byte-order mark", "UTF-16LE"},
      {wide(tsv, 2, false, false), "UTF-16 (big-endian, no byte-order mark", "UTF-16BE"},
      {wide(tsv, 4, true, false), "UTF-32 (little-endian, no byte-order mark", "UTF-32LE"},
      {wide(tsv, 4, false, false), "UTF-32 (big-endian, no byte-order mark", "UTF-32BE"},
  };
  for (const auto& c : cases) {
    const std::string err = error_of([&] { parse_table(c.bytes, kDetectSeparator, "dir/list.tsv"); });
    EXPECT_NE(err.find("table dir/list.tsv is " + c.found), std::string::npos) << err;
    EXPECT_NE(err.find("iconv -f " + c.from + " -t UTF-8 dir/list.tsv > dir/list-utf8.tsv"), std::string::npos) << err;
    EXPECT_EQ(err.find("fields"), std::string::npos) << err;
  }
  EXPECT_NE(error_of([] { parse_table(std::string("PK\3\4\24\0\6\0", 8), ',', "x.csv"); }).find("an Excel .xlsx"),
            std::string::npos);
  // A NUL past the first line is not taken for UTF-16.
  EXPECT_EQ(error_of([] { parse_table(std::string("a,b\nx,\0\n", 8), ',', "x.csv"); }), "");
  EXPECT_NE(
      error_of([] { parse_table(std::string("ab\0\tc\n", 6), '\t', "x.tsv"); }).find("NUL bytes in its first line"),
      std::string::npos);

  TempDir tmp;
  write_file(tmp.path() / "images" / "0.png", png(pattern(16, 16, 0)));
  write_file(tmp.path() / "unicode.txt", wide("title\tfilepath\tlabel\r\na\timages/0.png\t0\r\n", 2, true, true));
  std::string log;
  EXPECT_NE(run_command(shard_cmd("--from csv --input " + (tmp / "unicode.txt") + " --out " + (tmp / "o")), &log), 0);
  EXPECT_NE(log.find("unicode.txt is UTF-16 (little-endian"), std::string::npos) << log;
  EXPECT_NE(log.find("iconv -f UTF-16 -t UTF-8"), std::string::npos) << log;
  // The same check guards every text file read through common/text.h: class lists here.
  write_file(tmp.path() / "names.txt", wide("tench\r\ngoldfish\r\n", 2, true, true));
  const std::string err = error_of([&] { data::read_class_list(tmp / "names.txt"); });
  EXPECT_NE(err.find("class list " + (tmp / "names.txt") + " is UTF-16"), std::string::npos) << err;
  // Converted as the message says, it is read.
  ASSERT_EQ(run_command("iconv -f UTF-16 -t UTF-8 " + (tmp / "unicode.txt") + " > " + (tmp / "unicode-utf8.txt")), 0);
  ASSERT_EQ(run_command(shard_cmd("--from csv --input " + (tmp / "unicode-utf8.txt") + " --out " + (tmp / "o2") +
                                  " --image-size 8"),
                        &log),
            0)
      << log;
  EXPECT_EQ(Store(tmp / "o2").caption(0), "a");
}

TEST(ShardTest, MacZipResourceForkFoldersAreLeftOutAtEveryDepth) {
  TempDir tmp;
  fs::path root = tmp.path() / "train";
  const std::string img = png(pattern(12, 12, 1));
  const std::string fork = std::string("\0\5\26\7\0\2\0\0Mac OS X", 16);  // AppleDouble header
  write_file(root / "cat" / "a.png", img);
  write_file(root / "dog" / "b.png", img);
  write_file(root / "__MACOSX" / "cat" / "._a.png", fork);  // as `unzip` leaves a zip made by macOS
  write_file(root / "__MACOSX" / "dog" / "._b.png", fork);
  write_file(root / "__MACOSX" / "dog" / "b.png", img);             // even an image inside is no class
  write_file(root / "dog" / "__MACOSX" / "stale.png", img);         // inside a class folder
  write_file(root / "dog" / "sub" / "__MACOSX" / "deep.png", img);  // further down
  std::string out = tmp / "store", log;
  ASSERT_EQ(
      run_command(shard_cmd("--from folder --input " + root.string() + " --out " + out + " --image-size 8"), &log), 0)
      << log;
  Store store(out);
  EXPECT_EQ(store.manifest().class_names, (std::vector<std::string>{"cat", "dog"}));
  ASSERT_EQ(store.size(), 2);
  EXPECT_EQ(store.source(0), "cat/a.png");
  EXPECT_EQ(store.source(1), "dog/b.png");
  EXPECT_EQ(store.labels(), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(log.find("has no images"), std::string::npos) << log;
  EXPECT_NE(log.find("3 hidden file(s) and folder(s) (names starting with '.', and macOS's __MACOSX) left out"),
            std::string::npos)
      << log;
}

TEST(ShardTest, LeftoversOfAFailedConversionDoNotBlockARerun) {
  TempDir tmp;
  std::string root = make_folder_dataset(tmp, 2);
  fs::path out = tmp.path() / "store";
  fs::create_directories(out);
  std::ofstream(out / "shard-00000.h5.tmp") << "half written";
  std::ofstream(out / "shard-00001.h5") << "finished, but the run died before the manifest";
  std::ofstream(out / "manifest.json.tmp") << "{";
  std::string log;
  ASSERT_EQ(
      run_command(shard_cmd("--from folder --input " + root + " --out " + out.string() + " --image-size 8"), &log), 0)
      << log;
  EXPECT_NE(log.find("left by an unfinished conversion"), std::string::npos) << log;
  EXPECT_NO_THROW(Store(out.string()).verify());
  for (const auto& e : fs::directory_iterator(out)) EXPECT_NE(e.path().extension(), ".tmp") << e.path();
  // A complete store, or files that are not starft's, still need --overwrite.
  EXPECT_NE(
      run_command(shard_cmd("--from folder --input " + root + " --out " + out.string() + " --image-size 8"), &log), 0);
  EXPECT_NE(log.find("--overwrite"), std::string::npos) << log;
  fs::path other = tmp.path() / "other";
  fs::create_directories(other);
  std::ofstream(other / "shard-00000.h5.tmp") << "x";
  std::ofstream(other / "notes.txt") << "mine";
  EXPECT_NE(run_command(shard_cmd("--from folder --input " + root + " --out " + other.string()), &log), 0);
  EXPECT_TRUE(fs::exists(other / "notes.txt"));
}

TEST(ShardTest, WritesWhereFlockFails) {
  TempDir tmp;
  // An LD_PRELOAD shim whose flock() fails as on NFS without a lock daemon (ENOLCK = 37).
  std::ofstream(tmp / "nolock.c") << "#include <errno.h>\nint flock(int fd, int op) { (void)fd; (void)op; "
                                     "errno = 37; return -1; }\n";
  std::string log;
  ASSERT_EQ(run_command("cc -shared -fPIC -o " + (tmp / "nolock.so") + " " + (tmp / "nolock.c"), &log), 0) << log;
  std::string root = make_folder_dataset(tmp, 2), out = tmp / "store";
  ASSERT_EQ(run_command("env -u HDF5_USE_FILE_LOCKING LD_PRELOAD=" + (tmp / "nolock.so") + " " +
                            shard_cmd("--from folder --input " + root + " --out " + out + " --image-size 8"),
                        &log),
            0)
      << log;
  EXPECT_NO_THROW(Store(out).verify());
}

TEST(ShardTest, SlurmTasksWithoutMpiAreRefusedBeforeTheOutputIsTouched) {
  TempDir tmp;
  std::string root = make_folder_dataset(tmp, 2), out = tmp / "store", log;
  EXPECT_NE(run_command("env -u OMPI_COMM_WORLD_SIZE -u PMIX_RANK -u PMI_RANK SLURM_JOB_ID=1 SLURM_NTASKS=2 "
                        "SLURM_STEP_NUM_TASKS=2 SLURM_PROCID=1 " +
                            shard_cmd("--from folder --input " + root + " --out " + out + " --image-size 8"),
                        &log),
            0);
  EXPECT_NE(log.find("Slurm started 2 tasks (SLURM_STEP_NUM_TASKS=2) but MPI sees a world of 1 rank"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("--mpi=pmix"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(out));
}

// A repository cloned without Git LFS holds pointers in place of its images, lists and class
// lists. An image that is one is skipped (or --strict-failed) like other unusable images, with the
// reason saying so; a list or class list that is one stops the conversion naming it (a class list
// once became the store's class names, silently).
TEST(ShardTest, GitLfsPointersAreNamedWithGitLfsPull) {
  const std::string pointer =
      "version https://git-lfs.github.com/spec/v1\n"
      "oid sha256:4d7a2146e1d3c5a8f0b9e6a3c2d1f0e9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3\n"
      "size 48213\n";
  TempDir tmp;
  const fs::path root = tmp.path() / "in";
  write_file(root / "c" / "a_good.png", png(pattern(16, 16, 1)));
  write_file(root / "c" / "photo.jpg", pointer);
  std::string out = tmp / "store", log;
  ASSERT_EQ(
      run_command(shard_cmd("--from folder --input " + root.string() + " --out " + out + " --image-size 16"), &log), 0)
      << log;
  Store store(out);
  const Manifest& m = store.manifest();
  ASSERT_EQ(m.skipped.size(), 1u);
  EXPECT_EQ(m.skipped[0].source, "c/photo.jpg");
  EXPECT_NE(m.skipped[0].reason.find("Git LFS pointer"), std::string::npos) << m.skipped[0].reason;
  EXPECT_NE(m.skipped[0].reason.find("git lfs pull --include \"photo.jpg\""), std::string::npos) << m.skipped[0].reason;
  EXPECT_NE(run_command(shard_cmd("--from folder --input " + root.string() + " --out " + (tmp / "strict") +
                                  " --image-size 16 --strict"),
                        &log),
            0);
  EXPECT_NE(log.find("git lfs pull --include \"photo.jpg\""), std::string::npos) << log;

  // The list, then the class list, is the pointer.
  const std::string list = tmp / "list.tsv", names = tmp / "cls.txt";
  write_file(tmp.path() / "imgs" / "0.png", png(pattern(16, 16, 0)));
  write_file(list, pointer);
  write_file(names, "tench\n");
  const std::string csv = "--from csv --input " + list + " --class-names " + names + " --image-size 16 --out ";
  EXPECT_NE(run_command(shard_cmd(csv + (tmp / "o1")), &log), 0);
  EXPECT_NE(log.find(list), std::string::npos) << log;
  EXPECT_NE(log.find("git lfs pull --include \"list.tsv\""), std::string::npos) << log;
  write_file(list, "title\tfilepath\tlabel\na tench\timgs/0.png\t0\n");
  write_file(names, pointer);
  EXPECT_NE(run_command(shard_cmd(csv + (tmp / "o2")), &log), 0);
  EXPECT_NE(log.find(names), std::string::npos) << log;
  EXPECT_NE(log.find("git lfs pull --include \"cls.txt\""), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(tmp.path() / "o2" / "manifest.json"));
  write_file(names, "tench\n");
  EXPECT_EQ(run_command(shard_cmd(csv + (tmp / "o3")), &log), 0) << log;  // the fetched files convert
}
