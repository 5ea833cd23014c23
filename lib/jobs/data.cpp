// Data sources: toys, analytic problems, Fashion-MNIST IDX files and .npy arrays.
#include "diffsde/data.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <numeric>

#include "diffsde/error.hpp"
#include "diffsde/io.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/npy.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"

namespace diffsde {

int DataSource::dim() const {
  return std::accumulate(shape_.begin(), shape_.end(), 1, std::multiplies<int>());
}

namespace {

using nlohmann::json;

constexpr NoiseStream kDataUniforms = NoiseStream::data_uniform;
constexpr NoiseStream kDataNormals = NoiseStream::data_normal;

constexpr double kPi = 3.14159265358979323846;

// Draws one sample from uniforms u[0..k) and normals z[0..m) into x; returns its label
// (which moon, which component; 0 for an unlabelled toy).
using ToyDraw = std::function<int(const double* u, const double* z, double* x)>;

// A 2-D generator: every sample takes `nu` uniforms and `nz` normals of its own. A labelled
// toy (classes > 0) hands out the label its draw returns; the label is a function of the
// same draws, so a batch's rows are the same whether labels are asked for or not.
class ToySource final : public DataSource {
 public:
  ToySource(std::string name, int dim, int nu, int nz, ToyDraw draw, int classes = 0)
      : name_(std::move(name)), nu_(nu), nz_(nz), classes_(classes), draw_(std::move(draw)) {
    shape_ = {dim};
  }
  std::string name() const override { return name_; }
  int num_classes() const override { return classes_; }
  void batch(std::uint64_t seed, std::uint64_t batch_index, StateRef out,
             std::vector<int>* labels) const override {
    std::vector<double> u(static_cast<std::size_t>(std::max(nu_, 1)));
    std::vector<double> z(static_cast<std::size_t>(std::max(nz_, 1)));
    const auto n = static_cast<std::uint64_t>(out.rows());
    if (labels) labels->assign(classes_ > 0 ? static_cast<std::size_t>(out.rows()) : 0, 0);
    for (Eigen::Index i = 0; i < out.rows(); ++i) {
      const std::uint64_t sample = batch_index * n + static_cast<std::uint64_t>(i);
      philox_uniforms(seed, kDataUniforms, sample, 0, u.data(), nu_);
      philox_normals(seed, kDataNormals, sample, 0, z.data(), nz_);
      const int label = draw_(u.data(), z.data(), &out(i, 0));
      if (labels && classes_ > 0) (*labels)[static_cast<std::size_t>(i)] = label;
    }
  }

 private:
  std::string name_;
  int nu_, nz_, classes_;
  ToyDraw draw_;
};

// A finite table of rows; batches draw rows uniformly with replacement.
class TableSource final : public DataSource {
 public:
  TableSource(std::string name, std::vector<int> shape, State rows, std::vector<int> labels,
              int num_classes)
      : name_(std::move(name)), rows_(std::move(rows)), labels_(std::move(labels)),
        classes_(num_classes) {
    shape_ = std::move(shape);
  }
  std::string name() const override { return name_; }
  int num_classes() const override { return classes_; }
  const State* rows() const override { return &rows_; }
  const std::vector<int>* row_labels() const override { return labels_.empty() ? nullptr : &labels_; }
  void batch(std::uint64_t seed, std::uint64_t batch_index, StateRef out,
             std::vector<int>* labels) const override {
    const auto n = static_cast<std::uint64_t>(out.rows());
    if (labels) labels->assign(static_cast<std::size_t>(out.rows()), 0);
    for (Eigen::Index i = 0; i < out.rows(); ++i) {
      double u;
      philox_uniforms(seed, kDataUniforms, batch_index * n + static_cast<std::uint64_t>(i), 0, &u, 1);
      const auto r = std::min(static_cast<Eigen::Index>(u * static_cast<double>(rows_.rows())),
                              rows_.rows() - 1);
      out.row(i) = rows_.row(r);
      if (labels && !labels_.empty()) (*labels)[static_cast<std::size_t>(i)] = labels_[static_cast<std::size_t>(r)];
    }
  }

