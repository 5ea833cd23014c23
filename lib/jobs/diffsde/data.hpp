// Training and evaluation data: the built-in 2-D toy distributions, the analytic
// Gaussian and mixture problems, Fashion-MNIST (IDX files) and .npy arrays.
//
// A data source hands out batches keyed by (seed, batch index): row i of batch b is
// sample b * n + i of the stream, a function of the seed and that index alone, so a
// training run that resumes at step k sees exactly the batches an uninterrupted run
// would. Finite datasets (files) also expose all their rows, for evaluation.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/registry.hpp"
#include "diffsde/state.hpp"

namespace diffsde {

class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual std::string name() const = 0;
  // Per-sample shape, e.g. {2} for the toys, {1, 28, 28} for Fashion-MNIST.
  const std::vector<int>& shape() const { return shape_; }
  // Flattened size of one sample (the product of shape()).
  int dim() const;
  // Number of class labels (0: unlabelled).
  virtual int num_classes() const { return 0; }
  // Fills every row of `out` (n x dim): row i is stream sample batch_index * n + i.
  // `labels`, when not null and the source is labelled, receives n labels.
  virtual void batch(std::uint64_t seed, std::uint64_t batch_index, StateRef out,
                     std::vector<int>* labels = nullptr) const = 0;
  // Finite datasets: all rows, scaled as batch() hands them out; nullptr for generators.
  virtual const State* rows() const { return nullptr; }
  virtual const std::vector<int>* row_labels() const { return nullptr; }

 protected:
  std::vector<int> shape_;
};

// The registry of data sources ("moons", "swiss_roll", "checkerboard", "8gaussians",
// "gaussian", "gmm", "fashion_mnist", "npy"); relative file names resolve against
// BuildContext::base_dir.
Registry<DataSource>& data_registry();

// Fashion-MNIST and MNIST IDX files (gzip-compressed or not). Images come back as
// count x (rows * cols) bytes, labels as count bytes. Errors name the file.
struct IdxImages {
  int count = 0, rows = 0, cols = 0;
  std::vector<unsigned char> pixels;
};
IdxImages read_idx_images(const std::string& path);
std::vector<unsigned char> read_idx_labels(const std::string& path);

}  // namespace diffsde
