// The sweep metrics: the metric registry and the built-in metrics (see sweep.hpp and
// docs/sweeps.md).
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "diffsde/conditioning.hpp"
#include "diffsde/data.hpp"
#include "diffsde/error.hpp"
#include "diffsde/io.hpp"
#include "diffsde/metrics.hpp"
#include "diffsde/sweep.hpp"

namespace diffsde {

using nlohmann::json;

namespace {

// Metrics that compare the samples with the (unconditional) data law cannot judge a
// conditional run: they are refused there, naming the one that can.
void unconditional_only(const MetricSetup& setup, const std::string& metric) {
  if (setup.cond && !setup.cond->empty())
    throw ConfigError(setup.path, metric + " compares the samples with the unconditional data law, but the problem "
                                           "has per-sample inputs (\"cond\"); use log_likelihood, the exact "
                                           "conditional log-density of each sample");
}

// The class labels of a conditional problem's samples: its int64 scalar input `name`.
// A sample whose label is the model's null label (or negative) has none: -1 here.
struct SampleLabels {
  std::string name = "y";
  std::optional<std::int64_t> null_label;

  // Checks that the problem gives the input (ConfigError at setup.path naming what is
  // missing), takes the model's null label, and returns the labels of the batch.
  std::vector<std::int64_t> prepare(const MetricSetup& setup, const std::string& metric) {
    const std::string need = metric + " needs a conditional problem whose input '" + name +
                             "' is an int64 class label per sample (\"cond\": {\"" + name + "\": ...})";
    if (!setup.cond || setup.cond->empty())
      throw ConfigError(setup.path, need + ", but the problem has no per-sample inputs");
    const ModelInput* input = setup.cond->find(name);
    if (input == nullptr) {
      std::string names;
      for (const auto& n : setup.cond->names()) names += (names.empty() ? "" : ", ") + n;
      throw ConfigError(setup.path, need + ", but the problem's inputs are: " + names);
    }
    if (input->type() != InputType::int64 || !input->shape().empty())
      throw ConfigError(setup.path, need + ", but '" + name + "' is " + to_string(input->type()) + " " +
                                        input->shape_text());
    for (const auto& spec : setup.model->inputs())
      if (spec.name == name && spec.has_null_label) null_label = spec.null_label;
    return of(*input, 0, setup.batch);
  }

  std::vector<std::int64_t> of(const ModelInput& input, long row0, long n) const {
    std::vector<std::int64_t> out(static_cast<std::size_t>(n));
    for (long i = 0; i < n; ++i) {
      const std::int64_t label = input.int_row(row0 + i)[0];
      out[static_cast<std::size_t>(i)] = label < 0 || (null_label && label == *null_label) ? -1 : label;
    }
    return out;
  }

