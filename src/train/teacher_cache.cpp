#include "train/teacher_cache.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "common/error.h"
#include "data/hdf5_tensor.h"
#include "data/loader.h"
#include "data/templates.h"
#include "train/text_encoder.h"

namespace starft::train {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace {

std::string part_path(const std::string& path, int rank, int size) {
  return path + ".part-" + std::to_string(rank) + "-of-" + std::to_string(size);
}

std::string describe_view(const data::AugmentOptions& v) {
  std::ostringstream os;
  os.precision(9);
  os << "eval size=" << v.output_size << " mean=" << v.mean[0] << "," << v.mean[1] << "," << v.mean[2]
     << " std=" << v.std[0] << "," << v.std[1] << "," << v.std[2];
  return os.str();
}

}  // namespace

// ---- fingerprint --------------------------------------------------------------------------

std::string crc32_text(const void* data, size_t size, uint32_t seed) {
  uLong crc = seed;
  const auto* p = static_cast<const Bytef*>(data);
  while (size > 0) {
    const uInt chunk = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
    crc = ::crc32(crc, p, chunk);
    p += chunk;
    size -= chunk;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "crc32:%08lx", static_cast<unsigned long>(crc));
  return buf;
}

nlohmann::json CacheFingerprint::to_json() const {
  return {{"weights", weights},
          {"prompts", prompts},
          {"store", store},
          {"preprocessing", preprocessing},
          {"precision", precision}};
}

CacheFingerprint CacheFingerprint::from_json(const nlohmann::json& j, const std::string& where) {
  CacheFingerprint f;
  try {
    f.weights = j.at("weights").get<std::string>();
    f.prompts = j.at("prompts").get<std::string>();
    f.store = j.at("store").get<std::string>();
    f.preprocessing = j.at("preprocessing").get<std::string>();
    f.precision = j.value("precision", std::string("fp32"));
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": the teacher cache fingerprint is not valid (", e.what(), "); rebuild the cache");
  }
  return f;
}

