// `starft verify STORE`: reads a whole store and checks it against its checksums (data/verify.h).
// Exit status 0: the store is sound; 1: it is damaged (every problem is listed); 2: usage error.
#include <spdlog/spdlog.h>

#include <cstdio>

#include "cli/command.h"
#include "common/error.h"
#include "data/verify.h"

namespace starft::cli {
namespace {

int run_verify(int argc, char** argv) {
  po::options_description opts("options");
  opts.add_options()("store", po::value<std::string>()->required(), "the store directory (holding manifest.json)");
  po::positional_options_description positional;
  positional.add("store", 1);
  auto vm = parse(argc, argv, opts,
                  "usage: starft verify STORE\n"
                  "Checks manifest.json, every shard and every sample's checksum (a full read of the store).\n"
                  "Exit status: 0 when the store is sound, 1 when it is damaged (each problem names the shard,\n"
                  "the sample and its source file).",
                  &positional);
  if (!vm) return 0;
  const auto dir = (*vm)["store"].as<std::string>();
  const auto report = data::verify_store(dir, [](int64_t done, int64_t all) {
    if (done % 50 == 0 && done < all) spdlog::info("verify: {} of {} shards checked", done, all);
  });
  for (const auto& p : report.problems) spdlog::error("verify {}: {}: {}", dir, data::problem_location(p), p.what);
  for (const auto& note : report.notes) spdlog::warn("verify {}: {}", dir, note);
  if (!report.per_image_checksums)
    spdlog::warn(
        "verify {}: some shards predate per-image checksums: damage there is found per shard, not per "
        "sample (re-run `starft shard` to add them)",
        dir);
  if (!report.coverage.empty()) spdlog::warn("verify {}: {}", dir, report.coverage);
  if (report.sound()) {
    std::printf("%s: sound: %lld samples in %lld shards, every checksum matches%s\n", dir.c_str(),
                static_cast<long long>(report.samples), static_cast<long long>(report.shards),
                report.coverage.empty() ? "" : " (older shards lack some checksums: see the warning above)");
    return 0;
  }
  std::printf(
      "%s: DAMAGED: %zu problem(s) in %lld shards of %lld samples (%lld samples read and checksummed); "
      "copy the named shards again or re-run `starft shard`\n",
      dir.c_str(), report.problems.size(), static_cast<long long>(report.shards),
      static_cast<long long>(report.samples), static_cast<long long>(report.samples_checked));
  return 1;
}

const Registration verify_command("verify", "check a store's manifest, shards and every sample's checksum", run_verify);

}  // namespace
}  // namespace starft::cli
