// Exact likelihoods through the probability-flow ODE (Song et al. 2021, sec. 4.3 and
// app. D.2), with the divergence of its drift computed exactly (d Jacobian-vector
// products) or estimated by Hutchinson–Skilling probes with a standard error. See
// docs/likelihood.md for the formulas.
//
// For data x at t_min the augmented ODE, on any schedule (f = d log alpha/dt and g^2 the
// forward SDE's coefficients, score = -eps / sigma; VP: f = -beta/2, g^2 = beta),
//   dx/dt = F(x, t) = f x - g^2/2 score = f x + g^2 / (2 sigma) eps(x, t),
//   dD/dt = div F(x, t) = f d + g^2 / (2 sigma) tr(d eps / d x),   D(t_min) = 0,
// runs forwards from t_min to t_max, and
//   log p_{t_min}(x) = log N(x(t_max); 0, prior_std(t_max)^2 I) + D(t_max)
// (prior_std: 1 for VP, sub-VP and flow; sigma(t_max) for ve and edm). t_max must lie below
// a time where alpha = 0 (flow's t = 1), where f diverges.
//
// Every sample is integrated as its own ODE with its own adaptive steps, its probes keyed
// by (seed, sample index): a sample's result does not depend on the batch, the split of
// the data into runs, or the thread count, bit for bit.
//
// Hutchinson: the K probes v_1..v_K of a sample are fixed for the whole trajectory and
// share one ODE: its state is (x, D_1..D_K), dD_k/dt = f d + g^2/(2 sigma) v_k^T J v_k,
// and one right-hand side is one eps_jvp call on K rows (x repeated, one probe per row).
// Each D_k(t_max) is an unbiased estimate of D(t_max) along the computed path, and the K of
// them are independent given the path, so the spread of the K values gives an honest
// standard error of their mean (the path's discretization error is a common bias, set by
// the tolerances, and not part of it).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "diffsde/model.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/solvers/pf_ode.hpp"
#include "diffsde/state.hpp"

namespace diffsde {

// How the trace of d eps / d x is computed.
enum class TraceMethod {
  exact,       // sum of d JVPs with the unit vectors (d rows per evaluation; small d)
  hutchinson,  // K fixed random probes, E[v^T J v] = tr J (K rows per evaluation)
};
enum class ProbeDistribution { rademacher, gaussian };
// Where the Jacobian-vector products come from.
enum class JvpMethod {
  model,              // Model::eps_jvp (exact; the default)
  finite_difference,  // central differences of eps: a fallback for models without eps_jvp
};
// What the data is, for bits per dimension.
enum class DataKind {
  continuous,  // real-valued data: bpd = nll / (d ln 2)
  image8,      // 8-bit values k = 0..255 stored as k / 127.5 - 1 in [-1, 1]
};

std::string to_string(TraceMethod method);
std::string to_string(ProbeDistribution distribution);
std::string to_string(JvpMethod method);
std::string to_string(DataKind kind);
// Throw Error listing the known names on anything else.
TraceMethod trace_method_from_string(const std::string& s);
ProbeDistribution probe_distribution_from_string(const std::string& s);
JvpMethod jvp_method_from_string(const std::string& s);
DataKind data_kind_from_string(const std::string& s);

struct LikelihoodOptions {
  // The odeint stepper and, for the adaptive ones, its tolerances (as for pf_ode). The
  // error norm is the max-norm over the sample's augmented state (x and every D_k).
  PfOdeOptions ode;
  // Fixed steppers (euler, rk4, adams_bashforth_moulton): uniform steps in t.
  long steps = 100;
  double t_min = 1e-5;
  // End of the integration; <= 0: the schedule's t_max().
  double t_max = 0;
  TraceMethod trace = TraceMethod::exact;
  int probes = 8;  // Hutchinson: K >= 2 (a standard error needs two)
  ProbeDistribution distribution = ProbeDistribution::rademacher;
  JvpMethod jvp = JvpMethod::model;
  // Finite differences: J v ~ (eps(x + h u) - eps(x - h u)) / (2 h) |v|, u = v / |v|,
  // h = fd_step (1 + |x|_inf) (|.| the Euclidean norm).
  double fd_step = 1e-5;
  // image8: each sample is dequantized with its own uniform noise on its 8-bit bin,
  // [x - 1/255, x + 1/255), and bpd includes the offset log2(127.5) per dimension.
  DataKind data = DataKind::continuous;
  std::uint64_t seed = 0;
  // Global index of the first data row (probe and dequantization keys).
  std::uint64_t first_sample = 0;
  // Samples are independent ODEs; this many threads share them.
  int threads = 1;
  // The model's per-sample inputs: row r of each is data row r's (one row: shared by every
  // row). Null: an unconditional density.
  std::shared_ptr<const Conditioning> cond;
  // Called as rows finish with (fraction done, rows done, rows), one call at a time (from
  // the thread that finished the row); empty: none.
  std::function<void(double, long, long)> progress;

