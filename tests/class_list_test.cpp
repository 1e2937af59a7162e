// The one class-list reader (data/class_list.h) on each of its formats: names alone,
// `id<TAB>name`, and ImageNet's `wnid name, alias` lines.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "data/class_list.h"
#include "data/templates.h"
#include "test_util.h"

using namespace starft;
using namespace starft::data;
using starft::testing::TempDir;
using starft::testing::error_of;

namespace {

using Strings = std::vector<std::string>;

std::string write(const TempDir& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir / name, std::ios::binary) << text;
  return dir / name;
}

}  // namespace

TEST(ClassList, NamesAlone) {
  TempDir dir;
  auto names = read_class_list(write(dir, "names.txt", "# comment\n\ncat\n  dog  \nsea lion\n"));
  EXPECT_EQ(names.names, (Strings{"cat", "dog", "sea lion"}));
  EXPECT_FALSE(names.has_ids());
  EXPECT_EQ(names.source, dir / "names.txt");
}

TEST(ClassList, IdTabName) {
  auto head = read_class_list(datasets_dir() + "/classnames/example-fish.txt");
  ASSERT_EQ(head.size(), 4);
  EXPECT_EQ(head.ids[2], "n01484850");
  EXPECT_EQ(head.names[2], "great white shark");
  auto list = parse_class_list("7\tseven\n 8 \t eight, or so \n", "t");
  EXPECT_EQ(list.ids, (Strings{"7", "8"}));
  EXPECT_EQ(list.names, (Strings{"seven", "eight, or so"}));  // the name is the whole field
}

TEST(ClassList, ImageNetSynsetMapping) {
  // LOC_synset_mapping.txt: the name is the text before the first comma.
  auto list = parse_class_list(
      "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n"
      "n01484850 great white shark, white shark, man-eater\nn01491361 tiger shark\n",
      "LOC_synset_mapping.txt");
  EXPECT_EQ(list.ids, (Strings{"n01440764", "n01443537", "n01484850", "n01491361"}));
  EXPECT_EQ(list.names, (Strings{"tench", "goldfish", "great white shark", "tiger shark"}));
}

TEST(ClassList, ByteOrderMarkAndCrlfLineEnds) {
  TempDir dir;
  auto wnid =
      read_class_list(write(dir, "bom.txt", "\xEF\xBB\xBFn01440764 tench, Tinca tinca\r\nn01443537 goldfish\r\n"));
  EXPECT_EQ(wnid.ids, (Strings{"n01440764", "n01443537"}));
  EXPECT_EQ(wnid.names, (Strings{"tench", "goldfish"}));
  auto tabs = read_class_list(write(dir, "tabs.txt",
                                    "\xEF\xBB\xBF"
                                    "a\tant\r\nb\tbee\r\n"));
  EXPECT_EQ(tabs.ids, (Strings{"a", "b"}));
  EXPECT_EQ(tabs.names, (Strings{"ant", "bee"}));
  auto plain = read_class_list(write(dir, "plain.txt",
                                     "\xEF\xBB\xBF"
                                     "cat\r\n\r\ndog\r\n"));
  EXPECT_EQ(plain.names, (Strings{"cat", "dog"}));
  EXPECT_FALSE(plain.has_ids());
}

TEST(ClassList, MalformedFilesAreErrorsNamingFileAndLine) {
  TempDir dir;
  auto mixed = write(dir, "mixed.txt", "n1\tcat\ndog\n");
  EXPECT_NE(error_of([&] { read_class_list(mixed); }).find("mixed.txt:2: every line must have the same form"),
            std::string::npos);
  auto mixed_wnid = write(dir, "mixed2.txt", "n01440764 tench\ngoldfish\n");
  EXPECT_NE(error_of([&] { read_class_list(mixed_wnid); }).find("mixed2.txt:2: every line must have the same form"),
            std::string::npos);
  auto twice = write(dir, "twice.txt", "n1\tcat\nn1\tdog\n");
  EXPECT_NE(error_of([&] { read_class_list(twice); }).find("twice.txt:2: class id 'n1' appears twice"),
            std::string::npos);
  auto three = write(dir, "three.txt", "n1\tcat\textra\n");
  EXPECT_NE(error_of([&] { read_class_list(three); }).find("three.txt:1: 3 tab-separated fields"), std::string::npos);
  auto empty = write(dir, "empty.txt", "# nothing\n");
  EXPECT_NE(error_of([&] { read_class_list(empty); }).find("no classes"), std::string::npos);
  EXPECT_NE(error_of([&] { read_class_list(dir / "absent.txt"); }).find("cannot read class list"), std::string::npos);
}

// `starft shard --class-names` and `eval --classnames` once read a pointer's three lines as class
// names; now the reader names the pointer and `git lfs pull` (CRLF pointers too).
TEST(ClassList, AGitLfsPointerIsRefusedNamingTheFileAndGitLfsPull) {
  TempDir dir;
  for (const std::string& pointer :
       {std::string("version https://git-lfs.github.com/spec/v1\n"
                    "oid sha256:4d7a2146e1d3c5a8f0b9e6a3c2d1f0e9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3\n"
                    "size 15\n"),
        std::string("version https://git-lfs.github.com/spec/v1\r\noid sha256:ab\r\nsize 15\r\n")}) {
    const std::string path = write(dir, "cls.txt", pointer);
    const std::string msg = error_of([&] { read_class_list(path); });
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("Git LFS pointer"), std::string::npos) << msg;
    EXPECT_NE(msg.find("git lfs pull --include \"cls.txt\""), std::string::npos) << msg;
  }
  // A list whose first class only resembles the spec line is read as classes.
  const auto names =
      read_class_list(write(dir, "odd.txt", "version https://git-lfs.github.com/spec/v1 (a tench)\ngoldfish\n"));
  EXPECT_EQ(names.names, (Strings{"version https://git-lfs.github.com/spec/v1 (a tench)", "goldfish"}));
}
