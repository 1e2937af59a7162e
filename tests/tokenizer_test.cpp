// The CLIP tokenizer against the reference ids, the Hugging Face file pair, truncation,
// padding, decoding, clean-up, error reporting and the `starft tokenize` command.
#include "clip/tokenizer.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "test_util.h"

namespace starft::clip {
namespace {

using starft::testing::fixture;
using starft::testing::error_of;
using starft::testing::read_file;
using starft::testing::TempDir;
using starft::testing::write_file;

struct Case {
  std::string text;
  std::vector<int64_t> ids;
};

std::string gz_path() { return fixture("clip/bpe_simple_vocab_16e6.txt.gz"); }

std::vector<Case> reference_cases(int* context = nullptr) {
  std::ifstream in(fixture("clip/tokenizer_reference.json"));
  const auto j = nlohmann::json::parse(in);
  if (context) *context = j.at("context_length").get<int>();
  std::vector<Case> cases;
  for (const auto& c : j.at("cases"))
    cases.push_back({c.at("text").get<std::string>(), c.at("ids").get<std::vector<int64_t>>()});
  return cases;
}

// One tokenizer for the whole suite: loading takes a fraction of a second.
const Tokenizer& gz_tokenizer() {
  static const Tokenizer tokenizer = Tokenizer::from_bpe_merges(gz_path());
  return tokenizer;
}

std::string gunzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  EXPECT_NE(f, nullptr);
  std::string data;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) data.append(buf, static_cast<size_t>(n));
  gzclose(f);
  return data;
}

TEST(Tokenizer, MatchesEveryReferenceCase) {
  int context = 0;
  const auto cases = reference_cases(&context);
  ASSERT_EQ(context, kContextLength);
  ASSERT_FALSE(cases.empty());
  const auto& tok = gz_tokenizer();
  for (const auto& c : cases) {
    EXPECT_EQ(tok.tokenize(c.text, context), c.ids) << "text: " << c.text;
    if (c.ids.size() < static_cast<size_t>(context)) {
      // not truncated: encode() is the same ids without the start and end tokens
      EXPECT_EQ(tok.encode(c.text), std::vector<int64_t>(c.ids.begin() + 1, c.ids.end() - 1)) << c.text;
    }
  }
}

TEST(Tokenizer, VocabularyLayout) {
  const auto& tok = gz_tokenizer();
  EXPECT_EQ(tok.vocab_size(), 49408);
  EXPECT_EQ(tok.sot(), 49406);
  EXPECT_EQ(tok.eot(), 49407);
  EXPECT_EQ(tok.token(0), "!");
  EXPECT_EQ(tok.token(256), "!</w>");
  EXPECT_EQ(tok.token(320), "a</w>");
  EXPECT_EQ(tok.token(1125), "photo</w>");
  EXPECT_EQ(tok.token(49406), "<|startoftext|>");
  EXPECT_EQ(tok.token(49407), "<|endoftext|>");
  // byte 0x00 is not printable: it is the first symbol after the 188 printable bytes, U+0100
  EXPECT_EQ(tok.token(188), "\xC4\x80");
  EXPECT_EQ(tok.encode("a photo of a tench."), (std::vector<int64_t>{320, 1125, 539, 320, 1149, 634, 269}));
  EXPECT_THROW(tok.token(49408), starft::Error);
  EXPECT_THROW(tok.token(-1), starft::Error);
}

