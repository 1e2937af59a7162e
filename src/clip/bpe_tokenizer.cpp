// CLIP's byte-level BPE tokenizer (see bpe_tokenizer.h). The steps follow the reference
// `SimpleTokenizer` (open_clip / OpenAI):
//   text -> basic_clean (ftfy.fix_text, html.unescape twice, strip) -> whitespace runs to one
//   space -> lower() -> pre-tokenisation regex -> per pre-token: UTF-8 bytes to byte symbols,
//   BPE by merge rank, `</w>` on the last symbol -> ids.
#include "clip/bpe_tokenizer.h"

#include <utf8proc.h>
#include <zlib.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cctype>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <shared_mutex>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "clip/text_clean.h"
#include "clip/utf8.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/lfs_pointer.h"
#include "common/text.h"

namespace starft::clip {
namespace {

namespace fs = std::filesystem;

// The reference takes the first 49152 - 256 - 2 merges: 256 byte symbols, 256 with `</w>`,
// the merges, then the two special tokens make 49,408 ids.
constexpr int kNumMerges = 49152 - 256 - 2;
constexpr std::string_view kSotText = "<|startoftext|>";
constexpr std::string_view kEotText = "<|endoftext|>";
constexpr std::string_view kEndOfWord = "</w>";
// Words cached at most (the reference cache is unbounded; a caption corpus has far fewer
// distinct words, so the bound only protects against pathological input).
constexpr size_t kMaxCachedWords = size_t{1} << 20;
// Up to this many bytes a word takes the reference's BPE, one scan of the word per merge; a longer
// one takes a heap of pairs, which is faster from about 12 bytes on (and the only way on a word of
// kilobytes: the scan is quadratic).
constexpr size_t kShortWord = 12;

// ---- pre-tokenisation ----------------------------------------------------------------------
//
// The reference pattern, matched case-insensitively by Python's `regex` module:
//   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// std::regex has no Unicode classes, so this is a hand-written scanner over code points with
// utf8proc's general categories. At each position the alternatives are tried in order; a
// position that none matches (whitespace) is skipped. Two quirks of case-insensitive matching
// are reproduced: U+017F (long s) matches 's', and U+0345 (combining ypogegrammeni, whose
// case variants are letters) is matched by neither class, so it is skipped like whitespace.

bool is_letter(char32_t c) {
  if (c < 0x80) return (c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z');
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
}

bool is_number(char32_t c) {
  if (c < 0x80) return c >= U'0' && c <= U'9';
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO;
}

// `\s` of the `regex` module: the Unicode White_Space property.
bool is_pattern_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_skipped(char32_t c) { return is_pattern_space(c) || c == 0x0345; }

// Case-insensitive match of a code point against a lower-case ASCII letter of the pattern.
bool same_letter(char32_t c, char a) {
  return c == static_cast<char32_t>(a) || c == static_cast<char32_t>(a - 32) || (a == 's' && c == 0x017F) ||
         (a == 'k' && c == 0x212A);
}

template <typename Str>
bool matches_at(const Str& s, size_t i, std::string_view literal) {
  if (s.size() - i < literal.size()) return false;
  for (size_t k = 0; k < literal.size(); ++k) {
    const char a = literal[k];
    const char32_t c = s[i + k];
    if (a >= 'a' && a <= 'z' ? !same_letter(c, a) : c != static_cast<char32_t>(a)) return false;
  }
  return true;
}

// Length of the special-token or contraction match at i, 0 if none.
template <typename Str>
size_t literal_match(const Str& s, size_t i) {
  if (s[i] == U'<') {
    if (matches_at(s, i, kSotText)) return kSotText.size();
    if (matches_at(s, i, kEotText)) return kEotText.size();
    return 0;
  }
  if (s[i] != U'\'') return 0;
  for (std::string_view c : {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}) {
    if (matches_at(s, i, c)) return c.size();
  }
  return 0;
}

// Calls emit(begin, end) for each pre-token of s (code points in a std::u32string, or ASCII
// bytes in a std::string); stops early when emit returns false.
template <typename Str, typename Emit>
void scan(const Str& s, Emit&& emit) {
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    size_t end;
    if (size_t len = literal_match(s, i)) {
      end = i + len;
    } else if (is_letter(s[i])) {
      end = i + 1;
      while (end < n && is_letter(s[end])) ++end;
    } else if (is_number(s[i])) {
      end = i + 1;
    } else if (is_skipped(s[i])) {
      ++i;
      continue;
    } else {
      end = i + 1;
      while (end < n && !is_skipped(s[end]) && !is_letter(s[end]) && !is_number(s[end])) ++end;
    }
    if (!emit(i, end)) return;
    i = end;
  }
}

// ---- byte symbols ------------------------------------------------------------------------

// The reference `bytes_to_unicode`: printable bytes ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF)
// stand for themselves, the other 68 bytes map to U+0100.. in byte order. `order` lists bytes
// in the reference's dict order, which is the order of the first 256 vocabulary entries.
struct ByteSymbols {
  std::array<char32_t, 256> symbol{};
  std::array<uint8_t, 256> order{};
  ByteSymbols() {
    std::array<bool, 256> printable{};
    for (int b = 0; b < 256; ++b)
      printable[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    int k = 0;
    for (int b = 0; b < 256; ++b)
      if (printable[b]) {
        symbol[b] = static_cast<char32_t>(b);
        order[k++] = static_cast<uint8_t>(b);
      }
    char32_t next = 256;
    for (int b = 0; b < 256; ++b)
      if (!printable[b]) {
        symbol[b] = next++;
        order[k++] = static_cast<uint8_t>(b);
      }
  }
};

const ByteSymbols& byte_symbols() {
  static const ByteSymbols table;
  return table;
}

std::string byte_symbol_utf8(uint8_t b) {
  std::string s;
  append_utf8(s, byte_symbols().symbol[b]);
  return s;
}

// ---- files -----------------------------------------------------------------------------------

// Reads a whole file, gunzipping it when it is gzip (zlib reads plain files unchanged). Refuses a
// Git LFS pointer in the file's place.
std::string read_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(what, " '", path, "' does not exist");
  if (fs::is_directory(path, ec)) fail(what, " '", path, "' is a directory, expected a file");
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail(what, " '", path, "': cannot open: ", std::strerror(errno));
  std::string data;
  std::array<char, 1 << 16> buf;
  for (;;) {
    const int n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int code = 0;
      std::string msg = gzerror(f, &code);
      gzclose(f);
      fail(what, " '", path, "': corrupt or truncated gzip data (", msg, ")");
    }
    if (n == 0) break;
    data.append(buf.data(), static_cast<size_t>(n));
  }
  // A gzip stream cut short ends without an error from gzread on some zlib versions, but
  // gzclose reports it.
  const int rc = gzclose(f);
  if (rc != Z_OK) fail(what, " '", path, "': corrupt or truncated gzip data (zlib error ", rc, ")");
  refuse_lfs_pointer(data, what + " '" + path + "'", path, "the file's content");
  return normalize_text(std::move(data));  // BOM, CRLF
}

std::vector<std::string_view> split_lines(std::string_view data) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start <= data.size()) {
    size_t end = data.find('\n', start);
    if (end == std::string_view::npos) end = data.size();
    lines.push_back(data.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// Whitespace-separated fields of a line (Python's str.split()).
std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    size_t j = i;
    while (j < line.size() && !std::isspace(static_cast<unsigned char>(line[j]))) ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

using MergeText = std::pair<std::string, std::string>;

// Merges from lines [first, first + count) of a merges file: two symbols per line.
std::vector<MergeText> parse_merges(const std::vector<std::string_view>& lines, size_t first, size_t count,
                                    const std::string& path) {
  std::vector<MergeText> merges;
  merges.reserve(count);
  for (size_t i = first; i < lines.size() && merges.size() < count; ++i) {
    const auto f = fields(lines[i]);
    if (f.size() != 2) {
      std::string shown(lines[i].substr(0, 60));
      fail("tokenizer merges file '", path, "', line ", i + 1, ": expected two symbols separated by a space, found '",
           shown, "' (is this a CLIP bpe_simple_vocab / merges.txt file?)");
    }
    merges.emplace_back(std::string(f[0]), std::string(f[1]));
  }
  return merges;
}

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

}  // namespace

// ---- the tokenizer ---------------------------------------------------------------------------

struct BpeTokenizer::Impl {
  struct Merge {
    int32_t rank;
    int32_t merged;
  };
  std::string source;                               // the file(s) it was loaded from
  std::vector<std::string> tokens;                  // id -> token string
  std::vector<std::pair<int32_t, int32_t>> merges;  // rank -> the two ids merged
  std::unordered_map<uint64_t, Merge> merge_of;     // (first id, second id) -> rank, merged id
  std::array<int32_t, 256> byte_id{};               // byte -> id of its symbol
  std::array<int32_t, 256> byte_end_id{};           // byte -> id of its symbol + `</w>`
  std::array<int16_t, 512> symbol_byte{};           // byte symbol code point -> byte, -1 if none
  int32_t sot = -1, eot = -1;

  mutable std::shared_mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;  // pre-token -> ids

  // Builds the lookup tables from the token list (id order) and the merges (rank order).
  void index(const std::vector<MergeText>& merge_text);
  // The ids of one pre-token's bytes (not empty), `</w>` on the last symbol.
  std::vector<int32_t> bpe(std::string_view word) const;
  std::vector<int32_t> bpe_long(std::string_view word) const;
  const std::vector<int32_t>& word_ids(const std::string& word, std::vector<int32_t>& scratch) const;
  // Appends the ids of text to out, stopping after the pre-token that reaches `limit` ids.
  void encode_into(const std::string& text, std::vector<int64_t>& out, size_t limit) const;
  // [sot] + ids + [eot], cut to `context` ids with the end token last.
  void tokenize_into(const std::string& text, size_t context, std::vector<int64_t>& ids) const;
};

void BpeTokenizer::Impl::index(const std::vector<MergeText>& merge_text) {
  std::unordered_map<std::string, int32_t> ids;
  ids.reserve(tokens.size() * 2);
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!ids.emplace(tokens[i], static_cast<int32_t>(i)).second)
      fail("tokenizer vocabulary ", source, ": token '", tokens[i], "' appears twice (ids ", ids[tokens[i]], " and ", i,
           ")");
  }
  auto id_of = [&](const std::string& t, const char* role) {
    auto it = ids.find(t);
    if (it == ids.end()) fail("tokenizer vocabulary ", source, ": ", role, " '", t, "' is not in the vocabulary");
    return it->second;
  };
  const auto& bytes = byte_symbols();
  symbol_byte.fill(-1);
  for (int b = 0; b < 256; ++b) {
    const std::string sym = byte_symbol_utf8(static_cast<uint8_t>(b));
    byte_id[b] = id_of(sym, "byte symbol");
    byte_end_id[b] = id_of(sym + std::string(kEndOfWord), "byte symbol");
    symbol_byte[bytes.symbol[b]] = static_cast<int16_t>(b);
  }
  sot = id_of(std::string(kSotText), "start token");
  eot = id_of(std::string(kEotText), "end token");
  merges.clear();
  merges.reserve(merge_text.size());
  merge_of.clear();
  merge_of.reserve(merge_text.size() * 2);
  for (size_t r = 0; r < merge_text.size(); ++r) {
    const auto& [a, b] = merge_text[r];
    const int32_t ia = id_of(a, "merge symbol");
    const int32_t ib = id_of(b, "merge symbol");
    const int32_t merged = id_of(a + b, "merged token");
    merges.emplace_back(ia, ib);
    // a repeated pair takes its last rank, as the reference's dict(zip(merges, ranks)) does
    merge_of[pair_key(ia, ib)] = Merge{static_cast<int32_t>(r), merged};
  }
}