  // The labels of a cell's samples.
  std::vector<std::int64_t> of(const MetricInput& input) const {
    const ModelInput* labels = input.rows == nullptr ? nullptr : input.rows->input(name);
    if (labels == nullptr) throw Error("the samples come without their input '" + name + "'");
    return of(*labels, input.rows->input_row0, input.samples.rows());
  }
};

// Loads a classifier's method for a metric; errors that are not about reading the file
// are ConfigErrors at PATH.classifier.
FeatureMap load_classifier(const FeatureMapOptions& options, const std::string& path) {
  try {
    return load_feature_map(options);
  } catch (const IoError&) {
    throw;
  } catch (const Error& e) {
    throw ConfigError(join_path(path, "classifier"), e.what());
  }
}

const AnalyticModel& analytic_model(const MetricSetup& setup, const std::string& metric, const std::string& why) {
  const auto* analytic = dynamic_cast<const AnalyticModel*>(setup.model.get());
  if (analytic == nullptr)
    throw ConfigError(setup.path, metric + " needs an analytic model (gaussian, gmm) for " + why + "; model '" +
                                      setup.model->name() + "' has none");
  return *analytic;
}

class PathErrorMetric final : public SweepMetric {
 public:
  std::string name() const override { return "path_error"; }
  bool uses_reference() const override { return true; }
  void prepare(const MetricSetup& setup) override {
    if (!setup.has_reference)
      throw ConfigError(setup.path, "path_error needs a reference solve (sweep.reference)");
  }
  void compute(const MetricInput& input, json& values) const override {
    if (input.reference == nullptr) return;
    const PathError e = path_error(input.samples, *input.reference);
    values["path_rms"] = e.rms;
    values["path_max"] = e.max;
  }
};

class LogLikelihoodMetric final : public SweepMetric {
 public:
  std::string name() const override { return "log_likelihood"; }
  void prepare(const MetricSetup& setup) override {
    analytic_model(setup, "log_likelihood", "its exact data density");
  }
  // With per-sample inputs, each sample's density is that of its own inputs (a labelled
  // mixture: log p(x | y) of its class).
  void compute(const MetricInput& input, json& values) const override {
    const auto& model = dynamic_cast<const AnalyticModel&>(input.model);
    if (input.rows == nullptr) {
      values["log_likelihood"] = mean_log_likelihood(model, input.samples);
      return;
    }
    BatchVector logp(input.samples.rows());
    model.log_density_rows(input.samples, 0.0, *input.rows, logp);
    values["log_likelihood"] = logp.mean();
  }
};

class FrechetMetric final : public SweepMetric {
 public:
  std::string name() const override { return "frechet"; }
  void prepare(const MetricSetup& setup) override {
    unconditional_only(setup, "frechet");
    analytic_model(setup, "frechet", "the exact data mean and covariance (for image models use "
                                     "feature_frechet, see docs/metrics.md)");
    if (setup.batch < 2) throw ConfigError(setup.path, "frechet needs a batch of at least 2 samples");
  }
  void compute(const MetricInput& input, json& values) const override {
    values["frechet"] = frechet_distance(input.samples, dynamic_cast<const AnalyticModel&>(input.model));
  }
};

class SlicedW2Metric final : public SweepMetric {
 public:
  explicit SlicedW2Metric(const Params& p) {
    projections_ = p.integer("projections");
    if (projections_ < 1 || projections_ > 100000) p.fail("projections", "must be between 1 and 100000");
    if (p.has("data_samples")) {
      data_samples_ = p.integer("data_samples");
      if (data_samples_ < 1 || data_samples_ > (1L << 26)) p.fail("data_samples", "must be between 1 and 2^26");
    }
    if (p.has("seed")) seed_ = non_negative_integer(p.value("seed"), p.path_of("seed"));
  }
  std::string name() const override { return "sliced_w2"; }
  void prepare(const MetricSetup& setup) override {
    unconditional_only(setup, "sliced_w2");
    const auto& model = analytic_model(setup, "sliced_w2", "exact data samples");
    const std::uint64_t seed = seed_.value_or(setup.seed);
    data_ = model.sample_data(data_samples_ > 0 ? data_samples_ : setup.batch, seed);
    directions_ = projection_directions(static_cast<int>(projections_), model.dim(), seed);
  }
  void compute(const MetricInput& input, json& values) const override {
    values["sliced_w2"] = sliced_wasserstein2(input.samples, data_, directions_);
  }

 private:
  long projections_ = 64, data_samples_ = 0;
  std::optional<std::uint64_t> seed_;
  State data_, directions_;
};

class MmdMetric final : public SweepMetric {
 public:
  explicit MmdMetric(const Params& p) {
    samples_ = p.integer("samples");
    if (samples_ < 3 || samples_ > 100000) p.fail("samples", "must be between 3 and 100000");
    if (p.has("bandwidth")) {
      bandwidth_ = p.number("bandwidth");
      if (!(bandwidth_ > 0)) p.fail("bandwidth", "must be > 0");
    }
    if (p.has("seed")) seed_ = non_negative_integer(p.value("seed"), p.path_of("seed"));
  }
  std::string name() const override { return "mmd"; }
  void prepare(const MetricSetup& setup) override {
    unconditional_only(setup, "mmd");
    const auto& model = analytic_model(setup, "mmd", "exact data samples");
    n_ = std::min(samples_, setup.batch);
    if (n_ < 3) throw ConfigError(setup.path, "mmd needs a batch of at least 3 samples");
    data_ = model.sample_data(n_, seed_.value_or(setup.seed));
    h_ = bandwidth_ > 0 ? bandwidth_ : median_pairwise_distance(data_);
  }
  void compute(const MetricInput& input, json& values) const override {
    const MmdResult r = mmd2_rbf(input.samples.topRows(n_), data_, h_);
    values["mmd2"] = r.mmd2;
    values["mmd2_se"] = r.standard_error;
  }

