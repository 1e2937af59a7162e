#include "data/image.h"

#include <fcntl.h>
#include <jerror.h>
#include <jpeglib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/error.h"
#include "common/lfs_pointer.h"

namespace starft::data {

// ---- JPEG: libjpeg with an error manager that stops at the first warning ----------------------
//
// Why not cv::imread alone: libjpeg treats a file that ends early ("Premature end of JPEG file"),
// corrupt entropy data ("Corrupt JPEG data: N extraneous bytes before marker", "bad Huffman
// code") and the like as *warnings*: it fills what is missing with grey and carries on, and
// OpenCV's decoder only prints the message (without the file's name) and returns the half-grey
// image as good (opencv/opencv#6468). OpenCV has no way to ask for its decoder's warnings, so
// starft drives libjpeg (the same libjpeg-turbo OpenCV links) itself, as TurboJPEG's
// TJFLAG_STOPONWARNING does: the error manager's emit_message ends the decode at any warning.
// Images are decoded once, straight into RGB; CMYK/YCCK conversion and the EXIF rotation repeat
// what OpenCV's imread does (tests compare the pixels), so stores keep OpenCV's exact pixels.

namespace {

struct JpegErrors {
  jpeg_error_mgr mgr;  // first: libjpeg's pointer to it is cast back to JpegErrors
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void jpeg_on_error(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}

void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  // Warnings about metadata only, with every pixel decoded: a newer JFIF minor version, a
  // malformed ICC profile marker (the profile is not used).
  const int code = cinfo->err->msg_code;
  if (code == JWRN_JFIF_MAJOR || code == JWRN_BOGUS_ICC) return;
  jpeg_on_error(cinfo);  // any other warning means missing or damaged image data
}

uint32_t read_u32(const uint8_t* p, bool big) {
  return big ? (uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3])
             : (uint32_t{p[3]} << 24 | uint32_t{p[2]} << 16 | uint32_t{p[1]} << 8 | p[0]);
}
uint16_t read_u16(const uint8_t* p, bool big) {
  return static_cast<uint16_t>(big ? (p[0] << 8 | p[1]) : (p[1] << 8 | p[0]));
}

}  // namespace

int exif_orientation(const uint8_t* app1, size_t size) {
  // "Exif\0\0", then a TIFF header ("II*\0" or "MM\0*", offset of IFD0), IFD0's entry count and
  // 12-byte entries (tag, type, count, value); orientation is tag 0x0112, a SHORT.
  if (size < 14 || std::memcmp(app1, "Exif\0\0", 6) != 0) return 0;
  const uint8_t* tiff = app1 + 6;
  const size_t n = size - 6;
  bool big;
  if (tiff[0] == 'I' && tiff[1] == 'I')
    big = false;
  else if (tiff[0] == 'M' && tiff[1] == 'M')
    big = true;
  else
    return 0;
  if (read_u16(tiff + 2, big) != 42) return 0;
  const uint32_t ifd = read_u32(tiff + 4, big);
  if (ifd > n || n - ifd < 2) return 0;
  const uint16_t entries = read_u16(tiff + ifd, big);
  for (uint32_t i = 0; i < entries; ++i) {
    const size_t at = ifd + 2 + static_cast<size_t>(i) * 12;
    if (at + 12 > n) return 0;
    if (read_u16(tiff + at, big) == 0x0112) return read_u16(tiff + at + 8, big);
  }
  return 0;
}

