// `starft tokenize`: CLIP token ids of each line on stdin, for checking the tokenizer against
// another implementation from outside the tests.
#include <cstdio>
#include <iostream>
#include <string>

#include "cli/command.h"
#include "clip/tokenizer.h"
#include "common/error.h"

namespace starft::cli {
namespace {

int run_tokenize(int argc, char** argv) {
  po::options_description opts("options");
  opts.add_options()("vocab", po::value<std::string>()->required(),
                     "BPE vocabulary: bpe_simple_vocab_16e6.txt.gz (gzip or plain), or a Hugging Face "
                     "tokenizer directory / vocab.json with merges.txt beside it")(
      "context", po::value<int>()->default_value(clip::kContextLength),
      "context length: longer texts are cut to this many ids with the end token kept last (>= 2)");
  auto vm = parse(argc, argv, opts,
                  "usage: starft tokenize --vocab FILE [--context 77] < texts.txt\n"
                  "Prints one JSON array of token ids per input line (start and end tokens included,\n"
                  "no padding).");
  if (!vm) return 0;
  const int context = (*vm)["context"].as<int>();
  check(context >= 2, "--context must be at least 2 (the start and end tokens), got ", context);
  const auto tokenizer = clip::Tokenizer::load((*vm)["vocab"].as<std::string>());
  std::string line, out;
  while (std::getline(std::cin, line)) {
    out = "[";
    for (int64_t id : tokenizer.tokenize(line, context)) {
      if (out.size() > 1) out += ',';
      out += std::to_string(id);
    }
    out += "]\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  if (std::fflush(stdout) != 0) fail("starft tokenize: cannot write to stdout");
  return 0;
}

const Registration tokenize_command("tokenize", "print the CLIP token ids of each stdin line as a JSON array",
                                    run_tokenize);

}  // namespace
}  // namespace starft::cli