 private:
  long samples_ = 1000, n_ = 0;
  double bandwidth_ = 0, h_ = 0;
  std::optional<std::uint64_t> seed_;
  State data_;
};

// The Fréchet distance in a classifier's feature space (image models): the Gaussian fit
// of the samples' features against that of the data set's features, embedded once.
class FeatureFrechetMetric final : public SweepMetric {
 public:
  explicit FeatureFrechetMetric(const Params& p) : path_(p.path()) {
    if (!p.has("classifier")) p.fail("classifier", "is required (a TorchScript classifier with a 'features' method)");
    options_.path = p.string("classifier");
    data_spec_ = p.value("data");
    if (!data_spec_.is_object()) p.fail("data", "must be an object ({\"name\": ...})");
    data_samples_ = p.integer("data_samples");
    if (data_samples_ < 2 || data_samples_ > (1L << 24)) p.fail("data_samples", "must be between 2 and 2^24");
    options_.max_batch = p.integer("max_batch");
    if (options_.max_batch < 1) p.fail("max_batch", "must be >= 1");
    options_.device = p.string("device");
    clip_ = p.boolean("clip");
    if (p.has("seed")) seed_ = non_negative_integer(p.value("seed"), p.path_of("seed"));
    per_class_ = p.boolean("per_class");
    labels_.name = p.string("input");
  }
  std::string name() const override { return "feature_frechet"; }
  void prepare(const MetricSetup& setup) override {
    std::vector<std::int64_t> sample_labels;
    if (per_class_)
      sample_labels = labels_.prepare(setup, "feature_frechet with per_class");
    else
      unconditional_only(setup, "feature_frechet");
    if (setup.batch < 2) throw ConfigError(setup.path, "feature_frechet needs a batch of at least 2 samples");
    options_.path = resolve_path(setup.base_dir, options_.path);
    const BuildContext context{nullptr, setup.base_dir};
    const auto data = data_registry().create(data_spec_, join_path(path_, "data"), context);
    if (data->dim() != setup.model->dim())
      throw ConfigError(join_path(path_, "data"), "the data have " + std::to_string(data->dim()) +
                                                      " values per sample, the model " +
                                                      std::to_string(setup.model->dim()));
    State rows;
    std::vector<std::int64_t> data_labels;
    if (const State* all = data->rows()) {
      rows = all->topRows(std::min<Eigen::Index>(data_samples_, all->rows()));
      if (per_class_ && data->row_labels() != nullptr)
        data_labels.assign(data->row_labels()->begin(), data->row_labels()->begin() + rows.rows());
    } else {
      rows.resize(data_samples_, data->dim());
      std::vector<int> labels;
      data->batch(seed_.value_or(setup.seed), 0, rows, per_class_ ? &labels : nullptr);
      data_labels.assign(labels.begin(), labels.end());
    }
    if (per_class_) check_classes(setup, sample_labels, data_labels, data->name());
    features_ = load_classifier(options_, path_);
    try {
      if (per_class_)
        class_fits_ = gaussian_fits_by_class(features_(rows), data_labels);
      else
        data_fit_ = gaussian_fit(features_(rows));
    } catch (const Error& e) {
      throw ConfigError(join_path(path_, "classifier"), e.what());
    }
  }
  void compute(const MetricInput& input, json& values) const override {
    State x = input.samples;
    if (clip_) x = x.max(-1.0).min(1.0);
    if (!per_class_) {
      values["feature_frechet"] = frechet_distance(gaussian_fit(features_(x)), data_fit_);
      return;
    }
    // The mean over the classes with at least 2 samples, and each of them.
    const auto by_class = frechet_distance_by_class(features_(x), labels_.of(input), class_fits_);
    json classes = json::object();
    double sum = 0;
    for (const auto& [c, d] : by_class) {
      classes[std::to_string(c)] = d;
      sum += d;
    }
    values["feature_frechet"] = sum / static_cast<double>(by_class.size());
    values["feature_frechet_classes"] = classes;
  }

 private:
  std::string path_;
  FeatureMapOptions options_;
  json data_spec_;
  long data_samples_ = 10000;
  bool clip_ = true;
  std::optional<std::uint64_t> seed_;
  bool per_class_ = false;
  SampleLabels labels_;
  FeatureMap features_;
  GaussianFit data_fit_;
  std::map<std::int64_t, GaussianFit> class_fits_;