 private:
  std::string name_;
  State rows_;
  std::vector<int> labels_;
  int classes_;
};

// Mixture of diagonal Gaussians (also the single "gaussian"). With `labels` (one per
// component, 0 .. classes - 1) each sample is labelled by its component's entry.
std::unique_ptr<DataSource> mixture_source(std::string name, Eigen::VectorXd weights, Eigen::MatrixXd means,
                                           Eigen::MatrixXd stds, std::vector<int> labels = {},
                                           int classes = 0) {
  const int d = static_cast<int>(means.cols());
  Eigen::VectorXd cumulative(weights.size());
  std::partial_sum(weights.data(), weights.data() + weights.size(), cumulative.data());
  cumulative /= cumulative(cumulative.size() - 1);
  return std::make_unique<ToySource>(
      std::move(name), d, 1, d,
      [=](const double* u, const double* z, double* x) {
        Eigen::Index k = 0;
        while (k + 1 < cumulative.size() && u[0] >= cumulative(k)) ++k;
        for (int j = 0; j < d; ++j) x[j] = means(k, j) + stds(k, j) * z[j];
        return labels.empty() ? 0 : labels[static_cast<std::size_t>(k)];
      },
      classes);
}

// One label per component: its index.
std::vector<int> component_labels(Eigen::Index components) {
  std::vector<int> out(static_cast<std::size_t>(components));
  std::iota(out.begin(), out.end(), 0);
  return out;
}

// ---- IDX ------------------------------------------------------------------------------
std::vector<unsigned char> read_maybe_gzip(const std::string& path) {
  if (!std::filesystem::exists(path)) throw IoError(path, "file not found");
  gzFile f = gzopen(path.c_str(), "rb");  // also reads uncompressed files
  if (!f) throw IoError(path, "cannot open for reading");
  std::vector<unsigned char> out;
  unsigned char buf[1 << 16];
  for (;;) {
    const int got = gzread(f, buf, sizeof buf);
    if (got < 0) {
      int code = 0;
      const std::string msg = gzerror(f, &code);
      gzclose(f);
      throw IoError(path, "cannot decompress: " + msg);
    }
    if (got == 0) break;
    out.insert(out.end(), buf, buf + got);
  }
  gzclose(f);
  return out;
}

std::uint32_t big_endian_u32(const std::vector<unsigned char>& b, std::size_t at) {
  return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) |
         (std::uint32_t{b[at + 2]} << 8) | std::uint32_t{b[at + 3]};
}

std::string dataset_dir_default() { return "/usr/share/datasets/fashion-mnist"; }

}  // namespace

IdxImages read_idx_images(const std::string& path) {
  const auto bytes = read_maybe_gzip(path);
  if (bytes.size() < 16) throw IoError(path, "too short for an IDX image file header (16 bytes)");
  const std::uint32_t magic = big_endian_u32(bytes, 0);
  if (magic != 0x00000803)
    throw IoError(path, "not an IDX image file (magic " + std::to_string(magic) +
                            ", expected 2051: unsigned bytes, 3 dimensions)");
  IdxImages out;
  out.count = static_cast<int>(big_endian_u32(bytes, 4));
  out.rows = static_cast<int>(big_endian_u32(bytes, 8));
  out.cols = static_cast<int>(big_endian_u32(bytes, 12));
  const std::size_t expected = 16 + static_cast<std::size_t>(out.count) *
                                        static_cast<std::size_t>(out.rows) *
                                        static_cast<std::size_t>(out.cols);
  if (bytes.size() != expected)
    throw IoError(path, "size " + std::to_string(bytes.size()) + " bytes does not match the header (" +
                            std::to_string(out.count) + " images of " + std::to_string(out.rows) +
                            "x" + std::to_string(out.cols) + " need " + std::to_string(expected) + ")");
  out.pixels.assign(bytes.begin() + 16, bytes.end());
  return out;
}

