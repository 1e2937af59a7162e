// `starft shard --from folder`: class sub-folders (ImageNet train/val layout, ImageNet-R/-A/-Sketch).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>

#include "common/error.h"
#include "data/class_list.h"
#include "sharding/sources.h"

namespace starft::sharding {

namespace fs = std::filesystem;

static bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  static const char* kExtensions[] = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"};
  return std::find(std::begin(kExtensions), std::end(kExtensions), ext) != std::end(kExtensions);
}

// Entries that are no one's data, left out at every depth: names starting with '.'
// (.ipynb_checkpoints, .DS_Store, AppleDouble ._x.jpg, .git, ...) and __MACOSX, the folder of
// AppleDouble resource forks that macOS's zip adds (unzipped, it would become an empty class and
// shift every label after it).
static bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return (!name.empty() && name[0] == '.') || name == "__MACOSX";
}

static std::string first_few(const std::vector<std::string>& names, size_t most = 5) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < most; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > most) s += ", ...";
  return s;
}

Source folder_source(const std::string& root, const std::string& class_names_file, const std::string& split) {
  if (!fs::is_directory(root)) fail("--input ", root, ": not a directory (expected one sub-folder per class)");
  std::vector<std::string> folders, loose;
  int64_t hidden_entries = 0;
  for (const auto& entry : fs::directory_iterator(root)) {
    std::string name = entry.path().filename().string();
    if (hidden(entry.path())) {
      ++hidden_entries;
    } else if (entry.is_directory()) {
      folders.push_back(name);
    } else if (entry.is_regular_file() && is_image_file(entry.path())) {
      loose.push_back(name);
    }
  }
  std::sort(folders.begin(), folders.end());
  std::sort(loose.begin(), loose.end());
  if (folders.empty() && !loose.empty())
    fail("--input ", root, ": ", loose.size(), " image files (", first_few(loose),
         ") but no class sub-folders. "
         "--from folder needs one sub-folder per class; ImageNet's validation images come flat and must first be "
         "moved into class folders (their labels are in LOC_val_solution.csv), or use --from csv with a list of "
         "files and labels");
  if (folders.empty()) fail("--input ", root, ": no class sub-folders");
  if (!loose.empty())
    fail("--input ", root, ": ", loose.size(), " image file(s) lie beside the ", folders.size(),
         " class folders and belong to no class (", first_few(loose),
         "). A half-sorted folder (an interrupted "
         "move into class folders, e.g. ImageNet val) would be converted without them: finish sorting them into "
         "their class folders, or move them out of --input");

  Source src;
  data::Manifest& m = src.layout;
  fs::path root_dir = fs::path(root).lexically_normal();
  if (root_dir.filename().empty()) root_dir = root_dir.parent_path();  // "a/b/" -> "a/b"
  m.dataset = root_dir.parent_path().filename().string();
  if (m.dataset.empty()) m.dataset = "folder";
  m.split = split;
  static const std::regex wnid(R"(n\d{8})");
  bool all_wnids =
      std::all_of(folders.begin(), folders.end(), [](const std::string& f) { return std::regex_match(f, wnid); });
  if (!class_names_file.empty()) {
    const data::ClassList mapping = data::read_class_list(class_names_file);
    if (!mapping.has_ids())
      fail("--class-names ", class_names_file,
           ": for --from folder it must map folder names to class names "
           "(`n01440764 tench, Tinca tinca` or `id<TAB>name` lines)");
    std::map<std::string, std::string> name_of;
    for (size_t i = 0; i < mapping.ids.size(); ++i) name_of[mapping.ids[i]] = mapping.names[i];
    for (const auto& f : folders) {
      auto it = name_of.find(f);
      if (it == name_of.end())
        fail("--class-names ", class_names_file, " has no entry for class folder '", f, "' in ", root);
      m.class_names.push_back(it->second);
      m.class_ids.push_back(f);
    }
    std::vector<std::string> without_folder;
    for (size_t i = 0; i < mapping.ids.size(); ++i)
      if (!std::binary_search(folders.begin(), folders.end(), mapping.ids[i]))
        without_folder.push_back(mapping.ids[i] + " (" + mapping.names[i] + ")");
    if (!without_folder.empty())
      spdlog::warn(
          "--class-names {} lists {} class(es) with no folder in {}: {}; the store has the {} classes that "
          "have one (fine for a subset such as ImageNet-A/-R; otherwise images are missing)",
          class_names_file, without_folder.size(), root, first_few(without_folder), folders.size());
  } else {
    m.class_names = folders;
    if (all_wnids) {
      m.class_ids = folders;
      spdlog::warn(
          "class folders in {} are WordNet ids; pass --class-names LOC_synset_mapping.txt to store readable "
          "class names",
          root);
    }
  }

  for (size_t label = 0; label < folders.size(); ++label) {
    std::vector<std::string> files;
    fs::path dir = fs::path(root) / folders[label];
    for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
      if (hidden(it->path())) {  // hidden folders (and __MACOSX) are skipped whole, at every depth
        ++hidden_entries;
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file() && is_image_file(it->path()))
        files.push_back(fs::relative(it->path(), root).generic_string());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) spdlog::warn("class folder {} has no images", dir.string());
    for (const auto& rel : files) {
      data::SampleMeta meta;
      meta.label = static_cast<int64_t>(label);
      meta.source = rel;
      src.items.push_back(image_file_item((fs::path(root) / rel).string(), meta));
    }
  }
  if (hidden_entries > 0)
    spdlog::info("folder {}: {} hidden file(s) and folder(s) (names starting with '.', and macOS's __MACOSX) left out",
                 root, hidden_entries);
  if (src.items.empty()) fail("--input ", root, ": no image files (.jpg, .jpeg, .png, ...) in the class folders");
  return src;
}

}  // namespace starft::sharding
