// libFuzzer targets for the parsers of outside input. One source, one binary per target: build
// and run with tests/fuzz/run.sh (clang, -fsanitize=fuzzer,address,undefined). Each target
// feeds the fuzzer's bytes to a parser and accepts only starft::Error (a refusal that names the
// input) or a result; anything else (a crash, a sanitizer report, another exception type, a
// hang) is a finding.
//   FUZZ_CLASS_LIST  data::parse_class_list       (--class-names files)
//   FUZZ_TABLE       sharding::parse_table        (CSV/TSV lists, Waterbirds metadata.csv)
//   FUZZ_TEMPLATES   data::parse_templates        (template files)
//   FUZZ_MANIFEST    data::Manifest::from_json    (a store's manifest.json)
//   FUZZ_INI         --config INI files           (common/text.h + Boost's config parser)
//   FUZZ_IMAGE       data::decode_image_rgb       (JPEG through libjpeg, PNG chunk walk, EXIF)
//   FUZZ_SAFETENSORS clip/safetensors_format.h    (a .safetensors file: header length, JSON header,
//                                                  offsets, BOOL bytes, LFS pointers and pickles)
//   FUZZ_TOKENIZER   clip::BpeTokenizer           (any text: clean-up, pre-tokenisation, BPE; here
//                                                  a starft::Error is a finding too)
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "common/error.h"
#include "common/text.h"

#if defined(FUZZ_CLASS_LIST)
#include "data/class_list.h"
static void run(const std::string& s) { starft::data::parse_class_list(s, "fuzz"); }
#elif defined(FUZZ_TABLE)
#include "sharding/sources.h"
static void run(const std::string& s) {
  (void)starft::sharding::detect_separator(s);
  for (char sep : {starft::sharding::kDetectSeparator, '\t', ','}) {  // each one, even when another refuses
    try {
      starft::sharding::parse_table(s, sep, "fuzz");
    } catch (const starft::Error&) {
    }
  }
}
#elif defined(FUZZ_TEMPLATES)
#include "data/templates.h"
static void run(const std::string& s) { starft::data::parse_templates(starft::normalize_text(s), "fuzz"); }
#elif defined(FUZZ_MANIFEST)
#include <nlohmann/json.hpp>
#include "data/manifest.h"
static void run(const std::string& s) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(s);
  } catch (const nlohmann::json::exception&) {
    return;  // Manifest::read reports this as "not valid JSON"
  }
  auto m = starft::data::Manifest::from_json(j, "fuzz");
  (void)m.to_json().dump();
}
#elif defined(FUZZ_INI)
#include <boost/program_options.hpp>
static void run(const std::string& s) {
  namespace po = boost::program_options;
  po::options_description keys;
  keys.add_options()("lr", po::value<double>(), "")("store", po::value<std::string>(), "")(
      "epochs", po::value<int>(), "")("eval", po::value<std::vector<std::string> >()->composing(), "");
  std::istringstream in(starft::normalize_text(s));
  try {
    po::variables_map vm;
    po::store(po::parse_config_file(in, keys), vm);
    po::notify(vm);
  } catch (const po::error&) {
    // load_config_files turns these into starft::Error naming the file
  }
}
#elif defined(FUZZ_IMAGE)
#include <opencv2/core.hpp>
#include "data/image.h"
static void run(const std::string& s) {
  // starft's own code: the format gate (image_format: everything it does not recognise is refused
  // before OpenCV sees it), JPEG (libjpeg, EXIF) and PNG (chunk walk). BMP, WebP, TIFF and PPM go
  // on to OpenCV, libwebp and libtiff, which are fuzzed upstream (OSS-Fuzz), and are left out.
  const starft::data::ImageFormat format = starft::data::image_format(s);
  if (format != starft::data::ImageFormat::unknown && format != starft::data::ImageFormat::jpeg &&
      format != starft::data::ImageFormat::png)
    return;
  try {
    starft::data::decode_image_rgb(s, "fuzz");
  } catch (const cv::Exception&) {
  }
  if (s.size() > 6) starft::data::exif_orientation(reinterpret_cast<const uint8_t*>(s.data()) + 6, s.size() - 6);
}
#elif defined(FUZZ_SAFETENSORS)
#include <cstdlib>
#include <string_view>
#include "clip/safetensors_format.h"
static void run(const std::string& s) {
  namespace st = starft::safetensors;
  // load()'s steps on the file's bytes: the first 512 for a foreign format (parse() skips that
  // step, so a refusal there does not end the run), the header against the file's size, the
  // BOOL bytes; what tensors the result makes is LibTorch's (safetensors.cpp).
  try {
    st::refuse_foreign_format(std::string_view(s).substr(0, 512), "fuzz");
  } catch (const starft::Error&) {
  }
  const st::Header h = st::parse_layout(s, "fuzz");
  uint64_t covered = h.data_start;  // what parse_header promises: the entries tile the data area
  for (const st::Entry& e : h.entries) {
    if (h.data_start + e.begin != covered || e.end < e.begin) std::abort();
    st::check_bools(reinterpret_cast<const unsigned char*>(s.data()) + covered, e, "fuzz");
    covered = h.data_start + e.end;
  }
  if (covered != s.size()) std::abort();
}
#elif defined(FUZZ_TOKENIZER)
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "clip/bpe_tokenizer.h"
#include "starft/build_config.h"
static const starft::clip::BpeTokenizer& tokenizer() {
  static const starft::clip::BpeTokenizer t = [] {
    try {
      return starft::clip::BpeTokenizer::load(STARFT_FIXTURES_DIR "/clip/bpe_simple_vocab_16e6.txt.gz");
    } catch (const starft::Error& e) {
      std::fprintf(stderr, "fuzz tokenizer: cannot load the vocabulary: %s\n", e.what());
      std::abort();
    }
  }();
  return t;
}
static void run(const std::string& s) {
  using namespace starft::clip;
  const BpeTokenizer& tok = tokenizer();
  try {
    // Any bytes are text to the tokenizer: nothing may be refused, and the fast paths must agree
    // with the general ones.
    const std::string cleaned = clean_text(s);
    std::string ascii;
    if (clean_ascii_text(s, ascii) && ascii != cleaned) std::abort();  // ASCII one-pass clean-up
    (void)pretokenize(cleaned);
    std::vector<int64_t> full = tok.encode(s);
    full.insert(full.begin(), tok.sot());
    full.push_back(tok.eot());
    if (full.size() > static_cast<size_t>(kContextLength)) {
      full.resize(kContextLength);
      full.back() = tok.eot();
    }
    const std::vector<int64_t> ids = tok.tokenize(s);  // stops encoding once the context is full
    if (ids != full) std::abort();
    (void)tok.decode(ids);
  } catch (const starft::Error& e) {
    std::fprintf(stderr, "fuzz tokenizer: refused text: %s\n", e.what());
    std::abort();
  }
}
#else
#error define one FUZZ_* target
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    run(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const starft::Error&) {
    // a refusal naming the input: the expected outcome for bad input
  }
  return 0;
}