std::vector<unsigned char> read_idx_labels(const std::string& path) {
  const auto bytes = read_maybe_gzip(path);
  if (bytes.size() < 8) throw IoError(path, "too short for an IDX label file header (8 bytes)");
  const std::uint32_t magic = big_endian_u32(bytes, 0);
  if (magic != 0x00000801)
    throw IoError(path, "not an IDX label file (magic " + std::to_string(magic) +
                            ", expected 2049: unsigned bytes, 1 dimension)");
  const std::size_t count = big_endian_u32(bytes, 4);
  if (bytes.size() != 8 + count)
    throw IoError(path, "size " + std::to_string(bytes.size()) + " bytes does not match the header (" +
                            std::to_string(count) + " labels need " + std::to_string(8 + count) + ")");
  return {bytes.begin() + 8, bytes.end()};
}

namespace {

std::unique_ptr<DataSource> make_fashion_mnist(const Params& p, const BuildContext& ctx) {
  const std::string dir = resolve_path(ctx.base_dir, p.string("dir"));
  const std::string split = p.string("split") == "train" ? "train" : "t10k";
  const std::string images_path = dir + "/" + split + "-images-idx3-ubyte.gz";
  const std::string labels_path = dir + "/" + split + "-labels-idx1-ubyte.gz";
  auto pick = [](const std::string& gz) {
    const std::string plain = gz.substr(0, gz.size() - 3);
    return std::filesystem::exists(gz) || !std::filesystem::exists(plain) ? gz : plain;
  };
  const IdxImages images = read_idx_images(pick(images_path));
  const auto labels = read_idx_labels(pick(labels_path));
  if (static_cast<int>(labels.size()) != images.count)
    throw IoError(pick(labels_path), std::to_string(labels.size()) + " labels for " +
                                         std::to_string(images.count) + " images");
  long limit = p.integer("limit");
  if (limit < 0) p.fail("limit", "must be >= 0 (0: all images)");
  const int n = limit > 0 ? static_cast<int>(std::min<long>(limit, images.count)) : images.count;
  const int d = images.rows * images.cols;
  State rows(n, d);
  std::vector<int> y(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < d; ++j)
      rows(i, j) = images.pixels[static_cast<std::size_t>(i) * static_cast<std::size_t>(d) +
                                 static_cast<std::size_t>(j)] / 127.5 - 1.0;
    y[static_cast<std::size_t>(i)] = labels[static_cast<std::size_t>(i)];
  }
  return std::make_unique<TableSource>("fashion_mnist", std::vector<int>{1, images.rows, images.cols},
                                       std::move(rows), std::move(y), 10);
}

std::unique_ptr<DataSource> make_npy(const Params& p, const BuildContext& ctx) {
  if (!p.has("path")) p.fail("path", "is required (the .npy file of samples, first axis = sample)");
  const std::string path = resolve_path(ctx.base_dir, p.string("path"));
  const NpyArray a = read_npy(path);
  if (a.shape.empty() || a.shape[0] == 0)
    throw IoError(path, "needs at least one sample along the first axis");
  std::vector<int> shape;
  for (std::size_t k = 1; k < a.shape.size(); ++k) shape.push_back(static_cast<int>(a.shape[k]));
  if (shape.empty()) shape = {1};
  const auto n = static_cast<Eigen::Index>(a.shape[0]);
  const Eigen::Index d = static_cast<Eigen::Index>(a.size()) / n;
  State rows = Eigen::Map<const State>(a.data.data(), n, d);
  if (p.has("range")) {
    const auto r = p.numbers("range");
    if (r.size() != 2 || !(r[1] > r[0])) p.fail("range", "must be [lo, hi] with hi > lo");
    rows = (rows - r[0]) * (2.0 / (r[1] - r[0])) - 1.0;
  }
  std::vector<int> labels;
  int classes = 0;
  if (p.has("labels")) {
    const std::string lpath = resolve_path(ctx.base_dir, p.string("labels"));
    const NpyArray l = read_npy(lpath);
    if (l.size() != a.shape[0])
      throw IoError(lpath, std::to_string(l.size()) + " labels for " + std::to_string(a.shape[0]) + " samples");
    for (double v : l.data) {
      if (v < 0 || v != std::floor(v)) throw IoError(lpath, "labels must be integers >= 0");
      labels.push_back(static_cast<int>(v));
      classes = std::max(classes, labels.back() + 1);
    }
  }
  return std::make_unique<TableSource>("npy", std::move(shape), std::move(rows), std::move(labels),
                                       classes);
}

