#include "cli/run_report.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "cli/plot.h"
#include "common/atomic_file.h"
#include "common/error.h"

namespace starft::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The parts of a step, in the order they happen, with metrics.jsonl's keys.
struct Part {
  const char* key;
  const char* title;
};
constexpr Part kParts[] = {{"data_s", "data"},           {"forward_s", "forward"},
                           {"backward_s", "backward"},   {"comm_exposed_s", "comm exposed"},
                           {"optimizer_s", "optimizer"}, {"other_s", "other"}};

std::vector<json> read_lines(const fs::path& path) {
  std::vector<json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object()) out.push_back(std::move(j));  // a torn last line is skipped
  }
  return out;
}

// config.ini as key -> value (the `key = value` lines starft train writes).
std::map<std::string, std::string> read_ini(const fs::path& path) {
  std::map<std::string, std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (line.empty() || line[0] == '#' || line[0] == ';' || eq == std::string::npos) continue;
    auto trim = [](std::string s) {
      s.erase(0, s.find_first_not_of(" \t"));
      s.erase(s.find_last_not_of(" \t\r") + 1);
      return s;
    };
    out[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
  }
  return out;
}

double num(const json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : std::nan("");
}

std::string fmt(const char* f, double v) {
  if (!std::isfinite(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// The steady steps: the first 10% (at least 2) are warm-up, unless that leaves fewer than 2.
size_t first_steady(size_t n) {
  const size_t skip = std::max<size_t>(2, n / 10);
  return n >= skip + 2 ? skip : 0;
}

double mean_of(const std::vector<json>& lines, size_t from, const char* key) {
  double s = 0;
  size_t n = 0;
  for (size_t i = from; i < lines.size(); ++i) {
    const double v = num(lines[i], key);
    if (std::isfinite(v)) {
      s += v;
      ++n;
    }
  }
  return n ? s / n : std::nan("");
}

StepSummary summarise(const std::vector<json>& lines, const std::map<std::string, std::string>& ini) {
  StepSummary s;
  s.steps = static_cast<int64_t>(lines.size());
  const size_t from = first_steady(lines.size());
  s.steady_steps = static_cast<int64_t>(lines.size() - from);
  if (!lines.empty() && lines.back().contains("ranks")) s.ranks = lines.back()["ranks"].get<int>();
  if (auto it = ini.find("batch-size"); it != ini.end()) s.batch = std::atoll(it->second.c_str());
  s.has_breakdown = !lines.empty() && lines.back().contains("step_s");
  if (!s.has_breakdown) return s;
  s.step = mean_of(lines, from, "step_s");
  s.data = mean_of(lines, from, "data_s");
  s.forward = mean_of(lines, from, "forward_s");
  s.backward = mean_of(lines, from, "backward_s");
  s.comm_exposed = mean_of(lines, from, "comm_exposed_s");
  s.optimizer = mean_of(lines, from, "optimizer_s");
  s.other = mean_of(lines, from, "other_s");
  s.images_per_s = s.batch > 0 && s.step > 0 ? s.batch / s.step : 0;
  return s;
}

std::vector<json> read_metrics(const fs::path& run_dir) {
  const fs::path metrics = run_dir / "metrics.jsonl";
  check(fs::exists(metrics), "report: ", metrics.string(), " does not exist; is ", run_dir.string(),
        " a run directory of `starft train`?");
  auto lines = read_lines(metrics);
  check(!lines.empty(), "report: ", metrics.string(), " holds no step yet");
  return lines;
}

// One evaluation metric of eval.jsonl: a store's top-1, worst-group or average accuracy.
struct EvalColumn {
  std::string store, metric;
  std::string title() const {
    return store + " " + (metric == "top1" ? "top-1" : metric == "worst_group_acc" ? "worst group" : "avg");
  }
};

// The stores of one eval.jsonl line (empty for a line without results).
json stores_of(const json& line) {
  if (!line.contains("results") || !line["results"].is_object()) return json::array();
  return line["results"].value("stores", json::array());
}

}  // namespace

StepSummary summarise_steps(const fs::path& run_dir) {
  return summarise(read_metrics(run_dir), read_ini(run_dir / "config.ini"));
}

std::string write_run_report(const fs::path& run_dir, const fs::path& out_dir) {
  const auto lines = read_metrics(run_dir);
  const auto ini = read_ini(run_dir / "config.ini");
  const auto evals = read_lines(run_dir / "eval.jsonl");
  const StepSummary sum = summarise(lines, ini);
  const fs::path data = out_dir / "report-data";
  fs::create_directories(data);
  auto setting = [&](const char* key) {
    auto it = ini.find(key);
    return it == ini.end() ? std::string("?") : it->second;
  };

  std::ostringstream md;
  md << "# Training run `" << run_dir.string() << "`\n\n"
     << "mode " << setting("mode") << ", loss " << setting("loss") << ", regulariser " << setting("regulariser")
     << ", lambda " << setting("lambda") << " (" << setting("lambda-schedule") << "), global batch "
     << setting("batch-size") << ", lr " << setting("lr") << ", " << setting("epochs") << " epochs, precision "
     << setting("precision") << (sum.ranks ? ", " + std::to_string(sum.ranks) + " ranks" : std::string()) << ".\n\n";
  double wall = 0;
  for (const auto& j : lines) wall += std::isfinite(num(j, "step_s")) ? num(j, "step_s") : 0;
  md << lines.size() << " steps (the last: step " << lines.back().value("step", int64_t{0}) << ", epoch "
     << lines.back().value("epoch", int64_t{0}) + 1 << "), " << lines.back().value("images_seen", int64_t{0})
     << " images; final loss " << fmt("%.4f", num(lines.back(), "loss"))
     << (sum.has_breakdown ? ", " + fmt("%.1f", wall) + " s in steps" : std::string()) << ".\n";

  // per epoch
  std::map<int64_t, std::vector<const json*>> by_epoch;
  for (const auto& j : lines) by_epoch[j.value("epoch", int64_t{0})].push_back(&j);
  md << "\n## Per epoch (means over the epoch's steps; lr at its last step)\n\n"
     << "| epoch | steps | loss | L_c | R | lambda | lr | images/s |\n|---|---|---|---|---|---|---|---|\n";
  for (const auto& [epoch, steps] : by_epoch) {
    double loss = 0, lc = 0, r = 0, lambda = 0, step_s = 0;
    for (const auto* j : steps) {
      loss += num(*j, "loss");
      lc += num(*j, "contrastive");
      r += num(*j, "regulariser");
      lambda += num(*j, "lambda");
      step_s += num(*j, "step_s");
    }
    const double n = static_cast<double>(steps.size());
    const double ips = sum.batch > 0 && std::isfinite(step_s) && step_s > 0 ? sum.batch * n / step_s
                                                                            : num(*steps.back(), "images_per_s");
    md << "| " << epoch + 1 << " | " << steps.size() << " | " << fmt("%.4f", loss / n) << " | " << fmt("%.4f", lc / n)
       << " | " << fmt("%.5f", r / n) << " | " << fmt("%.3g", lambda / n) << " | "
       << fmt("%.3e", num(*steps.back(), "lr")) << " | " << fmt("%.1f", ips) << " |\n";
  }

  // step-time breakdown
  if (sum.has_breakdown) {
    md << "\n## Where a step's time goes\n\n"
       << "Means over " << sum.steady_steps << " steady steps (of " << sum.steps
       << "; the first are warm-up), rank 0's clock; the parts add up to the step but for what no timer covers.\n\n"
       << "| part | ms per step | share of the step |\n|---|---|---|\n";
    const double parts[] = {sum.data, sum.forward, sum.backward, sum.comm_exposed, sum.optimizer, sum.other};
    double covered = 0;
    for (size_t i = 0; i < 6; ++i) {
      md << "| " << kParts[i].title << " | " << fmt("%.2f", 1e3 * parts[i]) << " | "
         << fmt("%.1f%%", 100 * parts[i] / sum.step) << " |\n";
      covered += parts[i];
    }
    md << "| not covered | " << fmt("%.3f", 1e3 * (sum.step - covered)) << " | "
       << fmt("%.2f%%", 100 * (sum.step - covered) / sum.step) << " |\n"
       << "| **step** | **" << fmt("%.2f", 1e3 * sum.step) << "** | 100% |\n";
    if (sum.images_per_s > 0)
      md << "\nThroughput: " << fmt("%.1f", sum.images_per_s) << " images/s (global batch / mean step time).\n";
    std::map<int, int64_t> slowest;
    for (size_t i = first_steady(lines.size()); i < lines.size(); ++i) {
      if (lines[i].contains("slowest_rank")) ++slowest[lines[i]["slowest_rank"].get<int>()];
    }
    if (!slowest.empty() && sum.ranks > 1) {
      md << "\nThe slowest rank (the largest step time not spent waiting for communication), share of steady steps:";
      for (const auto& [rank, count] : slowest) {
        md << " rank " << rank << " " << fmt("%.0f%%", 100.0 * count / sum.steady_steps)
           << (rank == slowest.rbegin()->first ? "." : ",");
      }
      md << "\n";
    }
  }

  // evaluations
  std::vector<EvalColumn> columns;
  if (!evals.empty()) {
    for (const auto& s : stores_of(evals.front())) {
      for (const char* metric : {"top1", "worst_group_acc", "avg_acc"}) {
        if (s.contains(metric) && s[metric].is_number()) columns.push_back({s["name"].get<std::string>(), metric});
      }
    }
    md << "\n## Evaluation per epoch (%)\n\n| epoch | step |";
    for (const auto& c : columns) md << " " << c.title() << " |";
    md << "\n|---|---|";
    for (size_t i = 0; i < columns.size(); ++i) md << "---|";
    md << "\n";
  }
  {
    std::ofstream out(data / "eval.dat");
    out << "# epoch step";
    for (const auto& c : columns) out << " " << c.store << "/" << c.metric;
    out << "\n";
    for (const auto& e : evals) {
      md << "| " << e.value("epoch", int64_t{0}) + 1 << " | " << e.value("step", int64_t{0}) << " |";
      out << e.value("epoch", int64_t{0}) + 1 << "\t" << e.value("step", int64_t{0});
      for (const auto& c : columns) {
        double v = std::nan("");
        for (const auto& s : stores_of(e)) {
          if (s.value("name", "") == c.store && s.contains(c.metric) && s[c.metric].is_number())
            v = 100 * s[c.metric].get<double>();
        }
        md << " " << fmt("%.1f", v) << " |";
        out << "\t" << (std::isfinite(v) ? std::to_string(v) : "NaN");
      }
      md << "\n";
      out << "\n";
    }
  }

  // chart data: one row per step
  {
    std::ofstream out(data / "steps.dat");
    out << "# step epoch loss contrastive regulariser lambda lr images_per_s(run) images_per_s(step) "
           "then cumulative ms: data +forward +backward +comm_exposed +optimizer +other; step_ms\n";
    for (const auto& j : lines) {
      const double step_s = num(j, "step_s");
      const double step_ips = sum.batch > 0 && step_s > 0 ? sum.batch / step_s : std::nan("");
      out << j.value("step", int64_t{0}) << "\t" << j.value("epoch", int64_t{0}) + 1;
      for (const char* k : {"loss", "contrastive", "regulariser", "lambda", "lr", "images_per_s"})
        out << "\t" << num(j, k);
      out << "\t" << step_ips;
      double cumulative = 0;
      for (const auto& p : kParts) {
        cumulative += num(j, p.key);
        out << "\t" << 1e3 * cumulative;
      }
      out << "\t" << 1e3 * step_s << "\n";
    }
  }
  const std::string steps = (data / "steps.dat").string(), eval = (data / "eval.dat").string();
  using plot::Panel;
  using plot::Series;
  Panel loss{"loss and its parts", "step", "", "", {{steps, "1:3", "loss"}, {steps, "1:4", "contrastive L_c"}}};
  Panel lr{"learning rate and lambda",
           "step",
           "lr",
           "lambda",
           {{steps, "1:7", "lr"}, {steps, "1:6", "lambda", "lines lw 2", true}}};
  Panel reg{"regulariser R", "step", "", "", {{steps, "1:5", "R"}}};
  Panel throughput{"throughput (images/s)",
                   "step",
                   "",
                   "",
                   {{steps, "1:9", "per step", "lines lw 1"}, {steps, "1:8", "run average"}}};
  Panel breakdown{"step-time breakdown (ms, stacked)", "step", "", "", {}};
  if (sum.has_breakdown) {
    for (int i = 5; i >= 0; --i) {  // the top of the stack first, each part drawn over the ones above it
      breakdown.series.push_back({steps, "1:" + std::to_string(10 + i), kParts[i].title, "filledcurves x1"});
    }
    breakdown.series.push_back({steps, "1:16", "step", "lines lw 1 lc rgb 'black'"});
  }
  Panel evaluation{"evaluation per epoch (%)", "epoch", "", "", {}};
  for (size_t i = 0; i < columns.size(); ++i) {
    evaluation.series.push_back({eval, "1:" + std::to_string(3 + i), columns[i].title(), "linespoints lw 2"});
  }
  const std::string png = (out_dir / "report.png").string();
  const bool drawn =
      plot::draw((data / "report.gp").string(),
                 plot::script(png, 2, 3, 1500, 850, {loss, lr, reg, throughput, breakdown, evaluation}), png);
  md << "\n"
     << (drawn ? "![training curves](report.png)\n" : "(report.png not drawn: gnuplot failed or is not installed)\n");
  const std::string text = md.str();
  write_file_atomically((out_dir / "report.md").string(), text);
  return text;
}

std::string write_scaling_report(const std::vector<fs::path>& dirs, const fs::path& out_dir) {
  std::vector<fs::path> runs;
  for (const auto& d : dirs) {
    if (fs::exists(d / "metrics.jsonl")) {
      runs.push_back(d);
      continue;
    }
    check(fs::is_directory(d), "report --scaling: ", d.string(), " is neither a run directory nor a directory of runs");
    std::vector<fs::path> inner;
    for (const auto& e : fs::directory_iterator(d)) {
      if (fs::exists(e.path() / "metrics.jsonl")) inner.push_back(e.path());
    }
    check(!inner.empty(), "report --scaling: ", d.string(),
          " holds no run (no metrics.jsonl in it or its subdirectories)");
    std::sort(inner.begin(), inner.end());
    runs.insert(runs.end(), inner.begin(), inner.end());
  }
  struct Row {
    std::string mode;
    fs::path dir;
    StepSummary s;
  };
  std::vector<Row> rows;
  for (const auto& r : runs) {
    Row row{"runs", r, summarise_steps(r)};
    std::ifstream in(r / "scaling.json");
    if (in) {
      auto j = json::parse(in, nullptr, false);
      if (!j.is_discarded() && j.contains("mode")) row.mode = j["mode"].get<std::string>();
    }
    check(row.s.has_breakdown, "report --scaling: ", r.string(),
          "/metrics.jsonl has no step-time breakdown (step_s); it was written by an older starft");
    check(row.s.ranks > 0, "report --scaling: ", r.string(), "/metrics.jsonl does not say how many ranks ran");
    check(row.s.batch > 0, "report --scaling: ", r.string(), "/config.ini does not give the batch size");
    rows.push_back(std::move(row));
  }
  std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return a.mode != b.mode ? a.mode > b.mode : a.s.ranks < b.s.ranks;  // weak before strong
  });
  fs::create_directories(out_dir / "scaling-data");
  std::ostringstream md;
  md << "# Scaling study\n\n"
     << "images/s = global batch / mean step time over the steady steps (the first 10%, at least 2, are "
        "warm-up); speed-up and efficiency against the fewest ranks of the same series (efficiency = "
        "speed-up / rank ratio). Weak scaling keeps the batch per rank, strong scaling the global batch. "
        "The parts are rank 0's means in ms per step; comm share = comm exposed / step.\n\n"
     << "| series | ranks | global batch | batch per rank | images/s | speed-up | efficiency | step ms | data | "
        "forward | backward | comm exposed | optimizer | other | comm share | run |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  std::map<std::string, std::pair<int, double>> base;  // mode -> (ranks, images/s) of its fewest ranks
  std::map<std::string, std::ofstream> files;
  std::ofstream parts(out_dir / "scaling-data" / "breakdown.dat");
  parts << "label";
  for (const auto& p : kParts) parts << "\t\"" << p.title << "\"";
  parts << "\n";
  for (const auto& r : rows) {
    if (!base.count(r.mode)) base[r.mode] = {r.s.ranks, r.s.images_per_s};
    const auto [base_ranks, base_ips] = base[r.mode];
    const double speedup = r.s.images_per_s / base_ips;
    const double efficiency = speedup / (static_cast<double>(r.s.ranks) / base_ranks);
    md << "| " << r.mode << " | " << r.s.ranks << " | " << r.s.batch << " | " << r.s.batch / r.s.ranks << " | "
       << fmt("%.1f", r.s.images_per_s) << " | " << fmt("%.2f", speedup) << " | " << fmt("%.2f", efficiency) << " | "
       << fmt("%.1f", 1e3 * r.s.step);
    for (double v : {r.s.data, r.s.forward, r.s.backward, r.s.comm_exposed, r.s.optimizer, r.s.other}) {
      md << " | " << fmt("%.1f", 1e3 * v);
    }
    md << " | " << fmt("%.0f%%", 100 * r.s.comm_exposed / r.s.step) << " | `" << r.dir.string() << "` |\n";
    auto& f = files[r.mode];
    if (!f.is_open()) {
      f.open(out_dir / "scaling-data" / (r.mode + ".dat"));
      f << "# ranks images_per_s ideal efficiency\n";
    }
    f << r.s.ranks << "\t" << r.s.images_per_s << "\t" << base_ips * r.s.ranks / base_ranks << "\t" << efficiency
      << "\n";
    parts << "\"" << r.mode << " " << r.s.ranks << "\"";
    for (double v : {r.s.data, r.s.forward, r.s.backward, r.s.comm_exposed, r.s.optimizer, r.s.other})
      parts << "\t" << 1e3 * v;
    parts << "\n";
  }
  for (auto& [mode, f] : files) f.close();
  parts.close();
  using plot::Panel;
  Panel ips{"images/s", "ranks", "", "", {}, false, "set xtics 1\n"};
  Panel eff{"efficiency against the fewest ranks", "ranks", "", "", {}, false, "set xtics 1\nset yrange [0:1.2]\n"};
  for (const auto& [mode, f] : files) {
    const std::string file = (out_dir / "scaling-data" / (mode + ".dat")).string();
    ips.series.push_back({file, "1:2", mode, "linespoints lw 2"});
    ips.series.push_back({file, "1:3", mode + " ideal", "lines dt 2"});
    eff.series.push_back({file, "1:4", mode, "linespoints lw 2"});
  }
  Panel breakdown;
  breakdown.raw =
      "reset\nset title 'step-time breakdown per rank count (ms)'\nset style data histograms\n"
      "set style histogram rowstacked\nset style fill solid 0.8 border -1\nset boxwidth 0.7\n"
      "set key outside right\nset xtics rotate by -25\n"
      "plot for [c=2:7] " +
      plot::quote((out_dir / "scaling-data" / "breakdown.dat").string()) + " using c:xtic(1) title columnhead\n";
  const std::string png = (out_dir / "scaling.png").string();
  const bool drawn = plot::draw((out_dir / "scaling-data" / "scaling.gp").string(),
                                plot::script(png, 1, 3, 1600, 480, {ips, eff, breakdown}), png);
  md << "\n" << (drawn ? "![scaling](scaling.png)\n" : "(scaling.png not drawn: gnuplot failed or is not installed)\n");
  const std::string text = md.str();
  write_file_atomically((out_dir / "scaling.md").string(), text);
  return text;
}

}  // namespace starft::cli
