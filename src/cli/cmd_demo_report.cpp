// `starft demo-report`: gathers the built-in benchmark's evaluation results and training curves
// into one report: report.md (mean and spread over seeds per method) and report.png (per-group
// accuracy on the group-shift store; regulariser and contrastive loss over training), drawn with
// gnuplot when it is installed.
//
// Layout read (written by launch/demo.sh):
//   DIR/eval/<method>-seed<k>/results.json   rows: the model, and WiSE-FT alphas when evaluated
//   DIR/eval/zero-shot/results.json
//   DIR/finetune/<method>-seed<k>/metrics.jsonl
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "cli/command.h"
#include "cli/plot.h"
#include "cli/run_report.h"
#include "common/atomic_file.h"
#include "common/error.h"

namespace starft::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// One table column: a metric of a store.
struct Column {
  std::string store, metric, title;
};

json read_json(const fs::path& p) {
  std::ifstream in(p);
  check(static_cast<bool>(in), "demo-report: cannot open ", p.string());
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    fail("demo-report: ", p.string(), " is not valid JSON (", e.what(), ")");
  }
}

// method label -> column -> values over seeds; also per-group accuracies for the chart.
struct Table {
  std::vector<std::string> order;
  std::map<std::string, std::map<std::string, std::vector<double>>> values;
  std::map<std::string, std::map<std::string, std::vector<double>>> groups;  // method -> group -> accs
  std::map<std::string, int> seeds;

  void add(const std::string& method, const std::string& key, double v) {
    if (!values.count(method)) order.push_back(method);
    values[method][key].push_back(v);
  }
};

double mean_of(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m += x;
  return v.empty() ? std::nan("") : m / v.size();
}

// The sample standard deviation; 0 for fewer than two values.
double spread_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / (v.size() - 1));
}

std::string mean_spread(const std::vector<double>& v) {
  if (v.empty()) return "n/a";
  char buf[64];
  if (v.size() == 1) {
    std::snprintf(buf, sizeof buf, "%.1f", 100 * v[0]);
    return buf;
  }
  std::snprintf(buf, sizeof buf, "%.1f ± %.1f", 100 * mean_of(v), 100 * spread_of(v));
  return buf;
}

std::string pretty(const std::string& method) {
  static const std::map<std::string, std::string> names = {
      {"zero-shot", "zero-shot"}, {"flyp", "FLYP"}, {"kl", "FLYP + KL"}, {"starft", "StarFT"}};
  auto it = names.find(method);
  return it == names.end() ? method : it->second;
}

void collect(Table& table, const std::string& method, const json& results, const std::vector<Column>& columns,
             const std::string& group_store) {
  for (const auto& row : results.at("rows")) {
    std::string label = method;
    if (row.contains("alpha") && !row["alpha"].is_null()) {
      const double a = row["alpha"].get<double>();
      if (a == 0.0) continue;  // the zero-shot model, reported on its own row
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s WiSE-FT a=%.2g", pretty(method).c_str(), a);
      label = a == 1.0 ? pretty(method) : std::string(buf);
    } else {
      label = pretty(method);
    }
    for (const auto& store : row.at("stores")) {
      const std::string name = store.at("name");
      const auto& m = store;  // the store's metrics sit beside its name
      for (const auto& c : columns) {
        if (c.store == name && m.contains(c.metric) && !m[c.metric].is_null()) {
          table.add(label, c.store + "/" + c.metric, m[c.metric].get<double>());
        }
      }
      if (name == group_store && m.contains("per_group")) {
        for (const auto& g : m["per_group"]) {
          if (!g["acc"].is_null()) table.groups[label][g["name"].get<std::string>()].push_back(g["acc"].get<double>());
        }
      }
    }
  }
}

