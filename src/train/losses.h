#pragma once
// The StarFT training losses (docs: /work/shared/docs/method.md), written as "local rows against
// gathered global columns" so one function serves 1 rank and N ranks: each rank passes its own
// rows (global rows offset .. offset+b) and every rank's rows gathered with gradient. Each
// function returns this rank's share such that the average over ranks (equal local batch
// sizes) equals the single-process loss over the global batch; on one rank local == global and
// offset == 0.
#include <torch/torch.h>

#include <cstdint>

namespace starft::train {

// FLYP / CLIP symmetric contrastive loss:
//   (CE(s * I_local @ T_global^T, offset + arange(b)) + CE(s * T_local @ I_global^T, same)) / 2,
// CE averaged over the local rows. image_local, text_local: [b, D] normalised features;
// image_global, text_global: [B, D]; logit_scale: s, already exponentiated (0-d or one
// element, trainable). Samples of the same class are still negatives of each other.
//
// caption_ids_global ([B] int64, optional): when given, every column whose caption id equals the
// row's is a positive (multi-positive targets as in UniCL, Yang et al. 2022, "Unified Contrastive
// Learning in Image-Text-Label Space"): the target of row i is uniform over those columns, so a
// batch without repeated captions gives exactly the loss above. For caption sets far smaller
// than the batch (a synthetic pre-training store), where CLIP's loss would push identical
// captions apart. Throws for a size that is not [B].
torch::Tensor flyp_loss(const torch::Tensor& image_local, const torch::Tensor& text_local,
                        const torch::Tensor& image_global, const torch::Tensor& text_global,
                        const torch::Tensor& logit_scale, int64_t offset, const torch::Tensor& caption_ids_global = {});

// StarFT regulariser (masked = true) or its KL variant (masked = false):
//   M  = labels_local[:, None] == labels_global[None, :]           (only when masked)
//   Zt = (s0 * I0_local @ P0_global^T).masked_fill(M, -1e8)         teacher, no gradient
//   Zs = (s0 * I_local  @ P_global^T ).masked_fill(M, -1e8)         student
//   R  = mean over local rows of KL(softmax(Zt) || softmax(Zs)), summed over the B columns.
// image_local [b, D] student; teacher_image_local [b, D]; prompt_global [B, D] student prompt
// features (with gradient); teacher_prompt_global [B, D]; labels_local [b], labels_global [B]
// int64; teacher_scale s0 (a constant: no gradient reaches the student's logit scale).
// Half / bfloat16 features are promoted to float32 (the -1e8 fill does not fit in half).
torch::Tensor starft_regulariser(const torch::Tensor& image_local, const torch::Tensor& teacher_image_local,
                                 const torch::Tensor& prompt_global, const torch::Tensor& teacher_prompt_global,
                                 const torch::Tensor& labels_local, const torch::Tensor& labels_global,
                                 double teacher_scale, bool masked = true);

// Cross-entropy with a linear head: CE(image_local @ W^T + b, labels_local), averaged over the
// local rows. head_weight [C, D], head_bias [C], labels_local [b] int64 in [0, C).
torch::Tensor ce_loss(const torch::Tensor& image_local, const torch::Tensor& head_weight,
                      const torch::Tensor& head_bias, const torch::Tensor& labels_local);

// lambda_e for 0-based epoch e of E: lambda (constant), or lambda * (1 - (e + 1) / E)
// (diminishing; 0 in the last epoch). Throws for epochs < 1 or epoch outside [0, epochs).
double regulariser_weight(double lambda, bool diminishing, int64_t epoch, int64_t epochs);

}  // namespace starft::train