namespace {

// OpenCV's conversion of libjpeg's CMYK output (Adobe's inverted CMYK, as Photoshop writes it)
// to RGB (icvCvt_CMYK2BGR_8u_C4C3R in OpenCV's imgcodecs), so stored pixels stay the same.
void cmyk_row_to_rgb(const uint8_t* cmyk, uint8_t* rgb, size_t width) {
  for (size_t i = 0; i < width; ++i, cmyk += 4, rgb += 3) {
    const int c = cmyk[0], m = cmyk[1], y = cmyk[2], k = cmyk[3];
    rgb[0] = static_cast<uint8_t>(k - ((255 - c) * k >> 8));
    rgb[1] = static_cast<uint8_t>(k - ((255 - m) * k >> 8));
    rgb[2] = static_cast<uint8_t>(k - ((255 - y) * k >> 8));
  }
}

// OpenCV's ApplyExifOrientation (imgcodecs/loadsave.cpp), for the same pixels as cv::imread.
void apply_orientation(cv::Mat& image, int orientation) {
  switch (orientation) {
    case 2:
      cv::flip(image, image, 1);
      break;
    case 3:
      cv::flip(image, image, -1);
      break;
    case 4:
      cv::flip(image, image, 0);
      break;
    case 5:
      cv::transpose(image, image);
      break;
    case 6:
      cv::transpose(image, image);
      cv::flip(image, image, 1);
      break;
    case 7:
      cv::transpose(image, image);
      cv::flip(image, image, -1);
      break;
    case 8:
      cv::transpose(image, image);
      cv::flip(image, image, 0);
      break;
    default:
      break;
  }
}

// OpenCV's default limit on an image's pixels (CV_IO_MAX_IMAGE_PIXELS), kept for JPEGs decoded
// here: a few bytes of header can claim 65500 x 65500 pixels.
constexpr uint64_t kMaxPixels = uint64_t{1} << 30;

// Decodes the JPEG in [data, data + size) into *rgb (CV_8UC3, RGB, before EXIF rotation) and
// its EXIF orientation into *orientation; on failure returns false with libjpeg's message.
// Nothing with a destructor lives in this frame across setjmp (the Mats are the caller's).
bool decode_jpeg(const uint8_t* data, size_t size, cv::Mat* rgb, cv::Mat* cmyk_row, int* orientation, char* message) {
  jpeg_decompress_struct cinfo;
  JpegErrors errors;
  cinfo.err = jpeg_std_error(&errors.mgr);
  errors.mgr.error_exit = jpeg_on_error;
  errors.mgr.emit_message = jpeg_on_message;
  if (setjmp(errors.jump)) {
    std::snprintf(message, JMSG_LENGTH_MAX, "%s", errors.message);
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&cinfo, TRUE);
  if (static_cast<uint64_t>(cinfo.image_width) * cinfo.image_height > kMaxPixels) {
    std::snprintf(message, JMSG_LENGTH_MAX, "%ux%u pixels, more than the 2^30 that OpenCV's imread accepts",
                  cinfo.image_width, cinfo.image_height);
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  *orientation = 0;
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m && *orientation == 0; m = m->next)
    if (m->marker == JPEG_APP0 + 1) *orientation = exif_orientation(m->data, m->data_length);
  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  // libjpeg's limit is 65500 px a side, so the sizes fit; create() may throw bad_alloc, which
  // leaves cinfo allocated (the only leak, on a failed allocation).
  const int height = static_cast<int>(cinfo.output_height), width = static_cast<int>(cinfo.output_width);
  rgb->create(height, width, CV_8UC3);
  if (cmyk) cmyk_row->create(1, width, CV_8UC4);
  while (cinfo.output_scanline < cinfo.output_height) {
    uint8_t* out = rgb->ptr<uint8_t>(static_cast<int>(cinfo.output_scanline));
    JSAMPROW row = cmyk ? cmyk_row->ptr<uint8_t>(0) : out;
    jpeg_read_scanlines(&cinfo, &row, 1);
    if (cmyk) cmyk_row_to_rgb(row, out, static_cast<size_t>(width));
  }
  jpeg_finish_decompress(&cinfo);  // reads on to the EOI marker: a file cut after the pixels warns too
  jpeg_destroy_decompress(&cinfo);
  return true;
}

// ---- PNG: the chunk sequence must be complete -------------------------------------------------
//
// libpng (through OpenCV) reports a missing end of the image data only in some places, and data
// after the last IDAT is never read; walking the chunk headers (8 bytes each, no decoding) is
// the cheap way to know the file was not cut: every chunk lies inside the file and IEND is there.
std::string png_problem(const uint8_t* data, size_t size) {
  size_t at = 8;  // after the signature
  std::string last = "the signature";
  while (true) {
    if (size - at < 12)
      return "cut short: the file ends inside " + last + " at byte " + std::to_string(size) +
             ", with no IEND chunk (an interrupted download or copy?)";
    const uint32_t length = read_u32(data + at, true);
    const std::string type(reinterpret_cast<const char*>(data + at + 4), 4);
    if (length > size - at - 12)
      return "cut short: chunk '" + type + "' at byte " + std::to_string(at) + " needs " + std::to_string(length) +
             " bytes, the file has " + std::to_string(size - at - 12) + " left (an interrupted download or copy?)";
    if (type == "IEND") return "";
    last = "the chunk after '" + type + "'";
    at += 12 + static_cast<size_t>(length);
  }
}

std::string printable_start(const std::string& bytes) {
  std::string s;
  for (size_t i = 0; i < bytes.size() && s.size() < 24; ++i) {
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    s += (c >= 32 && c < 127) ? static_cast<char>(c) : '.';
  }
  return s;
}

std::string read_bytes(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("image ", path, ": cannot open (", std::strerror(errno), ")");
  struct stat st {};
  std::string bytes;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) bytes.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  int error = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) error = errno;
    if (n <= 0) break;  // an error, or the file shrank while being read
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  if (error != 0) fail("image ", path, ": read error (", std::strerror(error), ")");
  bytes.resize(got);
  return bytes;
}

