// Noise sources. Noise is a function of (seed, sample index, draw index), never
// of the batch size, thread count or split: sample j of a batch whose first sample
// has global index `first_sample` gets the same numbers in any batch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "diffsde/state.hpp"

namespace diffsde {

// Stream ids separate independent uses of one seed.
enum class NoiseStream : std::uint32_t {
  solver = 0,         // draws made by solvers (normal())
  init = 1,           // the initial x_T
  brownian_tree = 2,  // nodes of the Brownian tree
  user = 3,           // free for tests and applications
  probe = 4,          // Hutchinson trace probes of the likelihood (draw = probe index)
  dequantize = 5,     // uniform dequantization of 8-bit data in likelihoods
  vlb = 6,            // the x_t draws of the variational bound's Monte Carlo terms
  data = 7,           // exact data samples of analytic models (AnalyticModel::sample_data)
  data_uniform = 8,   // data sources: the uniforms of toys and of row picks (data.hpp)
  data_normal = 9,    // data sources: the normals of toys and mixtures
  train_time = 10,    // training: the uniform behind each sample's t
  train_noise = 11,   // training: each sample's eps
};

// Fills out[0..n) with standard normals for (seed, stream, sample, draw):
// Philox4x32-10 keyed by the seed, one counter (pair index, draw, sample, stream)
// per two values, Box-Muller on 64-bit uniforms (Random123).
void philox_normals(std::uint64_t seed, NoiseStream stream, std::uint64_t sample,
                    std::uint32_t draw, double* out, int n);
// The same counters, as uniform doubles in [0, 1) (53 random bits each).
void philox_uniforms(std::uint64_t seed, NoiseStream stream, std::uint64_t sample,
                     std::uint32_t draw, double* out, int n);

class NoiseSource {
 public:
  virtual ~NoiseSource() = default;
  virtual std::string name() const = 0;
  // The next standard-normal draw for the whole batch, one sample per row.
  // Draws are numbered 0, 1, ... in the order they are made.
  virtual void normal(StateRef out) = 0;
  // The Brownian increment W(t1) - W(t0) for every sample (t1 < t0 allowed).
  // Default: sqrt(|t1 - t0|) times the next normal draw.
  virtual void brownian(double t0, double t1, StateRef out);
  // Number of normal draws made so far.
  std::uint64_t draws() const { return draws_; }
  // Starts again from draw 0.
  virtual void reset() { draws_ = 0; }
  // Counts n draws as made without making them (after the row blocks of a split run
  // made them), so that the next draw follows on.
  void skip(std::uint64_t n) { draws_ += n; }

  // A source for rows first_row .. first_row + rows - 1 of a batch of `batch` rows, at
  // this source's draw count: its draws, increments and tree values are exactly those
  // rows of what this source would give that batch, bit for bit. The driver integrates
  // a batch in such row blocks on several threads. nullptr where the source cannot
  // (the default; the driver then uses one thread).
  virtual std::unique_ptr<NoiseSource> row_block(std::uint64_t batch, std::uint64_t first_row,
                                                 std::uint64_t rows) const;

  // Brownian paths. A source that is one Brownian path (is_path(): the Brownian tree)
  // answers W at any time, so that increments over any intervals (each sample's own
  // steps, retried steps, sub-intervals of a step) come from that one path, as diffrax's
  // AbstractBrownianPath.evaluate(t0, t1). Solvers ask for them through this interface
  // only; the other sources draw independent normals and throw Error here.
  virtual bool is_path() const { return false; }
  // W(t) - W(t_lo) for every sample.
  virtual void value(double t, StateRef out) const;
  // W(t) - W(t_lo) for a sub-batch: row r of `out` is row row0 + r of this source's batch.
  virtual void value_rows(double t, std::uint64_t row0, StateRef out) const;
  // W(t1) - W(t0) for a sub-batch: row r of `out` is row row0 + r of this source's batch;
  // bit for bit value_rows(t1) - value_rows(t0).
  virtual void brownian_rows(double t0, double t1, std::uint64_t row0, StateRef out) const;
  // Values of W for rows row0 .. row0 + rows - 1 (dim values each), queried one row and
  // one time at a time, as a solver that steps each sample on its own asks for them. What
  // it returns is bit for bit value_rows'; it may remember work between queries of a row
  // (the Brownian tree keeps each row's last descent). nullptr where the source has no
  // such cache (the default; value_rows then serves).
  class PathCache {
   public:
    virtual ~PathCache() = default;
    // W(t) - W(t_lo) of row row0 + r into out[0 .. dim - 1].
    virtual void value(long r, double t, double* out) = 0;
  };
  virtual std::unique_ptr<PathCache> path_cache(std::uint64_t row0, long rows, int dim) const;
  // Where the path lives: W is exact in law at t_lo + m (t_hi - t_lo) 2^-depth and
  // linear between those points.
  struct PathLattice {
    double t_lo = 0, t_hi = 0;
    int depth = 0;
  };
  virtual PathLattice lattice() const;

