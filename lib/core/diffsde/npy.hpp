// NumPy .npy files: float64 and float32, little-endian, C order (format 1.0-3.0 read,
// 1.0 written). Anything else is an IoError naming the file and what is wrong.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "diffsde/state.hpp"

namespace diffsde {

// uint8, int32 and int64 are read, never written.
enum class NpyDtype { float64, float32, uint8, int32, int64 };

struct NpyArray {
  std::vector<std::size_t> shape;
  std::vector<double> data;  // C order, converted to double on read
  // The file's dtype, and for int32 and int64 files the values exactly (data holds them
  // converted to double too).
  NpyDtype dtype = NpyDtype::float64;
  std::vector<std::int64_t> ints;
  std::size_t size() const;
};

NpyArray read_npy(const std::string& path);
// Writes atomically (temp file in the same folder, then rename): an existing file is
// never left half-written.
void write_npy(const std::string& path, const NpyArray& array, NpyDtype dtype = NpyDtype::float64);

// 2-D conveniences: a (rows, cols) array <-> State.
State read_npy_state(const std::string& path);
void write_npy(const std::string& path, const State& state, NpyDtype dtype = NpyDtype::float64);

}  // namespace diffsde
