#include "eval/wise.h"

#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include "clip/weights.h"
#include "common/error.h"

namespace starft::eval {
namespace {

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

std::string shape_of(const torch::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

}  // namespace

std::vector<double> parse_alphas(const std::string& text) {
  std::vector<double> alphas;
  std::stringstream in(text);
  std::string part;
  std::set<double> seen;
  while (std::getline(in, part, ',')) {
    const std::string p = trim(part);
    check(!p.empty(), "--wise-alphas '", text,
          "': empty entry (give numbers in [0, 1] separated by commas, e.g. 0,0.5,1)");
    size_t used = 0;
    double a = 0;
    try {
      a = std::stod(p, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    check(used == p.size() && std::isfinite(a), "--wise-alphas '", text, "': '", p, "' is not a number");
    check(a >= 0 && a <= 1, "--wise-alphas '", text, "': ", p,
          " lies outside [0, 1] (0 = the zero-shot weights, 1 = the fine-tuned weights)");
    check(seen.insert(a).second, "--wise-alphas '", text, "': ", p, " is listed twice");
    alphas.push_back(a);
  }
  check(!alphas.empty() && text.back() != ',', "--wise-alphas '", text,
        "': give numbers in [0, 1] separated by commas, e.g. 0,0.5,1");
  return alphas;
}

void check_same_architecture(const clip::CLIP& zeroshot, const std::string& zeroshot_source,
                             const clip::CLIP& finetuned, const std::string& finetuned_source) {
  auto zc = zeroshot->config().to_json(), fc = finetuned->config().to_json();
  zc.erase("init_logit_scale");  // how a fresh model is initialised, not the architecture
  fc.erase("init_logit_scale");
  if (zc != fc) {
    std::string diff;
    for (const auto& [key, value] : fc.items()) {
      if (!zc.contains(key) || zc[key] != value) {
        diff += (diff.empty() ? "" : ", ") + key + " " + (zc.contains(key) ? zc[key].dump() : "(none)") + " vs " +
                value.dump();
      }
    }
    fail("WiSE-FT: the zero-shot weights ", zeroshot_source, " and the fine-tuned weights ", finetuned_source,
         " are different architectures (", diff,
         "); interpolation needs the zero-shot model the fine-tuned one started from");
  }
  auto zp = zeroshot->named_parameters(), fp = finetuned->named_parameters();
  for (const auto& p : fp) {
    const auto* z = zp.find(p.key());
    check(z != nullptr, "WiSE-FT: ", zeroshot_source, " has no parameter '", p.key(), "' of ", finetuned_source);
    check(z->sizes() == p.value().sizes(), "WiSE-FT: parameter '", p.key(), "' is ", shape_of(*z), " in ",
          zeroshot_source, " but ", shape_of(p.value()), " in ", finetuned_source);
  }
}

safetensors::TensorMap interpolate(const safetensors::TensorMap& zeroshot, const safetensors::TensorMap& finetuned,
                                   double alpha) {
  check(alpha >= 0 && alpha <= 1, "WiSE-FT: alpha ", alpha, " lies outside [0, 1]");
  for (const auto& [name, z] : zeroshot) {
    check(finetuned.count(name), "WiSE-FT: tensor '", name,
          "' of the zero-shot weights is missing from the fine-tuned");
  }
  safetensors::TensorMap out;
  for (const auto& [name, f] : finetuned) {
    auto it = zeroshot.find(name);
    check(it != zeroshot.end(), "WiSE-FT: tensor '", name, "' of the fine-tuned weights is missing from the zero-shot");
    check(it->second.sizes() == f.sizes(), "WiSE-FT: tensor '", name, "' is ", shape_of(it->second),
          " in the zero-shot weights but ", shape_of(f), " in the fine-tuned");
    out[name] = (1.0 - alpha) * it->second.to(torch::kFloat) + alpha * f.to(torch::kFloat);
  }
  return out;
}

std::string alpha_label(double alpha) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "alpha=%g", alpha);
  return buf;
}

}  // namespace starft::eval
