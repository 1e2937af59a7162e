#pragma once
// The C library allocator's settings for a training process.
//
// Why this exists: glibc's malloc serves blocks above its mmap threshold (128 KiB, growing
// dynamically up to 32 MiB) with fresh mmap()s and gives freed memory at the top of the heap back
// to the kernel above its trim threshold. A training step allocates and frees the same large
// tensors every step (activations, the token embedding's 49408 x width gradient, optimizer
// temporaries), so with the defaults every step page-faults and zero-fills them again: on the demo's
// pre-training, 10-15% of the time went to the kernel's clear_page / page-fault paths (`perf
// record`, AMD EPYC family 25 model 17). PyTorch's CPU users fix this with jemalloc / tcmalloc
// preloaded or with these same glibc settings (MALLOC_MMAP_THRESHOLD_ and friends); starft sets
// them itself so that every launcher (mpirun, srun, a plain shell) gets them.

namespace starft {

// Keeps freed memory in the process for reuse: mallopt(M_MMAP_THRESHOLD, 32 MiB) (glibc's largest
// accepted value on 64-bit), M_TRIM_THRESHOLD 1 GiB, M_TOP_PAD 256 MiB. Does nothing when the user
// set any of MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_ or a glibc.malloc
// tunable in GLIBC_TUNABLES (theirs win), or on a C library other than glibc. Returns whether the
// settings were applied. Call once, early in main(), before threads start.
bool keep_freed_memory_for_reuse();

}  // namespace starft
