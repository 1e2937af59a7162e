#include "train/trainer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "clip/architecture.h"
#include "clip/weights.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "data/manifest.h"
#include "distributed/all_gather.h"
#include "distributed/stop_signal.h"
#include "eval/zeroshot_head.h"
#include "train/losses.h"
#include "train/teacher_fingerprint.h"
#include "data/templates.h"

namespace starft::train {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

torch::Tensor normalize(const torch::Tensor& x) { return F::normalize(x, F::NormalizeFuncOptions().dim(-1)); }

// Keys of the configuration a resume may change without changing the training trajectory (the
// batches, losses and updates of every step), so that a change of them is not reported:
//   run-dir, resume, stop-after     where the run lives, how it was started and where it stops;
//   log-every, checkpoint-every,    what is logged and written (a checkpoint reads the state
//   keep-checkpoints                and the RNG, changing neither);
//   workers                         augmentation threads: batches do not depend on their number
//                                   (data/loader.h);
//   eval-stores, eval-every,        evaluation during training: it reads the model and changes
//   eval-templates, eval-class-     no parameter, optimizer state, sampler or RNG;
//   names, eval-batch-size,
//   best-metric
// Not among them: bucket-mib (the all-reduce's message sizes can change its summation order),
// device and precision (other arithmetic), and the input paths (other files may hold other data).
const std::set<std::string>& keys_outside_the_trajectory() {
  static const std::set<std::string> keys{"run-dir",          "resume",           "stop-after",       "log-every",
                                          "checkpoint-every", "keep-checkpoints", "workers",          "eval-stores",
                                          "eval-every",       "eval-templates",   "eval-class-names", "eval-batch-size",
                                          "best-metric"};
  return keys;
}

// The `key = value` lines of to_ini text, in their order (comments and blank lines skipped).
std::vector<std::pair<std::string, std::string>> ini_entries(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(text);
  std::string line;
  auto trim = [](const std::string& t) {
    const auto b = t.find_first_not_of(" \t\r");
    return b == std::string::npos ? std::string() : t.substr(b, t.find_last_not_of(" \t\r") - b + 1);
  };
  while (std::getline(in, line)) {
    const std::string l = trim(line);
    const auto eq = l.find('=');
    if (l.empty() || l[0] == '#' || l[0] == ';' || eq == std::string::npos) continue;
    out.emplace_back(trim(l.substr(0, eq)), trim(l.substr(eq + 1)));
  }
  return out;
}

// The settings that differ between a checkpoint's configuration and this run's, keys outside the
// trajectory left out: "lr: 0.0001 in the checkpoint, 2e-05 now; ..." ("" when none differs).
std::string trajectory_config_differences(const std::string& saved_ini, const std::string& current_ini) {
  const auto saved = ini_entries(saved_ini), current = ini_entries(current_ini);
  std::map<std::string, std::string> saved_map(saved.begin(), saved.end()), current_map(current.begin(), current.end());
  auto shown = [](const std::map<std::string, std::string>& m, const std::string& key) {
    const auto it = m.find(key);
    return it == m.end() ? std::string("(not set)") : it->second.empty() ? std::string("\"\"") : it->second;
  };
  std::string out;
  std::set<std::string> seen;
  auto compare = [&](const std::string& key) {
    if (!seen.insert(key).second || keys_outside_the_trajectory().count(key)) return;
    const auto a = saved_map.find(key), b = current_map.find(key);
    if (a != saved_map.end() && b != current_map.end() && a->second == b->second) return;
    out += (out.empty() ? "" : "; ") + key + ": " + shown(saved_map, key) + " in the checkpoint, " +
           shown(current_map, key) + " now";
  };
  for (const auto& [key, value] : current) compare(key);
  for (const auto& [key, value] : saved) compare(key);
  return out;
}

bool is_text_parameter(const std::string& name) {
  return name.rfind("transformer.", 0) == 0 || name.rfind("token_embedding.", 0) == 0 ||
         name == "positional_embedding" || name.rfind("ln_final.", 0) == 0 || name == "text_projection";
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const auto total = static_cast<int64_t>(s + 0.5);
  char buf[32];
  if (total >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(total / 3600),
                  static_cast<long long>(total % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  }
  return buf;
}

}  // namespace

Trainer::Trainer(TrainConfig config, distributed::Communicator& comm, torch::Device device)
    : config_(std::move(config)), comm_(comm), device_(device), rank_(comm.rank()), world_(comm.size()) {
  validate(config_, world_);
  if (config_.pretrain() && config_.regulariser != Regulariser::none) {
    spdlog::info("pretrain mode: no regulariser (--regulariser {} ignored)", enum_name(config_.regulariser));
    config_.regulariser = Regulariser::none;
  }
  // A run directory with checkpoints continues only when asked to.
  if (config_.resume.empty()) {
    check(list_checkpoints(config_.run_dir).empty(), "--run-dir ", config_.run_dir,
          " already holds checkpoints; pass --resume latest to continue that run, or choose a new --run-dir");
  }
  if (!config_.resume.empty()) resume_from_ = resolve_checkpoint(config_.resume, config_.run_dir);
  // Evaluation stores and heads are checked before anything is loaded or written.
  if (config_.evaluates()) epoch_eval_ = std::make_unique<EpochEval>(config_, rank_, resume_from_.has_value());
  precision_ = parse_precision(config_.precision, device_.is_cuda(), "--precision");
  spdlog::info("precision: {} on {}", precision_name(precision_), device_.str());
  store_ = std::make_unique<data::Store>(config_.store);
  tokenizer_ = std::make_unique<clip::Tokenizer>(clip::Tokenizer::load(config_.vocab));
  student_text_ = std::make_unique<TextEncoder>(*tokenizer_, config_.dedup, config_.truncate);
  if (!config_.pretrain()) {
    for (const auto& name : store_->manifest().class_names) {
      class_captions_.push_back(class_caption(config_.caption_template, name));
    }
  }
  if (config_.uses_regulariser()) pool_ = data::load_templates(config_.spurious_pool);
  setup_model();
  setup_teacher();  // the fingerprint is computed from the zero-shot weights, before any resume
  setup_head();

  for (auto& p : model_->named_parameters()) {
    bool trainable = true;
    if (config_.freeze_text && is_text_parameter(p.key())) trainable = false;
    if (p.key() == "logit_scale" && !config_.train_logit_scale) trainable = false;
    p.value().set_requires_grad(trainable);
    if (trainable) params_.emplace_back(p.key(), p.value());
  }
  if (head_weight_.defined()) {
    params_.emplace_back("head.weight", head_weight_);
    params_.emplace_back("head.bias", head_bias_);
  }

  AdamWSettings adamw;
  adamw.lr = config_.lr;
  adamw.weight_decay = config_.weight_decay;
  adamw.beta1 = config_.beta1;
  adamw.beta2 = config_.beta2;
  adamw.eps = config_.eps;
  adamw.exclude_gains_biases = config_.exclude_gains_biases;
  optimizer_ = make_adamw(params_, adamw);
  // The token embedding's gradient as its rows (Embedding's sparse=true) where the optimizer takes
  // them: the same update without the dense [V, D] passes in backward, GradSync, AdamW and
  // zero_grad (bench/sparse_embedding_bench.cpp). LibTorch's AdamW (CUDA, bf16 weights) keeps dense.
  const auto& token_weight = model_->token_embedding->weight;
  if (token_weight.requires_grad() && FusedAdamW::takes_row_sparse_gradient(token_weight)) {
    model_->token_embedding->options.sparse(true);
    spdlog::debug("token embedding: row-sparse gradient");
  }

  data::SamplerOptions so;
  so.num_samples = store_->size();
  so.world_size = world_;
  so.rank = rank_;
  so.batch_size = config_.batch_size / world_;
  so.shuffle = true;
  so.seed = static_cast<uint64_t>(config_.seed);
  so.tail = data::Tail::pad;
  data::LoaderOptions lo;
  lo.workers = static_cast<int>(config_.workers);
  lo.augment.transform = config_.augment ? data::Transform::train : data::Transform::eval;
  lo.augment.output_size = static_cast<int>(model_->config().image_size);
  for (int ch = 0; ch < 3; ++ch) {
    lo.augment.mean[ch] = static_cast<float>(model_->config().image_mean[ch]);
    lo.augment.std[ch] = static_cast<float>(model_->config().image_std[ch]);
  }
  lo.augment.seed = static_cast<uint64_t>(config_.seed);
  loader_ = std::make_unique<data::Loader>(*store_, data::DistributedSampler(so), lo);

  schedule_.lr = config_.lr;
  schedule_.min_lr = config_.min_lr;
  schedule_.warmup_steps = config_.warmup_steps;
  schedule_.total_steps = loader_->steps_per_epoch() * config_.epochs;

  resume_or_start();

  std::vector<torch::Tensor> tensors;
  std::vector<std::string> names;
  for (const auto& [name, p] : params_) {
    tensors.push_back(p);
    names.push_back(name);
  }
  distributed::GradSyncOptions gs;
  gs.bucket_bytes = static_cast<int64_t>(config_.bucket_mib * (1 << 20));
  gs.first_bucket_bytes = std::min<int64_t>(gs.first_bucket_bytes, gs.bucket_bytes);
  // the token embedding's gradient lives in the rows of the batch's tokens only
  if (std::find(names.begin(), names.end(), "token_embedding.weight") != names.end())
    gs.row_sparse = {"token_embedding.weight"};
  grad_sync_ = std::make_unique<distributed::GradSync>(tensors, comm_, gs, names);
}

Trainer::~Trainer() = default;

void Trainer::setup_model() {
  if (config_.pretrain()) {
    auto cfg = clip::model_config(config_.model);
    model_ = clip::CLIP(cfg);
    clip::init_parameters(model_, static_cast<uint64_t>(config_.seed));
    model_->to(device_);
    model_->set_precision(precision_);
    spdlog::info("pretrain: {} from random initialisation (seed {}): {}", config_.model, config_.seed,
                 clip::describe(cfg));
  } else {
    clip::LoadOptions lo;
    lo.device = device_;
    lo.precision = precision_;
    lo.model = config_.model;
    model_ = clip::load_weights(config_.weights, lo);
  }
  model_->train();
}

void Trainer::setup_teacher() {
  if (!config_.uses_regulariser()) return;
  const auto view = teacher_view(model_);
  fingerprint_ = compute_fingerprint(model_, config_.caption_template, pool_, store_->manifest(), view);
  if (config_.teacher == TeacherSource::cache) {
    cache_ = std::make_unique<TeacherCache>(config_.teacher_cache_path());
    cache_->check_fingerprint(*fingerprint_);
    check(cache_->num_samples() == store_->size(), "teacher cache ", cache_->path(), " holds ", cache_->num_samples(),
          " samples but store ", config_.store, " has ", store_->size(), "; rebuild it with `starft cache-teacher`");
    teacher_scale_ = cache_->teacher_scale();
  } else {
    clip::LoadOptions lo;
    lo.device = device_;
    lo.precision = precision_;
    lo.model = config_.model;
    teacher_ = clip::load_weights(config_.weights, lo);
    teacher_->eval();
    for (auto& p : teacher_->parameters()) p.set_requires_grad(false);
    teacher_text_ = std::make_unique<TextEncoder>(*tokenizer_, config_.dedup, config_.truncate);
    teacher_scale_ = teacher_->logit_scale.exp().item<double>();
  }
  spdlog::info("teacher: {} (scale s0 = {:.4f}), regulariser {}, pool '{}' ({} templates)", enum_name(config_.teacher),
               teacher_scale_, enum_name(config_.regulariser), config_.spurious_pool, pool_.size());
}

void Trainer::setup_head() {
  if (config_.loss != Loss::ce) return;
  // W = s0 * zero-shot classifier, b = 0 (method.md); s0 is the zero-shot model's scale.
  // The same head as evaluation's (eval/zeroshot_head.h), classes split over the ranks.
  const auto templates = data::load_templates(config_.head_templates);
  head_weight_ =
      eval::zeroshot_head(model_, *tokenizer_, store_->manifest().class_names, templates, {}, &comm_).detach().clone();
  head_bias_ = torch::zeros({head_weight_.size(0)}, head_weight_.options());
  head_weight_.set_requires_grad(true);
  head_bias_.set_requires_grad(true);
}

void Trainer::resume_or_start() {
  state_ = TrainState{};
  state_.config_ini = to_ini(config_);
  state_.sampler = loader_->sampler().state(0, 0);
  if (fingerprint_ && cache_) state_.teacher_fingerprint = fingerprint_->to_json();
  const std::optional<std::string>& from = resume_from_;
  if (!config_.resume.empty() && !from)
    spdlog::info("--resume latest: no checkpoint in {} yet; starting from the beginning", config_.run_dir);
  if (from) {
    const TrainState saved = read_train_state(*from);
    loader_->sampler().check_resumable(saved.sampler);
    const auto weights = safetensors::load(weights_path(*from));
    clip::load_state_dict(model_, clip::to_openai_naming(weights.tensors, weights_path(*from)), weights_path(*from));
    if (head_weight_.defined()) {
      auto head = read_head(*from);
      check(head.count("head.weight") && head.count("head.bias"), "checkpoint ", *from,
            ": no CE head (head.safetensors); it was not written by a --loss ce run");
      torch::NoGradGuard no_grad;
      check(head["head.weight"].sizes() == head_weight_.sizes(), "checkpoint ", *from, ": the CE head has shape ",
            head["head.weight"].sizes(), ", this run needs ", head_weight_.sizes());
      head_weight_.copy_(head["head.weight"]);
      head_bias_.copy_(head["head.bias"]);
    }
    load_optimizer_state(*optimizer_, params_, read_optimizer_state(*from), *from + "/optimizer.safetensors");
    restore_torch_rng(saved.torch_rng, *from + "/state.json");
    const std::string differences = trajectory_config_differences(upgrade_ini(saved.config_ini), state_.config_ini);
    if (!differences.empty()) {
      spdlog::warn(
          "resuming {} with settings that differ from the checkpoint's ({}); the continuation is exact only with "
          "the same settings",
          *from, differences);
    }
    const auto config_ini = state_.config_ini;
    const auto teacher_fp = state_.teacher_fingerprint;
    state_ = saved;
    state_.config_ini = config_ini;
    state_.teacher_fingerprint = teacher_fp;
    spdlog::info("resumed from {}: step {} of {}, epoch {} at batch {}", *from, state_.step, schedule_.total_steps,
                 state_.sampler.epoch, state_.sampler.step);
  }
  if (rank_ == 0) {
    fs::create_directories(config_.run_dir);
    write_file_atomically((fs::path(config_.run_dir) / "config.ini").string(), state_.config_ini);
    // metrics.jsonl continues from the checkpoint: lines of steps after it (from a run that went
    // on past its last checkpoint) are dropped.
    const fs::path metrics = fs::path(config_.run_dir) / "metrics.jsonl";
    std::string kept;
    if (fs::exists(metrics)) {
      std::ifstream in(metrics);
      std::string line;
      while (std::getline(in, line)) {
        try {
          if (nlohmann::json::parse(line).at("step").get<int64_t>() <= state_.step) kept += line + "\n";
        } catch (const nlohmann::json::exception&) {
          // a torn last line of a killed run
        }
      }
    }
    write_file_atomically(metrics.string(), kept);
    metrics_.open(metrics, std::ios::app);
    check(static_cast<bool>(metrics_), "cannot append to ", metrics.string());
  }
}

std::vector<std::string> Trainer::captions(const data::Batch& batch) const {
  if (config_.pretrain()) return batch.captions;
  std::vector<std::string> out;
  const auto* labels = batch.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < batch.labels.numel(); ++i) out.push_back(class_captions_.at(labels[i]));
  return out;
}

