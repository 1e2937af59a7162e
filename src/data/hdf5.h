#pragma once
// Small HDF5 helpers shared by the store writer and reader (and by any other HDF5 user in the
// process, such as the teacher cache).
//
// HDF5 is not safe to call from several threads at once, so every HDF5 call in starft holds
// `h5::lock()`. Read-only opens disable HDF5's file locking, which fails or hangs on NFS and
// Lustre; the readers never write, so no lock is needed.
#include <hdf5.h>

#include <mutex>
#include <string>
#include <vector>

namespace starft::h5 {

// The process-wide lock around HDF5. Recursive so a helper may call another helper.
std::unique_lock<std::recursive_mutex> lock();

// Owns one HDF5 identifier (file, dataset, dataspace, type, property list, attribute, group)
// and closes it with the matching H5?close. Callers hold lock() when the handle is destroyed.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : id_(other.id_) { other.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = other.id_;
      other.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// The innermost message of HDF5's error stack for the current thread ("" when empty), e.g.
// "file signature not found". Used to say why an HDF5 call failed.
std::string error_text();

// Throws starft::Error "<what>: <HDF5's reason>" when `status` (an herr_t or hid_t) is negative.
void check(long long status, const std::string& what);

// Opens an existing file read-only with file locking off (NFS/Lustre safe). Throws starft::Error
// naming `path` and HDF5's reason when it cannot be opened, and saying `git lfs pull` when the file
// is a Git LFS pointer (a store or teacher cache in a repository cloned without Git LFS).
Handle open_read(const std::string& path);
// Creates (truncates) a file for writing with the 1.10 format (fixed-array chunk indexes) and
// file locking off (the caller is the file's only user until it is renamed into place).
Handle create(const std::string& path);

Handle open_dataset(hid_t file, const std::string& name, const std::string& file_path);
bool exists(hid_t loc, const std::string& name);
// The dataset's dimensions.
std::vector<hsize_t> shape(hid_t dataset);

// Variable-length UTF-8 string type.
Handle string_type();

// Scalar attributes on a file or object.
void write_attribute(hid_t obj, const std::string& name, long long value);
void write_attribute(hid_t obj, const std::string& name, const std::string& value);
long long read_int_attribute(hid_t obj, const std::string& name, const std::string& file_path);
std::string read_string_attribute(hid_t obj, const std::string& name, const std::string& file_path);

// Whole 1-D datasets of strings: write `values` as a new dataset, read rows [start, start+n).
void write_strings(hid_t file, const std::string& name, const std::vector<std::string>& values);
std::vector<std::string> read_strings(hid_t dataset, hsize_t start, hsize_t n);

}  // namespace starft::h5
