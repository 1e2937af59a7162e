#pragma once
// Whole tensors and scalars as HDF5 datasets (the teacher cache's format, and any other file of
// features). Every call holds h5::lock() (data/hdf5.h).
#include <torch/torch.h>

#include <string>

#include "data/hdf5.h"

namespace starft::h5 {

// IEEE half as an HDF5 type (1.10 has no predefined one); h5py reads it as float16.
Handle half_type();

// Writes the whole of a CPU tensor (int64 as int64; floating types as float16 when `float16`,
// else float32) to a new dataset `name` of its shape. Throws starft::Error naming the dataset.
void write_tensor(hid_t file, const std::string& name, const torch::Tensor& t, bool float16);

// Reads a whole dataset as float32 (stored float16 or float32) or, with `as` = kLong, int64.
// Throws starft::Error naming `path` and the dataset when it is missing or unreadable.
torch::Tensor read_tensor(hid_t file, const std::string& name, const std::string& path, torch::ScalarType as);

// A float64 scalar dataset.
void write_double(hid_t file, const std::string& name, double value);
double read_double(hid_t file, const std::string& name, const std::string& path);

}  // namespace starft::h5
