#pragma once
// UTF-8 to code points and back, as the CLIP tokenizer's reference (Python) reads text.
#include <string>
#include <string_view>

namespace starft::clip {

// U+FFFD, what an ill-formed UTF-8 sequence decodes to.
constexpr char32_t kReplacement = 0xFFFD;

// Appends code point `c` (<= U+10FFFF) to `out` as UTF-8.
void append_utf8(std::string& out, char32_t c);
std::string to_utf8(std::u32string_view s);
// Decodes UTF-8 as Python's `bytes.decode("utf-8", errors="replace")` does: each maximal
// ill-formed subsequence (a bad lead byte, or a lead byte with the valid continuation bytes
// that follow it) becomes one U+FFFD.
std::u32string from_utf8(std::string_view s);
bool is_ascii(std::u32string_view s);

}  // namespace starft::clip
