// `starft shard --from spurious-fashion`: the SpuriousFashion generator (datasets/spurious_fashion.md).
#include "sharding/spurious_fashion.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <sstream>

#include "common/error.h"
#include "common/text.h"
#include "data/rng.h"

namespace starft::sharding {

namespace po = boost::program_options;
using data::Rng;

namespace {

constexpr double kPi = 3.14159265358979323846;

// ---- places -------------------------------------------------------------------------------------

using Painter = void (*)(cv::Mat3b&, Rng&);

cv::Vec3b rgb(double r, double g, double b) {
  return cv::Vec3b(cv::saturate_cast<uchar>(r), cv::saturate_cast<uchar>(g), cv::saturate_cast<uchar>(b));
}

// Adds uniform noise in [-amount, amount] to every channel (the same offset for the three).
void add_noise(cv::Mat3b& img, Rng& rng, double amount) {
  for (int y = 0; y < img.rows; ++y)
    for (int x = 0; x < img.cols; ++x) {
      double n = rng.uniform(-amount, amount);
      cv::Vec3b& p = img(y, x);
      p = rgb(p[0] + n, p[1] + n, p[2] + n);
    }
}

// Blue with wave stripes of random frequency, phase, tilt and ripple, and light crests.
void paint_water(cv::Mat3b& img, Rng& rng) {
  const int R = img.rows;
  const double r0 = rng.uniform(15, 50), g0 = rng.uniform(75, 120), b0 = rng.uniform(145, 205);
  const double freq = rng.uniform(3, 7), phase = rng.uniform(0, 2 * kPi), tilt = rng.uniform(-0.4, 0.4);
  const double ripple = rng.uniform(0.05, 0.2), ripple_freq = rng.uniform(1, 3), ripple_phase = rng.uniform(0, 2 * kPi);
  for (int y = 0; y < R; ++y)
    for (int x = 0; x < R; ++x) {
      const double u = double(x) / R, v = double(y) / R;
      const double bend = ripple * std::sin(2 * kPi * ripple_freq * u + ripple_phase);
      const double w = std::sin(2 * kPi * freq * (v + tilt * u + bend) + phase);
      const double shade = 1 + 0.22 * w;
      const double crest = w > 0.8 ? (w - 0.8) / 0.2 * 0.55 : 0.0;
      img(y, x) = rgb((r0 * shade) * (1 - crest) + 200 * crest, (g0 * shade) * (1 - crest) + 230 * crest,
                      (b0 * shade) * (1 - crest) + 250 * crest);
    }
  add_noise(img, rng, 4);
}

// Green ground covered with near-vertical blade strokes of varied shade and length.
void paint_grass(cv::Mat3b& img, Rng& rng) {
  const int R = img.rows;
  img.setTo(cv::Scalar{rng.uniform(30, 65), rng.uniform(95, 140), rng.uniform(20, 50)});
  add_noise(img, rng, 10);
  const int blades = R * R / 30;
  const int thickness = std::max(1, R / 96);
  for (int i = 0; i < blades; ++i) {
    const double len = R * rng.uniform(0.06, 0.16), angle = rng.uniform(-0.4, 0.4);
    const double x0 = rng.uniform(0, R), y0 = rng.uniform(0, R + len);
    const cv::Point p0{int(x0), int(y0)}, p1{int(x0 + len * std::sin(angle)), int(y0 - len * std::cos(angle))};
    cv::line(img, p0, p1, cv::Scalar{rng.uniform(20, 100), rng.uniform(105, 200), rng.uniform(15, 60)}, thickness,
             cv::LINE_AA);
  }
}

// Beige with soft dunes and fine light and dark speckle.
void paint_sand(cv::Mat3b& img, Rng& rng) {
  const int R = img.rows;
  const double r0 = rng.uniform(200, 228), g0 = rng.uniform(170, 198), b0 = rng.uniform(115, 150);
  const double freq = rng.uniform(0.7, 2), phase = rng.uniform(0, 2 * kPi), tilt = rng.uniform(-1, 1);
  for (int y = 0; y < R; ++y)
    for (int x = 0; x < R; ++x) {
      const double shade = 1 + 0.06 * std::sin(2 * kPi * freq * (double(y) / R + tilt * double(x) / R) + phase);
      img(y, x) = rgb(r0 * shade, g0 * shade, b0 * shade);
    }
  add_noise(img, rng, 14);
  const int dots = R * R / 20;
  for (int i = 0; i < dots; ++i) {
    const double k = rng.uniform() < 0.5 ? rng.uniform(0.55, 0.8) : rng.uniform(1.05, 1.15);
    const cv::Point p{int(rng.uniform(0, R)), int(rng.uniform(0, R))};
    cv::circle(img, p, int(rng.uniform(0, R / 96.0 + 0.6)), cv::Scalar(r0 * k, g0 * k, b0 * k), cv::FILLED);
  }
}

// Near-white with a faint blue shading and round flakes.
void paint_snow(cv::Mat3b& img, Rng& rng) {
  const int R = img.rows;
  const double r0 = rng.uniform(218, 240), g0 = rng.uniform(225, 244), b0 = rng.uniform(236, 252);
  const double slope = rng.uniform(-0.08, 0.08);
  for (int y = 0; y < R; ++y)
    for (int x = 0; x < R; ++x) {
      const double shade = 1 + slope * (double(y) / R - 0.5);
      img(y, x) = rgb(r0 * shade, g0 * shade, b0 * shade);
    }
  add_noise(img, rng, 5);
  const int flakes = R * R / 70;
  for (int i = 0; i < flakes; ++i) {
    const cv::Point p{int(rng.uniform(0, R)), int(rng.uniform(0, R))};
    const double grey = rng.uniform() < 0.25 ? rng.uniform(175, 205) : 255;
    cv::circle(img, p, int(rng.uniform(R / 128.0, R / 36.0)), cv::Scalar(grey, grey, std::min(255.0, grey + 12)),
               cv::FILLED, cv::LINE_AA);
  }
}

// Red bricks of varied colour in staggered rows, with mortar lines and a random offset.
void paint_brick(cv::Mat3b& img, Rng& rng) {
  const int R = img.rows;
  img.setTo(cv::Scalar{rng.uniform(165, 200), rng.uniform(160, 190), rng.uniform(150, 180)});
  const double h = R * rng.uniform(0.12, 0.2), w = h * rng.uniform(1.8, 2.5);
  const double mortar = std::max(1.0, h * rng.uniform(0.1, 0.16));
  const double x0 = rng.uniform(0, w), y0 = rng.uniform(0, h);
  const double r0 = rng.uniform(145, 185), g0 = rng.uniform(45, 80), b0 = rng.uniform(35, 60);
  for (int row = -1; double(row) * h + y0 < R; ++row) {
    const double y = row * h + y0;
    const double offset = x0 + ((row & 1) ? w / 2 : 0);
    for (double x = offset - 2 * w; x < R; x += w) {
      const double k = rng.uniform(0.8, 1.15);
      cv::rectangle(img, cv::Point(int(x + mortar / 2), int(y + mortar / 2)),
                    cv::Point(int(x + w - mortar / 2), int(y + h - mortar / 2)), cv::Scalar(r0 * k, g0 * k, b0 * k),
                    cv::FILLED);
    }
  }
  add_noise(img, rng, 9);
}

// A dark blue to black gradient with stars of varied brightness and tint.
void paint_night(cv::Mat3b& img, Rng& rng) {
  const int R = img.rows;
  const double rt = rng.uniform(5, 20), gt = rng.uniform(10, 30), bt = rng.uniform(35, 75);
  const double rb = rng.uniform(0, 8), gb = rng.uniform(0, 10), bb = rng.uniform(8, 25);
  for (int y = 0; y < R; ++y) {
    const double t = double(y) / R;
    for (int x = 0; x < R; ++x) img(y, x) = rgb(rt + (rb - rt) * t, gt + (gb - gt) * t, bt + (bb - bt) * t);
  }
  add_noise(img, rng, 3);
  const int stars = int(rng.uniform(25, 60) * (R / 128.0) * (R / 128.0)) + 8;
  for (int i = 0; i < stars; ++i) {
    const cv::Point p{int(rng.uniform(0, R)), int(rng.uniform(0, R))};
    const double v = rng.uniform(170, 255), tint = rng.uniform(-25, 25);
    cv::circle(img, p, int(rng.uniform(R / 256.0, R / 64.0 + 0.5)), cv::Scalar(v + tint, v, v - tint), cv::FILLED,
               cv::LINE_AA);
  }
}

struct PlaceStyle {
  const char* name;
  std::vector<std::string> phrases;  // how captions and the spurious pool name the place
  Painter paint;
};

const std::vector<PlaceStyle>& place_styles() {
  static const std::vector<PlaceStyle> styles = {
      {"water", {"in the water", "on the water", "in a lake"}, paint_water},
      {"grass", {"on the grass", "on a lawn", "in a grassy field"}, paint_grass},
      {"sand", {"on the sand", "on the beach", "in the desert"}, paint_sand},
      {"snow", {"in the snow", "on snowy ground", "in a snowfield"}, paint_snow},
      {"brick wall", {"in front of a brick wall", "against a brick wall", "by a red brick wall"}, paint_brick},
      {"night sky", {"under the night sky", "against a starry sky", "at night"}, paint_night},
  };
  return styles;
}

const PlaceStyle& place_style(const std::string& name) {
  for (const auto& s : place_styles())
    if (name == s.name) return s;
  fail("unknown place '", name, "'");
}

// ---- objects --------------------------------------------------------------------------------

// Colour of the object: grey, or a light tint of a random hue (HSV with value 1).
cv::Vec3d object_tint(Rng& rng) {
  if (rng.uniform() < 0.5) return {1, 1, 1};
  const double h = rng.uniform(0, 6), s = rng.uniform(0.25, 0.6);
  const double f = h - std::floor(h), p = 1 - s, q = 1 - s * f, t = 1 - s * (1 - f);
  switch (int(h) % 6) {
    case 0:
      return {1, t, p};
    case 1:
      return {q, 1, p};
    case 2:
      return {p, 1, t};
    case 3:
      return {p, q, 1};
    case 4:
      return {t, p, 1};
    default:
      return {1, p, q};
  }
}

// The grey object (white on black, as Fashion-MNIST stores it) over `canvas`: its intensity is
// the alpha (opaque from mid-grey up) and the brightness of the tinted colour; a soft drop
// shadow keeps it apart from bright places.
void composite(cv::Mat3b& canvas, const cv::Mat& grey, Rng& rng, const SpuriousFashionConfig& c) {
  const int R = canvas.rows;
  const int side = std::max(4, int(std::lround(R * rng.uniform(c.object_scale_min, c.object_scale_max))));
  const double cx = R / 2.0 + R * rng.uniform(-c.object_shift, c.object_shift);
  const double cy = R / 2.0 + R * rng.uniform(-c.object_shift, c.object_shift);
  const int left = int(std::lround(cx - side / 2.0)), top = int(std::lround(cy - side / 2.0));
  const cv::Vec3d tint = object_tint(rng);
  const double gain = rng.uniform(0.8, 1.0);

  cv::Mat object;
  cv::resize(grey, object, cv::Size(side, side), 0, 0, cv::INTER_LINEAR);
  cv::Mat1f alpha(R, R, 0.f), value(R, R, 0.f);
  for (int y = 0; y < side; ++y)
    for (int x = 0; x < side; ++x) {
      const int Y = top + y, X = left + x;
      if (Y < 0 || Y >= R || X < 0 || X >= R) continue;
      const float v = object.at<uchar>(y, x) / 255.f;
      alpha(Y, X) = std::min(1.f, 2.f * v);
      value(Y, X) = v;
    }
  cv::Mat1f shadow;
  const int blur = (R / 24) | 1;
  cv::GaussianBlur(alpha, shadow, cv::Size(blur, blur), 0);
  const int dx = std::max(1, R / 64);
  for (int y = 0; y < R; ++y)
    for (int x = 0; x < R; ++x) {
      cv::Vec3b& p = canvas(y, x);
      const float s = (y >= dx && x >= dx) ? 0.5f * shadow(y - dx, x - dx) : 0.f;
      const float a = alpha(y, x), brightness = float(gain * (0.12 + 0.88 * value(y, x)) * 255);
      for (int c = 0; c < 3; ++c)
        p[c] = cv::saturate_cast<uchar>((p[c] * (1 - s)) * (1 - a) + brightness * tint[c] * a);
    }
}

// ---- configuration ---------------------------------------------------------------------------

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    out.push_back(b == std::string::npos ? "" : item.substr(b, e - b + 1));
  }
  return out;
}