// The reference's BPE: merge the adjacent pair of lowest rank, every occurrence left to right,
// until no adjacent pair has a rank. Done as the reference does it, one scan of the word per
// merge, up to kShortWord bytes; a longer word goes to bpe_long().
std::vector<int32_t> BpeTokenizer::Impl::bpe(std::string_view word) const {
  if (word.size() > kShortWord) return bpe_long(word);
  std::vector<int32_t> symbols(word.size());
  for (size_t i = 0; i < word.size(); ++i) symbols[i] = byte_id[static_cast<uint8_t>(word[i])];
  symbols.back() = byte_end_id[static_cast<uint8_t>(word.back())];
  std::vector<int32_t> next;
  next.reserve(symbols.size());
  while (symbols.size() > 1) {
    // the adjacent pair with the lowest merge rank
    int32_t best_rank = INT32_MAX, first = -1, second = -1, merged = -1;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = merge_of.find(pair_key(symbols[i], symbols[i + 1]));
      if (it != merge_of.end() && it->second.rank < best_rank) {
        best_rank = it->second.rank;
        first = symbols[i];
        second = symbols[i + 1];
        merged = it->second.merged;
      }
    }
    if (merged < 0) break;
    // merge every occurrence, left to right
    next.clear();
    for (size_t i = 0; i < symbols.size();) {
      if (symbols[i] == first && i + 1 < symbols.size() && symbols[i + 1] == second) {
        next.push_back(merged);
        i += 2;
      } else {
        next.push_back(symbols[i]);
        i += 1;
      }
    }
    symbols.swap(next);
  }
  return symbols;
}