torch::Tensor Trainer::gather(const torch::Tensor& x, bool with_grad, const std::string& name) {
  if (world_ == 1) return x;
  const double start = now_s();
  auto out = with_grad ? distributed::all_gather_with_grad(x, comm_, name) : comm_.all_gather(x.contiguous(), name);
  forward_comm_s_ += now_s() - start;
  return out;
}

StepLoss Trainer::compute_loss(const data::Batch& batch, int64_t epoch, int64_t step) {
  StepLoss out;
  const int64_t b = batch.labels.numel();
  auto images = batch.images.to(device_);
  auto labels = batch.labels.to(device_);
  auto image = normalize(model_->encode_image(images));

  const auto caps = captions(batch);
  std::vector<std::string> texts;
  const bool need_captions = config_.loss == Loss::flyp;
  if (need_captions) texts = caps;
  std::vector<int64_t> tpl;
  if (config_.uses_regulariser()) {
    const auto* idx = batch.indices.data_ptr<int64_t>();
    for (int64_t i = 0; i < b; ++i) {
      tpl.push_back(data::draw_template(static_cast<uint64_t>(config_.seed), epoch, step, idx[i],
                                        static_cast<int64_t>(pool_.size())));
      texts.push_back(data::apply_template(pool_[tpl.back()], caps[i]));
    }
  }
  torch::Tensor text_features = texts.empty() ? torch::Tensor() : normalize(student_text_->encode(model_, texts));

  torch::Tensor image_global = gather(image, true, "image_features");
  if (need_captions) {
    auto caption = text_features.narrow(0, 0, b);
    auto caption_global = gather(caption, true, "caption_features");
    torch::Tensor caption_ids;
    if (config_.duplicate_captions == DuplicateCaptions::positives) {
      // libstdc++'s string hash is unseeded, so every rank of one binary gives a caption the same id
      std::vector<int64_t> ids;
      for (int64_t i = 0; i < b; ++i) ids.push_back(static_cast<int64_t>(std::hash<std::string>{}(caps[i])));
      caption_ids = gather(torch::tensor(ids, torch::kLong).to(device_), false, "caption_ids");
    }
    out.contrastive = flyp_loss(image, caption, image_global, caption_global, model_->logit_scale.exp(),
                                static_cast<int64_t>(rank_) * b, caption_ids);
  } else {
    out.contrastive = ce_loss(image, head_weight_, head_bias_, labels);
  }
  out.loss = out.contrastive;
  out.regulariser = torch::zeros({}, image.options());
  if (config_.uses_regulariser()) {
    auto prompt = text_features.narrow(0, need_captions ? b : 0, b);
    auto prompt_global = gather(prompt, true, "prompt_features");
    auto labels_global = gather(labels, false, "labels");
    torch::Tensor teacher_image, teacher_prompt_global;
    if (cache_) {
      teacher_image = cache_->image_features(batch.indices).to(device_);
      auto tpl_global = gather(torch::tensor(tpl, torch::kLong).to(device_), false, "template_indices");
      teacher_prompt_global = cache_->prompt_features(labels_global.cpu(), tpl_global.cpu()).to(device_);
    } else {
      torch::NoGradGuard no_grad;
      teacher_image = normalize(teacher_->encode_image(images));
      std::vector<std::string> prompts(texts.end() - b, texts.end());
      teacher_prompt_global = gather(normalize(teacher_text_->encode(teacher_, prompts)), false, "teacher_prompts");
    }
    out.lambda = regulariser_weight(config_.lambda, config_.lambda_schedule == LambdaSchedule::diminishing, epoch,
                                    config_.epochs);
    auto r = starft_regulariser(image, teacher_image, prompt_global, teacher_prompt_global, labels, labels_global,
                                teacher_scale_, config_.regulariser == Regulariser::starft);
    out.regulariser = r.detach();
    if (out.lambda != 0) out.loss = out.loss + out.lambda * r;
  }
  out.contrastive = out.contrastive.detach();
  return out;
}

