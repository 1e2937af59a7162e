#include "data/templates.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <optional>

#include "common/error.h"
#include "test_util.h"

using namespace starft::data;
using starft::testing::error_of;
using starft::testing::TempDir;
using starft::testing::write_file;

namespace {

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_, old_->c_str(), 1);
    else
      unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST(ParseTemplates, SkipsCommentsAndBlankLinesAndTrims) {
  auto t =
      parse_templates("# header\n\n  {} in the snow.  \r\n\t# indented comment\n{} #1 fan.\n   \nblurred {}.", "x.txt");
  EXPECT_EQ(t, (std::vector<std::string>{"{} in the snow.", "{} #1 fan.", "blurred {}."}));
}

TEST(ParseTemplates, RejectsATemplateWithoutPlaceholderNamingFileAndLine) {
  const std::string msg = error_of([] { parse_templates("# c\n{} ok.\n\nno placeholder here.\n", "pools/bad.txt"); });
  EXPECT_NE(msg.find("pools/bad.txt:4"), std::string::npos) << msg;
  EXPECT_NE(msg.find("no placeholder here."), std::string::npos) << msg;
}

TEST(ParseTemplates, RejectsTwoPlaceholdersRepeatsAndEmptyFiles) {
  EXPECT_NE(error_of([] { parse_templates("{} and {}.\n", "two.txt"); }).find("two.txt:1"), std::string::npos);
  const std::string repeat = error_of([] { parse_templates("{} a.\n{} b.\n{} a.\n", "rep.txt"); });
  EXPECT_NE(repeat.find("rep.txt:3"), std::string::npos) << repeat;
  EXPECT_NE(repeat.find("line 1"), std::string::npos) << repeat;
  EXPECT_NE(error_of([] { parse_templates("# only a comment\n\n", "empty.txt"); }).find("empty.txt"),
            std::string::npos);
}

TEST(LoadTemplates, ReadsAFileFromDiskAndRejectsABadOneWithItsLine) {
  TempDir dir;
  const std::string good = dir / "mine.txt", bad = dir / "bad.txt";
  write_file(good, "{} on the moon.\n{} under the sea.\n");
  write_file(bad, "{} fine.\n# comment\nmissing.\n");
  EXPECT_EQ(load_templates(good), (std::vector<std::string>{"{} on the moon.", "{} under the sea."}));
  const std::string msg = error_of([&] { load_templates(bad); });
  EXPECT_NE(msg.find(bad + ":3"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { load_templates(dir / "absent.txt"); }).find("absent.txt"), std::string::npos);
}

TEST(LoadTemplates, BuiltInSetsAreWellFormedAndLargeEnough) {
  const std::map<std::string, size_t> minimum = {{"backgrounds", 40}, {"textures", 40}, {"quality", 15},
                                                 {"imagenet", 60},    {"simple", 1},    {"waterbirds", 4},
                                                 {"fashion", 4}};
  auto names = builtin_template_sets();
  for (const auto& [name, at_least] : minimum) {
    SCOPED_TRACE(name);
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end());
    auto set = load_templates(name);
    EXPECT_GE(set.size(), at_least);
    for (const auto& tpl : set) {
      // Applied to a caption or a class name, each reads as one sentence.
      for (const std::string& text : {std::string("a photo of a tench."), std::string("tench")}) {
        const std::string s = apply_template(tpl, text);
        EXPECT_EQ(s.find(".."), std::string::npos) << s;
        EXPECT_EQ(s.find(" ."), std::string::npos) << s;
        EXPECT_EQ(s.find("  "), std::string::npos) << s;
        EXPECT_EQ(s.back(), '.') << s;
        EXPECT_EQ(s.find("{}"), std::string::npos) << s;
      }
    }
  }
  EXPECT_EQ(load_templates("simple"), std::vector<std::string>{"a photo of a {}."});
  EXPECT_EQ(apply_template(load_templates("backgrounds")[0], "a photo of a tench."), "a photo of a tench in the snow.");
}

TEST(LoadTemplates, JoinsCommaSeparatedSetsKeepingEachTemplateOnce) {
  TempDir dir;
  write_file(dir / "extra.txt", "{} on the moon.\n{} in the snow.\n");
  auto backgrounds = load_templates("backgrounds");
  auto textures = load_templates("textures");
  auto joined = load_templates("backgrounds, textures," + (dir / "extra.txt"));
  ASSERT_EQ(joined.size(), backgrounds.size() + textures.size() + 1);  // "{} in the snow." is kept once
  EXPECT_EQ(joined.front(), backgrounds.front());
  EXPECT_EQ(joined[backgrounds.size()], textures.front());
  EXPECT_EQ(joined.back(), "{} on the moon.");
  EXPECT_THROW(load_templates("backgrounds,,textures"), starft::Error);
}

TEST(LoadTemplates, UnknownNameListsTheBuiltInOnes) {
  const std::string msg = error_of([] { load_templates("backgrounds,wallpapers"); });
  EXPECT_NE(msg.find("'wallpapers'"), std::string::npos) << msg;
  for (const char* name : {"backgrounds", "textures", "quality", "imagenet", "simple", "waterbirds", "fashion"})
    EXPECT_NE(msg.find(name), std::string::npos) << name << " not listed: " << msg;
}

