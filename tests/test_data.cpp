// Data sources: keyed reproducibility, the toys' supports, exact moments of the
// analytic problems, IDX and .npy files (and their malformed forms), PNG grids.
#include <catch2/catch.hpp>

#include <stb/stb_image.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <filesystem>
#include <fstream>

#include "diffsde/data.hpp"
#include "diffsde/error.hpp"
#include "diffsde/image.hpp"
#include "diffsde/npy.hpp"
#include "support/exact.hpp"
#include "support/temp_dir.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

using diffsde::test::TempDir;

std::unique_ptr<DataSource> make(const json& spec) { return data_registry().create(spec, "data"); }

State draw(const DataSource& d, long n, std::uint64_t seed = 0, std::uint64_t batch = 0) {
  State x(n, d.dim());
  d.batch(seed, batch, x);
  return x;
}

void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<unsigned char> be32(std::uint32_t v) {
  return {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
          static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
}

}  // namespace

TEST_CASE("batches are keyed by sample index, not by batch size", "[data]") {
  for (const char* name : {"moons", "swiss_roll", "checkerboard", "8gaussians", "gmm"}) {
    const auto d = make(json{{"name", name}});
    const State big = draw(*d, 12, 5, 0);   // samples 0..11
    const State small = draw(*d, 4, 5, 2);  // samples 8..11
    INFO(name);
    CHECK(test::max_abs_diff(big.bottomRows(4), small) == 0.0);
    CHECK(test::max_abs_diff(draw(*d, 4, 6, 2), small) > 0.0);  // another seed
  }
}

TEST_CASE("the labelled toys label each sample by its moon, component or class", "[data]") {
  const long n = 2000;
  auto labelled = [n](const DataSource& d, State& x) {
    std::vector<int> labels;
    x.resize(n, d.dim());
    d.batch(7, 3, x, &labels);
    REQUIRE(labels.size() == static_cast<std::size_t>(n));
    CHECK(test::max_abs_diff(x, draw(d, n, 7, 3)) == 0.0);  // asking for labels changes no row
    return labels;
  };
  State x;
  SECTION("moons: 0 the upper moon, 1 the lower one") {
    const auto d = make(json{{"name", "moons"}, {"noise", 0.0}});
    CHECK(d->num_classes() == 2);
    const auto y = labelled(*d, x);
    std::set<int> seen(y.begin(), y.end());
    CHECK(seen == std::set<int>{0, 1});
    for (long i = 0; i < n; ++i) {
      // Upper moon: (cos a - 0.5, sin a - 0.25) with sin a >= 0; the lower one is its mirror.
      INFO("sample " << i << " label " << y[static_cast<std::size_t>(i)]);
      CHECK((y[static_cast<std::size_t>(i)] == 0 ? x(i, 1) >= -0.25 - 1e-12 : x(i, 1) <= 0.25 + 1e-12));
      const double cx = y[static_cast<std::size_t>(i)] == 0 ? x(i, 0) + 0.5 : 0.5 - x(i, 0);
      const double cy = y[static_cast<std::size_t>(i)] == 0 ? x(i, 1) + 0.25 : 0.25 - x(i, 1);
      CHECK(std::abs(cx * cx + cy * cy - 1.0) < 1e-9);
    }
  }
  SECTION("8gaussians: the component, whose centre is the nearest") {
    const auto d = make(json{{"name", "8gaussians"}, {"std", 0.1}});
    CHECK(d->num_classes() == 8);
    const auto y = labelled(*d, x);
    for (long i = 0; i < n; ++i) {
      const double angle = std::atan2(x(i, 1), x(i, 0));
      const long nearest = (std::lround(angle / (3.14159265358979323846 / 4.0)) + 8) % 8;
      CHECK(y[static_cast<std::size_t>(i)] == nearest);
    }
  }
  SECTION("gmm: the component, or its class when the classes split the components") {
    const json mixture = {{"name", "gmm"},
                          {"weights", {1, 1, 1}},
                          {"means", {{-10, 0}, {0, 0}, {10, 0}}},
                          {"stds", {{0.5, 0.5}}}};
    const auto by_component = make(mixture);
    CHECK(by_component->num_classes() == 3);
    auto y = labelled(*by_component, x);
    for (long i = 0; i < n; ++i) CHECK(y[static_cast<std::size_t>(i)] == std::lround(x(i, 0) / 10.0) + 1);
    json classed = mixture;
    classed["classes"] = {{1}, {2, 0}};
    const auto by_class = make(classed);
    CHECK(by_class->num_classes() == 2);
    y = labelled(*by_class, x);
    for (long i = 0; i < n; ++i) CHECK(y[static_cast<std::size_t>(i)] == (std::abs(x(i, 0)) < 5 ? 0 : 1));
    classed["classes"] = {{0, 1}, {1, 2}};  // a shared component: no one label per sample
    CHECK(make(classed)->num_classes() == 0);
  }
  SECTION("the others are unlabelled") {
    for (const char* name : {"swiss_roll", "checkerboard", "gaussian"}) {
      INFO(name);
      const auto d = make(json{{"name", name}});
      CHECK(d->num_classes() == 0);
      std::vector<int> labels{1, 2};
      State rows(4, d->dim());
      d->batch(0, 0, rows, &labels);
      CHECK(labels.empty());
    }
  }
}