StepMetrics Trainer::train_step(const data::Batch& batch, int64_t epoch, int64_t step) {
  StepMetrics m;
  m.lr = schedule_.at(state_.step);
  set_learning_rate(*optimizer_, m.lr);
  forward_comm_s_ = 0;
  const double forward_start = now_s();
  auto loss = compute_loss(batch, epoch, step);
  m.lambda = loss.lambda;
  // Every rank learns every rank's values, so a NaN anywhere stops all ranks at this step,
  // before any parameter changes.
  auto values = torch::stack({loss.loss.detach(), loss.contrastive, loss.regulariser}).to(torch::kDouble);
  const double reduce_start = now_s();
  times_.forward = reduce_start - forward_start - forward_comm_s_;
  comm_.all_reduce(values, distributed::ReduceOp::Avg, "step_metrics");
  auto v = values.cpu();
  times_.comm_exposed += forward_comm_s_ + (now_s() - reduce_start);
  m.loss = v[0].item<double>();
  m.contrastive = v[1].item<double>();
  m.regulariser = v[2].item<double>();
  if (!std::isfinite(m.loss)) {
    const auto last = latest_checkpoint(config_.run_dir);
    fail("step ", state_.step, " (epoch ", epoch, ", batch ", step, "): the loss is ", m.loss, " (L_c ", m.contrastive,
         ", R ", m.regulariser, "); stopping before the parameters change. ",
         last ? "The last good checkpoint is " + *last : std::string("No checkpoint was written yet"),
         "; lower --lr, add --grad-clip, or check the data");
  }
  double t = now_s();
  optimizer_->zero_grad();
  times_.optimizer = now_s() - t;
  backward(loss);  // times backward and the gradient wait
  t = now_s();
  if (config_.grad_clip > 0) {
    std::vector<torch::Tensor> ps;
    for (const auto& [name, p] : params_) ps.push_back(p);
    clip_grad_norm(ps, config_.grad_clip);
  }
  optimizer_->step();
  if (config_.train_logit_scale) {
    // As CLIP training does: keep the trained scale within [1, 100].
    torch::NoGradGuard no_grad;
    model_->logit_scale.clamp_(0, std::log(100.0));
  }
  times_.optimizer += now_s() - t;
  ++state_.step;
  state_.epoch = epoch;
  state_.images_seen += batch.labels.numel() * world_;
  state_.last_loss = m.loss;
  return m;
}

