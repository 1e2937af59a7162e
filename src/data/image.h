#pragma once
// Image decoding and resizing shared by the converters, the store writer and augmentation.
// Images are 8-bit RGB (OpenCV's BGR is converted on decode).
#include <opencv2/core.hpp>

#include <string>

namespace starft::data {

// Decodes a JPEG/PNG/... file into RGB (grey and alpha images become 3-channel RGB).
// Throws starft::Error naming `path` when the file is missing, unreadable or corrupt.
cv::Mat read_image_rgb(const std::string& path);

// Converts 1-, 3- (already RGB) or 4-channel 8-bit images to 3-channel RGB.
cv::Mat to_rgb(const cv::Mat& image);

// The stored form of an image: shorter side resized to `size` (INTER_AREA when shrinking,
// which is antialiased; bicubic when enlarging), then the centre `size` x `size` crop.
cv::Mat fit_square(const cv::Mat& rgb, int size);

// Bicubic resize used by augmentation; INTER_AREA instead when shrinking by more than 2x,
// where bicubic would alias (e.g. 256 px store images to 32 px model inputs).
void resize_bicubic(const cv::Mat& src, cv::Mat& dst, int width, int height);

}  // namespace starft::data