// The names of a list key, each one of `known`, none repeated; returns their indices in `known`.
std::vector<int> named_list(const char* key, const std::string& value, const std::vector<std::string>& known,
                            const char* what, bool repeats = false) {
  std::vector<int> out;
  for (const auto& name : split_list(value)) {
    auto it = std::find(known.begin(), known.end(), name);
    check(it != known.end(), "--", key, ": unknown ", what, " '", name, "'; choose from ", join(known));
    const int index = int(it - known.begin());
    check(repeats || std::find(out.begin(), out.end(), index) == out.end(), "--", key, ": ", what, " '", name,
          "' is listed twice");
    out.push_back(index);
  }
  check(!out.empty(), "--", key, " is empty; give a comma-separated list of ", what, "s");
  return out;
}

// Indices into the configured `places` of a list of place names.
std::vector<int> place_list(const char* key, const std::string& value, const std::vector<std::string>& places,
                            bool repeats) {
  std::vector<int> out;
  for (int i : named_list(key, value, spurious_fashion_place_names(), "place", repeats)) {
    const std::string& name = spurious_fashion_place_names()[i];
    auto it = std::find(places.begin(), places.end(), name);
    check(it != places.end(), "--", key, ": place '", name, "' is not one of --places (", join(places), ")");
    out.push_back(int(it - places.begin()));
  }
  return out;
}

