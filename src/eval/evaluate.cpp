#include "eval/evaluate.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "data/loader.h"
#include "data/store.h"
#include "eval/zeroshot_head.h"
#include "data/templates.h"

namespace starft::eval {
namespace fs = std::filesystem;

namespace {

constexpr const char* kOwnClasses = "store";

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// CPU time of this process (all its threads), in seconds.
double cpu_s() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

std::string default_name(const std::string& dir) {
  fs::path p(dir);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // "a/b/" -> "a/b"
  std::string name = p.filename().string();
  return name.empty() || name == "." ? dir : name;
}

// Groups of a store: the larger of the named groups and the largest group value + 1.
int64_t group_count(const data::Store& store) {
  if (!store.manifest().has_groups) return 0;
  int64_t g = static_cast<int64_t>(store.manifest().group_names.size());
  for (int32_t x : store.groups()) g = std::max<int64_t>(g, static_cast<int64_t>(x) + 1);
  return g;
}

}  // namespace

// ---- specs --------------------------------------------------------------------------------

EvalSpec parse_eval_spec(const std::string& text) {
  EvalSpec spec;
  std::stringstream in(text);
  std::string part;
  std::getline(in, part, ':');
  spec.store = part;
  check(!spec.store.empty(), "--store '", text, "': no store directory (the form is DIR[:key=value]...)");
  std::set<std::string> seen;
  while (std::getline(in, part, ':')) {
    const auto eq = part.find('=');
    check(eq != std::string::npos && eq > 0, "--store '", text, "': '", part,
          "' is not key=value (keys: name, templates, class-names, class-map, train-store)");
    const std::string key = part.substr(0, eq), value = part.substr(eq + 1);
    check(!value.empty(), "--store '", text, "': ", key, " has no value");
    check(seen.insert(key).second, "--store '", text, "': ", key, " is given twice");
    if (key == "name") {
      spec.name = value;
    } else if (key == "templates") {
      spec.templates = value;
    } else if (key == "class-names") {
      spec.class_names = value;
    } else if (key == "classnames") {
      fail("--store '", text, "': key classnames was renamed class-names");
    } else if (key == "class-map") {
      spec.class_map = value;
    } else if (key == "train-store") {
      spec.train_store = value;
    } else {
      fail("--store '", text, "': unknown key '", key,
           "' (keys: name, templates, class-names, class-map, train-store)");
    }
  }
  return spec;
}

std::vector<EvalSpec> parse_eval_specs(const std::vector<std::string>& texts) {
  std::vector<EvalSpec> specs;
  for (const auto& text : texts) {
    std::stringstream in(text);
    std::string part;
    while (std::getline(in, part, ',')) specs.push_back(parse_eval_spec(part));
    check(!text.empty() && text.back() != ',', "--store '", text, "': empty entry in the comma-separated list");
  }
  return specs;
}

int64_t per_rank_batch(int64_t global_batch, int ranks) {
  check(global_batch > 0 && ranks > 0, "per_rank_batch: batch ", global_batch, " over ", ranks, " ranks");
  return (global_batch + ranks - 1) / ranks;
}

// ---- results ------------------------------------------------------------------------------

nlohmann::json StoreResult::to_json() const {
  nlohmann::json j{{"name", name},
                   {"store", store},
                   {"head", head},
                   {"templates", templates},
                   {"head_classes", head_classes},
                   {"matching", to_string(matching)},
                   {"seconds", seconds},
                   {"cpu_seconds", cpu_seconds}};
  if (matching == Matching::class_map) j["class_map"] = class_map;
  j.update(metrics.to_json());
  return j;
}

nlohmann::json EvalResults::to_json() const {
  nlohmann::json j{
      {"ranks", ranks}, {"head_seconds", head_seconds}, {"images", images()}, {"scoring_seconds", scoring_seconds()}};
  const double s = scoring_seconds();
  j["images_per_second"] = s > 0 ? nlohmann::json(static_cast<double>(images()) / s) : nlohmann::json(nullptr);
  j["cpu_seconds"] = cpu_seconds();
  j["stores"] = nlohmann::json::array();
  for (const auto& r : stores) j["stores"].push_back(r.to_json());
  return j;
}

const StoreResult& EvalResults::store(const std::string& name) const {
  std::string known;
  for (const auto& r : stores) {
    if (r.name == name) return r;
    known += (known.empty() ? "" : ", ") + r.name;
  }
  fail("no evaluation store named '", name, "' (stores: ", known.empty() ? "none" : known, ")");
}

double EvalResults::metric(const std::string& store_name, const std::string& metric) const {
  try {
    return store(store_name).metrics.get(metric);
  } catch (const Error& e) {
    fail("store '", store_name, "': ", e.what());
  }
}

int64_t EvalResults::images() const {
  int64_t n = 0;
  for (const auto& r : stores) n += r.metrics.total;
  return n;
}

double EvalResults::scoring_seconds() const {
  double s = 0;
  for (const auto& r : stores) s += r.seconds;
  return s;
}

double EvalResults::cpu_seconds() const {
  double s = 0;
  for (const auto& r : stores) s += r.cpu_seconds;
  return s;
}

// ---- evaluator ----------------------------------------------------------------------------

struct Evaluator::Head {
  ClassList classes;
  std::string templates_name;
  std::vector<std::string> templates;
};

struct Evaluator::Target {
  EvalSpec spec;
  std::unique_ptr<data::Store> store;
  ClassList classes;
  size_t head = 0;
  ClassMapping mapping;
  int64_t groups = 0;
  std::vector<double> train_proportions;
};

Evaluator::~Evaluator() = default;

size_t Evaluator::stores() const { return targets_.size(); }

Evaluator::Evaluator(const std::vector<EvalSpec>& specs, const EvalOptions& options) : options_(options) {
  check(!specs.empty(), "evaluation: no stores given (--store DIR[,DIR...])");
  check(options.batch_size > 0, "--batch-size must be positive, got ", options.batch_size);
  check(options.text_batch_size > 0, "--text-batch-size must be positive, got ", options.text_batch_size);
  check(options.workers > 0, "--workers must be positive, got ", options.workers);
  std::map<std::string, std::vector<std::string>> template_sets;
  std::map<std::string, ClassList> class_lists;
  std::map<std::pair<std::string, std::string>, size_t> head_index;
  std::map<std::string, std::vector<double>> train_cache;
  std::set<std::string> names;
  for (const auto& spec_in : specs) {
    auto t = std::make_unique<Target>();
    t->spec = spec_in;
    auto& spec = t->spec;
    if (spec.name.empty()) spec.name = default_name(spec.store);
    check(names.insert(spec.name).second, "evaluation: two stores are named '", spec.name,
          "'; give them distinct names (--store DIR:name=LABEL)");
    const std::string where = "store " + spec.store;
    check(fs::is_directory(spec.store), where, ": no such directory");
    t->store = std::make_unique<data::Store>(spec.store);
    check(t->store->size() > 0, where, ": the store holds no samples");
    t->classes = data::class_list(t->store->manifest(), spec.store);

    // The head: class list x template set, shared by stores that ask for the same one.
    const std::string templates = spec.templates.empty() ? options.templates : spec.templates;
    if (!template_sets.count(templates)) template_sets[templates] = data::load_templates(templates);
    std::string class_names = spec.class_names.empty() ? options.class_names : spec.class_names;
    if (class_names == kOwnClasses) class_names.clear();
    const bool own = class_names.empty();
    ClassList head_classes;
    if (own) {
      head_classes = t->classes;
    } else {
      if (!class_lists.count(class_names)) class_lists[class_names] = data::read_class_list(class_names);
      head_classes = class_lists[class_names];
    }
    // Stores with the same classes (a validation and a test split) share one head.
    std::string head_key;
    for (int64_t c = 0; c < head_classes.size(); ++c) {
      head_key += head_classes.names[c] + '\t' + (head_classes.has_ids() ? head_classes.ids[c] : "") + '\n';
    }
    auto key = std::make_pair(head_key, templates);
    auto found = head_index.find(key);
    if (found == head_index.end()) {
      auto head = std::make_unique<Head>();
      head->classes = head_classes;
      head->templates_name = templates;
      head->templates = template_sets[templates];
      found = head_index.emplace(key, heads_.size()).first;
      heads_.push_back(std::move(head));
    }
    t->head = found->second;

    // Which head columns score which store class.
    const std::string class_map = !spec.class_map.empty() ? spec.class_map : own ? "" : options.class_map;
    if (!class_map.empty()) {
      t->mapping = read_class_map(class_map, t->classes, head_classes);
    } else {
      t->mapping = match_classes(t->classes, head_classes, where);
    }

    // Groups, and the training proportions that weight them.
    t->groups = group_count(*t->store);
    const std::string train = spec.train_store.empty() ? options.train_store : spec.train_store;
    check(spec.train_store.empty() || t->groups > 0, where, ": train-store=", spec.train_store,
          " is given but the store has no groups");
    if (!train.empty() && t->groups > 0) {
      if (!train_cache.count(train)) {
        check(fs::is_directory(train), "--train-store ", train, ": no such directory");
        data::Store train_store(train);
        check(train_store.manifest().has_groups, "--train-store ", train,
              ": the store has no groups, so it gives no group proportions for avg_acc_train_weighted");
        train_cache[train] = group_proportions(train_store.groups(), group_count(train_store));
      }
      const auto& p = train_cache[train];
      check(static_cast<int64_t>(p.size()) == t->groups, where, ": it has ", t->groups,
            " groups but the training store ", train, " has ", p.size(),
            "; avg_acc_train_weighted needs the same groups");
      t->train_proportions = p;
    }
    names_.push_back(spec.name);
    targets_.push_back(std::move(t));
  }
}

EvalResults Evaluator::evaluate(clip::CLIP& model, const clip::Tokenizer& tokenizer, distributed::Communicator& comm) {
  torch::NoGradGuard no_grad;
  EvalModeGuard eval_mode(*model);
  const torch::Device device = model->device();
  EvalResults results;
  results.ranks = comm.size();

  HeadOptions head_options;
  head_options.text_batch_size = options_.text_batch_size;
  double t0 = now_s();
  std::vector<torch::Tensor> heads;
  for (const auto& h : heads_) {
    heads.push_back(zeroshot_head(model, tokenizer, h->classes.names, h->templates, head_options, &comm));
  }
  results.head_seconds = now_s() - t0;

  for (const auto& t : targets_) {
    const auto& head = *heads_[t->head];
    data::SamplerOptions so;
    so.num_samples = t->store->size();
    so.world_size = comm.size();
    so.rank = comm.rank();
    // The global batch over the ranks; scores are per sample, so it changes no result.
    so.batch_size = per_rank_batch(options_.batch_size, comm.size());
    so.shuffle = false;
    so.tail = data::Tail::uneven;
    data::LoaderOptions lo;
    lo.workers = options_.workers;
    lo.augment.transform = data::Transform::eval;
    lo.augment.output_size = static_cast<int>(model->config().image_size);
    for (int ch = 0; ch < 3; ++ch) {  // the model's own normalisation (its configuration's mean/std)
      lo.augment.mean[ch] = static_cast<float>(model->config().image_mean[ch]);
      lo.augment.std[ch] = static_cast<float>(model->config().image_std[ch]);
    }
    data::Loader loader(*t->store, data::DistributedSampler(so), lo);
    Counts counts(t->classes.size(), t->groups);

    comm.barrier("eval_start");
    t0 = now_s();
    const double c0 = cpu_s();
    loader.start(0);
    while (auto batch = loader.next()) {
      auto logits = t->mapping.apply(head_logits(model, batch->images, heads[t->head]));
      counts.add(logits.argmax(1), batch->labels, batch->groups);
    }
    counts.all_reduce(comm, device);

    StoreResult r;
    r.seconds = now_s() - t0;
    auto cpu = torch::tensor({cpu_s() - c0}, torch::kDouble).to(device);
    comm.all_reduce(cpu, distributed::ReduceOp::Sum, "eval_cpu_seconds");
    r.cpu_seconds = cpu.item<double>();
    r.name = t->spec.name;
    r.store = t->spec.store;
    r.head = head.classes.source;
    r.templates = head.templates_name;
    r.head_classes = head.classes.size();
    r.matching = t->mapping.matching;
    if (r.matching == Matching::class_map) {
      r.class_map = !t->spec.class_map.empty() ? t->spec.class_map : options_.class_map;
    }
    r.metrics = compute_metrics(counts, t->classes.names, t->store->manifest().group_names, t->train_proportions);
    spdlog::info("eval {}: {} samples, top-1 {:.4f}{} ({:.2f} s, {:.1f} images/s on {} rank(s))", r.name,
                 r.metrics.total, r.metrics.top1,
                 r.metrics.worst_group_acc ? fmt::format(", worst group {:.4f}", *r.metrics.worst_group_acc) : "",
                 r.seconds, r.seconds > 0 ? r.metrics.total / r.seconds : 0.0, comm.size());
    results.stores.push_back(std::move(r));
  }
  return results;
}

EvalResults evaluate(clip::CLIP& model, const clip::Tokenizer& tokenizer, const std::vector<EvalSpec>& specs,
                     distributed::Communicator& comm, const EvalOptions& options) {
  Evaluator evaluator(specs, options);
  return evaluator.evaluate(model, tokenizer, comm);
}

}  // namespace starft::eval
