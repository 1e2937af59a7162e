#pragma once
// Data-parallel gradient synchronisation, as PyTorch DDP does it.
//
// Parameters are grouped into buckets in reverse registration order (the order backward
// produces their gradients): a small first bucket (1 MiB), then buckets of 25 MiB, separately
// per device and dtype. A hook on each parameter copies its gradient into the bucket's flat
// buffer the moment autograd has computed it; a leaf's hook fires once per backward with the
// gradient summed over all its uses, so at that point the gradient is final. When every
// gradient of a bucket is in, the bucket's all-reduce (average) is launched asynchronously, so
// communication overlaps the rest of backward. Buckets launch strictly in bucket order, so all
// ranks issue the same collectives in the same order even if autograd's order differs.
//
// finish() (after backward, before the optimizer step) marks the parameters that got no
// gradient this step as ready with zeros, waits for every bucket and writes the average over
// ranks into param.grad (replacing what backward accumulated there; a copy, not a view into the
// bucket as DDP's gradient_as_bucket_view: LibTorch 1.13's Optimizer::zero_grad calls detach_(),
// which views refuse). Each bucket carries one
// extra element per parameter, 1 where the rank used it: a parameter that no rank used keeps
// its gradient untouched (undefined stays undefined), as in a single process, at no extra
// collective. One backward per finish(): gradient accumulation over several backward passes
// needs no_sync-style handling that this class does not offer.
//
// The buckets travel on their own communicator (comm.duplicate("grad_buckets"), made at
// construction, a collective): a rank that launches a bucket before the all-gather's backward
// all-reduce while another rank launches it after (because a parameter is used on one rank
// only) would otherwise pair the wrong collectives.
//
// Row-sparse parameters (GradSyncOptions::row_sparse: a token embedding [V, D], whose gradient
// is zero outside the rows of the batch's tokens: some 60 of CLIP's 49408) stay out of the
// buckets. finish() all-reduces a [V] mask of the rows that are nonzero on any rank (maximum),
// then averages only those rows and writes them into the local gradient, whose other rows are
// zero on every rank: the same values as the dense all-reduce (the average of zeros is zero),
// for V + 1 + R x D elements instead of V x D. The demo's text tower sends 25 MiB less per step.
// A sparse COO gradient (Embedding with sparse=true; rows only) is taken as it comes: its rows
// make the mask without a pass over [V, D], and param.grad becomes a coalesced sparse [V, D] with
// the union's rows averaged (the optimizer must take sparse gradients: train/optimizer.h). A rank
// without a gradient there takes part with zero rows and gets the dense equivalent.
//
// At construction the parameters are broadcast from rank 0; every `check_every` steps a cheap
// checksum confirms that all ranks still hold the same parameters (param_check.h).
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "distributed/communicator.h"

namespace starft::distributed {

struct GradSyncOptions {
  int64_t bucket_bytes = int64_t{25} << 20;
  int64_t first_bucket_bytes = int64_t{1} << 20;
  // false: every bucket launches in finish() (synchronise after backward; for comparisons).
  bool overlap = true;
  // Steps between parameter checksums; 0 turns the check off.
  int64_t check_every = 100;
  bool broadcast_parameters = true;
  // Names of 2-D parameters synchronised by rows (above), e.g. {"token_embedding.weight"};
  // each must be among the constructor's names, else the constructor throws.
  std::vector<std::string> row_sparse;
};

class GradSync {
 public:
  // `parameters` in registration order (module.parameters()); those without requires_grad are
  // left alone. `names` (optional, same length) label them in error messages.
  GradSync(const std::vector<torch::Tensor>& parameters, Communicator& comm, GradSyncOptions options = {},
           const std::vector<std::string>& names = {});
  // module.named_parameters()
  GradSync(const torch::OrderedDict<std::string, torch::Tensor>& named_parameters, Communicator& comm,
           GradSyncOptions options = {});
  ~GradSync();
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  // Completes this step's synchronisation; call after backward, before the optimizer step.
  void finish();
  // Collective: throws on every rank if the parameters differ across ranks.
  void check_parameters();

  int64_t steps() const { return steps_; }
  // The parameters (indices into the constructor's list) of each bucket, in launch order.
  std::vector<std::vector<int>> bucket_layout() const;
  const GradSyncOptions& options() const { return options_; }

 private:
  struct Bucket {
    std::vector<int> params;
    std::vector<int64_t> offsets;  // of each parameter's slot in `buffer`
    int64_t numel = 0;             // gradient elements; `params.size()` usage flags follow
    torch::Tensor buffer;
    int pending = 0;
    WorkPtr work;
  };
  void build_buckets();
  void broadcast_parameters();
  void on_gradient(int param, const torch::Tensor& grad);
  void launch_ready_buckets();  // caller holds mutex_
  void reduce_row_sparse(int param, const torch::Tensor& local);
  torch::Tensor slot(int param) const;

  std::unique_ptr<Communicator> comm_;  // a duplicate of the caller's
  GradSyncOptions options_;
  std::vector<torch::Tensor> params_;
  std::vector<std::string> names_;
  std::vector<unsigned> hooks_;
  std::vector<int> bucket_of_, index_in_bucket_;
  std::vector<Bucket> buckets_;
  std::mutex mutex_;
  std::vector<char> ready_, used_;
  std::vector<int> row_sparse_;                 // parameter indices, in the options' order
  std::vector<torch::Tensor> row_sparse_grad_;  // this backward's local gradient of each (or undefined)
  size_t next_launch_ = 0;
  int64_t steps_ = 0;
};

}  // namespace starft::distributed