// The parsed, checked configuration.
struct Plan {
  std::vector<std::string> places;  // names, in --places order
  std::vector<int> finetune;        // Fashion-MNIST labels of the fine-tuning classes
  std::vector<int> typical;         // place index (into places) of each fine-tuning class
  std::vector<int> group_classes;   // Fashion-MNIST labels, y = 0, 1
  std::vector<int> group_places;    // place indices, 0, 1 within the group stores
  std::vector<int> heldout;         // labels not fine-tuned on, in label order
  std::vector<double> caption_weights;
};

Plan make_plan(const SpuriousFashionConfig& c) {
  const auto& classes = spurious_fashion_class_names();
  Plan plan;
  for (int i : named_list("places", c.places, spurious_fashion_place_names(), "place"))
    plan.places.push_back(spurious_fashion_place_names()[i]);
  check(plan.places.size() >= 2, "--places needs at least two places, got '", c.places, "'");
  plan.finetune = named_list("finetune-classes", c.finetune_classes, classes, "class");
  plan.typical = place_list("typical-places", c.typical_places, plan.places, true);
  // Two classes may share a typical place, so typical-places is matched by count, not by names.
  check(plan.typical.size() == plan.finetune.size(), "--typical-places gives ", plan.typical.size(), " place(s) for ",
        plan.finetune.size(), " --finetune-classes; give one place per fine-tuning class, in order");
  plan.group_classes = named_list("group-classes", c.group_classes, classes, "class");
  check(plan.group_classes.size() == 2, "--group-classes needs exactly two classes (y = 0, 1), got '", c.group_classes,
        "'");
  for (int g : plan.group_classes)
    check(std::find(plan.finetune.begin(), plan.finetune.end(), g) == plan.finetune.end(), "--group-classes: '",
          classes[g],
          "' is also in --finetune-classes; the group stores test zero-shot robustness on classes "
          "never fine-tuned on, so remove it from one of the two");
  plan.group_places = place_list("group-places", c.group_places, plan.places, false);
  check(plan.group_places.size() == 2, "--group-places needs exactly two places (place 0, 1), got '", c.group_places,
        "'");
  for (int k = 0; k < int(classes.size()); ++k)
    if (std::find(plan.finetune.begin(), plan.finetune.end(), k) == plan.finetune.end()) plan.heldout.push_back(k);
  check(c.heldout_test_size == 0 || plan.heldout.size() >= 2, "--finetune-classes leaves ", plan.heldout.size(),
        " held-out class(es); heldout-test needs at least two (or set --heldout-test-size 0)");

  check(std::isfinite(c.rho) && c.rho >= 0 && c.rho <= 1, "--rho ", c.rho,
        " is outside [0, 1] (the probability of a fine-tuning class's typical place)");
  check(c.image_size >= 8 && c.image_size <= 1024, "--image-size ", c.image_size,
        " is outside 8..1024 for spurious-fashion");
  check(c.object_scale_min > 0 && c.object_scale_min <= c.object_scale_max && c.object_scale_max <= 1,
        "--object-scale-min ", c.object_scale_min, " and --object-scale-max ", c.object_scale_max,
        " must satisfy 0 < min <= max <= 1");
  check(c.object_shift >= 0 && c.object_shift <= 0.5, "--object-shift ", c.object_shift, " is outside [0, 0.5]");
  check(c.val_per_class >= 0 && c.val_per_class <= 3000, "--val-per-class ", c.val_per_class,
        " is outside 0..3000 (Fashion-MNIST has 6000 train images per class)");
  check(c.caption.find("{}") != std::string::npos && c.caption.find("{}") == c.caption.rfind("{}"), "--caption '",
        c.caption, "' must hold exactly one {} (the class name)");
  for (const auto& w : split_list(c.caption_weights)) {
    char* end = nullptr;
    const double v = std::strtod(w.c_str(), &end);
    check(!w.empty() && *end == '\0' && std::isfinite(v) && v >= 0, "--caption-weights: '", w,
          "' is not a number >= 0");
    plan.caption_weights.push_back(v);
  }
  check(plan.caption_weights.size() == 3,
        "--caption-weights needs three weights (object and place, object only, "
        "place only), got '",
        c.caption_weights, "'");
  check(plan.caption_weights[0] + plan.caption_weights[1] + plan.caption_weights[2] > 0,
        "--caption-weights are all zero");
  const std::pair<const char*, int64_t> sizes[] = {
      {"pretrain-size", c.pretrain_size},         {"finetune-train-size", c.finetune_train_size},
      {"finetune-val-size", c.finetune_val_size}, {"id-test-size", c.id_test_size},
      {"shift-test-size", c.shift_test_size},     {"group-val-size", c.group_val_size},
      {"group-test-size", c.group_test_size},     {"heldout-test-size", c.heldout_test_size}};
  for (const auto& [key, size] : sizes)
    check(size >= 0 && size <= 10'000'000, "--", key, " ", size, " is outside 0..10000000 (0 = no such store)");
  check(c.val_per_class > 0 || (c.finetune_val_size == 0 && c.group_val_size == 0),
        "--val-per-class is 0 but finetune-val or group-val is asked for; reserve train images for them or set "
        "their sizes to 0");
  return plan;
}

