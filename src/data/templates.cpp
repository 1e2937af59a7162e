#include "data/templates.h"

#include <boost/algorithm/string/trim.hpp>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/text.h"
#include "starft/build_config.h"

namespace starft::data {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSubfolders[] = {"pools", "templates"};

size_t count_slots(const std::string& tpl) {
  size_t n = 0;
  for (size_t at = tpl.find("{}"); at != std::string::npos; at = tpl.find("{}", at + 2)) ++n;
  return n;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> parts;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, ',')) parts.push_back(boost::algorithm::trim_copy(part));
  if (!s.empty() && s.back() == ',') parts.push_back("");
  return parts;
}

bool is_path(const std::string& entry) {
  return entry.find('/') != std::string::npos || (entry.size() >= 4 && entry.compare(entry.size() - 4, 4, ".txt") == 0);
}

std::string list(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s.empty() ? "(none)" : s;
}

std::string resolve(const std::string& name) {
  std::vector<std::string> found;
  for (const char* sub : kSubfolders) {
    fs::path p = fs::path(datasets_dir()) / sub / (name + ".txt");
    if (fs::is_regular_file(p)) found.push_back(p.string());
  }
  if (found.size() > 1)
    fail("template set '", name, "' is ambiguous: both ", found[0], " and ", found[1],
         " exist; pass a path or rename one");
  if (found.empty())
    fail("unknown template set '", name, "' (built-in: ", list(builtin_template_sets()), " under ", datasets_dir(),
         "; or pass a path to a .txt file)");
  return found[0];
}

std::string read_file(const std::string& path) {
  return read_text_file(path, "template file");  // BOM and CRLF dropped
}

// splitmix64's output function applied to x + the golden-ratio increment.
uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

std::string datasets_dir() {
  const char* env = std::getenv("STARFT_DATASETS");
  if (env && *env) return env;
  return (fs::path(STARFT_SOURCE_DIR) / "datasets").string();
}

std::vector<std::string> builtin_template_sets() {
  std::vector<std::string> names;
  for (const char* sub : kSubfolders) {
    fs::path dir = fs::path(datasets_dir()) / sub;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.is_regular_file() && e.path().extension() == ".txt") names.push_back(e.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::vector<std::string> parse_templates(const std::string& text, const std::string& source) {
  std::vector<std::string> templates;
  std::map<std::string, int> first_line;
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string tpl = boost::algorithm::trim_copy(line);
    if (tpl.empty() || tpl[0] == '#') continue;
    const size_t slots = count_slots(tpl);
    if (slots != 1)
      fail(source, ":", number, ": template \"", tpl, "\" has ", slots,
           " \"{}\" placeholders; each template needs exactly one, where the text goes");
    auto [it, inserted] = first_line.emplace(tpl, number);
    if (!inserted)
      fail(source, ":", number, ": template \"", tpl, "\" repeats line ", it->second,
           "; a repeated template would be drawn twice as often");
    templates.push_back(tpl);
  }
  if (templates.empty()) fail(source, ": no templates (only blank lines and comments)");
  return templates;
}

std::vector<std::string> load_templates(const std::string& name_or_path) {
  std::vector<std::string> joined;
  std::set<std::string> seen;
  for (const std::string& entry : split_commas(name_or_path)) {
    if (entry.empty())
      fail("template set list '", name_or_path, "' has an empty entry; separate names with single commas");
    const std::string path = is_path(entry) ? entry : resolve(entry);
    for (auto& tpl : parse_templates(read_file(path), path))
      if (seen.insert(tpl).second) joined.push_back(std::move(tpl));
  }
  return joined;
}

std::string apply_template(const std::string& tpl, const std::string& caption) {
  const size_t at = tpl.find("{}");
  if (at == std::string::npos) fail("template \"", tpl, "\" has no \"{}\" placeholder for \"", caption, "\"");
  std::string text = caption;
  text.erase(text.find_last_not_of(" \t\r\n") + 1);
  if (!text.empty() && text.back() == '.') text.pop_back();
  return tpl.substr(0, at) + text + tpl.substr(at + 2);
}

int64_t draw_template(uint64_t seed, int64_t epoch, int64_t step, int64_t sample, int64_t pool_size) {
  check(pool_size >= 1, "draw_template: the template pool is empty");
  uint64_t h = splitmix64(seed);
  h = splitmix64(h ^ static_cast<uint64_t>(epoch));
  h = splitmix64(h ^ static_cast<uint64_t>(step));
  h = splitmix64(h ^ static_cast<uint64_t>(sample));
  // Lemire's multiply-and-reject: exactly uniform over [0, pool_size).
  const uint64_t n = static_cast<uint64_t>(pool_size);
  unsigned __int128 m = static_cast<unsigned __int128>(h) * n;
  if (static_cast<uint64_t>(m) < n) {
    const uint64_t threshold = (0 - n) % n;
    while (static_cast<uint64_t>(m) < threshold) {
      h = splitmix64(h);
      m = static_cast<unsigned __int128>(h) * n;
    }
  }
  return static_cast<int64_t>(m >> 64);
}

}  // namespace starft::data
