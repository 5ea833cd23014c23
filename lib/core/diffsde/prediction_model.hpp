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

}  // namespace diffsde
