#include "data/verify.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "common/checksum.h"
#include "common/error.h"
#include "data/hdf5.h"
#include "data/manifest.h"
#include "data/shard_writer.h"

namespace starft::data {

namespace fs = std::filesystem;

namespace {

std::string dims_text(const std::vector<hsize_t>& dims) {
  std::string s;
  for (auto d : dims) s += (s.empty() ? "" : ",") + std::to_string(d);
  return "[" + s + "]";
}

// At most 80 characters of `text`, for messages (a caption may be long).
std::string short_text(const std::string& text) { return text.size() <= 80 ? text : text.substr(0, 77) + "..."; }

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
  const size_t problems_before = report.problems.size();
  h5::Handle images, labels_ds, source_ds, crc_ds, captions_ds, groups_ds, meta_ds;
  std::vector<h5::Handle> attribute_ds(m.attribute_names.size());
  const bool have_images = open("images", {n, s, s, 3}, images);
  const bool have_labels = open("labels", {n}, labels_ds);
  const bool have_sources = open("source", {n}, source_ds);
  if (m.has_captions) open("captions", {n}, captions_ds);
  if (m.has_groups) open("groups", {n}, groups_ds);
  for (size_t a = 0; a < m.attribute_names.size(); ++a)
    open("attributes/" + m.attribute_names[a], {n}, attribute_ds[a]);
  const bool per_image = h5::exists(file.get(), kImageCrcDataset);
  if (per_image)
    open(kImageCrcDataset, {n}, crc_ds);
  else
    report.per_image_checksums = false;
  const auto columns = meta_crc_columns(m);
  const bool per_field = h5::exists(file.get(), kMetaCrcDataset);
  if (per_field) {
    if (open(kMetaCrcDataset, {n, static_cast<hsize_t>(columns.size())}, meta_ds) &&
        H5Aexists(meta_ds.get(), "columns") > 0) {
      std::string want;
      for (const auto& c : columns) want += (want.empty() ? "" : ",") + c;
      std::string got;
      try {
        got = h5::read_string_attribute(meta_ds.get(), "columns", path);
      } catch (const std::exception& e) {
        got = std::string("(unreadable: ") + e.what() + ")";
      }
      if (got != want) {
        problem(-1, "",
                std::string("dataset '") + kMetaCrcDataset + "' has columns '" + got +
                    "', manifest.json's fields give '" + want + "'; copy the shard again or re-run `starft shard`");
        meta_ds.reset();
      }
    }
  } else {
    ++report.shards_without_field_checksums;
  }

