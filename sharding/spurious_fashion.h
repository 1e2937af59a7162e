#pragma once
// SpuriousFashion: a synthetic benchmark with a spurious background, generated from
// Fashion-MNIST (`starft shard --from spurious-fashion`). Each image is a Fashion-MNIST object
// composited onto a procedurally drawn, named place (water, grass, sand, snow, brick wall,
// night sky). The stores (pretrain, finetune-train, finetune-val, id-test, shift-test,
// group-val, group-test, heldout-test) and every key are described in
// datasets/spurious_fashion.md.
//
// Everything is a pure function of the configuration and the Fashion-MNIST files: item k of a
// store draws its object, place and jitter from a random stream keyed by (seed, store, k), so
// the stores do not depend on the number of ranks or threads that write them.
#include <boost/program_options.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "sharding/sources.h"

namespace starft::sharding {

// The generator's keys, with their defaults (configs/spurious_fashion.ini lists the same).
// Class and place lists are comma-separated names (see spurious_fashion_class_names() and
// spurious_fashion_place_names()).
struct SpuriousFashionConfig {
  int64_t seed = 0;
  int image_size = 32;  // stored image side S; the `image-size` key of `starft shard`
  std::string places = "water,grass,sand,snow,brick wall,night sky";
  std::string finetune_classes = "t-shirt,trouser,pullover,dress,coat,shirt";
  std::string typical_places = "water,grass,sand,snow,brick wall,night sky";  // one per fine-tuning class
  double rho = 0.8;
  std::string group_classes = "sandal,sneaker";             // y = 0, 1 of the group stores
  std::string group_places = "water,grass";                 // place index 0, 1 within the group stores
  int64_t val_per_class = 600;                              // train images per class kept for *-val stores
  std::string caption_weights = "3,2,1";                    // pretrain captions: object+place, object, place
  std::string caption = "a photo of a {}.";                 // caption of the other stores; {} = class name
  double object_scale_min = 0.75, object_scale_max = 0.95;  // object side / image side
  double object_shift = 0.08;                               // max offset of the object centre / image side
  int64_t pretrain_size = 60000;
  int64_t finetune_train_size = 6000;
  int64_t finetune_val_size = 1200;
  int64_t id_test_size = 1800;
  int64_t shift_test_size = 1800;
  int64_t group_val_size = 800;
  int64_t group_test_size = 2000;
  int64_t heldout_test_size = 1440;
};

// The generator's keys (all but image-size, which `starft shard` owns), bound to `config`.
boost::program_options::options_description spurious_fashion_options(SpuriousFashionConfig& config);

// Checks every key; errors name the key (`--rho`), the bad value and the allowed ones.
void check_spurious_fashion_config(const SpuriousFashionConfig& config);

// The ten classes in words, in Fashion-MNIST label order: "t-shirt", "trouser", ..., "ankle boot".
const std::vector<std::string>& spurious_fashion_class_names();
// The built-in places: "water", "grass", "sand", "snow", "brick wall", "night sky".
const std::vector<std::string>& spurious_fashion_place_names();
// The phrases captions use for a built-in place ("in the water", "on the sea", ...); the
// demo's spurious pool datasets/pools/fashion_places.txt is written from the same phrases.
const std::vector<std::string>& spurious_fashion_place_phrases(const std::string& place);

// Draws one background of `place` (a built-in name), size x size RGB, varied by `variation`.
cv::Mat draw_place(const std::string& place, int size, uint64_t variation);

// One SpuriousFashion image, image_size x image_size RGB: the place drawn at the render size
// max(S, min(4 S, 256)) with draw_place(place, render, variation), the grey `object` (white on
// black, as Fashion-MNIST stores it) composited with the configured scale and offset jitter, a
// random grey or light tint and a soft shadow, then shrunk to S (INTER_AREA).
cv::Mat compose_image(const std::string& place, const cv::Mat& object, uint64_t variation,
                      const SpuriousFashionConfig& config);

// The eight stores (those with size > 0), in the order listed above, each with split = the
// store's name. Reads the Fashion-MNIST IDX files from `fashion_mnist_dir`; checks the config.
// Item sources are the Fashion-MNIST ids (`train/01234`, `test/00042`) of the objects used.
std::vector<Source> spurious_fashion_sources(const std::string& fashion_mnist_dir, const SpuriousFashionConfig& config);

}  // namespace starft::sharding