TEST_CASE("toy samples lie on their supports", "[data]") {
  const State c = draw(*make(json{{"name", "checkerboard"}}), 4000);
  for (Eigen::Index i = 0; i < c.rows(); ++i) {
    REQUIRE(std::abs(c(i, 0)) <= 2.0);
    REQUIRE(std::abs(c(i, 1)) <= 2.0);
    const long parity = (static_cast<long>(std::floor(c(i, 0))) + static_cast<long>(std::floor(c(i, 1)))) % 2;
    REQUIRE((parity + 2) % 2 == 0);
  }
  // Every one of the 8 dark squares is hit.
  std::set<std::pair<long, long>> squares;
  for (Eigen::Index i = 0; i < c.rows(); ++i)
    squares.insert({static_cast<long>(std::floor(c(i, 0))), static_cast<long>(std::floor(c(i, 1)))});
  CHECK(squares.size() == 8);

  // Noise-free moons lie on unit circles centred at (-0.5, -0.25) and (0.5, 0.25).
  const State m = draw(*make(json{{"name", "moons"}, {"noise", 0.0}}), 1000);
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    const double r1 = std::hypot(m(i, 0) + 0.5, m(i, 1) + 0.25), r2 = std::hypot(m(i, 0) - 0.5, m(i, 1) - 0.25);
    REQUIRE(std::min(std::abs(r1 - 1.0), std::abs(r2 - 1.0)) < 1e-12);
  }
}

TEST_CASE("analytic problems have their exact moments", "[data]") {
  const long n = 40000;
  const State g = draw(*make(json{{"name", "gaussian"}, {"mean", {1.0, -2.0}}, {"std", {0.5, 3.0}}}), n);
  const Eigen::Array2d mean(1.0, -2.0), sd(0.5, 3.0);
  for (int j = 0; j < 2; ++j) {
    const double m = g.col(j).mean();
    const double v = (g.col(j) - m).square().mean();
    CHECK(std::abs(m - mean(j)) < 5 * sd(j) / std::sqrt(double(n)));
    CHECK(std::abs(v / (sd(j) * sd(j)) - 1.0) < 5 * std::sqrt(2.0 / double(n)));
  }
  // 8 Gaussians: mean 0, per-axis variance radius^2 / 2 + std^2.
  const State e = draw(*make(json{{"name", "8gaussians"}}), n);
  const double var = 2.0 * 2.0 / 2.0 + 0.01;
  for (int j = 0; j < 2; ++j) {
    CHECK(std::abs(e.col(j).mean()) < 5 * std::sqrt(var / double(n)));
    CHECK(std::abs(e.col(j).square().mean() / var - 1.0) < 0.05);
  }
}

TEST_CASE("IDX files: the real Fashion-MNIST and malformed ones", "[data]") {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (std::filesystem::exists(dir + "/t10k-images-idx3-ubyte.gz")) {
    const auto d = make(json{{"name", "fashion_mnist"}, {"split", "test"}});
    REQUIRE(d->rows());
    CHECK(d->rows()->rows() == 10000);
    CHECK(d->shape() == std::vector<int>{1, 28, 28});
    CHECK(d->rows()->minCoeff() == -1.0);
    CHECK(d->rows()->maxCoeff() == 1.0);
    CHECK(d->num_classes() == 10);
    const auto& labels = *d->row_labels();
    CHECK(*std::min_element(labels.begin(), labels.end()) == 0);
    CHECK(*std::max_element(labels.begin(), labels.end()) == 9);
  } else {
    WARN("Fashion-MNIST not installed (dataset-fashion-mnist): the real-file check did not run");
  }

  TempDir tmp;
  // A 2-image 2x3 file, uncompressed.
  std::vector<unsigned char> images = be32(0x803);
  for (auto v : {be32(2), be32(2), be32(3)}) images.insert(images.end(), v.begin(), v.end());
  for (unsigned char p : {0, 255, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100}) images.push_back(p);
  write_bytes(tmp.file("ok-images"), images);
  const IdxImages ok = read_idx_images(tmp.file("ok-images"));
  CHECK(ok.count == 2);
  CHECK(ok.rows == 2);
  CHECK(ok.cols == 3);
  CHECK(ok.pixels[1] == 255);

  std::vector<unsigned char> bad_magic = images;
  bad_magic[3] = 0x01;
  write_bytes(tmp.file("magic"), bad_magic);
  CHECK_THROWS_WITH(read_idx_images(tmp.file("magic")), Catch::Contains("magic") && Catch::Contains("not an IDX image"));
  std::vector<unsigned char> short_file(images.begin(), images.end() - 1);
  write_bytes(tmp.file("short"), short_file);
  CHECK_THROWS_WITH(read_idx_images(tmp.file("short")), Catch::Contains("short") && Catch::Contains("does not match"));
  CHECK_THROWS_AS(read_idx_images(tmp.file("absent")), IoError);
}