 protected:
  std::uint64_t draws_ = 0;
};

// Counter-based Philox noise: draw k of sample j depends only on (seed, j, k).
class PhiloxNoise final : public NoiseSource {
 public:
  explicit PhiloxNoise(std::uint64_t seed, std::uint64_t first_sample = 0,
                       NoiseStream stream = NoiseStream::solver);
  std::string name() const override { return "philox"; }
  void normal(StateRef out) override;
  std::unique_ptr<NoiseSource> row_block(std::uint64_t batch, std::uint64_t first_row,
                                         std::uint64_t rows) const override;

 private:
  std::uint64_t seed_, first_sample_;
  NoiseStream stream_;
};

// A Brownian path on [t_lo, t_hi] built by recursive Brownian-bridge bisection to
// `depth` levels (a virtual Brownian tree keyed by node, so nothing is stored): W is
// exact in law at the 2^depth + 1 dyadic points and linear between them, so
// increments over any interval come from one and the same path, at any step size,
// and add up exactly across a split interval. normal() draws as PhiloxNoise does.
class BrownianTreeNoise final : public NoiseSource {
 public:
  BrownianTreeNoise(std::uint64_t seed, double t_lo, double t_hi, int depth = 20,
                    std::uint64_t first_sample = 0);
  std::string name() const override { return "brownian_tree"; }
  void normal(StateRef out) override;
  void brownian(double t0, double t1, StateRef out) override;
  std::unique_ptr<NoiseSource> row_block(std::uint64_t batch, std::uint64_t first_row,
                                         std::uint64_t rows) const override;
  bool is_path() const override { return true; }
  // W(t) - W(t_lo) for every sample; W(t_lo) = 0.
  void value(double t, StateRef out) const override;
  // The same for a sub-batch: row r of `out` is sample first_sample + row0 + r (used by
  // solvers that step each sample on its own times, e.g. ggf).
  void value_rows(double t, std::uint64_t row0, StateRef out) const override;
  void brownian_rows(double t0, double t1, std::uint64_t row0, StateRef out) const override;
  // Keeps each row's last descent (its nodes' intervals and end values, level by level), so
  // that a query redoes only the levels below the deepest node that holds both it and the
  // last query: about log2((t_hi - t_lo) / |t - t_last|) levels fewer. Memory: rows x
  // (depth + 1) x (2 dim + 3) doubles.
  std::unique_ptr<PathCache> path_cache(std::uint64_t row0, long rows, int dim) const override;
  PathLattice lattice() const override { return {t_lo_, t_hi_, depth_}; }
  double t_lo() const { return t_lo_; }
  double t_hi() const { return t_hi_; }
  int depth() const { return depth_; }

 private:
  std::uint64_t seed_, first_sample_;
  double t_lo_, t_hi_;
  int depth_;
};

// Replays standard-normal draws from an array of shape (draws, batch, dim): draw k
// is slice k. Running out of draws, or a batch/dim that does not match, is an Error
// naming the source file. Row blocks share the array.
class ReplayNoise final : public NoiseSource {
 public:
  // data: draws x (batch * dim), row k = slice k flattened in C order.
  ReplayNoise(State data, std::size_t batch, std::size_t dim, std::string origin);
  static std::unique_ptr<ReplayNoise> from_npy(const std::string& path);
  std::string name() const override { return "replay"; }
  void normal(StateRef out) override;
  // Only for a batch of the file's batch size.
  std::unique_ptr<NoiseSource> row_block(std::uint64_t batch, std::uint64_t first_row,
                                         std::uint64_t rows) const override;
  std::size_t available() const { return static_cast<std::size_t>(data_->rows()); }

 private:
  std::shared_ptr<const State> data_;
  std::size_t batch_, dim_;    // the file's batch and dim
  std::size_t row0_, rows_;    // the rows of the file's batch this source gives
  std::string origin_;
};

}  // namespace diffsde
