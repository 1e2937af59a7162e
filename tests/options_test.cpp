// Option parsing every command shares: --config files and their precedence, renamed options
// refused with the new name (common/options.h), and --device (distributed/device.h).
#include <gtest/gtest.h>

#include <boost/program_options.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "common/lfs_pointer.h"
#include "common/options.h"
#include "common/text.h"
#include "distributed/device.h"
#include "test_util.h"

using namespace starft;
using starft::testing::TempDir;
using starft::testing::error_of;
namespace po = boost::program_options;

namespace {

struct Values {
  std::string a, b, c, d;
};

po::options_description fields(Values& v) {
  po::options_description o("fields");
  o.add_options()("a", po::value(&v.a)->default_value("default-a"), "")(
      "b", po::value(&v.b)->default_value("default-b"), "")("c", po::value(&v.c)->default_value("default-c"), "")(
      "d", po::value(&v.d)->default_value("default-d"), "")("n", po::value<int>(), "");
  return o;
}

// The command line `args`, then the files named by --config, as the commands do it.
void parse(Values& v, const std::vector<std::string>& args, const std::vector<RenamedOption>& renamed = {}) {
  auto f = fields(v);
  po::options_description all;
  add_config_option(all);
  all.add(f);
  all.add(renamed_options(renamed));
  std::vector<const char*> argv{"test"};
  for (const auto& a : args) argv.push_back(a.c_str());
  po::variables_map vm;
  auto parsed = po::command_line_parser(static_cast<int>(argv.size()), argv.data()).options(all).run();
  refuse_renamed(parsed, renamed);
  po::store(parsed, vm);
  load_config_files(vm, f, "starft test", renamed);
}

}  // namespace

TEST(ConfigFiles, CommandLineThenFilesInOrderThenDefaults) {
  TempDir tmp;
  std::ofstream(tmp / "first.ini") << "# the first file\na = first-a\nb = first-b\n";
  std::ofstream(tmp / "second.ini") << "a = second-a\nb = second-b\nc = second-c\n";
  Values v;
  parse(v, {"--a", "cli-a", "--config", tmp / "first.ini", "--config", tmp / "second.ini"});
  EXPECT_EQ(v.a, "cli-a");      // the command line over every file
  EXPECT_EQ(v.b, "first-b");    // an earlier file over a later one
  EXPECT_EQ(v.c, "second-c");   // a later file over the default
  EXPECT_EQ(v.d, "default-d");  // the default where nothing sets it
  Values none;
  parse(none, {});
  EXPECT_EQ(none.a, "default-a");
}

TEST(ConfigFiles, ErrorsNameTheFile) {
  TempDir tmp;
  std::ofstream(tmp / "unknown.ini") << "a = x\nno-such-key = 1\n";
  std::ofstream(tmp / "bad.ini") << "n = many\n";
  Values v;
  auto e = error_of([&] { parse(v, {"--config", tmp / "unknown.ini"}); });
  EXPECT_NE(e.find("unknown.ini"), std::string::npos) << e;
  EXPECT_NE(e.find("no-such-key"), std::string::npos) << e;
  EXPECT_NE(e.find("starft test --help"), std::string::npos) << e;
  e = error_of([&] { parse(v, {"--config", tmp / "bad.ini"}); });
  EXPECT_NE(e.find("bad.ini"), std::string::npos) << e;
  e = error_of([&] { parse(v, {"--config", tmp / "missing.ini"}); });
  EXPECT_NE(e.find("missing.ini: cannot open"), std::string::npos) << e;
}