// bpe() with a heap of the candidate pairs and a list of the symbols: O(n log n) in the word's n
// bytes where the reference's scan per merge is O(n^2) (a 64 KB word of letters: 14 ms against
// 2 s). The same result: one rank's occurrences are merged in word order, and the pairs those
// merges form are ranked only after the last of them, as the reference's next scan finds them.
std::vector<int32_t> BpeTokenizer::Impl::bpe_long(std::string_view word) const {
  const size_t n = word.size();
  constexpr size_t kNone = SIZE_MAX;
  std::vector<int32_t> symbols(n);  // -1 once merged into the symbol before it
  std::vector<size_t> prev(n), next(n);
  for (size_t i = 0; i < n; ++i) {
    symbols[i] = byte_id[static_cast<uint8_t>(word[i])];
    prev[i] = i == 0 ? kNone : i - 1;
    next[i] = i + 1 < n ? i + 1 : kNone;
  }
  symbols.back() = byte_end_id[static_cast<uint8_t>(word.back())];

  struct Candidate {
    int32_t rank;
    size_t pos;  // the pair of the symbols at pos and next[pos]
  };
  // a min-heap by rank, then by position
  const auto after = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  std::vector<Candidate> heap;
  const auto rank_pair = [&](size_t pos) {
    if (pos == kNone || next[pos] == kNone) return false;
    auto it = merge_of.find(pair_key(symbols[pos], symbols[next[pos]]));
    if (it == merge_of.end()) return false;
    heap.push_back({it->second.rank, pos});
    return true;
  };
  for (size_t i = 0; i + 1 < n; ++i) rank_pair(i);
  std::make_heap(heap.begin(), heap.end(), after);

  std::vector<size_t> merged_at;
  while (!heap.empty()) {
    const int32_t rank = heap.front().rank;
    const auto [first, second] = merges[static_cast<size_t>(rank)];
    const int32_t merged = merge_of.find(pair_key(first, second))->second.merged;
    merged_at.clear();
    while (!heap.empty() && heap.front().rank == rank) {
      const size_t pos = heap.front().pos;
      std::pop_heap(heap.begin(), heap.end(), after);
      heap.pop_back();
      // an entry whose pair has changed since (merged away, or into another symbol) is stale
      if (symbols[pos] != first || next[pos] == kNone || symbols[next[pos]] != second) continue;
      const size_t gone = next[pos];
      symbols[pos] = merged;
      symbols[gone] = -1;
      next[pos] = next[gone];
      if (next[pos] != kNone) prev[next[pos]] = pos;
      merged_at.push_back(pos);
    }
    for (size_t pos : merged_at)
      for (size_t left : {prev[pos], pos})
        if (rank_pair(left)) std::push_heap(heap.begin(), heap.end(), after);
  }
  std::vector<int32_t> out;
  for (size_t i = 0; i != kNone; i = next[i]) out.push_back(symbols[i]);
  return out;
}

