#include "data/shard_writer.h"

#include <zlib.h>

#include <spdlog/spdlog.h>

#include <cstring>
#include <filesystem>

#include "common/checksum.h"
#include "common/error.h"
#include "data/image.h"

namespace starft::data {

namespace fs = std::filesystem;

namespace {

// `bytes` bytes of `value`, little-endian (two's complement for negative values).
uint32_t crc_of_int(uint64_t value, int bytes) {
  uint8_t b[8];
  for (int i = 0; i < bytes; ++i) b[i] = static_cast<uint8_t>(value >> (8 * i));
  return crc32_of(b, static_cast<size_t>(bytes));
}

// HDF5 stores a variable-length string up to its first NUL, so that is what is covered.
uint32_t crc_of_text(const std::string& text) { return crc32_of(text.data(), std::strlen(text.c_str())); }

}  // namespace

std::vector<std::string> meta_crc_columns(const Manifest& layout) {
  std::vector<std::string> columns{"label"};
  if (layout.has_groups) columns.push_back("group");
  for (const auto& name : layout.attribute_names) columns.push_back("attributes/" + name);
  if (layout.has_captions) columns.push_back("caption");
  columns.push_back("source");
  return columns;
}

void append_meta_crcs(const SampleMeta& meta, const Manifest& layout, std::vector<uint32_t>& out) {
  out.push_back(crc_of_int(static_cast<uint64_t>(meta.label), 8));
  if (layout.has_groups) out.push_back(crc_of_int(static_cast<uint32_t>(meta.group), 4));
  for (const auto& name : layout.attribute_names) {
    auto it = meta.attributes.find(name);
    check(it != meta.attributes.end(), "sample '", meta.source, "' lacks attribute '", name, "'");
    out.push_back(crc_of_int(static_cast<uint32_t>(it->second), 4));
  }
  if (layout.has_captions) out.push_back(crc_of_text(meta.caption));
  out.push_back(crc_of_text(meta.source));
}

ShardWriter::ShardWriter(const std::string& dir, const std::string& file, const Manifest& layout)
    : dir_(dir), file_(file), tmp_path_((fs::path(dir) / (file + ".tmp")).string()), layout_(layout) {
  layout_.shards.clear();
  layout_.skipped.clear();
  attributes_.resize(layout_.attribute_names.size());
  crc_ = 0;
  auto guard = h5::lock();
  h5file_ = h5::create(tmp_path_);
  const hsize_t s = layout_.image_size;
  hsize_t dims[4] = {0, s, s, 3};
  hsize_t maxdims[4] = {H5S_UNLIMITED, s, s, 3};
  hsize_t chunk[4] = {1, s, s, 3};  // one image per chunk: one read per random access
  h5::Handle space(H5Screate_simple(4, dims, maxdims));
  h5::Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  h5::check(H5Pset_chunk(dcpl.get(), 4, chunk), tmp_path_ + ": images chunking");
  if (layout_.compression > 0) h5::check(H5Pset_deflate(dcpl.get(), layout_.compression), tmp_path_ + ": gzip");
  images_ =
      h5::Handle(H5Dcreate2(h5file_.get(), "images", H5T_STD_U8LE, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
  h5::check(images_.get(), tmp_path_ + ": cannot create dataset 'images'");
}

ShardWriter::~ShardWriter() {
  if (finished_) return;
  {
    auto guard = h5::lock();
    images_.reset();
    h5file_.reset();
  }
  std::error_code ec;
  fs::remove(tmp_path_, ec);
}

void ShardWriter::grow_images(int64_t rows) {
  hsize_t s = layout_.image_size;
  hsize_t dims[4] = {static_cast<hsize_t>(rows), s, s, 3};
  h5::check(H5Dset_extent(images_.get(), dims), tmp_path_ + ": cannot extend 'images'");
  capacity_ = rows;
}

void ShardWriter::add(const cv::Mat& rgb, const SampleMeta& meta) {
  check(!finished_, "ShardWriter::add after finish");
  const int s = layout_.image_size;
  check(rgb.type() == CV_8UC3 && rgb.rows == s && rgb.cols == s, tmp_path_, ": sample '", meta.source, "' is not a ", s,
        "x", s, " RGB image (fit it with fit_square first)");
  check(
      meta.label >= 0 && (layout_.class_names.empty() || meta.label < static_cast<int64_t>(layout_.class_names.size())),
      "sample '", meta.source, "': label ", meta.label, " is outside 0..", layout_.class_names.size() - 1);
  check(meta.attributes.size() == layout_.attribute_names.size(), "sample '", meta.source, "' has ",
        meta.attributes.size(), " attributes, the store declares ", layout_.attribute_names.size());
  std::vector<int32_t> attrs;
  for (const auto& name : layout_.attribute_names) {
    auto it = meta.attributes.find(name);
    check(it != meta.attributes.end(), "sample '", meta.source, "' lacks attribute '", name, "'");
    attrs.push_back(it->second);
  }
  cv::Mat pixels = rgb.isContinuous() ? rgb : rgb.clone();
  const size_t bytes = static_cast<size_t>(s) * s * 3;
  {
    auto guard = h5::lock();
    if (count_ == capacity_) grow_images(std::max<int64_t>(64, capacity_ * 2));
    hsize_t start[4] = {static_cast<hsize_t>(count_), 0, 0, 0};
    hsize_t count[4] = {1, static_cast<hsize_t>(s), static_cast<hsize_t>(s), 3};
    h5::Handle fspace(H5Dget_space(images_.get()));
    h5::check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr), tmp_path_);
    h5::Handle mspace(H5Screate_simple(4, count, nullptr));
    h5::check(H5Dwrite(images_.get(), H5T_NATIVE_UINT8, mspace.get(), fspace.get(), H5P_DEFAULT, pixels.data),
              tmp_path_ + ": cannot write image (disk full?)");
  }
  // Each image's own CRC-32 (the `image_crc32` dataset, so `starft verify` can name a damaged
  // sample), combined into the shard's running checksum without a second pass over the bytes.
  const uint32_t image_crc = crc32_of(pixels.data, bytes);
  crc_ = crc32_combine(crc_, image_crc, static_cast<z_off_t>(bytes));
  image_crcs_.push_back(image_crc);
  append_meta_crcs(meta, layout_, meta_crcs_);
  labels_.push_back(meta.label);
  groups_.push_back(meta.group);
  for (size_t a = 0; a < attrs.size(); ++a) attributes_[a].push_back(attrs[a]);
  captions_.push_back(meta.caption);
  sources_.push_back(meta.source);
  ++count_;
}

// Writes `values` as dataset `name` of shape [values.size() / columns] (columns == 1) or
// [values.size() / columns, columns], row-major.
template <typename T>
static h5::Handle write_column(hid_t file, const std::string& name, hid_t file_type, hid_t mem_type,
                               const std::vector<T>& values, const std::string& path, size_t columns = 1) {
  hsize_t dims[2] = {values.size() / columns, columns};
  h5::Handle space(H5Screate_simple(columns == 1 ? 1 : 2, dims, nullptr));
  h5::Handle ds(H5Dcreate2(file, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  h5::check(ds.get(), path + ": cannot create dataset '" + name + "'");
  h5::check(H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
            path + ": cannot write dataset '" + name + "'");
  return ds;
}

ShardInfo ShardWriter::finish() {
  check(!finished_, "ShardWriter::finish called twice");
  ShardInfo info{file_, count_, ""};
  if (count_ == 0) {
    finished_ = true;
    {
      auto guard = h5::lock();
      images_.reset();
      h5file_.reset();
    }
    fs::remove(tmp_path_);
    return info;
  }
  // The checksum covers the image bytes in order, then the labels as little-endian int64, then
  // the meta_crc32 table as little-endian uint32, row-major (src/data/README.md).
  crc_ = crc32_update(crc_, labels_.data(), labels_.size() * 8);
  crc_ = crc32_update(crc_, meta_crcs_.data(), meta_crcs_.size() * 4);
  info.checksum = crc32_text(crc_);
  {
    auto guard = h5::lock();
    grow_images(count_);
    hid_t f = h5file_.get();
    write_column(f, "labels", H5T_STD_I64LE, H5T_NATIVE_INT64, labels_, tmp_path_);
    write_column(f, kImageCrcDataset, H5T_STD_U32LE, H5T_NATIVE_UINT32, image_crcs_, tmp_path_);
    {
      const auto columns = meta_crc_columns(layout_);
      std::string names;
      for (const auto& c : columns) names += (names.empty() ? "" : ",") + c;
      h5::Handle ds =
          write_column(f, kMetaCrcDataset, H5T_STD_U32LE, H5T_NATIVE_UINT32, meta_crcs_, tmp_path_, columns.size());
      h5::write_attribute(ds.get(), "columns", names);
    }
    if (layout_.has_groups) write_column(f, "groups", H5T_STD_I32LE, H5T_NATIVE_INT32, groups_, tmp_path_);
    if (!layout_.attribute_names.empty()) {
      h5::Handle group(H5Gcreate2(f, "attributes", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
      h5::check(group.get(), tmp_path_ + ": cannot create group 'attributes'");
      for (size_t a = 0; a < layout_.attribute_names.size(); ++a)
        write_column(group.get(), layout_.attribute_names[a], H5T_STD_I32LE, H5T_NATIVE_INT32, attributes_[a],
                     tmp_path_);
    }
    if (layout_.has_captions) h5::write_strings(f, "captions", captions_);
    h5::write_strings(f, "source", sources_);
    h5::write_attribute(f, "format_version", layout_.format_version);
    h5::write_attribute(f, "count", count_);
    h5::write_attribute(f, "checksum", info.checksum);
    images_.reset();
    h5::check(H5Fflush(f, H5F_SCOPE_GLOBAL), tmp_path_ + ": flush failed (disk full?)");
    h5file_.reset();
  }
  std::error_code ec;
  fs::rename(tmp_path_, fs::path(dir_) / file_, ec);
  if (ec) fail("cannot rename ", tmp_path_, " to ", file_, ": ", ec.message());
  finished_ = true;
  return info;
}

void prepare_store_dir(const std::string& dir, bool overwrite) {
  fs::path root(dir);
  if (fs::exists(root) && !fs::is_directory(root)) fail("output ", dir, " exists and is not a directory");
  fs::create_directories(root);
  if (fs::is_empty(root)) return;
  auto ours = [](const std::string& name) {
    return name.rfind("shard-", 0) == 0 || name == std::string(kManifestName) + ".tmp";
  };
  if (!fs::exists(root / kManifestName)) {
    // No manifest, so no store: shard files and temporaries alone are what a failed or killed
    // conversion left. They never block a rerun (nothing else is there to protect).
    std::vector<fs::path> leftovers;
    bool others = false;
    for (const auto& entry : fs::directory_iterator(root)) {
      if (ours(entry.path().filename().string()) && entry.is_regular_file())
        leftovers.push_back(entry.path());
      else
        others = true;
    }
    if (!others) {
      spdlog::info("output {}: removing {} file(s) left by an unfinished conversion (no manifest.json, so no store)",
                   dir, leftovers.size());
      for (const auto& p : leftovers) fs::remove(p);
      return;
    }
  }
  if (!overwrite) {
    fail("output directory ", dir,
         " is not empty; choose another --out or pass --overwrite to replace the store "
         "there");
  }
  // The manifest goes first: from then on the directory no longer looks like a whole store.
  fs::remove(root / kManifestName);
  for (const auto& entry : fs::directory_iterator(root)) {
    std::string name = entry.path().filename().string();
    if (ours(name) && entry.is_regular_file()) fs::remove(entry.path());
  }
}

StoreWriter::StoreWriter(const std::string& dir, Manifest layout, bool overwrite)
    : dir_(dir), manifest_(std::move(layout)) {
  check(manifest_.shard_size > 0, "shard size must be positive, got ", manifest_.shard_size);
  manifest_.shards.clear();
  manifest_.skipped.clear();
  prepare_store_dir(dir_, overwrite);
}

// Shards cover fixed runs of shard_size input items (written or skipped), as the distributed
// converter does, so a store does not depend on how it was written.
static bool shard_full(int64_t items_in_shard, int64_t shard_size) { return items_in_shard >= shard_size; }

void StoreWriter::add(const cv::Mat& image, const SampleMeta& meta) {
  if (!shard_) shard_ = std::make_unique<ShardWriter>(dir_, shard_file_name(next_shard_++), manifest_);
  shard_->add(fit_square(image, manifest_.image_size), meta);
  if (shard_full(shard_->count() + skipped_in_shard_, manifest_.shard_size)) close_shard();
}

void StoreWriter::add(const uint8_t* pixels, int height, int width, int channels, const SampleMeta& meta) {
  check(channels == 1 || channels == 3, "StoreWriter::add: ", channels, " channels (expected 1 or 3)");
  cv::Mat view(height, width, channels == 1 ? CV_8UC1 : CV_8UC3, const_cast<uint8_t*>(pixels));
  add(view, meta);
}

void StoreWriter::skip(const std::string& source, const std::string& reason) {
  manifest_.skipped.push_back({source, reason});
  if (!shard_) shard_ = std::make_unique<ShardWriter>(dir_, shard_file_name(next_shard_++), manifest_);
  ++skipped_in_shard_;
  if (shard_full(shard_->count() + skipped_in_shard_, manifest_.shard_size)) close_shard();
}

void StoreWriter::close_shard() {
  if (!shard_) return;
  ShardInfo info = shard_->finish();
  if (info.count > 0) manifest_.shards.push_back(info);
  shard_.reset();
  skipped_in_shard_ = 0;
}

Manifest StoreWriter::finish() {
  close_shard();
  manifest_.write(dir_);
  return manifest_;
}

}  // namespace starft::data
