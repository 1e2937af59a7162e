#include "train/checkpoint.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <mutex>
#include <set>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "clip/weights.h"
#include "common/atomic_file.h"
#include "common/checksum.h"
#include "common/error.h"

namespace starft::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPrefix = "step-";
// state.json's object {file name: "crc32:xxxxxxxx"} of the checkpoint's other files.
constexpr const char* kChecksumsKey = "checksums";
// The checkpoint's data files (head.safetensors only with --loss ce).
constexpr const char* kFiles[] = {"weights.safetensors", "optimizer.safetensors", "head.safetensors"};

// Runs `say` the first time `key` is seen in this process (ranks that are threads included), so
// each checkpoint's warning or note is logged once although it is looked at several times.
void once(const std::string& key, const std::function<void()>& say) {
  static std::mutex mutex;
  static std::set<std::string> said;
  std::lock_guard<std::mutex> guard(mutex);
  if (said.insert(key).second) say();
}

std::optional<int64_t> step_of(const fs::path& dir) {
  const std::string name = dir.filename().string();
  if (name.rfind(kPrefix, 0) != 0) return std::nullopt;
  const std::string digits = name.substr(std::char_traits<char>::length(kPrefix));
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::stoll(digits);
}

void write_json_file(const fs::path& path, const nlohmann::json& j) {
  write_file_atomically(path.string(), j.dump(2) + "\n");
}

// Moves the complete directory `tmp` to `final_dir` (replacing a directory there: the old one is
// renamed away first, so `final_dir` never holds a mix) and makes the rename durable.
void install_directory(const fs::path& tmp, const fs::path& final_dir) {
  if (fs::exists(final_dir)) {
    const fs::path old =
        final_dir.parent_path() / (".old-" + final_dir.filename().string() + "-" + std::to_string(getpid()));
    fs::remove_all(old);
    fs::rename(final_dir, old);
    fs::rename(tmp, final_dir);
    fs::remove_all(old);
  } else {
    fs::rename(tmp, final_dir);
  }
  if (FILE* f = std::fopen(final_dir.parent_path().c_str(), "r")) {
    fsync(fileno(f));
    std::fclose(f);
  }
}

// Removes the temporary and replaced directories (".tmp-<what>...", ".old-<what>...") that
// writers killed half-way left in `dir`.
void remove_leftovers(const fs::path& dir, const std::string& what) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(".tmp-" + what, 0) == 0 || name.rfind(".old-" + what, 0) == 0) {
      std::error_code ec;
      fs::remove_all(entry.path(), ec);
    }
  }
}

}  // namespace

nlohmann::json TrainState::to_json() const {
  return {{"step", step},
          {"epoch", epoch},
          {"sampler", sampler.to_json()},
          {"rng", {{"torch_cpu", torch_rng}}},
          {"counters", {{"images_seen", images_seen}, {"last_loss", last_loss}}},
          {"config", config_ini},
          {"teacher_fingerprint", teacher_fingerprint}};
}

TrainState TrainState::from_json(const nlohmann::json& j, const std::string& where) {
  TrainState s;
  try {
    s.step = j.at("step").get<int64_t>();
    s.epoch = j.at("epoch").get<int64_t>();
    s.sampler = data::SamplerState::from_json(j.at("sampler"));
    s.torch_rng = j.at("rng").at("torch_cpu").get<std::string>();
    s.images_seen = j.at("counters").at("images_seen").get<int64_t>();
    s.last_loss = j.at("counters").at("last_loss").get<double>();
    s.config_ini = j.at("config").get<std::string>();
    s.teacher_fingerprint = j.at("teacher_fingerprint");
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": not a valid training state (", e.what(), "); the checkpoint is damaged");
  }
  return s;
}

std::string capture_torch_rng() {
  auto gen = at::detail::getDefaultCPUGenerator();
  torch::Tensor state;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    state = gen.get_state();
  }
  static const char* digits = "0123456789abcdef";
  std::string hex;
  hex.reserve(state.numel() * 2);
  const uint8_t* p = state.data_ptr<uint8_t>();
  for (int64_t i = 0; i < state.numel(); ++i) {
    hex.push_back(digits[p[i] >> 4]);
    hex.push_back(digits[p[i] & 15]);
  }
  return hex;
}

void restore_torch_rng(const std::string& hex, const std::string& where) {
  check(hex.size() % 2 == 0 && hex.find_first_not_of("0123456789abcdef") == std::string::npos, where,
        ": the saved torch RNG state is not a hex string; the checkpoint is damaged");
  auto state = torch::empty({static_cast<int64_t>(hex.size() / 2)}, torch::kUInt8);
  uint8_t* p = state.data_ptr<uint8_t>();
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (size_t i = 0; i < hex.size() / 2; ++i)
    p[i] = static_cast<uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  try {
    gen.set_state(state);
  } catch (const c10::Error& e) {
    fail(where, ": the saved torch RNG state does not fit this LibTorch (", e.what_without_backtrace(), ")");
  }
}

