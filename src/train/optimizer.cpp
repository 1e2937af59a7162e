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

bool fusable(const torch::Tensor& p, const torch::Tensor& g) {
  return p.device().is_cpu() && p.scalar_type() == torch::kFloat && g.scalar_type() == torch::kFloat &&
         p.is_contiguous() && g.is_contiguous() && g.layout() == torch::kStrided && g.sizes() == p.sizes();
}

}  // namespace

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
      TORCH_CHECK(!g.is_sparse(), "AdamW does not support sparse gradients");
      if (!fusable(p, g)) {
        any_other = true;
        continue;
      }
      auto& slot = state_[state_key(p)];
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
      float* pd = p.data_ptr<float>();
      const float* gd = g.data_ptr<float>();
      float* md = s.exp_avg().data_ptr<float>();
      float* vd = s.exp_avg_sq().data_ptr<float>();
      const float eps = static_cast<float>(o.eps());
      at::parallel_for(0, p.numel(), 1 << 16, [&](int64_t b, int64_t e) {
        adamw_update(pd, gd, md, vd, b, e, decay_factor, decay, static_cast<float>(beta1),
                     static_cast<float>(1 - beta1), static_cast<float>(beta2), static_cast<float>(1 - beta2), sqrt_bc2,
                     eps, neg_step);
      });
    }
  }
  if (any_other) {
    std::vector<std::pair<torch::Tensor, torch::Tensor>> hidden;
    for (auto& group : param_groups())
      for (auto& p : group.params())
        if (p.grad().defined() && fusable(p, p.grad())) {
          hidden.emplace_back(p, p.grad());
          p.mutable_grad() = torch::Tensor();
        }
    torch::optim::AdamW::step();
    for (auto& [p, g] : hidden) p.mutable_grad() = g;
  }
  return loss;
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
