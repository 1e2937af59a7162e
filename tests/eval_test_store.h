#pragma once
// Tiny evaluation stores for the eval tests (32 px, like the tiny fixture model), written with
// data::StoreWriter into a test's TempDir. Pixels come from a seeded generator, so every rank and
// every run writes the same store. Shards of 7 samples make the shard boundaries uneven.
#include <opencv2/core.hpp>

#include <string>
#include <vector>

#include "data/shard_writer.h"
#include "data/templates.h"
#include "test_util.h"

namespace starft::testing {

struct EvalStoreLayout {
  std::string dataset = "eval-test";
  std::vector<std::string> class_names;
  std::vector<std::string> class_ids;
  // With groups: group = 2 * (label % 2) + place, place = (i / 2) % 2, named "<class> on <place>".
  bool groups = false;
  int64_t count = 30;
  uint64_t seed = 1;
  int compression = 0;  // gzip level of the image chunks
};

inline void make_eval_store(const std::string& dir, const EvalStoreLayout& layout) {
  data::Manifest m;
  m.dataset = layout.dataset;
  m.split = "test";
  m.class_names = layout.class_names;
  m.class_ids = layout.class_ids;
  m.image_size = 32;
  m.shard_size = 7;
  m.compression = layout.compression;
  if (layout.groups) {
    m.has_groups = true;
    m.attribute_names = {"place"};
    m.group_names = {"landbird on land", "landbird on water", "waterbird on land", "waterbird on water"};
  }
  data::StoreWriter w(dir, m, false);
  cv::RNG rng(layout.seed);
  const int C = static_cast<int>(layout.class_names.size());
  for (int64_t i = 0; i < layout.count; ++i) {
    const int label = static_cast<int>((i * 7 + i / 3) % C);
    cv::Mat img(32, 32, CV_8UC3);
    rng.fill(img, cv::RNG::UNIFORM, 0, 256);
    // A class-dependent tint so the classes differ beyond noise.
    img += cv::Scalar(40 * (label % 3), 40 * ((label + 1) % 3), 40 * ((label + 2) % 3));
    data::SampleMeta meta;
    meta.label = label;
    meta.source = "sample" + std::to_string(i);
    if (layout.groups) {
      const int place = static_cast<int>((i / 2) % 2);
      meta.group = 2 * (label % 2) + place;
      meta.attributes = {{"place", place}};
    }
    w.add(img, meta);
  }
  w.finish();
}

// Four ImageNet fish with WordNet ids (the classes of datasets/classnames/example-fish.txt).
inline EvalStoreLayout fish_layout() {
  EvalStoreLayout l;
  l.dataset = "fish";
  l.class_names = {"tench", "goldfish", "great white shark", "tiger shark"};
  l.class_ids = {"n01440764", "n01443537", "n01484850", "n01491361"};
  return l;
}

// Two of the four, in another order (ImageNet-R style subset).
inline EvalStoreLayout fish_subset_layout() {
  EvalStoreLayout l;
  l.dataset = "fish-subset";
  l.class_names = {"tiger shark", "goldfish"};
  l.class_ids = {"n01491361", "n01443537"};
  l.count = 23;
  l.seed = 2;
  return l;
}

// ObjectNet style: coarse classes mapped onto the four by datasets/classnames/example-fish-map.tsv.
inline EvalStoreLayout fish_coarse_layout() {
  EvalStoreLayout l;
  l.dataset = "fish-coarse";
  l.class_names = {"shark", "cyprinid"};
  l.count = 19;
  l.seed = 3;
  return l;
}

// Waterbirds style: two classes, four groups.
inline EvalStoreLayout birds_layout(int64_t count = 32, uint64_t seed = 4) {
  EvalStoreLayout l;
  l.dataset = "birds";
  l.class_names = {"landbird", "waterbird"};
  l.groups = true;
  l.count = count;
  l.seed = seed;
  return l;
}

// The stores of the evaluation tests, in a TempDir: between them every kind of head matching
// (identity: fish; class-id subset: subset; class map: coarse; the store's own classes: birds)
// and a training store with groups for the train-weighted average (birds_train).
struct EvalStores {
  TempDir dir;
  std::string fish = dir / "fish", subset = dir / "subset", coarse = dir / "coarse", birds = dir / "birds",
              birds_train = dir / "birds_train";
  EvalStores() {
    make_eval_store(fish, fish_layout());
    make_eval_store(subset, fish_subset_layout());
    make_eval_store(coarse, fish_coarse_layout());
    make_eval_store(birds, birds_layout());
    make_eval_store(birds_train, birds_layout(20, 9));
  }
};

// The example class list and class map the repository ships (datasets/classnames/).
inline std::string fish_list() { return data::datasets_dir() + "/classnames/example-fish.txt"; }
inline std::string fish_map() { return data::datasets_dir() + "/classnames/example-fish-map.tsv"; }

}  // namespace starft::testing