// ---- stores ----------------------------------------------------------------------------------

enum class Pool { train, val, test };
enum class Kind {
  pretrain,  // every class on every place in equal measure, varied captions
  biased,    // fine-tuning classes, typical place with probability rho
  shifted,   // fine-tuning classes, every place in equal measure
  group,     // the two group classes on the two group places, equal groups
  heldout,   // held-out classes, every place in equal measure
};

struct StoreSpec {
  const char* name;
  Pool pool;
  Kind kind;
  int64_t SpuriousFashionConfig::*size;
};

const StoreSpec kStores[] = {
    {"pretrain", Pool::train, Kind::pretrain, &SpuriousFashionConfig::pretrain_size},
    {"finetune-train", Pool::train, Kind::biased, &SpuriousFashionConfig::finetune_train_size},
    {"finetune-val", Pool::val, Kind::biased, &SpuriousFashionConfig::finetune_val_size},
    {"id-test", Pool::test, Kind::biased, &SpuriousFashionConfig::id_test_size},
    {"shift-test", Pool::test, Kind::shifted, &SpuriousFashionConfig::shift_test_size},
    {"group-val", Pool::val, Kind::group, &SpuriousFashionConfig::group_val_size},
    {"group-test", Pool::test, Kind::group, &SpuriousFashionConfig::group_test_size},
    {"heldout-test", Pool::test, Kind::heldout, &SpuriousFashionConfig::heldout_test_size},
};

