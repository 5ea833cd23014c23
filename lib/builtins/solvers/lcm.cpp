// Registry entry "lcm": multistep consistency sampling (diffusers' LCMScheduler).
#include <memory>
#include <vector>

#include "diffsde/solvers/lcm.hpp"
#include "entry.hpp"

namespace diffsde::builtin {

void register_lcm(Registry<Solver>& registry) {
  registry.add({"lcm",
                "multistep consistency sampling of latent consistency models (Luo et al. 2023; diffusers' "
                "LCMScheduler): the boundary-condition mix of x0 and the sample at each grid time, re-noised to "
                "the next; the last step returns it. For consistency-distilled networks; not a discretisation of "
                "the reverse SDE",
                {{"timestep_scaling", ParamType::number, 10.0,
                  "s in c_skip = sigma_data^2 / ((s tau)^2 + sigma_data^2), c_out = s tau / sqrt((s tau)^2 + "
                  "sigma_data^2), tau the network's timestep"},
                 {"sigma_data", ParamType::number, 0.5, "sigma_data of the boundary condition"},
                 {"train_steps", ParamType::integer, 0,
                  "N in tau = N t - 1; 0: a vp_discrete schedule's number of steps, else 1000"},
                 {"clip_x0", ParamType::numbers, nullptr, "clamp x0 to [lo, hi] before the boundary condition"}},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
                  LcmSolver::Options o;
                  o.timestep_scaling = p.number("timestep_scaling");
                  o.sigma_data = p.number("sigma_data");
                  o.train_steps = int_param(p, "train_steps");
                  if (p.has("clip_x0")) {
                    const std::vector<double> clip = p.numbers("clip_x0");
                    if (clip.size() != 2) p.fail("clip_x0", "expected [lo, hi]");
                    o.clip_x0 = std::make_pair(clip[0], clip[1]);
                  }
                  return std::make_unique<LcmSolver>(checked(p, o));
                }});
}

}  // namespace diffsde::builtin
