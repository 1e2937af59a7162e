// CLIP's text clean-up (see text_clean.h).
#include "clip/text_clean.h"

#include <utf8proc.h>

#include <cstdint>
#include <cstring>
#include <string_view>
#include <unordered_map>

#include "clip/utf8.h"
#include "common/error.h"

namespace starft::clip {
namespace {

// ---- text clean-up -------------------------------------------------------------------------
//
// The reference runs `ftfy.fix_text` first. ftfy is a Python library with no C/C++ port, so this
// reproduces only its default fixes that are plain character mappings:
//   - C1 control characters U+0080..U+009F read as Windows-1252 (fix_c1_controls),
//   - Latin ligatures such as U+FB01 "fi" spelled out (fix_latin_ligatures),
//   - full-width and half-width forms U+FF01..U+FFEF replaced by their NFKC form, U+3000 by a
//     space (fix_character_width),
//   - curly quotes U+02BC, U+2018..U+201B -> ' and U+201C..U+201F -> " (uncurl_quotes),
//   - stray control characters removed (remove_control_chars),
//   - NFC normalisation.
// Not reproduced: the repair of mojibake (UTF-8 read as Latin-1/Windows-1252 and similar,
// `fix_encoding`), terminal escape removal, and ftfy's own HTML unescaping pass (which it does
// before the reference's two `html.unescape` calls when the text has no '<'). Text affected by
// those can get different ids than the reference; all other text gets the same ids.

// Windows-1252 for the bytes 0x80..0x9F; the five undefined ones map to themselves (as ftfy's
// "sloppy-windows-1252" and Python's html.unescape both do).
constexpr char32_t kCp1252High[32] = {0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                      0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
                                      0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                      0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

struct Ligature {
  char32_t c;
  const char32_t* spelled;
};
constexpr Ligature kLigatures[] = {
    {0x0132, U"IJ"},      {0x0133, U"ij"}, {0x0149, U"\u02BCn"}, {0x01C4, U"D\u017D"}, {0x01C5, U"D\u017E"},
    {0x01C6, U"d\u017E"}, {0x01C7, U"LJ"}, {0x01C8, U"Lj"},      {0x01C9, U"lj"},      {0x01CA, U"NJ"},
    {0x01CB, U"Nj"},      {0x01CC, U"nj"}, {0x01F1, U"DZ"},      {0x01F2, U"Dz"},      {0x01F3, U"dz"},
    {0xFB00, U"ff"},      {0xFB01, U"fi"}, {0xFB02, U"fl"},      {0xFB03, U"ffi"},     {0xFB04, U"ffl"},
    {0xFB05, U"\u017Ft"}, {0xFB06, U"st"}};

bool is_removed_control(char32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
         c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

// Appends the NFKC form of one full-width or half-width character.
void append_width_fixed(std::u32string& out, char32_t c) {
  std::string utf8;
  append_utf8(utf8, c);
  utf8proc_uint8_t* mapped = utf8proc_NFKC(reinterpret_cast<const utf8proc_uint8_t*>(utf8.c_str()));
  if (!mapped) {
    out += c;
    return;
  }
  out += from_utf8(reinterpret_cast<const char*>(mapped));
  std::free(mapped);
}

std::u32string nfc(const std::u32string& s) {
  const std::string utf8 = to_utf8(s);
  utf8proc_uint8_t* mapped = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(utf8.data()), static_cast<utf8proc_ssize_t>(utf8.size()),
                   &mapped, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) fail("tokenizer: NFC normalisation failed: ", utf8proc_errmsg(n));
  std::u32string out = from_utf8(std::string_view(reinterpret_cast<const char*>(mapped), n));
  std::free(mapped);
  return out;
}

// ftfy's fixes in its order: C1 controls, ligatures, character width, quotes, controls.
std::u32string ftfy_fixes(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  auto uncurl_and_keep = [&out](char32_t c) {
    if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) {
      out += U'\'';
    } else if (c >= 0x201C && c <= 0x201F) {
      out += U'"';
    } else if (!is_removed_control(c)) {
      out += c;
    }
  };
  auto fix_width = [&](char32_t c) {
    if (c == 0x3000) {
      uncurl_and_keep(U' ');
    } else if (c >= 0xFF01 && c <= 0xFFEF) {
      std::u32string wide;
      append_width_fixed(wide, c);
      for (char32_t w : wide) uncurl_and_keep(w);
    } else {
      uncurl_and_keep(c);
    }
  };
  for (char32_t c : s) {
    if (c < 0x80) {
      if (!is_removed_control(c)) out += c;
      continue;
    }
    if (c <= 0x9F) c = kCp1252High[c - 0x80];
    const Ligature* ligature = nullptr;
    for (const auto& l : kLigatures) {
      if (l.c == c) ligature = &l;
    }
    if (ligature) {
      for (const char32_t* p = ligature->spelled; *p; ++p) fix_width(*p);
    } else {
      fix_width(c);
    }
  }
  return is_ascii(out) ? out : nfc(out);
}

// ---- html.unescape ----
// Python's html.unescape: `&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)`. Named
// references: the HTML 4 set (every named reference found in ordinary text) plus &apos; and
// the upper-case legacy forms, with the HTML5 values; the names marked `legacy` are also
// recognised without the ';' and as the longest prefix of a longer name, as the standard says.
// The rest of the 2,231 HTML5 names (&NotNestedLessLess; and the like) stay as they are.
struct Entity {
  const char* name;
  char32_t value;
  bool legacy;
};
constexpr Entity kEntities[] = {
    {"QUOT", 0x22, true},       {"quot", 0x22, true},      {"AMP", 0x26, true},        {"amp", 0x26, true},
    {"apos", 0x27, false},      {"LT", 0x3C, true},        {"lt", 0x3C, true},         {"GT", 0x3E, true},
    {"gt", 0x3E, true},         {"nbsp", 0xA0, true},      {"iexcl", 0xA1, true},      {"cent", 0xA2, true},
    {"pound", 0xA3, true},      {"curren", 0xA4, true},    {"yen", 0xA5, true},        {"brvbar", 0xA6, true},
    {"sect", 0xA7, true},       {"uml", 0xA8, true},       {"COPY", 0xA9, true},       {"copy", 0xA9, true},
    {"ordf", 0xAA, true},       {"laquo", 0xAB, true},     {"not", 0xAC, true},        {"shy", 0xAD, true},
    {"REG", 0xAE, true},        {"reg", 0xAE, true},       {"macr", 0xAF, true},       {"deg", 0xB0, true},
    {"plusmn", 0xB1, true},     {"sup2", 0xB2, true},      {"sup3", 0xB3, true},       {"acute", 0xB4, true},
    {"micro", 0xB5, true},      {"para", 0xB6, true},      {"middot", 0xB7, true},     {"cedil", 0xB8, true},
    {"sup1", 0xB9, true},       {"ordm", 0xBA, true},      {"raquo", 0xBB, true},      {"frac14", 0xBC, true},
    {"frac12", 0xBD, true},     {"frac34", 0xBE, true},    {"iquest", 0xBF, true},     {"Agrave", 0xC0, true},
    {"Aacute", 0xC1, true},     {"Acirc", 0xC2, true},     {"Atilde", 0xC3, true},     {"Auml", 0xC4, true},
    {"Aring", 0xC5, true},      {"AElig", 0xC6, true},     {"Ccedil", 0xC7, true},     {"Egrave", 0xC8, true},
    {"Eacute", 0xC9, true},     {"Ecirc", 0xCA, true},     {"Euml", 0xCB, true},       {"Igrave", 0xCC, true},
    {"Iacute", 0xCD, true},     {"Icirc", 0xCE, true},     {"Iuml", 0xCF, true},       {"ETH", 0xD0, true},
    {"Ntilde", 0xD1, true},     {"Ograve", 0xD2, true},    {"Oacute", 0xD3, true},     {"Ocirc", 0xD4, true},
    {"Otilde", 0xD5, true},     {"Ouml", 0xD6, true},      {"times", 0xD7, true},      {"Oslash", 0xD8, true},
    {"Ugrave", 0xD9, true},     {"Uacute", 0xDA, true},    {"Ucirc", 0xDB, true},      {"Uuml", 0xDC, true},
    {"Yacute", 0xDD, true},     {"THORN", 0xDE, true},     {"szlig", 0xDF, true},      {"agrave", 0xE0, true},
    {"aacute", 0xE1, true},     {"acirc", 0xE2, true},     {"atilde", 0xE3, true},     {"auml", 0xE4, true},
    {"aring", 0xE5, true},      {"aelig", 0xE6, true},     {"ccedil", 0xE7, true},     {"egrave", 0xE8, true},
    {"eacute", 0xE9, true},     {"ecirc", 0xEA, true},     {"euml", 0xEB, true},       {"igrave", 0xEC, true},
    {"iacute", 0xED, true},     {"icirc", 0xEE, true},     {"iuml", 0xEF, true},       {"eth", 0xF0, true},
    {"ntilde", 0xF1, true},     {"ograve", 0xF2, true},    {"oacute", 0xF3, true},     {"ocirc", 0xF4, true},
    {"otilde", 0xF5, true},     {"ouml", 0xF6, true},      {"divide", 0xF7, true},     {"oslash", 0xF8, true},
    {"ugrave", 0xF9, true},     {"uacute", 0xFA, true},    {"ucirc", 0xFB, true},      {"uuml", 0xFC, true},
    {"yacute", 0xFD, true},     {"thorn", 0xFE, true},     {"yuml", 0xFF, true},       {"OElig", 0x152, false},
    {"oelig", 0x153, false},    {"Scaron", 0x160, false},  {"scaron", 0x161, false},   {"Yuml", 0x178, false},
    {"fnof", 0x192, false},     {"circ", 0x2C6, false},    {"tilde", 0x2DC, false},    {"Alpha", 0x391, false},
    {"Beta", 0x392, false},     {"Gamma", 0x393, false},   {"Delta", 0x394, false},    {"Epsilon", 0x395, false},
    {"Zeta", 0x396, false},     {"Eta", 0x397, false},     {"Theta", 0x398, false},    {"Iota", 0x399, false},
    {"Kappa", 0x39A, false},    {"Lambda", 0x39B, false},  {"Mu", 0x39C, false},       {"Nu", 0x39D, false},
    {"Xi", 0x39E, false},       {"Omicron", 0x39F, false}, {"Pi", 0x3A0, false},       {"Rho", 0x3A1, false},
    {"Sigma", 0x3A3, false},    {"Tau", 0x3A4, false},     {"Upsilon", 0x3A5, false},  {"Phi", 0x3A6, false},
    {"Chi", 0x3A7, false},      {"Psi", 0x3A8, false},     {"Omega", 0x3A9, false},    {"alpha", 0x3B1, false},
    {"beta", 0x3B2, false},     {"gamma", 0x3B3, false},   {"delta", 0x3B4, false},    {"epsilon", 0x3B5, false},
    {"zeta", 0x3B6, false},     {"eta", 0x3B7, false},     {"theta", 0x3B8, false},    {"iota", 0x3B9, false},
    {"kappa", 0x3BA, false},    {"lambda", 0x3BB, false},  {"mu", 0x3BC, false},       {"nu", 0x3BD, false},
    {"xi", 0x3BE, false},       {"omicron", 0x3BF, false}, {"pi", 0x3C0, false},       {"rho", 0x3C1, false},
    {"sigmaf", 0x3C2, false},   {"sigma", 0x3C3, false},   {"tau", 0x3C4, false},      {"upsilon", 0x3C5, false},
    {"phi", 0x3C6, false},      {"chi", 0x3C7, false},     {"psi", 0x3C8, false},      {"omega", 0x3C9, false},
    {"thetasym", 0x3D1, false}, {"upsih", 0x3D2, false},   {"piv", 0x3D6, false},      {"ensp", 0x2002, false},
    {"emsp", 0x2003, false},    {"thinsp", 0x2009, false}, {"zwnj", 0x200C, false},    {"zwj", 0x200D, false},
    {"lrm", 0x200E, false},     {"rlm", 0x200F, false},    {"ndash", 0x2013, false},   {"mdash", 0x2014, false},
    {"lsquo", 0x2018, false},   {"rsquo", 0x2019, false},  {"sbquo", 0x201A, false},   {"ldquo", 0x201C, false},
    {"rdquo", 0x201D, false},   {"bdquo", 0x201E, false},  {"dagger", 0x2020, false},  {"Dagger", 0x2021, false},
    {"bull", 0x2022, false},    {"hellip", 0x2026, false}, {"permil", 0x2030, false},  {"prime", 0x2032, false},
    {"Prime", 0x2033, false},   {"lsaquo", 0x2039, false}, {"rsaquo", 0x203A, false},  {"oline", 0x203E, false},
    {"frasl", 0x2044, false},   {"euro", 0x20AC, false},   {"image", 0x2111, false},   {"weierp", 0x2118, false},
    {"real", 0x211C, false},    {"trade", 0x2122, false},  {"alefsym", 0x2135, false}, {"larr", 0x2190, false},
    {"uarr", 0x2191, false},    {"rarr", 0x2192, false},   {"darr", 0x2193, false},    {"harr", 0x2194, false},
    {"crarr", 0x21B5, false},   {"lArr", 0x21D0, false},   {"uArr", 0x21D1, false},    {"rArr", 0x21D2, false},
    {"dArr", 0x21D3, false},    {"hArr", 0x21D4, false},   {"forall", 0x2200, false},  {"part", 0x2202, false},
    {"exist", 0x2203, false},   {"empty", 0x2205, false},  {"nabla", 0x2207, false},   {"isin", 0x2208, false},
    {"notin", 0x2209, false},   {"ni", 0x220B, false},     {"prod", 0x220F, false},    {"sum", 0x2211, false},
    {"minus", 0x2212, false},   {"lowast", 0x2217, false}, {"radic", 0x221A, false},   {"prop", 0x221D, false},
    {"infin", 0x221E, false},   {"ang", 0x2220, false},    {"and", 0x2227, false},     {"or", 0x2228, false},
    {"cap", 0x2229, false},     {"cup", 0x222A, false},    {"int", 0x222B, false},     {"there4", 0x2234, false},
    {"sim", 0x223C, false},     {"cong", 0x2245, false},   {"asymp", 0x2248, false},   {"ne", 0x2260, false},
    {"equiv", 0x2261, false},   {"le", 0x2264, false},     {"ge", 0x2265, false},      {"sub", 0x2282, false},
    {"sup", 0x2283, false},     {"nsub", 0x2284, false},   {"sube", 0x2286, false},    {"supe", 0x2287, false},
    {"oplus", 0x2295, false},   {"otimes", 0x2297, false}, {"perp", 0x22A5, false},    {"sdot", 0x22C5, false},
    {"lceil", 0x2308, false},   {"rceil", 0x2309, false},  {"lfloor", 0x230A, false},  {"rfloor", 0x230B, false},
    {"loz", 0x25CA, false},     {"spades", 0x2660, false}, {"clubs", 0x2663, false},   {"hearts", 0x2665, false},
    {"diams", 0x2666, false},   {"lang", 0x27E8, false},   {"rang", 0x27E9, false},
};

const std::unordered_map<std::u32string, char32_t>& entity_table() {
  static const auto table = [] {
    std::unordered_map<std::u32string, char32_t> t;
    for (const auto& e : kEntities) {
      std::u32string name(e.name, e.name + std::strlen(e.name));
      t[name + U";"] = e.value;
      if (e.legacy) t[name] = e.value;
    }
    return t;
  }();
  return table;
}

// Python's html._invalid_codepoints: replaced by nothing.
bool is_invalid_charref(uint64_t n) {
  return (n >= 0x1 && n <= 0x8) || n == 0xB || (n >= 0xE && n <= 0x1F) || (n >= 0x7F && n <= 0x9F) ||
         (n >= 0xFDD0 && n <= 0xFDEF) || ((n & 0xFFFE) == 0xFFFE && n <= 0x10FFFF);
}

void append_charref(std::u32string& out, uint64_t n) {
  if (n == 0) {
    out += kReplacement;
  } else if (n == 0x0D) {
    out += U'\r';
  } else if (n >= 0x80 && n <= 0x9F) {
    out += kCp1252High[n - 0x80];
  } else if ((n >= 0xD800 && n <= 0xDFFF) || n > 0x10FFFF) {
    out += kReplacement;
  } else if (!is_invalid_charref(n)) {
    out += static_cast<char32_t>(n);
  }
}

bool is_digit(char32_t c) { return c >= U'0' && c <= U'9'; }
bool is_hex(char32_t c) { return is_digit(c) || (c >= U'a' && c <= U'f') || (c >= U'A' && c <= U'F'); }
int hex_value(char32_t c) { return is_digit(c) ? int(c - U'0') : int((c | 0x20) - U'a' + 10); }

std::u32string html_unescape(const std::u32string& s) {
  if (s.find(U'&') == std::u32string::npos) return s;
  const auto& entities = entity_table();
  std::u32string out;
  out.reserve(s.size());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (s[i] != U'&' || i + 1 >= n) {
      out += s[i++];
      continue;
    }
    size_t j = i + 1;
    if (s[j] == U'#') {
      const bool hex = j + 1 < n && (s[j + 1] == U'x' || s[j + 1] == U'X');
      size_t k = j + (hex ? 2 : 1);
      const size_t digits_start = k;
      uint64_t value = 0;
      while (k < n && (hex ? is_hex(s[k]) : is_digit(s[k]))) {
        // saturate: any value above U+10FFFF gives U+FFFD
        if (value <= 0x10FFFF) value = value * (hex ? 16 : 10) + (hex ? hex_value(s[k]) : int(s[k] - U'0'));
        ++k;
      }
      if (k == digits_start) {  // "&#" or "&#x" without digits: not a reference
        out += s[i++];
        continue;
      }
      if (k < n && s[k] == U';') ++k;
      append_charref(out, value);
      i = k;
      continue;
    }
    // a named reference: up to 32 characters that are not \t \n \f space < & # ;
    size_t k = j;
    while (k < n && k - j < 32) {
      const char32_t c = s[k];
      if (c == U'\t' || c == U'\n' || c == U'\f' || c == U' ' || c == U'<' || c == U'&' || c == U'#' || c == U';')
        break;
      ++k;
    }
    if (k == j) {
      out += s[i++];
      continue;
    }
    if (k < n && s[k] == U';') ++k;
    const std::u32string name = s.substr(j, k - j);
    auto it = entities.find(name);
    if (it != entities.end()) {
      out += it->second;
    } else {
      // the longest prefix (at least two characters) that is a name, the rest kept as text
      bool found = false;
      for (size_t len = name.size() - 1; len >= 2 && len < name.size(); --len) {
        auto p = entities.find(name.substr(0, len));
        if (p != entities.end()) {
          out += p->second;
          out.append(name, len, std::u32string::npos);
          found = true;
          break;
        }
      }
      if (!found) {
        out += U'&';
        out += name;
      }
    }
    i = k;
  }
  return out;
}

// ---- whitespace and case ----

// Python's str.isspace (used by `\s` in `re`, by strip() and by the reference's
// whitespace_clean): bidirectional class WS, B or S, or category Zs.
bool is_python_space(char32_t c) {
  if (c < 0x80) return c == U' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
  const utf8proc_property_t* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(c));
  return p->category == UTF8PROC_CATEGORY_ZS || p->bidi_class == UTF8PROC_BIDI_CLASS_WS ||
         p->bidi_class == UTF8PROC_BIDI_CLASS_B || p->bidi_class == UTF8PROC_BIDI_CLASS_S;
}