  // True when usable; otherwise false with the reason in *error, starting with the field.
  bool is_valid(std::string* error = nullptr) const;
};

// One entry (or row) per data row.
struct LikelihoodResult {
  BatchVector nll;         // -log p_{t_min}(x), nats (Hutchinson: the mean over probes)
  BatchVector nll_stderr;  // standard error of nll over the probes; 0 for the exact trace
  BatchVector bpd;         // bits per dimension (with the dequantization offset for image8)
  BatchVector bpd_stderr;
  BatchVector prior_logp;  // log N(x(t_max); 0, prior_std(t_max)^2 I)
  BatchVector delta_logp;  // D(t_max), mean over probes
  State probe_nll;         // rows x K: the estimate of each probe (exact: rows x 1)
  State x;                 // the points whose density is computed (image8: dequantized)
  State x_T;               // x(t_max)
  std::vector<long> nfe;   // right-hand-side evaluations (each one eps_jvp call on K or d rows,
                           // or three eps calls with finite differences)
  std::vector<long> accepted, rejected;  // steps (adaptive steppers; accepted = steps otherwise)
  double seconds = 0;
  double t_min = 0, t_max = 0;
};

// The PF-ODE likelihood of every row of `data` (rows x model.dim()) under `model`,
// bound to `schedule`. Throws Error on invalid options or data (image8 values off the
// 8-bit grid name the row and column), NumericalError naming the sample on a breakdown.
LikelihoodResult pf_ode_likelihood(const Model& model, const Schedule& schedule, const State& data,
                                   const LikelihoodOptions& options);

// log N(x; 0, I) of one row.
double standard_normal_log_density(const double* x, int dim);
// log N(x; 0, std^2 I) of one row (std == 1: standard_normal_log_density, bit for bit).
double prior_log_density(const double* x, int dim, double std);

// Bits per dimension of a negative log-likelihood in nats: nll / (d ln 2) for continuous
// data; (nll + d ln 127.5) / (d ln 2) for image8 (the density of the dequantized data in
// [-1, 1] coordinates, turned into one on the 8-bit integers: see docs/likelihood.md).
double bits_per_dim(double nll, int dim, DataKind kind);
// The offset in nats added before dividing: 0, or d ln 127.5 for image8.
double dequantization_offset_nats(int dim, DataKind kind);

// The 8-bit level k in 0..255 of every value of `data`, which must lie within 1e-6 of
// k / 127.5 - 1; otherwise Error naming the row and column.
std::vector<int> image8_levels(const State& data);

// Dequantizes row r of `data` (8-bit levels in [-1, 1]) with uniform noise on its bin
// [x - 1/255, x + 1/255): the noise of sample first_sample + r, stream `dequantize`.
State dequantize_image8(const State& data, std::uint64_t seed, std::uint64_t first_sample);

// The finite-difference fallback for Model::eps_jvp (see LikelihoodOptions::fd_step):
// three eps calls on the batch (Model::eps_rows with `rows`). Not exact: its error is O(h^2)
// plus rounding O(eps/h).
void eps_jvp_finite_difference(const Model& model, const ModelRows& rows, const ConstStateRef& x, double t,
                               const ConstStateRef& v, StateRef eps_out, StateRef jvp_out,
                               double fd_step = 1e-5);
// The same without conditioning.
inline void eps_jvp_finite_difference(const Model& model, const ConstStateRef& x, double t, const ConstStateRef& v,
                                      StateRef eps_out, StateRef jvp_out, double fd_step = 1e-5) {
  eps_jvp_finite_difference(model, ModelRows{}, x, t, v, eps_out, jvp_out, fd_step);
}

}  // namespace diffsde
