// `starft shard`: the converters end to end through the command, with 1, 2 and 3 ranks.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>

#include "data/image.h"
#include "data/store.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace starft;
using namespace starft::data;
using starft::testing::run_command;
using starft::testing::starft_binary;
using starft::testing::TempDir;

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

std::string mpirun(int np, const std::string& command) {
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np " + std::to_string(np) +
         " --oversubscribe --bind-to none " + command;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
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
  EXPECT_NE(run_command(shard_cmd("--from folder --input " + root + " --out " + out + " --image-size 16 --strict"), &log), 0);
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
    ASSERT_EQ(run_command(mpirun(np, shard_cmd(args + out)), &log), 0) << log;
    // The manifest (shard files, counts, checksums, skipped list) is identical byte for byte.
    EXPECT_EQ(read_text(fs::path(out) / "manifest.json"), read_text(tmp.path() / "one" / "manifest.json"));
    expect_same_samples(tmp / "one", out);
  }
}

TEST(ShardTest, StrictFailureOnAnyRankEndsTheJob) {
  TempDir tmp;
  std::string root = make_folder_dataset(tmp, 3);
  // With shards of 2 the corrupt ant/broken.jpg (item 0) is in shard 0 (rank 0), and moving it
  // to the last class puts it on rank 1's shard: both must end the whole job.
  for (const char* cls : {"ant", "zebra"}) {
    if (std::string(cls) == "zebra") fs::rename(fs::path(root) / "ant" / "broken.jpg", fs::path(root) / "zebra" / "broken.jpg");
    std::string out = tmp / (std::string("strict_") + cls), log;
    EXPECT_NE(run_command(mpirun(2, shard_cmd("--from folder --input " + root + " --out " + out +
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
  ASSERT_EQ(run_command(shard_cmd("--from waterbirds --input " + root.string() + " --out " + out + " --image-size 16"), &log),
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
  ASSERT_EQ(run_command(shard_cmd("--from fashion-mnist --input " + dir + " --out " + out + " --image-size 28"), &log), 0)
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
  ASSERT_EQ(run_command(shard_cmd("--from fashion-mnist --input " + dir + " --out " + (tmp / "only") + " --split test"), &log),
            0)
      << log;
  EXPECT_TRUE(fs::exists(tmp.path() / "only" / "test" / "manifest.json"));
  EXPECT_FALSE(fs::exists(tmp.path() / "only" / "train"));
  EXPECT_NE(run_command(shard_cmd("--from fashion-mnist --input " + dir + " --out " + (tmp / "o3") + " --split dev"), &log), 0);
  EXPECT_NE(log.find("'dev' is not one of"), std::string::npos) << log;
}

TEST(ShardTest, BadOptionsAreExplained) {
  TempDir tmp;
  std::string log;
  EXPECT_NE(run_command(shard_cmd("--from tarball --input x --out " + (tmp / "o")), &log), 0);
  EXPECT_NE(log.find("'tarball' is not a known source"), std::string::npos) << log;
  EXPECT_NE(run_command(shard_cmd("--from folder --input " + tmp.path().string() + " --out " + (tmp / "o") +
                                  " --image-size 0"),
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

// The decode threads were --threads; that name is refused, naming --workers, on the command line
// and in a --config file.
TEST(ShardTest, ThreadsIsRefusedNamingWorkers) {
  TempDir tmp;
  std::string log;
  EXPECT_NE(run_command(shard_cmd("--from folder --input " + tmp.path().string() + " --out " + (tmp / "o") +
                                  " --threads 2"),
                        &log),
            0);
  EXPECT_NE(log.find("--workers"), std::string::npos) << log;
  std::ofstream(tmp / "old.ini") << "threads = 2\n";
  EXPECT_NE(run_command(shard_cmd("--from folder --input " + tmp.path().string() + " --out " + (tmp / "o") +
                                  " --config " + (tmp / "old.ini")),
                        &log),
            0);
  EXPECT_NE(log.find("old.ini"), std::string::npos) << log;
  EXPECT_NE(log.find("workers"), std::string::npos) << log;
}
