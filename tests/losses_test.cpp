#include "train/losses.h"

#include <gtest/gtest.h>

#include "clip/safetensors.h"
#include "common/error.h"
#include "tensor_close.h"
#include "test_util.h"

using namespace starft::train;
using starft::testing::fixture;
using starft::testing::tensors_close;
namespace F = torch::nn::functional;

namespace {

const starft::safetensors::TensorMap& loss_reference() {
  static const auto tensors = starft::safetensors::load(fixture("clip/loss_reference.safetensors")).tensors;
  return tensors;
}
torch::Tensor ref(const std::string& key) { return loss_reference().at(key).clone(); }
torch::Tensor leaf(const torch::Tensor& t) { return t.detach().clone().requires_grad_(true); }

double teacher_scale() { return ref("teacher_logit_scale").item<double>(); }

// Per-rank split of `rows` rows into `ranks` equal slices: [begin, end) of rank r.
std::pair<int64_t, int64_t> slice(int64_t rows, int64_t ranks, int64_t r) {
  const int64_t b = rows / ranks;
  return {r * b, (r + 1) * b};
}

}  // namespace

TEST(FlypLoss, MatchesTheReferenceValueAndGradients) {
  auto I = leaf(ref("I")), T = leaf(ref("T")), s = leaf(ref("logit_scale"));
  auto loss = flyp_loss(I, T, I, T, s, 0);
  EXPECT_EQ(loss.dim(), 0);
  loss.backward();
  EXPECT_TRUE(tensors_close(loss.reshape({1}), ref("clip_loss"), 1e-5));
  EXPECT_TRUE(tensors_close(I.grad(), ref("clip_grad_I"), 1e-5));
  EXPECT_TRUE(tensors_close(T.grad(), ref("clip_grad_T"), 1e-5));
  EXPECT_TRUE(tensors_close(s.grad(), ref("clip_grad_scale"), 1e-5));
}

TEST(FlypLoss, AcceptsAZeroDimensionalScale) {
  auto I = ref("I"), T = ref("T");
  auto s = ref("logit_scale").reshape({});
  EXPECT_TRUE(tensors_close(flyp_loss(I, T, I, T, s, 0).reshape({1}), ref("clip_loss"), 1e-5));
}

TEST(FlypLoss, DistinctCaptionIdsGiveCLIPsLoss) {
  auto I = ref("I"), T = ref("T"), s = ref("logit_scale");
  auto ids = torch::arange(I.size(0), torch::kLong) * 7 + 3;
  EXPECT_TRUE(tensors_close(flyp_loss(I, T, I, T, s, 0, ids).reshape({1}), ref("clip_loss"), 1e-5));
}

// Multi-positive targets (UniCL) against a loop in double precision over the definition:
// row i's loss is -mean over columns j with id_j == id_i of log softmax_j, in both directions.
TEST(FlypLoss, RepeatedCaptionsArePositivesWhenIdsAreGiven) {
  auto I = ref("I").to(torch::kDouble), T = ref("T").to(torch::kDouble);
  const double scale = ref("logit_scale").item<double>();
  const int64_t B = I.size(0);
  std::vector<int64_t> id_list;
  for (int64_t i = 0; i < B; ++i) id_list.push_back(i % 5 == 0 ? 100 : i % 3);  // groups of several sizes
  auto ids = torch::tensor(id_list, torch::kLong);
  auto direction = [&](const torch::Tensor& rows, const torch::Tensor& cols) {
    auto logp = torch::log_softmax(scale * rows.matmul(cols.t()), 1);
    double total = 0;
    for (int64_t i = 0; i < B; ++i) {
      double sum = 0;
      int64_t n = 0;
      for (int64_t j = 0; j < B; ++j)
        if (id_list[j] == id_list[i]) sum += logp[i][j].item<double>(), ++n;
      total += -sum / n;
    }
    return total / B;
  };
  const double expected = (direction(I, T) + direction(T, I)) / 2;
  auto If = ref("I"), Tf = ref("T");
  const double got = flyp_loss(If, Tf, If, Tf, ref("logit_scale"), 0, ids).item<double>();
  EXPECT_NEAR(got, expected, 1e-5 * std::abs(expected));
  EXPECT_GT(std::abs(got - ref("clip_loss").item<double>()), 1e-3);  // the targets did change the loss

  // split over 2 ranks: the average of the local losses is the global one
  double average = 0;
  for (int64_t r = 0; r < 2; ++r) {
    auto [begin, end] = slice(B, 2, r);
    average += flyp_loss(If.slice(0, begin, end), Tf.slice(0, begin, end), If, Tf, ref("logit_scale"), begin, ids)
                   .item<double>() /
               2;
  }
  EXPECT_NEAR(average, expected, 1e-5 * std::abs(expected));
  EXPECT_THROW(flyp_loss(If, Tf, If, Tf, ref("logit_scale"), 0, ids.slice(0, 0, B - 1)), starft::Error);
}

