// `starft eval` as users run it: alone and under mpirun, WiSE-FT rows, and every request error
// ending the job before any scoring without leaving a report.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "clip/weights.h"
#include "eval_test_store.h"
#include "test_util.h"
#include "tiny_clip.h"
#include "data/templates.h"

using starft::testing::fish_list;
using starft::testing::fish_map;
using starft::testing::fixture;
using starft::testing::read_json;
using starft::testing::run_command;
using starft::testing::starft_binary;
using starft::testing::TempDir;
namespace fs = std::filesystem;

namespace {

std::string common_args() {
  // --model tiny: the architecture of the tiny_clip fixture (tests/tiny_clip.h)
  return " eval --vocab " + fixture("clip/bpe_simple_vocab_16e6.txt.gz") +
         " --templates simple --batch-size 5 --model tiny";
}

// `timeout` turns a hang into exit status 124 instead of a stuck test.
std::string alone(const std::string& args) {
  return "timeout -k 5 300 env OMP_NUM_THREADS=1 " + starft_binary() + common_args() + " " + args;
}

std::string mpirun_eval(int ranks, const std::string& args) {
  return "timeout -k 5 300 env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np " +
         std::to_string(ranks) + " --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 " + starft_binary() +
         common_args() + " " + args;
}

// The counts of one row: per store, per class and per group correct/total.
std::vector<int64_t> counts(const nlohmann::json& row) {
  std::vector<int64_t> out;
  for (const auto& s : row["stores"]) {
    for (const auto& c : s["per_class"]) {
      out.push_back(c["correct"]);
      out.push_back(c["total"]);
    }
    if (s.contains("per_group")) {
      for (const auto& g : s["per_group"]) {
        out.push_back(g["correct"]);
        out.push_back(g["total"]);
      }
    }
  }
  return out;
}

struct EvalScene : starft::testing::EvalStores {
  std::string zeroshot = fixture("clip/tiny_clip_openai.safetensors");
  std::string stores() const {
    return "--class-names " + fish_list() + " --store " + fish + "," + subset + "," + coarse +
           ":class-map=" + fish_map() + " --store " + birds + ":class-names=store:templates=waterbirds --train-store " +
           birds_train;
  }
  // The fixture with every parameter moved a little: a stand-in for a fine-tuned model.
  std::string finetuned() {
    const std::string path = dir / "ckpt/weights.safetensors";
    if (fs::exists(path)) return path;
    fs::create_directories(dir / "ckpt");
    auto model = starft::clip::load_weights(zeroshot, starft::testing::tiny_options());
    torch::manual_seed(7);
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) {
      if (p.numel() > 1) p.add_(0.5 * p.std() * torch::randn_like(p));
    }
    starft::clip::save_weights(model, path);
    return path;
  }
};

}  // namespace

TEST(EvalCommand, HelpDescribesEveryOption) {
  std::string out;
  ASSERT_EQ(run_command(starft_binary() + " eval --help", &out), 0) << out;
  for (const char* o :
       {"--weights", "--store", "--vocab", "--templates", "--class-names", "--class-map", "--train-store",
        "--wise-alphas", "--zeroshot-weights", "--batch-size", "--out", "--workers", "--threads"}) {
    EXPECT_NE(out.find(o), std::string::npos) << o << "\n" << out;
  }
  EXPECT_EQ(out.find("--classnames"), std::string::npos) << "a former name is offered:\n" << out;
}

TEST(EvalCommand, AloneAndUnderMpirunWithThreeRanksGiveIdenticalCounts) {
  EvalScene s;
  std::string out;
  const std::string a = s.dir / "alone", b = s.dir / "three";
  ASSERT_EQ(run_command(alone("--weights " + s.zeroshot + " " + s.stores() + " --out " + a), &out), 0) << out;
  EXPECT_NE(out.find("## Accuracy (%)"), std::string::npos) << out;  // rank 0 prints the table
  ASSERT_EQ(run_command(mpirun_eval(3, "--weights " + s.zeroshot + " " + s.stores() + " --out " + b), &out), 0) << out;
  const auto ja = read_json(a + "/results.json"), jb = read_json(b + "/results.json");
  ASSERT_EQ(ja["rows"].size(), 1u);
  ASSERT_EQ(jb["rows"].size(), 1u);
  EXPECT_EQ(ja["rows"][0]["ranks"], 1);
  EXPECT_EQ(jb["rows"][0]["ranks"], 3);
  EXPECT_EQ(counts(ja["rows"][0]), counts(jb["rows"][0]));
  const auto& stores = ja["rows"][0]["stores"];
  ASSERT_EQ(stores.size(), 4u);
  EXPECT_EQ(stores[0]["matching"], "identity");
  EXPECT_EQ(stores[1]["matching"], "class id");
  EXPECT_EQ(stores[2]["matching"], "class map");
  EXPECT_EQ(stores[3]["name"], "birds");
  EXPECT_EQ(stores[3]["total"], 32);
  EXPECT_TRUE(stores[3]["worst_group_acc"].is_number());
  EXPECT_TRUE(stores[3]["avg_acc_train_weighted"].is_number());
  // The Markdown report: one column per store metric, per-group table for the group store.
  std::ifstream md_in(b + "/results.md");
  std::stringstream md;
  md << md_in.rdbuf();
  EXPECT_NE(md.str().find("| model | fish top-1 | subset top-1 | coarse top-1 | birds top-1 | birds worst group | "
                          "birds avg | birds avg (train-weighted) |"),
            std::string::npos)
      << md.str();
  EXPECT_NE(md.str().find("## birds: accuracy per group (%)"), std::string::npos) << md.str();
  EXPECT_FALSE(fs::exists(b + "/results.json.tmp"));
}