TEST(Tokenizer, HuggingFaceFilesGiveIdenticalIds) {
  const auto& gz = gz_tokenizer();
  TempDir dir;
  gz.save_hf(dir.path().string());
  // Rewrite vocab.json with its keys in alphabetical order, so only the ids (not the order of
  // the entries) can give the right answer, as in published vocab.json files.
  const std::string saved = read_file(dir / "vocab.json");
  const auto vocab = nlohmann::json::parse(saved);  // std::map: keys sorted
  ASSERT_EQ(vocab.size(), 49408u);
  EXPECT_EQ(vocab.at("a</w>").get<int>(), 320);
  EXPECT_EQ(vocab.at("<|endoftext|>").get<int>(), 49407);
  bool id_order = true;  // does the sorted file still list the ids in increasing order?
  int64_t previous = -1;
  for (const auto& [token, id] : vocab.items()) {
    id_order = id_order && id.get<int64_t>() > previous;
    previous = id.get<int64_t>();
  }
  EXPECT_FALSE(id_order);
  write_file(dir / "vocab.json", vocab.dump());
  const std::string merges = read_file(dir / "merges.txt");
  EXPECT_EQ(merges.rfind("#version: 0.2\n", 0), 0u);
  // the merges are the gz file's lines 1..48894, verbatim
  const std::string gz_text = gunzip(gz_path());
  const size_t header_end = gz_text.find('\n') + 1;
  EXPECT_EQ(merges.substr(14), gz_text.substr(header_end, merges.size() - 14));
  EXPECT_EQ(std::count(merges.begin(), merges.end(), '\n'), 48895);

  const Tokenizer hf = Tokenizer::from_hf(dir / "vocab.json", dir / "merges.txt");
  const Tokenizer by_dir = Tokenizer::load(dir.path().string());
  const Tokenizer by_json = Tokenizer::load(dir / "vocab.json");
  EXPECT_EQ(hf.vocab_size(), 49408);
  EXPECT_EQ(hf.sot(), 49406);
  EXPECT_EQ(hf.eot(), 49407);
  for (const auto& c : reference_cases()) {
    EXPECT_EQ(hf.tokenize(c.text), c.ids) << c.text;
    EXPECT_EQ(by_dir.tokenize(c.text), c.ids) << c.text;
    EXPECT_EQ(by_json.tokenize(c.text), c.ids) << c.text;
  }
  for (const char* text : {"Ünïcödé &amp; ΟΔΟΣ", "x'rex it's 1e-5", "<|endoftext|> <|startoftext|>"})
    EXPECT_EQ(hf.encode(text), gz.encode(text)) << text;
}

TEST(Tokenizer, TruncationKeepsEndTokenLast) {
  const auto& tok = gz_tokenizer();
  std::string text;
  for (int i = 0; i < 200; ++i) text += "word" + std::to_string(i) + " ";
  const auto full = tok.encode(text);
  ASSERT_GT(full.size(), 100u);
  const auto ids = tok.tokenize(text);
  ASSERT_EQ(ids.size(), 77u);
  EXPECT_EQ(ids.front(), tok.sot());
  EXPECT_EQ(ids.back(), tok.eot());
  EXPECT_EQ(std::vector<int64_t>(ids.begin() + 1, ids.end() - 1),
            std::vector<int64_t>(full.begin(), full.begin() + 75));
  const auto short_ids = tok.tokenize(text, 10);
  ASSERT_EQ(short_ids.size(), 10u);
  EXPECT_EQ(short_ids.back(), tok.eot());
  EXPECT_EQ(std::vector<int64_t>(short_ids.begin(), short_ids.end() - 1),
            std::vector<int64_t>(ids.begin(), ids.begin() + 9));
  // exactly 75 ids of text fit without a cut; 76 are cut to 75 + end token
  std::string fits;
  for (int i = 0; i < 75; ++i) fits += "a ";
  EXPECT_EQ(tok.tokenize(fits).size(), 77u);
  EXPECT_EQ(tok.tokenize(fits)[76], tok.eot());
  EXPECT_EQ(tok.tokenize(fits)[75], 320);
  EXPECT_EQ(tok.tokenize(fits + "b")[75], 320);
  EXPECT_EQ(tok.tokenize(fits + "b")[76], tok.eot());
  EXPECT_THROW(tok.tokenize("a", 1), starft::Error);
}

TEST(Tokenizer, BatchIsZeroPadded) {
  const auto& tok = gz_tokenizer();
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "very ";
  const std::vector<std::string> texts{"a photo of a dog.", "", long_text};
  const auto batch = tok.tokenize_batch(texts);
  ASSERT_EQ(batch.dtype(), torch::kInt64);
  ASSERT_EQ(batch.sizes(), (std::vector<int64_t>{3, 77}));
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto ids = tok.tokenize(texts[i]);
    auto expected = torch::zeros({77}, torch::kInt64);
    expected.narrow(0, 0, static_cast<int64_t>(ids.size())).copy_(torch::tensor(ids, torch::kInt64));
    EXPECT_TRUE(torch::equal(batch[static_cast<int64_t>(i)], expected)) << "row " << i;
  }
  EXPECT_EQ(batch[1][0].item<int64_t>(), tok.sot());
  EXPECT_EQ(batch[1][1].item<int64_t>(), tok.eot());
  EXPECT_EQ(batch[1].slice(0, 2).abs().sum().item<int64_t>(), 0);
  EXPECT_EQ(batch[2][76].item<int64_t>(), tok.eot());
  EXPECT_EQ(tok.tokenize_batch(texts, 16).sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_EQ(tok.tokenize_batch({}).sizes(), (std::vector<int64_t>{0, 77}));
}

