#include "data/store.h"

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "data/verify.h"

namespace starft::data {

namespace fs = std::filesystem;

static constexpr size_t kMaxOpenShards = 64;

struct Store::Shard {
  h5::Handle file, images, captions, source;
  // How image chunks can be read: straight from the file (one image per chunk, no filter or
  // gzip only) or through HDF5's general hyperslab path.
  bool direct = false;
  bool gzip = false;
  std::list<size_t>::iterator lru_pos;
};

std::string Store::shard_path(size_t shard) const { return (fs::path(dir_) / manifest_.shards[shard].file).string(); }

Store::Store(const std::string& dir) : dir_(dir), manifest_(Manifest::read(dir)) {
  attributes_.resize(manifest_.attribute_names.size());
  offsets_.push_back(0);
  const hsize_t s = manifest_.image_size;
  const int64_t num_classes = static_cast<int64_t>(manifest_.class_names.size());
  for (size_t i = 0; i < manifest_.shards.size(); ++i) {
    const ShardInfo& info = manifest_.shards[i];
    std::string path = shard_path(i);
    if (!fs::exists(path)) {
      fail("store ", dir_, ": shard ", info.file, " listed in ", kManifestName,
           " is missing; copy the whole store again or re-run `starft shard`");
    }
    auto guard = h5::lock();
    h5::Handle file = h5::open_read(path);
    const hsize_t n = info.count;
    auto version = h5::read_int_attribute(file.get(), "format_version", path);
    check(version == manifest_.format_version, "shard ", path, ": format version ", version, " but ", kManifestName,
          " says ", manifest_.format_version);
    auto count = h5::read_int_attribute(file.get(), "count", path);
    check(count == info.count, "shard ", path, ": holds ", count, " samples but ", kManifestName, " says ", info.count,
          " (the manifest belongs to another conversion?)");
    auto checksum = h5::read_string_attribute(file.get(), "checksum", path);
    check(checksum == info.checksum, "shard ", path, ": checksum ", checksum, " differs from ", kManifestName, "'s ",
          info.checksum, " (the manifest belongs to another conversion; re-run `starft shard`)");
    auto expect_shape = [&](const std::string& name, std::vector<hsize_t> want) {
      h5::Handle ds = h5::open_dataset(file.get(), name, path);
      auto got = h5::shape(ds.get());
      if (got != want) {
        std::string g, w;
        for (auto d : got) g += (g.empty() ? "" : ",") + std::to_string(d);
        for (auto d : want) w += (w.empty() ? "" : ",") + std::to_string(d);
        fail("shard ", path, ": dataset '", name, "' has shape [", g, "], expected [", w, "]");
      }
      return ds;
    };
    {
      h5::Handle images = expect_shape("images", {n, s, s, 3});
      h5::Handle type(H5Dget_type(images.get()));
      check(H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_size(type.get()) == 1, "shard ", path,
            ": 'images' is not uint8");
    }
    auto read_column = [&](const std::string& name, hid_t mem_type, void* out) {
      h5::Handle ds = expect_shape(name, {n});
      h5::check(H5Dread(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out),
                "shard " + path + ": cannot read '" + name + "'");
    };
    size_t first = labels_.size();
    labels_.resize(first + n);
    read_column("labels", H5T_NATIVE_INT64, labels_.data() + first);
    for (size_t k = first; k < labels_.size(); ++k) {
      if (labels_[k] < 0 || (num_classes > 0 && labels_[k] >= num_classes))
        fail("shard ", path, ": label ", labels_[k], " at row ", k - first, " is outside 0..", num_classes - 1);
    }
    if (manifest_.has_groups) {
      groups_.resize(first + n);
      read_column("groups", H5T_NATIVE_INT32, groups_.data() + first);
    }
    for (size_t a = 0; a < attributes_.size(); ++a) {
      attributes_[a].resize(first + n);
      read_column("attributes/" + manifest_.attribute_names[a], H5T_NATIVE_INT32, attributes_[a].data() + first);
    }
    if (manifest_.has_captions) expect_shape("captions", {n});
    expect_shape("source", {n});
    offsets_.push_back(offsets_.back() + info.count);
  }
}

Store::~Store() {
  auto guard = h5::lock();
  open_.clear();
}

const std::vector<int32_t>& Store::attribute(const std::string& name) const {
  auto it = std::find(manifest_.attribute_names.begin(), manifest_.attribute_names.end(), name);
  if (it == manifest_.attribute_names.end()) fail("store ", dir_, " has no attribute '", name, "'");
  return attributes_[it - manifest_.attribute_names.begin()];
}

Store::Location Store::locate(int64_t index) const {
  check(index >= 0 && index < size(), "store ", dir_, ": sample index ", index, " is outside 0..", size() - 1);
  size_t shard = std::upper_bound(offsets_.begin(), offsets_.end(), index) - offsets_.begin() - 1;
  return {shard, static_cast<hsize_t>(index - offsets_[shard])};
}

Store::Shard& Store::open_shard(size_t shard) const {
  auto it = open_.find(shard);
  if (it != open_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second->lru_pos);
    return *it->second;
  }
  if (open_.size() >= kMaxOpenShards) {
    open_.erase(lru_.back());
    lru_.pop_back();
  }
  std::string path = shard_path(shard);
  auto sh = std::make_unique<Shard>();
  sh->file = h5::open_read(path);
  sh->images = h5::open_dataset(sh->file.get(), "images", path);
  sh->source = h5::open_dataset(sh->file.get(), "source", path);
  if (manifest_.has_captions) sh->captions = h5::open_dataset(sh->file.get(), "captions", path);
  h5::Handle dcpl(H5Dget_create_plist(sh->images.get()));
  if (H5Pget_layout(dcpl.get()) == H5D_CHUNKED) {
    hsize_t chunk[4] = {0, 0, 0, 0};
    const hsize_t s = manifest_.image_size;
    bool one_image =
        H5Pget_chunk(dcpl.get(), 4, chunk) == 4 && chunk[0] == 1 && chunk[1] == s && chunk[2] == s && chunk[3] == 3;
    int nfilters = H5Pget_nfilters(dcpl.get());
    bool plain = nfilters == 0;
    if (nfilters == 1) {
      unsigned flags = 0;
      size_t nelem = 0;
      H5Z_filter_t f = H5Pget_filter2(dcpl.get(), 0, &flags, &nelem, nullptr, 0, nullptr, nullptr);
      sh->gzip = f == H5Z_FILTER_DEFLATE;
    }
    sh->direct = one_image && (plain || sh->gzip);
  }
  lru_.push_front(shard);
  sh->lru_pos = lru_.begin();
  return *open_.emplace(shard, std::move(sh)).first->second;
}

