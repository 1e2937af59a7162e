#include "common/allocator.h"

#include <cstdlib>
#include <cstring>
#include <initializer_list>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace starft {

bool keep_freed_memory_for_reuse() {
#if defined(__GLIBC__)
  for (const char* name : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"})
    if (std::getenv(name)) return false;
  if (const char* tunables = std::getenv("GLIBC_TUNABLES"); tunables && std::strstr(tunables, "glibc.malloc."))
    return false;
  constexpr int kMiB = 1 << 20;
  // Each call returns 1 on success; all three are within glibc's accepted ranges.
  const bool ok = mallopt(M_MMAP_THRESHOLD, 32 * kMiB) == 1 && mallopt(M_TRIM_THRESHOLD, 1024 * kMiB) == 1 &&
                  mallopt(M_TOP_PAD, 256 * kMiB) == 1;
  return ok;
#else
  return false;
#endif
}

}  // namespace starft
