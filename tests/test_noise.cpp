// Noise sources: Philox known answers, normal statistics, batch/split invariance,
// the Brownian tree's path properties and replay from arrays and .npy files.
#include <catch2/catch.hpp>

#include <Random123/boxmuller.hpp>
#include <Random123/philox.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "diffsde/error.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/npy.hpp"

using namespace diffsde;

namespace {

// Sample statistics of a set of values.
struct Moments {
  double mean, var, m4;
};
Moments moments(const std::vector<double>& x) {
  const double n = static_cast<double>(x.size());
  const double mean = std::accumulate(x.begin(), x.end(), 0.0) / n;
  double var = 0, m4 = 0;
  for (double v : x) {
    var += (v - mean) * (v - mean);
    m4 += v * v * v * v;
  }
  return {mean, var / (n - 1), m4 / n};
}

double correlation(const std::vector<double>& a, const std::vector<double>& b) {
  const Moments ma = moments(a), mb = moments(b);
  double c = 0;
  for (std::size_t i = 0; i < a.size(); ++i) c += (a[i] - ma.mean) * (b[i] - mb.mean);
  c /= static_cast<double>(a.size() - 1);
  return c / std::sqrt(ma.var * mb.var);
}

std::vector<double> column(const State& s, Eigen::Index c) {
  std::vector<double> v(static_cast<std::size_t>(s.rows()));
  for (Eigen::Index r = 0; r < s.rows(); ++r) v[static_cast<std::size_t>(r)] = s(r, c);
  return v;
}

bool bitwise_equal(const State& a, const State& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() && (a == b).all();
}

}  // namespace

