#include "data/hdf5.h"

#include "common/error.h"
#include "common/lfs_pointer.h"

namespace starft::h5 {

std::unique_lock<std::recursive_mutex> lock() {
  static std::recursive_mutex mutex;
  std::unique_lock<std::recursive_mutex> guard(mutex);
  // HDF5 prints its error stack to stderr by default; starft reports errors itself. The
  // setting is per thread in thread-safe builds, so every thread turns it off once.
  thread_local bool silenced = false;
  if (!silenced) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    silenced = true;
  }
  return guard;
}

void Handle::reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE:
      H5Fclose(id_);
      break;
    case H5I_GROUP:
      H5Gclose(id_);
      break;
    case H5I_DATASET:
      H5Dclose(id_);
      break;
    case H5I_DATASPACE:
      H5Sclose(id_);
      break;
    case H5I_DATATYPE:
      H5Tclose(id_);
      break;
    case H5I_ATTR:
      H5Aclose(id_);
      break;
    case H5I_GENPROP_LST:
      H5Pclose(id_);
      break;
    default:
      H5Idec_ref(id_);
      break;
  }
  id_ = H5I_INVALID_HID;
}

namespace {
herr_t first_error(unsigned n, const H5E_error2_t* err, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (n == 0 && err->desc) *out = err->desc;
  return 0;
}
}  // namespace

std::string error_text() {
  std::string text;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, first_error, &text);
  return text;
}

void check(long long status, const std::string& what) {
  if (status < 0) {
    std::string reason = error_text();
    fail(what, reason.empty() ? "" : ": ", reason);
  }
}

Handle open_read(const std::string& path) {
  auto guard = lock();
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS));
  // Locking off: HDF5 1.10's flock() fails on many NFS/Lustre mounts, and readers never write.
  check(H5Pset_file_locking(fapl.get(), false, true), "HDF5 file access properties");
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()));
  if (!file.valid()) {
    std::string reason = error_text();
    refuse_lfs_pointer_file(path, "HDF5 file " + path, "HDF5 data");
    fail("cannot open HDF5 file ", path, reason.empty() ? "" : ": ", reason,
         " (is it a complete starft shard? re-run `starft shard` if it was damaged)");
  }
  return file;
}

Handle create(const std::string& path) {
  auto guard = lock();
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS));
  check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110), "HDF5 file access properties");
  // Locking off for writes too: starft writes each file under a name of its own (a shard's
  // .tmp) that nothing else opens until it is complete and renamed, so a lock would protect
  // nothing, and flock() fails on NFS without a lock daemon (ENOLCK), Lustre without -o flock
  // (ENOSYS) and Cray DVS (ENOTSUPP). HDF5_USE_FILE_LOCKING in the environment still wins.
  check(H5Pset_file_locking(fapl.get(), false, true), "HDF5 file access properties");
  Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()));
  if (!file.valid()) {
    const std::string reason = error_text();
    const bool lock = reason.find("lock") != std::string::npos;
    fail("cannot create HDF5 file ", path, reason.empty() ? "" : ": ", reason,
         lock ? " (the file system refuses file locks: export HDF5_USE_FILE_LOCKING=FALSE)" : "");
  }
  return file;
}

Handle open_dataset(hid_t file, const std::string& name, const std::string& file_path) {
  auto guard = lock();
  if (!exists(file, name)) fail("HDF5 file ", file_path, ": dataset '", name, "' is missing");
  Handle ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT));
  check(ds.get(), "HDF5 file " + file_path + ": cannot open dataset '" + name + "'");
  return ds;
}

bool exists(hid_t loc, const std::string& name) {
  auto guard = lock();
  // Check each path component so a missing parent group is "absent", not an error.
  size_t pos = 0;
  while (true) {
    pos = name.find('/', pos + 1);
    std::string prefix = name.substr(0, pos);
    if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (pos == std::string::npos) return true;
  }
}

std::vector<hsize_t> shape(hid_t dataset) {
  auto guard = lock();
  Handle space(H5Dget_space(dataset));
  check(space.get(), "HDF5 dataspace");
  int rank = H5Sget_simple_extent_ndims(space.get());
  check(rank, "HDF5 dataspace rank");
  std::vector<hsize_t> dims(rank);
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

Handle string_type() {
  auto guard = lock();
  Handle type(H5Tcopy(H5T_C_S1));
  check(H5Tset_size(type.get(), H5T_VARIABLE), "HDF5 string type");
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), "HDF5 string type");
  return type;
}

void write_attribute(hid_t obj, const std::string& name, long long value) {
  auto guard = lock();
  Handle space(H5Screate(H5S_SCALAR));
  Handle attr(H5Acreate2(obj, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  check(attr.get(), "HDF5 attribute '" + name + "'");
  int64_t v = value;
  check(H5Awrite(attr.get(), H5T_NATIVE_INT64, &v), "HDF5 attribute '" + name + "'");
}

void write_attribute(hid_t obj, const std::string& name, const std::string& value) {
  auto guard = lock();
  Handle type = string_type();
  Handle space(H5Screate(H5S_SCALAR));
  Handle attr(H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  check(attr.get(), "HDF5 attribute '" + name + "'");
  const char* p = value.c_str();
  check(H5Awrite(attr.get(), type.get(), &p), "HDF5 attribute '" + name + "'");
}

long long read_int_attribute(hid_t obj, const std::string& name, const std::string& file_path) {
  auto guard = lock();
  if (H5Aexists(obj, name.c_str()) <= 0) fail("HDF5 file ", file_path, ": attribute '", name, "' is missing");
  Handle attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT));
  int64_t v = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_INT64, &v), "HDF5 file " + file_path + ": attribute '" + name + "'");
  return v;
}

std::string read_string_attribute(hid_t obj, const std::string& name, const std::string& file_path) {
  auto guard = lock();
  if (H5Aexists(obj, name.c_str()) <= 0) fail("HDF5 file ", file_path, ": attribute '", name, "' is missing");
  Handle attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT));
  Handle type = string_type();
  char* p = nullptr;
  check(H5Aread(attr.get(), type.get(), &p), "HDF5 file " + file_path + ": attribute '" + name + "'");
  std::string value = p ? p : "";
  H5free_memory(p);
  return value;
}

void write_strings(hid_t file, const std::string& name, const std::vector<std::string>& values) {
  auto guard = lock();
  Handle type = string_type();
  hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr));
  Handle ds(H5Dcreate2(file, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  check(ds.get(), "HDF5 dataset '" + name + "'");
  std::vector<const char*> ptrs;
  ptrs.reserve(values.size());
  for (const auto& v : values) ptrs.push_back(v.c_str());
  if (n > 0)
    check(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), "HDF5 dataset '" + name + "'");
}

std::vector<std::string> read_strings(hid_t dataset, hsize_t start, hsize_t n) {
  auto guard = lock();
  std::vector<std::string> out;
  if (n == 0) return out;
  Handle type = string_type();
  Handle fspace(H5Dget_space(dataset));
  check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, &start, nullptr, &n, nullptr), "HDF5 string selection");
  Handle mspace(H5Screate_simple(1, &n, nullptr));
  std::vector<char*> ptrs(n, nullptr);
  check(H5Dread(dataset, type.get(), mspace.get(), fspace.get(), H5P_DEFAULT, ptrs.data()), "HDF5 string read");
  out.reserve(n);
  for (char* p : ptrs) out.emplace_back(p ? p : "");
  H5Dvlen_reclaim(type.get(), mspace.get(), H5P_DEFAULT, ptrs.data());
  return out;
}

}  // namespace starft::h5