TEST(Tokenizer, Decode) {
  const auto& tok = gz_tokenizer();
  EXPECT_EQ(tok.decode(tok.encode("A Photo of a Tench.")), "a photo of a tench . ");
  EXPECT_EQ(tok.decode(tok.encode("café 北京")), "café 北京 ");
  EXPECT_EQ(tok.decode({tok.sot(), 320, tok.eot()}), "<|startoftext|>a <|endoftext|>");
  // a lone byte of a multi-byte character decodes to U+FFFD, as the reference's errors="replace"
  int64_t byte_c3 = -1;
  for (int64_t id = 0; id < 256; ++id)
    if (tok.token(id) == "\xC3\x83") byte_c3 = id;  // the symbol of byte 0xC3 is U+00C3
  ASSERT_GE(byte_c3, 0);
  EXPECT_EQ(tok.decode({byte_c3}), "\xEF\xBF\xBD");
  EXPECT_THROW(tok.decode({49408}), starft::Error);
}

TEST(Tokenizer, CleanUpAsTheReference) {
  EXPECT_EQ(clean_text("  A&amp;amp;B &lt;tag&gt; &#39;x&#x27; \t\n Ünï&nbsp;Côdé  "), "a&b <tag> 'x' ünï côdé");
  EXPECT_EQ(clean_text("&ampx; &copy2024 &#128; &#0; &#x110000; &#; &unknown;"),
            "&x; \xC2\xA9"
            "2024 \xE2\x82\xAC \xEF\xBF\xBD \xEF\xBF\xBD &#; &unknown;");
  EXPECT_EQ(clean_text("ΟΔΟΣ ΑΣ."), "οδος ας.");          // final sigma
  EXPECT_EQ(clean_text("İstanbul"), "i\xCC\x87stanbul");  // full lower-case mapping
  EXPECT_EQ(clean_text("cafe\xCC\x81"), "caf\xC3\xA9");   // NFC
  EXPECT_EQ(clean_text("don\xE2\x80\x99t \xE2\x80\x9Cquoted\xE2\x80\x9D"), "don't \"quoted\"");
  EXPECT_EQ(clean_text("\xEF\xAC\x81ne \xEF\xBC\xA1\xEF\xBC\xA2\xEF\xBC\xA3"), "fine abc");  // ligature, full width
  EXPECT_EQ(clean_text("a\xE3\x80\x80"
                       "b\xC2\xA0"
                       "c\xE2\x80\xA8"
                       "d\x1c"
                       "e\x07"
                       "f"),
            "a b c def");
  EXPECT_EQ(clean_text("bad \xFF byte \xE4\xB8"), "bad \xEF\xBF\xBD byte \xEF\xBF\xBD");
  const auto& tok = gz_tokenizer();
  EXPECT_EQ(tok.encode("don\xE2\x80\x99t"), tok.encode("don't"));
}

TEST(Tokenizer, PreTokenisation) {
  EXPECT_EQ(pretokenize("don't 'll'd 12ab3 !!?? <|endoftext|>x it's"),
            (std::vector<std::string>{"don", "'t", "'ll", "'d", "1", "2", "ab", "3", "!!??", "<|endoftext|>", "x", "it",
                                      "'s"}));
  EXPECT_EQ(pretokenize("x'rex ''s !<|endoftext|>"),
            (std::vector<std::string>{"x", "'re", "x", "''", "s", "!<|", "endoftext", "|>"}));
  // Unicode letter and number classes; marks are "other symbols"
  EXPECT_EQ(pretokenize("北京 москва ٣½ e\xCC\x81"),
            (std::vector<std::string>{"北京", "москва", "٣", "½", "e", "\xCC\x81"}));
  const auto& tok = gz_tokenizer();
  EXPECT_EQ(tok.encode("<|endoftext|>"), (std::vector<int64_t>{49407}));
  EXPECT_EQ(tok.encode("<|STARTOFTEXT|>"), (std::vector<int64_t>{49406}));
}

