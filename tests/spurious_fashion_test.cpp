// The SpuriousFashion generator (sharding/spurious_fashion.h): store layouts, sampling, captions,
// image content, config checks, and `starft shard --from spurious-fashion` end to end.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <opencv2/imgproc.hpp>
#include <set>

#include "common/error.h"
#include "data/store.h"
#include "sharding/spurious_fashion.h"
#include "starft/build_config.h"
#include "test_util.h"
#include "data/templates.h"

namespace fs = std::filesystem;
namespace po = boost::program_options;
using namespace starft;
using namespace starft::sharding;
using starft::testing::run_command;
using starft::testing::starft_binary;
using starft::testing::TempDir;

namespace {

// Small stores: every store present, sizes that divide evenly into their cells.
SpuriousFashionConfig small_config() {
  SpuriousFashionConfig c;
  c.pretrain_size = 120;  // 10 classes x 6 places x 2
  c.finetune_train_size = 600;
  c.finetune_val_size = 60;
  c.id_test_size = 60;
  c.shift_test_size = 72;  // 6 classes x 6 places x 2
  c.group_val_size = 40;
  c.group_test_size = 80;
  c.heldout_test_size = 48;  // 4 classes x 6 places x 2
  c.val_per_class = 100;
  return c;
}

std::map<std::string, Source> by_name(std::vector<Source> sources) {
  std::map<std::string, Source> out;
  for (auto& s : sources) out[s.layout.split] = std::move(s);
  return out;
}

// The error text of check_spurious_fashion_config, or "" when it accepts the config.
std::string config_error(const SpuriousFashionConfig& c) {
  try {
    check_spurious_fashion_config(c);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Fashion-MNIST label of each object id ("train/01234", "test/00042").
std::map<std::string, int64_t> fashion_mnist_labels() {
  std::map<std::string, int64_t> labels;
  for (const auto& src : fashion_mnist_sources(kFashionMnistDir))
    for (const auto& item : src.items) labels[item.meta.source] = item.meta.label;
  return labels;
}

void write_stores(const std::vector<Source>& sources, const std::string& root, int threads) {
  auto comm = single_process_comm();
  for (const auto& source : sources) {
    ConvertOptions opt;
    opt.layout = source.layout;
    opt.layout.shard_size = 100;
    opt.out = (fs::path(root) / source.layout.split).string();
    opt.strict = true;
    opt.workers = threads;
    convert(source.items, opt, *comm);
  }
}

void expect_same_store(const std::string& a_dir, const std::string& b_dir) {
  data::Store a(a_dir), b(b_dir);
  EXPECT_EQ(a.manifest().to_json(), b.manifest().to_json()) << a_dir;
  ASSERT_EQ(a.size(), b.size());
  for (int64_t i = 0; i < a.size(); ++i) {
    data::Sample x = a.get(i), y = b.get(i);
    ASSERT_EQ(cv::norm(x.image, y.image, cv::NORM_INF), 0) << a_dir << " sample " << i;
    EXPECT_EQ(x.label, y.label);
    EXPECT_EQ(x.group, y.group);
    EXPECT_EQ(x.attributes, y.attributes);
    EXPECT_EQ(x.caption, y.caption);
    EXPECT_EQ(x.source, y.source);
  }
}

const char* const kStoreNames[] = {"pretrain",   "finetune-train", "finetune-val", "id-test",
                                   "shift-test", "group-val",      "group-test",   "heldout-test"};

}  // namespace

TEST(SpuriousFashionTest, WritesEveryStoreWithItsLayout) {
  auto sources = spurious_fashion_sources(kFashionMnistDir, small_config());
  ASSERT_EQ(sources.size(), 8u);
  for (size_t i = 0; i < sources.size(); ++i) {
    const data::Manifest& m = sources[i].layout;
    EXPECT_EQ(m.split, kStoreNames[i]);
    EXPECT_EQ(m.dataset, "spurious-fashion");
    EXPECT_EQ(m.image_size, 32);
    EXPECT_TRUE(m.has_captions);
    EXPECT_EQ(m.attribute_names, std::vector<std::string>{"place"});
    EXPECT_EQ(m.attribute_values.at("place"),
              (std::vector<std::string>{"water", "grass", "sand", "snow", "brick wall", "night sky"}));
    EXPECT_EQ(m.has_groups, m.split == "group-val" || m.split == "group-test") << m.split;
  }
  auto stores = by_name(std::move(sources));
  const std::vector<std::string> finetune = {"t-shirt", "trouser", "pullover", "dress", "coat", "shirt"};
  EXPECT_EQ(stores["pretrain"].layout.class_names, spurious_fashion_class_names());
  for (const char* name : {"finetune-train", "finetune-val", "id-test", "shift-test"})
    EXPECT_EQ(stores[name].layout.class_names, finetune) << name;
  EXPECT_EQ(stores["group-test"].layout.class_names, (std::vector<std::string>{"sandal", "sneaker"}));
  EXPECT_EQ(stores["group-test"].layout.group_names,
            (std::vector<std::string>{"sandal on water", "sandal on grass", "sneaker on water", "sneaker on grass"}));
  EXPECT_EQ(stores["heldout-test"].layout.class_names,
            (std::vector<std::string>{"sandal", "sneaker", "bag", "ankle boot"}));
  EXPECT_EQ(stores["finetune-train"].items.size(), 600u);

  // A store of size 0 is left out.
  SpuriousFashionConfig c = small_config();
  c.group_val_size = 0;
  auto fewer = spurious_fashion_sources(kFashionMnistDir, c);
  ASSERT_EQ(fewer.size(), 7u);
  for (const auto& s : fewer) EXPECT_NE(s.layout.split, "group-val");
}

TEST(SpuriousFashionTest, LabelsNameTheObjectsAndHeldOutClassesStayOutOfFineTuning) {
  auto labels = fashion_mnist_labels();
  const auto& names = spurious_fashion_class_names();
  const std::set<std::string> heldout = {"sandal", "sneaker", "bag", "ankle boot"};
  for (const auto& src : spurious_fashion_sources(kFashionMnistDir, small_config())) {
    const bool finetune =
        src.layout.split.rfind("finetune", 0) == 0 || src.layout.split == "id-test" || src.layout.split == "shift-test";
    for (const auto& name : src.layout.class_names)
      if (finetune) {
        EXPECT_EQ(heldout.count(name), 0u) << src.layout.split << " has held-out class " << name;
      }
    std::vector<int64_t> per_class(src.layout.class_names.size(), 0);
    for (const auto& item : src.items) {
      ASSERT_TRUE(labels.count(item.meta.source)) << item.meta.source;
      // The store's label names the Fashion-MNIST class of the object actually drawn.
      EXPECT_EQ(src.layout.class_names.at(item.meta.label), names[labels[item.meta.source]])
          << src.layout.split << " " << item.meta.source;
      ++per_class[item.meta.label];
    }
    for (int64_t count : per_class)  // classes are balanced in every store
      EXPECT_LE(std::abs(count - int64_t(src.items.size() / per_class.size())), 1) << src.layout.split;
  }
}

TEST(SpuriousFashionTest, NoObjectIsSharedBetweenTrainValAndTestStores) {
  // pretrain and finetune-train may share objects (pre-training data overlaps the downstream
  // task's, as web data overlaps ImageNet); validation and test objects are nobody else's.
  std::map<std::string, std::set<std::string>> used;
  for (const auto& src : spurious_fashion_sources(kFashionMnistDir, small_config())) {
    const std::string& name = src.layout.split;
    const std::string role = name == "pretrain" || name == "finetune-train" ? "train"
                             : name.find("-val") != std::string::npos       ? "val"
                                                                            : "test";
    for (const auto& item : src.items) {
      used[role].insert(item.meta.source);
      EXPECT_EQ(item.meta.source.rfind(role == "test" ? "test/" : "train/", 0), 0u) << name << " " << item.meta.source;
    }
  }
  for (const char* a : {"train", "val", "test"})
    for (const char* b : {"train", "val", "test"}) {
      if (std::string(a) >= b) continue;
      for (const auto& id : used[a]) EXPECT_EQ(used[b].count(id), 0u) << id << " is in both " << a << " and " << b;
    }
  EXPECT_GT(used["val"].size(), 0u);
}

TEST(SpuriousFashionTest, ObjectsAreNotRepeatedWithinAStoreWhileThePoolLasts) {
  auto stores = by_name(spurious_fashion_sources(kFashionMnistDir, small_config()));
  for (const char* name : {"pretrain", "finetune-train", "id-test", "group-test"}) {
    std::set<std::string> ids;
    for (const auto& item : stores[name].items) ids.insert(item.meta.source);
    EXPECT_EQ(ids.size(), stores[name].items.size()) << name;
  }
  // group-val needs 20 sandals from a val pool of 8 per class: they are reused in turn.
  SpuriousFashionConfig c = small_config();
  c.val_per_class = 8;
  stores = by_name(spurious_fashion_sources(kFashionMnistDir, c));
  std::map<std::string, int> uses;
  for (const auto& item : stores["group-val"].items) ++uses[item.meta.source];
  EXPECT_EQ(uses.size(), 16u);
  for (const auto& [id, n] : uses) EXPECT_TRUE(n == 2 || n == 3) << id << " used " << n << " times";
}

TEST(SpuriousFashionTest, GroupStoresAreBalancedOverTheFourGroups) {
  auto stores = by_name(spurious_fashion_sources(kFashionMnistDir, small_config()));
  for (const char* name : {"group-test", "group-val"}) {
    const Source& src = stores[name];
    std::map<int, int> groups;
    for (const auto& item : src.items) {
      const int place = item.meta.attributes.at("place");
      ASSERT_TRUE(place == 0 || place == 1) << "place " << place << " is neither water (0) nor grass (1)";
      EXPECT_EQ(item.meta.group, 2 * item.meta.label + place);
      ++groups[item.meta.group];
    }
    ASSERT_EQ(groups.size(), 4u) << name;
    for (const auto& [g, n] : groups) EXPECT_EQ(n, int(src.items.size()) / 4) << name << " group " << g;
  }
  // Group places given in the other order: group index 0 is then the place listed first.
  SpuriousFashionConfig c = small_config();
  c.group_places = "night sky,sand";
  stores = by_name(spurious_fashion_sources(kFashionMnistDir, c));
  for (const auto& item : stores["group-test"].items) {
    const int place = item.meta.attributes.at("place");
    ASSERT_TRUE(place == 5 || place == 2) << place;
    EXPECT_EQ(item.meta.group, 2 * item.meta.label + (place == 5 ? 0 : 1));
  }
  EXPECT_EQ(stores["group-test"].layout.group_names[1], "sandal on sand");
}

TEST(SpuriousFashionTest, FineTuningPlacesFollowRho) {
  const std::vector<int> typical = {0, 1, 2, 3, 4, 5};  // the default typical places, in class order
  for (double rho : {0.8, 0.5, 0.0, 1.0}) {
    SpuriousFashionConfig c = small_config();
    c.rho = rho;
    c.finetune_train_size = 6000;  // only the item lists are made here, no pictures
    auto stores = by_name(spurious_fashion_sources(kFashionMnistDir, c));
    const auto& items = stores["finetune-train"].items;
    int on_typical = 0;
    std::map<int, int> places;
    for (const auto& item : items) {
      const int place = item.meta.attributes.at("place");
      on_typical += place == typical[item.meta.label];
      ++places[place];
    }
    // Typical with probability rho, else uniform over the 6 places (the typical one included).
    const double expected = rho + (1 - rho) / 6, share = double(on_typical) / items.size();
    if (rho == 1.0) {
      EXPECT_EQ(on_typical, int(items.size()));
    } else {
      const double sd = std::sqrt(expected * (1 - expected) / items.size());
      EXPECT_NEAR(share, expected, 4 * sd) << "rho " << rho;
    }
    EXPECT_EQ(places.size(), 6u) << "rho " << rho;
  }
  // Shifted test stores spread every fine-tuning class evenly over the places.
  auto stores = by_name(spurious_fashion_sources(kFashionMnistDir, small_config()));
  std::map<std::pair<int64_t, int>, int> cells;
  for (const auto& item : stores["shift-test"].items) ++cells[{item.meta.label, item.meta.attributes.at("place")}];
  ASSERT_EQ(cells.size(), 36u);
  for (const auto& [cell, n] : cells) EXPECT_EQ(n, 2);
}

TEST(SpuriousFashionTest, PretrainingCoversEveryClassOnEveryPlaceWithVariedCaptions) {
  SpuriousFashionConfig config = small_config();
  config.caption_weights = "3,2,1";  // every kind of caption present, whatever the default
  auto stores = by_name(spurious_fashion_sources(kFashionMnistDir, config));
  const Source& pre = stores["pretrain"];
  const auto& places = pre.layout.attribute_values.at("place");
  std::map<std::pair<int64_t, int>, int> cells;
  int both = 0, object_only = 0, place_only = 0;
  std::set<std::string> distinct;
  for (const auto& item : pre.items) {
    const int place = item.meta.attributes.at("place");
    ++cells[{item.meta.label, place}];
    const std::string& caption = item.meta.caption;
    distinct.insert(caption);
    const std::string& cls = pre.layout.class_names[item.meta.label];
    // Which classes and places the caption names: only the right ones may appear.
    bool names_class = false, names_place = false;
    for (const auto& other : pre.layout.class_names) {
      const bool found = (" " + caption).find(" " + other + " ") != std::string::npos ||
                         (" " + caption).find(" " + other + ".") != std::string::npos;
      if (found) {  // whole words: "t-shirt" does not name "shirt"
        EXPECT_EQ(other, cls) << caption;
      }
      if (other == cls) names_class = found;
    }
    for (size_t p = 0; p < places.size(); ++p)
      for (const auto& phrase : spurious_fashion_place_phrases(places[p]))
        if (caption.find(" " + phrase + ".") != std::string::npos) {
          EXPECT_EQ(int(p), place) << caption;
          names_place = true;
        }
    EXPECT_TRUE(names_class || names_place) << caption;
    both += names_class && names_place;
    object_only += names_class && !names_place;
    place_only += !names_class && names_place;
  }
  ASSERT_EQ(cells.size(), 60u);
  for (const auto& [cell, n] : cells) EXPECT_EQ(n, 2);
  // Weights 3:2:1 over 120 captions: about 60 / 40 / 20.
  EXPECT_GT(both, 45);
  EXPECT_GT(object_only, 28);
  EXPECT_GT(place_only, 10);
  EXPECT_LT(place_only, 32);
  EXPECT_GT(distinct.size(), 80u);
  // The other stores carry the configured caption.
  for (const auto& item : stores["group-test"].items)
    EXPECT_EQ(item.meta.caption, "a photo of a " + stores["group-test"].layout.class_names[item.meta.label] + ".");
}

TEST(SpuriousFashionTest, DemoPoolNamesThePlacesAsTheCaptionsDo) {
  // The StarFT prompts of the demo must use the wording the pre-trained model has seen.
  auto pool = data::load_templates(std::string(STARFT_SOURCE_DIR) + "/datasets/pools/fashion_places.txt");
  std::set<std::string> expected;
  for (const auto& place : spurious_fashion_place_names())
    for (const auto& phrase : spurious_fashion_place_phrases(place)) expected.insert("{} " + phrase + ".");
  EXPECT_EQ(std::set<std::string>(pool.begin(), pool.end()), expected);
  EXPECT_EQ(pool.size(), expected.size());
}

TEST(SpuriousFashionTest, PlacesAreDistinguishableAndVaried) {
  // Each place's mean colour at 32 px is closer to its own centroid than to any other's, over
  // 20 random variations, and no two variations are the same picture.
  const auto& names = spurious_fashion_place_names();
  const int n = 20;
  std::vector<std::vector<cv::Scalar>> means(names.size());
  std::vector<cv::Scalar> centroid(names.size());
  for (size_t p = 0; p < names.size(); ++p) {
    cv::Mat first;
    for (int v = 0; v < n; ++v) {
      cv::Mat img = draw_place(names[p], 32, 1000 + v);
      ASSERT_EQ(img.type(), CV_8UC3);
      if (v == 0)
        first = img;
      else
        EXPECT_GT(cv::norm(img, first, cv::NORM_L1), 32 * 32 * 3) << names[p] << " variation " << v;
      means[p].push_back(cv::mean(img));
      centroid[p] += means[p].back() / n;
    }
    EXPECT_EQ(cv::norm(draw_place(names[p], 32, 1000), first, cv::NORM_INF), 0) << names[p] << " is not reproducible";
  }
  for (size_t p = 0; p < names.size(); ++p)
    for (const auto& m : means[p])
      for (size_t q = 0; q < names.size(); ++q)
        if (q != p) {
          EXPECT_LT(cv::norm(m - centroid[p]), cv::norm(m - centroid[q])) << names[p] << " vs " << names[q];
        }
}

TEST(SpuriousFashionTest, TheObjectIsDrawnOverThePlace) {
  SpuriousFashionConfig c;
  // An empty (black) object leaves the place as draw_place draws it, shrunk from the render size.
  const cv::Mat black = cv::Mat::zeros(28, 28, CV_8UC1);
  for (const auto& place : spurious_fashion_place_names()) {
    cv::Mat img = compose_image(place, black, 7, c), expected;
    ASSERT_EQ(img.size(), cv::Size(32, 32));
    ASSERT_EQ(img.type(), CV_8UC3);
    cv::resize(draw_place(place, 128, 7), expected, cv::Size(32, 32), 0, 0, cv::INTER_AREA);
    EXPECT_EQ(cv::norm(img, expected, cv::NORM_INF), 0) << place;
  }
  // A white square at half the side, centred: opaque and bright (a grey or light tint) inside,
  // the place untouched beyond the square and its shadow.
  c.image_size = 256;  // drawn at its own size
  c.object_scale_min = c.object_scale_max = 0.5;
  c.object_shift = 0;
  const cv::Mat white(28, 28, CV_8UC1, cv::Scalar(255));
  for (const auto& place : spurious_fashion_place_names()) {
    for (uint64_t variation : {1, 2, 3}) {
      cv::Mat3b img = compose_image(place, white, variation, c), bg = draw_place(place, 256, variation);
      int outside = 0, changed = 0;
      for (int y = 0; y < 256; ++y)
        for (int x = 0; x < 256; ++x) {
          const cv::Vec3b p = img(y, x);
          if (y >= 64 && y < 192 && x >= 64 && x < 192) {
            const int hi = std::max({p[0], p[1], p[2]}), lo = std::min({p[0], p[1], p[2]});
            ASSERT_GE(hi, 200) << place << " at " << x << "," << y;
            ASSERT_GE(lo, 80) << place << " at " << x << "," << y;
          } else if (y < 52 || y >= 204 || x < 52 || x >= 204) {
            ++outside;
            changed += p != bg(y, x);
          }
        }
      EXPECT_EQ(changed, 0) << place << ": " << changed << " of " << outside << " pixels away from the object changed";
    }
  }
  // Real objects: the same item decodes to the same picture, and objects change the image.
  auto stores = by_name(spurious_fashion_sources(kFashionMnistDir, small_config()));
  const auto& items = stores["group-test"].items;
  for (int i = 0; i < 4; ++i) {
    cv::Mat img = items[i].decode();
    ASSERT_EQ(img.size(), cv::Size(32, 32));
    EXPECT_EQ(cv::norm(img, items[i].decode(), cv::NORM_INF), 0);
  }
}

TEST(SpuriousFashionTest, SameSeedSameStoresOtherSeedOtherStores) {
  TempDir tmp;
  SpuriousFashionConfig c = small_config();
  c.finetune_train_size = 60;  // images are drawn here; keep it small
  write_stores(spurious_fashion_sources(kFashionMnistDir, c), tmp / "a", 1);
  write_stores(spurious_fashion_sources(kFashionMnistDir, c), tmp / "b", 2);
  for (const std::string name : kStoreNames) expect_same_store(tmp / ("a/" + name), tmp / ("b/" + name));

  c.seed = 1;
  write_stores(spurious_fashion_sources(kFashionMnistDir, c), tmp / "c", 2);
  data::Store a(tmp / "a/group-test"), other(tmp / "c/group-test");
  ASSERT_EQ(a.size(), other.size());
  int64_t same_source = 0;
  double pixels = 0;
  for (int64_t i = 0; i < a.size(); ++i) {
    same_source += a.source(i) == other.source(i);
    pixels += cv::norm(a.get(i).image, other.get(i).image, cv::NORM_L1);
  }
  EXPECT_LT(same_source, a.size() / 4);
  EXPECT_GT(pixels / a.size(), 32 * 32 * 3 * 10);
}

TEST(SpuriousFashionTest, BadConfigValuesNameTheKey) {
  EXPECT_EQ(config_error(SpuriousFashionConfig{}), "");
  auto expect_error = [](SpuriousFashionConfig c, const std::vector<std::string>& parts) {
    const std::string e = config_error(c);
    ASSERT_FALSE(e.empty()) << "accepted, expected an error with " << parts.front();
    for (const auto& part : parts) EXPECT_NE(e.find(part), std::string::npos) << "'" << part << "' not in: " << e;
  };
  SpuriousFashionConfig c;
  c.rho = 1.5;
  expect_error(c, {"--rho", "1.5", "[0, 1]"});
  c = {};
  c.rho = -0.1;
  expect_error(c, {"--rho"});
  c = {};
  c.places = "water,lava,grass";
  expect_error(c, {"--places", "'lava'", "night sky"});
  c = {};
  c.group_places = "water,forest";
  expect_error(c, {"--group-places", "'forest'"});
  c = {};
  c.places = "water,grass,sand,snow,brick wall";
  expect_error(c, {"--typical-places", "'night sky'", "--places"});
  c = {};
  c.group_classes = "sandal,dress";
  expect_error(c, {"--group-classes", "'dress'", "--finetune-classes"});
  c = {};
  c.finetune_classes = "t-shirt,trouser,pullover,dress,coat,sneaker";
  expect_error(c, {"--group-classes", "'sneaker'", "--finetune-classes"});
  c = {};
  c.group_classes = "sandal";
  expect_error(c, {"--group-classes", "exactly two"});
  c = {};
  c.finetune_classes = "t-shirt,jacket";
  expect_error(c, {"--finetune-classes", "'jacket'", "ankle boot"});
  c = {};
  c.typical_places = "water,grass";
  expect_error(c, {"--typical-places", "one place per fine-tuning class"});
  c = {};
  c.typical_places = "water,water,water,grass,grass,grass";  // shared typical places are fine
  EXPECT_EQ(config_error(c), "");
  c = {};
  c.places = "water,grass,water";
  expect_error(c, {"--places", "twice"});
  c = {};
  c.group_val_size = -1;
  expect_error(c, {"--group-val-size", "-1"});
  c = {};
  c.caption_weights = "1,x,1";
  expect_error(c, {"--caption-weights", "'x'"});
  c = {};
  c.caption = "a photo.";
  expect_error(c, {"--caption", "{}"});
  c = {};
  c.object_scale_min = 0.9;
  c.object_scale_max = 0.5;
  expect_error(c, {"--object-scale-min", "--object-scale-max"});
  c = {};
  c.val_per_class = 0;
  expect_error(c, {"--val-per-class", "finetune-val"});
  c = {};
  c.image_size = 4;
  expect_error(c, {"--image-size", "4"});
  // The sources check too.
  c = {};
  c.rho = 2;
  EXPECT_THROW(spurious_fashion_sources(kFashionMnistDir, c), Error);
}

TEST(SpuriousFashionTest, ConfigFileHoldsTheDefaults) {
  // configs/spurious_fashion.ini lists every key with the value the code defaults to.
  SpuriousFashionConfig from_file, defaults;
  auto options = spurious_fashion_options(from_file);
  int image_size = 0;
  options.add_options()("image-size", po::value(&image_size));
  std::ifstream in(std::string(STARFT_SOURCE_DIR) + "/configs/spurious_fashion.ini");
  ASSERT_TRUE(in) << "configs/spurious_fashion.ini is missing";
  po::variables_map vm;
  po::store(po::parse_config_file(in, options), vm);
  po::notify(vm);
  EXPECT_EQ(image_size, defaults.image_size);
  for (const auto& option : options.options()) {
    if (option->long_name() == "image-size") continue;
    EXPECT_TRUE(vm.count(option->long_name()) && !vm[option->long_name()].defaulted())
        << option->long_name() << " is not set in configs/spurious_fashion.ini";
  }
  EXPECT_EQ(from_file.seed, defaults.seed);
  EXPECT_EQ(from_file.places, defaults.places);
  EXPECT_EQ(from_file.finetune_classes, defaults.finetune_classes);
  EXPECT_EQ(from_file.typical_places, defaults.typical_places);
  EXPECT_EQ(from_file.rho, defaults.rho);
  EXPECT_EQ(from_file.group_classes, defaults.group_classes);
  EXPECT_EQ(from_file.group_places, defaults.group_places);
  EXPECT_EQ(from_file.val_per_class, defaults.val_per_class);
  EXPECT_EQ(from_file.caption_weights, defaults.caption_weights);
  EXPECT_EQ(from_file.caption, defaults.caption);
  EXPECT_EQ(from_file.object_scale_min, defaults.object_scale_min);
  EXPECT_EQ(from_file.object_scale_max, defaults.object_scale_max);
  EXPECT_EQ(from_file.object_shift, defaults.object_shift);
  EXPECT_EQ(from_file.pretrain_size, defaults.pretrain_size);
  EXPECT_EQ(from_file.finetune_train_size, defaults.finetune_train_size);
  EXPECT_EQ(from_file.finetune_val_size, defaults.finetune_val_size);
  EXPECT_EQ(from_file.id_test_size, defaults.id_test_size);
  EXPECT_EQ(from_file.shift_test_size, defaults.shift_test_size);
  EXPECT_EQ(from_file.group_val_size, defaults.group_val_size);
  EXPECT_EQ(from_file.group_test_size, defaults.group_test_size);
  EXPECT_EQ(from_file.heldout_test_size, defaults.heldout_test_size);
}

// The demo's configurations as launch/demo.sh passes them (an earlier --config wins): the second
// built-in configuration over the defaults, and the quick sizes over it.
TEST(SpuriousFashionTest, BuiltInConfigurationsGiveTheirSplitsAndSizes) {
  TempDir tmp;
  const std::string dir = std::string(STARFT_SOURCE_DIR) + "/configs/";
  std::string log;
  ASSERT_EQ(run_command(starft_binary() + " shard --from spurious-fashion --config " + dir +
                            "spurious_fashion_quick.ini" + " --config " + dir + "spurious_fashion_b.ini --config " +
                            dir + "spurious_fashion.ini" + " --split group-val --workers 1 --out " + (tmp / "b"),
                        &log),
            0)
      << log;
  const auto m = data::Manifest::read(tmp / "b/group-val");
  EXPECT_EQ(m.class_names, (std::vector<std::string>{"sneaker", "ankle boot"}));
  EXPECT_EQ(m.count(), 200);  // the quick size wins over the default's 800
  EXPECT_EQ(m.group_names, (std::vector<std::string>{"sneaker on snow", "sneaker on night sky", "ankle boot on snow",
                                                     "ankle boot on night sky"}));
  ASSERT_EQ(run_command(starft_binary() + " shard --from spurious-fashion --config " + dir + "spurious_fashion_b.ini" +
                            " --config " + dir +
                            "spurious_fashion.ini --split finetune-val --finetune-val-size 36"
                            " --workers 1 --out " +
                            (tmp / "b"),
                        &log),
            0)
      << log;
  EXPECT_EQ(data::Manifest::read(tmp / "b/finetune-val").class_names,
            (std::vector<std::string>{"t-shirt", "trouser", "pullover", "coat", "sandal", "bag"}));
}

TEST(SpuriousFashionTest, ShardCommandWritesTheStoresOnOneAndTwoRanks) {
  TempDir tmp;
  const std::string config = std::string(STARFT_SOURCE_DIR) + "/configs/spurious_fashion.ini";
  // The file gives image-size 32 and the defaults; the command line wins for sizes and rho.
  const std::string args = " shard --from spurious-fashion --config " + config +
                           " --pretrain-size 60 --finetune-train-size 36 --finetune-val-size 12 --id-test-size 12"
                           " --shift-test-size 36 --group-val-size 8 --group-test-size 16 --heldout-test-size 24"
                           " --rho 1 --shard-size 16 --workers 1 --out ";
  std::string log;
  ASSERT_EQ(run_command(starft_binary() + args + (tmp / "one"), &log), 0) << log;
  const std::string mpirun =
      "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 2 --oversubscribe --bind-to none ";
  ASSERT_EQ(run_command(mpirun + starft_binary() + args + (tmp / "two"), &log), 0) << log;
  const std::map<std::string, int64_t> sizes = {{"pretrain", 60},   {"finetune-train", 36}, {"finetune-val", 12},
                                                {"id-test", 12},    {"shift-test", 36},     {"group-val", 8},
                                                {"group-test", 16}, {"heldout-test", 24}};
  for (const auto& [name, size] : sizes) {
    data::Store store(tmp / ("one/" + name));
    EXPECT_EQ(store.size(), size) << name;
    EXPECT_EQ(store.image_size(), 32) << name;
    expect_same_store(tmp / ("one/" + name), tmp / ("two/" + name));
  }
  data::Store train(tmp / "one/finetune-train");
  for (int64_t i = 0; i < train.size(); ++i)  // rho 1: every image on its class's typical place
    EXPECT_EQ(train.attribute("place")[i], train.labels()[i]);

  // --split writes one store; --image-size changes the drawn side.
  ASSERT_EQ(run_command(starft_binary() +
                            " shard --from spurious-fashion --split group-test --group-test-size 8"
                            " --image-size 48 --out " +
                            (tmp / "split"),
                        &log),
            0)
      << log;
  EXPECT_TRUE(fs::exists(tmp / "split/group-test/manifest.json"));
  EXPECT_FALSE(fs::exists(tmp / "split/pretrain"));
  EXPECT_EQ(data::Store(tmp / "split/group-test").image_size(), 48);
}

TEST(SpuriousFashionTest, ShardCommandRejectsBadKeys) {
  TempDir tmp;
  std::string log;
  EXPECT_NE(run_command(starft_binary() + " shard --from spurious-fashion --rho 2 --out " + (tmp / "a"), &log), 0);
  EXPECT_NE(log.find("--rho 2 is outside [0, 1]"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(tmp / "a/pretrain/manifest.json"));
  EXPECT_NE(
      run_command(starft_binary() + " shard --from spurious-fashion --group-places 'water,lava' --out " + (tmp / "b"),
                  &log),
      0);
  EXPECT_NE(log.find("--group-places: unknown place 'lava'"), std::string::npos) << log;
  EXPECT_NE(
      run_command(starft_binary() + " shard --from folder --input " + (tmp / "x") + " --rho 0.5 --out " + (tmp / "c"),
                  &log),
      0);
  EXPECT_NE(log.find("--rho applies to --from spurious-fashion only"), std::string::npos) << log;
  std::ofstream(tmp / "bad.ini") << "rho = 0.5\nnot-a-key = 3\n";
  EXPECT_NE(run_command(starft_binary() + " shard --from spurious-fashion --config " + (tmp / "bad.ini") + " --out " +
                            (tmp / "d"),
                        &log),
            0);
  EXPECT_NE(log.find("bad.ini"), std::string::npos) << log;
  EXPECT_NE(log.find("not-a-key"), std::string::npos) << log;
}