std::unique_ptr<DataSource> make_from_model(const std::string& name, const Params& p) {
  // The analytic problems share their parameters (and defaults) with the models.
  auto schedule = std::make_shared<VpLinearSchedule>();
  json object = p.values();
  object["name"] = name;
  BuildContext ctx;
  ctx.schedule = schedule;
  auto model = model_registry().create(object, p.path(), ctx);
  if (const auto* g = dynamic_cast<const GaussianModel*>(model.get())) {
    Eigen::MatrixXd means = g->mean().transpose();
    Eigen::MatrixXd stds = g->std().transpose();
    return mixture_source(name, Eigen::VectorXd::Ones(1), means, stds);
  }
  // The mixture is labelled by component, or by class when `classes` is given and puts
  // each component in exactly one class (otherwise a sample has no one label: unlabelled).
  const auto& m = dynamic_cast<const GmmModel&>(*model);
  const auto components = m.weights().size();
  if (m.classes().empty())
    return mixture_source(name, m.weights(), m.means(), m.stds(), component_labels(components),
                          static_cast<int>(components));
  std::vector<int> labels(static_cast<std::size_t>(components), -1);
  bool partition = true;
  for (std::size_t c = 0; c < m.classes().size(); ++c)
    for (int k : m.classes()[c]) {
      partition = partition && labels[static_cast<std::size_t>(k)] < 0;
      labels[static_cast<std::size_t>(k)] = static_cast<int>(c);
    }
  partition = partition && std::find(labels.begin(), labels.end(), -1) == labels.end();
  if (!partition) return mixture_source(name, m.weights(), m.means(), m.stds());
  return mixture_source(name, m.weights(), m.means(), m.stds(), std::move(labels),
                        static_cast<int>(m.classes().size()));
}

std::vector<ParamSpec> model_params(const std::string& name) {
  return model_registry().get(name, "data.name").params;
}

}  // namespace

