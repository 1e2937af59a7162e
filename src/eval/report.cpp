#include "eval/report.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"

namespace starft::eval {
namespace {

std::string percent(double x) {
  if (std::isnan(x)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", 100.0 * x);
  return buf;
}

std::string percent(const std::optional<double>& x) { return x ? percent(*x) : "n/a"; }

// Keeps a table cell on one line and its '|' from splitting it.
std::string cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '\n' || c == '\r') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

void table_row(std::ostringstream& md, const std::vector<std::string>& cells) {
  md << "|";
  for (const auto& c : cells) md << " " << c << " |";
  md << "\n";
}

void separator(std::ostringstream& md, size_t columns) {
  md << "| --- |";
  for (size_t i = 1; i < columns; ++i) md << " ---: |";
  md << "\n";
}

}  // namespace

nlohmann::json report_json(const std::vector<ReportRow>& rows, const nlohmann::json& run) {
  nlohmann::json j{{"run", run}, {"rows", nlohmann::json::array()}};
  for (const auto& row : rows) {
    nlohmann::json r{{"model", row.model}, {"weights", row.weights}};
    r["alpha"] = row.alpha ? nlohmann::json(*row.alpha) : nlohmann::json(nullptr);
    r.update(row.results.to_json());
    j["rows"].push_back(std::move(r));
  }
  return j;
}

std::string report_markdown(const std::vector<ReportRow>& rows) {
  std::ostringstream md;
  if (rows.empty()) return "(no results)\n";
  const auto& first = rows.front().results;
  // Column layout from the first row (every row evaluates the same stores).
  std::vector<std::string> header{"model"};
  for (const auto& s : first.stores) {
    header.push_back(cell(s.name) + " top-1");
    if (!s.metrics.groups.empty()) {
      header.push_back(cell(s.name) + " worst group");
      header.push_back(cell(s.name) + " avg");
      if (s.metrics.avg_acc_train_weighted) header.push_back(cell(s.name) + " avg (train-weighted)");
    }
  }
  md << "## Accuracy (%)\n\n";
  table_row(md, header);
  separator(md, header.size());
  for (const auto& row : rows) {
    check(row.results.stores.size() == first.stores.size(), "report: rows evaluate different stores");
    std::vector<std::string> cells{cell(row.model)};
    for (size_t i = 0; i < first.stores.size(); ++i) {
      const auto& m = row.results.stores[i].metrics;
      cells.push_back(percent(m.top1));
      if (!first.stores[i].metrics.groups.empty()) {
        cells.push_back(percent(m.worst_group_acc));
        cells.push_back(percent(m.avg_acc));
        if (first.stores[i].metrics.avg_acc_train_weighted) cells.push_back(percent(m.avg_acc_train_weighted));
      }
    }
    table_row(md, cells);
  }

  md << "\n## Stores\n\n";
  table_row(md, {"store", "samples", "head", "head classes", "templates", "matching"});
  md << "| --- | ---: | --- | ---: | --- | --- |\n";
  for (const auto& s : first.stores) {
    std::string matching = to_string(s.matching);
    if (s.matching == Matching::class_map) matching += " " + s.class_map;
    table_row(md, {cell(s.name) + " (" + cell(s.store) + ")", std::to_string(s.metrics.total), cell(s.head),
                   std::to_string(s.head_classes), cell(s.templates), cell(matching)});
  }

  for (size_t i = 0; i < first.stores.size(); ++i) {
    const auto& groups = first.stores[i].metrics.groups;
    if (groups.empty()) continue;
    md << "\n## " << cell(first.stores[i].name) << ": accuracy per group (%)\n\n";
    std::vector<std::string> gh{"model"};
    for (const auto& g : groups) gh.push_back(cell(g.name) + " (n=" + std::to_string(g.total) + ")");
    table_row(md, gh);
    separator(md, gh.size());
    for (const auto& row : rows) {
      std::vector<std::string> cells{cell(row.model)};
      for (const auto& g : row.results.stores[i].metrics.groups) cells.push_back(percent(g.acc));
      table_row(md, cells);
    }
  }
  md << "\nPer-class accuracy: results.json (`rows[].stores[].per_class`). Evaluated on " << first.ranks
     << " rank(s).\n";
  return md.str();
}

std::string write_report(const std::string& dir, const std::vector<ReportRow>& rows, const nlohmann::json& run) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  check(!ec, "--out ", dir, ": cannot create the directory (", ec.message(), ")");
  const std::string md = report_markdown(rows);
  write_file_atomically((std::filesystem::path(dir) / "results.json").string(), report_json(rows, run).dump(2) + "\n");
  write_file_atomically((std::filesystem::path(dir) / "results.md").string(), md);
  return md;
}

}  // namespace starft::eval
