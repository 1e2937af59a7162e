#include "train/optimizer.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <set>

#include "common/error.h"
#include "train/adamw_kernel.h"

namespace starft::train {

namespace {

std::string state_key(const torch::Tensor& param) {
  // The key LibTorch's optimizers use for a parameter's state.
  return c10::guts::to_string(param.unsafeGetTensorImpl());
}

// A parameter whose memory adamw_update can walk: contiguous float32 on the CPU.
bool kernel_takes(const torch::Tensor& p) {
  return p.device().is_cpu() && p.scalar_type() == torch::kFloat && p.is_contiguous();
}

bool fusable(const torch::Tensor& p, const torch::Tensor& g) {
  return kernel_takes(p) && g.scalar_type() == torch::kFloat && g.is_contiguous() && g.layout() == torch::kStrided &&
         g.sizes() == p.sizes();
}

}  // namespace

bool FusedAdamW::takes_row_sparse_gradient(const torch::Tensor& param) {
  return kernel_takes(param) && param.dim() == 2;
}

torch::Tensor FusedAdamW::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  // Parameters LibTorch must update (not fusable) are handed to the base class in one call with
  // every other parameter's gradient hidden, so each parameter is stepped exactly once.
  bool any_other = false;
  for (auto& group : param_groups()) {
    auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
    TORCH_CHECK(!o.amsgrad(), "FusedAdamW: amsgrad is not supported");
    const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const auto& g = p.grad();
      const bool sparse = g.is_sparse();
      check(!sparse || (takes_row_sparse_gradient(p) && g.sparse_dim() == 1 && g.sizes() == p.sizes()),
            "AdamW: a sparse gradient is supported only as rows of a contiguous 2-D float32 CPU parameter (got a "
            "parameter of shape ",
            p.sizes(), ", ", p.scalar_type(), " on ", p.device(),
            "); use dense gradients (Embedding without sparse=true)");
      if (!sparse && !fusable(p, g)) {
        any_other = true;
        continue;
      }
      const auto key = state_key(p);
      auto& slot = state_[key];
      if (!slot) {
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(0);
        s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        slot = std::move(s);
      }
      auto& s = static_cast<torch::optim::AdamWParamState&>(*slot);
      s.step(s.step() + 1);
      const double bc1 = 1 - std::pow(beta1, s.step());
      const double bc2 = 1 - std::pow(beta2, s.step());
      const bool decay = o.weight_decay() != 0;
      const float decay_factor = static_cast<float>(1 - o.lr() * o.weight_decay());
      const float sqrt_bc2 = static_cast<float>(std::sqrt(bc2));
      const float neg_step = static_cast<float>(-(o.lr() / bc1));
      const float eps = static_cast<float>(o.eps());
      float* pd = p.data_ptr<float>();
      float* md = s.exp_avg().data_ptr<float>();
      float* vd = s.exp_avg_sq().data_ptr<float>();
      auto update = [&](float* pr, const float* gr, float* mr, float* vr, int64_t b, int64_t e) {
        adamw_update(pr, gr, mr, vr, b, e, decay_factor, decay, static_cast<float>(beta1),
                     static_cast<float>(1 - beta1), static_cast<float>(beta2), static_cast<float>(1 - beta2), sqrt_bc2,
                     eps, neg_step);
      };
      if (!sparse) {
        active_rows_.erase(key);  // the dense update may have made any row's moments nonzero
        const float* gd = g.data_ptr<float>();
        at::parallel_for(0, p.numel(), 1 << 16, [&](int64_t b, int64_t e) { update(pd, gd, md, vd, b, e); });
        continue;
      }
      const int64_t rows = p.size(0), width = p.size(1);
      auto& active = active_rows_[key];
      if (active.exp_avg != s.exp_avg().unsafeGetTensorImpl()) {
        // a new or reloaded state: the rows whose moments are nonzero, from the moments themselves
        auto nonzero = (s.exp_avg().ne(0).any(1) | s.exp_avg_sq().ne(0).any(1)).to(torch::kUInt8).contiguous();
        active.rows.assign(nonzero.data_ptr<uint8_t>(), nonzero.data_ptr<uint8_t>() + rows);
        active.exp_avg = s.exp_avg().unsafeGetTensorImpl();
      }
      const auto gc = g.coalesce();  // duplicate rows summed
      const auto index = gc.indices()[0].contiguous();
      const auto values = gc.values().to(torch::kFloat).contiguous();
      std::vector<int64_t> value_row(rows, -1);
      const int64_t* ix = index.data_ptr<int64_t>();
      for (int64_t k = 0; k < index.numel(); ++k) {
        value_row[ix[k]] = k;
        active.rows[ix[k]] = 1;
      }
      const float* vals = values.data_ptr<float>();
      const std::vector<float> zeros(width, 0.0f);
      at::parallel_for(0, rows, std::max<int64_t>(1, (1 << 16) / width), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const int64_t at = r * width;
          if (value_row[r] >= 0) {
            update(pd + at, vals + value_row[r] * width, md + at, vd + at, 0, width);
          } else if (active.rows[r]) {
            update(pd + at, zeros.data(), md + at, vd + at, 0, width);
          } else if (decay) {
            adamw_decay_only(pd + at, 0, width, decay_factor);
          }
        }
      });
    }
  }
  if (any_other) {
    std::vector<std::pair<torch::Tensor, torch::Tensor>> hidden;
    for (auto& group : param_groups())
      for (auto& p : group.params())
        if (p.grad().defined() && (fusable(p, p.grad()) || p.grad().is_sparse())) {
          hidden.emplace_back(p, p.grad());
          p.mutable_grad() = torch::Tensor();
        }
    torch::optim::AdamW::step();
    for (auto& [p, g] : hidden) p.mutable_grad() = g;
  }
  return loss;
}