// Random-stream purposes, the second key after the seed.
enum Stream : uint64_t { kPoolSplit = 1, kOrder, kPlace, kCaption, kImage, kObject };

template <typename T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

std::string with_article(const std::string& noun) {
  const bool vowel = !noun.empty() && std::string("aeiou").find(noun[0]) != std::string::npos;
  return (vowel ? "an " : "a ") + noun;
}

std::string fill(const std::string& tpl, const std::string& text) {
  const auto at = tpl.find("{}");
  return tpl.substr(0, at) + text + tpl.substr(at + 2);
}

// A pre-training caption naming the object, the place, or both, in varied wording.
std::string pretrain_caption(const std::string& cls, const std::string& place, const std::vector<double>& weights,
                             Rng& rng) {
  const auto& phrases = spurious_fashion_place_phrases(place);
  const std::string object = with_article(cls), phrase = phrases[rng.below(phrases.size())];
  const double total = weights[0] + weights[1] + weights[2], u = rng.uniform() * total;
  if (u < weights[0]) {
    static const char* both[] = {"a photo of {}.", "{}.", "a picture of {}.", "{} photographed"};
    const std::string form = both[rng.below(4)];
    if (form == "{} photographed") return object + " photographed " + phrase + ".";
    return fill(form, object + " " + phrase);
  }
  if (u < weights[0] + weights[1]) {
    static const char* forms[] = {"a photo of {}.", "{}.", "a picture of {}.", "a product photo of {}."};
    return fill(forms[rng.below(4)], object);
  }
  static const char* forms[] = {"something {}.", "a photo of something {}.", "an object {}.", "a picture taken {}."};
  return fill(forms[rng.below(4)], phrase);
}

}  // namespace