// "A vs B": the difference of the means in points and whether it exceeds the seeds' spread (the
// larger of the two sample standard deviations, at least 1 point).
std::string compare(const Table& t, const std::string& a, const std::string& b, const std::string& key) {
  auto find = [&](const std::string& m) -> const std::vector<double>* {
    auto it = t.values.find(m);
    if (it == t.values.end()) return nullptr;
    auto jt = it->second.find(key);
    return jt == it->second.end() ? nullptr : &jt->second;
  };
  const auto *va = find(a), *vb = find(b);
  if (!va || !vb || va->empty() || vb->empty()) return "n/a (not evaluated)";
  const double d = 100 * (mean_of(*va) - mean_of(*vb));
  // below one point (or the seeds' spread) a difference is not read as one
  const double noise = std::max(1.0, 100 * std::max(spread_of(*va), spread_of(*vb)));
  char buf[160];
  const char* verdict = std::abs(d) <= noise ? "within the seeds' spread or 1 point: no measurable difference"
                        : d > 0              ? "higher"
                                             : "lower";
  std::snprintf(buf, sizeof buf, "%s %.1f vs %s %.1f (%+.1f points; %s)", a.c_str(), 100 * mean_of(*va), b.c_str(),
                100 * mean_of(*vb), d, verdict);
  return buf;
}

// The comparisons the benchmark exists for, in words: the claim (group shift), the shift sets,
// the mask ablation (StarFT vs its unmasked KL variant) and whether fine-tuning taught the task.
void write_findings(std::ostringstream& md, const Table& t, const std::vector<Column>& columns) {
  auto key = [&](const std::string& title_start) {
    for (const auto& c : columns)
      if (c.title.rfind(title_start, 0) == 0) return c.store + "/" + c.metric;
    return std::string();
  };
  const std::string id = key("(1)"), shift = key("(2)"), worst = key("(3) group shift: worst"),
                    avg = key("(3) group shift: average");
  md << "\n## Findings\n\n"
     << "- Group shift, worst group (the claim): " << compare(t, "StarFT", "FLYP", worst) << "; average "
     << compare(t, "StarFT", "FLYP", avg) << ".\n"
     << "- Shifted places (the analogue of ImageNet's shift sets): " << compare(t, "StarFT", "FLYP", shift) << ".\n"
     << "- Mask ablation (StarFT vs the KL variant without the mask), worst group: "
     << compare(t, "StarFT", "FLYP + KL", worst) << "; in-distribution " << compare(t, "StarFT", "FLYP + KL", id)
     << ".\n"
     << "- Fine-tuning teaches the task, in-distribution: " << compare(t, "FLYP", "zero-shot", id) << "; "
     << compare(t, "StarFT", "zero-shot", id) << "; " << compare(t, "FLYP + KL", "zero-shot", id) << ".\n";
}

// Mean regulariser value R per epoch and method over every seed's metrics.jsonl (FLYP does not
// compute it).
std::string regulariser_table(const fs::path& root) {
  std::map<std::string, std::map<int64_t, std::vector<double>>> r;  // method -> epoch -> values
  const fs::path dir = root / "finetune";
  if (!fs::is_directory(dir)) return "";
  static const std::regex seeded(R"(^(kl|starft)-seed\d+$)");
  int64_t epochs = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (!std::regex_match(name, m, seeded)) continue;
    std::ifstream in(e.path() / "metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      auto j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.contains("regulariser") || !j.contains("epoch")) continue;
      const int64_t epoch = j["epoch"].get<int64_t>();
      epochs = std::max(epochs, epoch + 1);
      r[pretty(m[1])][epoch].push_back(j["regulariser"].get<double>());
    }
  }
  if (r.empty()) return "";
  std::ostringstream md;
  md << "\nRegulariser R over training (mean over steps and seeds; the KL variant's R has no mask):\n\n| method |";
  for (int64_t e = 0; e < epochs; ++e) md << " epoch " << e + 1 << " |";
  md << "\n|---|";
  for (int64_t e = 0; e < epochs; ++e) md << "---|";
  md << "\n";
  for (const auto& [method, by_epoch] : r) {
    md << "| " << method << " |";
    for (int64_t e = 0; e < epochs; ++e) {
      auto it = by_epoch.find(e);
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.4f", it == by_epoch.end() ? std::nan("") : mean_of(it->second));
      md << " " << buf << " |";
    }
    md << "\n";
  }
  return md.str();
}

// report-data/summary.json: {"<method>": {"<store>/<metric>": mean fraction, ...}, ...}, for
// scripts (CI checks the effect's direction on it).
void write_summary(const fs::path& path, const Table& t, const std::vector<Column>& columns) {
  json out = json::object();
  for (const auto& method : t.order) {
    json m = json::object();
    for (const auto& c : columns) {
      auto it = t.values.at(method).find(c.store + "/" + c.metric);
      if (it != t.values.at(method).end() && !it->second.empty()) m[c.store + "/" + c.metric] = mean_of(it->second);
    }
    out[method] = m;
  }
  write_file_atomically(path.string(), out.dump(2) + "\n");
}

