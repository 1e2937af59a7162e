#pragma once
// The evaluation report: results.json (everything, per class included) and results.md (the
// table users read: one row per evaluated model, e.g. one per WiSE-FT alpha; one column per store
// metric; then accuracy per group for group stores). Both are written under a temporary name and
// renamed, so a report that exists is complete.
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "eval/evaluate.h"

namespace starft::eval {

struct ReportRow {
  std::string model;            // row label: "fine-tuned", "alpha=0.5", ...
  std::string weights;          // the weights file(s) the row evaluates
  std::optional<double> alpha;  // WiSE-FT rows
  EvalResults results;
};

// {"run": run, "rows": [{"model", "weights", "alpha", <EvalResults::to_json()>}...]}
nlohmann::json report_json(const std::vector<ReportRow>& rows, const nlohmann::json& run = nlohmann::json::object());

// The Markdown tables; accuracies in percent with two decimals.
std::string report_markdown(const std::vector<ReportRow>& rows);

// Writes DIR/results.json and DIR/results.md (DIR created if needed), each atomically. Returns
// the Markdown text.
std::string write_report(const std::string& dir, const std::vector<ReportRow>& rows,
                         const nlohmann::json& run = nlohmann::json::object());

}  // namespace starft::eval