// The reference's bytes_to_unicode, as UTF-8: printable bytes stand for themselves, the other 68
// become U+0100.. in byte order.
std::string byte_symbol(unsigned char b) {
  auto printable = [](int c) { return (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF); };
  int code = b;
  if (!printable(b)) {
    code = 256;
    for (int c = 0; c < b; ++c) code += printable(c) ? 0 : 1;
  }
  if (code < 0x80) return std::string(1, static_cast<char>(code));
  return {static_cast<char>(0xC0 | (code >> 6)), static_cast<char>(0x80 | (code & 0x3F))};
}

// The reference's bpe() (open_clip's SimpleTokenizer.bpe) on token strings, transcribed as it
// is: the byte symbols of `word` (the last with `</w>`), merged by rank until no pair has one.
std::vector<std::string> reference_bpe(const std::string& word,
                                       const std::unordered_map<std::string, int>& rank_of /* "a b" -> rank */) {
  std::vector<std::string> symbols;
  for (unsigned char b : word) symbols.push_back(byte_symbol(b));
  symbols.back() += "</w>";
  while (symbols.size() > 1) {
    int best = -1;
    std::string first, second;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = rank_of.find(symbols[i] + " " + symbols[i + 1]);
      if (it != rank_of.end() && (best < 0 || it->second < best)) {
        best = it->second;
        first = symbols[i];
        second = symbols[i + 1];
      }
    }
    if (best < 0) break;
    std::vector<std::string> merged;
    for (size_t i = 0; i < symbols.size();) {
      if (symbols[i] == first && i + 1 < symbols.size() && symbols[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(symbols[i++]);
      }
    }
    symbols.swap(merged);
  }
  return symbols;
}

// Words long enough for the heap BPE (more than 12 bytes) and short ones, against the reference.
TEST(Tokenizer, WordsOfEveryLengthMatchTheReferenceBpe) {
  const auto& tok = gz_tokenizer();
  std::unordered_map<std::string, int> rank_of;
  {
    const std::string text = gunzip(gz_path());
    std::istringstream lines(text);
    std::string line;
    std::getline(lines, line);  // the version line
    for (int rank = 0; rank < 49152 - 256 - 2 && std::getline(lines, line); ++rank) rank_of[line] = rank;
  }
  std::unordered_map<std::string, int64_t> id_of;
  for (int64_t id = 0; id < tok.vocab_size(); ++id) id_of.emplace(tok.token(id), id);

  std::mt19937 rng(14);
  const std::vector<std::vector<std::string>> alphabets = {
      {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m",
       "n", "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z"},
      {"a", "a", "b"},
      {"e", "t", "a", "o", "i", "n", "s", "h", "r"},
      {"д", "о", "м", "а", "с", "к", "в"},
      {"!", "?", ".", "-", "#", "~"}};
  int words = 0;
  for (int round = 0; round < 400; ++round) {
    const auto& alphabet = alphabets[static_cast<size_t>(round) % alphabets.size()];
    const size_t length = round < 395 ? 1 + static_cast<size_t>(round) / 2 : 1500;  // letters, not bytes
    std::string word;
    for (size_t i = 0; i < length; ++i) word += alphabet[rng() % alphabet.size()];
    ASSERT_EQ(pretokenize(clean_text(word)), std::vector<std::string>{word});  // one pre-token
    std::vector<int64_t> expected;
    for (const std::string& symbol : reference_bpe(word, rank_of)) expected.push_back(id_of.at(symbol));
    EXPECT_EQ(tok.encode(word), expected) << word.size() << " bytes: " << word;
    ++words;
  }
  EXPECT_EQ(words, 400);
}

// Found with tests/fuzz's tokenizer target: the reference's BPE scans the word once per merge, so
// a 64 KB word of letters (the fuzzer's longest input) took 2 s, and 10.8 s under the sanitizers,
// past the fuzzer's 10 s hang limit.
TEST(Tokenizer, LongWordsAreNotQuadratic) {
  const Tokenizer tok = Tokenizer::from_bpe_merges(gz_path());  // fresh, empty cache
  std::mt19937 rng(64);
  std::string word;
  for (int i = 0; i < (1 << 20); ++i) word += static_cast<char>('a' + rng() % 26);
  const auto started = std::chrono::steady_clock::now();
  const auto ids = tok.encode(word);  // the quadratic scan: about 8 minutes
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(tok.decode(ids), word + " ");
  EXPECT_LT(ids.size(), word.size() * 2 / 3);  // merged: about 1.8 letters a token
  EXPECT_LT(seconds, 30.0) << "a 1 MB word";
}