void Store::read_image(int64_t index, uint8_t* out) const {
  Location loc = locate(index);
  const hsize_t s = manifest_.image_size;
  const size_t bytes = s * s * 3;
  std::vector<uint8_t> compressed;
  {
    auto guard = h5::lock();
    Shard& sh = open_shard(loc.shard);
    const std::string what = "shard " + shard_path(loc.shard) + ": cannot read image " + std::to_string(loc.row);
    if (sh.direct) {
      // One chunk is one image: read its stored bytes without HDF5's selection machinery.
      hsize_t offset[4] = {loc.row, 0, 0, 0};
      uint32_t filter_mask = 0;
      if (!sh.gzip) {
        h5::check(H5Dread_chunk(sh.images.get(), H5P_DEFAULT, offset, &filter_mask, out), what);
      } else {
        hsize_t stored = 0;
        h5::check(H5Dget_chunk_storage_size(sh.images.get(), offset, &stored), what);
        compressed.resize(stored);
        h5::check(H5Dread_chunk(sh.images.get(), H5P_DEFAULT, offset, &filter_mask, compressed.data()), what);
        if (filter_mask & 1) {  // the deflate filter was skipped for this chunk: stored raw
          check(stored == bytes, what, ": raw chunk of ", stored, " bytes");
          std::copy(compressed.begin(), compressed.end(), out);
          compressed.clear();
        }
      }
    } else {
      hsize_t start[4] = {loc.row, 0, 0, 0};
      hsize_t count[4] = {1, s, s, 3};
      h5::Handle fspace(H5Dget_space(sh.images.get()));
      h5::check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr), what);
      h5::Handle mspace(H5Screate_simple(4, count, nullptr));
      h5::check(H5Dread(sh.images.get(), H5T_NATIVE_UINT8, mspace.get(), fspace.get(), H5P_DEFAULT, out), what);
    }
  }
  if (!compressed.empty()) {
    // Inflate outside the HDF5 lock so other threads' reads are not held up.
    uLongf out_len = bytes;
    int rc = uncompress(out, &out_len, compressed.data(), compressed.size());
    check(rc == Z_OK && out_len == bytes, "shard ", shard_path(loc.shard), ": image ", loc.row,
          " does not decompress (damaged shard?)");
  }
}

std::string Store::caption(int64_t index) const {
  if (!manifest_.has_captions) return "";
  Location loc = locate(index);
  auto guard = h5::lock();
  return h5::read_strings(open_shard(loc.shard).captions.get(), loc.row, 1).at(0);
}

std::string Store::source(int64_t index) const {
  Location loc = locate(index);
  auto guard = h5::lock();
  return h5::read_strings(open_shard(loc.shard).source.get(), loc.row, 1).at(0);
}

Sample Store::get(int64_t index) const {
  Sample sample;
  sample.index = index;
  sample.image.create(manifest_.image_size, manifest_.image_size, CV_8UC3);
  read_image(index, sample.image.data);
  sample.label = labels_[index];
  if (!groups_.empty()) sample.group = groups_[index];
  for (const auto& column : attributes_) sample.attributes.push_back(column[index]);
  sample.caption = caption(index);
  sample.source = source(index);
  return sample;
}

void Store::verify() const {
  // One implementation of the checksums: `starft verify`'s, stopping at its first problem.
  const StoreReport report = verify_store(dir_);
  if (report.sound()) return;
  const StoreProblem& p = report.problems.front();
  fail("store ", dir_, ": ", problem_location(p), ": ", p.what,
       report.problems.size() > 1 ? " (" + std::to_string(report.problems.size()) +
                                        " problems in all; `starft verify " + dir_ + "` lists every one)"
                                  : std::string());
}

}  // namespace starft::data
