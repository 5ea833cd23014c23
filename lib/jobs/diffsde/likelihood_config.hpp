// The JSON configuration of a likelihood run (`diffsde likelihood`), validated up front:
// every error names its JSON path.
//
//   {"schedule": {"name": "vp_linear"}, "model": {"name": "gmm"},
//    "method": "pf_ode",
//    "solver": {"name": "pf_ode", "stepper": "dopri5", "rtol": 1e-6, "atol": 1e-6},
//    "t_min": 1e-5,
//    "trace": {"method": "hutchinson", "probes": 16, "distribution": "rademacher"},
//    "data_kind": "continuous", "seed": 0}
//
//   {"schedule": {"name": "vp_discrete"}, "model": {...}, "method": "vlb",
//    "vlb": {"steps": 1000, "variance": "beta_tilde", "draws": 4}, "data_kind": "image8"}
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/likelihood.hpp"
#include "diffsde/model.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/vlb.hpp"

namespace diffsde {

enum class LikelihoodMethod {
  pf_ode,  // exact likelihood through the probability-flow ODE
  vlb,     // the DDPM variational bound on a discrete chain
};
std::string to_string(LikelihoodMethod method);

struct LikelihoodConfig {
  nlohmann::json schedule, model;
  LikelihoodMethod method = LikelihoodMethod::pf_ode;
  // method pf_ode (its data, seed and threads are those below).
  LikelihoodOptions pf_ode;
  // method vlb (likewise).
  VlbOptions vlb;
  DataKind data = DataKind::continuous;
  std::uint64_t seed = 0;
  int threads = 1;
  // The model's inputs for each data row, as given ("cond"; null: none).
  nlohmann::json cond;
  // Relative file names are resolved against this folder (the config file's).
  std::string base_dir;
};

// The parameter tables of the sections, for docs and `--help`.
const std::vector<ParamSpec>& likelihood_solver_params();
const std::vector<ParamSpec>& likelihood_trace_params();
const std::vector<ParamSpec>& likelihood_vlb_params();

// Checks keys, types and values; ConfigError with the JSON path otherwise.
LikelihoodConfig parse_likelihood_config(const nlohmann::json& config,
                                         const std::string& base_dir = "");

struct LikelihoodJob {
  LikelihoodConfig config;
  std::shared_ptr<const Schedule> schedule;
  std::shared_ptr<const Model> model;
  // The inputs of the data rows (bind_likelihood_data); empty without "cond".
  std::shared_ptr<const Conditioning> cond;
};

// Builds the schedule and the model and checks what needs them (t_max, the model's
// Jacobian-vector products, the VLB's chain); ConfigError with the JSON path otherwise.
LikelihoodJob build_likelihood_job(const LikelihoodConfig& config);

// Reads the config's "cond" for `rows` data rows starting at data row `first` (a .npy with
// one row per data row of the file is sliced from `first`) and checks it against the
// model's inputs: ConfigError at cond.NAME, IoError naming the file. Sets job.cond.
void bind_likelihood_data(LikelihoodJob& job, long rows, std::uint64_t first);

}  // namespace diffsde
