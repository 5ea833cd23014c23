// Parsing and building of likelihood configurations (see likelihood_config.hpp).
#include "diffsde/likelihood_config.hpp"

#include <cmath>

#include "diffsde/error.hpp"
#include "diffsde/problem.hpp"
#include "diffsde/registry.hpp"
#include "problem_cond.hpp"

namespace diffsde {

using nlohmann::json;

namespace {

const std::vector<std::string> kKeys = {"schedule",  "model", "method",  "solver", "t_min",
                                        "t_max",     "trace", "vlb",     "data_kind", "seed",
                                        "threads",   "cond",  "uncond",  "guidance", "thresholding"};

// Keys used by one method only.
const std::vector<std::string> kPfOdeKeys = {"solver", "t_min", "t_max", "trace"};
const std::vector<std::string> kVlbKeys = {"vlb"};

double finite_number(const json& v, const std::string& path) {
  if (!v.is_number()) throw ConfigError(path, "expected a number");
  const double d = v.get<double>();
  if (!std::isfinite(d)) throw ConfigError(path, "must be finite");
  return d;
}

std::vector<std::string> stepper_names() {
  std::vector<std::string> names;
  for (PfOdeStepper s : all_pf_ode_steppers()) names.push_back(to_string(s));
  return names;
}

// The "solver" section: {"name": "pf_ode" (optional), stepper and its settings}.
void parse_solver(const json& v, LikelihoodOptions& o) {
  if (v.is_string()) {
    if (v.get<std::string>() != "pf_ode")
      throw ConfigError("solver",
                        "the likelihood integrates the probability-flow ODE: expected "
                        "\"pf_ode\" (or an object with a stepper), got \"" +
                            v.get<std::string>() + "\"");
    return;
  }
  if (v.is_object() && v.contains("name") &&
      (!v.at("name").is_string() || v.at("name").get<std::string>() != "pf_ode"))
    throw ConfigError("solver.name",
                      "the likelihood integrates the probability-flow ODE: "
                      "expected \"pf_ode\"");
  const Params p(v, likelihood_solver_params(), "solver");
  o.ode.stepper = pf_ode_stepper_from_string(p.string("stepper"));
  const bool adaptive = is_adaptive(o.ode.stepper);
  const std::string stepper = to_string(o.ode.stepper);
  for (const char* name : {"rtol", "atol", "h_init"})
    if (!adaptive && p.given(name))
      p.fail(name,
             "only the adaptive steppers (cash_karp54, dopri5, fehlberg78, bulirsch_stoer) "
             "use it; stepper '" +
                 stepper + "' takes `steps` uniform steps");
  if (adaptive && p.given("steps"))
    p.fail("steps",
           "only the fixed steppers (euler, rk4, adams_bashforth_moulton) use it; "
           "stepper '" +
               stepper + "' chooses its own steps");
  o.ode.rtol = p.number("rtol");
  o.ode.atol = p.number("atol");
  o.ode.h_init = p.number("h_init");
  o.steps = p.integer("steps");
  if (!(o.ode.rtol > 0)) p.fail("rtol", "must be > 0, got " + format_double(o.ode.rtol));
  if (!(o.ode.atol > 0)) p.fail("atol", "must be > 0, got " + format_double(o.ode.atol));
  if (!(o.ode.h_init > 0)) p.fail("h_init", "must be > 0, got " + format_double(o.ode.h_init));
  if (o.steps < 1 || o.steps > 100000000)
    p.fail("steps", "must be between 1 and 1e8, got " + std::to_string(o.steps));
}

void parse_trace(const json& v, LikelihoodOptions& o) {
  const Params p(v, likelihood_trace_params(), "trace");
  o.trace = trace_method_from_string(p.string("method"));
  o.distribution = probe_distribution_from_string(p.string("distribution"));
  o.jvp = jvp_method_from_string(p.string("jvp"));
  if (o.trace == TraceMethod::exact)
    for (const char* name : {"probes", "distribution"})
      if (p.given(name)) p.fail(name, "only the hutchinson method uses it (method is \"exact\")");
  if (o.jvp != JvpMethod::finite_difference && p.given("fd_step"))
    p.fail("fd_step", "only jvp \"finite_difference\" uses it");
  const long probes = p.integer("probes");
  if (probes < 2 || probes > 100000)
    p.fail("probes", "must be between 2 and 100000 (a standard error needs two probes), got " +
                         std::to_string(probes));
  o.probes = static_cast<int>(probes);
  o.fd_step = p.number("fd_step");
  if (!(o.fd_step > 0) || o.fd_step > 0.1)
    p.fail("fd_step", "must be in (0, 0.1], got " + format_double(o.fd_step));
}

void parse_vlb(const json& v, VlbOptions& o) {
  const Params p(v, likelihood_vlb_params(), "vlb");
  if (p.has("steps")) {
    const long steps = p.integer("steps");
    if (steps < 1 || steps > 1000000)
      p.fail("steps", "must be between 1 and 1000000, got " + std::to_string(steps));
    o.steps = steps;
  }
  o.variance = vlb_variance_from_string(p.string("variance"));
  const long draws = p.integer("draws");
  if (draws < 2 || draws > 100000)
    p.fail("draws", "must be between 2 and 100000 (a standard error needs two draws), got " +
                        std::to_string(draws));
  o.draws = static_cast<int>(draws);
  const long batch = p.integer("batch");
  if (batch < 1 || batch > (1L << 31)) p.fail("batch", "must be between 1 and 2^31");
  o.batch = batch;
  o.per_term = p.boolean("per_term");
}

}  // namespace

std::string to_string(LikelihoodMethod method) {
  return method == LikelihoodMethod::pf_ode ? "pf_ode" : "vlb";
}

const std::vector<ParamSpec>& likelihood_solver_params() {
  static const std::vector<ParamSpec> specs = {
      {"stepper", ParamType::string, "dopri5",
       "odeint stepper, as for pf_ode: fixed (euler, rk4, adams_bashforth_moulton) or adaptive "
       "(cash_karp54, dopri5, fehlberg78, bulirsch_stoer)",
       stepper_names()},
      {"rtol", ParamType::number, 1e-6, "relative tolerance (adaptive steppers)"},
      {"atol", ParamType::number, 1e-6, "absolute tolerance (adaptive steppers)"},
      {"h_init", ParamType::number, 0.01, "first trial dt (adaptive steppers)"},
      {"steps", ParamType::integer, 100, "uniform steps in t from t_min to t_max (fixed steppers)"},
  };
  return specs;
}

const std::vector<ParamSpec>& likelihood_trace_params() {
  static const std::vector<ParamSpec> specs = {
      {"method",
       ParamType::string,
       "exact",
       "exact: d Jacobian-vector products with the unit vectors; hutchinson: K random probes "
       "with a standard error",
       {"exact", "hutchinson"}},
      {"probes", ParamType::integer, 8, "hutchinson: K >= 2 probes per sample"},
      {"distribution",
       ParamType::string,
       "rademacher",
       "hutchinson: the probes' distribution",
       {"rademacher", "gaussian"}},
      {"jvp",
       ParamType::string,
       "model",
       "model: the model's exact eps_jvp; finite_difference: central differences of eps "
       "(approximate; for models without eps_jvp)",
       {"model", "finite_difference"}},
      {"fd_step", ParamType::number, 1e-5,
       "finite_difference: step h = fd_step (1 + |x|_inf) along the unit direction"},
  };
  return specs;
}

const std::vector<ParamSpec>& likelihood_vlb_params() {
  static const std::vector<ParamSpec> specs = {
      {"steps", ParamType::integer, nullptr,
       "N steps of the discrete chain; default (and the schedule's own betas) for vp_discrete: its "
       "num_steps; otherwise required: the schedule at t = n t_max / N"},
      {"variance",
       ParamType::string,
       "beta",
       "sigma_n^2 of the reverse step: beta, or beta_tilde (the posterior variance)",
       {"beta", "beta_tilde"}},
      {"draws", ParamType::integer, 4, "Monte Carlo draws of x_n per term and sample (>= 2)"},
      {"batch", ParamType::integer, 4096, "rows (samples x draws) per model call"},
      {"per_term", ParamType::boolean, false, "write every term of every sample to the output"},
  };
  return specs;
}

LikelihoodConfig parse_likelihood_config(const json& config, const std::string& base_dir) {
  if (!config.is_object()) throw ConfigError("", "the configuration must be a JSON object");
  check_keys(config, kKeys, "");
  LikelihoodConfig out;
  out.base_dir = base_dir;
  for (const char* key : {"uncond", "guidance", "thresholding"})
    if (config.contains(key))
      throw ConfigError(key, "is a sampling layer; the likelihood is the model's own density (of each row given its "
                             "\"cond\" inputs)");
  ProblemRules rules;
  rules.keys = {"seed", "cond"};
  const ProblemSpec problem = parse_problem(config, "", rules, base_dir);
  out.cond = problem.cond;
  out.schedule = problem.schedule;
  out.model = problem.model;
  out.seed = problem.seed;
  if (config.contains("method")) {
    const json& v = config.at("method");
    if (!v.is_string() || (v.get<std::string>() != "pf_ode" && v.get<std::string>() != "vlb"))
      throw ConfigError("method", "expected \"pf_ode\" or \"vlb\"");
    out.method =
        v.get<std::string>() == "pf_ode" ? LikelihoodMethod::pf_ode : LikelihoodMethod::vlb;
  }
  const auto& others = out.method == LikelihoodMethod::pf_ode ? kVlbKeys : kPfOdeKeys;
  for (const auto& key : others)
    if (config.contains(key))
      throw ConfigError(key,
                        "only used when method is \"" +
                            std::string(out.method == LikelihoodMethod::pf_ode ? "vlb" : "pf_ode") +
                            "\" (method is \"" + to_string(out.method) + "\")");
  if (config.contains("data_kind")) {
    const json& v = config.at("data_kind");
    if (!v.is_string() ||
        (v.get<std::string>() != "continuous" && v.get<std::string>() != "image8"))
      throw ConfigError("data_kind", "expected \"continuous\" or \"image8\"");
    out.data = data_kind_from_string(v.get<std::string>());
  }
  if (config.contains("threads")) {
    const auto threads = non_negative_integer(config.at("threads"), "threads");
    if (threads < 1 || threads > 256) throw ConfigError("threads", "must be between 1 and 256");
    out.threads = static_cast<int>(threads);
  }

  LikelihoodOptions& o = out.pf_ode;
  parse_solver(config.contains("solver") ? config.at("solver") : json::object(), o);
  parse_trace(config.contains("trace") ? config.at("trace") : json::object(), o);
  if (config.contains("t_min")) {
    o.t_min = finite_number(config.at("t_min"), "t_min");
    if (!(o.t_min > 0))
      throw ConfigError("t_min", "must be > 0 (the ODE divides by sigma(t), 0 at t = 0)");
  }
  if (config.contains("t_max")) {
    o.t_max = finite_number(config.at("t_max"), "t_max");
    if (!(o.t_max > o.t_min))
      throw ConfigError("t_max", "must be > t_min = " + format_double(o.t_min));
  }
  o.data = out.data;
  o.seed = out.seed;
  o.threads = out.threads;
  parse_vlb(config.contains("vlb") ? config.at("vlb") : json::object(), out.vlb);
  out.vlb.data = out.data;
  out.vlb.seed = out.seed;
  return out;
}

void bind_likelihood_data(LikelihoodJob& job, long rows, std::uint64_t first) {
  ProblemSpec spec;
  spec.cond = job.config.cond;
  spec.batch = rows;
  spec.first_sample = first;
  spec.base_dir = job.config.base_dir;
  Problem problem;
  problem.schedule = job.schedule;
  problem.base_model = job.model;
  problem.model = job.model;
  condition_problem(spec, problem);
  job.cond = problem.cond;
}

LikelihoodJob build_likelihood_job(const LikelihoodConfig& config) {
  LikelihoodJob job;
  job.config = config;
  ProblemSpec spec;
  spec.schedule = config.schedule;
  spec.model = config.model;
  spec.seed = config.seed;
  spec.base_dir = config.base_dir;
  const Problem problem = build_problem(spec);
  job.schedule = problem.schedule;
  job.model = problem.base_model;  // the conditioning is bound to the data rows later
  if (config.method == LikelihoodMethod::pf_ode) {
    const LikelihoodOptions& o = config.pf_ode;
    if (o.t_max > job.schedule->t_max())
      throw ConfigError(
          "t_max", "must be <= the schedule's t_max = " + format_double(job.schedule->t_max()));
    const double t_max = o.t_max > 0 ? o.t_max : job.schedule->t_max();
    if (!(o.t_min < t_max)) throw ConfigError("t_min", "must be < t_max = " + format_double(t_max));
    // The ODE's f = d log alpha/dt diverges where alpha = 0 (flow at t = 1).
    if (!(job.schedule->at(t_max).alpha > 0))
      throw ConfigError("t_max", std::string(config.pf_ode.t_max > 0 ? "is " : "defaults to the schedule's t_max, ") +
                                     format_double(t_max) + ", where " + job.schedule->name() +
                                     " has alpha = 0 and the probability-flow ODE's drift diverges; end "
                                     "below it (e.g. \"t_max\": 0.999)");
    if (o.jvp == JvpMethod::model && !job.model->has_jvp())
      throw ConfigError("trace.jvp",
                        "model '" + job.model->name() +
                            "' has no Jacobian-vector product (eps_jvp); \"jvp\": "
                            "\"finite_difference\" uses central differences instead (approximate)");
  } else {
    if (!job.schedule->variance_preserving())
      throw ConfigError("schedule", "method \"vlb\" (the DDPM bound) needs a variance-preserving schedule "
                                    "(vp_linear, vp_cosine, vp_discrete); " + job.schedule->name() +
                                    " is not one (method \"pf_ode\" runs on every schedule)");
    const bool discrete = dynamic_cast<const VpDiscreteSchedule*>(job.schedule.get()) != nullptr;
    if (config.vlb.steps == 0 && !discrete)
      throw ConfigError("vlb.steps", "is required unless the schedule is vp_discrete (schedule '" +
                                         job.schedule->name() + "')");
    try {
      vlb_chain(*job.schedule, config.vlb.steps, config.vlb.variance);
    } catch (const ConfigError&) {
      throw;
    } catch (const Error& e) {
      throw ConfigError("vlb.steps", e.what());
    }
  }
  return job;
}

}  // namespace diffsde