// ----------------------------------------------------------------------------------------
TEST_CASE("Philox4x32-10 matches the published known-answer vectors", "[noise][philox]") {
  // Random123's tests/kat_vectors, the three "philox4x32 10" lines (columns: counter[4],
  // key[2], expected output[4]); https://github.com/DEShawResearch/random123, commit
  // 9545ff6413f258be2f04c1d319d99aaef7521150. Quoted identically by several independent
  // Philox implementations.
  struct Kat {
    std::uint32_t ctr[4], key[2], out[4];
  };
  const Kat kats[] = {
      {{0x00000000, 0x00000000, 0x00000000, 0x00000000},
       {0x00000000, 0x00000000},
       {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  r123::Philox4x32 rng;
  for (const Kat& k : kats) {
    const r123::Philox4x32::ctr_type c = {{k.ctr[0], k.ctr[1], k.ctr[2], k.ctr[3]}};
    const r123::Philox4x32::key_type key = {{k.key[0], k.key[1]}};
    const auto out = rng(c, key);
    for (int i = 0; i < 4; ++i) CHECK(out[i] == k.out[i]);
  }
}

TEST_CASE("philox_normals uses the documented key and counter layout", "[noise][philox]") {
  const std::uint64_t seed = 0x0123456789abcdefULL;
  const std::uint64_t sample = (std::uint64_t{0x1234} << 32) | 0x89abcdefu;
  const std::uint32_t draw = 17;
  double z[5];
  philox_normals(seed, NoiseStream::init, sample, draw, z, 5);

  r123::Philox4x32 rng;
  const r123::Philox4x32::key_type key = {{0x89abcdefu, 0x01234567u}};
  for (std::uint32_t p = 0; p < 3; ++p) {
    const r123::Philox4x32::ctr_type c = {{p, draw, 0x89abcdefu, (1u << 16) | 0x1234u}};
    const auto b = rng(c, key);
    const auto u0 = (std::uint64_t{b[1]} << 32) | b[0];
    const auto u1 = (std::uint64_t{b[3]} << 32) | b[2];
    const r123::double2 expect = r123::boxmuller(u0, u1);
    CHECK(z[2 * p] == expect.x);
    if (2 * p + 1 < 5) CHECK(z[2 * p + 1] == expect.y);
  }
  // An odd count gives the first n of an even count.
  double z6[6];
  philox_normals(seed, NoiseStream::init, sample, draw, z6, 6);
  for (int i = 0; i < 5; ++i) CHECK(z[i] == z6[i]);

  // Sample indices use 48 bits.
  double x;
  CHECK_NOTHROW(philox_normals(seed, NoiseStream::init, (std::uint64_t{1} << 48) - 1, 0, &x, 1));
  CHECK_THROWS_AS(philox_normals(seed, NoiseStream::init, std::uint64_t{1} << 48, 0, &x, 1), Error);
  CHECK_THROWS_AS(philox_normals(seed, NoiseStream::init, 0, 0, &x, -1), Error);
  CHECK_NOTHROW(philox_normals(seed, NoiseStream::init, 0, 0, nullptr, 0));
}

TEST_CASE("Philox normals are standard normal and uncorrelated", "[noise][philox][stats]") {
  // 400 samples x 250 dims x 2 draws = 200,000 values from a fixed seed. Bounds are five
  // standard errors of each statistic under the null hypothesis (N(0,1), independent):
  // mean 1/sqrt(N), variance sqrt(2/N), E z^4 = 3 with sd sqrt(96/N), correlation 1/sqrt(N).
  const Eigen::Index batch = 400, dim = 250;
  PhiloxNoise noise(20240601);
  State a(batch, dim), b(batch, dim);
  noise.normal(a);
  noise.normal(b);
  CHECK(noise.draws() == 2);

  std::vector<double> all(a.data(), a.data() + a.size());
  all.insert(all.end(), b.data(), b.data() + b.size());
  const double n = static_cast<double>(all.size());
  const Moments m = moments(all);
  CHECK(std::abs(m.mean) < 5 / std::sqrt(n));
  CHECK(std::abs(m.var - 1) < 5 * std::sqrt(2 / n));
  CHECK(std::abs(m.m4 - 3) < 5 * std::sqrt(96 / n));
  // Tail: P(|z| > 2) = 0.0455003 (binomial standard error).
  const double p2 = 0.04550026389635842;
  const double tail = static_cast<double>(std::count_if(all.begin(), all.end(),
                                                        [](double v) { return std::abs(v) > 2; })) /
                      n;
  CHECK(std::abs(tail - p2) < 5 * std::sqrt(p2 * (1 - p2) / n));

  const auto half = static_cast<std::size_t>(a.size());
  const double bound = 5 / std::sqrt(static_cast<double>(half));
  // Neighbours within a sample (incl. the two outputs of one Box-Muller pair), across
  // samples, and across draws.
  std::vector<double> x, y;
  for (Eigen::Index r = 0; r < batch; ++r)
    for (Eigen::Index c = 0; c + 1 < dim; c += 2) {
      x.push_back(a(r, c));
      y.push_back(a(r, c + 1));
    }
  CHECK(std::abs(correlation(x, y)) < 5 / std::sqrt(static_cast<double>(x.size())));
  x.clear();
  y.clear();
  for (Eigen::Index r = 0; r + 1 < batch; ++r)
    for (Eigen::Index c = 0; c < dim; ++c) {
      x.push_back(a(r, c));
      y.push_back(a(r + 1, c));
    }
  CHECK(std::abs(correlation(x, y)) < 5 / std::sqrt(static_cast<double>(x.size())));
  std::vector<double> va(a.data(), a.data() + a.size()), vb(b.data(), b.data() + b.size());
  CHECK(std::abs(correlation(va, vb)) < bound);
}

TEST_CASE("Noise of a sample does not depend on batch size or split", "[noise][philox]") {
  const std::uint64_t seed = 7;
  const Eigen::Index dim = 5;
  PhiloxNoise full(seed);
  std::vector<State> draws;
  for (int k = 0; k < 3; ++k) {
    State s(64, dim);
    full.normal(s);
    draws.push_back(s);
  }
  for (const Eigen::Index batch : {Eigen::Index{1}, Eigen::Index{7}, Eigen::Index{64}}) {
    for (const Eigen::Index first : {Eigen::Index{0}, Eigen::Index{57}}) {
      if (first + batch > 64) continue;
      PhiloxNoise part(seed, static_cast<std::uint64_t>(first));
      for (int k = 0; k < 3; ++k) {
        State s(batch, dim);
        part.normal(s);
        CHECK(bitwise_equal(s, draws[static_cast<std::size_t>(k)].middleRows(first, batch)));
      }
    }
  }
  // A batch split in two (30 + 34), each half drawn into a block of one state.
  PhiloxNoise lo(seed, 0), hi(seed, 30);
  State split(64, dim);
  for (int k = 0; k < 3; ++k) {
    lo.normal(split.topRows(30));
    hi.normal(split.bottomRows(34));
    CHECK(bitwise_equal(split, draws[static_cast<std::size_t>(k)]));
  }
  // reset() starts again from draw 0.
  full.reset();
  CHECK(full.draws() == 0);
  State again(64, dim);
  full.normal(again);
  CHECK(bitwise_equal(again, draws[0]));
}

TEST_CASE("Different draws, streams, seeds and samples give different noise", "[noise][philox]") {
  auto get = [](std::uint64_t seed, NoiseStream stream, std::uint64_t sample, std::uint32_t draw) {
    std::vector<double> v(8);
    philox_normals(seed, stream, sample, draw, v.data(), 8);
    return v;
  };
  const auto base = get(1, NoiseStream::solver, 3, 0);
  CHECK(base != get(1, NoiseStream::solver, 3, 1));
  CHECK(base != get(1, NoiseStream::init, 3, 0));
  CHECK(base != get(1, NoiseStream::brownian_tree, 3, 0));
  CHECK(base != get(1, NoiseStream::user, 3, 0));
  CHECK(base != get(2, NoiseStream::solver, 3, 0));
  CHECK(base != get(1 + (std::uint64_t{1} << 32), NoiseStream::solver, 3, 0));  // high seed bits
  CHECK(base != get(1, NoiseStream::solver, 4, 0));
  CHECK(base != get(1, NoiseStream::solver, 3 + (std::uint64_t{1} << 32), 0));  // high sample bits
  CHECK(base == get(1, NoiseStream::solver, 3, 0));

  PhiloxNoise solver(5), init(5, 0, NoiseStream::init);
  State a(4, 3), b(4, 3);
  solver.normal(a);
  init.normal(b);
  CHECK_FALSE(bitwise_equal(a, b));
}

TEST_CASE("Default brownian() is sqrt(|dt|) times the next draw", "[noise][philox]") {
  PhiloxNoise n1(11), n2(11);
  State z(3, 4), dw(3, 4);
  n1.normal(z);
  n2.brownian(0.75, 0.5, dw);  // t1 < t0 allowed
  CHECK(n2.draws() == 1);
  CHECK(((dw - 0.5 * z).abs() < 1e-15).all());
}

// ----------------------------------------------------------------------------------------
TEST_CASE("Brownian tree increments have variance |t1 - t0|", "[noise][brownian]") {
  // 20,000 samples x 2 dims; the variance bound is five standard errors, sqrt(2/N) |dt|.
  const Eigen::Index batch = 20000, dim = 2;
  const double n = static_cast<double>(batch * dim);
  BrownianTreeNoise tree(99, 0.0, 1.0, 20);
  struct Interval {
    double t0, t1;
  };
  for (const Interval iv : {Interval{0.25, 0.5}, Interval{0.0, 1.0}, Interval{0.1234, 0.3789},
                            Interval{0.7, 0.7001}, Interval{0.9, 0.3}}) {
    State dw(batch, dim);
    tree.brownian(iv.t0, iv.t1, dw);
    std::vector<double> v(dw.data(), dw.data() + dw.size());
    const Moments m = moments(v);
    const double h = std::abs(iv.t1 - iv.t0);
    INFO("interval [" << iv.t0 << ", " << iv.t1 << "]");
    CHECK(std::abs(m.mean) < 5 * std::sqrt(h / n));
    CHECK(std::abs(m.var / h - 1) < 5 * std::sqrt(2 / n));
  }
  // A shallow tree is still exact in law at its dyadic points (and on another interval).
  BrownianTreeNoise shallow(3, -1.0, 3.0, 2);  // dyadic points -1, 0, 1, 2, 3
  State w1(batch, dim), w3(batch, dim);
  shallow.value(1.0, w1);
  shallow.value(3.0, w3);
  for (const auto& [w, var] : {std::pair<const State*, double>{&w1, 2.0}, {&w3, 4.0}}) {
    std::vector<double> v(w->data(), w->data() + w->size());
    CHECK(std::abs(moments(v).var / var - 1) < 5 * std::sqrt(2 / n));
  }
  State w_lo(2, 2);
  shallow.value(-1.0, w_lo);
  CHECK((w_lo == 0).all());
}

TEST_CASE("Brownian tree: disjoint increments are independent, overlapping ones share",
          "[noise][brownian]") {
  const Eigen::Index batch = 40000;
  const double bound = 5 / std::sqrt(static_cast<double>(batch));
  BrownianTreeNoise tree(123, 0.0, 1.0);
  State a(batch, 1), b(batch, 1), c(batch, 1);
  tree.brownian(0.1, 0.3, a);
  tree.brownian(0.3, 0.7, b);
  tree.brownian(0.2, 0.5, c);
  CHECK(std::abs(correlation(column(a, 0), column(b, 0))) < bound);
  // Corr(W(0.3)-W(0.1), W(0.5)-W(0.2)) = 0.1 / sqrt(0.2 * 0.3).
  CHECK(std::abs(correlation(column(a, 0), column(c, 0)) - 0.1 / std::sqrt(0.06)) < bound);
  // Different dims of one sample are independent too.
  State d(batch, 2);
  tree.brownian(0.0, 0.6, d);
  CHECK(std::abs(correlation(column(d, 0), column(d, 1))) < bound);
}

TEST_CASE("Brownian tree increments add up across a split", "[noise][brownian]") {
  BrownianTreeNoise tree(5, 0.0, 1.0, 24, 100);
  const Eigen::Index batch = 16, dim = 3;
  State whole(batch, dim), left(batch, dim), right(batch, dim);
  for (const double m : {0.5, 0.3141592653589793, 0.2500001}) {
    tree.brownian(0.2, 0.9, whole);
    tree.brownian(0.2, m, left);
    tree.brownian(m, 0.9, right);
    CHECK(((left + right - whole).abs() < 1e-13).all());
  }
  // A fine grid of 1000 steps sums to the coarse increment.
  State sum = State::Zero(batch, dim), step(batch, dim);
  for (int k = 0; k < 1000; ++k) {
    tree.brownian(k / 1000.0, (k + 1) / 1000.0, step);
    sum += step;
  }
  tree.brownian(0.0, 1.0, whole);
  CHECK(((sum - whole).abs() < 1e-12).all());
  // Reversed interval is the exact negative; increments are differences of value().
  State fwd(batch, dim), back(batch, dim), v0(batch, dim), v1(batch, dim);
  tree.brownian(0.37, 0.61, fwd);
  tree.brownian(0.61, 0.37, back);
  CHECK(bitwise_equal(fwd, State(-back)));
  tree.value(0.37, v0);
  tree.value(0.61, v1);
  CHECK(bitwise_equal(fwd, State(v1 - v0)));
  tree.brownian(0.4, 0.4, step);
  CHECK((step == 0).all());
  // Tree increments do not consume solver draws.
  CHECK(tree.draws() == 0);
}

TEST_CASE("Brownian tree gives the same path whatever the query order", "[noise][brownian]") {
  std::vector<double> ts;
  for (int k = 0; k <= 40; ++k) ts.push_back(0.5 + k * 0.0125 * 0.97);  // within [0.5, 1.0]
  ts.push_back(1.0);
  ts.push_back(0.5);
  const Eigen::Index batch = 5, dim = 3;
  auto path = [&](std::vector<double> order) {
    BrownianTreeNoise tree(77, 0.5, 1.0, 12);
    std::vector<State> out(ts.size());
    for (double t : order) {
      const auto i = static_cast<std::size_t>(std::find(ts.begin(), ts.end(), t) - ts.begin());
      out[i].resize(batch, dim);
      tree.value(t, out[i]);
    }
    return out;
  };
  std::vector<double> reversed(ts.rbegin(), ts.rend()), shuffled = ts;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(1));
  const auto p1 = path(ts), p2 = path(reversed), p3 = path(shuffled);
  for (std::size_t i = 0; i < ts.size(); ++i) {
    CHECK(bitwise_equal(p1[i], p2[i]));
    CHECK(bitwise_equal(p1[i], p3[i]));
  }
  // Sample j is the same in any batch.
  BrownianTreeNoise big(77, 0.5, 1.0, 12), one(77, 0.5, 1.0, 12, 3);
  State wb(5, dim), w1(1, dim);
  big.value(0.8, wb);
  one.value(0.8, w1);
  CHECK(bitwise_equal(w1, State(wb.row(3))));
  // Different seeds give different paths.
  BrownianTreeNoise other(78, 0.5, 1.0, 12);
  State wo(5, dim);
  other.value(0.8, wo);
  CHECK_FALSE(bitwise_equal(wo, wb));
}

TEST_CASE("Brownian tree's path cache gives value_rows' values bit for bit", "[noise][brownian]") {
  // Queries as a per-sample solver makes them (decreasing, nearby, with retries), jumps,
  // the path's ends, dyadic node points (ends and midpoints of nodes) and sub-leaf times.
  const double t_lo = 1e-3, t_hi = 1.0;
  const int depth = 10;
  std::vector<double> ts = {t_hi, 0.99, 0.99, 0.985, 0.97, 0.5, 0.9, t_lo, t_hi};
  for (int m : {1, 2, 3, 511, 512, 513, 1023})  // lattice points of depth 10
    ts.push_back(t_lo + m * (t_hi - t_lo) / 1024.0);
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(t_lo, t_hi);
  double t = t_hi;
  for (int k = 0; k < 300; ++k) {
    t = std::max(t_lo, t - 0.02 * u(rng));
    ts.push_back(t);
    if (k % 7 == 0) ts.push_back(u(rng));
  }
  const Eigen::Index rows = 3;
  const int dim = 2;
  for (std::uint64_t first : {0u, 5u}) {
    BrownianTreeNoise tree(9, t_lo, t_hi, depth, first);
    auto cache = tree.path_cache(1, rows, dim);
    REQUIRE(cache != nullptr);
    for (double q : ts) {
      for (long r = 0; r < rows; ++r) {
        State want(1, dim), got(1, dim);
        tree.value_rows(q, 1 + static_cast<std::uint64_t>(r), want);
        cache->value(r, q, got.data());
        CHECK(bitwise_equal(want, got));
      }
    }
    // Increments from cached values are brownian_rows' bit for bit.
    State w0(1, dim), w1(1, dim), inc(1, dim);
    cache->value(0, 0.61, w0.data());
    cache->value(0, 0.6, w1.data());
    tree.brownian_rows(0.61, 0.6, 1, inc);
    CHECK(bitwise_equal(State(w1 - w0), inc));
    std::vector<double> out(dim);
    CHECK_THROWS_AS(cache->value(0, 1.5, out.data()), Error);
  }
  // Sources that are no path have no cache.
  PhiloxNoise philox(1);
  CHECK(philox.path_cache(0, 2, 2) == nullptr);
}

TEST_CASE("Brownian tree validates its arguments", "[noise][brownian]") {
  CHECK_THROWS_AS(BrownianTreeNoise(1, 0.0, 1.0, 0), Error);
  CHECK_THROWS_AS(BrownianTreeNoise(1, 0.0, 1.0, 31), Error);
  CHECK_NOTHROW(BrownianTreeNoise(1, 0.0, 1.0, 30));
  CHECK_THROWS_AS(BrownianTreeNoise(1, 1.0, 1.0), Error);
  CHECK_THROWS_AS(BrownianTreeNoise(1, 1.0, 0.0), Error);
  CHECK_THROWS_AS(BrownianTreeNoise(1, 0.0, std::nan("")), Error);

  BrownianTreeNoise tree(1, 0.001, 1.0);
  State out(2, 2);
  CHECK_THROWS_WITH(tree.value(1.5, out), Catch::Contains("1.5") && Catch::Contains("0.001") &&
                                              Catch::Contains("[0.001, 1]"));
  CHECK_THROWS_AS(tree.brownian(0.0, 0.5, out), Error);
  CHECK_THROWS_AS(tree.brownian(0.5, std::nan(""), out), Error);
  CHECK_NOTHROW(tree.brownian(0.001, 1.0, out));

  // normal() draws from the solver stream, as PhiloxNoise does.
  BrownianTreeNoise t2(42, 0.0, 1.0, 20, 9);
  PhiloxNoise p(42, 9);
  State a(3, 4), b(3, 4);
  t2.normal(a);
  p.normal(b);
  CHECK(bitwise_equal(a, b));
  CHECK(t2.draws() == 1);
}

// ----------------------------------------------------------------------------------------
TEST_CASE("Replay noise returns its draws in order and then stops", "[noise][replay]") {
  const std::size_t batch = 2, dim = 3;
  State data(3, 6);
  for (Eigen::Index i = 0; i < data.size(); ++i) data.data()[i] = static_cast<double>(i);
  ReplayNoise replay(data, batch, dim, "mem");
  CHECK(replay.available() == 3);
  State out(2, 3);
  for (int k = 0; k < 3; ++k) {
    replay.normal(out);
    for (Eigen::Index i = 0; i < 2; ++i)
      for (Eigen::Index j = 0; j < 3; ++j) CHECK(out(i, j) == data(k, i * 3 + j));
  }
  CHECK(replay.draws() == 3);
  CHECK_THROWS_WITH(replay.normal(out), Catch::Contains("mem") && Catch::Contains("has 3 draws") &&
                                            Catch::Contains("draw 4 requested"));
  replay.reset();
  replay.brownian(0.0, 0.25, out);  // default: sqrt(dt) * draw
  CHECK(out(1, 2) == 0.5 * 5.0);

  State wrong(3, 2);
  CHECK_THROWS_WITH(replay.normal(wrong), Catch::Contains("mem") && Catch::Contains("(2, 3)") &&
                                              Catch::Contains("(3, 2)"));
  CHECK_THROWS_AS(ReplayNoise(data, 4, 2, "mem"), Error);
}

TEST_CASE("Replay noise reads (draws, batch, dim) .npy files", "[noise][replay]") {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("diffsde_test_noise_" + std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{dir};

  NpyArray a;
  a.shape = {2, 3, 2};
  for (int i = 0; i < 12; ++i) a.data.push_back(0.25 * i);
  const std::string file = (dir / "noise.npy").string();
  write_npy(file, a);
  auto replay = ReplayNoise::from_npy(file);
  CHECK(replay->available() == 2);
  State out(3, 2);
  replay->normal(out);
  replay->normal(out);
  CHECK(out(2, 1) == 0.25 * 11);
  CHECK_THROWS_WITH(replay->normal(out), Catch::Contains(file) && Catch::Contains("has 2 draws"));

  NpyArray flat;
  flat.shape = {2, 6};
  flat.data = a.data;
  const std::string flat_file = (dir / "flat.npy").string();
  write_npy(flat_file, flat);
  CHECK_THROWS_AS(ReplayNoise::from_npy(flat_file), IoError);
  CHECK_THROWS_WITH(ReplayNoise::from_npy(flat_file), Catch::Contains(flat_file) &&
                                                          Catch::Contains("(2, 6)") &&
                                                          Catch::Contains("3-D"));
  CHECK_THROWS_AS(ReplayNoise::from_npy((dir / "missing.npy").string()), IoError);
}
