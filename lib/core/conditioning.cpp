#include "diffsde/conditioning.hpp"

#include <algorithm>

#include "diffsde/error.hpp"

namespace diffsde {

std::string to_string(InputType type) { return type == InputType::int64 ? "int64" : "float64"; }

namespace {

long product(const std::vector<long>& shape, const std::string& name) {
  long n = 1;
  for (long d : shape) {
    if (d < 1) throw Error("model input '" + name + "': shape entries must be >= 1");
    n *= d;
  }
  return n;
}

template <class T>
long row_count(const std::string& name, long size, const std::vector<T>& values) {
  if (values.empty()) throw Error("model input '" + name + "' has no rows");
  if (values.size() % static_cast<std::size_t>(size) != 0)
    throw Error("model input '" + name + "': " + std::to_string(values.size()) +
                " values are not a whole number of rows of " + std::to_string(size));
  return static_cast<long>(values.size() / static_cast<std::size_t>(size));
}

std::string shape_string(const std::vector<long>& shape) {
  std::string s = "(";
  for (std::size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

template <class T>
std::vector<T> rows_of(const std::vector<T>& values, long rows, long size, long first, long count) {
  if (rows == 1) return values;
  const auto begin = values.begin() + first * size;
  return std::vector<T>(begin, begin + count * size);
}

// count rows starting at `first` (a shared row repeated).
template <class T>
void append_rows(std::vector<T>& out, const std::vector<T>& values, long rows, long size, long first,
                 long count) {
  if (rows == 1) {
    for (long r = 0; r < count; ++r) out.insert(out.end(), values.begin(), values.begin() + size);
  } else {
    out.insert(out.end(), values.begin() + first * size, values.begin() + (first + count) * size);
  }
}

}  // namespace

ModelInput ModelInput::ints(std::string name, std::vector<long> shape, std::vector<std::int64_t> values) {
  ModelInput in;
  in.size_ = product(shape, name);
  in.rows_ = row_count(name, in.size_, values);
  in.name_ = std::move(name);
  in.type_ = InputType::int64;
  in.shape_ = std::move(shape);
  in.ints_ = std::move(values);
  return in;
}

ModelInput ModelInput::floats(std::string name, std::vector<long> shape, std::vector<double> values) {
  ModelInput in;
  in.size_ = product(shape, name);
  in.rows_ = row_count(name, in.size_, values);
  in.name_ = std::move(name);
  in.type_ = InputType::float64;
  in.shape_ = std::move(shape);
  in.floats_ = std::move(values);
  return in;
}

ModelInput ModelInput::slice(long first, long count) const {
  if (rows_ != 1 && (first < 0 || count < 0 || first + count > rows_))
    throw Error("model input '" + name_ + "': rows " + std::to_string(first) + " .. " +
                std::to_string(first + count - 1) + " asked of " + std::to_string(rows_));
  ModelInput out = *this;
  if (rows_ == 1) return out;
  out.rows_ = count;
  if (type_ == InputType::int64)
    out.ints_ = rows_of(ints_, rows_, size_, first, count);
  else
    out.floats_ = rows_of(floats_, rows_, size_, first, count);
  return out;
}

std::string ModelInput::shape_text() const { return to_string(type_) + " " + shape_string(shape_); }

void Conditioning::add(ModelInput input) {
  if (find(input.name()) != nullptr) throw Error("model input '" + input.name() + "' is given twice");
  inputs_.push_back(std::move(input));
}

const ModelInput* Conditioning::find(const std::string& name) const {
  for (const auto& in : inputs_)
    if (in.name() == name) return &in;
  return nullptr;
}

std::vector<std::string> Conditioning::names() const {
  std::vector<std::string> out;
  for (const auto& in : inputs_) out.push_back(in.name());
  return out;
}

Conditioning Conditioning::slice(long first, long count) const {
  Conditioning out;
  for (const auto& in : inputs_) out.inputs_.push_back(in.slice(first, count));
  return out;
}

Conditioning Conditioning::repeat(long first, long count, long times) const {
  Conditioning out;
  for (const auto& in : inputs_) {
    if (in.rows() == 1) {
      out.inputs_.push_back(in);
      continue;
    }
    if (first < 0 || count < 0 || times < 1 || first + count > in.rows())
      throw Error("model input '" + in.name() + "': rows " + std::to_string(first) + " .. " +
                  std::to_string(first + count - 1) + " asked of " + std::to_string(in.rows()));
    const long size = in.size();
    if (in.type() == InputType::int64) {
      std::vector<std::int64_t> v;
      v.reserve(static_cast<std::size_t>(count * times * size));
      for (long r = first; r < first + count; ++r)
        for (long k = 0; k < times; ++k) v.insert(v.end(), in.int_row(r), in.int_row(r) + size);
      out.inputs_.push_back(ModelInput::ints(in.name(), in.shape(), std::move(v)));
    } else {
      std::vector<double> v;
      v.reserve(static_cast<std::size_t>(count * times * size));
      for (long r = first; r < first + count; ++r)
        for (long k = 0; k < times; ++k) v.insert(v.end(), in.float_row(r), in.float_row(r) + size);
      out.inputs_.push_back(ModelInput::floats(in.name(), in.shape(), std::move(v)));
    }
  }
  return out;
}

Conditioning Conditioning::stack(const Conditioning& a, long a_first, const Conditioning& b, long b_first,
                                 long count) {
  if (a.inputs_.size() != b.inputs_.size())
    throw Error("stacking conditionings with different inputs (" + std::to_string(a.inputs_.size()) + " and " +
                std::to_string(b.inputs_.size()) + ")");
  Conditioning out;
  for (const auto& x : a.inputs_) {
    const ModelInput* y = b.find(x.name());
    if (y == nullptr) throw Error("model input '" + x.name() + "' is missing from the second conditioning");
    if (y->type() != x.type() || y->shape() != x.shape())
      throw Error("model input '" + x.name() + "' is " + x.shape_text() + " in one conditioning and " +
                  y->shape_text() + " in the other");
    if (x.type() == InputType::int64) {
      std::vector<std::int64_t> v;
      v.reserve(static_cast<std::size_t>(2 * count * x.size()));
      append_rows(v, x.int_values(), x.rows(), x.size(), a_first, count);
      append_rows(v, y->int_values(), y->rows(), y->size(), b_first, count);
      out.inputs_.push_back(ModelInput::ints(x.name(), x.shape(), std::move(v)));
    } else {
      std::vector<double> v;
      v.reserve(static_cast<std::size_t>(2 * count * x.size()));
      append_rows(v, x.float_values(), x.rows(), x.size(), a_first, count);
      append_rows(v, y->float_values(), y->rows(), y->size(), b_first, count);
      out.inputs_.push_back(ModelInput::floats(x.name(), x.shape(), std::move(v)));
    }
  }
  return out;
}

std::string check_conditioning(const std::vector<InputSpec>& specs, const Conditioning& cond, long batch,
                               std::string* input) {
  auto fail = [&](const std::string& name, const std::string& message) {
    if (input != nullptr) *input = name;
    return message;
  };
  if (specs.empty() && !cond.empty())
    return fail(cond.inputs().front().name(), "the model takes no conditioning (it is unconditional)");
  for (const auto& in : cond.inputs()) {
    const auto spec = std::find_if(specs.begin(), specs.end(), [&](const InputSpec& s) { return s.name == in.name(); });
    if (spec == specs.end()) {
      std::string known;
      for (const auto& s : specs) known += (known.empty() ? "" : ", ") + s.name;
      return fail(in.name(), "the model has no input '" + in.name() + "' (its inputs: " + known + ")");
    }
    if (in.type() != spec->type)
      return fail(in.name(), "is " + to_string(in.type()) + ", the model takes " + to_string(spec->type) +
                                 (spec->type == InputType::int64 ? " (integer class labels)" : ""));
    bool shape_ok = in.shape().size() == spec->shape.size();
    for (std::size_t k = 0; shape_ok && k < spec->shape.size(); ++k)
      shape_ok = spec->shape[k] < 0 || spec->shape[k] == in.shape()[k];
    if (!shape_ok) {
      std::string want = "(";
      for (std::size_t k = 0; k < spec->shape.size(); ++k)
        want += (k ? ", " : "") + (spec->shape[k] < 0 ? std::string("any") : std::to_string(spec->shape[k]));
      want += spec->shape.size() == 1 ? ",)" : ")";
      return fail(in.name(), "has per-sample shape " + shape_string(in.shape()) + ", the model takes " + want);
    }
    if (in.rows() != 1 && in.rows() != batch)
      return fail(in.name(), "has " + std::to_string(in.rows()) + " rows; expected " + std::to_string(batch) +
                                 " (one per sample) or 1 (shared by every sample)");
    if (in.type() == InputType::int64 && spec->classes > 0) {
      const auto& v = in.int_values();
      for (std::size_t i = 0; i < v.size(); ++i) {
        const bool null = spec->has_null_label && v[i] == spec->null_label;
        if (!null && (v[i] < 0 || v[i] >= spec->classes))
          return fail(in.name(), "label " + std::to_string(v[i]) + " (row " +
                                     std::to_string(static_cast<long>(i) / in.size()) + ") is out of range: the model has " +
                                     std::to_string(spec->classes) + " classes (0 .. " +
                                     std::to_string(spec->classes - 1) + ")" +
                                     (spec->has_null_label ? ", and " + std::to_string(spec->null_label) + " for none"
                                                           : ""));
      }
    }
  }
  for (const auto& spec : specs)
    if (!spec.optional && cond.find(spec.name) == nullptr)
      return fail(spec.name, "is required: the model takes input '" + spec.name + "' (" +
                                 to_string(spec.type) + " " + shape_string(spec.shape) + ")");
  return "";
}

Conditioning null_conditioning(const std::vector<InputSpec>& specs, const Conditioning& cond) {
  Conditioning out;
  for (const auto& in : cond.inputs()) {
    const auto spec = std::find_if(specs.begin(), specs.end(), [&](const InputSpec& s) { return s.name == in.name(); });
    if (in.type() == InputType::int64) {
      if (spec == specs.end() || !spec->has_null_label)
        throw Error("model input '" + in.name() +
                    "' has no null label for the unconditional evaluation of guidance; give it in \"uncond\"");
      out.add(ModelInput::ints(in.name(), in.shape(), std::vector<std::int64_t>(static_cast<std::size_t>(in.size()),
                                                                               spec->null_label)));
    } else {
      out.add(ModelInput::floats(in.name(), in.shape(), std::vector<double>(static_cast<std::size_t>(in.size()), 0.0)));
    }
  }
  return out;
}

}  // namespace diffsde
