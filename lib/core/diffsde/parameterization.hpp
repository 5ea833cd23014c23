// Converters between the model outputs in use: noise eps, data x0, the VP velocity v, the
// flow-matching velocity, score:
//   x = alpha x0 + sigma eps,  score = -eps / sigma,  v = alpha eps - sigma x0 (alpha^2 +
//   sigma^2 = 1 on a VP schedule),  velocity = eps - x0 (rectified flow's target: dx/dsigma
//   along alpha = 1 - sigma, whatever the time shift; defined on every schedule).
#pragma once

#include <string>

#include "diffsde/state.hpp"

namespace diffsde {

enum class Prediction { eps, x0, v, score, velocity };

// "eps" | "x0" | "v" | "score" | "velocity"; throws Error on anything else.
Prediction prediction_from_string(const std::string& s);
std::string to_string(Prediction p);

// x0 = (x - sigma eps) / alpha
void x0_from_eps(const ConstStateRef& x, const ConstStateRef& eps, double alpha, double sigma,
                 StateRef x0);
// eps = (x - alpha x0) / sigma
void eps_from_x0(const ConstStateRef& x, const ConstStateRef& x0, double alpha, double sigma,
                 StateRef eps);
// score = -eps / sigma
void score_from_eps(const ConstStateRef& eps, double sigma, StateRef score);
// eps = -sigma score
void eps_from_score(const ConstStateRef& score, double sigma, StateRef eps);
// v = alpha eps - sigma x0 = (eps - sigma x) / alpha ... computed as alpha eps - sigma x0
void v_from_eps(const ConstStateRef& x, const ConstStateRef& eps, double alpha, double sigma,
                StateRef v);
// eps = sigma x + alpha v
void eps_from_v(const ConstStateRef& x, const ConstStateRef& v, double alpha, double sigma,
                StateRef eps);
// velocity = eps - x0 = ((alpha + sigma) eps - x) / alpha
void velocity_from_eps(const ConstStateRef& x, const ConstStateRef& eps, double alpha, double sigma,
                       StateRef velocity);
// eps = (x + alpha velocity) / (alpha + sigma): exact on every schedule, alpha = 0 included
// (flow: eps = x + (1 - sigma) velocity).
void eps_from_velocity(const ConstStateRef& x, const ConstStateRef& velocity, double alpha, double sigma,
                       StateRef eps);
// The data prediction x0 from an x0, v or velocity prediction, exact where alpha = 0 (pure
// noise); x0 may alias pred. Throws Error for eps and score (whose x0 needs alpha > 0).
void to_x0(Prediction kind, const ConstStateRef& x, const ConstStateRef& pred, double alpha, double sigma,
           StateRef x0);
// x0, v and velocity predictions carry x0 where alpha = 0; eps and score do not.
bool predicts_data(Prediction kind);
// Converts a prediction of kind `kind` to eps in place-safe fashion (out may alias pred).
void to_eps(Prediction kind, const ConstStateRef& x, const ConstStateRef& pred, double alpha,
            double sigma, StateRef eps);

}  // namespace diffsde
