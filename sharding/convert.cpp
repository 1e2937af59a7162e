#include "sharding/convert.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "common/error.h"
#include "data/image.h"

namespace starft::sharding {

using nlohmann::json;

namespace {

struct Decoded {
  cv::Mat image;       // fitted, [S, S] RGB; empty when the item was unusable
  std::string reason;  // why it was unusable
};

// Decodes and fits items [begin, end) on `threads` threads.
std::vector<Decoded> decode_block(const std::vector<SourceItem>& items, int64_t begin, int64_t end, int size,
                                  int threads) {
  std::vector<Decoded> out(end - begin);
  std::atomic<int64_t> next{begin};
  auto work = [&] {
    for (int64_t i = next++; i < end; i = next++) {
      Decoded& d = out[i - begin];
      try {
        cv::Mat image = items[i].decode();
        if (image.empty()) throw Error("decoder returned no image");
        d.image = data::fit_square(image, size);
      } catch (const std::exception& e) {
        d.image.release();
        d.reason = e.what();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  return out;
}

}  // namespace

ConvertSummary convert(const std::vector<SourceItem>& items, const ConvertOptions& options, ShardComm& comm) {
  const data::Manifest& layout = options.layout;
  check(layout.image_size > 0, "image size must be positive, got ", layout.image_size);
  check(layout.shard_size > 0, "shard size must be positive, got ", layout.shard_size);
  check(!items.empty(), "nothing to convert into ", options.out, ": the source list is empty");
  const int rank = comm.rank(), ranks = comm.size();

  // Rank 0 prepares the directory; the others wait for its word before writing anything.
  std::string prepared;
  if (rank == 0) {
    data::prepare_store_dir(options.out, options.overwrite);
    prepared = "ok";
  }
  if (comm.broadcast(prepared) != "ok") fail("rank 0 could not prepare ", options.out);

  int threads = options.workers;
  if (threads <= 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / comm.local_size());
  const int64_t n = static_cast<int64_t>(items.size());
  const int64_t num_shards = (n + layout.shard_size - 1) / layout.shard_size;
  const int64_t block = std::max<int64_t>(16, 8 * threads);
  if (rank == 0)
    spdlog::info("shard: {} items -> {} shards of {} in {} on {} rank(s) x {} thread(s)", n, num_shards,
                 layout.shard_size, options.out, ranks, threads);

  json mine = json::array();
  int64_t done = 0;
  for (int64_t k = rank; k < num_shards; k += ranks) {
    const std::string file = data::shard_file_name(k);
    data::ShardWriter writer(options.out, file, layout);
    json skipped = json::array();
    const int64_t first = k * layout.shard_size, last = std::min(n, first + layout.shard_size);
    for (int64_t b = first; b < last; b += block) {
      const int64_t e = std::min(last, b + block);
      auto decoded = decode_block(items, b, e, layout.image_size, threads);
      for (int64_t i = b; i < e; ++i) {
        Decoded& d = decoded[i - b];
        const data::SampleMeta& meta = items[i].meta;
        if (d.image.empty()) {
          if (options.strict) fail("image ", meta.source, " is unusable: ", d.reason, " (--strict)");
          spdlog::warn("skipping image {}: {}", meta.source, d.reason);
          skipped.push_back({{"source", meta.source}, {"reason", d.reason}});
          continue;
        }
        writer.add(d.image, meta);
      }
    }
    data::ShardInfo info = writer.finish();
    mine.push_back(
        {{"index", k}, {"file", info.file}, {"count", info.count}, {"checksum", info.checksum}, {"skipped", skipped}});
    ++done;
    if (rank == 0 && (done % 10 == 0 || k + ranks >= num_shards))
      spdlog::info("shard: rank 0 wrote {} of its shards ({} of {} in all)", done, k + 1, num_shards);
  }

  // Rank 0 writes the manifest from everybody's shards, in shard order, then tells the others.
  std::vector<std::string> gathered = comm.gather(mine.dump());
  std::string manifest_text;
  if (rank == 0) {
    std::vector<json> shards;
    for (const auto& text : gathered)
      for (auto& s : json::parse(text)) shards.push_back(s);
    std::sort(shards.begin(), shards.end(),
              [](const json& a, const json& b) { return a.at("index").get<int64_t>() < b.at("index").get<int64_t>(); });
    check(static_cast<int64_t>(shards.size()) == num_shards, "shard: expected ", num_shards, " shards, ranks reported ",
          shards.size());
    data::Manifest manifest = layout;
    manifest.shards.clear();
    manifest.skipped.clear();
    for (const auto& s : shards) {
      for (const auto& sk : s.at("skipped"))
        manifest.skipped.push_back({sk.at("source").get<std::string>(), sk.at("reason").get<std::string>()});
      if (s.at("count").get<int64_t>() == 0) continue;  // every image of this shard was unusable
      manifest.shards.push_back(
          {s.at("file").get<std::string>(), s.at("count").get<int64_t>(), s.at("checksum").get<std::string>()});
    }
    check(manifest.count() > 0, "shard: none of the ", n, " images could be read (first failure: ",
          manifest.skipped.empty() ? "?" : manifest.skipped.front().source + ": " + manifest.skipped.front().reason,
          ")");
    manifest.write(options.out);
    manifest_text = manifest.to_json().dump();
    spdlog::info("shard: {} written: {} samples in {} shards, {} image(s) skipped", options.out, manifest.count(),
                 manifest.shards.size(), manifest.skipped.size());
  }
  manifest_text = comm.broadcast(manifest_text);
  ConvertSummary summary;
  summary.manifest = data::Manifest::from_json(json::parse(manifest_text), options.out);
  summary.written = summary.manifest.count();
  summary.skipped = static_cast<int64_t>(summary.manifest.skipped.size());
  return summary;
}

}  // namespace starft::sharding
