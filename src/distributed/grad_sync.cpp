#include "distributed/grad_sync.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "common/error.h"
#include "distributed/param_check.h"

namespace starft::distributed {

namespace {
std::vector<torch::Tensor> values(const torch::OrderedDict<std::string, torch::Tensor>& named) {
  std::vector<torch::Tensor> out;
  for (const auto& item : named) out.push_back(item.value());
  return out;
}
std::vector<std::string> keys(const torch::OrderedDict<std::string, torch::Tensor>& named) {
  std::vector<std::string> out;
  for (const auto& item : named) out.push_back(item.key());
  return out;
}
}  // namespace

GradSync::GradSync(const torch::OrderedDict<std::string, torch::Tensor>& named_parameters, Communicator& comm,
                   GradSyncOptions options)
    : GradSync(values(named_parameters), comm, options, keys(named_parameters)) {}

GradSync::GradSync(const std::vector<torch::Tensor>& parameters, Communicator& comm, GradSyncOptions options,
                   const std::vector<std::string>& names)
    : comm_(comm.duplicate("grad_buckets")), options_(options), params_(parameters), names_(names) {
  check(options_.bucket_bytes > 0 && options_.first_bucket_bytes > 0,
        "gradient buckets need a positive size, got bucket_bytes ", options_.bucket_bytes, " and first_bucket_bytes ",
        options_.first_bucket_bytes);
  check(options_.check_every >= 0, "check_every must be >= 0 (0: never), got ", options_.check_every);
  check(names_.empty() || names_.size() == params_.size(), "GradSync: ", names_.size(), " names for ", params_.size(),
        " parameters");
  if (names_.empty()) {
    for (size_t i = 0; i < params_.size(); ++i) names_.push_back("parameter " + std::to_string(i));
  }
  std::set<const void*> seen;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& p = params_[i];
    check(p.defined(), "GradSync: ", names_[i], " is undefined");
    check(seen.insert(p.unsafeGetTensorImpl()).second, "GradSync: ", names_[i],
          " appears twice in the parameter list; pass each parameter once");
    check(!p.requires_grad() || p.is_leaf(), "GradSync: ", names_[i],
          " is not a leaf tensor; pass the module's parameters");
  }
  for (const auto& name : options_.row_sparse) {
    const auto it = std::find(names_.begin(), names_.end(), name);
    check(it != names_.end(), "GradSync: row_sparse names '", name, "', which is not among the parameters");
    const int i = static_cast<int>(it - names_.begin());
    check(params_[i].dim() == 2, "GradSync: row_sparse parameter ", name, " must be 2-D [rows, width], got ",
          params_[i].sizes());
    if (params_[i].requires_grad()) row_sparse_.push_back(i);
  }
  row_sparse_grad_.resize(row_sparse_.size());
  build_buckets();
  if (options_.broadcast_parameters) broadcast_parameters();
  ready_.assign(params_.size(), 0);
  used_.assign(params_.size(), 0);
  hooks_.assign(params_.size(), 0);
  for (size_t i = 0; i < params_.size(); ++i) {
    if (bucket_of_[i] < 0) continue;
    int index = static_cast<int>(i);
    hooks_[i] = params_[i].register_hook([this, index](torch::Tensor grad) { on_gradient(index, grad); });
  }
  for (size_t k = 0; k < row_sparse_.size(); ++k) {
    const int i = row_sparse_[k];
    hooks_[i] = params_[i].register_hook([this, i, k](torch::Tensor grad) {
      check(!grad.is_sparse() || grad.sparse_dim() == 1, "GradSync: ", names_[i],
            " got a sparse gradient that is not row-sparse (sparse in more than its first dimension); use "
            "Embedding's sparse=true or dense gradients");
      std::lock_guard<std::mutex> lock(mutex_);
      check(!row_sparse_grad_[k].defined(), "GradSync: ", names_[i],
            " received a second gradient before "
            "finish(); call finish() after every backward (accumulating several backward passes is not supported)");
      row_sparse_grad_[k] = grad;
    });
  }
}

GradSync::~GradSync() {
  for (size_t i = 0; i < params_.size(); ++i) {
    if (bucket_of_[i] >= 0) params_[i].remove_hook(hooks_[i]);
  }
  for (int i : row_sparse_) params_[i].remove_hook(hooks_[i]);
  // Operations still in flight (finish() not called) must not outlive their buffers' users.
  for (auto& b : buckets_) {
    if (b.work) {
      try {
        b.work->wait();
      } catch (...) {
      }
    }
  }
}