const std::vector<std::string>& spurious_fashion_class_names() {
  static const std::vector<std::string> names = {"t-shirt", "trouser", "pullover", "dress", "coat",
                                                 "sandal",  "shirt",   "sneaker",  "bag",   "ankle boot"};
  return names;
}

const std::vector<std::string>& spurious_fashion_place_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& s : place_styles()) n.push_back(s.name);
    return n;
  }();
  return names;
}

const std::vector<std::string>& spurious_fashion_place_phrases(const std::string& place) {
  return place_style(place).phrases;
}

cv::Mat draw_place(const std::string& place, int size, uint64_t variation) {
  check(size > 0, "draw_place: size must be positive, got ", size);
  cv::Mat3b img(size, size);
  Rng rng({variation});
  place_style(place).paint(img, rng);
  return img;
}

cv::Mat compose_image(const std::string& place, const cv::Mat& object, uint64_t variation,
                      const SpuriousFashionConfig& config) {
  check(object.type() == CV_8UC1 && !object.empty(), "compose_image: the object must be an 8-bit grey image");
  const int S = config.image_size;
  const int render = std::max(S, std::min(4 * S, 256));  // drawn larger, then shrunk (antialiasing)
  cv::Mat3b canvas(render, render);
  Rng rng({variation});
  place_style(place).paint(canvas, rng);
  composite(canvas, object, rng, config);
  if (render == S) return std::move(canvas);
  cv::Mat out;
  cv::resize(canvas, out, cv::Size(S, S), 0, 0, cv::INTER_AREA);
  return out;
}