Registry<DataSource>& data_registry() {
  static Registry<DataSource> registry = [] {
    Registry<DataSource> r("data");
    const json noise_default = 0.05;
    r.add({"moons",
           "Two interleaving half circles (centred), plus Gaussian noise; labelled by moon (0 upper, 1 lower)",
           {{"noise", ParamType::number, noise_default, "standard deviation of the added noise"}},
           [](const Params& p, const BuildContext&) -> std::unique_ptr<DataSource> {
             const double s = p.number("noise");
             auto draw = [s](const double* u, const double* z, double* x) {
               const double a = kPi * u[0];
               const int moon = u[1] < 0.5 ? 0 : 1;  // 0: the upper moon, 1: the lower one
               if (moon == 0) {
                 x[0] = std::cos(a) - 0.5;
                 x[1] = std::sin(a) - 0.25;
               } else {
                 x[0] = 0.5 - std::cos(a);
                 x[1] = 0.25 - std::sin(a);
               }
               x[0] += s * z[0];
               x[1] += s * z[1];
               return moon;
             };
             return std::make_unique<ToySource>("moons", 2, 2, 2, draw, 2);
           }});
    r.add({"swiss_roll",
           "A 2-D Swiss roll (r = a, angle a in [1.5 pi, 4.5 pi]) scaled by 1/5, plus Gaussian noise",
           {{"noise", ParamType::number, noise_default, "standard deviation of the added noise"}},
           [](const Params& p, const BuildContext&) -> std::unique_ptr<DataSource> {
             const double s = p.number("noise");
             return std::make_unique<ToySource>("swiss_roll", 2, 1, 2, [s](const double* u, const double* z, double* x) {
               const double a = 1.5 * kPi * (1.0 + 2.0 * u[0]);
               x[0] = a * std::cos(a) / 5.0 + s * z[0];
               x[1] = a * std::sin(a) / 5.0 + s * z[1];
               return 0;
             });
           }});
    r.add({"checkerboard",
           "Uniform on the dark squares of a 4 x 4 checkerboard on [-2, 2]^2",
           {},
           [](const Params&, const BuildContext&) -> std::unique_ptr<DataSource> {
             return std::make_unique<ToySource>("checkerboard", 2, 3, 0, [](const double* u, const double*, double* x) {
               x[0] = 4.0 * u[0] - 2.0;
               const double column = std::floor(x[0]);
               const double parity = column - 2.0 * std::floor(column / 2.0);  // 0 or 1
               x[1] = u[1] + (u[2] < 0.5 ? -2.0 : 0.0) + parity;
               return 0;
             });
           }});
    r.add({"8gaussians",
           "Eight Gaussians with centres on a circle of radius `radius`; labelled by component (0 .. 7)",
           {{"radius", ParamType::number, 2.0, "radius of the circle of centres"},
            {"std", ParamType::number, 0.1, "standard deviation of each component"}},
           [](const Params& p, const BuildContext&) -> std::unique_ptr<DataSource> {
             const double radius = p.number("radius"), sd = p.number("std");
             if (!(sd > 0)) p.fail("std", "must be > 0");
             Eigen::MatrixXd means(8, 2), stds = Eigen::MatrixXd::Constant(8, 2, sd);
             for (int k = 0; k < 8; ++k) {
               means(k, 0) = radius * std::cos(kPi * k / 4.0);
               means(k, 1) = radius * std::sin(kPi * k / 4.0);
             }
             return mixture_source("8gaussians", Eigen::VectorXd::Ones(8), means, stds, component_labels(8), 8);
           }});
    r.add({"gaussian", "Samples of the analytic `gaussian` model's data distribution (same parameters)",
           model_params("gaussian"),
           [](const Params& p, const BuildContext&) { return make_from_model("gaussian", p); }});
    r.add({"gmm", "Samples of the analytic `gmm` model's data distribution (same parameters); labelled by "
           "component, or by class when `classes` puts each component in one class",
           model_params("gmm"),
           [](const Params& p, const BuildContext&) { return make_from_model("gmm", p); }});
    r.add({"fashion_mnist",
           "Fashion-MNIST IDX files (gzip or plain), 1 x 28 x 28, pixels scaled to [-1, 1], 10 labels",
           {{"dir", ParamType::string, dataset_dir_default(),
             "folder with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]"},
            {"split", ParamType::string, "train", "which files", {"train", "test"}},
            {"limit", ParamType::integer, 0, "use the first `limit` images (0: all)"}},
           make_fashion_mnist});
    r.add({"npy",
           "Rows of a .npy array (float64, float32 or uint8; first axis = sample, the rest is the "
           "per-sample shape)",
           {{"path", ParamType::string, nullptr, "the .npy file"},
            {"range", ParamType::numbers, nullptr,
             "[lo, hi] of the stored values, mapped to [-1, 1] (e.g. [0, 255]); unset: as stored"},
            {"labels", ParamType::string, nullptr, "optional .npy of integer labels, one per sample"}},
           make_npy});
    return r;
  }();
  return registry;
}

}  // namespace diffsde
