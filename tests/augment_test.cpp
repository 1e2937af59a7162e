// Augmentation: crop parameters, normalisation, determinism.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "data/augment.h"

using namespace starft;
using namespace starft::data;

TEST(AugmentTest, RandomResizedCropStaysInRange) {
  AugmentOptions o;
  o.seed = 3;
  int fallbacks = 0;
  for (int64_t index = 0; index < 2000; ++index) {
    cv::Rect r = random_resized_crop(256, 256, o, 1, index);
    ASSERT_GE(r.x, 0);
    ASSERT_GE(r.y, 0);
    ASSERT_LE(r.x + r.width, 256);
    ASSERT_LE(r.y + r.height, 256);
    double area = static_cast<double>(r.width) * r.height / (256.0 * 256.0);
    double ratio = static_cast<double>(r.width) / r.height;
    if (r.width == 256 && r.height == 256) {
      ++fallbacks;  // whole image, after 10 draws that did not fit
      continue;
    }
    // Rounding of width and height moves the area and ratio a little.
    EXPECT_GE(area, 0.9 - 0.01);
    EXPECT_LE(area, 1.0);
    EXPECT_GE(ratio, 3.0 / 4.0 - 0.01);
    EXPECT_LE(ratio, 4.0 / 3.0 + 0.01);
  }
  // With scale (0.9, 1) on a square, a draw fits about 18% of the time, so about 0.82^10 = 14%
  // of the samples take torchvision's fallback (the whole image).
  EXPECT_GT(fallbacks, 150);
  EXPECT_LT(fallbacks, 400);
}

TEST(AugmentTest, CropDependsOnlyOnSeedEpochAndIndex) {
  AugmentOptions o;
  o.seed = 5;
  EXPECT_EQ(random_resized_crop(256, 256, o, 2, 17), random_resized_crop(256, 256, o, 2, 17));
  int differ_epoch = 0, differ_index = 0, differ_seed = 0;
  AugmentOptions other = o;
  other.seed = 6;
  for (int64_t i = 0; i < 50; ++i) {
    differ_epoch += random_resized_crop(256, 256, o, 2, i) != random_resized_crop(256, 256, o, 3, i);
    differ_index += random_resized_crop(256, 256, o, 2, i) != random_resized_crop(256, 256, o, 2, i + 1000);
    differ_seed += random_resized_crop(256, 256, o, 2, i) != random_resized_crop(256, 256, other, 2, i);
  }
  // Two draws agree only when both fall back to the whole image (about 2%).
  EXPECT_GT(differ_epoch, 40);
  EXPECT_GT(differ_index, 40);
  EXPECT_GT(differ_seed, 40);
}

TEST(AugmentTest, WideImageFallsBackToCentreCropAtMaxRatio) {
  AugmentOptions o;
  // 1000 x 10 cannot hold any crop with ratio <= 4/3 and 90% of the area: the fallback is the
  // centred 13 x 10 window (round(10 * 4/3) = 13).
  cv::Rect r = random_resized_crop(1000, 10, o, 0, 0);
  EXPECT_EQ(r, cv::Rect((1000 - 13) / 2, 0, 13, 10));
}

TEST(AugmentTest, NormalisesWithClipMeanAndStd) {
  cv::Mat img(40, 60, CV_8UC3, cv::Scalar(200, 100, 50));
  for (Transform t : {Transform::train, Transform::eval}) {
    AugmentOptions o;
    o.transform = t;
    o.output_size = 32;
    std::vector<float> out(3 * 32 * 32);
    augment(img, o, 0, 0, out.data());
    const float values[3] = {200, 100, 50};
    for (int c = 0; c < 3; ++c) {
      float want = (values[c] / 255.0f - o.mean[c]) / o.std[c];
      for (int k = 0; k < 32 * 32; ++k) ASSERT_NEAR(out[c * 32 * 32 + k], want, 1e-5) << "channel " << c;
    }
  }
}

TEST(AugmentTest, EvalIsResizeShorterSideAndCentreCrop) {
  // 64 x 32 (w x h) with the left and right quarters black, the middle half white: eval at 16
  // resizes to 32 x 16 and keeps the middle 16 columns, which are all white.
  cv::Mat img(32, 64, CV_8UC3, cv::Scalar(0, 0, 0));
  img(cv::Rect(16, 0, 32, 32)).setTo(cv::Scalar(255, 255, 255));
  AugmentOptions o;
  o.transform = Transform::eval;
  o.output_size = 16;
  std::vector<float> out(3 * 16 * 16);
  augment(img, o, 0, 0, out.data());
  float white = (1.0f - o.mean[0]) / o.std[0];
  for (int y = 0; y < 16; ++y)
    for (int x = 1; x < 15; ++x) EXPECT_NEAR(out[y * 16 + x], white, 0.05) << x << "," << y;
  // Deterministic: the same call gives the same output; eval ignores epoch and index.
  std::vector<float> again(out.size());
  augment(img, o, 9, 1234, again.data());
  EXPECT_EQ(out, again);
}

TEST(AugmentTest, TrainViewVariesWithEpochAndIsReproducible) {
  cv::Mat img(64, 64, CV_8UC3);
  cv::randu(img, 0, 255);
  AugmentOptions o;
  o.output_size = 48;
  std::vector<float> a(3 * 48 * 48), b(a.size()), c(a.size());
  augment(img, o, 1, 7, a.data());
  augment(img, o, 1, 7, b.data());
  augment(img, o, 2, 7, c.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(AugmentTest, BadInputIsRefused) {
  AugmentOptions o;
  std::vector<float> out(3 * 224 * 224);
  EXPECT_THROW(augment(cv::Mat(), o, 0, 0, out.data()), Error);
  EXPECT_THROW(augment(cv::Mat(10, 10, CV_8UC1), o, 0, 0, out.data()), Error);
  EXPECT_THROW(parse_transform("flip"), Error);
}