  // The fields, whole (they are small); `fields_read` says whether every one could be read.
  bool fields_read = have_labels && have_sources;
  std::vector<std::string> sources(n);
  if (have_sources) {
    try {
      sources = h5::read_strings(source_ds.get(), 0, n);
    } catch (const std::exception& e) {
      problem(-1, "", std::string("the 'source' strings are unreadable: ") + e.what());
      sources.assign(n, "");
      fields_read = false;
    }
  }
  std::vector<std::string> captions;
  if (m.has_captions) {
    if (!captions_ds.valid()) {
      fields_read = false;
    } else {
      try {
        captions = h5::read_strings(captions_ds.get(), 0, n);
      } catch (const std::exception& e) {
        problem(-1, "", std::string("the 'captions' strings are unreadable: ") + e.what());
        fields_read = false;
      }
    }
  }
  auto read_int32 = [&](const h5::Handle& ds, const std::string& name, std::vector<int32_t>& out) {
    if (!ds.valid()) {
      fields_read = false;
      return;
    }
    out.resize(n);
    if (H5Dread(ds.get(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0) {
      problem(-1, "", "the '" + name + "' dataset is unreadable: " + h5::error_text());
      fields_read = false;
    }
  };
  std::vector<int32_t> groups;
  if (m.has_groups) read_int32(groups_ds, "groups", groups);
  std::vector<std::vector<int32_t>> attributes(m.attribute_names.size());
  for (size_t a = 0; a < m.attribute_names.size(); ++a)
    read_int32(attribute_ds[a], "attributes/" + m.attribute_names[a], attributes[a]);
  std::vector<int64_t> labels(n, 0);
  bool labels_read = false;
  if (have_labels) {
    if (H5Dread(labels_ds.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels.data()) < 0) {
      problem(-1, "", "the 'labels' dataset is unreadable: " + h5::error_text());
      fields_read = false;
    } else {
      labels_read = true;
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
  // The field checksums as written (`stored`) and as the fields are now (`now`).
  const size_t f = columns.size();
  std::vector<uint32_t> stored, now;
  if (meta_ds.valid()) {
    stored.resize(n * f);
    if (H5Dread(meta_ds.get(), H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, stored.data()) < 0) {
      problem(-1, "", std::string("the '") + kMetaCrcDataset + "' dataset is unreadable: " + h5::error_text());
      stored.clear();
    }
  }
  if (per_field && fields_read) {
    now.reserve(n * f);
    SampleMeta meta;
    for (hsize_t r = 0; r < n; ++r) {
      meta.label = labels[r];
      if (m.has_groups) meta.group = groups[r];
      for (size_t a = 0; a < attributes.size(); ++a) meta.attributes[m.attribute_names[a]] = attributes[a][r];
      if (m.has_captions) meta.caption = captions[r];
      meta.source = sources[r];
      append_meta_crcs(meta, m, now);
    }
  }

  // Every image through HDF5's ordinary read path (filters applied), one row at a time.
  uint32_t shard_crc = 0;
  bool all_read = have_images;
  if (have_images) {
    const size_t bytes = static_cast<size_t>(s * s * 3);
    std::vector<uint8_t> pixels(bytes);
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
      const uint32_t crc = crc32_of(pixels.data(), bytes);
      shard_crc = crc32_combine(shard_crc, crc, static_cast<z_off_t>(bytes));
      ++report.samples_checked;
      if (!crcs.empty() && crcs[r] != crc)
        problem(row, sources[r],
                "image bytes changed: CRC-32 " + crc32_text(crc) + ", written as " + crc32_text(crcs[r]));
    }
  }
  if (all_read && labels_read) shard_crc = crc32_update(shard_crc, labels.data(), n * 8);
  auto with_table = [&](const std::vector<uint32_t>& table) {
    return crc32_text(crc32_update(shard_crc, table.data(), table.size() * 4));
  };

  // Each sample's fields against their checksums, naming every field that differs.
  if (!stored.empty() && !now.empty()) {
    std::vector<hsize_t> rows;
    for (hsize_t r = 0; r < n; ++r)
      if (!std::equal(now.begin() + r * f, now.begin() + (r + 1) * f, stored.begin() + r * f)) rows.push_back(r);
    if (!rows.empty() && all_read && labels_read && with_table(now) == info.checksum) {
      // The fields are those the shard checksum was made from: the table itself is damaged.
      problem(-1, "",
              std::string("dataset '") + kMetaCrcDataset + "' is damaged at " + std::to_string(rows.size()) +
                  " row(s) (first: row " + std::to_string(rows[0]) +
                  "), while every sample's fields match the shard checksum; copy the shard again or re-run "
                  "`starft shard`");
    } else {
      for (hsize_t r : rows) {
        std::string changed;
        for (size_t c = 0; c < f; ++c) {
          if (now[r * f + c] == stored[r * f + c]) continue;
          const std::string& column = columns[c];
          std::string value;
          if (column == "label") {
            value = std::to_string(labels[r]);
            if (labels[r] >= 0 && labels[r] < static_cast<int64_t>(m.class_names.size()))
              value += " '" + m.class_names[static_cast<size_t>(labels[r])] + "'";
          } else if (column == "group") {
            value = std::to_string(groups[r]);
          } else if (column == "caption") {
            value = "'" + short_text(captions[r]) + "'";
          } else if (column == "source") {
            value = "'" + short_text(sources[r]) + "'";
          } else {
            for (size_t a = 0; a < m.attribute_names.size(); ++a)
              if (column == "attributes/" + m.attribute_names[a]) value = std::to_string(attributes[a][r]);
          }
          changed += (changed.empty() ? "" : ", ") + column + " (now " + value + ")";
        }
        problem(static_cast<int64_t>(r), sources[r],
                "changed since conversion: " + changed +
                    (changed.find(" (now ") != changed.rfind(" (now ") ? ": their CRC-32s differ from those in '"
                                                                       : ": its CRC-32 differs from the one in '") +
                    kMetaCrcDataset + "'; copy the shard again or re-run `starft shard`");
      }
    }
  }

  // The shard's content checksum: images, labels, then (when the shard has it) the field table.
  if (!all_read || !labels_read) return;
  std::string content = crc32_text(shard_crc);
  if (per_field) {
    if (stored.empty()) return;  // unreadable or malformed: reported above
    content = with_table(stored);
  }
  if (content != info.checksum && report.problems.size() == problems_before) {
    std::string why;
    if (!per_image)
      why = " (this shard predates per-image checksums, so the damaged sample cannot be named)";
    else if (!per_field)
      why = " (the labels changed; this shard predates per-sample field checksums, so the sample cannot be named)";
    else
      why = " (a sample and its own checksum changed alike, so the sample cannot be named)";
    problem(-1, "",
            "content checksum " + content + " differs from manifest.json's " + info.checksum + why +
                "; copy the shard again or re-run `starft shard`");
  }
}

// The fields that shards without meta_crc32 leave uncovered, e.g. "captions and sources".
std::string uncovered_fields(const Manifest& m) {
  std::vector<std::string> names;
  if (m.has_captions) names.push_back("captions");
  names.push_back("sources");
  if (m.has_groups) names.push_back("groups");
  if (!m.attribute_names.empty()) names.push_back("attributes");
  std::string text;
  for (size_t i = 0; i < names.size(); ++i) text += (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + names[i];
  return text;
}

}  // namespace

std::string problem_location(const StoreProblem& p) {
  std::string where = p.file;
  if (p.row >= 0) where += " row " + std::to_string(p.row) + " (sample " + std::to_string(p.index) + ")";
  if (!p.source.empty()) where += " '" + p.source + "'";
  return where;
}

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
  if (report.shards_without_field_checksums > 0)
    report.coverage = std::to_string(report.shards_without_field_checksums) + " of " + std::to_string(report.shards) +
                      " shards predate per-sample field checksums (" + kMetaCrcDataset + "): their " +
                      uncovered_fields(m) +
                      " are covered by no checksum (labels by the shard checksum only), everything else was checked; "
                      "re-run `starft shard` to cover them";
  return report;
}

}  // namespace starft::data