void Trainer::backward(const StepLoss& loss) {
  const double start = now_s();
  loss.loss.backward();
  const double wait_start = now_s();
  grad_sync_->finish();
  times_.backward = wait_start - start;
  times_.comm_exposed += now_s() - wait_start;
}

SlowestRank Trainer::share_step_times() {
  SlowestRank slowest{rank_, times_.step, times_.step - times_.comm_exposed};
  if (world_ == 1) return slowest;
  const double start = now_s();
  auto mine = torch::tensor({times_.step, times_.step - times_.comm_exposed}, torch::kDouble).to(comm_.device());
  auto all = comm_.all_gather(mine, "step_times").cpu();
  const double spent = now_s() - start;
  pending_comm_s_ += spent;
  share_cost_s_ += spent;
  const auto* a = all.data_ptr<double>();
  for (int r = 0; r < world_; ++r) {
    if (r == 0 || a[2 * r + 1] > slowest.busy_s) slowest = {r, a[2 * r], a[2 * r + 1]};
  }
  return slowest;
}

std::string Trainer::save_checkpoint() {
  std::string path;
  if (rank_ == 0) {
    CheckpointContents c;
    c.model = &model_;
    c.head = head_tensors();
    c.optimizer = optimizer_state(*optimizer_, params_);
    state_.torch_rng = capture_torch_rng();
    c.state = state_;
    path = write_checkpoint(config_.run_dir, c, config_.keep_checkpoints);
    spdlog::info("checkpoint {}", path);
  }
  comm_.barrier("checkpoint_written");
  return path;
}

