#pragma once
// The text clean-up that precedes CLIP's tokenisation, as the reference `SimpleTokenizer`
// (open_clip / OpenAI) does it: basic_clean (ftfy.fix_text, html.unescape twice, strip), then
// whitespace runs to one space, then lower(). What of ftfy is reproduced, and what is not, is
// said in text_clean.cpp.
#include <string>

namespace starft::clip {

// The reference clean-up of UTF-8 `text`: ftfy's character fixes, HTML unescaping twice,
// whitespace runs collapsed to one space and stripped, Unicode lower-casing. Invalid UTF-8
// input bytes become U+FFFD. Returns UTF-8.
std::string clean_text(const std::string& text);

// The same, as code points (what the pre-tokeniser scans).
std::u32string clean_text_code_points(const std::string& text);

// The same clean-up for the common case of ASCII text without '&', in one pass over the bytes
// into `out`. Returns false (leaving `out` unspecified) for any other text.
bool clean_ascii_text(const std::string& text, std::string& out);

}  // namespace starft::clip
