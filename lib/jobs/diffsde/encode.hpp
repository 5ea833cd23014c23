// Encoding: data to noise through the probability-flow ODE run forwards in time, and
// decoding: the sampler started from given latents. See docs/encode.md.
//
// The PF-ODE dx/dt = f(t) x - g(t)^2/2 score(x, t) is deterministic, so integrating it from
// the data end of a sampling grid (its last time, t_end) up to the noise end (its first
// time, t_start) gives latents x(t_start) from which the same ODE, run the usual way,
// returns the data up to the solvers' discretization errors. Any deterministic solver whose
// formulas do not assume a decreasing grid can do this (SolverTraits::stochastic and
// needs_decreasing_grid both false): the exponential integrators in lambda (ddim at eta = 0,
// dpm_solver, unipc, deis, ...), the multistep ones, pf_ode and the odeint steppers, and
// k-diffusion's deterministic samplers in sigma/alpha.
//
// The latents are x at t_start on the schedule's scale (sigma(t_start) times a standard
// normal for Gaussian noise on ve and edm), i.e. exactly what a sampler takes as its
// initial state (the config's "init").
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/config.hpp"
#include "diffsde/driver.hpp"
#include "diffsde/solver.hpp"
#include "diffsde/state.hpp"

namespace diffsde {

// The grid of an encoding: the sampling grid `times` (noise to data) reversed.
std::vector<double> encoding_times(const std::vector<double>& times);

// Throws ConfigError at `path` naming the solver when it cannot integrate the PF-ODE
// forwards: a stochastic solver (it samples the reverse SDE), or one written only for a
// decreasing grid.
void check_solver_encodes(const SolverTraits& traits, const std::string& path = "solver");

// Integrates the data x (rows x dim, at times.back()) forwards through the reversed grid
// to times.front(): x becomes the latents. `times` is the sampling grid (decreasing).
// Throws ConfigError (check_solver_encodes) before any evaluation, Error when the reversed
// grid breaks the solver's requirements (check_solver_grid: a step from sigma = 0),
// NumericalError on a breakdown.
Summary encode(Solver& solver, const Schedule& schedule, const Model& model, const std::vector<double>& times,
               State& x, const std::vector<Observer*>& observers = {}, const DriverOptions& options = {});

// The inverse: integrates latents x (at times.front()) through the sampling grid to
// times.back() with a deterministic solver (as a sampler started from x; no noise).
// x becomes the decoded data.
Summary decode(Solver& solver, const Schedule& schedule, const Model& model, const std::vector<double>& times,
               State& x, const std::vector<Observer*>& observers = {}, const DriverOptions& options = {});

// The rows of a .npy file as a batch: an array (n, d) or (n, C, H, W) gives n rows of
// its flattened values (a 1-D array: n rows of one value). IoError naming the file when it
// cannot be read or holds a scalar or no rows.
State read_npy_rows(const std::string& path);

// IoError naming `name` (the data's file) when x does not have `dim` columns, or naming the
// row and column of its first value that is not finite.
void check_rows(const State& x, int dim, const std::string& name);

// A sampling job turned into an encoding of `data`: the sampling config's problem, grid
// and solver with the batch set to the data's rows (per-sample conditioning must have as
// many), and job.x = data. The config's "init" is not read. Throws before any model
// evaluation: ConfigError (JSON path) at "solver" for a solver that cannot encode
// (check_solver_encodes) or whose own checks refuse the reversed grid, at "grid" for a
// reversed grid that starts where no step may (sigma = 0 at t_end); IoError naming
// `data_name` (check_rows) for data that does not fit the model or is not finite.
SampleJob build_encode_job(SampleConfig config, const State& data, const std::string& data_name = "data");

// The sampling job that decodes `latents` (its x_T; batch = latents.rows()). Any solver of
// the config is accepted (a stochastic one samples from the latents rather than inverting
// the encoding). Throws as build_sample_job, and IoError naming `latents_name` as
// check_rows.
SampleJob build_decode_job(SampleConfig config, const State& latents, const std::string& latents_name = "latents");

// What an encoding run produced.
struct EncodeResult {
  State data;     // the input
  State latents;  // x(t_start)
  Summary summary;
  // With reconstruction: the latents decoded again with the same solver and grid, and
  // its error against the data (max |.| and root-mean-square over every value).
  bool reconstructed = false;
  State reconstruction;
  Summary decode_summary;
  double max_error = 0, rms_error = 0;
};

// Runs the encoding job (job.x becomes the latents) and, if `reconstruct`, decodes them
// back. Throws NumericalError on a breakdown. `progress` (DriverOptions::progress) counts
// the steps of both passes: with reconstruction, `steps` is twice the grid's and the
// decoding's steps follow the encoding's.
EncodeResult run_encode_job(SampleJob& job, bool reconstruct, const std::vector<Observer*>& observers = {},
                            const std::function<bool(const Progress&)>& progress = {});

// The run as JSON: the solver, schedule, model, grid, the encoding's summary (t_start at
// the data end, t_end at the noise end), the latents' mean and standard deviation over
// all values, and, with reconstruction, "reconstruction": {max_abs_error, rms_error, nfe,
// seconds}.
nlohmann::json encode_summary_json(const SampleJob& job, const EncodeResult& result);

}  // namespace diffsde