void GradSync::build_buckets() {
  const int n = static_cast<int>(params_.size());
  bucket_of_.assign(n, -1);
  index_in_bucket_.assign(n, -1);
  // Open bucket per (device, dtype); gradients arrive roughly in reverse registration order.
  std::map<std::tuple<int, int, int>, int> open;
  std::map<std::tuple<int, int, int>, int> closed_count;
  std::vector<int64_t> bytes;
  for (int i = n - 1; i >= 0; --i) {
    const auto& p = params_[i];
    if (!p.requires_grad()) continue;
    if (std::find(row_sparse_.begin(), row_sparse_.end(), i) != row_sparse_.end()) continue;
    auto key = std::make_tuple(static_cast<int>(p.device().type()), static_cast<int>(p.device().index()),
                               static_cast<int>(p.scalar_type()));
    auto it = open.find(key);
    if (it == open.end()) {
      buckets_.emplace_back();
      bytes.push_back(0);
      it = open.emplace(key, static_cast<int>(buckets_.size()) - 1).first;
    }
    int b = it->second;
    auto& bucket = buckets_[b];
    bucket_of_[i] = b;
    index_in_bucket_[i] = static_cast<int>(bucket.params.size());
    bucket.params.push_back(i);
    bucket.offsets.push_back(bucket.numel);
    bucket.numel += p.numel();
    bytes[b] += p.numel() * p.element_size();
    int64_t cap = closed_count[key] == 0 ? options_.first_bucket_bytes : options_.bucket_bytes;
    if (bytes[b] >= cap) {
      open.erase(it);
      ++closed_count[key];
    }
  }
  for (auto& bucket : buckets_) {
    const auto& first = params_[bucket.params.front()];
    bucket.buffer = torch::zeros({bucket.numel + static_cast<int64_t>(bucket.params.size())},
                                 torch::TensorOptions().dtype(first.scalar_type()).device(first.device()));
    bucket.pending = static_cast<int>(bucket.params.size());
  }
}

torch::Tensor GradSync::slot(int param) const {
  const auto& bucket = buckets_[bucket_of_[param]];
  return bucket.buffer.narrow(0, bucket.offsets[index_in_bucket_[param]], params_[param].numel())
      .view(params_[param].sizes());
}

void GradSync::broadcast_parameters() {
  torch::NoGradGuard no_grad;
  std::vector<WorkPtr> works;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    for (int i : buckets_[b].params) slot(i).copy_(params_[i]);
    works.push_back(comm_->broadcast_async(buckets_[b].buffer.narrow(0, 0, buckets_[b].numel), 0,
                                           "broadcast_parameters_" + std::to_string(b)));
  }
  for (auto& w : works) w->wait();
  for (auto& bucket : buckets_) {
    for (int i : bucket.params) params_[i].copy_(slot(i));
  }
  // Parameters outside the buckets (frozen ones) must agree too.
  for (size_t i = 0; i < params_.size(); ++i) {
    if (bucket_of_[i] >= 0) continue;
    auto p = params_[i].detach();
    if (p.is_contiguous()) {
      comm_->broadcast(p, 0, "broadcast_frozen_parameter");
    } else {
      auto c = p.contiguous();
      comm_->broadcast(c, 0, "broadcast_frozen_parameter");
      p.copy_(c);
    }
  }
}

void GradSync::on_gradient(int param, const torch::Tensor& grad) {
  check(grad.layout() == torch::kStrided, "GradSync: ", names_[param],
        " got a sparse gradient; "
        "use dense gradients (e.g. Embedding without sparse=true)");
  std::lock_guard<std::mutex> lock(mutex_);
  check(!ready_[param], "GradSync: ", names_[param],
        " received a second gradient before finish(); call "
        "finish() after every backward (accumulating several backward passes is not supported)");
  slot(param).copy_(grad);
  ready_[param] = 1;
  used_[param] = 1;
  --buckets_[bucket_of_[param]].pending;
  if (options_.overlap) launch_ready_buckets();
}

void GradSync::launch_ready_buckets() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
    auto& bucket = buckets_[next_launch_];
    std::vector<float> flags;
    for (int i : bucket.params) flags.push_back(used_[i] ? 1.0f : 0.0f);
    bucket.buffer.narrow(0, bucket.numel, static_cast<int64_t>(flags.size()))
        .copy_(torch::tensor(flags).to(bucket.buffer.scalar_type()));
    bucket.work = comm_->all_reduce_async(bucket.buffer, ReduceOp::Avg, "grad_bucket_" + std::to_string(next_launch_));
    ++next_launch_;
  }
}

