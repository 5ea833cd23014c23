// Noise sources: counter-based Philox normals, a virtual Brownian tree and replay
// from a file. See docs/noise.md for the keying scheme and what is exact.
//
// Philox4x32-10 and the Box-Muller transform are Random123's (D. E. Shaw Research,
// https://github.com/DEShawResearch/random123; Salmon, Moraes, Dror, Shaw,
// "Parallel random numbers: as easy as 1, 2, 3", SC'11).
#include "diffsde/noise.hpp"

#include <Random123/boxmuller.hpp>
#include <Random123/philox.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "diffsde/error.hpp"
#include "diffsde/npy.hpp"

namespace diffsde {

namespace {

// Sample indices use the low 32 bits of counter word 2 and the low 16 bits of word 3;
// the high 16 bits of word 3 carry the stream.
constexpr std::uint64_t kMaxSample = (std::uint64_t{1} << 48) - 1;

std::string shape_string(std::size_t rows, std::size_t cols) {
  return "(" + std::to_string(rows) + ", " + std::to_string(cols) + ")";
}

std::uint32_t draw_index(std::uint64_t draws, const char* who) {
  if (draws > std::numeric_limits<std::uint32_t>::max())
    throw Error(std::string(who) + ": more than 2^32 normal draws requested");
  return static_cast<std::uint32_t>(draws);
}

// One row of `out` per sample first_sample + r, draw `draw` of `stream`.
void fill_normals(std::uint64_t seed, NoiseStream stream, std::uint64_t first_sample,
                  std::uint32_t draw, StateRef out) {
  const auto rows = out.rows();
  const auto cols = out.cols();
  if (cols == 0) return;
  for (Eigen::Index r = 0; r < rows; ++r)
    philox_normals(seed, stream, first_sample + static_cast<std::uint64_t>(r), draw, &out(r, 0),
                   static_cast<int>(cols));
}

}  // namespace

namespace {

// Calls emit(p, u0, u1) with the two 64-bit uniforms of pair p = 0 .. pairs-1 of the
// counter (pair index, draw, sample, stream), Philox4x32-10 keyed by the seed.
template <class Emit>
void philox_pairs(const char* what, std::uint64_t seed, NoiseStream stream, std::uint64_t sample,
                  std::uint32_t draw, int n, Emit emit) {
  if (n < 0) throw Error(std::string(what) + ": negative count " + std::to_string(n));
  if (n == 0) return;
  if (sample > kMaxSample)
    throw Error("noise sample index " + std::to_string(sample) +
                " is too large (at most 2^48 - 1 = " + std::to_string(kMaxSample) + ")");
  const auto stream_id = static_cast<std::uint32_t>(stream);
  if (stream_id >= (1u << 16))
    throw Error("noise stream id " + std::to_string(stream_id) + " is too large (at most 65535)");

  using Philox = r123::Philox4x32;  // 10 rounds
  Philox rng;
  const Philox::key_type key = {
      {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}};
  Philox::ctr_type ctr = {{0u, draw, static_cast<std::uint32_t>(sample),
                           (stream_id << 16) | static_cast<std::uint32_t>(sample >> 32)}};
  const int pairs = (n + 1) / 2;
  for (int p = 0; p < pairs; ++p) {
    ctr[0] = static_cast<std::uint32_t>(p);
    const Philox::ctr_type bits = rng(ctr, key);
    // Two 64-bit uniforms from the four 32-bit words (low word first).
    emit(p, (static_cast<std::uint64_t>(bits[1]) << 32) | bits[0],
         (static_cast<std::uint64_t>(bits[3]) << 32) | bits[2]);
  }
}

}  // namespace

void philox_normals(std::uint64_t seed, NoiseStream stream, std::uint64_t sample,
                    std::uint32_t draw, double* out, int n) {
  philox_pairs("philox_normals", seed, stream, sample, draw, n,
               [&](int p, std::uint64_t u0, std::uint64_t u1) {
                 const r123::double2 z = r123::boxmuller(u0, u1);
                 out[2 * p] = z.x;
                 if (2 * p + 1 < n) out[2 * p + 1] = z.y;  // odd n: the last pair's second value is dropped
               });
}

void philox_uniforms(std::uint64_t seed, NoiseStream stream, std::uint64_t sample,
                     std::uint32_t draw, double* out, int n) {
  philox_pairs("philox_uniforms", seed, stream, sample, draw, n,
               [&](int p, std::uint64_t u0, std::uint64_t u1) {
                 out[2 * p] = static_cast<double>(u0 >> 11) * 0x1.0p-53;
                 if (2 * p + 1 < n) out[2 * p + 1] = static_cast<double>(u1 >> 11) * 0x1.0p-53;
               });
}

// ----------------------------------------------------------------------------------------
void NoiseSource::brownian(double t0, double t1, StateRef out) {
  normal(out);
  out *= std::sqrt(std::abs(t1 - t0));
}

std::unique_ptr<NoiseSource> NoiseSource::row_block(std::uint64_t /*batch*/,
                                                    std::uint64_t /*first_row*/,
                                                    std::uint64_t /*rows*/) const {
  return nullptr;
}

void NoiseSource::value(double /*t*/, StateRef /*out*/) const {
  throw Error("noise source '" + name() + "' is not a Brownian path (use brownian_tree)");
}

void NoiseSource::value_rows(double /*t*/, std::uint64_t /*row0*/, StateRef /*out*/) const {
  throw Error("noise source '" + name() + "' is not a Brownian path (use brownian_tree)");
}

void NoiseSource::brownian_rows(double /*t0*/, double /*t1*/, std::uint64_t /*row0*/,
                                StateRef /*out*/) const {
  throw Error("noise source '" + name() + "' is not a Brownian path (use brownian_tree)");
}

std::unique_ptr<NoiseSource::PathCache> NoiseSource::path_cache(std::uint64_t /*row0*/, long /*rows*/,
                                                                int /*dim*/) const {
  return nullptr;
}

NoiseSource::PathLattice NoiseSource::lattice() const {
  throw Error("noise source '" + name() + "' is not a Brownian path (use brownian_tree)");
}

// ----------------------------------------------------------------------------------------
PhiloxNoise::PhiloxNoise(std::uint64_t seed, std::uint64_t first_sample, NoiseStream stream)
    : seed_(seed), first_sample_(first_sample), stream_(stream) {}

void PhiloxNoise::normal(StateRef out) {
  fill_normals(seed_, stream_, first_sample_, draw_index(draws_, "philox noise"), out);
  ++draws_;
}

// Row r of the batch is sample first_sample + r, whatever the batch.
std::unique_ptr<NoiseSource> PhiloxNoise::row_block(std::uint64_t /*batch*/,
                                                    std::uint64_t first_row,
                                                    std::uint64_t /*rows*/) const {
  auto block = std::make_unique<PhiloxNoise>(seed_, first_sample_ + first_row, stream_);
  block->draws_ = draws_;
  return block;
}

// ----------------------------------------------------------------------------------------
// Brownian tree. Draw 0 of the brownian_tree stream gives W(t_hi) = sqrt(t_hi - t_lo) Z;
// draw i >= 1 is heap node i (root 1 = [t_lo, t_hi], children 2i = left half,
// 2i + 1 = right half), whose midpoint value comes from the Brownian bridge between the
// node's endpoints: W(m) = (W(l) + W(r)) / 2 + sqrt((r - l) / 4) Z_i. Nodes exist on
// levels 0 .. depth-1 (ids 1 .. 2^depth - 1); below the last level W is linear.
namespace {

struct TreeWalk {
  std::uint64_t seed, sample;
  int depth;
  int dim;
};

struct TreeState {
  double l, r;
  std::uint32_t node;
  int level;
};

// Continues a descent from `s` (endpoint values wl, wr) to W(t), written to `out`.
// wl, wr and z are work buffers of `dim` values; wl and wr are overwritten.
void finish(const TreeWalk& w, TreeState s, double t, double* wl, double* wr, double* z,
            double* out) {
  const int d = w.dim;
  for (;;) {
    if (t == s.l) {
      std::copy(wl, wl + d, out);
      return;
    }
    if (t == s.r) {
      std::copy(wr, wr + d, out);
      return;
    }
    if (s.level == w.depth) {
      const double a = (t - s.l) / (s.r - s.l);
      for (int k = 0; k < d; ++k) out[k] = wl[k] + a * (wr[k] - wl[k]);
      return;
    }
    const double m = 0.5 * (s.l + s.r);
    const double scale = std::sqrt(0.25 * (s.r - s.l));
    philox_normals(w.seed, NoiseStream::brownian_tree, w.sample, s.node, z, d);
    for (int k = 0; k < d; ++k) z[k] = 0.5 * (wl[k] + wr[k]) + scale * z[k];  // W(m)
    if (t < m) {
      std::copy(z, z + d, wr);
      s.r = m;
      s.node = 2 * s.node;
    } else if (t > m) {
      std::copy(z, z + d, wl);
      s.l = m;
      s.node = 2 * s.node + 1;
    } else {
      std::copy(z, z + d, out);
      return;
    }
    ++s.level;
  }
}

// Root state: W(t_lo) = 0, W(t_hi) from draw 0.
void root(const TreeWalk& w, double t_lo, double t_hi, double* wl, double* wr) {
  std::fill(wl, wl + w.dim, 0.0);
  philox_normals(w.seed, NoiseStream::brownian_tree, w.sample, 0u, wr, w.dim);
  const double s = std::sqrt(t_hi - t_lo);
  for (int k = 0; k < w.dim; ++k) wr[k] *= s;
}

// Work space reused across calls (per thread), so no allocation per step.
std::vector<double>& tree_work(std::size_t n) {
  thread_local std::vector<double> work;
  if (work.size() < n) work.resize(n);
  return work;
}

}  // namespace

BrownianTreeNoise::BrownianTreeNoise(std::uint64_t seed, double t_lo, double t_hi, int depth,
                                     std::uint64_t first_sample)
    : seed_(seed), first_sample_(first_sample), t_lo_(t_lo), t_hi_(t_hi), depth_(depth) {
  if (!std::isfinite(t_lo) || !std::isfinite(t_hi) || !(t_lo < t_hi))
    throw Error("brownian tree: need finite t_lo < t_hi, got [" + format_double(t_lo) + ", " +
                format_double(t_hi) + "]");
  if (depth < 1 || depth > 30)
    throw Error("brownian tree: depth must be between 1 and 30, got " + std::to_string(depth));
}

void BrownianTreeNoise::normal(StateRef out) {
  fill_normals(seed_, NoiseStream::solver, first_sample_, draw_index(draws_, "brownian tree noise"),
               out);
  ++draws_;
}

std::unique_ptr<NoiseSource> BrownianTreeNoise::row_block(std::uint64_t /*batch*/,
                                                          std::uint64_t first_row,
                                                          std::uint64_t /*rows*/) const {
  auto block =
      std::make_unique<BrownianTreeNoise>(seed_, t_lo_, t_hi_, depth_, first_sample_ + first_row);
  block->draws_ = draws_;
  return block;
}

namespace {
void check_in_range(double t, double lo, double hi) {
  if (!(t >= lo && t <= hi))
    throw Error("brownian tree: t = " + format_double(t) + " is outside its range [" +
                format_double(lo) + ", " + format_double(hi) + "]");
}
}  // namespace

void BrownianTreeNoise::value(double t, StateRef out) const { value_rows(t, 0, out); }

void BrownianTreeNoise::brownian(double t0, double t1, StateRef out) {
  brownian_rows(t0, t1, 0, out);
}

void BrownianTreeNoise::value_rows(double t, std::uint64_t row0, StateRef out) const {
  check_in_range(t, t_lo_, t_hi_);
  const int dim = static_cast<int>(out.cols());
  if (dim == 0) return;
  auto& work = tree_work(3 * static_cast<std::size_t>(dim));
  double* wl = work.data();
  double* wr = wl + dim;
  double* z = wr + dim;
  for (Eigen::Index r = 0; r < out.rows(); ++r) {
    const TreeWalk w{seed_, first_sample_ + row0 + static_cast<std::uint64_t>(r), depth_, dim};
    root(w, t_lo_, t_hi_, wl, wr);
    finish(w, TreeState{t_lo_, t_hi_, 1u, 0}, t, wl, wr, z, &out(r, 0));
  }
}

void BrownianTreeNoise::brownian_rows(double t0, double t1, std::uint64_t row0,
                                      StateRef out) const {
  check_in_range(t0, t_lo_, t_hi_);
  check_in_range(t1, t_lo_, t_hi_);
  const int dim = static_cast<int>(out.cols());
  if (dim == 0) return;
  if (t0 == t1) {
    out.setZero();
    return;
  }
  auto& work = tree_work(6 * static_cast<std::size_t>(dim));
  double* wl = work.data();
  double* wr = wl + dim;
  double* z = wr + dim;
  double* wl2 = z + dim;
  double* wr2 = wl2 + dim;
  double* v0 = wr2 + dim;
  for (Eigen::Index r = 0; r < out.rows(); ++r) {
    const TreeWalk w{seed_, first_sample_ + row0 + static_cast<std::uint64_t>(r), depth_, dim};
    root(w, t_lo_, t_hi_, wl, wr);
    // Descend once for both ends while they lie in the same half, then separately. The
    // arithmetic along each path is the same as value()'s, so W(t) does not depend on
    // which query computed it.
    TreeState s{t_lo_, t_hi_, 1u, 0};
    for (;;) {
      if (s.level == depth_ || t0 == s.l || t0 == s.r || t1 == s.l || t1 == s.r) break;
      const double m = 0.5 * (s.l + s.r);
      if (t0 == m || t1 == m || (t0 < m) != (t1 < m)) break;
      const double scale = std::sqrt(0.25 * (s.r - s.l));
      philox_normals(w.seed, NoiseStream::brownian_tree, w.sample, s.node, z, dim);
      for (int k = 0; k < dim; ++k) z[k] = 0.5 * (wl[k] + wr[k]) + scale * z[k];
      if (t0 < m) {
        std::copy(z, z + dim, wr);
        s.r = m;
        s.node = 2 * s.node;
      } else {
        std::copy(z, z + dim, wl);
        s.l = m;
        s.node = 2 * s.node + 1;
      }
      ++s.level;
    }
    std::copy(wl, wl + dim, wl2);
    std::copy(wr, wr + dim, wr2);
    double* row = &out(r, 0);
    finish(w, s, t0, wl2, wr2, z, v0);
    finish(w, s, t1, wl, wr, z, row);
    for (int k = 0; k < dim; ++k) row[k] -= v0[k];
  }
}

namespace {

// Per row: the descent of its last query, level by level (the node's interval, id and end
// values as a descent enters that level), valid for levels 0 .. levels - 1.
class TreePathCache final : public NoiseSource::PathCache {
 public:
  TreePathCache(std::uint64_t seed, std::uint64_t first_sample, double t_lo, double t_hi, int depth, long rows,
                int dim)
      : seed_(seed),
        first_sample_(first_sample),
        t_lo_(t_lo),
        t_hi_(t_hi),
        depth_(depth),
        dim_(dim),
        stride_(static_cast<std::size_t>(depth + 1)),
        levels_(static_cast<std::size_t>(rows), 0),
        states_(static_cast<std::size_t>(rows) * stride_),
        ends_(static_cast<std::size_t>(rows) * stride_ * 2 * static_cast<std::size_t>(dim)),
        z_(static_cast<std::size_t>(dim)) {}