TEST(RenamedOptions, OldNamesAreRefusedNamingTheNewOne) {
  TempDir tmp;
  const std::vector<RenamedOption> renamed{{"old-a", "a", ""}, {"older", "b", "a note"}};
  Values v;
  auto e = error_of([&] { parse(v, {"--old-a", "x"}, renamed); });
  EXPECT_NE(e.find("--old-a"), std::string::npos) << e;
  EXPECT_NE(e.find("--a"), std::string::npos) << e;
  e = error_of([&] { parse(v, {"--older=x"}, renamed); });
  EXPECT_NE(e.find("--b"), std::string::npos) << e;
  EXPECT_NE(e.find("a note"), std::string::npos) << e;
  // In a --config file too, naming the file.
  std::ofstream(tmp / "old.ini") << "a = fine\nold-a = x\n";
  e = error_of([&] { parse(v, {"--config", tmp / "old.ini"}, renamed); });
  EXPECT_NE(e.find("old.ini"), std::string::npos) << e;
  EXPECT_NE(e.find("renamed a"), std::string::npos) << e;
  // The new names work.
  Values ok;
  parse(ok, {"--a", "new"}, renamed);
  EXPECT_EQ(ok.a, "new");
}

// An old name that published scripts still use (still_accepted) sets the new option, on the
// command line and in a file, instead of being refused.
TEST(RenamedOptions, StillAcceptedOldNamesSetTheNewOption) {
  TempDir tmp;
  const std::vector<RenamedOption> renamed{{"old-a", "a", "", true}, {"older", "b", "", false}};
  Values v;
  parse(v, {"--old-a", "via-old"}, renamed);
  EXPECT_EQ(v.a, "via-old");
  std::ofstream(tmp / "old.ini") << "old-a = from-file\n";
  Values f;
  parse(f, {"--config", tmp / "old.ini"}, renamed);
  EXPECT_EQ(f.a, "from-file");
  Values r;
  EXPECT_NE(error_of([&] { parse(r, {"--older", "x"}, renamed); }).find("--b"), std::string::npos);
}

TEST(DeviceOption, CpuCudaAndCudaN) {
  using distributed::parse_device;
  EXPECT_EQ(parse_device("cpu"), torch::Device(torch::kCPU));
  const auto cuda = parse_device("cuda");
  EXPECT_TRUE(cuda.is_cuda());
  EXPECT_FALSE(cuda.has_index());
  EXPECT_EQ(parse_device("cuda:0"), torch::Device(torch::kCUDA, 0));
  EXPECT_EQ(parse_device("cuda:13"), torch::Device(torch::kCUDA, 13));
  for (const char* bad : {"tpu", "", "CPU", "cuda:", "cuda:x", "cuda:1:2", "cuda:-1", "cuda:100", "cpu:0", " cuda"}) {
    // The error names the option, the accepted forms and the value given.
    const std::string e = error_of([&] { parse_device(bad); });
    EXPECT_NE(e.find("--device"), std::string::npos) << bad;
    EXPECT_NE(e.find("cuda:N"), std::string::npos) << e;
    EXPECT_NE(e.find(std::string("'") + bad + "'"), std::string::npos) << e;
  }
  EXPECT_EQ(distributed::run_device("cpu", nullptr), torch::Device(torch::kCPU));
  if (!torch::cuda::is_available()) {
    const auto e = error_of([] { distributed::run_device("cuda", nullptr); });
    EXPECT_NE(e.find("use --device cpu"), std::string::npos) << e;
  }
}

// A config saved by Notepad (byte-order mark) or on Windows (CRLF): the first key and every value
// are read as written, not with the mark or a trailing CR.
TEST(ConfigFiles, ByteOrderMarkAndCrlfLineEnds) {
  TempDir tmp;
  std::ofstream(tmp / "win.ini", std::ios::binary) << "\xEF\xBB\xBF"
                                                      "a = win-a\r\n# comment\r\nb = win-b\r\nn = 7\r\n";
  Values v;
  parse(v, {"--config", tmp / "win.ini"});
  EXPECT_EQ(v.a, "win-a");
  EXPECT_EQ(v.b, "win-b");
}

TEST(TextFiles, JoinListsItemsForMessagesUpToALimit) {
  EXPECT_EQ(starft::join({}), "");
  EXPECT_EQ(starft::join({"a"}), "a");
  EXPECT_EQ(starft::join({"a", "b", "c"}), "a, b, c");
  EXPECT_EQ(starft::join({"a", "b", "c"}, 3), "a, b, c");
  EXPECT_EQ(starft::join({"a", "b", "c"}, 1), "a, ... (2 more)");
}

