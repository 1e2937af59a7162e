#pragma once
// WiSE-FT (weight-space ensembling, Wortsman et al., CVPR 2022): the fine-tuned and the
// zero-shot weights are interpolated, theta_alpha = (1 - alpha) * theta_zeroshot +
// alpha * theta_finetuned, for every parameter including logit_scale; alpha 0 is the zero-shot
// model, alpha 1 the fine-tuned one. The zero-shot head is rebuilt from each interpolated text
// tower (the evaluator does that for whatever weights the model holds).
#include <string>
#include <vector>

#include "clip/model.h"
#include "clip/safetensors.h"

namespace starft::eval {

// Parses "0,0.25,0.5,1": each alpha a number in [0, 1], listed once. Throws starft::Error
// naming the bad entry.
std::vector<double> parse_alphas(const std::string& text);

// Throws starft::Error, before any scoring, when the two models are not of one architecture
// (config, and each parameter's name and shape), naming both files and what differs.
void check_same_architecture(const clip::CLIP& zeroshot, const std::string& zeroshot_source,
                             const clip::CLIP& finetuned, const std::string& finetuned_source);

// (1 - alpha) * zeroshot + alpha * finetuned for every tensor (float32). Both maps must hold the
// same names and shapes (throws otherwise, naming the first difference).
safetensors::TensorMap interpolate(const safetensors::TensorMap& zeroshot, const safetensors::TensorMap& finetuned,
                                   double alpha);

// A short label for a table row: "alpha=0.5".
std::string alpha_label(double alpha);

}  // namespace starft::eval