// alpha 0 is the zero-shot model and alpha 1 the fine-tuned one: their rows equal separate
// evaluations of those weights. The fine-tuned weights are given as a checkpoint directory.
TEST(EvalCommand, WiseAlphaZeroAndOneEqualTheTwoModels) {
  EvalScene s;
  const auto ft = s.finetuned();
  const std::string ckpt = fs::path(ft).parent_path().string();
  const std::string stores = "--store " + s.fish + "," + s.birds + " --train-store " + s.birds_train;
  std::string out;
  const std::string w = s.dir / "wise", z = s.dir / "zs", f = s.dir / "ft";
  ASSERT_EQ(run_command(mpirun_eval(2, "--weights " + ckpt + " --zeroshot-weights " + s.zeroshot +
                                           " --wise-alphas 0,0.5,1 " + stores + " --out " + w),
                        &out),
            0)
      << out;
  ASSERT_EQ(run_command(alone("--weights " + s.zeroshot + " " + stores + " --out " + z), &out), 0) << out;
  ASSERT_EQ(run_command(alone("--weights " + ckpt + " " + stores + " --out " + f), &out), 0) << out;
  const auto jw = read_json(w + "/results.json"), jz = read_json(z + "/results.json"),
             jf = read_json(f + "/results.json");
  ASSERT_EQ(jw["rows"].size(), 3u);
  EXPECT_EQ(jw["rows"][0]["model"], "alpha=0");
  EXPECT_EQ(jw["rows"][1]["model"], "alpha=0.5");
  EXPECT_DOUBLE_EQ(jw["rows"][1]["alpha"].get<double>(), 0.5);
  EXPECT_EQ(jf["rows"][0]["model"], "ckpt");
  // Otherwise the equalities below would not tell the two models apart.
  ASSERT_NE(counts(jz["rows"][0]), counts(jf["rows"][0])) << "the perturbed model predicts like the fixture";
  EXPECT_EQ(counts(jw["rows"][0]), counts(jz["rows"][0]));
  EXPECT_EQ(counts(jw["rows"][2]), counts(jf["rows"][0]));
  std::ifstream md_in(w + "/results.md");
  std::stringstream md;
  md << md_in.rdbuf();
  EXPECT_NE(md.str().find("| alpha=0.5 |"), std::string::npos) << md.str();
}

