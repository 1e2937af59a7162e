#include "distributed/param_check.h"

#include <cmath>
#include <sstream>

#include "common/error.h"

namespace starft::distributed {

torch::Tensor parameter_checksum(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  auto device = params.empty() ? torch::Device(torch::kCPU) : params.front().device();
  auto sums = torch::zeros({2}, torch::TensorOptions().dtype(torch::kDouble).device(device));
  for (const auto& p : params) {
    auto d = p.detach().to(torch::kDouble);
    sums[0] += d.sum();
    sums[1] += d.square().sum();
  }
  return sums;
}

void check_parameters_in_sync(const std::vector<torch::Tensor>& params, Communicator& comm, const std::string& when) {
  if (comm.size() == 1) return;
  auto local = parameter_checksum(params).reshape({1, 2});
  auto all = comm.all_gather(local, "parameter_checksum").to(torch::kCPU);
  auto a = all.accessor<double, 2>();
  // Ranks holding the same parameters compute the same sums, up to the order of float64
  // additions (with different thread counts): a 1e-12 relative tolerance. sqrt(n * sum of
  // squares) bounds the sum of magnitudes, the scale of the sum's rounding error.
  int64_t n = 0;
  for (const auto& p : params) n += p.numel();
  const double tol_sum = 1e-12 * std::max(1.0, std::sqrt(static_cast<double>(n) * a[0][1]));
  const double tol_sq = 1e-12 * std::max(1.0, a[0][1]);
  const auto close = [](double x, double y, double tol) {
    return (std::isnan(x) && std::isnan(y)) || std::abs(x - y) <= tol;
  };
  std::vector<int> differ;
  for (int r = 1; r < comm.size(); ++r) {
    if (!close(a[r][0], a[0][0], tol_sum) || !close(a[r][1], a[0][1], tol_sq)) differ.push_back(r);
  }
  if (differ.empty()) return;
  std::ostringstream os;
  os.precision(17);
  for (size_t i = 0; i < differ.size(); ++i) {
    int r = differ[i];
    os << (i ? "; " : "") << "rank " << r << " (sum " << a[r][0] << ", sum of squares " << a[r][1] << ")";
  }
  fail("parameters diverged across ranks at ", when, ": ", os.str(), " differ from rank 0 (sum ", a[0][0],
       ", sum of squares ", a[0][1],
       "). The ranks no longer train the same model: a rank skipped the "
       "gradient synchronisation, updated its parameters on its own, or started from other weights.");
}

}  // namespace starft::distributed