TEST_CASE("npy datasets: range scaling, labels and errors", "[data]") {
  TempDir tmp;
  NpyArray a;
  a.shape = {3, 1, 2, 2};
  a.data = {0, 255, 0, 255, 127.5, 127.5, 127.5, 127.5, 255, 255, 255, 255};
  write_npy(tmp.file("x.npy"), a);
  const auto d = make(json{{"name", "npy"}, {"path", tmp.file("x.npy")}, {"range", {0, 255}}});
  CHECK(d->shape() == std::vector<int>{1, 2, 2});
  CHECK((*d->rows())(0, 0) == -1.0);
  CHECK((*d->rows())(0, 1) == 1.0);
  CHECK((*d->rows())(1, 0) == 0.0);
  CHECK(test::config_error_path([&] { make(json{{"name", "npy"}}); }) == "data.path");
  CHECK(test::config_error_path([&] { make(json{{"name", "npy"}, {"path", tmp.file("x.npy")}, {"range", {1, 1}}}); }) ==
        "data.range");
  NpyArray l;
  l.shape = {2};
  l.data = {0, 1};
  write_npy(tmp.file("y.npy"), l);
  CHECK_THROWS_WITH(make(json{{"name", "npy"}, {"path", tmp.file("x.npy")}, {"labels", tmp.file("y.npy")}}),
                    Catch::Contains("y.npy") && Catch::Contains("2 labels for 3 samples"));
}

TEST_CASE("uint8 .npy files are read", "[data][npy]") {
  TempDir tmp;
  // Header as NumPy writes it for np.array([[0, 7, 255]], dtype=np.uint8).
  std::string header = "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 3), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  bytes += header;
  bytes += std::string("\x00\x07\xff", 3);
  std::ofstream(tmp.file("u8.npy"), std::ios::binary) << bytes;
  const NpyArray a = read_npy(tmp.file("u8.npy"));
  CHECK(a.shape == std::vector<std::size_t>{1, 3});
  CHECK(a.data == std::vector<double>{0, 7, 255});
}

TEST_CASE("PNG grids put each sample in its tile", "[image]") {
  // Three 1 x 2 x 2 samples in 2 columns, pad 1: a 7 x 7 image.
  State s(3, 4);
  s << -1, 1, 0, 1,  //
      1, 1, 1, 1,    //
      -1, -1, -1, 2;  // 2 is clamped to 1
  const std::string png = png_grid_bytes(s, {1, 2, 2}, 2, 1);
  int w = 0, h = 0, c = 0;
  unsigned char* pixels = stbi_load_from_memory(reinterpret_cast<const unsigned char*>(png.data()),
                                                static_cast<int>(png.size()), &w, &h, &c, 1);
  REQUIRE(pixels);
  CHECK(w == 7);
  CHECK(h == 7);
  auto at = [&](int x, int y) { return static_cast<int>(pixels[y * w + x]); };
  CHECK(at(1, 1) == 0);    // sample 0, (0, 0) = -1
  CHECK(at(2, 1) == 255);  // sample 0, (0, 1) = 1
  CHECK(at(1, 2) == 128);  // sample 0, (1, 0) = 0 -> round(127.5)
  CHECK(at(4, 1) == 255);  // sample 1
  CHECK(at(2, 5) == 255);  // sample 2, (1, 1) = 2 clamped
  CHECK(at(0, 0) == 0);    // border
  stbi_image_free(pixels);

  CHECK_THROWS_AS(png_grid_bytes(s, {2, 2, 1}, 2, 1), Error);
  TempDir tmp;
  CHECK_THROWS_WITH(write_png_grid(tmp.file("g.png"), s, {1, 3, 3}), Catch::Contains("g.png"));
  CHECK(!std::filesystem::exists(tmp.file("g.png")));
}
