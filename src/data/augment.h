#pragma once
// Image transforms from stored uint8 RGB to normalised float CHW model input.
//   train: RandomResizedCrop(output_size, scale, ratio, bicubic) + CLIP normalisation, no flip.
//   eval:  resize the shorter side to output_size (bicubic) + centre crop + CLIP normalisation.
// The random crop comes from Rng({stream, seed, epoch, sample index}), so a sample's view depends
// only on (seed, epoch, index), never on thread count or visiting order.
#include <opencv2/core.hpp>

#include <array>
#include <cstdint>
#include <string>

namespace starft::data {

enum class Transform { train, eval };

Transform parse_transform(const std::string& name);  // "train" or "eval"

struct AugmentOptions {
  Transform transform = Transform::train;
  int output_size = 224;
  uint64_t seed = 0;
  double scale_min = 0.9, scale_max = 1.0;                          // fraction of the image area
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;              // width / height
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};  // CLIP
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
};

// torchvision's RandomResizedCrop.get_params: up to 10 draws of (area, log-ratio), then a
// centre crop clamped to the ratio range. Returns the crop rectangle within width x height.
cv::Rect random_resized_crop(int width, int height, const AugmentOptions& options, uint64_t epoch, int64_t index);

// Transforms one RGB image (CV_8UC3, any size) and writes 3 x output_size x output_size floats
// (channel-major) to `out`.
void augment(const cv::Mat& rgb, const AugmentOptions& options, uint64_t epoch, int64_t index, float* out);

}  // namespace starft::data