// Runs of whitespace become one space; leading and trailing whitespace is dropped.
std::u32string collapse_whitespace(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  bool pending_space = false;
  for (char32_t c : s) {
    if (is_python_space(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += U' ';
    pending_space = false;
    out += c;
  }
  return out;
}

// Cased and case-ignorable as Python's str.lower() uses them for the final sigma. Cased:
// upper/lower/title-case letters, anything with a case mapping, and the Other_Lowercase /
// Other_Uppercase symbols that have neither (ª, º, squared and negative squared letters);
// the Other_Lowercase modifier letters are case-ignorable, which decides first.
bool is_cased(char32_t c) {
  if (c == 0xAA || c == 0xBA || (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
      (c >= 0x1F170 && c <= 0x1F189))
    return true;
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT ||
         utf8proc_tolower(static_cast<utf8proc_int32_t>(c)) != static_cast<utf8proc_int32_t>(c) ||
         utf8proc_toupper(static_cast<utf8proc_int32_t>(c)) != static_cast<utf8proc_int32_t>(c);
}

// Case_Ignorable: categories Mn, Me, Cf, Lm, Sk, and Word_Break MidLetter/MidNumLet/Single_Quote.
bool is_case_ignorable(char32_t c) {
  switch (c) {
    case 0x0027:
    case 0x002E:
    case 0x003A:
    case 0x00B7:
    case 0x0387:
    case 0x055F:
    case 0x05F4:
    case 0x2018:
    case 0x2019:
    case 0x2024:
    case 0x2027:
    case 0xFE13:
    case 0xFE52:
    case 0xFE55:
    case 0xFF07:
    case 0xFF0E:
    case 0xFF1A:
      return true;
    default:
      break;
  }
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME || cat == UTF8PROC_CATEGORY_CF ||
         cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_SK;
}

// Python's str.lower(): the simple lower-case mapping, plus the two unconditional special
// cases it applies: U+0130 -> "i\u0307", and capital sigma -> final sigma at the end of a word.
std::u32string lower(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  const size_t n = s.size();
  for (size_t i = 0; i < n; ++i) {
    const char32_t c = s[i];
    if (c < 0x80) {
      out += (c >= U'A' && c <= U'Z') ? c + 32 : c;
    } else if (c == 0x0130) {
      out += U'i';
      out += char32_t{0x0307};
    } else if (c == 0x03A3) {
      // \p{cased}\p{case-ignorable}* Σ !(\p{case-ignorable}* \p{cased})
      size_t j = i;
      while (j > 0 && is_case_ignorable(s[j - 1])) --j;
      bool final_sigma = j > 0 && is_cased(s[j - 1]);
      if (final_sigma) {
        size_t k = i + 1;
        while (k < n && is_case_ignorable(s[k])) ++k;
        final_sigma = k == n || !is_cased(s[k]);
      }
      out += final_sigma ? char32_t{0x03C2} : char32_t{0x03C3};
    } else {
      out += static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
    }
  }
  return out;
}

}  // namespace

std::u32string clean_text_code_points(const std::string& text) {
  std::u32string s = ftfy_fixes(from_utf8(text));
  s = html_unescape(html_unescape(s));
  return lower(collapse_whitespace(s));
}

bool clean_ascii_text(const std::string& text, std::string& out) {
  out.clear();
  out.reserve(text.size());
  bool pending_space = false;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x80 || c == '&') return false;
    if (is_removed_control(c)) continue;
    if (c == ' ' || (c >= 0x09 && c <= 0x0D)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : static_cast<char>(c);
  }
  return true;
}

std::string clean_text(const std::string& text) {
  std::string ascii;
  return clean_ascii_text(text, ascii) ? ascii : to_utf8(clean_text_code_points(text));
}

}  // namespace starft::clip
