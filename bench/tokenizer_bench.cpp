// Tokenizer throughput: 100,000 generated prompts "a photo of a {class} {spurious phrase}."
// tokenised to [N, 77] with a cold word cache (a freshly loaded tokenizer), then again with the
// cache warm, side by side in one run. A third pool puts a made-up word in every prompt, so one
// word in ten misses the cache: the cost of BPE itself.
//
//   build-tok/bench/tokenizer_bench [--vocab PATH] [--prompts N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "clip/tokenizer.h"
#include "starft/build_config.h"
#include "bench_main.h"

namespace {

using Clock = std::chrono::steady_clock;
using starft::bench::seconds_since;

// Class names: adjective + noun combinations, so the pool has thousands of distinct words and
// word pairs, as a fine-tuning prompt pool does.
std::vector<std::string> make_classes() {
  const char* adjectives[] = {"black",      "white",  "spotted", "striped",     "small",    "large",    "wild",
                              "red-tailed", "grey",   "brown",   "golden",      "northern", "southern", "common",
                              "great",      "lesser", "crested", "long-billed", "pied",     "mountain"};
  const char* nouns[] = {"heron",
                         "gull",
                         "albatross",
                         "warbler",
                         "sparrow",
                         "tern",
                         "pelican",
                         "cormorant",
                         "kingfisher",
                         "woodpecker",
                         "flycatcher",
                         "grebe",
                         "puffin",
                         "jay",
                         "wren",
                         "oriole",
                         "tanager",
                         "vireo",
                         "cuckoo",
                         "swallow",
                         "retriever",
                         "terrier",
                         "tabby cat",
                         "tench",
                         "goldfish",
                         "shark",
                         "hammerhead",
                         "stingray",
                         "rooster",
                         "ostrich",
                         "goldfinch",
                         "house finch",
                         "junco",
                         "bunting",
                         "robin",
                         "bulbul",
                         "magpie",
                         "chickadee",
                         "dipper",
                         "kite",
                         "eagle",
                         "vulture",
                         "owl",
                         "newt",
                         "salamander",
                         "bullfrog",
                         "loggerhead turtle",
                         "leatherback turtle",
                         "mud turtle",
                         "terrapin"};
  std::vector<std::string> classes;
  for (const char* a : adjectives)
    for (const char* n : nouns) classes.push_back(std::string(a) + " " + n);
  return classes;
}

// A pronounceable made-up word of 2-4 syllables (nearly all distinct: cache misses).
std::string made_up_word(std::mt19937& rng) {
  const char* syllables[] = {"ka",  "lo",  "mir", "tse", "vun", "dra", "pel", "qui", "zor", "bex",
                             "fal", "gri", "hom", "jat", "nus", "ris", "sol", "tav", "wen", "yul"};
  std::string w;
  const int n = 2 + static_cast<int>(rng() % 3);
  for (int i = 0; i < n; ++i) w += syllables[rng() % 20];
  return w;
}

std::vector<std::string> make_spurious() {
  return {"in the snow",
          "on the beach",
          "in a bamboo forest",
          "over the ocean",
          "on a lake",
          "in a city street",
          "on green grass",
          "in the desert",
          "at night",
          "in heavy rain",
          "on a wooden table",
          "in a cage",
          "next to a person",
          "on a black background",
          "with a blurry background",
          "in a photo taken in 2019",
          "in a painting",
          "as a sketch",
          "in a cartoon",
          "seen from above",
          "in front of a red wall",
          "under water",
          "in a field of flowers",
          "near a waterfall",
          "in the fog",
          "on a snowy mountain",
          "in a kitchen",
          "in a parking lot",
          "with a watermark",
          "in low light"};
}

}  // namespace

STARFT_BENCH_MAIN(tokenizer_bench) {
  std::string vocab = std::string(STARFT_FIXTURES_DIR) + "/clip/bpe_simple_vocab_16e6.txt.gz";
  size_t n = 100000;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--vocab") && i + 1 < argc) {
      vocab = argv[++i];
    } else if (!std::strcmp(argv[i], "--prompts") && i + 1 < argc) {
      n = std::strtoul(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: tokenizer_bench [--vocab PATH] [--prompts N]\n");
      return 2;
    }
  }
  try {
    const auto classes = make_classes();
    const auto spurious = make_spurious();
    std::mt19937 rng(0);
    std::vector<std::string> prompts;
    prompts.reserve(n);
    size_t words = 0;
    for (size_t i = 0; i < n; ++i) {
      const auto& c = classes[rng() % classes.size()];
      const auto& s = spurious[rng() % spurious.size()];
      prompts.push_back("a photo of a " + c + " " + s + ".");
      for (size_t k = 0; k < prompts.back().size(); ++k)
        if (prompts.back()[k] == ' ') ++words;
      ++words;
    }

    auto t0 = Clock::now();
    const auto tokenizer = starft::clip::Tokenizer::load(vocab);
    const double load_s = seconds_since(t0);

    t0 = Clock::now();
    const auto cold = tokenizer.tokenize_batch(prompts);
    const double cold_s = seconds_since(t0);

    t0 = Clock::now();
    const auto warm = tokenizer.tokenize_batch(prompts);
    const double warm_s = seconds_since(t0);
    if (!torch::equal(cold, warm)) {
      std::fprintf(stderr, "tokenizer_bench: cold and warm results differ\n");
      return 1;
    }

    // every prompt with a made-up word, on a fresh tokenizer
    std::vector<std::string> novel;
    novel.reserve(n);
    size_t novel_words = 0;
    for (size_t i = 0; i < n; ++i) {
      novel.push_back("a photo of a " + made_up_word(rng) + " " + classes[rng() % classes.size()] + " " +
                      spurious[rng() % spurious.size()] + ".");
      for (char ch : novel.back()) novel_words += ch == ' ';
      ++novel_words;
    }
    const auto fresh = starft::clip::Tokenizer::load(vocab);
    t0 = Clock::now();
    const auto novel_ids = fresh.tokenize_batch(novel);
    const double novel_s = seconds_since(t0);

    std::printf("tokenizer_bench: %zu prompts (%zu words, %zu classes x %zu spurious phrases), context %d\n", n, words,
                classes.size(), spurious.size(), starft::clip::kContextLength);
    std::printf("  load vocabulary        %8.3f s\n", load_s);
    std::printf("  tokenise, cold cache   %8.3f s   %10.0f words/s   %9.0f prompts/s\n", cold_s, words / cold_s,
                n / cold_s);
    std::printf("  tokenise, warm cache   %8.3f s   %10.0f words/s   %9.0f prompts/s\n", warm_s, words / warm_s,
                n / warm_s);
    std::printf("  with a made-up word    %8.3f s   %10.0f words/s   %9.0f prompts/s   (%zu words)\n", novel_s,
                novel_words / novel_s, n / novel_s, novel_words);
    std::printf("  cold / warm time ratio %8.2f\n", cold_s / warm_s);
    std::printf("  made-up / warm ratio   %8.2f   (per word)\n", (novel_s / novel_words) / (warm_s / words));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