TEST(Tokenizer, ConcurrentUseGivesTheSameIds) {
  const Tokenizer tok = Tokenizer::from_bpe_merges(gz_path());  // fresh, empty cache
  const auto cases = reference_cases();
  std::vector<std::vector<std::vector<int64_t>>> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round)
        for (const auto& c : cases) results[t].push_back(tok.tokenize(c.text));
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& r : results) {
    ASSERT_EQ(r.size(), 20 * cases.size());
    for (size_t i = 0; i < r.size(); ++i) EXPECT_EQ(r[i], cases[i % cases.size()].ids);
  }
}

TEST(TokenizerErrors, MissingFilesNameThePath) {
  TempDir dir;
  const std::string missing = dir / "no_such_vocab.txt.gz";
  EXPECT_NE(error_of([&] { Tokenizer::load(missing); }).find(missing), std::string::npos);
  EXPECT_NE(error_of([&] { Tokenizer::from_bpe_merges(missing); }).find(missing), std::string::npos);
  // a Hugging Face directory without merges.txt
  write_file(dir / "vocab.json", "{\"a\": 0}");
  const std::string merges = dir / "merges.txt";
  EXPECT_NE(error_of([&] { Tokenizer::load(dir.path().string()); }).find(merges), std::string::npos);
}

TEST(TokenizerErrors, MalformedFilesNameThePath) {
  TempDir dir;
  // not a merges file at all
  const std::string text = dir / "notes.txt";
  write_file(text, "#version: 0.2\nthis line has four fields\n");
  auto msg = error_of([&] { Tokenizer::from_bpe_merges(text); });
  EXPECT_NE(msg.find(text), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 2"), std::string::npos) << msg;

  // a merges file with too few merges
  const std::string gz_text = gunzip(gz_path());
  const std::string few = dir / "few.txt";
  write_file(few, gz_text.substr(0, gz_text.find('\n', 5000) + 1));
  msg = error_of([&] { Tokenizer::from_bpe_merges(few); });
  EXPECT_NE(msg.find(few), std::string::npos) << msg;
  EXPECT_NE(msg.find("48894"), std::string::npos) << msg;

  // the plain (gunzipped) file is accepted and gives the same ids
  const std::string plain = dir / "plain.txt";
  write_file(plain, gz_text);
  EXPECT_EQ(Tokenizer::from_bpe_merges(plain).encode("a photo of a tench."),
            gz_tokenizer().encode("a photo of a tench."));

  // a truncated gzip file
  const std::string gz_bytes = read_file(gz_path());
  const std::string cut = dir / "cut.txt.gz";
  write_file(cut, gz_bytes.substr(0, gz_bytes.size() / 2));
  msg = error_of([&] { Tokenizer::from_bpe_merges(cut); });
  EXPECT_NE(msg.find(cut), std::string::npos) << msg;

  // Hugging Face pair: bad JSON, bad ids, a merge of unknown symbols
  gz_tokenizer().save_hf(dir.path().string());
  const std::string vocab = dir / "vocab.json";
  const std::string merges = dir / "merges.txt";
  const std::string good_vocab = read_file(vocab);
  write_file(vocab, good_vocab.substr(0, good_vocab.size() / 2));
  msg = error_of([&] { Tokenizer::from_hf(vocab, merges); });
  EXPECT_NE(msg.find(vocab), std::string::npos) << msg;
  write_file(vocab, "{\"a\": 0, \"b\": 5}");
  msg = error_of([&] { Tokenizer::from_hf(vocab, merges); });
  EXPECT_NE(msg.find(vocab), std::string::npos) << msg;
  auto v = nlohmann::json::parse(good_vocab);
  v.erase("photo</w>");
  v["zzz-not-a-merge"] = 1125;
  write_file(vocab, v.dump());
  msg = error_of([&] { Tokenizer::from_hf(vocab, merges); });
  EXPECT_NE(msg.find("photo</w>"), std::string::npos) << msg;
  EXPECT_NE(msg.find(vocab), std::string::npos) << msg;
}

// ---- the command ----

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::vector<std::vector<int64_t>> parse_lines(const std::string& output) {
  std::vector<std::vector<int64_t>> rows;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) rows.push_back(nlohmann::json::parse(line).get<std::vector<int64_t>>());
  return rows;
}