  // Every class with at least 2 samples needs at least 2 data rows, and some class needs
  // 2 samples; checked before anything is embedded.
  void check_classes(const MetricSetup& setup, const std::vector<std::int64_t>& sample_labels,
                     const std::vector<std::int64_t>& data_labels, const std::string& data_name) const {
    if (data_labels.empty())
      throw ConfigError(setup.path, "feature_frechet with per_class needs a labelled data set, and data '" +
                                        data_name + "' has no labels");
    std::map<std::int64_t, long> samples, data_rows;
    for (std::int64_t c : sample_labels)
      if (c >= 0) ++samples[c];
    for (std::int64_t c : data_labels) ++data_rows[c];
    bool any = false;
    for (const auto& [c, n] : samples) {
      if (n < 2) continue;
      any = true;
      if (data_rows[c] < 2)
        throw ConfigError(join_path(path_, "data"), "class " + std::to_string(c) + " has " + std::to_string(n) +
                                                        " samples, but the data rows compared against have " +
                                                        std::to_string(data_rows[c]) + " of it (2 needed)");
    }
    if (!any) throw ConfigError(setup.path, "feature_frechet with per_class: no class has 2 or more labelled samples");
  }
};

// A classifier's accuracy on labelled samples: the argmax of its logits against each
// sample's class label (the samples of a class-conditional run).
class AccuracyMetric final : public SweepMetric {
 public:
  explicit AccuracyMetric(const Params& p) : path_(p.path()) {
    if (!p.has("classifier")) p.fail("classifier", "is required (a TorchScript classifier whose forward gives logits)");
    options_.path = p.string("classifier");
    options_.method = "forward";
    options_.max_batch = p.integer("max_batch");
    if (options_.max_batch < 1) p.fail("max_batch", "must be >= 1");
    options_.device = p.string("device");
    clip_ = p.boolean("clip");
    labels_.name = p.string("input");
  }
  std::string name() const override { return "accuracy"; }
  void prepare(const MetricSetup& setup) override {
    const auto labels = labels_.prepare(setup, "accuracy");
    if (std::none_of(labels.begin(), labels.end(), [](std::int64_t c) { return c >= 0; }))
      throw ConfigError(setup.path, "accuracy: no sample has a class label (all are the null label or negative)");
    options_.path = resolve_path(setup.base_dir, options_.path);
    logits_ = load_classifier(options_, path_);
    // One call on a blank sample: the classifier takes the model's samples, and its
    // number of classes covers every label.
    Eigen::Index classes = 0;
    try {
      classes = logits_(State::Zero(1, setup.model->dim())).cols();
    } catch (const Error& e) {
      throw ConfigError(join_path(path_, "classifier"), e.what());
    }
    for (std::size_t i = 0; i < labels.size(); ++i)
      if (labels[i] >= classes)
        throw ConfigError(join_path(path_, "input"), "sample " + std::to_string(i) + " has the label " +
                                                         std::to_string(labels[i]) + ", but the classifier has " +
                                                         std::to_string(classes) + " classes");
  }
  void compute(const MetricInput& input, json& values) const override {
    State x = input.samples;
    if (clip_) x = x.max(-1.0).min(1.0);
    const ClassifierAccuracy r = classifier_accuracy(logits_(x), labels_.of(input));
    values["accuracy"] = r.accuracy;
    values["accuracy_n"] = r.counted;
  }

 private:
  std::string path_;
  FeatureMapOptions options_;
  bool clip_ = true;
  SampleLabels labels_;
  FeatureMap logits_;
};

// The fraction of sample values outside a range (e.g. images outside [-1, 1]).
class OutsideMetric final : public SweepMetric {
 public:
  explicit OutsideMetric(const Params& p) : lo_(p.number("lo")), hi_(p.number("hi")) {
    if (!(lo_ < hi_))
      throw ConfigError(p.path(), "needs lo < hi, got lo = " + p.value("lo").dump() + ", hi = " + p.value("hi").dump());
  }
  std::string name() const override { return "outside"; }
  void compute(const MetricInput& input, json& values) const override {
    values["outside"] = fraction_outside(input.samples, lo_, hi_);
  }

