// Conditioning: the named per-sample inputs a model takes beside x and t (class labels,
// text embeddings, ...), and what one model call sees of them.
//
// A run's conditioning holds, for every input, one row per sample of the run (or one row
// shared by every sample). The driver calls a model on blocks of rows; ModelRows says which
// samples the block's rows are and where their inputs are, so that a sample's output is a
// function of its own x, t and inputs whatever the batch size, threads, shards or ranks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace diffsde {

enum class InputType { int64, float64 };
// "int64" | "float64".
std::string to_string(InputType type);

// One named input for the samples of a run: rows() rows of size() values each (the
// product of the per-sample shape; a scalar has the shape {} and size 1). One row is shared
// by every sample (broadcast).
class ModelInput {
 public:
  ModelInput() = default;
  // Integer inputs (class labels): values holds rows x size(shape) entries, row-major.
  static ModelInput ints(std::string name, std::vector<long> shape, std::vector<std::int64_t> values);
  // Float inputs (embeddings): values holds rows x size(shape) entries, row-major.
  static ModelInput floats(std::string name, std::vector<long> shape, std::vector<double> values);

  const std::string& name() const { return name_; }
  InputType type() const { return type_; }
  // Per-sample shape ({} for a scalar).
  const std::vector<long>& shape() const { return shape_; }
  // Values per sample: the product of shape() (1 for a scalar).
  long size() const { return size_; }
  long rows() const { return rows_; }
  // Row `row`'s values (row 0 for every row when rows() == 1). The type must match.
  const std::int64_t* int_row(long row) const { return ints_.data() + (rows_ == 1 ? 0 : row) * size_; }
  const double* float_row(long row) const { return floats_.data() + (rows_ == 1 ? 0 : row) * size_; }
  const std::vector<std::int64_t>& int_values() const { return ints_; }
  const std::vector<double>& float_values() const { return floats_; }
  // Rows [first, first + count) as an input of its own (a shared row stays one row).
  ModelInput slice(long first, long count) const;
  // "(3,)", "(77, 768)" or "()" for the shape; "int64 (77, 768)" with the type.
  std::string shape_text() const;

 private:
  std::string name_;
  InputType type_ = InputType::float64;
  std::vector<long> shape_;
  long size_ = 1, rows_ = 0;
  std::vector<std::int64_t> ints_;
  std::vector<double> floats_;
};

// The inputs of a run, by name.
class Conditioning {
 public:
  // Error when an input of that name is already there.
  void add(ModelInput input);
  const ModelInput* find(const std::string& name) const;
  const std::vector<ModelInput>& inputs() const { return inputs_; }
  bool empty() const { return inputs_.empty(); }
  std::vector<std::string> names() const;
  // Rows [first, first + count) of every input.
  Conditioning slice(long first, long count) const;
  // Rows [first, first + count), each `times` times in a row (row k of the result is row
  // first + k / times); shared rows stay shared.
  Conditioning repeat(long first, long count, long times) const;
  // For one batched call of two conditionings: the inputs of `a` for rows [a_first, a_first +
  // count), then those of `b` for rows [b_first, b_first + count) (2 count rows; shared rows
  // are repeated). Both must have the same names, types and shapes (Error otherwise).
  static Conditioning stack(const Conditioning& a, long a_first, const Conditioning& b,
                            long b_first, long count);

 private:
  std::vector<ModelInput> inputs_;
};

// What a model call sees beside x and t: which samples its rows are and their inputs.
struct ModelRows {
  // Row r is sample first_sample + r; with period > 0, first_sample + r % period (a batch
  // that holds the same samples several times over, as a guided call does); with repeat >
  // 1, each sample fills `repeat` consecutive rows (first_sample + r / repeat, as the
  // likelihoods' draws of one sample do).
  std::uint64_t first_sample = 0;
  long period = 0;
  long repeat = 1;
  // The rows' inputs: row r's are row input_row0 + r of each input. Null: none given.
  const Conditioning* inputs = nullptr;
  long input_row0 = 0;

  std::uint64_t sample(long r) const {
    return first_sample + static_cast<std::uint64_t>((period > 0 ? r % period : r) / repeat);
  }
  // The input of that name, or nullptr.
  const ModelInput* input(const std::string& name) const {
    return inputs == nullptr ? nullptr : inputs->find(name);
  }
  // The rows from row `first` on, as a call of their own (for repeat = 1).
  ModelRows sub(long first) const {
    ModelRows out = *this;
    out.first_sample = first_sample + static_cast<std::uint64_t>(period > 0 ? first % period : first);
    out.input_row0 = input_row0 + first;
    return out;
  }
};

// What a model declares of one input it takes.
struct InputSpec {
  std::string name;
  InputType type = InputType::int64;
  // Per-sample shape ({} for a scalar); an entry -1 takes any length.
  std::vector<long> shape;
  // Integer labels: the valid ones are 0 .. classes - 1 (0: not checked) and null_label.
  long classes = 0;
  // The label that means "no class" (the unconditional input of classifier-free guidance),
  // where the model has one.
  bool has_null_label = false;
  std::int64_t null_label = -1;
  // The model runs without this input (its unconditional form).
  bool optional = false;
  std::string description;
};

// Checks `cond` against the inputs a model declares, for a run of `batch` samples: every
// required input is given, none is unknown, each has the declared type and per-sample
// shape, 1 or `batch` rows, and labels in range. Returns "" when it fits, otherwise the
// message, with *input set to the offending input's name ("" for the whole).
std::string check_conditioning(const std::vector<InputSpec>& specs, const Conditioning& cond,
                               long batch, std::string* input = nullptr);

// The unconditional input of classifier-free guidance for each of `specs` that `cond`
// gives: the model's null label, or zeros for float inputs. Error naming the input when
// a label input has no null label (the uncond must then be given).
Conditioning null_conditioning(const std::vector<InputSpec>& specs, const Conditioning& cond);

}  // namespace diffsde
