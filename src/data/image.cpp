#include "data/image.h"

#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/error.h"

namespace starft::data {

cv::Mat to_rgb(const cv::Mat& image) {
  check(image.depth() == CV_8U, "image is not 8-bit (OpenCV depth ", image.depth(), ")");
  cv::Mat rgb;
  switch (image.channels()) {
    case 1: cv::cvtColor(image, rgb, cv::COLOR_GRAY2RGB); break;
    case 3: rgb = image; break;
    case 4: cv::cvtColor(image, rgb, cv::COLOR_RGBA2RGB); break;
    default: fail("image has ", image.channels(), " channels (expected 1, 3 or 4)");
  }
  return rgb;
}

cv::Mat read_image_rgb(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) fail("image ", path, ": no such file");
  cv::Mat bgr;
  try {
    bgr = cv::imread(path, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    fail("image ", path, ": cannot decode (", e.what(), ")");
  }
  if (bgr.empty()) fail("image ", path, ": cannot decode (corrupt, truncated or not an image)");
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

cv::Mat fit_square(const cv::Mat& image, int size) {
  check(size > 0, "image size must be positive, got ", size);
  check(!image.empty(), "empty image");
  cv::Mat rgb = to_rgb(image);
  int h = rgb.rows, w = rgb.cols;
  int shorter = std::min(h, w);
  cv::Mat resized = rgb;
  if (shorter != size) {
    // As torchvision's Resize(int): the shorter side becomes `size`, the longer one scales along
    // (truncated); then the centre crop.
    int nh = h <= w ? size : static_cast<int>(static_cast<double>(size) * h / w);
    int nw = h <= w ? static_cast<int>(static_cast<double>(size) * w / h) : size;
    nh = std::max(nh, size);
    nw = std::max(nw, size);
    cv::resize(rgb, resized, cv::Size(nw, nh), 0, 0, shorter > size ? cv::INTER_AREA : cv::INTER_CUBIC);
  }
  int top = (resized.rows - size) / 2, left = (resized.cols - size) / 2;
  return resized(cv::Rect(left, top, size, size)).clone();
}

void resize_bicubic(const cv::Mat& src, cv::Mat& dst, int width, int height) {
  bool big_shrink = width * 2 < src.cols || height * 2 < src.rows;
  cv::resize(src, dst, cv::Size(width, height), 0, 0, big_shrink ? cv::INTER_AREA : cv::INTER_CUBIC);
}

}  // namespace starft::data