const std::vector<int32_t>& BpeTokenizer::Impl::word_ids(const std::string& word, std::vector<int32_t>& scratch) const {
  {
    std::shared_lock lock(cache_mutex);
    auto it = cache.find(word);
    if (it != cache.end()) return it->second;  // entries are never erased or modified
  }
  scratch = bpe(word);
  std::unique_lock lock(cache_mutex);
  if (cache.size() >= kMaxCachedWords) return scratch;
  return cache.emplace(word, scratch).first->second;
}

void BpeTokenizer::Impl::encode_into(const std::string& text, std::vector<int64_t>& out, size_t limit) const {
  std::string word;
  std::vector<int32_t> scratch;
  auto add_word = [&]() {
    // the reference caches the two special tokens as themselves (an exact match only: the
    // pattern also matches them spelled with U+017F, and those go through BPE)
    if (word == kSotText) {
      out.push_back(sot);
    } else if (word == kEotText) {
      out.push_back(eot);
    } else {
      for (int32_t id : word_ids(word, scratch)) out.push_back(id);
    }
    return out.size() < limit;
  };
  std::string ascii;
  if (clean_ascii_text(text, ascii)) {
    scan(ascii, [&](size_t begin, size_t end) {
      word.assign(ascii, begin, end - begin);
      return add_word();
    });
    return;
  }
  const std::u32string cleaned = clean_text_code_points(text);
  scan(cleaned, [&](size_t begin, size_t end) {
    word.clear();
    for (size_t i = begin; i < end; ++i) append_utf8(word, cleaned[i]);
    return add_word();
  });
}

