#pragma once
// Collectives on text (JSON summaries, paths, "ok" words) over any Communicator, so code that
// exchanges a few kilobytes of metadata uses the same communicators, watchdog and timeouts as
// the tensors do. Every rank must call them in the same order, as with any collective.
#include <string>
#include <vector>

#include "distributed/communicator.h"

namespace starft::distributed {

// Every rank's `text` in rank order, on every rank. Two all-gathers: the lengths (int64), then
// the bytes (uint8) padded to the longest text. `name` appears in timeout messages.
std::vector<std::string> all_gather_text(Communicator& comm, const std::string& text,
                                         const std::string& name = "all_gather_text");

// `root`'s `text` on every rank (the other ranks' `text` is ignored). Two broadcasts: the
// length, then the bytes.
std::string broadcast_text(Communicator& comm, const std::string& text, int root = 0,
                           const std::string& name = "broadcast_text");

}  // namespace starft::distributed