  void value(long r, double t, double* out) override {
    check_in_range(t, t_lo_, t_hi_);
    const int d = dim_;
    if (d == 0) return;
    const auto row = static_cast<std::size_t>(r);
    TreeState* states = &states_[row * stride_];
    double* ends = &ends_[row * stride_ * 2 * static_cast<std::size_t>(d)];
    const auto wl_at = [&](int level) { return ends + static_cast<std::size_t>(level) * 2 * static_cast<std::size_t>(d); };
    const TreeWalk w{seed_, first_sample_ + static_cast<std::uint64_t>(r), depth_, d};
    int& levels = levels_[row];
    if (levels == 0) {  // the root: as value_rows
      root(w, t_lo_, t_hi_, wl_at(0), wl_at(0) + d);
      states[0] = TreeState{t_lo_, t_hi_, 1u, 0};
      levels = 1;
    }
    // The deepest remembered level whose node holds t strictly inside: a fresh descent
    // enters it in exactly this state (t is no end or midpoint of any node above it).
    int k = 0;
    while (k + 1 < levels && states[k + 1].l < t && t < states[k + 1].r) ++k;
    // From there on as finish(), remembering each level entered.
    TreeState s = states[k];
    double* wl = wl_at(k);
    double* wr = wl + d;
    double* z = z_.data();
    for (;;) {
      levels = s.level + 1;
      if (t == s.l) {
        std::copy(wl, wl + d, out);
        return;
      }
      if (t == s.r) {
        std::copy(wr, wr + d, out);
        return;
      }
      if (s.level == depth_) {
        const double a = (t - s.l) / (s.r - s.l);
        for (int j = 0; j < d; ++j) out[j] = wl[j] + a * (wr[j] - wl[j]);
        return;
      }
      const double m = 0.5 * (s.l + s.r);
      const double scale = std::sqrt(0.25 * (s.r - s.l));
      philox_normals(w.seed, NoiseStream::brownian_tree, w.sample, s.node, z, d);
      for (int j = 0; j < d; ++j) z[j] = 0.5 * (wl[j] + wr[j]) + scale * z[j];  // W(m)
      if (t == m) {
        std::copy(z, z + d, out);
        return;
      }
      double* nl = wl_at(s.level + 1);
      double* nr = nl + d;
      if (t < m) {
        std::copy(wl, wl + d, nl);
        std::copy(z, z + d, nr);
        s.r = m;
        s.node = 2 * s.node;
      } else {
        std::copy(z, z + d, nl);
        std::copy(wr, wr + d, nr);
        s.l = m;
        s.node = 2 * s.node + 1;
      }
      ++s.level;
      states[s.level] = s;
      wl = nl;
      wr = nr;
    }
  }

