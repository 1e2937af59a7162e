#include "data/verify.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "data/hdf5.h"
#include "data/manifest.h"
#include "data/shard_writer.h"

namespace starft::data {

namespace fs = std::filesystem;

namespace {

std::string crc_text(uint32_t crc) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "crc32:%08x", crc);
  return buf;
}

std::string dims_text(const std::vector<hsize_t>& dims) {
  std::string s;
  for (auto d : dims) s += (s.empty() ? "" : ",") + std::to_string(d);
  return "[" + s + "]";
}

// Checks one shard; appends its problems. `first` is the global index of its row 0.
void verify_shard(const std::string& dir, const Manifest& m, const ShardInfo& info, int64_t first,
                  StoreReport& report) {
  const std::string path = (fs::path(dir) / info.file).string();
  auto problem = [&](int64_t row, const std::string& source, const std::string& what) {
    report.problems.push_back({info.file, row, row >= 0 ? first + row : -1, source, what});
  };
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    problem(-1, "",
            "missing (listed in manifest.json with " + std::to_string(info.count) +
                " samples); copy the whole store again or re-run `starft shard`");
    return;
  }
  const auto size = fs::file_size(path, ec);
  auto guard = h5::lock();
  h5::Handle file;
  try {
    file = h5::open_read(path);
  } catch (const std::exception& e) {
    problem(-1, "",
            "not a readable HDF5 file (" + std::to_string(size) +
                " bytes; cut short by an interrupted copy?): " + e.what());
    return;
  }
  const hsize_t n = static_cast<hsize_t>(info.count), s = static_cast<hsize_t>(m.image_size);
  try {
    const auto version = h5::read_int_attribute(file.get(), "format_version", path);
    if (version != m.format_version)
      problem(-1, "",
              "format version " + std::to_string(version) + ", manifest.json says " + std::to_string(m.format_version));
    const auto count = h5::read_int_attribute(file.get(), "count", path);
    const auto checksum = h5::read_string_attribute(file.get(), "checksum", path);
    if (count != info.count || checksum != info.checksum) {
      problem(-1, "",
              "holds " + std::to_string(count) + " samples with checksum " + checksum + ", manifest.json says " +
                  std::to_string(info.count) + " with " + info.checksum +
                  ": a shard of another conversion under this name; copy the right one or re-run "
                  "`starft shard`");
      return;  // its rows are not the manifest's rows
    }
  } catch (const std::exception& e) {
    problem(-1, "", std::string("attributes unreadable: ") + e.what());
    return;
  }

  // Datasets and their shapes.
  auto open = [&](const std::string& name, const std::vector<hsize_t>& want, h5::Handle& out) {
    try {
      out = h5::open_dataset(file.get(), name, path);
      const auto got = h5::shape(out.get());
      if (got != want) {
        problem(-1, "", "dataset '" + name + "' has shape " + dims_text(got) + ", expected " + dims_text(want));
        out.reset();
      }
    } catch (const std::exception& e) {
      problem(-1, "", e.what());
      out.reset();
    }
    return out.valid();
  };
  h5::Handle images, labels_ds, source_ds, crc_ds, other;
  const bool have_images = open("images", {n, s, s, 3}, images);
  const bool have_labels = open("labels", {n}, labels_ds);
  const bool have_sources = open("source", {n}, source_ds);
  if (m.has_captions) open("captions", {n}, other);
  if (m.has_groups) open("groups", {n}, other);
  for (const auto& a : m.attribute_names) open("attributes/" + a, {n}, other);
  const bool per_image = h5::exists(file.get(), kImageCrcDataset);
  if (per_image)
    open(kImageCrcDataset, {n}, crc_ds);
  else
    report.per_image_checksums = false;

  std::vector<std::string> sources(n);
  if (have_sources) {
    try {
      sources = h5::read_strings(source_ds.get(), 0, n);
    } catch (const std::exception& e) {
      problem(-1, "", std::string("the 'source' strings are unreadable: ") + e.what());
    }
  }
  std::vector<int64_t> labels(n, 0);
  if (have_labels) {
    if (H5Dread(labels_ds.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels.data()) < 0) {
      problem(-1, "", "the 'labels' dataset is unreadable: " + h5::error_text());
    } else {
      const int64_t classes = static_cast<int64_t>(m.class_names.size());
      for (hsize_t r = 0; r < n; ++r)
        if (labels[r] < 0 || (classes > 0 && labels[r] >= classes))
          problem(static_cast<int64_t>(r), sources[r],
                  "label " + std::to_string(labels[r]) + " is outside 0.." + std::to_string(classes - 1));
    }
  }
  std::vector<uint32_t> crcs;
  if (crc_ds.valid()) {
    crcs.resize(n);
    if (H5Dread(crc_ds.get(), H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, crcs.data()) < 0) {
      problem(-1, "", std::string("the '") + kImageCrcDataset + "' dataset is unreadable: " + h5::error_text());
      crcs.clear();
    }
  }
  if (!have_images) return;

  // Every image through HDF5's ordinary read path (filters applied), one row at a time.
  const size_t bytes = static_cast<size_t>(s * s * 3);
  std::vector<uint8_t> pixels(bytes);
  uint32_t shard_crc = crc32(0L, Z_NULL, 0);
  bool all_read = true;
  int64_t bad_images = 0;
  h5::Handle fspace(H5Dget_space(images.get()));
  hsize_t count[4] = {1, s, s, 3};
  h5::Handle mspace(H5Screate_simple(4, count, nullptr));
  for (hsize_t r = 0; r < n; ++r) {
    hsize_t start[4] = {r, 0, 0, 0};
    const auto row = static_cast<int64_t>(r);
    if (H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr) < 0 ||
        H5Dread(images.get(), H5T_NATIVE_UINT8, mspace.get(), fspace.get(), H5P_DEFAULT, pixels.data()) < 0) {
      problem(row, sources[r], "image unreadable: " + h5::error_text());
      all_read = false;
      continue;
    }
    const uint32_t crc = crc32(crc32(0L, Z_NULL, 0), pixels.data(), static_cast<uInt>(bytes));
    shard_crc = crc32_combine(shard_crc, crc, static_cast<z_off_t>(bytes));
    ++report.samples_checked;
    if (!crcs.empty() && crcs[r] != crc) {
      problem(row, sources[r], "image bytes changed: CRC-32 " + crc_text(crc) + ", written as " + crc_text(crcs[r]));
      ++bad_images;
    }
  }
  if (!all_read || !have_labels) return;
  shard_crc = crc32(shard_crc, reinterpret_cast<const Bytef*>(labels.data()), static_cast<uInt>(n * 8));
  if (crc_text(shard_crc) != info.checksum && bad_images == 0) {
    problem(-1, "",
            "content checksum " + crc_text(shard_crc) + " differs from manifest.json's " + info.checksum +
                (per_image ? " (the labels changed)"
                           : " (this shard predates per-image checksums, so the damaged sample cannot be "
                             "named)") +
                "; copy the shard again or re-run `starft shard`");
  }
}

}  // namespace

