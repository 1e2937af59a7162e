#include "cli/plot.h"

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "common/atomic_file.h"

namespace starft::cli::plot {

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string script(const std::string& png, int rows, int cols, int width, int height,
                   const std::vector<Panel>& panels) {
  std::ostringstream gp;
  gp << "set terminal pngcairo size " << width << "," << height << " font ',10'\n"
     << "set output " << quote(png) << "\n"
     << "set multiplot layout " << rows << "," << cols << "\n";
  for (const auto& p : panels) {
    if (!p.raw.empty()) {
      gp << p.raw << (p.raw.back() == '\n' ? "" : "\n");
      continue;
    }
    gp << "reset\nset grid\nset key top right inside\nset style data lines\n"
       << "set title " << quote(p.title) << "\n";
    if (!p.xlabel.empty()) gp << "set xlabel " << quote(p.xlabel) << "\n";
    if (!p.ylabel.empty()) gp << "set ylabel " << quote(p.ylabel) << "\n";
    bool y2 = false;
    for (const auto& s : p.series) y2 |= s.y2;
    if (y2)
      gp << "set y2tics\nset ytics nomirror\n" << (p.y2label.empty() ? "" : "set y2label " + quote(p.y2label) + "\n");
    if (p.log_y) gp << "set logscale y\n";
    gp << p.settings << (p.settings.empty() || p.settings.back() == '\n' ? "" : "\n");
    if (p.series.empty()) {
      gp << "unset xtics\nunset ytics\nset label 1 'no data' at graph 0.5,0.5 center\n"
         << "plot [0:1] [0:1] NaN notitle\n";
      continue;
    }
    gp << "plot ";
    for (size_t i = 0; i < p.series.size(); ++i) {
      const auto& s = p.series[i];
      gp << (i ? ", \\\n     " : "") << quote(s.file) << " using " << s.columns << (s.y2 ? " axes x1y2" : "")
         << " title " << quote(s.title) << " with " << s.with;
    }
    gp << "\n";
  }
  gp << "unset multiplot\n";
  return gp.str();
}

bool draw(const std::string& script_path, const std::string& script_text, const std::string& png) {
  write_file_atomically(script_path, script_text);
  std::error_code ec;
  std::filesystem::remove(png, ec);
  // gnuplot's warnings (an empty range, say) go to SCRIPT.log, not into the report's output
  const std::string cmd = "gnuplot '" + script_path + "' > '" + script_path + ".log' 2>&1";
  return std::system(cmd.c_str()) == 0 && std::filesystem::exists(png);
}

}  // namespace starft::cli::plot
