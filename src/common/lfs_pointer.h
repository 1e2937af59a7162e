#pragma once
// Git LFS pointers: the small text file a repository cloned without Git LFS (or before `git lfs
// pull`) holds in place of each large file it tracks, "version https://git-lfs.github.com/spec/v1"
// then "oid sha256:<hex>" and "size <bytes>" (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md).
// Every reader of a file that may live in such a repository (weights, tokenizer files, model
// configs, class lists, templates, CSV/TSV lists, INI configs, images, HDF5 stores) refuses one
// through these, naming the file and `git lfs pull`, instead of reading the pointer's three lines
// as data.
#include <cstddef>
#include <string>
#include <string_view>

namespace starft {

// How many of a file's first bytes the readers hand to is_lfs_pointer / lfs_pointer_reason: a
// pointer is smaller than this by the spec, so its oid and size are in them.
constexpr size_t kLfsPointerHeadBytes = 1024;

// Whether `head`, a file's first bytes, is a Git LFS pointer: its first line is exactly the spec's
// "version https://git-lfs.github.com/spec/v1" (ended by LF or CRLF). Looks at the first 44 bytes
// only; a shorter `head` is no pointer. Never throws.
bool is_lfs_pointer(std::string_view head);

// Why the pointer `head` (is_lfs_pointer) cannot be used as the file `path`, for a message after
// "<where>: ": "a Git LFS pointer (sha256:..., N bytes), not <content>: the repository was cloned
// without Git LFS, ... Fetch the file: `git lfs pull --include "<file name>"` ...". `content` names
// what the file should hold ("the weights", "an image"). Never throws.
std::string lfs_pointer_reason(std::string_view head, const std::string& path, const std::string& content);

// Throws starft::Error "<where>: <lfs_pointer_reason>" when `head`, the first bytes of the file
// `path`, is a Git LFS pointer; returns otherwise.
void refuse_lfs_pointer(std::string_view head, const std::string& where, const std::string& path,
                        const std::string& content);

// As refuse_lfs_pointer, for the first kLfsPointerHeadBytes bytes of the file `path`, read here. A
// file that cannot be opened or read passes (the caller's own reading reports that).
void refuse_lfs_pointer_file(const std::string& path, const std::string& where, const std::string& content);

}  // namespace starft