TEST(StarftRegulariser, MatchesTheReferenceValueAndGradients) {
  auto I = leaf(ref("I")), P = leaf(ref("P_student"));
  auto I0 = leaf(ref("I_teacher")), P0 = leaf(ref("P_teacher"));  // gradients must not reach these
  auto labels = ref("labels");
  auto loss = starft_regulariser(I, I0, P, P0, labels, labels, teacher_scale(), true);
  EXPECT_EQ(loss.dim(), 0);
  loss.backward();
  EXPECT_TRUE(tensors_close(loss.reshape({1}), ref("star_loss"), 1e-5));
  EXPECT_TRUE(tensors_close(I.grad(), ref("star_grad_I"), 1e-5));
  EXPECT_TRUE(tensors_close(P.grad(), ref("star_grad_P_student"), 1e-5));
  EXPECT_FALSE(I0.grad().defined());
  EXPECT_FALSE(P0.grad().defined());
}

TEST(StarftRegulariser, KlVariantMatchesTheReference) {
  auto I = leaf(ref("I")), P = leaf(ref("P_student"));
  auto labels = ref("labels");
  auto loss = starft_regulariser(I, ref("I_teacher"), P, ref("P_teacher"), labels, labels, teacher_scale(), false);
  loss.backward();
  EXPECT_TRUE(tensors_close(loss.reshape({1}), ref("kl_loss"), 1e-5));
  EXPECT_TRUE(tensors_close(I.grad(), ref("kl_grad_I"), 1e-5));
  EXPECT_TRUE(tensors_close(P.grad(), ref("kl_grad_P_student"), 1e-5));
}

TEST(StarftRegulariser, MaskedEntriesContributeNothing) {
  const double s0 = teacher_scale();
  auto I = ref("I"), P = ref("P_student"), I0 = ref("I_teacher"), P0 = ref("P_teacher");
  auto labels = ref("labels");
  // Independent form: for each row, KL over the other-class columns only.
  double expected = 0;
  const int64_t B = I.size(0);
  for (int64_t i = 0; i < B; ++i) {
    auto keep = labels != labels[i];
    ASSERT_GT(keep.sum().item<int64_t>(), 0);
    auto zt = (s0 * I0[i].matmul(P0.t())).masked_select(keep).to(torch::kDouble);
    auto zs = (s0 * I[i].matmul(P.t())).masked_select(keep).to(torch::kDouble);
    auto pt = torch::softmax(zt, 0);
    expected += (pt * (torch::log_softmax(zt, 0) - torch::log_softmax(zs, 0))).sum().item<double>();
  }
  expected /= B;
  const double got = starft_regulariser(I, I0, P, P0, labels, labels, s0, true).item<double>();
  EXPECT_NEAR(got, expected, 1e-5 * std::abs(expected));

  // A batch of one class masks everything: R is exactly 0 and no gradient flows...
  auto Il = leaf(I), Pl = leaf(P);
  auto one_class = torch::full({B}, 3, torch::kInt64);
  auto r = starft_regulariser(Il, I0, Pl, P0, one_class, one_class, s0, true);
  EXPECT_EQ(r.item<double>(), 0.0);
  r.backward();
  EXPECT_EQ(Il.grad().abs().max().item<double>(), 0.0);
  EXPECT_EQ(Pl.grad().abs().max().item<double>(), 0.0);
  // ...whereas the unmasked KL variant still compares the rows.
  EXPECT_GT(starft_regulariser(I, I0, P, P0, one_class, one_class, s0, false).item<double>(), 1e-3);
}

TEST(StarftRegulariser, IsZeroWhenStudentEqualsTeacher) {
  auto I0 = ref("I_teacher"), P0 = ref("P_teacher"), labels = ref("labels");
  for (bool masked : {true, false})
    EXPECT_NEAR(starft_regulariser(I0, I0, P0, P0, labels, labels, teacher_scale(), masked).item<double>(), 0.0, 1e-6);
}