po::options_description spurious_fashion_options(SpuriousFashionConfig& c) {
  po::options_description o("spurious-fashion generator (--from spurious-fashion; also INI keys of a --config file)");
  auto num = [](double v) {
    std::ostringstream os;
    os << v;
    return os.str();
  };
  o.add_options()("seed", po::value(&c.seed)->default_value(c.seed),
                  "seed of every random choice (pools, places, jitter, captions)")(
      "places", po::value(&c.places)->default_value(c.places),
      "places used, comma-separated, from: water, grass, sand, snow, brick wall, night sky")(
      "finetune-classes", po::value(&c.finetune_classes)->default_value(c.finetune_classes),
      "the fine-tuning classes (labels 0.. of finetune-*, id-test, shift-test); the others are held out. Classes: "
      "t-shirt, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, ankle boot")(
      "typical-places", po::value(&c.typical_places)->default_value(c.typical_places),
      "the typical place of each fine-tuning class, in the same order")(
      "rho", po::value(&c.rho)->default_value(c.rho, num(c.rho)),
      "probability that a fine-tuning image shows its class's typical place; otherwise the place is uniform over "
      "--places (so the typical share is rho + (1 - rho) / places)")(
      "group-classes", po::value(&c.group_classes)->default_value(c.group_classes),
      "the two held-out classes of group-val/group-test (y = 0, 1)")(
      "group-places", po::value(&c.group_places)->default_value(c.group_places),
      "the two places of group-val/group-test; group = 2 * y + index of the place in this list")(
      "val-per-class", po::value(&c.val_per_class)->default_value(c.val_per_class),
      "Fashion-MNIST train images per class kept apart for finetune-val and group-val")(
      "caption-weights", po::value(&c.caption_weights)->default_value(c.caption_weights),
      "pretrain captions: relative weights of naming object and place, the object only, the place only")(
      "caption", po::value(&c.caption)->default_value(c.caption),
      "caption of the stores other than pretrain; {} is the class name")(
      "object-scale-min", po::value(&c.object_scale_min)->default_value(c.object_scale_min, num(c.object_scale_min)),
      "smallest object side, as a fraction of the image side")(
      "object-scale-max", po::value(&c.object_scale_max)->default_value(c.object_scale_max, num(c.object_scale_max)),
      "largest object side, as a fraction of the image side")(
      "object-shift", po::value(&c.object_shift)->default_value(c.object_shift, num(c.object_shift)),
      "largest offset of the object's centre from the image centre, as a fraction of the side")(
      "pretrain-size", po::value(&c.pretrain_size)->default_value(c.pretrain_size),
      "images in pretrain (every class on every place; 0 = no such store)")(
      "finetune-train-size", po::value(&c.finetune_train_size)->default_value(c.finetune_train_size),
      "images in finetune-train")("finetune-val-size",
                                  po::value(&c.finetune_val_size)->default_value(c.finetune_val_size),
                                  "images in finetune-val")(
      "id-test-size", po::value(&c.id_test_size)->default_value(c.id_test_size), "images in id-test")(
      "shift-test-size", po::value(&c.shift_test_size)->default_value(c.shift_test_size), "images in shift-test")(
      "group-val-size", po::value(&c.group_val_size)->default_value(c.group_val_size), "images in group-val")(
      "group-test-size", po::value(&c.group_test_size)->default_value(c.group_test_size), "images in group-test")(
      "heldout-test-size", po::value(&c.heldout_test_size)->default_value(c.heldout_test_size),
      "images in heldout-test");
  return o;
}

void check_spurious_fashion_config(const SpuriousFashionConfig& config) { make_plan(config); }