// DICOM's preamble: 128 free bytes, then "DICM". OpenCV tries its GDCM decoder on any buffer
// with these four bytes there, ahead of its PxM and TIFF decoders, and GDCM crashes on damaged
// ones (found by tests/fuzz: a PNG-like header with "DICM" at byte 128 ended the process).
bool has_dicom_preamble(const uint8_t* data, size_t size) {
  return size >= 132 && std::memcmp(data + 128, "DICM", 4) == 0;
}

cv::Mat opencv_decode(const std::string& bytes, const std::string& path) {
  cv::Mat bgr;
  try {
    bgr = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data())),
                       cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    fail("image ", path, ": cannot decode (", e.what(), ")");
  }
  if (bgr.empty()) return bgr;
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

}  // namespace

const char* image_format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::jpeg:
      return "JPEG";
    case ImageFormat::png:
      return "PNG";
    case ImageFormat::bmp:
      return "BMP";
    case ImageFormat::webp:
      return "WebP";
    case ImageFormat::tiff:
      return "TIFF";
    case ImageFormat::pnm:
      return "PPM/PGM";
    case ImageFormat::unknown:
      break;
  }
  return "unknown";
}

ImageFormat image_format(const std::string& bytes) {
  const auto* d = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return ImageFormat::jpeg;
  if (n >= 8 && std::memcmp(d, kPng, 8) == 0) return ImageFormat::png;
  if (n >= 2 && d[0] == 'B' && d[1] == 'M') return ImageFormat::bmp;
  if (n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) return ImageFormat::webp;
  if (n >= 4 && (std::memcmp(d, "II*\0", 4) == 0 || std::memcmp(d, "MM\0*", 4) == 0)) return ImageFormat::tiff;
  if (n >= 3 && d[0] == 'P' && d[1] >= '1' && d[1] <= '6' && std::isspace(d[2])) return ImageFormat::pnm;
  return ImageFormat::unknown;
}

cv::Mat to_rgb(const cv::Mat& image) {
  check(image.depth() == CV_8U, "image is not 8-bit (OpenCV depth ", image.depth(), ")");
  cv::Mat rgb;
  switch (image.channels()) {
    case 1:
      cv::cvtColor(image, rgb, cv::COLOR_GRAY2RGB);
      break;
    case 3:
      rgb = image;
      break;
    case 4:
      cv::cvtColor(image, rgb, cv::COLOR_RGBA2RGB);
      break;
    default:
      fail("image has ", image.channels(), " channels (expected 1, 3 or 4)");
  }
  return rgb;
}

cv::Mat decode_image_rgb(const std::string& bytes, const std::string& path) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t size = bytes.size();
  if (size == 0) fail("image ", path, ": empty file (0 bytes)");
  if (size > static_cast<size_t>(INT32_MAX)) fail("image ", path, ": ", size, " bytes, too large for one image");
  const ImageFormat format = image_format(bytes);
  if (format == ImageFormat::unknown) refuse_lfs_pointer(bytes, "image " + path, path, "the image");
  if (format == ImageFormat::unknown)
    fail("image ", path, ": not an image starft reads (JPEG, PNG, BMP, WebP, TIFF, PPM/PGM); ", size,
         " bytes starting \"", printable_start(bytes), "\" (an error page saved under an image's name?)");
  if (format == ImageFormat::jpeg) {
    cv::Mat rgb, cmyk_row;
    int orientation = 0;
    char message[JMSG_LENGTH_MAX] = {0};
    if (!decode_jpeg(data, size, &rgb, &cmyk_row, &orientation, message))
      fail("image ", path, ": damaged JPEG (libjpeg: ", message,
           "); not used: libjpeg would fill what is missing "
           "or corrupt with grey");
    apply_orientation(rgb, orientation);
    return rgb;
  }
  const bool png = format == ImageFormat::png;
  if (png) {
    const std::string problem = png_problem(data, size);
    if (!problem.empty()) fail("image ", path, ": damaged PNG, ", problem);
  }
  if (!png && has_dicom_preamble(data, size))
    fail("image ", path, ": starts as ", image_format_name(format),
         " but carries DICOM's signature (\"DICM\" at byte 128), which OpenCV would decode as DICOM; starft does "
         "not read DICOM: convert the file to PNG");
  cv::Mat rgb = opencv_decode(bytes, path);
  if (rgb.empty())
    fail("image ", path, ": damaged ", image_format_name(format), " (", size, " bytes; OpenCV could not decode it)");
  return rgb;
}

cv::Mat read_image_rgb(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail("image ", path, ": no such file");
  return decode_image_rgb(read_bytes(path), path);
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
