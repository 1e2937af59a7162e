#include "eval/metrics.h"

#include <cmath>
#include <limits>

#include "common/error.h"

namespace starft::eval {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double ratio(int64_t correct, int64_t total) {
  return total > 0 ? static_cast<double>(correct) / static_cast<double>(total) : kNaN;
}

nlohmann::json number_or_null(double x) { return std::isnan(x) ? nlohmann::json(nullptr) : nlohmann::json(x); }

nlohmann::json optional_json(const std::optional<double>& x) {
  return x ? number_or_null(*x) : nlohmann::json(nullptr);
}

std::vector<Accuracy> accuracies(const torch::Tensor& correct, const torch::Tensor& total,
                                 const std::vector<std::string>& names, const char* prefix) {
  std::vector<Accuracy> out;
  auto c = correct.accessor<int64_t, 1>();
  auto t = total.accessor<int64_t, 1>();
  for (int64_t i = 0; i < total.numel(); ++i) {
    Accuracy a;
    a.name = i < static_cast<int64_t>(names.size()) && !names[i].empty() ? names[i] : prefix + std::to_string(i);
    a.correct = c[i];
    a.total = t[i];
    a.acc = ratio(a.correct, a.total);
    out.push_back(std::move(a));
  }
  return out;
}

nlohmann::json to_json(const std::vector<Accuracy>& list) {
  auto j = nlohmann::json::array();
  for (const auto& a : list) {
    j.push_back({{"name", a.name}, {"correct", a.correct}, {"total", a.total}, {"acc", number_or_null(a.acc)}});
  }
  return j;
}

}  // namespace

Counts::Counts(int64_t classes, int64_t groups)
    : class_correct_(torch::zeros({classes}, torch::kLong)),
      class_total_(torch::zeros({classes}, torch::kLong)),
      group_correct_(torch::zeros({groups}, torch::kLong)),
      group_total_(torch::zeros({groups}, torch::kLong)) {
  check(classes > 0, "metrics: a store needs at least one class");
  check(groups >= 0, "metrics: negative group count ", groups);
}

void Counts::add(const torch::Tensor& predictions, const torch::Tensor& labels, const torch::Tensor& groups) {
  const auto pred = predictions.to(torch::kCPU, torch::kLong).reshape({-1});
  const auto lab = labels.to(torch::kCPU, torch::kLong).reshape({-1});
  check(pred.numel() == lab.numel(), "metrics: ", pred.numel(), " predictions for ", lab.numel(), " labels");
  if (lab.numel() == 0) return;
  const int64_t C = classes();
  check(lab.min().item<int64_t>() >= 0 && lab.max().item<int64_t>() < C, "metrics: a label lies outside [0, ", C, ")");
  const auto hit = pred.eq(lab).to(torch::kLong);
  class_total_ += torch::bincount(lab, {}, C);
  class_correct_ += torch::bincount(lab, hit, C).to(torch::kLong);
  const int64_t G = this->groups();
  if (G == 0) return;
  check(groups.defined() && groups.numel() == lab.numel(), "metrics: the store has ", G,
        " groups but the batch carries no group per sample");
  const auto grp = groups.to(torch::kCPU, torch::kLong).reshape({-1});
  check(grp.min().item<int64_t>() >= 0 && grp.max().item<int64_t>() < G, "metrics: a group lies outside [0, ", G, ")");
  group_total_ += torch::bincount(grp, {}, G);
  group_correct_ += torch::bincount(grp, hit, G).to(torch::kLong);
}

void Counts::all_reduce(distributed::Communicator& comm, const torch::Device& device) {
  auto flat = torch::cat({class_correct_, class_total_, group_correct_, group_total_}).to(device).contiguous();
  comm.all_reduce(flat, distributed::ReduceOp::Sum, "eval_counts");
  flat = flat.cpu();
  const int64_t C = classes(), G = groups();
  class_correct_ = flat.narrow(0, 0, C).clone();
  class_total_ = flat.narrow(0, C, C).clone();
  group_correct_ = flat.narrow(0, 2 * C, G).clone();
  group_total_ = flat.narrow(0, 2 * C + G, G).clone();
}

int64_t Counts::correct() const { return class_correct_.sum().item<int64_t>(); }
int64_t Counts::total() const { return class_total_.sum().item<int64_t>(); }

nlohmann::json Metrics::to_json() const {
  nlohmann::json j{{"correct", correct}, {"total", total}, {"top1", number_or_null(top1)}};
  j["per_class"] = eval::to_json(classes);
  if (!groups.empty()) {
    j["per_group"] = eval::to_json(groups);
    j["worst_group_acc"] = optional_json(worst_group_acc);
    j["avg_acc"] = optional_json(avg_acc);
    j["avg_acc_train_weighted"] = optional_json(avg_acc_train_weighted);
  }
  return j;
}

double Metrics::get(const std::string& metric) const {
  if (metric == "top1") return top1;
  const std::optional<double>* found = nullptr;
  if (metric == "worst_group_acc") found = &worst_group_acc;
  if (metric == "avg_acc") found = &avg_acc;
  if (metric == "avg_acc_train_weighted") found = &avg_acc_train_weighted;
  check(found != nullptr, "unknown metric '", metric,
        "' (known: top1, worst_group_acc, avg_acc, avg_acc_train_weighted)");
  check(found->has_value(), "metric '", metric, "' is not available for this store (",
        groups.empty() ? "it has no groups" : "no training group proportions were given (--train-store)", ")");
  return **found;
}

Metrics compute_metrics(const Counts& counts, const std::vector<std::string>& class_names,
                        const std::vector<std::string>& group_names,
                        const std::vector<double>& train_group_proportions) {
  Metrics m;
  m.correct = counts.correct();
  m.total = counts.total();
  m.top1 = ratio(m.correct, m.total);
  m.classes = accuracies(counts.class_correct(), counts.class_total(), class_names, "class ");
  if (counts.groups() == 0) {
    check(train_group_proportions.empty(), "metrics: training group proportions given for a store without groups");
    return m;
  }
  m.groups = accuracies(counts.group_correct(), counts.group_total(), group_names, "group ");
  m.avg_acc = m.top1;
  double worst = kNaN;
  for (const auto& g : m.groups) {
    if (g.total > 0 && !(g.acc >= worst)) worst = g.acc;
  }
  m.worst_group_acc = worst;
  if (!train_group_proportions.empty()) {
    check(static_cast<int64_t>(train_group_proportions.size()) == counts.groups(),
          "metrics: ", train_group_proportions.size(), " training group proportions for a store with ", counts.groups(),
          " groups");
    double weighted = 0, weight = 0;
    for (size_t g = 0; g < m.groups.size(); ++g) {
      if (m.groups[g].total == 0) continue;
      weighted += train_group_proportions[g] * m.groups[g].acc;
      weight += train_group_proportions[g];
    }
    m.avg_acc_train_weighted = weight > 0 ? weighted / weight : kNaN;
  }
  return m;
}

std::vector<double> group_proportions(const std::vector<int32_t>& sample_groups, int64_t groups) {
  check(groups > 0, "group proportions: no groups");
  check(!sample_groups.empty(), "group proportions: no samples");
  std::vector<double> p(groups, 0.0);
  for (int32_t g : sample_groups) {
    check(g >= 0 && g < groups, "group proportions: group ", g, " lies outside [0, ", groups, ")");
    p[g] += 1;
  }
  for (auto& x : p) x /= static_cast<double>(sample_groups.size());
  return p;
}

}  // namespace starft::eval
