// `starft shard --from fashion-mnist`: the IDX files of Fashion-MNIST (Debian's dataset-fashion-mnist).
#include <zlib.h>

#include <filesystem>
#include <memory>

#include "common/error.h"
#include "common/lfs_pointer.h"
#include "sharding/sources.h"

namespace starft::sharding {

namespace fs = std::filesystem;

std::vector<std::string> fashion_mnist_class_names() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
}

namespace {

// An IDX file (gzip-compressed or plain): big-endian magic 0x000008NN (NN = number of dims),
// the dims as big-endian uint32, then uint8 data.
struct Idx {
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data;
};

Idx read_idx(const std::string& path, int want_dims) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail("Fashion-MNIST file ", path, ": cannot open");
  std::unique_ptr<gzFile_s, int (*)(gzFile)> guard(f, gzclose);
  auto read_u32 = [&](const char* what) {
    unsigned char b[4];
    if (gzread(f, b, 4) != 4) fail("Fashion-MNIST file ", path, ": truncated ", what);
    return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
  };
  uint32_t magic = read_u32("header");
  if ((magic >> 8) != 0x08 || static_cast<int>(magic & 0xff) != want_dims) {
    refuse_lfs_pointer_file(path, "Fashion-MNIST file " + path, "the IDX data");
    fail("Fashion-MNIST file ", path, ": not an IDX file of ", want_dims, "-D uint8 data (magic ", magic, ")");
  }
  Idx idx;
  size_t total = 1;
  for (int d = 0; d < want_dims; ++d) {
    idx.dims.push_back(read_u32("dimensions"));
    total *= idx.dims.back();
  }
  idx.data.resize(total);
  size_t got = 0;
  while (got < total) {
    int n = gzread(f, idx.data.data() + got, static_cast<unsigned>(std::min<size_t>(total - got, 1 << 30)));
    if (n <= 0) fail("Fashion-MNIST file ", path, ": truncated data (", got, " of ", total, " bytes)");
    got += n;
  }
  return idx;
}

std::string find_file(const std::string& dir, const std::string& stem) {
  for (const char* ext : {".gz", ""}) {
    fs::path p = fs::path(dir) / (stem + ext);
    if (fs::exists(p)) return p.string();
  }
  fail("--input ", dir, ": no ", stem,
       ".gz (install Debian's dataset-fashion-mnist or point --input at the IDX files)");
}

}  // namespace

std::vector<Source> fashion_mnist_sources(const std::string& dir) {
  std::vector<Source> sources;
  for (const std::string split : {"train", "test"}) {
    const std::string prefix = split == "train" ? "train" : "t10k";
    std::string images_path = find_file(dir, prefix + "-images-idx3-ubyte");
    std::string labels_path = find_file(dir, prefix + "-labels-idx1-ubyte");
    auto images = std::make_shared<Idx>(read_idx(images_path, 3));
    Idx labels = read_idx(labels_path, 1);
    if (images->dims[0] != labels.dims[0])
      fail("Fashion-MNIST: ", images_path, " has ", images->dims[0], " images but ", labels_path, " has ",
           labels.dims[0], " labels");
    Source src;
    src.layout.dataset = "fashion-mnist";
    src.layout.split = split;
    src.layout.class_names = fashion_mnist_class_names();
    const int h = images->dims[1], w = images->dims[2];
    const size_t n = images->dims[0];
    char id[32];
    for (size_t i = 0; i < n; ++i) {
      data::SampleMeta meta;
      meta.label = labels.data[i];
      if (meta.label >= 10) fail("Fashion-MNIST: ", labels_path, ": label ", meta.label, " at ", i, " is not 0..9");
      std::snprintf(id, sizeof id, "%s/%05zu", split.c_str(), i);
      meta.source = id;
      const uint8_t* pixels = images->data.data() + i * h * w;
      src.items.push_back(SourceItem{
          [images, pixels, h, w] { return cv::Mat(h, w, CV_8UC1, const_cast<uint8_t*>(pixels)).clone(); }, meta});
    }
    sources.push_back(std::move(src));
  }
  return sources;
}

}  // namespace starft::sharding
