// PNG output of image samples: a grid of tiles, values in [-1, 1] mapped to 0..255.
#pragma once

#include <string>
#include <vector>

#include "diffsde/state.hpp"

namespace diffsde {

// Writes the rows of `samples` (n x C*H*W, channel-major per row as in a (C, H, W)
// tensor) as a grid of `columns` tiles (0: about square) with a `pad`-pixel border,
// C = 1 (grey) or 3 (RGB). Values are clamped to [-1, 1] and mapped to round((v+1) 127.5).
// Written atomically; errors name the file.
void write_png_grid(const std::string& path, const ConstStateRef& samples,
                    const std::vector<int>& shape, int columns = 0, int pad = 2);

// The PNG bytes of the same grid.
std::string png_grid_bytes(const ConstStateRef& samples, const std::vector<int>& shape,
                           int columns = 0, int pad = 2);

}  // namespace diffsde