StoreReport verify_store(const std::string& dir, const std::function<void(int64_t, int64_t)>& progress) {
  StoreReport report;
  report.dir = dir;
  Manifest m;
  try {
    m = Manifest::read(dir);
  } catch (const std::exception& e) {
    report.problems.push_back({kManifestName, -1, -1, "", e.what()});
    return report;
  }
  report.shards = static_cast<int64_t>(m.shards.size());
  report.samples = m.count();
  int64_t first = 0;
  std::set<std::string> listed;
  for (size_t i = 0; i < m.shards.size(); ++i) {
    listed.insert(m.shards[i].file);
    try {
      verify_shard(dir, m, m.shards[i], first, report);
    } catch (const std::exception& e) {
      report.problems.push_back({m.shards[i].file, -1, -1, "", e.what()});
    }
    first += m.shards[i].count;
    if (progress) progress(static_cast<int64_t>(i) + 1, report.shards);
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0)
      report.notes.push_back(name + ": a temporary file of an unfinished conversion (safe to delete)");
    else if (name.rfind("shard-", 0) == 0 && !listed.count(name))
      report.notes.push_back(name + ": a shard file not listed in manifest.json (not part of the store)");
  }
  std::sort(report.notes.begin(), report.notes.end());
  return report;
}

}  // namespace starft::data
