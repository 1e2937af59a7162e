#include "train/losses.h"

#include <sstream>

#include "common/error.h"

namespace starft::train {
namespace {

namespace F = torch::nn::functional;

// The masked logits use a finite -1e8 (masked entries then get probability 0 and add nothing);
// it does not fit in half precision, so losses are computed in float32 at least.
torch::Tensor at_least_float32(const torch::Tensor& t) {
  return t.scalar_type() == torch::kHalf || t.scalar_type() == torch::kBFloat16 ? t.to(torch::kFloat32) : t;
}

std::string shape(const torch::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

void check_features(const char* fn, const char* name, const torch::Tensor& t) {
  check(t.defined() && t.dim() == 2, fn, ": ", name, " must be a [rows, D] feature matrix, got ",
        t.defined() ? shape(t) : std::string("an undefined tensor"));
}

void check_same_width(const char* fn, const char* a, const torch::Tensor& ta, const char* b, const torch::Tensor& tb) {
  check(ta.size(1) == tb.size(1), fn, ": ", a, " ", shape(ta), " and ", b, " ", shape(tb),
        " have different feature widths");
}

void check_labels(const char* fn, const char* name, const torch::Tensor& labels, int64_t rows) {
  check(labels.defined() && labels.dim() == 1 && labels.size(0) == rows, fn, ": ", name, " must be [", rows,
        "] (one label per row), got ", labels.defined() ? shape(labels) : std::string("undefined"));
  check(labels.scalar_type() == torch::kInt64, fn, ": ", name, " must be int64, got ", labels.scalar_type());
}

// Cross-entropy over rows; targets are column indices.
torch::Tensor row_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets) {
  return F::cross_entropy(logits, targets, F::CrossEntropyFuncOptions().reduction(torch::kMean));
}

}  // namespace

torch::Tensor flyp_loss(const torch::Tensor& image_local, const torch::Tensor& text_local,
                        const torch::Tensor& image_global, const torch::Tensor& text_global,
                        const torch::Tensor& logit_scale, int64_t offset, const torch::Tensor& caption_ids_global) {
  constexpr const char* fn = "flyp_loss";
  check_features(fn, "image_local", image_local);
  check_features(fn, "text_local", text_local);
  check_features(fn, "image_global", image_global);
  check_features(fn, "text_global", text_global);
  check(image_local.sizes() == text_local.sizes(), fn, ": image_local ", shape(image_local), " and text_local ",
        shape(text_local), " must have the same shape");
  check(image_global.sizes() == text_global.sizes(), fn, ": image_global ", shape(image_global), " and text_global ",
        shape(text_global), " must have the same shape");
  check_same_width(fn, "image_local", image_local, "image_global", image_global);
  const int64_t b = image_local.size(0), B = image_global.size(0);
  check(b > 0, fn, ": the local batch is empty");
  check(offset >= 0 && offset + b <= B, fn, ": local rows [", offset, ", ", offset + b,
        ") do not lie inside the global batch of ", B, " rows");
  check(logit_scale.defined() && logit_scale.numel() == 1, fn,
        ": logit_scale must hold one value (the exponentiated scale)");

  const torch::Tensor s = at_least_float32(logit_scale).reshape({});
  const torch::Tensor targets =
      torch::arange(offset, offset + b, torch::TensorOptions().dtype(torch::kInt64).device(image_local.device()));
  const torch::Tensor per_image = s * at_least_float32(image_local).matmul(at_least_float32(text_global).t());
  const torch::Tensor per_text = s * at_least_float32(text_local).matmul(at_least_float32(image_global).t());
  if (!caption_ids_global.defined())
    return (row_cross_entropy(per_image, targets) + row_cross_entropy(per_text, targets)) / 2;

  check(caption_ids_global.dim() == 1 && caption_ids_global.size(0) == B, fn, ": caption_ids_global must be [", B,
        "] (one id per global row), got ", shape(caption_ids_global));
  const auto ids = caption_ids_global.to(image_local.device(), torch::kInt64);
  // same [b, B] targets for both directions: equality of captions is symmetric
  const auto positives = ids.narrow(0, offset, b).unsqueeze(1).eq(ids.unsqueeze(0)).to(per_image.scalar_type());
  const auto soft = positives / positives.sum(1, true);
  const auto soft_ce = [&](const torch::Tensor& logits) {
    return -(soft * torch::log_softmax(logits, 1)).sum(1).mean();
  };
  return (soft_ce(per_image) + soft_ce(per_text)) / 2;
}

torch::Tensor starft_regulariser(const torch::Tensor& image_local, const torch::Tensor& teacher_image_local,
                                 const torch::Tensor& prompt_global, const torch::Tensor& teacher_prompt_global,
                                 const torch::Tensor& labels_local, const torch::Tensor& labels_global,
                                 double teacher_scale, bool masked) {
  constexpr const char* fn = "starft_regulariser";
  check_features(fn, "image_local", image_local);
  check_features(fn, "teacher_image_local", teacher_image_local);
  check_features(fn, "prompt_global", prompt_global);
  check_features(fn, "teacher_prompt_global", teacher_prompt_global);
  check(image_local.size(0) == teacher_image_local.size(0), fn, ": image_local ", shape(image_local),
        " and teacher_image_local ", shape(teacher_image_local), " must have the same rows");
  check(prompt_global.size(0) == teacher_prompt_global.size(0), fn, ": prompt_global ", shape(prompt_global),
        " and teacher_prompt_global ", shape(teacher_prompt_global), " must have the same rows");
  check_same_width(fn, "image_local", image_local, "prompt_global", prompt_global);
  check_same_width(fn, "teacher_image_local", teacher_image_local, "teacher_prompt_global", teacher_prompt_global);
  const int64_t b = image_local.size(0), B = prompt_global.size(0);
  check(b > 0, fn, ": the local batch is empty");
  check(b <= B, fn, ": ", b, " local rows but only ", B, " global prompt rows");
  check(teacher_scale > 0, fn, ": teacher_scale must be positive (exp of the teacher's logit scale), got ",
        teacher_scale);

  torch::Tensor teacher_logits =
      teacher_scale *
      at_least_float32(teacher_image_local.detach()).matmul(at_least_float32(teacher_prompt_global.detach()).t());
  torch::Tensor student_logits =
      teacher_scale * at_least_float32(image_local).matmul(at_least_float32(prompt_global).t());
  if (masked) {
    check_labels(fn, "labels_local", labels_local, b);
    check_labels(fn, "labels_global", labels_global, B);
    const torch::Tensor same_class = labels_local.unsqueeze(1) == labels_global.unsqueeze(0);
    teacher_logits = teacher_logits.masked_fill(same_class, -1e8);
    student_logits = student_logits.masked_fill(same_class, -1e8);
  }
  // KL(pt || ps) per row, summed over columns; kl_div's xlogy makes pt == 0 entries exactly 0.
  const torch::Tensor teacher_prob = torch::softmax(teacher_logits, 1);
  const torch::Tensor student_log_prob = torch::log_softmax(student_logits, 1);
  return F::kl_div(student_log_prob, teacher_prob, F::KLDivFuncOptions().reduction(torch::kSum)) / b;
}

torch::Tensor ce_loss(const torch::Tensor& image_local, const torch::Tensor& head_weight,
                      const torch::Tensor& head_bias, const torch::Tensor& labels_local) {
  constexpr const char* fn = "ce_loss";
  check_features(fn, "image_local", image_local);
  check_features(fn, "head_weight", head_weight);
  check_same_width(fn, "image_local", image_local, "head_weight", head_weight);
  check(head_bias.defined() && head_bias.dim() == 1 && head_bias.size(0) == head_weight.size(0), fn,
        ": head_bias must be [", head_weight.size(0), "] (one per class)");
  check(image_local.size(0) > 0, fn, ": the local batch is empty");
  check_labels(fn, "labels_local", labels_local, image_local.size(0));
  const int64_t classes = head_weight.size(0);
  const torch::Tensor range = torch::stack({labels_local.min(), labels_local.max()}).cpu();  // one sync
  const int64_t lo = range[0].item<int64_t>(), hi = range[1].item<int64_t>();
  check(lo >= 0 && hi < classes, fn, ": labels must lie in [0, ", classes, "), got values in [", lo, ", ", hi, "]");
  const torch::Tensor logits =
      F::linear(at_least_float32(image_local), at_least_float32(head_weight), at_least_float32(head_bias));
  return row_cross_entropy(logits, labels_local);
}

double regulariser_weight(double lambda, bool diminishing, int64_t epoch, int64_t epochs) {
  check(epochs >= 1, "regulariser_weight: epochs must be at least 1, got ", epochs);
  check(epoch >= 0 && epoch < epochs, "regulariser_weight: epoch ", epoch, " is outside [0, ", epochs, ")");
  if (!diminishing) return lambda;
  return lambda * (1.0 - static_cast<double>(epoch + 1) / static_cast<double>(epochs));
}

}  // namespace starft::train