 private:
  double lo_ = -1, hi_ = 1;
};

void register_metrics(Registry<SweepMetric>& r) {
  auto simple = [](auto make) {
    return [make](const Params&, const BuildContext&) -> std::unique_ptr<SweepMetric> { return make(); };
  };
  r.add({"path_error",
         "RMS and max over all entries of (samples - reference), the reference solved from the same x_T and "
         "noise (path error for ODE solvers, strong error for SDE solvers on the Brownian path): path_rms, "
         "path_max",
         {},
         simple([] { return std::make_unique<PathErrorMetric>(); })});
  r.add({"log_likelihood", "mean exact data log-density log p_0 of the samples (analytic models): log_likelihood",
         {},
         simple([] { return std::make_unique<LogLikelihoodMetric>(); })});
  r.add({"frechet",
         "Fréchet distance between the Gaussian fit of the samples and the exact data mean and covariance "
         "(analytic models): frechet",
         {},
         simple([] { return std::make_unique<FrechetMetric>(); })});
  r.add({"sliced_w2",
         "sliced 2-Wasserstein distance to exact data samples (analytic models): sliced_w2",
         {{"projections", ParamType::integer, 64, "number of random directions"},
          {"data_samples", ParamType::integer, nullptr, "data samples drawn (default: the batch size)"},
          {"seed", ParamType::integer, nullptr, "seed of the data samples and directions (default: problem.seed)"}},
         [](const Params& p, const BuildContext&) -> std::unique_ptr<SweepMetric> {
           return std::make_unique<SlicedW2Metric>(p);
         }});
  r.add({"mmd",
         "unbiased MMD^2 with an RBF kernel between the first n samples and n exact data samples (analytic "
         "models): mmd2 and its standard error mmd2_se",
         {{"samples", ParamType::integer, 1000, "n: samples compared (at most the batch)"},
          {"bandwidth", ParamType::number, nullptr, "kernel bandwidth h (default: median heuristic on the data samples)"},
          {"seed", ParamType::integer, nullptr, "seed of the data samples (default: problem.seed)"}},
         [](const Params& p, const BuildContext&) -> std::unique_ptr<SweepMetric> {
           return std::make_unique<MmdMetric>(p);
         }});
  r.add({"feature_frechet",
         "Fréchet distance between Gaussian fits of the samples' and the data's features in a classifier's "
         "penultimate layer (image models; a classifier trained here on the same data, not FID): "
         "feature_frechet",
         {{"classifier", ParamType::string, nullptr, "TorchScript classifier with a 'features' method"},
          {"data", ParamType::json, json{{"name", "fashion_mnist"}, {"split", "test"}},
           "the data set compared against ({\"name\": ...})"},
          {"data_samples", ParamType::integer, 10000, "data rows embedded (the first ones of a file)"},
          {"clip", ParamType::boolean, true, "clip the samples to [-1, 1] before embedding them"},
          {"device", ParamType::string, "cpu", "where the classifier runs: cpu, cuda or cuda:N"},
          {"max_batch", ParamType::integer, 500, "rows per call of the classifier"},
          {"seed", ParamType::integer, nullptr, "seed of generated data (default: problem.seed)"},
          {"per_class", ParamType::boolean, false,
           "conditional problems: the distance per class of the samples' labels against the data rows of that "
           "class (feature_frechet_classes), and their mean"},
          {"input", ParamType::string, "y", "with per_class: the problem's input that holds the class labels"}},
         [](const Params& p, const BuildContext&) -> std::unique_ptr<SweepMetric> {
           return std::make_unique<FeatureFrechetMetric>(p);
         }});
  r.add({"accuracy",
         "a classifier's accuracy on the samples of a class-conditional problem, against each sample's label "
         "(null or negative labels skipped): accuracy and the number of samples counted, accuracy_n",
         {{"classifier", ParamType::string, nullptr, "TorchScript classifier whose forward gives logits (B, classes)"},
          {"input", ParamType::string, "y", "the problem's input that holds the class labels"},
          {"clip", ParamType::boolean, true, "clip the samples to [-1, 1] before classifying them"},
          {"device", ParamType::string, "cpu", "where the classifier runs: cpu, cuda or cuda:N"},
          {"max_batch", ParamType::integer, 500, "rows per call of the classifier"}},
         [](const Params& p, const BuildContext&) -> std::unique_ptr<SweepMetric> {
           return std::make_unique<AccuracyMetric>(p);
         }});
  r.add({"outside", "fraction of all sample values outside [lo, hi] (any model): outside",
         {{"lo", ParamType::number, -1.0, "lower end of the range"},
          {"hi", ParamType::number, 1.0, "upper end of the range"}},
         [](const Params& p, const BuildContext&) -> std::unique_ptr<SweepMetric> {
           return std::make_unique<OutsideMetric>(p);
         }});
}

}  // namespace

Registry<SweepMetric>& metric_registry() {
  static Registry<SweepMetric> registry = [] {
    Registry<SweepMetric> r("metric");
    register_metrics(r);
    return r;
  }();
  return registry;
}

}  // namespace diffsde