int run_demo_report(int argc, char** argv) {
  std::string dir, group_store;
  po::options_description opts("options");
  opts.add_options()("dir", po::value(&dir)->required(), "the demo's output directory (holds eval/ and finetune/)")(
      "group-store", po::value(&group_store)->default_value("group-test"), "store name of the group-shift evaluation")(
      "title", po::value<std::string>()->default_value("SpuriousFashion"), "report title");
  auto vm =
      parse(argc, argv, opts,
            "usage: starft demo-report --dir RUN\n"
            "Writes RUN/report.md and RUN/report.png from RUN/eval/*/results.json and RUN/finetune/*/metrics.jsonl.");
  if (!vm) return 0;
  const std::vector<Column> columns = {
      {"id-test", "top1", "(1) in-distribution"},
      {"shift-test", "top1", "(2) shifted places"},
      {"heldout-test", "top1", "(4) held-out zero-shot"},
      {group_store, "avg_acc", "(3) group shift: average"},
      {group_store, "worst_group_acc", "(3) group shift: worst group"},
  };
  const fs::path root(dir), eval_dir = root / "eval";
  check(fs::is_directory(eval_dir), "demo-report: ", eval_dir.string(), " does not exist; run the evaluations first");
  static const std::regex seeded(R"(^(.+)-seed(\d+)$)");
  std::vector<fs::path> runs;
  for (const auto& e : fs::directory_iterator(eval_dir)) runs.push_back(e.path());
  std::sort(runs.begin(), runs.end());
  Table table;
  // zero-shot first, then the methods in a fixed order.
  std::vector<std::string> method_order = {"zero-shot", "flyp", "kl", "starft"};
  std::sort(runs.begin(), runs.end(), [&](const fs::path& a, const fs::path& b) {
    auto rank = [&](const fs::path& p) {
      std::smatch m;
      std::string name = p.filename().string(), method = name;
      if (std::regex_match(name, m, seeded)) method = m[1];
      auto it = std::find(method_order.begin(), method_order.end(), method);
      return std::make_pair(static_cast<int>(it - method_order.begin()), name);
    };
    return rank(a) < rank(b);
  });
  for (const auto& run : runs) {
    const fs::path results = run / "results.json";
    check(fs::exists(results), "demo-report: ", results.string(), " is missing; the evaluation of ",
          run.filename().string(), " did not finish");
    std::smatch m;
    std::string name = run.filename().string(), method = name;
    if (std::regex_match(name, m, seeded)) method = m[1];
    collect(table, method, read_json(results), columns, group_store);
  }
  check(!table.order.empty(), "demo-report: no results under ", eval_dir.string());
  // The methods first, their WiSE-FT rows after them.
  std::stable_partition(table.order.begin(), table.order.end(),
                        [](const std::string& m) { return m.find("WiSE-FT") == std::string::npos; });

  std::ostringstream md;
  md << "# " << (*vm)["title"].as<std::string>() << ": StarFT versus plain fine-tuning\n\n"
     << "Accuracy in percent, mean ± sample standard deviation over seeds (one value: one seed).\n\n| method |";
  for (const auto& c : columns) md << " " << c.title << " |";
  md << " seeds |\n|---|";
  for (size_t i = 0; i < columns.size(); ++i) md << "---|";
  md << "---|\n";
  for (const auto& method : table.order) {
    md << "| " << method << " |";
    size_t n = 0;
    for (const auto& c : columns) {
      const auto& v = table.values[method][c.store + "/" + c.metric];
      n = std::max(n, v.size());
      md << " " << mean_spread(v) << " |";
    }
    md << " " << n << " |\n";
  }
  // Per-group table for the group-shift store.
  if (!table.groups.empty()) {
    std::vector<std::string> group_names;
    for (const auto& [g, _] : table.groups.begin()->second) group_names.push_back(g);
    md << "\nPer-group accuracy on `" << group_store << "` (mean over seeds):\n\n| method |";
    for (const auto& g : group_names) md << " " << g << " |";
    md << "\n|---|";
    for (size_t i = 0; i < group_names.size(); ++i) md << "---|";
    md << "\n";
    for (const auto& method : table.order) {
      md << "| " << method << " |";
      for (const auto& g : group_names) md << " " << mean_spread(table.groups[method][g]) << " |";
      md << "\n";
    }
  }

  write_findings(md, table, columns);
  md << regulariser_table(root);
  // every seed-0 training run (and the pre-training) gets its own report (cli/run_report.h)
  std::vector<std::pair<std::string, fs::path>> run_reports;
  if (fs::exists(root / "pretrain" / "metrics.jsonl")) run_reports.emplace_back("pre-training", root / "pretrain");
  for (const std::string method : {"flyp", "kl", "starft"}) {
    const fs::path run = root / "finetune" / (method + "-seed0");
    if (fs::exists(run / "metrics.jsonl")) run_reports.emplace_back(pretty(method) + " (seed 0)", run);
  }
  if (!run_reports.empty()) {
    md << "\nTraining runs (curves, step-time breakdown, evaluations; `starft report --run-dir`):";
    for (size_t i = 0; i < run_reports.size(); ++i) {
      write_run_report(run_reports[i].second, run_reports[i].second);
      md << (i ? "," : "") << " [" << run_reports[i].first << "]("
         << fs::relative(run_reports[i].second / "report.md", root).string() << ")";
    }
    md << ".\n";
  }

  // Chart data: per-group means, and training curves of seed 0 of each fine-tuning method.
  const fs::path data = root / "report-data";
  fs::create_directories(data);
  write_summary(data / "summary.json", table, columns);
  {
    std::ofstream out(data / "groups.dat");
    std::vector<std::string> group_names;
    if (!table.groups.empty())
      for (const auto& [g, _] : table.groups.begin()->second) group_names.push_back(g);
    out << "method";
    for (const auto& g : group_names) out << "\t\"" << g << "\"";
    out << "\n";
    for (const auto& method : table.order) {
      if (!table.groups.count(method)) continue;
      out << '"' << method << '"';
      for (const auto& g : group_names) {
        const auto& v = table.groups[method][g];
        out << "\t" << (v.empty() ? 0.0 : 100 * mean_of(v));
      }
      out << "\n";
    }
  }
  std::vector<std::pair<std::string, fs::path>> curves;
  for (const std::string method : {"flyp", "kl", "starft"}) {
    const fs::path metrics = root / "finetune" / (method + "-seed0") / "metrics.jsonl";
    if (!fs::exists(metrics)) continue;
    std::ifstream in(metrics);
    std::ofstream out(data / (method + ".dat"));
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      auto j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.contains("step")) continue;
      out << j["step"].get<int64_t>() << "\t" << j.value("contrastive", 0.0) << "\t" << j.value("regulariser", 0.0)
          << "\n";
    }
    curves.emplace_back(pretty(method), data / (method + ".dat"));
  }
  // the per-group histogram, then the two training curves (cli/plot.h)
  plot::Panel groups;
  groups.raw = "reset\nset title " + plot::quote("Per-group accuracy on " + group_store + " (%)") +
               "\nset style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.8 border -1\n"
               "set yrange [0:100]\nset xtics rotate by -25\nset key outside bottom center horizontal\n"
               "plot for [c=2:*] " +
               plot::quote((data / "groups.dat").string()) + " using c:xtic(1) title columnhead\n";
  plot::Panel contrastive{"contrastive loss L_c (seed 0)", "step", "", "", {}};
  plot::Panel regulariser{"regulariser R (seed 0; not in the FLYP loss)", "step", "", "", {}};
  for (const auto& [title, file] : curves) {
    contrastive.series.push_back({file.string(), "1:2", title});
    regulariser.series.push_back({file.string(), "1:3", title});
  }
  const std::string png = (root / "report.png").string();
  const bool have_png = plot::draw((data / "report.gp").string(),
                                   plot::script(png, 1, 3, 1500, 450, {groups, contrastive, regulariser}), png);
  md << "\n"
     << (have_png ? "![per-group accuracy and training curves](report.png)\n"
                  : "(report.png not drawn: gnuplot failed or is not installed)\n");
  const std::string text = md.str();
  write_file_atomically((root / "report.md").string(), text);
  std::printf("%s", text.c_str());
  return 0;
}

Registration demo_report_command("demo-report", "gather the built-in benchmark's results into report.md and report.png",
                                 run_demo_report);

}  // namespace
}  // namespace starft::cli