double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;  // dense gradients, or the coalesced values of sparse ones
  for (torch::Tensor p : params) {   // a handle: its gradient can be replaced by the coalesced one
    if (!p.grad().defined()) continue;
    if (p.grad().is_sparse()) {
      auto& g = p.mutable_grad();
      if (!g.is_coalesced()) g = g.coalesce();
      grads.push_back(g._values());
    } else {
      grads.push_back(p.grad());
    }
  }
  if (grads.empty()) return 0.0;
  std::vector<torch::Tensor> norms;
  for (const auto& g : grads) norms.push_back(g.norm(2));
  const double total = torch::stack(norms).norm(2).item<double>();
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1) {
    for (auto& g : grads) g.mul_(coef);
  }
  return total;
}

bool is_gain_or_bias(const std::string& name, const torch::Tensor& param) {
  return param.dim() < 2 || name == "logit_scale";
}

std::unique_ptr<torch::optim::AdamW> make_adamw(const NamedParams& params, const AdamWSettings& s) {
  check(!params.empty(), "AdamW: there are no trainable parameters (is everything frozen?)");
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& [name, p] : params) {
    (s.exclude_gains_biases && is_gain_or_bias(name, p) ? no_decay : decay).push_back(p);
  }
  auto options =
      torch::optim::AdamWOptions(s.lr).betas(std::make_tuple(s.beta1, s.beta2)).eps(s.eps).weight_decay(s.weight_decay);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(options));
  if (!no_decay.empty()) {
    auto none = options;
    none.weight_decay(0.0);
    groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(none));
  }
  return std::make_unique<FusedAdamW>(std::move(groups), options);
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  }
}

safetensors::TensorMap optimizer_state(const torch::optim::AdamW& optimizer, const NamedParams& params) {
  safetensors::TensorMap out;
  const auto& state = optimizer.state();
  for (const auto& [name, p] : params) {
    auto it = state.find(state_key(p));
    if (it == state.end()) continue;
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    out[name + ".exp_avg"] = s.exp_avg().detach().cpu().clone();
    out[name + ".exp_avg_sq"] = s.exp_avg_sq().detach().cpu().clone();
    out[name + ".step"] = torch::tensor(s.step(), torch::kLong);
  }
  return out;
}

void load_optimizer_state(torch::optim::AdamW& optimizer, const NamedParams& params,
                          const safetensors::TensorMap& state, const std::string& source) {
  std::set<std::string> used;
  auto& slots = optimizer.state();
  slots.clear();
  for (const auto& [name, p] : params) {
    auto avg = state.find(name + ".exp_avg");
    auto sq = state.find(name + ".exp_avg_sq");
    auto step = state.find(name + ".step");
    const int found = (avg != state.end()) + (sq != state.end()) + (step != state.end());
    if (found == 0) continue;  // never stepped (e.g. no gradient yet)
    check(found == 3, source, ": optimizer state of '", name,
          "' is incomplete (needs exp_avg, exp_avg_sq and step); the checkpoint is damaged");
    for (auto* t : {&avg->second, &sq->second}) {
      check(t->sizes() == p.sizes(), source, ": optimizer state of '", name, "' has shape ", t->sizes(),
            " but the parameter has ", p.sizes(), "; the checkpoint belongs to another model");
    }
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(step->second.item<int64_t>());
    s->exp_avg(avg->second.to(p.device(), p.scalar_type()).clone());
    s->exp_avg_sq(sq->second.to(p.device(), p.scalar_type()).clone());
    slots[state_key(p)] = std::move(s);
    used.insert({name + ".exp_avg", name + ".exp_avg_sq", name + ".step"});
  }
  for (const auto& [key, value] : state) {
    check(used.count(key), source, ": optimizer state '", key,
          "' matches no trainable parameter; the checkpoint was made with other frozen/trainable settings");
  }
}

}  // namespace starft::train
