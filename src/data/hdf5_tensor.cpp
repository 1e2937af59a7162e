#include "data/hdf5_tensor.h"

namespace starft::h5 {

Handle half_type() {
  auto guard = lock();
  Handle t(H5Tcopy(H5T_IEEE_F32LE));
  check(t.get(), "HDF5 float16 type");
  check(H5Tset_fields(t.get(), 15, 10, 5, 0, 10), "HDF5 float16 type");
  check(H5Tset_size(t.get(), 2), "HDF5 float16 type");
  check(H5Tset_ebias(t.get(), 15), "HDF5 float16 type");
  return t;
}

namespace {

Handle file_type(bool float16) {
  if (float16) return half_type();
  auto guard = lock();
  return Handle(H5Tcopy(H5T_IEEE_F32LE));
}

Handle create_dataset(hid_t file, const std::string& name, const std::vector<hsize_t>& dims, hid_t type) {
  auto guard = lock();
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  Handle ds(H5Dcreate2(file, name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  check(ds.get(), "HDF5 dataset '" + name + "'");
  return ds;
}

}  // namespace

void write_tensor(hid_t file, const std::string& name, const torch::Tensor& t, bool float16) {
  std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
  auto guard = lock();
  Handle type = t.scalar_type() == torch::kLong ? Handle(H5Tcopy(H5T_STD_I64LE)) : file_type(float16);
  auto ds = create_dataset(file, name, dims, type.get());
  auto data =
      t.scalar_type() == torch::kLong ? t.contiguous() : t.to(float16 ? torch::kHalf : torch::kFloat).contiguous();
  if (data.numel() > 0) {
    check(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data_ptr()),
          "HDF5 dataset '" + name + "'");
  }
}

torch::Tensor read_tensor(hid_t file, const std::string& name, const std::string& path, torch::ScalarType as) {
  auto guard = lock();
  auto ds = open_dataset(file, name, path);
  auto dims = shape(ds.get());
  std::vector<int64_t> sizes(dims.begin(), dims.end());
  if (as == torch::kLong) {
    auto out = torch::empty(sizes, torch::kLong);
    if (out.numel() > 0) {
      check(H5Dread(ds.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr()),
            "HDF5 file " + path + ": dataset '" + name + "'");
    }
    return out;
  }
  Handle stored(H5Dget_type(ds.get()));
  const bool half = H5Tget_size(stored.get()) == 2;
  auto out = torch::empty(sizes, half ? torch::kHalf : torch::kFloat);
  Handle mem = half ? half_type() : Handle(H5Tcopy(H5T_NATIVE_FLOAT));
  if (out.numel() > 0) {
    check(H5Dread(ds.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr()),
          "HDF5 file " + path + ": dataset '" + name + "'");
  }
  return out.to(torch::kFloat);
}

void write_double(hid_t file, const std::string& name, double value) {
  auto guard = lock();
  Handle space(H5Screate(H5S_SCALAR));
  Handle ds(H5Dcreate2(file, name.c_str(), H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  check(ds.get(), "HDF5 dataset '" + name + "'");
  check(H5Dwrite(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value), "HDF5 dataset '" + name + "'");
}

double read_double(hid_t file, const std::string& name, const std::string& path) {
  auto guard = lock();
  auto ds = open_dataset(file, name, path);
  double v = 0;
  check(H5Dread(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v),
        "HDF5 file " + path + ": dataset '" + name + "'");
  return v;
}

}  // namespace starft::h5