safetensors::TensorMap Trainer::head_tensors() const {
  safetensors::TensorMap head;
  if (head_weight_.defined()) {
    head["head.weight"] = head_weight_.detach().cpu();
    head["head.bias"] = head_bias_.detach().cpu();
  }
  return head;
}

EpochEval::Outcome Trainer::evaluate(int64_t epoch) {
  check(epoch_eval_ != nullptr, "evaluation during training needs --eval-stores");
  return epoch_eval_->run(model_, *tokenizer_, comm_, state_.step, epoch, head_tensors());
}

void Trainer::log_progress(const StepMetrics& m, int64_t epoch, int64_t step_in_epoch) {
  if (rank_ != 0) return;
  const double elapsed = now_s() - run_start_s_;
  const double steps_per_s = steps_this_run_ / std::max(elapsed, 1e-9);
  const double images_per_s = steps_per_s * config_.batch_size;
  const double eta = (schedule_.total_steps - state_.step) / std::max(steps_per_s, 1e-12);
  spdlog::info("epoch {}/{} step {}/{} L_c {:.4f} R {:.5f} lambda {:.3g} lr {:.3e} {:.1f} img/s ETA {}", epoch + 1,
               config_.epochs, state_.step, schedule_.total_steps, m.contrastive, m.regulariser, m.lambda, m.lr,
               images_per_s, format_duration(eta));
}

