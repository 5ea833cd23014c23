// The one state type: a batch of flattened samples, one sample per row.
#pragma once

#include <Eigen/Core>

namespace diffsde {

// batch x dim, row-major, so each sample is contiguous and maps onto a
// torch tensor (B, C, H, W) without reshuffling.
using State = Eigen::Array<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Views that accept a whole State or a block of its rows (a batch chunk).
using StateRef = Eigen::Ref<State>;
using ConstStateRef = Eigen::Ref<const State>;

// One value per sample.
using BatchVector = Eigen::ArrayXd;

}  // namespace diffsde