std::string checkpoints_dir(const std::string& run_dir) { return (fs::path(run_dir) / "checkpoints").string(); }

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%09lld", kPrefix, static_cast<long long>(step));
  return buf;
}

std::string weights_path(const std::string& checkpoint_dir) {
  return (fs::path(checkpoint_dir) / "weights.safetensors").string();
}

std::string write_checkpoint(const std::string& run_dir, const CheckpointContents& c, int64_t keep) {
  check(c.model != nullptr, "write_checkpoint: no model given");
  const fs::path root = checkpoints_dir(run_dir);
  fs::create_directories(root);
  const fs::path final_dir = root / checkpoint_name(c.state.step);
  const fs::path tmp = root / (".tmp-" + checkpoint_name(c.state.step) + "-" + std::to_string(getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  clip::save_weights(*c.model, (tmp / "weights.safetensors").string());
  if (!c.head.empty()) safetensors::save((tmp / "head.safetensors").string(), c.head);
  safetensors::save((tmp / "optimizer.safetensors").string(), c.optimizer);
  // The CRC-32 of each file as written (read back once, from the page cache), so that data which
  // changed afterwards (never reached the file server, damaged on disk) is found at resume.
  // state.json, written last, carries them: its presence still marks the directory complete.
  nlohmann::json state = c.state.to_json();
  nlohmann::json checksums = nlohmann::json::object();
  for (const char* name : kFiles) {
    if (!fs::exists(tmp / name)) continue;
    const std::string crc = file_crc32_text((tmp / name).string());
    check(!crc.empty(), "cannot read back ", (tmp / name).string(), " to checksum it; check the file system of ",
          run_dir);
    checksums[name] = crc;
  }
  state[kChecksumsKey] = checksums;
  write_json_file(tmp / "state.json", state);
  // A checkpoint of the same step (e.g. written again after a resume) is replaced whole.
  install_directory(tmp, final_dir);
  auto all = list_checkpoints(run_dir);
  for (size_t i = 0; i + static_cast<size_t>(std::max<int64_t>(keep, 1)) < all.size(); ++i) fs::remove_all(all[i]);
  remove_leftovers(root, "");
  return final_dir.string();
}

std::string best_dir(const std::string& run_dir) { return (fs::path(run_dir) / "best").string(); }

std::string write_best(const std::string& run_dir, const clip::CLIP& model, const safetensors::TensorMap& head,
                       const nlohmann::json& record) {
  const fs::path final_dir = best_dir(run_dir);
  const fs::path tmp = fs::path(run_dir) / (".tmp-best-" + std::to_string(getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  clip::save_weights(model, (tmp / "weights.safetensors").string());
  if (!head.empty()) safetensors::save((tmp / "head.safetensors").string(), head);
  write_json_file(tmp / "best.json", record);
  install_directory(tmp, final_dir);
  remove_leftovers(run_dir, "best-");
  return final_dir.string();
}

std::optional<nlohmann::json> read_best(const std::string& run_dir) {
  const fs::path path = fs::path(best_dir(run_dir)) / "best.json";
  if (!fs::exists(path)) return std::nullopt;
  std::ifstream in(path);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail(path.string(), ": not valid JSON (", e.what(), "); delete ", best_dir(run_dir),
         " to start the best-checkpoint record afresh");
  }
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  const fs::path root = checkpoints_dir(run_dir);
  if (!fs::is_directory(root)) return {};
  for (const auto& entry : fs::directory_iterator(root)) {
    auto step = step_of(entry.path());
    if (step && entry.is_directory() && fs::exists(entry.path() / "state.json")) {
      found.emplace_back(*step, entry.path().string());
    }
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

namespace {

// Why the safetensors file at `path` is not whole ("" when it is): the 8-byte header length, the
// JSON header and the data area its offsets describe must fit the file exactly. Reads only the
// header, not the tensors.
std::string safetensors_problem(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return path.filename().string() + " is missing";
  const uint64_t size = fs::file_size(path, ec);
  std::ifstream in(path, std::ios::binary);
  unsigned char len_bytes[8] = {0};
  if (size < 8 || !in.read(reinterpret_cast<char*>(len_bytes), 8))
    return path.filename().string() + " is " + std::to_string(size) + " bytes, cut short";
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | len_bytes[i];
  if (header_len > size - 8) return path.filename().string() + " is cut short inside its header";
  std::string header(static_cast<size_t>(header_len), '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(header_len)))
    return path.filename().string() + ": the header cannot be read";
  uint64_t end = 0;
  try {
    const auto j = nlohmann::json::parse(header);
    for (const auto& [name, entry] : j.items())
      if (name != "__metadata__") end = std::max(end, entry.at("data_offsets").at(1).get<uint64_t>());
  } catch (const nlohmann::json::exception& e) {
    return path.filename().string() + ": malformed header (" + e.what() + ")";
  }
  if (8 + header_len + end != size)
    return path.filename().string() + " is " + std::to_string(size) + " bytes, its header describes " +
           std::to_string(8 + header_len + end) + (8 + header_len + end > size ? " (cut short)" : "");
  return "";
}

}  // namespace

namespace {

// state.json of checkpoint `dir`, parsed; throws starft::Error naming it when it cannot be read.
nlohmann::json read_state_json(const std::string& dir) {
  const fs::path path = fs::path(dir) / "state.json";
  std::ifstream in(path);
  check(static_cast<bool>(in), "checkpoint ", dir, ": cannot read state.json");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    fail(path.string(), ": not valid JSON (", e.what(), "); the checkpoint is damaged");
  }
  return j;
}

struct Inspection {
  std::string problem;    // why it cannot be resumed from; "" when it can
  bool verified = false;  // its data matched the checksums in state.json (false: it has none)
};

// checkpoint_problem's checks, and whether the data could be verified: state.json, then every
// file's size and header (cheap), then every file's CRC-32 against state.json's `checksums`.
// Checkpoints written before checksums were recorded pass unverified.
Inspection inspect_checkpoint(const std::string& dir) {
  const fs::path root(dir);
  nlohmann::json j;
  try {
    j = read_state_json(dir);
    TrainState::from_json(j, (root / "state.json").string());
  } catch (const std::exception& e) {
    return {std::string("state.json: ") + e.what()};
  }
  for (const char* name : kFiles) {
    if (std::strcmp(name, "head.safetensors") == 0 && !fs::exists(root / name)) continue;  // CE runs only
    std::string problem = safetensors_problem(root / name);
    if (!problem.empty()) return {problem};
  }
  if (!j.contains(kChecksumsKey)) return {"", false};
  const auto& sums = j[kChecksumsKey];
  const auto malformed = Inspection{"state.json: `checksums` is not an object of file names and \"crc32:...\" texts"};
  if (!sums.is_object()) return malformed;
  for (const auto& [name, crc] : sums.items())
    if (!crc.is_string() || name.empty() || name.find('/') != std::string::npos || name[0] == '.') return malformed;
  for (const char* name : kFiles)
    if (fs::exists(root / name) && !sums.contains(name))
      return {std::string(name) + " has no checksum in state.json; it was not written with this checkpoint"};
  for (const auto& [name, crc] : sums.items()) {
    if (!fs::is_regular_file(root / name)) return {name + " is missing"};
    const std::string now = file_crc32_text((root / name).string());
    if (now.empty()) return {name + " cannot be read"};
    if (now != crc.get<std::string>()) return {name + ": checksum mismatch, the data changed after it was written"};
  }
  return {"", true};
}

// Logs (once per checkpoint) that `dir` predates checksums, so its data was not verified.
void note_unverified(const std::string& dir) {
  once("unverified " + dir, [&] {
    spdlog::info(
        "checkpoint {} was written before checkpoints recorded checksums: its files' sizes and headers are "
        "whole, but their data could not be verified",
        dir);
  });
}

}  // namespace

std::string checkpoint_problem(const std::string& dir) { return inspect_checkpoint(dir).problem; }

std::optional<std::string> latest_checkpoint(const std::string& run_dir) {
  auto all = list_checkpoints(run_dir);
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::optional<std::string> latest_complete_checkpoint(const std::string& run_dir) {
  auto all = list_checkpoints(run_dir);
  std::vector<std::string> skipped;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    const Inspection found = inspect_checkpoint(*it);
    if (found.problem.empty()) {
      if (!found.verified) note_unverified(*it);
      return *it;
    }
    skipped.push_back(*it + " (" + found.problem + ")");
    once("damaged " + *it, [&] {
      spdlog::warn(
          "checkpoint {} is damaged ({}); skipping it for the next older one. It is replaced when training "
          "reaches that step again",
          *it, found.problem);
    });
  }
  if (all.empty()) return std::nullopt;
  std::string list;
  for (const auto& s : skipped) list += (list.empty() ? "" : "; ") + s;
  fail("--run-dir ", run_dir, ": every checkpoint is damaged: ", list,
       ". Start afresh in a new --run-dir, or restore a checkpoint from a copy");
}

std::optional<std::string> resolve_checkpoint(const std::string& spec, const std::string& run_dir) {
  if (spec == "latest") return latest_complete_checkpoint(run_dir);
  check(fs::exists(fs::path(spec) / "state.json"), "checkpoint ", spec,
        ": no state.json there; give a directory under <run-dir>/checkpoints or `latest`");
  const Inspection found = inspect_checkpoint(spec);
  check(found.problem.empty(), "checkpoint ", spec, " is damaged (", found.problem,
        "); name an older checkpoint, or `latest` (the newest whole one), or restore this one from a copy");
  if (!found.verified) note_unverified(spec);
  return spec;
}

TrainState read_train_state(const std::string& dir) {
  return TrainState::from_json(read_state_json(dir), (fs::path(dir) / "state.json").string());
}

safetensors::TensorMap read_optimizer_state(const std::string& dir) {
  return safetensors::load((fs::path(dir) / "optimizer.safetensors").string()).tensors;
}

safetensors::TensorMap read_head(const std::string& dir) {
  const fs::path path = fs::path(dir) / "head.safetensors";
  if (!fs::exists(path)) return {};
  return safetensors::load(path.string()).tensors;
}

}  // namespace starft::train