// Each request error ends the job before scoring, with a clear message and no report.
TEST(EvalCommand, RequestErrorsEndTheJobWithoutAReport) {
  EvalScene s;
  const std::string out_dir = s.dir / "out";
  const std::string three_fish = s.dir / "three.txt";
  std::ofstream(three_fish) << "n01440764\ttench\nn01443537\tgoldfish\nn01484850\tgreat white shark\n";
  const std::string partial = s.dir / "partial.tsv";
  std::ofstream(partial) << "shark\tgreat white shark\ttiger shark\n";
  // Another architecture: the tiny shape with one vision layer.
  auto cfg = starft::clip::config_by_name("tiny");
  cfg.vision_layers = 1;
  starft::clip::CLIP other(cfg);
  starft::clip::init_parameters(other, 1);
  const std::string other_path = s.dir / "other.safetensors";
  starft::clip::save_weights(other, other_path);

  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {"--weights " + s.zeroshot + " --class-names " + three_fish + " --store " + s.subset,
       "1 of its 2 classes have no column in the head built from " + three_fish},
      {"--weights " + s.zeroshot + " --class-names " + fish_list() + " --store " + s.coarse + ":class-map=" + partial,
       "no entry for 1 of the 2 classes of the store " + s.coarse + ": 'cyprinid'"},
      {"--weights " + s.zeroshot + " --zeroshot-weights " + other_path + " --wise-alphas 0,1 --store " + s.fish,
       "disagree (vision_layers 1 vs 2)"},  // its starft metadata and --model tiny
      {"--weights " + s.zeroshot + " --wise-alphas 0,1 --store " + s.fish, "--wise-alphas needs --zeroshot-weights"},
      {"--weights " + s.zeroshot + " --zeroshot-weights " + s.zeroshot + " --wise-alphas 0,2 --store " + s.fish,
       "2 lies outside [0, 1]"},
      {"--weights " + (s.dir / "absent.safetensors") + " --store " + s.fish, "absent.safetensors: no such file"},
      {"--weights " + s.zeroshot + " --store " + (s.dir / "nowhere"), "nowhere: no such directory"},
      {"--weights " + s.zeroshot + " --store " + s.fish + " --workers 0", "--workers must be positive, got 0"},
      {"--weights " + s.zeroshot + " --store " + s.fish + " --device tpu", "--device must be cpu, cuda or cuda:N"},
      // The store-spec key's former spelling is refused naming the new one (--classnames is read as
      // --class-names with a warning: EvalCommand.FormerClassnamesOptionIsReadWithAWarning).
      {"--weights " + s.zeroshot + " --store " + s.fish + ":classnames=store", "class-names"},
  };
  for (const auto& c : cases) {
    std::string out;
    const int rc = run_command(alone(c.args + " --out " + out_dir), &out);
    EXPECT_NE(rc, 0) << c.args << "\n" << out;
    EXPECT_NE(out.find(c.message), std::string::npos) << "expected: " << c.message << "\n" << out;
    EXPECT_FALSE(fs::exists(out_dir + "/results.json")) << c.args;
  }
  // Under mpirun every rank stops; the job ends instead of waiting in a collective.
  std::string out;
  const int rc = run_command(mpirun_eval(2, cases[0].args + " --out " + out_dir), &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(rc, 124) << "the job hung:\n" << out;
  EXPECT_NE(out.find(cases[0].message), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(out_dir + "/results.json"));
}

// eval's --classnames (published scripts use it) is read as --class-names, with a warning naming
// it: the same results as the new spelling.
TEST(EvalCommand, FormerClassnamesOptionIsReadWithAWarning) {
  EvalScene s;
  std::string out;
  const std::string a = s.dir / "old", b = s.dir / "new";
  ASSERT_EQ(run_command(alone("--weights " + s.zeroshot + " --classnames " + fish_list() + " --store " + s.fish +
                              " --out " + a),
                        &out),
            0)
      << out;
  EXPECT_NE(out.find("--classnames is deprecated: read as --class-names"), std::string::npos) << out;
  ASSERT_EQ(run_command(alone("--weights " + s.zeroshot + " --class-names " + fish_list() + " --store " + s.fish +
                              " --out " + b),
                        &out),
            0)
      << out;
  const auto old_store = read_json(a + "/results.json")["rows"][0]["stores"][0];
  const auto new_store = read_json(b + "/results.json")["rows"][0]["stores"][0];
  EXPECT_EQ(old_store["per_class"], new_store["per_class"]);  // the same counts (the timings differ)
  EXPECT_EQ(old_store["head"], new_store["head"]);
}

// A rank that fails in the middle of scoring (here: a damaged image that only rank 1 reads) ends
// the whole job: the other rank, waiting in the reduction, is stopped too, and no report appears.
TEST(EvalCommand, RankThatFailsWhileScoringEndsTheJobWithoutAReport) {
  TempDir dir;
  auto layout = starft::testing::fish_layout();
  layout.compression = 1;
  const std::string store = dir / "damaged";
  starft::testing::make_eval_store(store, layout);
  {
    // Sample 1 (shard 0, row 1) belongs to rank 1 of 2: overwrite its compressed chunk.
    const std::string shard = store + "/shard-00000.h5";
    haddr_t address = 0;
    hsize_t size = 0;
    hid_t file = H5Fopen(shard.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    hid_t images = H5Dopen2(file, "images", H5P_DEFAULT);
    ASSERT_GE(images, 0);
    hsize_t offset[4] = {1, 0, 0, 0};
    unsigned filter_mask = 0;
    ASSERT_GE(H5Dget_chunk_info_by_coord(images, offset, &filter_mask, &address, &size), 0);
    H5Dclose(images);
    H5Fclose(file);
    ASSERT_EQ(filter_mask, 0u) << "the chunk must be stored compressed";
    std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(address));
    const std::string garbage(static_cast<size_t>(size), '\x5a');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  const std::string out_dir = dir / "out";
  std::string out;
  const int rc = run_command(mpirun_eval(2, "--weights " + fixture("clip/tiny_clip_openai.safetensors") + " --store " +
                                                store + " --out " + out_dir),
                             &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(rc, 124) << "the job hung:\n" << out;
  EXPECT_NE(out.find("[rank 1] [error]"), std::string::npos) << out;
  EXPECT_NE(out.find("image 1 does not decompress"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(out_dir + "/results.json"));
  EXPECT_FALSE(fs::exists(out_dir + "/results.md"));
}
