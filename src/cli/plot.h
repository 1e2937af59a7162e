#pragma once
// Charts of the report commands (demo-report, report): tab-separated data files beside a
// gnuplot script, drawn to PNG with gnuplot's pngcairo terminal when gnuplot is installed
// (launch/install-deps.sh installs gnuplot-nox). The data files and the script stay, so a chart
// can be redrawn or restyled by hand.
#include <string>
#include <vector>

namespace starft::cli::plot {

// One curve of a panel: `using` columns of a data file, drawn `with` a gnuplot style.
struct Series {
  std::string file;
  std::string columns;  // gnuplot's `using`, e.g. "1:2"
  std::string title;
  std::string with = "lines lw 2";  // gnuplot's `with`
  bool y2 = false;                  // on the right-hand axis
};

// One panel of a multiplot. `raw`, when set, is written instead (a complete gnuplot fragment that
// plots once and resets what it set).
struct Panel {
  std::string title, xlabel, ylabel, y2label;
  std::vector<Series> series;
  bool log_y = false;
  std::string settings{};  // extra `set` commands before the plot, undone by a `reset` after it
  std::string raw{};
};

// A gnuplot string literal (single quotes; a quote inside is doubled).
std::string quote(const std::string& s);

// A gnuplot script that draws `panels` row by row in a rows x cols grid into `png`
// (width x height pixels). A panel without series plots an empty frame saying "no data".
std::string script(const std::string& png, int rows, int cols, int width, int height, const std::vector<Panel>& panels);

// Writes `script_text` to `script_path` and runs gnuplot on it; true when `png` was written.
bool draw(const std::string& script_path, const std::string& script_text, const std::string& png);

}  // namespace starft::cli::plot
