#include "train/teacher_cache_build.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "data/hdf5_tensor.h"
#include "data/loader.h"
#include "data/templates.h"
#include "train/teacher_cache.h"
#include "train/teacher_fingerprint.h"
#include "train/text_encoder.h"

namespace starft::train {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace {

// Rank `rank`'s part file beside the cache, complete once renamed to this name.
std::string part_path(const std::string& path, int rank, int size) {
  return path + ".part-" + std::to_string(rank) + "-of-" + std::to_string(size);
}

}  // namespace

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

}  // namespace starft::train