BpeTokenizer::BpeTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpeTokenizer::BpeTokenizer(BpeTokenizer&&) noexcept = default;
BpeTokenizer& BpeTokenizer::operator=(BpeTokenizer&&) noexcept = default;
BpeTokenizer::~BpeTokenizer() = default;

BpeTokenizer BpeTokenizer::load(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  if (fs::is_directory(p, ec)) return from_hf((p / "vocab.json").string(), (p / "merges.txt").string());
  if (p.extension() == ".json") return from_hf(path, (p.parent_path() / "merges.txt").string());
  return from_bpe_merges(path);
}

BpeTokenizer BpeTokenizer::from_bpe_merges(const std::string& merges_path) {
  const std::string data = read_file(merges_path, "tokenizer merges file");
  auto lines = split_lines(data);
  if (!lines.empty() && lines.back().empty()) lines.pop_back();  // the final newline
  // line 0 is the version line; then the merges
  auto merge_text = parse_merges(lines, 1, kNumMerges, merges_path);
  if (merge_text.size() < static_cast<size_t>(kNumMerges))
    fail("tokenizer merges file '", merges_path, "' has ", merge_text.size(), " merges, a CLIP ", "vocabulary needs ",
         kNumMerges, " (truncated file, or not bpe_simple_vocab_16e6.txt.gz?)");
  auto impl = std::make_unique<Impl>();
  impl->source = "'" + merges_path + "'";
  const auto& bytes = byte_symbols();
  impl->tokens.reserve(512 + merge_text.size() + 2);
  for (uint8_t b : bytes.order) impl->tokens.push_back(byte_symbol_utf8(b));
  for (uint8_t b : bytes.order) impl->tokens.push_back(byte_symbol_utf8(b) + std::string(kEndOfWord));
  for (const auto& [a, b] : merge_text) impl->tokens.push_back(a + b);
  impl->tokens.emplace_back(kSotText);
  impl->tokens.emplace_back(kEotText);
  impl->index(merge_text);
  return BpeTokenizer(std::move(impl));
}

BpeTokenizer BpeTokenizer::from_hf(const std::string& vocab_json_path, const std::string& merges_txt_path) {
  const std::string vocab_text = read_file(vocab_json_path, "tokenizer vocab.json");
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(vocab_text);
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer vocab.json '", vocab_json_path, "' is not valid JSON: ", e.what());
  }
  if (!vocab.is_object() || vocab.empty())
    fail("tokenizer vocab.json '", vocab_json_path, "' must be a non-empty JSON object {token: id}");
  auto impl = std::make_unique<Impl>();
  impl->source = "'" + vocab_json_path + "' + '" + merges_txt_path + "'";
  impl->tokens.assign(vocab.size(), std::string());
  std::vector<bool> seen(vocab.size(), false);
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer())
      fail("tokenizer vocab.json '", vocab_json_path, "': the id of token '", token, "' is not an integer");
    const int64_t i = id.get<int64_t>();
    if (i < 0 || i >= static_cast<int64_t>(vocab.size()))
      fail("tokenizer vocab.json '", vocab_json_path, "': id ", i, " of token '", token, "' is outside 0..",
           vocab.size() - 1, " (ids must be dense)");
    if (seen[i]) fail("tokenizer vocab.json '", vocab_json_path, "': id ", i, " is given to two tokens");
    seen[i] = true;
    impl->tokens[i] = token;
  }
  const std::string merges_text = read_file(merges_txt_path, "tokenizer merges.txt");
  const auto lines = split_lines(merges_text);
  // Hugging Face's CLIPTokenizer: strip, skip the `#version` line, take at most kNumMerges.
  size_t first = 0;
  if (!lines.empty() && lines[0].substr(0, 8) == "#version") first = 1;
  size_t last = lines.size();
  while (last > first && fields(lines[last - 1]).empty()) --last;
  const std::vector<std::string_view> used(lines.begin(), lines.begin() + static_cast<std::ptrdiff_t>(last));
  const auto merge_text = parse_merges(used, first, kNumMerges, merges_txt_path);
  impl->index(merge_text);
  return BpeTokenizer(std::move(impl));
}

