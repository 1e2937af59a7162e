#include "data/augment.h"

#include <cmath>

#include "common/error.h"
#include "data/image.h"
#include "data/rng.h"

namespace starft::data {

static constexpr uint64_t kCropStream = 0x63726f70;  // "crop"

Transform parse_transform(const std::string& name) {
  if (name == "train") return Transform::train;
  if (name == "eval") return Transform::eval;
  fail("unknown transform '", name, "' (expected train or eval)");
}

cv::Rect random_resized_crop(int width, int height, const AugmentOptions& o, uint64_t epoch, int64_t index) {
  Rng rng({kCropStream, o.seed, epoch, static_cast<uint64_t>(index)});
  const double area = static_cast<double>(width) * height;
  const double log_lo = std::log(o.ratio_min), log_hi = std::log(o.ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    double target_area = area * rng.uniform(o.scale_min, o.scale_max);
    double aspect = std::exp(rng.uniform(log_lo, log_hi));
    int w = static_cast<int>(std::lround(std::sqrt(target_area * aspect)));
    int h = static_cast<int>(std::lround(std::sqrt(target_area / aspect)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      int top = static_cast<int>(rng.below(static_cast<uint64_t>(height - h) + 1));
      int left = static_cast<int>(rng.below(static_cast<uint64_t>(width - w) + 1));
      return {left, top, w, h};
    }
  }
  // Fallback: the whole image, cut to the nearest allowed aspect ratio, centred.
  double in_ratio = static_cast<double>(width) / height;
  int w = width, h = height;
  if (in_ratio < o.ratio_min) {
    h = static_cast<int>(std::lround(w / o.ratio_min));
  } else if (in_ratio > o.ratio_max) {
    w = static_cast<int>(std::lround(h * o.ratio_max));
  }
  return {(width - w) / 2, (height - h) / 2, w, h};
}

// uint8 HWC RGB -> float CHW, (x / 255 - mean) / std in one pass.
static void normalise(const cv::Mat& rgb, const AugmentOptions& o, float* out) {
  const int n = rgb.rows * rgb.cols;
  float scale[3], shift[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = 1.0f / (255.0f * o.std[c]);
    shift[c] = -o.mean[c] / o.std[c];
  }
  float* r = out;
  float* g = out + n;
  float* b = out + 2 * n;
  int k = 0;
  for (int y = 0; y < rgb.rows; ++y) {
    const uint8_t* p = rgb.ptr<uint8_t>(y);
    for (int x = 0; x < rgb.cols; ++x, ++k, p += 3) {
      r[k] = p[0] * scale[0] + shift[0];
      g[k] = p[1] * scale[1] + shift[1];
      b[k] = p[2] * scale[2] + shift[2];
    }
  }
}

void augment(const cv::Mat& rgb, const AugmentOptions& o, uint64_t epoch, int64_t index, float* out) {
  check(rgb.type() == CV_8UC3 && !rgb.empty(), "augment: expected a non-empty 8-bit RGB image");
  const int s = o.output_size;
  check(s > 0, "augment: output size ", s, " must be positive");
  cv::Mat resized;
  if (o.transform == Transform::train) {
    cv::Rect crop = random_resized_crop(rgb.cols, rgb.rows, o, epoch, index);
    resize_bicubic(rgb(crop), resized, s, s);
  } else {
    int h = rgb.rows, w = rgb.cols;
    int nh = h <= w ? s : static_cast<int>(static_cast<double>(s) * h / w);
    int nw = h <= w ? static_cast<int>(static_cast<double>(s) * w / h) : s;
    cv::Mat full;
    if (nh == h && nw == w) {
      full = rgb;
    } else {
      resize_bicubic(rgb, full, std::max(nw, s), std::max(nh, s));
    }
    resized = full(cv::Rect((full.cols - s) / 2, (full.rows - s) / 2, s, s));
  }
  normalise(resized, o, out);
}

}  // namespace starft::data