std::string CacheFingerprint::difference(const CacheFingerprint& now) const {
  std::vector<std::string> parts;
  if (weights != now.weights)
    parts.push_back("the teacher weights differ (cache " + weights + ", now " + now.weights + ")");
  if (prompts != now.prompts)
    parts.push_back("the caption template or spurious pool differs (cache " + prompts + ", now " + now.prompts + ")");
  if (store != now.store) parts.push_back("the store manifest differs (cache " + store + ", now " + now.store + ")");
  if (preprocessing != now.preprocessing)
    parts.push_back("the preprocessing differs (cache '" + preprocessing + "', now '" + now.preprocessing + "')");
  if (precision != now.precision)
    parts.push_back("the precision differs (cache " + precision + ", now " + now.precision +
                    "; build the cache with the run's --precision)");
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

CacheFingerprint compute_fingerprint(const clip::CLIP& teacher, const std::string& caption_template,
                                     const std::vector<std::string>& pool, const data::Manifest& manifest,
                                     const data::AugmentOptions& eval_view) {
  CacheFingerprint f;
  uLong crc = 0;
  for (const auto& p : teacher->named_parameters()) {
    crc = ::crc32(crc, reinterpret_cast<const Bytef*>(p.key().data()), static_cast<uInt>(p.key().size()));
    auto t = p.value().detach().to(torch::kCPU, torch::kFloat).contiguous();
    const auto* bytes = static_cast<const Bytef*>(t.data_ptr());
    size_t left = t.numel() * sizeof(float);
    while (left > 0) {
      const uInt chunk = static_cast<uInt>(std::min<size_t>(left, 1u << 30));
      crc = ::crc32(crc, bytes, chunk);
      bytes += chunk;
      left -= chunk;
    }
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "crc32:%08lx", static_cast<unsigned long>(crc));
  f.weights = buf;
  std::string text = caption_template;
  for (const auto& t : pool) text += "\n" + t;
  f.prompts = crc32_text(text.data(), text.size());
  const std::string m = manifest.to_json().dump();
  f.store = crc32_text(m.data(), m.size());
  f.preprocessing = describe_view(eval_view);
  f.precision = precision_name(teacher->precision());
  return f;
}

data::AugmentOptions teacher_view(const clip::CLIP& teacher) {
  data::AugmentOptions v;
  v.transform = data::Transform::eval;
  v.output_size = static_cast<int>(teacher->config().image_size);
  for (int ch = 0; ch < 3; ++ch) {
    v.mean[ch] = static_cast<float>(teacher->config().image_mean[ch]);
    v.std[ch] = static_cast<float>(teacher->config().image_std[ch]);
  }
  return v;
}

std::string class_caption(const std::string& caption_template, const std::string& class_name) {
  return data::apply_template(caption_template, class_name);
}

// ---- building -----------------------------------------------------------------------------

void build_teacher_cache(const std::string& path, clip::CLIP& teacher, const data::Store& store,
                         const clip::Tokenizer& tokenizer, const std::vector<std::string>& pool,
                         const CacheBuildOptions& options, distributed::Communicator& comm) {
  const int rank = comm.rank(), world = comm.size();
  const auto& manifest = store.manifest();
  const int64_t C = static_cast<int64_t>(manifest.class_names.size());
  const int64_t T = static_cast<int64_t>(pool.size());
  check(C > 0, "store ", store.dir(), ": no class names, so there are no captions to cache");
  check(T > 0, "teacher cache: the spurious pool is empty");
  check(options.batch_size > 0, "teacher cache: batch size must be positive");
  torch::NoGradGuard no_grad;
  const auto view = teacher_view(teacher);
  const auto fingerprint = compute_fingerprint(teacher, options.caption_template, pool, manifest, view);

  // Images: this rank's samples, strided, each exactly once.
  data::SamplerOptions so;
  so.num_samples = store.size();
  so.world_size = world;
  so.rank = rank;
  so.batch_size = options.batch_size;
  so.shuffle = false;
  so.tail = data::Tail::uneven;
  data::LoaderOptions lo;
  lo.workers = options.workers;
  lo.augment = view;
  data::Loader loader(store, data::DistributedSampler(so), lo);
  loader.start(0);
  std::vector<torch::Tensor> feats, idx;
  while (auto batch = loader.next()) {
    auto f = F::normalize(teacher->encode_image(batch->images), F::NormalizeFuncOptions().dim(-1));
    feats.push_back(f.cpu());
    idx.push_back(batch->indices);
  }
  const int64_t D = teacher->config().embed_dim;
  auto image_feats = feats.empty() ? torch::empty({0, D}) : torch::cat(feats);
  auto image_idx = idx.empty() ? torch::empty({0}, torch::kLong) : torch::cat(idx);

  // Texts: (class, template) pairs p = c * T + t, strided over ranks.
  TextEncoder encoder(tokenizer, /*dedup=*/false, options.truncate);
  std::vector<int64_t> pairs;
  for (int64_t p = rank; p < C * T; p += world) pairs.push_back(p);
  std::vector<torch::Tensor> text_feats;
  for (size_t begin = 0; begin < pairs.size(); begin += options.batch_size) {
    std::vector<std::string> texts;
    for (size_t i = begin; i < std::min(pairs.size(), begin + options.batch_size); ++i) {
      const int64_t c = pairs[i] / T, t = pairs[i] % T;
      texts.push_back(data::apply_template(pool[t], class_caption(options.caption_template, manifest.class_names[c])));
    }
    text_feats.push_back(F::normalize(encoder.encode(teacher, texts), F::NormalizeFuncOptions().dim(-1)).cpu());
  }
  auto prompt_feats = text_feats.empty() ? torch::empty({0, D}) : torch::cat(text_feats);
  auto prompt_idx = torch::tensor(pairs, torch::kLong);

  // This rank's part, complete only once renamed.
  const std::string part = part_path(path, rank, world);
  {
    const std::string tmp = part + ".tmp";
    {
      auto guard = h5::lock();
      auto file = h5::create(tmp);
      h5::write_tensor(file.get(), "image_features", image_feats, options.float16);
      h5::write_tensor(file.get(), "image_indices", image_idx, false);
      h5::write_tensor(file.get(), "prompt_features", prompt_feats, options.float16);
      h5::write_tensor(file.get(), "prompt_indices", prompt_idx, false);
      h5::check(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), "HDF5 flush " + tmp);
    }
    fs::rename(tmp, part);
  }
  comm.barrier("teacher_cache_parts");

  if (rank == 0) {
    auto all_images = torch::empty({store.size(), D});
    auto all_prompts = torch::empty({C * T, D});
    std::vector<char> seen_images(store.size(), 0), seen_prompts(C * T, 0);
    for (int r = 0; r < world; ++r) {
      const std::string p = part_path(path, r, world);
      auto guard = h5::lock();
      auto file = h5::open_read(p);
      auto fi = h5::read_tensor(file.get(), "image_features", p, torch::kFloat);
      auto ii = h5::read_tensor(file.get(), "image_indices", p, torch::kLong);
      auto fp = h5::read_tensor(file.get(), "prompt_features", p, torch::kFloat);
      auto ip = h5::read_tensor(file.get(), "prompt_indices", p, torch::kLong);
      if (ii.numel()) all_images.index_copy_(0, ii, fi);
      if (ip.numel()) all_prompts.index_copy_(0, ip, fp);
      for (int64_t i = 0; i < ii.numel(); ++i) seen_images[ii.data_ptr<int64_t>()[i]] = 1;
      for (int64_t i = 0; i < ip.numel(); ++i) seen_prompts[ip.data_ptr<int64_t>()[i]] = 1;
    }
    check(std::all_of(seen_images.begin(), seen_images.end(), [](char c) { return c; }) &&
              std::all_of(seen_prompts.begin(), seen_prompts.end(), [](char c) { return c; }),
          "teacher cache ", path, ": the ranks' parts do not cover every sample and prompt; this is a bug");
    const std::string tmp = path + ".tmp-" + std::to_string(getpid());
    {
      auto guard = h5::lock();
      auto file = h5::create(tmp);
      h5::write_tensor(file.get(), "image_features", all_images, options.float16);
      h5::write_tensor(file.get(), "prompt_features", all_prompts.view({C, T, D}), options.float16);
      h5::write_strings(file.get(), "templates", pool);
      h5::write_double(file.get(), "teacher_scale", teacher->logit_scale.exp().item<double>());
      h5::write_attribute(file.get(), "format_version", static_cast<long long>(kTeacherCacheVersion));
      h5::write_attribute(file.get(), "fingerprint", fingerprint.to_json().dump());
      h5::write_attribute(file.get(), "dtype", std::string(options.float16 ? "float16" : "float32"));
      h5::write_attribute(file.get(), "caption_template", options.caption_template);
      h5::check(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), "HDF5 flush " + tmp);
    }
    fs::rename(tmp, path);
    for (int r = 0; r < world; ++r) fs::remove(part_path(path, r, world));
  }
  comm.barrier("teacher_cache_written");
}

// ---- reading ------------------------------------------------------------------------------

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