TEST(StarftRegulariser, HalfFeaturesAreComputedInFloat32) {
  auto I = ref("I"), P = ref("P_student"), I0 = ref("I_teacher"), P0 = ref("P_teacher"), labels = ref("labels");
  auto full = starft_regulariser(I, I0, P, P0, labels, labels, teacher_scale(), true);
  auto half = starft_regulariser(I.to(torch::kHalf), I0.to(torch::kHalf), P.to(torch::kHalf), P0.to(torch::kHalf),
                                 labels, labels, teacher_scale(), true);
  EXPECT_EQ(half.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(std::isfinite(half.item<double>()));
  EXPECT_NEAR(half.item<double>(), full.item<double>(), 0.05 * full.item<double>());
}

// Simulates W ranks: rank r holds rows [begin, end) as local leaves and its own copy of every
// row as the gathered global leaves. An all-gather's backward sums every rank's gradient for a
// slice onto the rank that owns it; data parallelism then averages parameter gradients over
// ranks. Average loss and gradients must equal the single-process ones.
class SplitAcrossRanks : public ::testing::TestWithParam<int64_t> {};

TEST_P(SplitAcrossRanks, FlypEqualsTheSingleProcessLoss) {
  const int64_t W = GetParam();
  const int64_t B = ref("I").size(0) / W * W;  // equal local batches: 16 rows, or 15 for 3 ranks
  auto I_all = ref("I").slice(0, 0, B), T_all = ref("T").slice(0, 0, B), s_val = ref("logit_scale");

  auto I = leaf(I_all), T = leaf(T_all), s = leaf(s_val);
  auto full = flyp_loss(I, T, I, T, s, 0);
  full.backward();

  torch::Tensor grad_I = torch::zeros_like(I_all), grad_T = torch::zeros_like(T_all), grad_s = torch::zeros_like(s_val);
  std::vector<torch::Tensor> Ig(W), Tg(W), Il(W), Tl(W);
  double average = 0;
  for (int64_t r = 0; r < W; ++r) {
    auto [begin, end] = slice(B, W, r);
    Il[r] = leaf(I_all.slice(0, begin, end));
    Tl[r] = leaf(T_all.slice(0, begin, end));
    Ig[r] = leaf(I_all);
    Tg[r] = leaf(T_all);
    auto sr = leaf(s_val);
    auto loss = flyp_loss(Il[r], Tl[r], Ig[r], Tg[r], sr, begin);
    loss.backward();
    average += loss.item<double>() / W;
    grad_s += sr.grad() / W;
  }
  for (int64_t r = 0; r < W; ++r) {
    auto [begin, end] = slice(B, W, r);
    auto gi = Il[r].grad().clone(), gt = Tl[r].grad().clone();
    for (int64_t q = 0; q < W; ++q) {  // all-gather backward: sum of every rank's slice gradient
      gi += Ig[q].grad().slice(0, begin, end);
      gt += Tg[q].grad().slice(0, begin, end);
    }
    grad_I.slice(0, begin, end).copy_(gi / W);
    grad_T.slice(0, begin, end).copy_(gt / W);
  }
  EXPECT_NEAR(average, full.item<double>(), 1e-5 * full.item<double>());
  EXPECT_TRUE(tensors_close(grad_I, I.grad(), 1e-5));
  EXPECT_TRUE(tensors_close(grad_T, T.grad(), 1e-5));
  EXPECT_TRUE(tensors_close(grad_s, s.grad(), 1e-5));
  // And on all 16 rows, the single-process loss is the reference.
  if (B == 16) {
    EXPECT_TRUE(tensors_close(full.detach().reshape({1}), ref("clip_loss"), 1e-5));
  }
}

TEST_P(SplitAcrossRanks, RegulariserEqualsTheSingleProcessLoss) {
  const int64_t W = GetParam();
  const int64_t B = ref("I").size(0) / W * W;
  auto I_all = ref("I").slice(0, 0, B), P_all = ref("P_student").slice(0, 0, B);
  auto I0 = ref("I_teacher").slice(0, 0, B), P0 = ref("P_teacher").slice(0, 0, B);
  auto labels = ref("labels").slice(0, 0, B);
  const double s0 = teacher_scale();

  for (bool masked : {true, false}) {
    SCOPED_TRACE(masked ? "masked" : "KL variant");
    auto I = leaf(I_all), P = leaf(P_all);
    auto full = starft_regulariser(I, I0, P, P0, labels, labels, s0, masked);
    full.backward();

    torch::Tensor grad_I = torch::zeros_like(I_all), grad_P = torch::zeros_like(P_all);
    double average = 0;
    for (int64_t r = 0; r < W; ++r) {
      auto [begin, end] = slice(B, W, r);
      auto Il = leaf(I_all.slice(0, begin, end));
      auto Pg = leaf(P_all);  // prompts are gathered; images are only needed locally
      auto loss =
          starft_regulariser(Il, I0.slice(0, begin, end), Pg, P0, labels.slice(0, begin, end), labels, s0, masked);
      loss.backward();
      average += loss.item<double>() / W;
      grad_I.slice(0, begin, end).copy_(Il.grad() / W);
      grad_P += Pg.grad() / W;  // each slice of it goes back to its owner, summed over ranks
    }
    EXPECT_NEAR(average, full.item<double>(), 1e-5 * full.item<double>());
    EXPECT_TRUE(tensors_close(grad_I, I.grad(), 1e-5));
    EXPECT_TRUE(tensors_close(grad_P, P.grad(), 1e-5));
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, SplitAcrossRanks, ::testing::Values(1, 2, 3, 4),
                         [](const ::testing::TestParamInfo<int64_t>& info) {
                           return std::to_string(info.param) + "ranks";
                         });

TEST(CeLoss, IsCrossEntropyOfTheLinearHead) {
  torch::manual_seed(7);
  auto I = leaf(F::normalize(torch::randn({6, 8}), F::NormalizeFuncOptions().dim(1)));
  auto W = leaf(torch::randn({4, 8}) * 10), b = leaf(torch::randn({4}));
  auto labels = torch::tensor({0, 3, 1, 1, 2, 0}, torch::kInt64);
  auto loss = ce_loss(I, W, b, labels);
  loss.backward();
  // By hand: -mean_i log softmax(I W^T + b)[i, y_i], in double.
  auto logits = I.detach().to(torch::kDouble).matmul(W.detach().to(torch::kDouble).t()) + b.detach().to(torch::kDouble);
  auto logp = torch::log_softmax(logits, 1);
  double expected = 0;
  for (int64_t i = 0; i < 6; ++i) expected -= logp[i][labels[i].item<int64_t>()].item<double>() / 6;
  EXPECT_NEAR(loss.item<double>(), expected, 1e-5 * expected);
  // d/db_c = mean_i (softmax_ic - [y_i == c])
  auto onehot = F::one_hot(labels, 4).to(torch::kDouble);
  EXPECT_TRUE(tensors_close(b.grad(), (torch::softmax(logits, 1) - onehot).mean(0).to(torch::kFloat32), 1e-5));
  EXPECT_TRUE(W.grad().defined() && I.grad().defined());
}

TEST(CeLoss, RejectsLabelsOutsideTheHead) {
  auto I = torch::randn({2, 8}), W = torch::randn({4, 8}), b = torch::zeros({4});
  EXPECT_THROW(ce_loss(I, W, b, torch::tensor({0, 4}, torch::kInt64)), starft::Error);
  EXPECT_THROW(ce_loss(I, W, b, torch::tensor({-1, 0}, torch::kInt64)), starft::Error);
  EXPECT_THROW(ce_loss(I, W, torch::zeros({3}), torch::tensor({0, 1}, torch::kInt64)), starft::Error);
}

TEST(Losses, RejectInconsistentShapes) {
  auto I = ref("I"), T = ref("T"), s = ref("logit_scale"), labels = ref("labels");
  try {
    flyp_loss(I.slice(0, 0, 8), T.slice(0, 0, 8), I, T, s, 9);
    ADD_FAILURE() << "offset past the global batch accepted";
  } catch (const starft::Error& e) {
    EXPECT_NE(std::string(e.what()).find("[9, 17)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(flyp_loss(I, T.slice(0, 0, 8), I, T, s, 0), starft::Error);
  EXPECT_THROW(flyp_loss(I, T, I, T, torch::ones({2}), 0), starft::Error);
  EXPECT_THROW(starft_regulariser(I, I, T, T, labels.slice(0, 0, 8), labels, 100.0, true), starft::Error);
  EXPECT_THROW(starft_regulariser(I, I, T, T, labels.to(torch::kInt32), labels, 100.0, true), starft::Error);
  EXPECT_THROW(starft_regulariser(I, I, T.slice(1, 0, 16), T, labels, labels, 100.0, true), starft::Error);
}

TEST(RegulariserWeight, FollowsTheSchedule) {
  for (int64_t e = 0; e < 10; ++e) EXPECT_EQ(regulariser_weight(0.5, false, e, 10), 0.5);
  EXPECT_DOUBLE_EQ(regulariser_weight(0.5, true, 0, 10), 0.45);
  EXPECT_DOUBLE_EQ(regulariser_weight(0.5, true, 4, 10), 0.25);
  EXPECT_DOUBLE_EQ(regulariser_weight(0.5, true, 8, 10), 0.05);
  EXPECT_EQ(regulariser_weight(0.5, true, 9, 10), 0.0);  // the last epoch has no regulariser
  EXPECT_EQ(regulariser_weight(2.0, true, 0, 1), 0.0);
  EXPECT_DOUBLE_EQ(regulariser_weight(1.0, true, 0, 3), 2.0 / 3.0);
  EXPECT_THROW(regulariser_weight(0.5, true, 10, 10), starft::Error);
  EXPECT_THROW(regulariser_weight(0.5, true, -1, 10), starft::Error);
  EXPECT_THROW(regulariser_weight(0.5, false, 0, 0), starft::Error);
}
