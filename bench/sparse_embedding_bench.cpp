// The token embedding's gradient dense against row-sparse (Embedding's sparse=true, which the
// trainer turns on where FusedAdamW takes it), side by side in one run: whole CLIP training steps
// (forward, symmetric contrastive loss, backward, GradSync over thread ranks, zero_grad, AdamW) on a
// model of configs/demo_model.json's shape (whose 49408 x 128 token embedding is 85% of the
// parameters while a batch's captions use a few dozen rows), rounds interleaved, median wall
// milliseconds per step on rank 0. Both runs get the same batches from the same weights; the
// relative difference of the parameters at the end is printed as a check (rounding only: the
// sparse backward sums a token's gradient rows in another order).
//
// usage: sparse_embedding_bench [--rounds N] [--batch N (per rank)] [--ranks N] [--precision fp32|amp_bf16|auto]
//                               [--model FILE.json]
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "clip/model.h"
#include "common/allocator.h"
#include "common/hardware.h"
#include "common/precision.h"
#include "distributed/grad_sync.h"
#include "distributed/thread_communicator.h"
#include "step_setup.h"
#include "train/optimizer.h"
#include "bench_main.h"

using namespace starft;

namespace {

// Captions of `length` tokens: start, words drawn from `vocabulary` ids, end (CLIP's 49406 / 49407).
torch::Tensor random_captions(int64_t batch, int64_t length, int64_t vocabulary, int64_t seed) {
  torch::manual_seed(seed);
  auto tokens = torch::randint(1000, 1000 + vocabulary, {batch, length}, torch::kLong);
  tokens.select(1, 0).fill_(49406);
  tokens.select(1, length - 1).fill_(49407);
  return tokens;
}

}  // namespace

STARFT_BENCH_MAIN(sparse_embedding_bench) {
  const char* usage =
      "usage: sparse_embedding_bench [--rounds N] [--batch N (per rank)] [--ranks N] [--precision fp32|amp_bf16|auto] [--model FILE.json]";
  if (int status; bench::usage_requested(argc, argv, usage, &status)) return status;
  keep_freed_memory_for_reuse();
  int64_t rounds = 20, batch = 64;
  int ranks = 2;
  std::string precision_text = "auto";
  std::string model_file = std::string(STARFT_SOURCE_DIR) + "/configs/demo_model.json";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--rounds"))
      rounds = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--batch"))
      batch = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--ranks"))
      ranks = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--precision"))
      precision_text = argv[i + 1];
    else if (!std::strcmp(argv[i], "--model"))
      model_file = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown option %s\n%s\n", argv[i], usage);
      return 2;
    }
  }
  torch::set_num_threads(1);
  std::ifstream in(model_file);
  nlohmann::json j;
  in >> j;
  const auto cfg = clip::CLIPConfig::from_json(j);
  const auto precision = parse_precision(precision_text, /*cuda=*/false);
  const auto& cpu = cpu_features();
  std::printf(
      "sparse_embedding_bench: %s (family %d model %d), %s; %d rank(s) of 1 thread, batch %lld per rank, %s; "
      "model %s\n",
      cpu.model_name.c_str(), cpu.family, cpu.model, cpu.flags_text().c_str(), ranks, static_cast<long long>(batch),
      precision_name(precision), model_file.c_str());

  // models[rank][0]: dense gradient, [1]: row-sparse; the same initial weights everywhere
  std::vector<std::vector<clip::CLIP>> models(ranks);
  torch::manual_seed(0);
  clip::CLIP first(cfg);
  for (int r = 0; r < ranks; ++r) {
    for (int k = 0; k < 2; ++k) {
      clip::CLIP m(cfg);
      torch::NoGradGuard ng;
      auto src = first->named_parameters();
      for (auto& p : m->named_parameters()) p.value().copy_(src[p.key()]);
      m->set_precision(precision);
      m->token_embedding->options.sparse(k == 1);
      models[r].push_back(m);
    }
  }
  std::vector<double> ms[2];
  distributed::ThreadGroup group(ranks, /*comm_timeout_s=*/600);
  group.run([&](distributed::Communicator& comm) {
    const int rank = comm.rank();
    std::vector<std::unique_ptr<distributed::GradSync>> syncs;
    std::vector<std::unique_ptr<torch::optim::AdamW>> optimizers;
    for (int k = 0; k < 2; ++k) {
      auto& m = models[rank][k];
      train::NamedParams params;
      for (auto& p : m->named_parameters()) params.emplace_back(p.key(), p.value());
      train::AdamWSettings s;
      s.lr = 1e-3;
      s.exclude_gains_biases = true;
      optimizers.push_back(train::make_adamw(params, s));
      distributed::GradSyncOptions o;
      o.row_sparse = {"token_embedding.weight"};
      syncs.push_back(std::make_unique<distributed::GradSync>(m->named_parameters(), comm, o));
    }
    for (int64_t round = 0; round < rounds + 1; ++round) {
      torch::manual_seed(1000 * round + rank);
      const auto images = torch::randn({batch, 3, cfg.image_size, cfg.image_size});
      const auto tokens = random_captions(batch, 12, 300, 1000 * round + rank);
      for (int k = 0; k < 2; ++k) {
        auto& m = models[rank][k];
        const auto t0 = std::chrono::steady_clock::now();
        optimizers[k]->zero_grad();
        auto image = torch::nn::functional::normalize(m->encode_image(images).to(torch::kFloat),
                                                      torch::nn::functional::NormalizeFuncOptions().dim(1));
        auto text = torch::nn::functional::normalize(m->encode_text(tokens).to(torch::kFloat),
                                                     torch::nn::functional::NormalizeFuncOptions().dim(1));
        auto logits = m->logit_scale.exp() * image.matmul(text.t());
        auto labels = torch::arange(batch);
        auto loss = (torch::nn::functional::cross_entropy(logits, labels) +
                     torch::nn::functional::cross_entropy(logits.t(), labels)) /
                    2;
        loss.backward();
        syncs[k]->finish();
        optimizers[k]->step();
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (rank == 0 && round > 0) ms[k].push_back(1e3 * elapsed);
      }
    }
  });
  // ||sparse - dense|| / ||dense|| over all parameters (Adam's sign-like first steps turn a last-bit
  // difference in a near-zero gradient element into up to 2 lr in that element, so no per-element bound)
  double diff2 = 0, norm2 = 0;
  auto dense = models[0][0]->named_parameters();
  for (auto& p : models[0][1]->named_parameters()) {
    diff2 += (p.value() - dense[p.key()]).pow(2).sum().item<double>();
    norm2 += dense[p.key()].pow(2).sum().item<double>();
  }
  const double diff = std::sqrt(diff2 / norm2);
  const double d = bench::median(ms[0]), s = bench::median(ms[1]);
  std::printf(
      "  median ms per training step of %lld on rank 0: dense embedding gradient %.2f, row-sparse %.2f, "
      "ratio %.2fx\n",
      static_cast<long long>(rounds), d, s, d / s);
  std::printf("  relative parameter difference after %lld steps: %.3g\n", static_cast<long long>(rounds + 1), diff);
  return 0;
}