std::vector<int64_t> BpeTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  impl_->encode_into(text, ids, SIZE_MAX);
  return ids;
}

void check_context(int context) {
  if (context < 2)
    fail("tokenizer: context length ", context, " is too short, it must hold the start and end tokens (>= 2)");
}

void BpeTokenizer::Impl::tokenize_into(const std::string& text, size_t context, std::vector<int64_t>& ids) const {
  ids.assign(1, sot);
  // Pre-tokens past the context are not needed: stop once `context` ids are there.
  encode_into(text, ids, context);
  ids.push_back(eot);
  if (ids.size() > context) {
    ids.resize(context);
    ids.back() = eot;
  }
}

std::vector<int64_t> BpeTokenizer::tokenize(const std::string& text, int context) const {
  check_context(context);
  std::vector<int64_t> ids;
  impl_->tokenize_into(text, static_cast<size_t>(context), ids);
  return ids;
}

void BpeTokenizer::tokenize_rows(const std::vector<std::string>& texts, int context, int64_t* rows) const {
  check_context(context);
  std::vector<int64_t> ids;
  for (const auto& text : texts) {
    impl_->tokenize_into(text, static_cast<size_t>(context), ids);
    std::copy(ids.begin(), ids.end(), rows);
    std::fill(rows + ids.size(), rows + context, int64_t{0});
    rows += context;
  }
}

const std::string& BpeTokenizer::token(int64_t id) const {
  if (id < 0 || id >= vocab_size())
    fail("tokenizer: token id ", id, " is outside the vocabulary (0..", vocab_size() - 1, ")");
  return impl_->tokens[static_cast<size_t>(id)];
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string bytes;
  for (int64_t id : ids) {
    for (char32_t c : from_utf8(token(id))) {
      const int b = c < impl_->symbol_byte.size() ? impl_->symbol_byte[c] : -1;
      if (b < 0) fail("tokenizer: token ", id, " ('", token(id), "') has a character that is not a byte symbol");
      bytes += static_cast<char>(b);
    }
  }
  std::string text = to_utf8(from_utf8(bytes));  // invalid UTF-8 -> U+FFFD
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, kEndOfWord.size(), kEndOfWord) == 0) {
      out += ' ';
      i += kEndOfWord.size();
    } else {
      out += text[i++];
    }
  }
  return out;
}

void BpeTokenizer::save_hf(const std::string& directory) const {
  std::error_code ec;
  fs::create_directories(directory, ec);
  if (ec) fail("cannot create directory '", directory, "': ", ec.message());
  // {token: id} in id order (written by hand: nlohmann's ordered_json inserts in linear time)
  std::string vocab = "{";
  for (size_t i = 0; i < impl_->tokens.size(); ++i) {
    if (i) vocab += ", ";
    vocab += nlohmann::json(impl_->tokens[i]).dump();
    vocab += ": ";
    vocab += std::to_string(i);
  }
  vocab += "}";
  std::string merges = "#version: 0.2\n";
  for (const auto& [a, b] : impl_->merges) {
    merges += impl_->tokens[static_cast<size_t>(a)];
    merges += ' ';
    merges += impl_->tokens[static_cast<size_t>(b)];
    merges += '\n';
  }
  write_file_atomically((fs::path(directory) / "vocab.json").string(), vocab);
  write_file_atomically((fs::path(directory) / "merges.txt").string(), merges);
}

int64_t BpeTokenizer::sot() const { return impl_->sot; }
int64_t BpeTokenizer::eot() const { return impl_->eot; }
int64_t BpeTokenizer::vocab_size() const { return static_cast<int64_t>(impl_->tokens.size()); }

std::vector<std::string> pretokenize(const std::string& cleaned) {
  const std::u32string s = from_utf8(cleaned);
  std::vector<std::string> out;
  scan(s, [&](size_t begin, size_t end) {
    out.push_back(to_utf8(std::u32string_view(s).substr(begin, end - begin)));
    return true;
  });
  return out;
}

}  // namespace starft::clip