TEST(TextFiles, NormalizeDropsTheByteOrderMarkAndCarriageReturns) {
  EXPECT_EQ(normalize_text("\xEF\xBB\xBF"
                           "a\r\nb\rc\n"),
            "a\nb\nc\n");
  EXPECT_EQ(normalize_text("plain\n"), "plain\n");
  EXPECT_EQ(strip_bom("\xEF\xBB\xBF"
                      "x\r\n"),
            "x\r\n");
  EXPECT_EQ(strip_bom("\xEF\xBB"), "\xEF\xBB");  // a cut mark is not a mark
  TempDir tmp;
  EXPECT_NE(error_of([&] { read_text_file(tmp / "absent.txt", "class list"); }).find("cannot read class list"),
            std::string::npos);
}

// A clone without Git LFS holds pointers in place of the files it tracks: an INI --config that is
// one is named as such, not parsed into "unknown key" errors.
TEST(ConfigFiles, AGitLfsPointerIsRefusedNamingTheFileAndGitLfsPull) {
  TempDir tmp;
  std::ofstream(tmp / "train.ini", std::ios::binary)
      << "version https://git-lfs.github.com/spec/v1\n"
         "oid sha256:4d7a2146e1d3c5a8f0b9e6a3c2d1f0e9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3\n"
         "size 15\n";
  Values v;
  const auto e = error_of([&] { parse(v, {"--config", tmp / "train.ini"}); });
  EXPECT_NE(e.find(tmp / "train.ini"), std::string::npos) << e;
  EXPECT_NE(e.find("Git LFS pointer"), std::string::npos) << e;
  EXPECT_NE(e.find("git lfs pull --include \"train.ini\""), std::string::npos) << e;
}

// Only the spec's exact first line marks a pointer (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md),
// so no real file is taken for one; the reason names the oid, the size and the file to pull.
TEST(GitLfsPointer, OnlyTheSpecsFirstLineMarksAPointer) {
  const std::string pointer =
      "version https://git-lfs.github.com/spec/v1\n"
      "oid sha256:4d7a2146e1d3c5a8f0b9e6a3c2d1f0e9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3\n"
      "size 15\n";
  EXPECT_TRUE(is_lfs_pointer(pointer));
  EXPECT_TRUE(is_lfs_pointer("version https://git-lfs.github.com/spec/v1\r\noid sha256:ab\r\nsize 3\r\n"));
  for (const std::string other :
       {"", "version https://git-lfs.github.com/spec/v1", "version https://git-lfs.github.com/spec/v1 tench\n",
        "version https://git-lfs.github.com/spec/v2\n", " version https://git-lfs.github.com/spec/v1\n",
        "\xEF\xBB\xBFversion https://git-lfs.github.com/spec/v1\n",
        "tench\nversion https://git-lfs.github.com/spec/v1\n", "version https://git-lfs.github.com/spec/\n"})
    EXPECT_FALSE(is_lfs_pointer(other)) << other;
  const std::string reason = lfs_pointer_reason(pointer, "data/lists/cls.txt", "the class list");
  EXPECT_NE(reason.find("sha256:4d7a2146"), std::string::npos) << reason;
  EXPECT_NE(reason.find("15 bytes"), std::string::npos) << reason;
  EXPECT_NE(reason.find("git lfs pull --include \"cls.txt\""), std::string::npos) << reason;
  EXPECT_EQ(error_of([&] { refuse_lfs_pointer("tench\n", "class list x", "x", "the file"); }), "");
  const auto e = error_of([&] { refuse_lfs_pointer(pointer, "class list x.txt", "x.txt", "the file"); });
  EXPECT_EQ(e.rfind("class list x.txt: a Git LFS pointer", 0), 0u) << e;
}