TEST(TokenizeCommand, PrintsTheReferenceIds) {
  TempDir dir;
  const auto cases = reference_cases();
  std::string input;
  for (const auto& c : cases) {
    std::string line = c.text;
    std::replace(line.begin(), line.end(), '\n', ' ');  // whitespace either way
    input += line + "\n";
  }
  write_file(dir / "texts.txt", input);
  const std::string base = starft::testing::starft_binary() + " tokenize --vocab " + shell_quote(gz_path());
  std::string out;
  // stdout only: the log (stderr) may warn about the processor, as on machines OpenBLAS does not know
  ASSERT_EQ(
      starft::testing::run_command("{ " + base + " < " + shell_quote(dir / "texts.txt") + " 2>/dev/null; }", &out), 0)
      << out;
  const auto rows = parse_lines(out);
  ASSERT_EQ(rows.size(), cases.size()) << out;
  for (size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(rows[i], cases[i].ids) << cases[i].text;

  ASSERT_EQ(starft::testing::run_command(
                "{ " + base + " --context 5 < " + shell_quote(dir / "texts.txt") + " 2>/dev/null; }", &out),
            0)
      << out;
  const auto short_rows = parse_lines(out);
  ASSERT_EQ(short_rows.size(), cases.size());
  EXPECT_EQ(short_rows[0], (std::vector<int64_t>{49406, 320, 1125, 539, 49407}));
}

TEST(TokenizeCommand, HelpAndErrors) {
  const std::string bin = starft::testing::starft_binary();
  std::string out;
  EXPECT_EQ(starft::testing::run_command(bin + " tokenize --help", &out), 0);
  EXPECT_NE(out.find("--vocab"), std::string::npos) << out;
  EXPECT_NE(out.find("--context"), std::string::npos) << out;
  EXPECT_NE(starft::testing::run_command(
                bin + " tokenize --vocab " + shell_quote(gz_path()) + " --context 1 < /dev/null", &out),
            0);
  EXPECT_NE(out.find("--context"), std::string::npos) << out;
  EXPECT_NE(starft::testing::run_command(bin + " tokenize --vocab /nonexistent/vocab.gz < /dev/null", &out), 0);
  EXPECT_NE(out.find("/nonexistent/vocab.gz"), std::string::npos) << out;
  EXPECT_NE(starft::testing::run_command(bin + " tokenize < /dev/null", &out), 0);
  EXPECT_NE(out.find("vocab"), std::string::npos) << out;
}

// --vocab that is a Git LFS pointer (a clone without Git LFS) once read as "a merges file with 2
// merges"; each tokenizer file now names the pointer and `git lfs pull`.
TEST(TokenizerErrors, AGitLfsPointerIsRefusedNamingTheFileAndGitLfsPull) {
  TempDir dir;
  const std::string pointer =
      "version https://git-lfs.github.com/spec/v1\n"
      "oid sha256:4d7a2146e1d3c5a8f0b9e6a3c2d1f0e9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3\n"
      "size 1356917\n";
  const std::string merges = dir / "bpe_simple_vocab_16e6.txt.gz";
  write_file(merges, pointer);
  auto msg = error_of([&] { Tokenizer::load(merges); });
  EXPECT_NE(msg.find(merges), std::string::npos) << msg;
  EXPECT_NE(msg.find("git lfs pull --include \"bpe_simple_vocab_16e6.txt.gz\""), std::string::npos) << msg;
  EXPECT_EQ(msg.find("48894"), std::string::npos) << msg;
  // A Hugging Face folder whose vocab.json, then merges.txt, is the pointer.
  for (const char* name : {"vocab.json", "merges.txt"}) {
    TempDir hf;
    gz_tokenizer().save_hf(hf.path().string());
    write_file(hf / name, pointer);
    msg = error_of([&] { Tokenizer::load(hf.path().string()); });
    EXPECT_NE(msg.find(hf / name), std::string::npos) << msg;
    EXPECT_NE(msg.find("git lfs pull --include \"" + std::string(name) + "\""), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace starft::clip