 private:
  std::uint64_t seed_, first_sample_;
  double t_lo_, t_hi_;
  int depth_, dim_;
  std::size_t stride_;
  std::vector<int> levels_;
  std::vector<TreeState> states_;
  std::vector<double> ends_;
  std::vector<double> z_;
};

}  // namespace

std::unique_ptr<NoiseSource::PathCache> BrownianTreeNoise::path_cache(std::uint64_t row0, long rows, int dim) const {
  return std::make_unique<TreePathCache>(seed_, first_sample_ + row0, t_lo_, t_hi_, depth_, rows, dim);
}

// ----------------------------------------------------------------------------------------
ReplayNoise::ReplayNoise(State data, std::size_t batch, std::size_t dim, std::string origin)
    : data_(std::make_shared<const State>(std::move(data))),
      batch_(batch),
      dim_(dim),
      row0_(0),
      rows_(batch),
      origin_(std::move(origin)) {
  if (static_cast<std::size_t>(data_->cols()) != batch_ * dim_)
    throw Error("replay noise " + origin_ + ": each draw has " + std::to_string(data_->cols()) +
                " values but batch x dim = " + std::to_string(batch_) + " x " +
                std::to_string(dim_) + " needs " + std::to_string(batch_ * dim_));
}

std::unique_ptr<ReplayNoise> ReplayNoise::from_npy(const std::string& path) {
  NpyArray a = read_npy(path);
  if (a.shape.size() != 3) {
    std::string shape = "(";
    for (std::size_t i = 0; i < a.shape.size(); ++i)
      shape += (i ? ", " : "") + std::to_string(a.shape[i]);
    shape += a.shape.size() == 1 ? ",)" : ")";
    throw IoError(
        path, "replay noise needs a 3-D array of shape (draws, batch, dim), got shape " + shape);
  }
  const std::size_t draws = a.shape[0], batch = a.shape[1], dim = a.shape[2];
  State data(static_cast<Eigen::Index>(draws), static_cast<Eigen::Index>(batch * dim));
  if (a.size() != 0) std::copy(a.data.begin(), a.data.end(), data.data());  // row-major = C order
  return std::make_unique<ReplayNoise>(std::move(data), batch, dim, path);
}

std::unique_ptr<NoiseSource> ReplayNoise::row_block(std::uint64_t batch, std::uint64_t first_row,
                                                    std::uint64_t rows) const {
  if (batch != rows_ || first_row > rows_ || rows > rows_ - first_row) return nullptr;
  auto block = std::make_unique<ReplayNoise>(*this);
  block->row0_ = row0_ + static_cast<std::size_t>(first_row);
  block->rows_ = static_cast<std::size_t>(rows);
  return block;
}

void ReplayNoise::normal(StateRef out) {
  const auto rows = static_cast<std::size_t>(out.rows());
  const auto cols = static_cast<std::size_t>(out.cols());
  if (rows != rows_ || cols != dim_)
    throw Error("replay noise " + origin_ + ": draws have shape (batch, dim) = " +
                shape_string(rows_, dim_) + " but " + shape_string(rows, cols) + " was requested");
  if (draws_ >= available())
    throw Error("replay noise " + origin_ + " has " + std::to_string(available()) +
                " draws; draw " + std::to_string(draws_ + 1) + " requested");
  if (rows_ * dim_ == 0) {
    ++draws_;
    return;
  }
  const double* src =
      &(*data_)(static_cast<Eigen::Index>(draws_), static_cast<Eigen::Index>(row0_ * dim_));
  for (std::size_t i = 0; i < rows_; ++i)
    for (std::size_t j = 0; j < dim_; ++j)
      out(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = src[i * dim_ + j];
  ++draws_;
}

}  // namespace diffsde