TEST(LoadTemplates, EnvironmentOverridesTheDatasetsFolder) {
  TempDir dir;
  write_file(dir / "pools/mine.txt", "{} in a teacup.\n");
  write_file(dir / "templates/heads.txt", "a drawing of a {}.\n");
  ScopedEnv env("STARFT_DATASETS", dir.path().string());
  EXPECT_EQ(datasets_dir(), dir.path().string());
  EXPECT_EQ(builtin_template_sets(), (std::vector<std::string>{"heads", "mine"}));
  EXPECT_EQ(load_templates("mine,heads"), (std::vector<std::string>{"{} in a teacup.", "a drawing of a {}."}));
  EXPECT_THROW(load_templates("backgrounds"), starft::Error);
  write_file(dir / "templates/mine.txt", "{} twice.\n");
  EXPECT_NE(error_of([] { load_templates("mine"); }).find("ambiguous"), std::string::npos);
}

TEST(ApplyTemplate, StripsTheCaptionsFinalPeriod) {
  EXPECT_EQ(apply_template("{} in the snow.", "a photo of a tench."), "a photo of a tench in the snow.");
  EXPECT_EQ(apply_template("blurred {}.", "a photo of a tench. "), "blurred a photo of a tench.");
  EXPECT_EQ(apply_template("a sketch of a {}.", "tench"), "a sketch of a tench.");
  EXPECT_EQ(apply_template("{}", "a photo of a tench."), "a photo of a tench");
  EXPECT_EQ(apply_template("{}, in low resolution.", "a photo of a St. Bernard."),
            "a photo of a St. Bernard, in low resolution.");
  EXPECT_THROW(apply_template("no slot.", "a photo of a tench."), starft::Error);
}

TEST(DrawTemplate, IsDeterministicAndInRange) {
  for (int64_t pool : {1, 2, 7, 58, 1000}) {
    for (int64_t sample = 0; sample < 200; ++sample) {
      const int64_t k = draw_template(42, 3, 17, sample, pool);
      EXPECT_GE(k, 0);
      EXPECT_LT(k, pool);
      EXPECT_EQ(k, draw_template(42, 3, 17, sample, pool));
    }
  }
  EXPECT_THROW(draw_template(42, 0, 0, 0, 0), starft::Error);
}

TEST(DrawTemplate, DependsOnEveryCounterButNotOnTheRankSplit) {
  // Each argument changes the draw for most samples.
  auto differs = [](auto change) {
    int differ = 0;
    for (int64_t s = 0; s < 1000; ++s) differ += draw_template(1, 2, 3, s, 58) != change(s);
    return differ;
  };
  EXPECT_GT(differs([](int64_t s) { return draw_template(9, 2, 3, s, 58); }), 950);
  EXPECT_GT(differs([](int64_t s) { return draw_template(1, 5, 3, s, 58); }), 950);
  EXPECT_GT(differs([](int64_t s) { return draw_template(1, 2, 4, s, 58); }), 950);
  EXPECT_GT(differs([](int64_t s) { return draw_template(1, 2, 3, s + 1, 58); }), 950);
  // The global batch drawn by 1 rank equals the union of 3 ranks' slices (drawn in any order).
  std::vector<int64_t> one_rank, three_ranks(48);
  for (int64_t s = 0; s < 48; ++s) one_rank.push_back(draw_template(5, 0, 11, 1000 + s, 54));
  for (int64_t r = 2; r >= 0; --r)
    for (int64_t i = 15; i >= 0; --i) three_ranks[r * 16 + i] = draw_template(5, 0, 11, 1000 + r * 16 + i, 54);
  EXPECT_EQ(one_rank, three_ranks);
}

TEST(DrawTemplate, IsUniform) {
  // Chi-square over 58 templates with 58,000 draws across samples and steps; the draws are a
  // fixed function, so this is a deterministic check (threshold: p = 1e-6 at 57 degrees).
  for (int64_t pool : {58, 3}) {
    SCOPED_TRACE(pool);
    std::vector<int64_t> counts(pool, 0);
    const int64_t per = 1000, n = pool * per;
    for (int64_t i = 0; i < n; ++i) ++counts[draw_template(7, i / 5000, i % 97, i, pool)];
    double chi2 = 0;
    for (int64_t c : counts) chi2 += double(c - per) * double(c - per) / per;
    EXPECT_LT(chi2, pool == 58 ? 120.0 : 28.0);
  }
  // Consecutive epochs agree only as often as chance says (1/58).
  int same = 0;
  for (int64_t s = 0; s < 58000; ++s) same += draw_template(7, 0, 0, s, 58) == draw_template(7, 1, 0, s, 58);
  EXPECT_NEAR(same / 58000.0, 1.0 / 58, 0.004);
}

TEST(LoadTemplates, AcceptsAByteOrderMarkAndCrlfLineEnds) {
  TempDir dir;
  const std::string path = dir / "windows.txt";
  write_file(path,
             "\xEF\xBB\xBF"
             "{} on the moon.\r\n# comment\r\n{} under the sea.\r\n");
  EXPECT_EQ(load_templates(path), (std::vector<std::string>{"{} on the moon.", "{} under the sea."}));
}

TEST(LoadTemplates, AGitLfsPointerIsRefusedNamingTheFileAndGitLfsPull) {
  TempDir dir;
  const std::string path = dir / "mine.txt";
  write_file(path,
             "version https://git-lfs.github.com/spec/v1\n"
             "oid sha256:4d7a2146e1d3c5a8f0b9e6a3c2d1f0e9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3\n"
             "size 15\n");
  const std::string msg = error_of([&] { load_templates(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("git lfs pull --include \"mine.txt\""), std::string::npos) << msg;
}
