#pragma once
// Small files written all or nothing (manifests, metrics, reports, configs, merges).
#include <string>

namespace starft {

// Writes `text` to `path` through `path`.tmp, fsync and rename: readers see the old file or the
// whole new one, never a part. Throws starft::Error naming the file when it cannot be written
// (the temporary is removed) or renamed.
void write_file_atomically(const std::string& path, const std::string& text);

}  // namespace starft
