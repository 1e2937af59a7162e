#include "train/teacher_cache.h"

#include <filesystem>

#include "common/error.h"
#include "data/hdf5_tensor.h"

namespace starft::train {

namespace fs = std::filesystem;

TeacherCache::TeacherCache(const std::string& path) : path_(path) {
  check(fs::exists(path), "teacher cache ", path,
        " does not exist; build it with `starft cache-teacher` "
        "(same --weights, --store and --spurious-pool as the training run), or train "
        "with --teacher online");
  auto guard = h5::lock();
  file_ = h5::open_read(path);
  const auto version = h5::read_int_attribute(file_.get(), "format_version", path);
  check(version == kTeacherCacheVersion, "teacher cache ", path, ": format version ", version,
        ", this starft reads version ", kTeacherCacheVersion, "; rebuild it with `starft cache-teacher`");
  nlohmann::json fp;
  try {
    fp = nlohmann::json::parse(h5::read_string_attribute(file_.get(), "fingerprint", path));
  } catch (const nlohmann::json::exception& e) {
    fail("teacher cache ", path, ": the fingerprint is not JSON (", e.what(), "); rebuild the cache");
  }
  fingerprint_ = CacheFingerprint::from_json(fp, "teacher cache " + path);
  images_ = h5::open_dataset(file_.get(), "image_features", path);
  auto dims = h5::shape(images_.get());
  check(dims.size() == 2, "teacher cache ", path, ": image_features must be [N, D]");
  num_samples_ = static_cast<int64_t>(dims[0]);
  {
    h5::Handle type(H5Dget_type(images_.get()));
    float16_ = H5Tget_size(type.get()) == 2;
  }
  prompt_features_ = h5::read_tensor(file_.get(), "prompt_features", path, torch::kFloat);
  check(prompt_features_.dim() == 3 && prompt_features_.size(2) == static_cast<int64_t>(dims[1]), "teacher cache ",
        path, ": prompt_features must be [C, T, D] with the D of image_features");
  auto tpl = h5::open_dataset(file_.get(), "templates", path);
  templates_ = h5::read_strings(tpl.get(), 0, h5::shape(tpl.get())[0]);
  check(static_cast<int64_t>(templates_.size()) == prompt_features_.size(1), "teacher cache ", path, ": ",
        templates_.size(), " templates but prompt_features has ", prompt_features_.size(1));
  teacher_scale_ = h5::read_double(file_.get(), "teacher_scale", path);
}

TeacherCache::~TeacherCache() {
  auto guard = h5::lock();
  images_.reset();
  file_.reset();
}

void TeacherCache::check_fingerprint(const CacheFingerprint& current) const {
  const std::string diff = fingerprint_.difference(current);
  check(diff.empty(), "teacher cache ", path_, " does not match this run: ", diff,
        ". Rebuild it with `starft cache-teacher` using this run's --weights, --store, --spurious-pool, "
        "--caption-template and --precision, or point --teacher-cache elsewhere");
}

torch::Tensor TeacherCache::image_features(const torch::Tensor& indices) const {
  auto idx = indices.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t D = dim();
  if (idx.numel() == 0) return torch::empty({0, D});
  auto [sorted, inverse] = torch::_unique(idx, /*sorted=*/true, /*return_inverse=*/true);
  const int64_t n = sorted.numel();
  const int64_t* rows = sorted.data_ptr<int64_t>();
  check(rows[0] >= 0 && rows[n - 1] < num_samples_, "teacher cache ", path_, ": sample index ",
        rows[rows[0] < 0 ? 0 : n - 1], " is outside the cache's ", num_samples_,
        " samples; the cache belongs to another store");
  auto out = torch::empty({n, D}, float16_ ? torch::kHalf : torch::kFloat);
  {
    auto guard = h5::lock();
    h5::Handle space(H5Dget_space(images_.get()));
    h5::check(H5Sselect_none(space.get()), "HDF5 selection");
    // Runs of consecutive rows become one hyperslab block each.
    for (int64_t i = 0; i < n;) {
      int64_t j = i + 1;
      while (j < n && rows[j] == rows[j - 1] + 1) ++j;
      hsize_t start[2] = {static_cast<hsize_t>(rows[i]), 0};
      hsize_t count[2] = {static_cast<hsize_t>(j - i), static_cast<hsize_t>(D)};
      h5::check(H5Sselect_hyperslab(space.get(), H5S_SELECT_OR, start, nullptr, count, nullptr), "HDF5 selection");
      i = j;
    }
    hsize_t mdims[2] = {static_cast<hsize_t>(n), static_cast<hsize_t>(D)};
    h5::Handle mem(H5Screate_simple(2, mdims, nullptr));
    h5::Handle type = float16_ ? h5::half_type() : h5::Handle(H5Tcopy(H5T_NATIVE_FLOAT));
    h5::check(H5Dread(images_.get(), type.get(), mem.get(), space.get(), H5P_DEFAULT, out.data_ptr()),
              "teacher cache " + path_ + ": reading image_features");
  }
  return out.to(torch::kFloat).index_select(0, inverse.view({-1}));
}

torch::Tensor TeacherCache::prompt_features(const torch::Tensor& labels, const torch::Tensor& templates) const {
  auto l = labels.to(torch::kCPU, torch::kLong);
  auto t = templates.to(torch::kCPU, torch::kLong);
  check(l.numel() == 0 || (l.min().item<int64_t>() >= 0 && l.max().item<int64_t>() < num_classes()), "teacher cache ",
        path_, ": a label is outside its ", num_classes(), " classes");
  check(t.numel() == 0 || (t.min().item<int64_t>() >= 0 && t.max().item<int64_t>() < prompt_features_.size(1)),
        "teacher cache ", path_, ": a template index is outside its ", prompt_features_.size(1), " templates");
  return prompt_features_.index({l, t});
}

}  // namespace starft::train
