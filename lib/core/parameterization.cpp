// Converters between noise (eps), data (x0), velocity (v) and score predictions.
//
// Every conversion is one coefficient-wise Eigen expression: each output coefficient
// is computed from the input coefficients at the same index only, so the output may
// share storage with any input (exactly the same array, as in to_eps(kind, x, pred,
// ..., pred)) without a temporary.
#include "diffsde/parameterization.hpp"

#include <cmath>
#include <sstream>

#include "diffsde/error.hpp"

namespace diffsde {

namespace {

void check_same_shape(const char* what, const ConstStateRef& a, const char* a_name,
                      Eigen::Index rows, Eigen::Index cols) {
  if (a.rows() != rows || a.cols() != cols) {
    std::ostringstream msg;
    msg << what << ": " << a_name << " is " << a.rows() << " x " << a.cols() << ", expected "
        << rows << " x " << cols << " (the shape of x)";
    throw Error(msg.str());
  }
}

void check_out_shape(const char* what, const StateRef& out, const char* out_name,
                     Eigen::Index rows, Eigen::Index cols) {
  if (out.rows() != rows || out.cols() != cols) {
    std::ostringstream msg;
    msg << what << ": output " << out_name << " is " << out.rows() << " x " << out.cols()
        << ", expected " << rows << " x " << cols;
    throw Error(msg.str());
  }
}

void check_positive(const char* what, const char* name, double value) {
  if (!(value > 0.0) || !std::isfinite(value)) {
    std::ostringstream msg;
    msg << what << ": " << name << " must be finite and > 0, got " << value;
    throw Error(msg.str());
  }
}

void check_nonnegative(const char* what, const char* name, double value) {
  if (!(value >= 0.0) || !std::isfinite(value)) {
    std::ostringstream msg;
    msg << what << ": " << name << " must be finite and >= 0, got " << value;
    throw Error(msg.str());
  }
}

// The v <-> eps identities use alpha^2 + sigma^2 = 1 (VP). A loose tolerance still
// catches the usual mistake of passing alpha_bar for alpha.
void check_vp(const char* what, double alpha, double sigma) {
  check_nonnegative(what, "alpha", alpha);
  check_nonnegative(what, "sigma", sigma);
  const double s = alpha * alpha + sigma * sigma;
  if (std::abs(s - 1.0) > 1e-6) {
    std::ostringstream msg;
    msg.precision(17);
    msg << what << ": alpha^2 + sigma^2 must be 1 on a VP schedule, got alpha = " << alpha
        << ", sigma = " << sigma << " (sum of squares " << s << ")";
    throw Error(msg.str());
  }
}

}  // namespace

Prediction prediction_from_string(const std::string& s) {
  if (s == "eps") return Prediction::eps;
  if (s == "x0") return Prediction::x0;
  if (s == "v") return Prediction::v;
  if (s == "score") return Prediction::score;
  if (s == "velocity") return Prediction::velocity;
  throw Error("unknown prediction '" + s + "'; known: eps, x0, v, score, velocity");
}

std::string to_string(Prediction p) {
  switch (p) {
    case Prediction::eps: return "eps";
    case Prediction::x0: return "x0";
    case Prediction::v: return "v";
    case Prediction::score: return "score";
    case Prediction::velocity: return "velocity";
  }
  throw Error("invalid Prediction value " + std::to_string(static_cast<int>(p)));
}

void x0_from_eps(const ConstStateRef& x, const ConstStateRef& eps, double alpha, double sigma,
                 StateRef x0) {
  const char* what = "x0_from_eps";
  check_same_shape(what, eps, "eps", x.rows(), x.cols());
  check_out_shape(what, x0, "x0", x.rows(), x.cols());
  check_positive(what, "alpha", alpha);
  check_nonnegative(what, "sigma", sigma);
  const double inv_alpha = 1.0 / alpha;
  x0 = (x - sigma * eps) * inv_alpha;
}

void eps_from_x0(const ConstStateRef& x, const ConstStateRef& x0, double alpha, double sigma,
                 StateRef eps) {
  const char* what = "eps_from_x0";
  check_same_shape(what, x0, "x0", x.rows(), x.cols());
  check_out_shape(what, eps, "eps", x.rows(), x.cols());
  check_nonnegative(what, "alpha", alpha);
  check_positive(what, "sigma", sigma);
  const double inv_sigma = 1.0 / sigma;
  eps = (x - alpha * x0) * inv_sigma;
}

void score_from_eps(const ConstStateRef& eps, double sigma, StateRef score) {
  const char* what = "score_from_eps";
  check_out_shape(what, score, "score", eps.rows(), eps.cols());
  check_positive(what, "sigma", sigma);
  const double inv_sigma = 1.0 / sigma;
  score = -inv_sigma * eps;
}

void eps_from_score(const ConstStateRef& score, double sigma, StateRef eps) {
  const char* what = "eps_from_score";
  check_out_shape(what, eps, "eps", score.rows(), score.cols());
  check_nonnegative(what, "sigma", sigma);
  eps = -sigma * score;
}

void v_from_eps(const ConstStateRef& x, const ConstStateRef& eps, double alpha, double sigma,
                StateRef v) {
  const char* what = "v_from_eps";
  check_same_shape(what, eps, "eps", x.rows(), x.cols());
  check_out_shape(what, v, "v", x.rows(), x.cols());
  check_positive(what, "alpha", alpha);
  check_nonnegative(what, "sigma", sigma);
  // v = alpha eps - sigma x0 with x0 = (x - sigma eps) / alpha, in one expression so
  // that v may alias eps or x.
  const double inv_alpha = 1.0 / alpha;
  v = alpha * eps - (sigma * inv_alpha) * (x - sigma * eps);
}

void eps_from_v(const ConstStateRef& x, const ConstStateRef& v, double alpha, double sigma,
                StateRef eps) {
  const char* what = "eps_from_v";
  check_same_shape(what, v, "v", x.rows(), x.cols());
  check_out_shape(what, eps, "eps", x.rows(), x.cols());
  check_vp(what, alpha, sigma);
  // sigma x + alpha v = (alpha^2 + sigma^2) eps = eps.
  eps = sigma * x + alpha * v;
}

void velocity_from_eps(const ConstStateRef& x, const ConstStateRef& eps, double alpha, double sigma,
                       StateRef velocity) {
  const char* what = "velocity_from_eps";
  check_same_shape(what, eps, "eps", x.rows(), x.cols());
  check_out_shape(what, velocity, "velocity", x.rows(), x.cols());
  check_positive(what, "alpha", alpha);
  check_nonnegative(what, "sigma", sigma);
  // eps - x0 with x0 = (x - sigma eps) / alpha, in one expression (velocity may alias).
  const double inv_alpha = 1.0 / alpha;
  velocity = eps - (x - sigma * eps) * inv_alpha;
}

void eps_from_velocity(const ConstStateRef& x, const ConstStateRef& velocity, double alpha, double sigma,
                       StateRef eps) {
  const char* what = "eps_from_velocity";
  check_same_shape(what, velocity, "velocity", x.rows(), x.cols());
  check_out_shape(what, eps, "eps", x.rows(), x.cols());
  check_nonnegative(what, "alpha", alpha);
  check_nonnegative(what, "sigma", sigma);
  check_positive(what, "alpha + sigma", alpha + sigma);
  // x = alpha x0 + sigma eps and x0 = eps - velocity give x + alpha velocity = (alpha + sigma) eps.
  const double inv = 1.0 / (alpha + sigma);
  eps = (x + alpha * velocity) * inv;
}

void to_x0(Prediction kind, const ConstStateRef& x, const ConstStateRef& pred, double alpha, double sigma,
           StateRef x0) {
  const char* what = "to_x0";
  check_same_shape(what, pred, "pred", x.rows(), x.cols());
  check_out_shape(what, x0, "x0", x.rows(), x.cols());
  check_nonnegative(what, "alpha", alpha);
  check_nonnegative(what, "sigma", sigma);
  switch (kind) {
    case Prediction::x0:
      if (x0.data() != pred.data() || x0.outerStride() != pred.outerStride()) x0 = pred;
      return;
    case Prediction::v: {
      // x = alpha x0 + sigma eps and v = alpha eps - sigma x0 give alpha x - sigma v =
      // (alpha^2 + sigma^2) x0 (= x0 on a VP schedule).
      const double norm = alpha * alpha + sigma * sigma;
      check_positive(what, "alpha^2 + sigma^2", norm);
      x0 = (alpha * x - sigma * pred) * (1.0 / norm);
      return;
    }
    case Prediction::velocity: {
      // x = alpha x0 + sigma eps and velocity = eps - x0 give x - sigma velocity = (alpha + sigma) x0.
      check_positive(what, "alpha + sigma", alpha + sigma);
      x0 = (x - sigma * pred) * (1.0 / (alpha + sigma));
      return;
    }
    case Prediction::eps:
    case Prediction::score:
      throw Error("to_x0: an " + to_string(kind) + " prediction gives x0 only through (x - sigma eps) / alpha");
  }
  throw Error("to_x0: invalid Prediction value " + std::to_string(static_cast<int>(kind)));
}

bool predicts_data(Prediction kind) {
  return kind == Prediction::x0 || kind == Prediction::v || kind == Prediction::velocity;
}

void to_eps(Prediction kind, const ConstStateRef& x, const ConstStateRef& pred, double alpha,
            double sigma, StateRef eps) {
  // Each branch is coefficient-wise (see the top of this file), so eps may be pred.
  switch (kind) {
    case Prediction::eps:
      check_same_shape("to_eps", pred, "pred", x.rows(), x.cols());
      check_out_shape("to_eps", eps, "eps", x.rows(), x.cols());
      if (eps.data() != pred.data() || eps.outerStride() != pred.outerStride()) eps = pred;
      return;
    case Prediction::x0: eps_from_x0(x, pred, alpha, sigma, eps); return;
    case Prediction::v: eps_from_v(x, pred, alpha, sigma, eps); return;
    case Prediction::velocity: eps_from_velocity(x, pred, alpha, sigma, eps); return;
    case Prediction::score:
      check_same_shape("to_eps", pred, "pred", x.rows(), x.cols());
      eps_from_score(pred, sigma, eps);
      return;
  }
  throw Error("to_eps: invalid Prediction value " + std::to_string(static_cast<int>(kind)));
}

}  // namespace diffsde