void Trainer::append_metrics(const StepMetrics& m, int64_t epoch, const SlowestRank& slowest) {
  if (rank_ != 0) return;
  const double elapsed = now_s() - run_start_s_;
  const auto& t = times_;
  nlohmann::json j = {{"step", state_.step},
                      {"epoch", epoch},
                      {"loss", m.loss},
                      {"contrastive", m.contrastive},
                      {"regulariser", m.regulariser},
                      {"lambda", m.lambda},
                      {"lr", m.lr},
                      {"images_per_s", steps_this_run_ * config_.batch_size / std::max(elapsed, 1e-9)},
                      {"images_seen", state_.images_seen},
                      {"ranks", world_},
                      {"step_s", t.step},
                      {"data_s", t.data},
                      {"forward_s", t.forward},
                      {"backward_s", t.backward},
                      {"comm_exposed_s", t.comm_exposed},
                      {"optimizer_s", t.optimizer},
                      {"other_s", t.other},
                      {"slowest_rank", slowest.rank},
                      {"slowest_rank_step_s", slowest.step_s},
                      {"slowest_rank_busy_s", slowest.busy_s}};
  metrics_ << j.dump() << "\n";
  metrics_.flush();
}

Trainer::Outcome Trainer::run() {
  run_start_s_ = now_s();
  steps_this_run_ = 0;
  share_cost_s_ = 0;
  pending_comm_s_ = 0;
  double mark = run_start_s_;  // where the next step's time starts
  const auto report_cost = [&] {
    if (rank_ == 0 && world_ > 1 && steps_this_run_ > 0) {
      spdlog::info(
          "step-time breakdown: its all-gather took {:.3f} ms per step ({:.2f}% of the run's time, "
          "waits for slower ranks included)",
          1e3 * share_cost_s_ / steps_this_run_, 100 * share_cost_s_ / std::max(now_s() - run_start_s_, 1e-9));
    }
  };
  const int64_t per_epoch = loader_->steps_per_epoch();
  int64_t epoch = state_.sampler.epoch, first = state_.sampler.step;
  if (first == per_epoch) {
    ++epoch;
    first = 0;
  }
  spdlog::info("training: {} ranks x {} = global batch {}, {} steps per epoch, {} epochs, {} steps in all", world_,
               config_.batch_size / world_, config_.batch_size, per_epoch, config_.epochs, schedule_.total_steps);
  for (; epoch < config_.epochs; ++epoch, first = 0) {
    double wait_start = now_s();
    loader_->start(epoch, first);
    while (auto batch = loader_->next()) {
      times_ = StepTimes{};
      times_.data = now_s() - wait_start;
      times_.comm_exposed = pending_comm_s_;
      times_.other = wait_start - mark - pending_comm_s_;
      pending_comm_s_ = 0;
      const auto m = train_step(*batch, epoch, batch->step);
      const double end = now_s();
      times_.step = end - mark;
      mark = end;
      ++steps_this_run_;
      state_.sampler = loader_->state();
      append_metrics(m, epoch, share_step_times());
      const bool epoch_end = batch->step + 1 == per_epoch;
      if (state_.step % config_.log_every == 0 || epoch_end) log_progress(m, epoch, batch->step);
      const bool stop_requested = config_.stop_after > 0 && state_.step >= config_.stop_after;
      double t = now_s();
      const bool signalled = distributed::should_stop(comm_);
      pending_comm_s_ += now_s() - t;
      bool paused = false;  // a checkpoint or an evaluation: not part of the next step's time
      // Evaluated before the epoch's checkpoint: a run resumed from that checkpoint has had it.
      if (epoch_end && epoch_eval_ && epoch_eval_->due(epoch)) {
        evaluate(epoch);
        paused = true;
      }
      if (epoch_end || (config_.checkpoint_every > 0 && state_.step % config_.checkpoint_every == 0) ||
          stop_requested || signalled) {
        save_checkpoint();
        paused = true;
      }
      if (stop_requested || signalled) {
        spdlog::info("stopping at step {} ({}); continue with --resume latest", state_.step,
                     signalled ? "stop signal" : "--stop-after");
        report_cost();
        return Outcome::stopped;
      }
      if (paused) {
        mark = now_s();
        pending_comm_s_ = 0;
      }
      wait_start = now_s();
    }
  }
  report_cost();
  spdlog::info("training finished: {} steps", state_.step);
  return Outcome::finished;
}

}  // namespace starft::train
