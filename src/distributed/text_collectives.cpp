#include "distributed/text_collectives.h"

#include <algorithm>
#include <cstring>

namespace starft::distributed {

namespace {

torch::Tensor bytes_of(const std::string& text, int64_t size) {
  // At least one byte, so an empty text still moves a real buffer through every backend.
  auto bytes = torch::zeros({std::max<int64_t>(size, 1)}, torch::kByte);
  if (!text.empty()) std::memcpy(bytes.data_ptr<uint8_t>(), text.data(), text.size());
  return bytes;
}

}  // namespace

std::vector<std::string> all_gather_text(Communicator& comm, const std::string& text, const std::string& name) {
  const auto lengths = comm.all_gather(torch::tensor({static_cast<int64_t>(text.size())}, torch::kLong), name);
  const int64_t longest = std::max<int64_t>(lengths.max().item<int64_t>(), 1);
  const auto gathered = comm.all_gather(bytes_of(text, longest), name);
  const auto* all = gathered.data_ptr<uint8_t>();
  std::vector<std::string> out;
  for (int r = 0; r < comm.size(); ++r)
    out.emplace_back(reinterpret_cast<const char*>(all + r * longest), static_cast<size_t>(lengths[r].item<int64_t>()));
  return out;
}

std::string broadcast_text(Communicator& comm, const std::string& text, int root, const std::string& name) {
  auto length = torch::tensor({static_cast<int64_t>(text.size())}, torch::kLong);
  comm.broadcast(length, root, name);
  const int64_t n = length.item<int64_t>();
  auto bytes = bytes_of(comm.rank() == root ? text : std::string(), n);
  comm.broadcast(bytes, root, name);
  return std::string(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), static_cast<size_t>(n));
}

}  // namespace starft::distributed
