#pragma once
// Classification metrics from correct/total counts per class and per group.
//
// Counts are int64 tensors so that every rank counts its own samples and one all-reduce (sum)
// gives the counts of the whole store, exactly, whatever the number of ranks. Metrics are then
// computed from the reduced counts:
//   top1                    correct / total over every sample;
//   per class               correct / total of the samples of each class;
//   per group               the same for each group (group benchmarks such as Waterbirds:
//                           group = 2 * label + place);
//   worst_group_acc         the minimum over groups that have samples;
//   avg_acc                 the plain mean over test samples (equal to top1; named for the
//                           group-benchmark tables);
//   avg_acc_train_weighted  sum over groups of p_g * acc_g with p_g the *training* store's group
//                           proportions (the Waterbirds convention); weights are renormalised over
//                           the groups that have test samples.
// An accuracy with no samples is NaN in C++ and null in JSON.
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "distributed/communicator.h"

namespace starft::eval {

class Counts {
 public:
  Counts() = default;
  // `groups` = 0 for a store without groups.
  Counts(int64_t classes, int64_t groups);

  // Adds one batch: predicted and true classes (int64 [N]) and groups (int64 [N]; ignored
  // without groups). Labels and groups must lie in range (throws otherwise).
  void add(const torch::Tensor& predictions, const torch::Tensor& labels, const torch::Tensor& groups = {});
  // Sums the counts of every rank of `comm` (one all-reduce); collective. Tensors are moved to
  // `device` for the operation (the communicator's device: CPU for MPI, CUDA for NCCL).
  void all_reduce(distributed::Communicator& comm, const torch::Device& device = torch::kCPU);

  int64_t classes() const { return class_total_.numel(); }
  int64_t groups() const { return group_total_.numel(); }
  // int64 [classes] / [groups], on the CPU.
  const torch::Tensor& class_correct() const { return class_correct_; }
  const torch::Tensor& class_total() const { return class_total_; }
  const torch::Tensor& group_correct() const { return group_correct_; }
  const torch::Tensor& group_total() const { return group_total_; }
  int64_t correct() const;
  int64_t total() const;

 private:
  torch::Tensor class_correct_ = torch::zeros({0}, torch::kLong), class_total_ = torch::zeros({0}, torch::kLong);
  torch::Tensor group_correct_ = torch::zeros({0}, torch::kLong), group_total_ = torch::zeros({0}, torch::kLong);
};

struct Accuracy {
  std::string name;
  int64_t correct = 0, total = 0;
  double acc = 0;  // NaN when total == 0
};

struct Metrics {
  int64_t correct = 0, total = 0;
  double top1 = 0;
  std::vector<Accuracy> classes;
  std::vector<Accuracy> groups;  // empty for a store without groups
  // Set only for stores with groups (the train-weighted one only with training proportions).
  std::optional<double> worst_group_acc, avg_acc, avg_acc_train_weighted;

  // {"correct", "total", "top1", "per_class": [...], "per_group": [...], "worst_group_acc", ...}
  nlohmann::json to_json() const;
  // A metric by its JSON name ("top1", "worst_group_acc", "avg_acc", "avg_acc_train_weighted");
  // throws naming the metrics this store has when it has no such metric.
  double get(const std::string& metric) const;
};

// Metrics from reduced counts. `class_names` / `group_names` label the entries (missing names are
// numbered). `train_group_proportions`, when not empty, must have one entry per group.
Metrics compute_metrics(const Counts& counts, const std::vector<std::string>& class_names,
                        const std::vector<std::string>& group_names = {},
                        const std::vector<double>& train_group_proportions = {});

// The fraction of samples in each of `groups` groups; throws when a value lies outside [0, groups).
std::vector<double> group_proportions(const std::vector<int32_t>& sample_groups, int64_t groups);

}  // namespace starft::eval