std::vector<Source> spurious_fashion_sources(const std::string& fashion_mnist_dir, const SpuriousFashionConfig& c) {
  const Plan plan = make_plan(c);
  const auto& class_names = spurious_fashion_class_names();
  const uint64_t seed = static_cast<uint64_t>(c.seed);

  // Objects: Fashion-MNIST train images split per class into train and val pools; t10k is the
  // test pool. No image is in two pools.
  std::vector<Source> fm = fashion_mnist_sources(fashion_mnist_dir);
  const int num_classes = int(class_names.size());
  std::map<Pool, std::vector<std::vector<const SourceItem*>>> pools;
  for (Pool p : {Pool::train, Pool::val, Pool::test}) pools[p].resize(num_classes);
  for (const Source& src : fm) {
    const bool train = src.layout.split == "train";
    std::vector<std::vector<const SourceItem*>> by_class(num_classes);
    for (const SourceItem& item : src.items) by_class[item.meta.label].push_back(&item);
    for (int k = 0; k < num_classes; ++k) {
      auto& items = by_class[k];
      if (!train) {
        pools[Pool::test][k] = items;
        continue;
      }
      Rng rng({seed, kPoolSplit, uint64_t(k)});
      shuffle(items, rng);
      const size_t val = std::min<size_t>(c.val_per_class, items.size());
      pools[Pool::val][k].assign(items.begin(), items.begin() + val);
      pools[Pool::train][k].assign(items.begin() + val, items.end());
    }
  }

  const auto shared = std::make_shared<const SpuriousFashionConfig>(c);  // for the decoders
  std::vector<Source> sources;
  for (uint64_t store = 0; store < std::size(kStores); ++store) {
    const StoreSpec& spec = kStores[store];
    const int64_t n = c.*spec.size;
    if (n == 0) continue;
    Source src;
    data::Manifest& m = src.layout;
    m.dataset = "spurious-fashion";
    m.split = spec.name;
    m.image_size = c.image_size;
    m.has_captions = true;
    m.attribute_names = {"place"};
    m.attribute_values["place"] = plan.places;

    // The store's classes (Fashion-MNIST labels; the store's label is the position here).
    std::vector<int> labels;
    switch (spec.kind) {
      case Kind::pretrain:
        for (int k = 0; k < num_classes; ++k) labels.push_back(k);
        break;
      case Kind::biased:
      case Kind::shifted:
        labels = plan.finetune;
        break;
      case Kind::group:
        labels = plan.group_classes;
        break;
      case Kind::heldout:
        labels = plan.heldout;
        break;
    }
    for (int k : labels) m.class_names.push_back(class_names[k]);
    if (spec.kind == Kind::group) {
      m.has_groups = true;
      for (int y = 0; y < 2; ++y)
        for (int j = 0; j < 2; ++j)
          m.group_names.push_back(class_names[labels[y]] + " on " + plan.places[plan.group_places[j]]);
    }

    // (store label, place) of every item: equal cells dealt in turn, then shuffled.
    const int C = int(labels.size()), P = int(plan.places.size());
    std::vector<std::pair<int, int>> cells(n);
    for (int64_t i = 0; i < n; ++i) {
      switch (spec.kind) {
        case Kind::pretrain:
        case Kind::shifted:
        case Kind::heldout:
          cells[i] = {int(i % (C * P)) / P, int(i % (C * P)) % P};
          break;
        case Kind::biased:
          cells[i] = {int(i % C), -1};
          break;
        case Kind::group:
          cells[i] = {int(i % 4) / 2, plan.group_places[i % 2]};
          break;
      }
    }
    Rng order({seed, kOrder, store});
    shuffle(cells, order);

    // Objects: each class walks through its own shuffled pool (again from the start when the
    // store wants more images of a class than the pool holds).
    std::vector<std::vector<const SourceItem*>> objects(C);
    for (int y = 0; y < C; ++y) {
      objects[y] = pools[spec.pool][labels[y]];
      check(!objects[y].empty(), "spurious-fashion: no Fashion-MNIST images of class '", class_names[labels[y]],
            "' for store ", spec.name, " (is --val-per-class 0, or the IDX files incomplete?)");
      Rng rng({seed, kObject, store, uint64_t(y)});
      shuffle(objects[y], rng);
    }
    std::vector<size_t> used(C, 0);

    for (int64_t i = 0; i < n; ++i) {
      auto [y, place] = cells[i];
      if (place < 0) {  // biased: the typical place with probability rho, else any place
        Rng rng({seed, kPlace, store, uint64_t(i)});
        const int typical = plan.typical[y];
        place = rng.uniform() < c.rho ? typical : int(rng.below(P));
      }
      const SourceItem* object = objects[y][used[y]++ % objects[y].size()];
      data::SampleMeta meta;
      meta.label = y;
      meta.attributes["place"] = place;
      if (spec.kind == Kind::group) {
        const int j = place == plan.group_places[0] ? 0 : 1;
        meta.group = 2 * y + j;
      }
      meta.source = object->meta.source;
      const std::string& cls = class_names[labels[y]];
      if (spec.kind == Kind::pretrain) {
        Rng rng({seed, kCaption, store, uint64_t(i)});
        meta.caption = pretrain_caption(cls, plan.places[place], plan.caption_weights, rng);
      } else {
        meta.caption = fill(c.caption, cls);
      }
      const uint64_t variation = data::mix64(data::mix64(data::mix64(seed ^ kImage) ^ store) ^ uint64_t(i));
      src.items.push_back(SourceItem{[place = plan.places[place], decode = object->decode, variation, shared] {
                                       return compose_image(place, decode(), variation, *shared);
                                     },
                                     std::move(meta)});
    }
    sources.push_back(std::move(src));
  }
  return sources;
}

}  // namespace starft::sharding
