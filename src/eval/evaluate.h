#pragma once
// Distributed evaluation of a CLIP model on a list of stores with zero-shot heads.
//
// Everything that can be wrong with the request (a store that does not open, classes that cannot
// be matched to their head, a missing class-map entry, a bad template set or class list, a
// training store without groups) is found when the Evaluator is constructed, before any scoring.
// evaluate() then, on every rank of the communicator:
//   1. builds each distinct head (class list x template set) from the model's current text tower,
//      the classes split over the ranks and the class embeddings all-gathered;
//   2. scores its own samples of each store: samples r, r + W, r + 2W, ... in store order (split
//      by samples, never by shards, so uneven shards leave no rank idle; every sample once), in
//      forward passes of ceil(batch_size / W) images (batch_size is global, as in training);
//   3. all-reduces the int64 correct/total counts per class and per group (sums are exact, so
//      the counts do not depend on the number of ranks) and computes the metrics.
// Every rank returns the same results; the caller's rank 0 reports them. A rank that fails ends
// the job through the runtime's failure handling, so there is never a partial table.
//
// The trainer calls it between epochs:
//   eval::Evaluator evaluator(eval::parse_eval_specs({"val_store:name=val"}), options);  // once
//   auto results = evaluator.evaluate(model, tokenizer, comm);                            // each epoch
//   double wga = results.metric("val", "worst_group_acc");
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "clip/model.h"
#include "clip/tokenizer.h"
#include "distributed/communicator.h"
#include "eval/class_map.h"
#include "eval/metrics.h"

namespace starft::data {
class Store;
}

namespace starft::eval {

// One store to evaluate, with per-store overrides of the EvalOptions defaults ("" = default).
struct EvalSpec {
  std::string store;        // store directory
  std::string name;         // label in tables and results.json; default: the directory's name
  std::string templates;    // template set of this store's head (a built-in name or a file)
  std::string class_names;  // class list file of this store's head; "store": the store's own classes
  std::string class_map;    // class map file from this store's classes to its head's
  std::string train_store;  // training store for avg_acc_train_weighted
};

// "DIR[:key=value]..." with keys name, templates, class-names, class-map, train-store, e.g.
// "wb_test:name=waterbirds:class-names=store:templates=waterbirds". Throws for an unknown key
// (naming the new key for the former `classnames`), a missing '=', a key given twice, or an
// empty directory.
EvalSpec parse_eval_spec(const std::string& text);
// Each text may hold several specs separated by commas ("S1,S2:name=x").
std::vector<EvalSpec> parse_eval_specs(const std::vector<std::string>& texts);

struct EvalOptions {
  std::string templates = "imagenet";  // default template set (built-in name or file)
  std::string class_names;             // default class list file of the heads; "" = each store's own classes
  std::string class_map;               // default class map, for stores whose head is not their own classes
  std::string train_store;             // default training store (used by stores that have groups)
  int64_t batch_size = 64;             // global batch: images per step over all ranks, ceil(B / ranks) per rank
  int64_t text_batch_size = 256;
  int workers = 1;  // augmentation threads per rank (plus one reader thread)
};

// Images per forward pass on each of `ranks` ranks for a global batch: ceil(global_batch / ranks).
int64_t per_rank_batch(int64_t global_batch, int ranks);

struct StoreResult {
  std::string name, store;
  std::string head;       // where the head's classes come from (a file, or the store)
  std::string templates;  // the template set
  int64_t head_classes = 0;
  Matching matching = Matching::identity;
  std::string class_map;  // the class map file, when matching == class_map
  Metrics metrics;
  double seconds = 0;      // scoring time on this rank: from a barrier to the reduced counts
  double cpu_seconds = 0;  // process CPU time (all threads) over the same span, summed over ranks

  nlohmann::json to_json() const;
};

struct EvalResults {
  int ranks = 1;
  double head_seconds = 0;  // building every head
  std::vector<StoreResult> stores;

  nlohmann::json to_json() const;
  // Throws naming the stores when `name` is not one of them.
  const StoreResult& store(const std::string& name) const;
  // store(name).metrics.get(metric), e.g. metric("val", "worst_group_acc").
  double metric(const std::string& store_name, const std::string& metric) const;
  int64_t images() const;
  double scoring_seconds() const;
  double cpu_seconds() const;
};

class Evaluator {
 public:
  // Opens and checks everything (see above); throws starft::Error before any scoring.
  Evaluator(const std::vector<EvalSpec>& specs, const EvalOptions& options);
  ~Evaluator();
  Evaluator(const Evaluator&) = delete;
  Evaluator& operator=(const Evaluator&) = delete;

  // Scores `model` (as it is now; eval mode for the call, no gradient) on every store.
  // Collective over `comm`, whose tensors live on the model's device (MPI: CPU; NCCL: CUDA).
  EvalResults evaluate(clip::CLIP& model, const clip::Tokenizer& tokenizer, distributed::Communicator& comm);

  size_t stores() const;
  const std::vector<std::string>& names() const { return names_; }

 private:
  struct Head;
  struct Target;
  std::vector<std::unique_ptr<Head>> heads_;
  std::vector<std::unique_ptr<Target>> targets_;
  std::vector<std::string> names_;
  EvalOptions options_;
};

// One-shot form: Evaluator(specs, options).evaluate(model, tokenizer, comm).
EvalResults evaluate(clip::CLIP& model, const clip::Tokenizer& tokenizer, const std::vector<EvalSpec>& specs,
                     distributed::Communicator& comm, const EvalOptions& options = {});

}  // namespace starft::eval
