#include "distributed/device.h"

#include <regex>

#include "common/error.h"
#include "distributed/runtime.h"

namespace starft::distributed {

torch::Device parse_device(const std::string& text) {
  static const std::regex cuda_n(R"(cuda:(0|[1-9][0-9]?))");
  std::smatch m;
  if (text == "cpu") return torch::Device(torch::kCPU);
  if (text == "cuda") return torch::Device(torch::kCUDA);
  if (std::regex_match(text, m, cuda_n)) {
    return torch::Device(torch::kCUDA, static_cast<torch::DeviceIndex>(std::stoi(m[1].str())));
  }
  fail("--device must be cpu, cuda or cuda:N, got '", text, "'");
}

torch::Device run_device(const std::string& text, const Runtime* runtime) {
  const torch::Device device = parse_device(text);
  if (device.is_cpu()) return device;
  if (runtime) {
    check(runtime->device().is_cuda(), "--device ", text, ": this rank has no CUDA device (LibTorch ",
          torch::cuda::is_available() ? "sees one but the runtime chose the CPU"
                                      : "was built without CUDA or sees no GPU",
          "); use --device cpu");
    return device.has_index() ? device : runtime->device();
  }
  check(torch::cuda::is_available(), "--device ", text,
        ": no CUDA device (LibTorch was built without CUDA or sees no GPU); use --device cpu");
  return device;
}

}  // namespace starft::distributed
