#pragma once
// Image decoding and resizing shared by the converters, the store writer and augmentation.
// Images are 8-bit RGB (OpenCV's BGR is converted on decode).
#include <opencv2/core.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace starft::data {

// The formats starft decodes, recognised by their first bytes (never by the file's extension):
// JPEG (FF D8 FF), PNG (its 8-byte signature), BMP ("BM"), WebP ("RIFF" ... "WEBP"), TIFF ("II*\0"
// or "MM\0*") and PPM/PGM/PBM ("P1".."P6" then white space). The list is explicit because
// OpenCV's imdecode would also hand other bytes to decoders starft does not vet (DICOM through
// GDCM, OpenEXR, JPEG 2000, GDAL): a damaged file there can crash the process.
enum class ImageFormat { unknown, jpeg, png, bmp, webp, tiff, pnm };
ImageFormat image_format(const std::string& bytes);
const char* image_format_name(ImageFormat format);  // "JPEG", "PNG", ..., "unknown"

// Decodes a JPEG/PNG/BMP/WebP/TIFF/PPM file (image_format) into RGB [H, W] CV_8UC3 (grey and alpha images become RGB,
// EXIF orientation is applied, CMYK is converted). An image is used only when it decodes completely and without decoder
// warnings: throws starft::Error naming `path` (and what is wrong) for a missing, unreadable, empty (0-byte) or
// non-image file, a JPEG that libjpeg warns about (cut short, corrupt or extraneous entropy data, baseline or
// progressive), and a PNG whose chunks do not reach IEND or that libpng cannot decode, any other format (named with the
// file's first bytes; a Git LFS pointer is named as one, with `git lfs pull`), and a non-JPEG/PNG file that also
// carries DICOM's signature at byte 128.
cv::Mat read_image_rgb(const std::string& path);

// As read_image_rgb, for a file's bytes already in memory; `path` names it in errors.
cv::Mat decode_image_rgb(const std::string& bytes, const std::string& path);

// The EXIF orientation (1..8) in a JPEG APP1 marker's payload ("Exif\0\0" + TIFF), or 0 when
// it has none or is malformed. Never reads outside [app1, app1 + size).
int exif_orientation(const uint8_t* app1, size_t size);

// Converts 1-, 3- (already RGB) or 4-channel 8-bit images to 3-channel RGB.
cv::Mat to_rgb(const cv::Mat& image);

// The stored form of an image: shorter side resized to `size` (INTER_AREA when shrinking,
// which is antialiased; bicubic when enlarging), then the centre `size` x `size` crop.
cv::Mat fit_square(const cv::Mat& rgb, int size);

// Bicubic resize used by augmentation; INTER_AREA instead when shrinking by more than 2x,
// where bicubic would alias (e.g. 256 px store images to 32 px model inputs).
void resize_bicubic(const cv::Mat& src, cv::Mat& dst, int width, int height);

}  // namespace starft::data