void GradSync::finish() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params_.size(); ++i) {
      if (bucket_of_[i] < 0 || ready_[i]) continue;
      slot(static_cast<int>(i)).zero_();
      ready_[i] = 1;
      --buckets_[bucket_of_[i]].pending;
    }
    launch_ready_buckets();
  }
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < row_sparse_.size(); ++k) {
    reduce_row_sparse(row_sparse_[k], row_sparse_grad_[k]);
    row_sparse_grad_[k] = torch::Tensor();
  }
  for (auto& bucket : buckets_) {
    bucket.work->wait();
    bucket.work.reset();
    auto flags = bucket.buffer.narrow(0, bucket.numel, static_cast<int64_t>(bucket.params.size()))
                     .to(torch::kCPU, torch::kDouble);
    auto f = flags.accessor<double, 1>();
    for (size_t k = 0; k < bucket.params.size(); ++k) {
      if (f[k] == 0) continue;  // no rank used it: leave its gradient as a single process would
      auto& p = params_[bucket.params[k]];
      auto reduced = slot(bucket.params[k]);
      if (p.grad().defined()) {
        p.mutable_grad().copy_(reduced);
      } else {
        p.mutable_grad() = reduced.clone();
      }
    }
    bucket.pending = static_cast<int>(bucket.params.size());
  }
  std::fill(ready_.begin(), ready_.end(), 0);
  std::fill(used_.begin(), used_.end(), 0);
  next_launch_ = 0;
  ++steps_;
  if (options_.check_every > 0 && steps_ % options_.check_every == 0) check_parameters();
}

void GradSync::reduce_row_sparse(int param, const torch::Tensor& local) {
  auto& p = params_[param];
  const int64_t rows = p.size(0);
  const bool sparse = local.defined() && local.is_sparse();
  const auto local_rows = sparse ? local.coalesce() : local;  // a sparse gradient's duplicate rows summed
  if (comm_->size() == 1) {  // nothing to average: this backward's gradient, as the buckets give it
    if (local.defined() && !p.grad().is_same(local)) p.mutable_grad() = sparse ? local_rows : local.clone();
    return;
  }
  // [rows] 1 where this rank's gradient row is nonzero (NaN counts; for a sparse gradient: present),
  // then 1 if it has a gradient
  auto mask = torch::zeros({rows + 1}, torch::TensorOptions().dtype(torch::kFloat).device(p.device()));
  if (sparse) {
    mask.index_fill_(0, local_rows.indices()[0], 1);
    mask[rows] = 1;
  } else if (local.defined()) {
    mask.narrow(0, 0, rows).copy_(local.ne(0).any(1));
    mask[rows] = 1;
  }
  const std::string name = "row_sparse_" + std::to_string(param);
  comm_->all_reduce_async(mask, ReduceOp::Max, name + "_rows")->wait();
  if (mask[rows].item<float>() == 0) return;  // no rank used it: leave its gradient as a single process would
  const auto index = mask.narrow(0, 0, rows).nonzero().squeeze(1);
  torch::Tensor reduced;
  if (sparse) {
    // this rank's rows placed at their positions in the union `index` (sorted, as are a coalesced tensor's rows)
    const auto position = torch::searchsorted(index, local_rows.indices()[0]);
    reduced = torch::zeros({index.size(0), p.size(1)}, local_rows.values().options())
                  .index_add_(0, position, local_rows.values());
  } else {
    reduced = local.defined() ? local.index_select(0, index)
                              : torch::zeros({index.size(0), p.size(1)}, p.options().requires_grad(false));
  }
  if (reduced.numel() > 0) comm_->all_reduce_async(reduced, ReduceOp::Avg, name + "_values")->wait();
  auto& grad = p.mutable_grad();
  if (sparse) {
    // the union's rows, averaged: the same values as the dense path's rows, as a coalesced sparse gradient
    grad = torch::sparse_coo_tensor(index.unsqueeze(0), reduced, p.sizes(), reduced.options().layout(torch::kSparse))
               ._coalesced_(true);
    return;
  }
  if (!grad.defined() || grad.is_sparse()) {
    grad = local.defined() ? local.clone() : torch::zeros_like(p, p.options().requires_grad(false));
  } else if (local.defined()) {
    if (!grad.is_same(local)) grad.copy_(local);
  } else {
    grad.zero_();
  }
  grad.index_copy_(0, index, reduced);
}

void GradSync::check_parameters() { check_parameters_in_sync(params_, *comm_, "step " + std::to_string(steps_)); }

std::vector<std::vector<int>> GradSync::bucket_layout() const {
  std::vector<std::vector<int>> layout;
  for (const auto& b : buckets_) layout.push_back(b.params);
  return layout;
}

}  // namespace starft::distributed
