#pragma once
// The built-in converters: each turns a dataset on disk into a store layout plus an ordered
// list of items for convert(). Formats are described in sharding/README.md.
#include <string>
#include <vector>

#include "data/manifest.h"
#include "sharding/convert.h"

namespace starft::sharding {

// A store to be written: its layout (dataset, split, classes, optional fields) and items.
// image_size, shard_size and compression are left at their defaults for the caller to set.
struct Source {
  data::Manifest layout;
  std::vector<SourceItem> items;
};

// Rows of a delimited text file (tab- or comma-separated), with double-quoted fields as pandas
// writes them (separators, line ends and doubled quotes "" inside quotes are kept). The first row
// is the header. `separator` is '\t', ',' or kDetectSeparator (decided by detect_separator); the
// one used is stored in `*used` when given.
// Throws starft::Error naming the file for an unreadable or empty file, a Git LFS pointer
// (read_table; with `git lfs pull`), UTF-16/UTF-32 text
// (check_utf8_text in common/text.h: names the encoding and the iconv command), an unclosed
// quote, or a row whose field count differs from the header's. A leading UTF-8 byte-order mark is
// dropped; LF, CRLF and CR line ends are accepted; blank lines are skipped.
std::vector<std::vector<std::string>> read_table(const std::string& path, char separator, char* used = nullptr);
// The same for text already in memory; `path` names it in errors.
std::vector<std::vector<std::string>> parse_table(const std::string& text, char separator, const std::string& path,
                                                  char* used = nullptr);

// Passed as the separator: decide it from the header line (detect_separator).
inline constexpr char kDetectSeparator = '\0';

// The separator of a table, decided from its header line alone (as pandas' sep=None sniffs the
// first line only): the first record is split quote-aware (a tab or comma
// inside double quotes does not count) once at tabs and once at commas; ',' when commas give more
// fields, else '\t' (ties and a one-column header included: the reference code's TSV). A tab in a
// comma-separated file's caption, or a comma in a TSV's caption, therefore does not matter.
char detect_separator(const std::string& text);

// `root/<class>/.../<image>`: classes are the sorted sub-folder names, images are sorted by
// relative path. With `class_names_file` (a class list with ids, data/class_list.h), folder
// names are ids and the names come from the file. Folder names that look like WordNet ids are
// recorded as class ids.
Source folder_source(const std::string& root, const std::string& class_names_file, const std::string& split);

// The reference code's tab-separated file with `title` (caption), `filepath` and `label`
// columns, or the same comma-separated (the separator is decided from the header line:
// detect_separator). Relative file paths are resolved against `image_root` (default: the file's folder).
// Class names (and ids, when it has them) come from the class list `class_names_file`
// (data/class_list.h), else they are the label numbers.
Source csv_source(const std::string& csv_path, const std::string& image_root, const std::string& class_names_file,
                  const std::string& split);

// Waterbirds: `root/metadata.csv` (img_filename, y, split, place) -> train, val, test stores
// with groups = 2 * y + place and the `place` attribute (0 land, 1 water).
std::vector<Source> waterbirds_sources(const std::string& root);

// Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, ...) -> train and test stores;
// 28x28 grey images become 3-channel RGB.
std::vector<Source> fashion_mnist_sources(const std::string& dir);
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
std::vector<std::string> fashion_mnist_class_names();

// Images in a flat list of files: the decoder for one path (RGB, errors name the path).
SourceItem image_file_item(const std::string& path, data::SampleMeta meta);

}  // namespace starft::sharding
