// A model whose output is a prediction of another kind than eps (diffusers'
// prediction_type: x0 "sample", v "v_prediction"; or a score), converted to eps with the
// schedule's alpha and sigma at the step's time:
//   auto model = diffsde::with_prediction(diffsde::make_model(2, v_function), schedule, Prediction::v);
// Where the network runs at another time than the step (RetimedModel, eps_rows_retimed),
// the raw output comes from that time and the conversion uses the step's.
#pragma once

#include <memory>

#include "diffsde/model.hpp"
#include "diffsde/parameterization.hpp"
#include "diffsde/schedule.hpp"

namespace diffsde {

std::shared_ptr<Model> with_prediction(std::shared_ptr<const Model> raw, std::shared_ptr<const Schedule> schedule,
                                       Prediction kind);

// EDM's preconditioning (Karras et al. 2022, Table 1), for a network trained with it: at a
// step's alpha and sigma, with s = sigma / alpha the noise level of x / alpha,
//   D = c_skip(s) x / alpha + output_sign c_out(s) F(c_in(s) x / alpha, c_noise(s)),
//   c_skip = sd^2 / (s^2 + sd^2), c_out = s sd / sqrt(s^2 + sd^2), c_in = 1 / sqrt(s^2 + sd^2),
//   c_noise = log(s) / 4,  sd = sigma_data,
// and eps = (x / alpha - D) / s. The network F is `network`: its eps_rows(input, time, ...)
// is called with the scaled input and c_noise as the time, and its output is taken as F
// (so a TorchScriptModel wrapped here predicts "eps" with continuous time input). On the
// edm schedule alpha = 1 and s = t. Jacobian-vector products come from the network's.
struct EdmPreconditioning {
  double sigma_data = 0.5;
  // +1: EDM's denoiser (diffusers' EDM schedulers' "epsilon"); -1: c_out negated, the
  // v-prediction denoiser (k-diffusion's VDenoiser, diffusers' EDM "v_prediction").
  double output_sign = 1.0;
};
std::unique_ptr<Model> with_edm_preconditioning(std::shared_ptr<const Model> network,
                                                std::shared_ptr<const Schedule> schedule,
                                                EdmPreconditioning options = {});

}  // namespace diffsde
