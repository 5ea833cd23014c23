// PNG grids through stb_image_write (Debian's libstb; the implementation is in libstb.so).
#include "diffsde/image.hpp"

#include <stb/stb_image_write.h>

#include <algorithm>
#include <cmath>

#include "diffsde/error.hpp"
#include "diffsde/io.hpp"

namespace diffsde {

namespace {

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::string*>(context);
  out->append(static_cast<const char*>(data), static_cast<std::size_t>(size));
}

}  // namespace

std::string png_grid_bytes(const ConstStateRef& samples, const std::vector<int>& shape, int columns,
                           int pad) {
  if (shape.size() != 3 || (shape[0] != 1 && shape[0] != 3))
    throw Error("a PNG grid needs a per-sample shape [C, H, W] with C = 1 or 3");
  const int c = shape[0], h = shape[1], w = shape[2];
  if (samples.cols() != static_cast<Eigen::Index>(c) * h * w)
    throw Error("PNG grid: samples have " + std::to_string(samples.cols()) +
                " values each, the shape needs " + std::to_string(c * h * w));
  const int n = static_cast<int>(samples.rows());
  if (n == 0) throw Error("PNG grid: no samples");
  if (columns <= 0) columns = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
  columns = std::min(columns, n);
  const int rows = (n + columns - 1) / columns;
  const int width = columns * (w + pad) + pad, height = rows * (h + pad) + pad;
  std::vector<unsigned char> pixels(static_cast<std::size_t>(width) * height * c, 0);
  for (int k = 0; k < n; ++k) {
    const int x0 = pad + (k % columns) * (w + pad), y0 = pad + (k / columns) * (h + pad);
    for (int ch = 0; ch < c; ++ch)
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const double v = samples(k, (static_cast<Eigen::Index>(ch) * h + y) * w + x);
          const double clamped = std::isnan(v) ? -1.0 : std::clamp(v, -1.0, 1.0);
          pixels[(static_cast<std::size_t>(y0 + y) * width + (x0 + x)) * c + ch] =
              static_cast<unsigned char>(std::lround((clamped + 1.0) * 127.5));
        }
  }
  std::string out;
  if (!stbi_write_png_to_func(append_bytes, &out, width, height, c, pixels.data(), width * c))
    throw Error("PNG encoding failed");
  return out;
}

void write_png_grid(const std::string& path, const ConstStateRef& samples,
                    const std::vector<int>& shape, int columns, int pad) {
  std::string bytes;
  try {
    bytes = png_grid_bytes(samples, shape, columns, pad);
  } catch (const IoError&) {
    throw;
  } catch (const Error& e) {
    throw IoError(path, e.what());
  }
  write_file_atomic(path, bytes);
}

}  // namespace diffsde
