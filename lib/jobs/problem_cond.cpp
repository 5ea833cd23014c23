// "cond", "uncond", "guidance" and "thresholding" of a problem section: their form, the
// inputs they give (from the JSON or .npy files) and the model layers they make.
#include "problem_cond.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "diffsde/error.hpp"
#include "diffsde/io.hpp"
#include "diffsde/npy.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/scores/guidance.hpp"

namespace diffsde {

using nlohmann::json;

namespace {

std::string shape_text(const std::vector<long>& shape) {
  std::string s = "(";
  for (std::size_t k = 0; k < shape.size(); ++k)
    s += (k ? ", " : "") + (shape[k] < 0 ? std::string("any") : std::to_string(shape[k]));
  return s + (shape.size() == 1 ? ",)" : ")");
}

// The shape of a nested list of numbers (rectangular), or a message saying what is wrong.
bool nested_shape(const json& v, std::vector<long>& shape, std::string& why) {
  if (v.is_number()) return true;
  if (!v.is_array()) {
    why = "expected numbers, found " + json_type_name(v);
    return false;
  }
  if (v.empty()) {
    why = "a list is empty";
    return false;
  }
  std::vector<long> first;
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::vector<long> sub;
    if (!nested_shape(v[i], sub, why)) return false;
    if (i == 0) {
      first = sub;
    } else if (sub != first) {
      why = "the lists are not all of one length (not rectangular)";
      return false;
    }
  }
  shape.push_back(static_cast<long>(v.size()));
  shape.insert(shape.end(), first.begin(), first.end());
  return true;
}

void flatten(const json& v, std::vector<const json*>& out) {
  if (v.is_array()) {
    for (const auto& e : v) flatten(e, out);
  } else {
    out.push_back(&v);
  }
}

// "cond" / "uncond": {NAME: number | list | "file.npy"}.
void check_inputs_form(const json& v, const std::string& path) {
  if (!v.is_object())
    throw ConfigError(path, "expected an object {NAME: VALUE, ...}, one entry per model input, got " + json_type_name(v));
  if (v.empty()) throw ConfigError(path, "has no entries (give each model input as NAME: VALUE)");
  for (const auto& [name, value] : v.items()) {
    const std::string p = join_path(path, name);
    if (value.is_string()) continue;
    std::vector<long> shape;
    std::string why;
    if ((!value.is_number() && !value.is_array()) || !nested_shape(value, shape, why))
      throw ConfigError(p, "expected a number, a list of numbers or the path of a .npy file" +
                               (why.empty() ? ", got " + json_type_name(value) : ": " + why));
  }
}

std::vector<double> number_pair(const json& v, const std::string& path) {
  if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number())
    throw ConfigError(path, "expected [lo, hi], two numbers");
  return {v[0].get<double>(), v[1].get<double>()};
}

GuidanceOptions guidance_options(const json& g, const std::string& path) {
  if (!g.is_object()) throw ConfigError(path, "expected an object {\"scale\": s, ...}, got " + json_type_name(g));
  check_keys(g, {"scale", "interval", "interval_sigma", "rescale", "batched", "space"}, path);
  GuidanceOptions o;
  if (!g.contains("scale")) throw ConfigError(join_path(path, "scale"), "is required (the guidance scale s; 1: no guidance)");
  if (!g.at("scale").is_number()) throw ConfigError(join_path(path, "scale"), "expected a number");
  o.scale = g.at("scale").get<double>();
  if (g.contains("interval") && g.contains("interval_sigma"))
    throw ConfigError(join_path(path, "interval_sigma"), "give the interval in t (\"interval\") or in sigma, not both");
  if (g.contains("interval")) {
    const auto iv = number_pair(g.at("interval"), join_path(path, "interval"));
    o.t_lo = iv[0];
    o.t_hi = iv[1];
  }
  if (g.contains("interval_sigma")) {
    const auto iv = number_pair(g.at("interval_sigma"), join_path(path, "interval_sigma"));
    if (!(iv[0] >= 0 && iv[0] <= iv[1]))
      throw ConfigError(join_path(path, "interval_sigma"), "must be [sigma_lo, sigma_hi] with 0 <= sigma_lo <= sigma_hi");
  }
  if (g.contains("rescale")) {
    if (!g.at("rescale").is_number()) throw ConfigError(join_path(path, "rescale"), "expected a number in [0, 1]");
    o.rescale = g.at("rescale").get<double>();
  }
  if (g.contains("batched")) {
    if (!g.at("batched").is_boolean()) throw ConfigError(join_path(path, "batched"), "expected true or false");
    o.batched = g.at("batched").get<bool>();
  }
  if (g.contains("space")) {
    const json& s = g.at("space");
    const std::vector<std::string> known = {"eps", "x0", "v", "velocity"};
    if (!s.is_string() || std::find(known.begin(), known.end(), s.get<std::string>()) == known.end())
      throw ConfigError(join_path(path, "space"), "expected one of eps, x0, v, velocity" +
                                                      (s.is_string() ? did_you_mean(s.get<std::string>(), known) : ""));
    o.space = prediction_from_string(s.get<std::string>());
  }
  std::string error, option;
  if (!o.is_valid(&error, &option)) throw ConfigError(join_path(path, option), error);
  return o;
}

ThresholdOptions threshold_options(const json& v, const std::string& path) {
  if (!v.is_object())
    throw ConfigError(path, "expected {\"ratio\": r, \"max\": m} (dynamic) or {\"clip\": [lo, hi]}, got " + json_type_name(v));
  check_keys(v, {"ratio", "max", "clip"}, path);
  ThresholdOptions o;
  if (v.contains("clip")) {
    if (v.contains("ratio") || v.contains("max"))
      throw ConfigError(join_path(path, "clip"), "static clipping takes no ratio or max (those are dynamic thresholding's)");
    o.kind = ThresholdOptions::Kind::clip;
    const auto c = number_pair(v.at("clip"), join_path(path, "clip"));
    o.lo = c[0];
    o.hi = c[1];
  }
  for (const char* key : {"ratio", "max"})
    if (v.contains(key) && !v.at(key).is_number()) throw ConfigError(join_path(path, key), "expected a number");
  if (v.contains("ratio")) o.ratio = v.at("ratio").get<double>();
  if (v.contains("max")) o.max = v.at("max").get<double>();
  std::string error, option;
  if (!o.is_valid(&error, &option)) throw ConfigError(join_path(path, option), error);
  return o;
}

// Where each input came from: its JSON path, and its file when read from one.
struct Source {
  std::string path, file;
};

[[noreturn]] void fail(const Source& source, const std::string& message) {
  if (!source.file.empty()) throw IoError(source.file, message + " (" + source.path + ")");
  throw ConfigError(source.path, message);
}

// The inputs of one "cond" / "uncond" object, typed by the model's specs.
Conditioning read_inputs(const json& object, const std::string& path, const std::vector<InputSpec>& specs,
                         const ProblemSpec& spec, const std::string& model_name, std::map<std::string, Source>& sources) {
  Conditioning cond;
  std::vector<std::string> names;
  for (const auto& s : specs) names.push_back(s.name);
  for (const auto& [name, value] : object.items()) {
    Source source{join_path(path, name), ""};
    const auto it = std::find_if(specs.begin(), specs.end(), [&](const InputSpec& s) { return s.name == name; });
    if (it == specs.end()) {
      if (specs.empty())
        throw ConfigError(source.path, "model '" + model_name + "' takes no conditioning (it is unconditional)");
      throw ConfigError(source.path, "model '" + model_name + "' has no input '" + name + "'; its inputs: " + joined(names) +
                                         did_you_mean(name, names));
    }
    const InputSpec& in = *it;
    const bool ints = in.type == InputType::int64;
    std::vector<long> shape;  // per sample
    std::vector<std::int64_t> iv;
    std::vector<double> fv;
    if (value.is_string()) {
      source.file = resolve_path(spec.base_dir, value.get<std::string>());
      const NpyArray a = read_npy(source.file);
      const bool file_ints = a.dtype == NpyDtype::int64 || a.dtype == NpyDtype::int32;
      if (ints && !file_ints)
        throw IoError(source.file, "holds floating-point values; input '" + name +
                                       "' takes integer class labels (int64 or int32) (" + source.path + ")");
      if (!ints && file_ints)
        throw IoError(source.file, "holds integers; input '" + name + "' takes float values (float32 or float64) (" +
                                       source.path + ")");
      std::vector<long> file_shape(a.shape.begin(), a.shape.end());
      long rows = 1;
      if (file_shape.size() == in.shape.size() + 1) {
        rows = file_shape.front();
        shape.assign(file_shape.begin() + 1, file_shape.end());
      } else if (file_shape.size() == in.shape.size()) {
        shape = file_shape;  // one row, shared by every sample
      } else {
        throw IoError(source.file, "has shape " + shape_text(file_shape) + "; input '" + name + "' takes per-sample shape " +
                                       shape_text(in.shape) + ", so expected (rows, ...) with one row per sample (" +
                                       source.path + ")");
      }
      long size = 1;
      for (long d : shape) size *= d;
      long first = 0;
      const auto batch = spec.batch;
      const auto offset = static_cast<long>(spec.first_sample);
      if (rows != 1 && rows != batch) {
        if (rows >= offset + batch) {
          first = offset;  // one row per global sample index: this run's rows
        } else {
          throw IoError(source.file, "has " + std::to_string(rows) + " rows; expected " + std::to_string(batch) +
                                         " (one per sample of the batch), 1 (shared by every sample) or at least " +
                                         std::to_string(offset + batch) +
                                         " (one per global sample index, the run's from " + std::to_string(offset) +
                                         " on) (" + source.path + ")");
        }
        rows = batch;
      }
      const auto begin = static_cast<std::size_t>(first * size), end = static_cast<std::size_t>((first + rows) * size);
      if (ints)
        iv.assign(a.ints.begin() + static_cast<std::ptrdiff_t>(begin), a.ints.begin() + static_cast<std::ptrdiff_t>(end));
      else
        fv.assign(a.data.begin() + static_cast<std::ptrdiff_t>(begin), a.data.begin() + static_cast<std::ptrdiff_t>(end));
      if (!ints)
        for (std::size_t i = 0; i < fv.size(); ++i)
          if (!std::isfinite(fv[i]))
            throw IoError(source.file, "value " + std::to_string(i) + " is not finite (" + source.path + ")");
    } else {
      std::vector<long> given;
      std::string why;
      nested_shape(value, given, why);  // checked by parse_conditioning
      if (in.shape.empty() && given.size() == 1) {
        // A scalar input given a list: one value per sample.
        if (given[0] != spec.batch && given[0] != 1)
          throw ConfigError(source.path, "has " + std::to_string(given[0]) + " values; input '" + name +
                                             "' is one value per sample, so expected " + std::to_string(spec.batch) +
                                             " (one per sample) or a single number (shared)");
      } else {
        shape = given;  // one per-sample value, shared by every sample
      }
      std::vector<const json*> leaves;
      flatten(value, leaves);
      for (std::size_t i = 0; i < leaves.size(); ++i) {
        const json& e = *leaves[i];
        if (ints) {
          const double d = e.get<double>();
          if (!e.is_number_integer() && !(std::isfinite(d) && d == std::floor(d)))
            throw ConfigError(source.path, "input '" + name + "' takes integer class labels; entry " + std::to_string(i) +
                                               " is " + e.dump());
          iv.push_back(e.is_number_integer() ? e.get<std::int64_t>() : static_cast<std::int64_t>(d));
        } else {
          fv.push_back(e.get<double>());
        }
      }
    }
    try {
      cond.add(ints ? ModelInput::ints(name, shape, std::move(iv)) : ModelInput::floats(name, shape, std::move(fv)));
    } catch (const Error& e) {
      fail(source, e.what());
    }
    sources[name] = source;
  }
  return cond;
}

// check_conditioning's verdict as an error at the input's place.
void check_inputs(const std::vector<InputSpec>& specs, const Conditioning& cond, long batch, const std::string& path,
                  const std::map<std::string, Source>& sources) {
  std::string input;
  const std::string message = check_conditioning(specs, cond, batch, &input);
  if (message.empty()) return;
  const auto it = sources.find(input);
  if (it != sources.end()) fail(it->second, message);
  throw ConfigError(join_path(path, input), message);
}

}  // namespace

void parse_conditioning(const json& section, const std::string& path, const ProblemRules& rules, ProblemSpec& out) {
  for (const char* key : {"cond", "uncond"})
    if (takes(rules, key) && section.contains(key)) {
      check_inputs_form(section.at(key), join_path(path, key));
      (std::string(key) == "cond" ? out.cond : out.uncond) = section.at(key);
    }
  if (takes(rules, "guidance") && section.contains("guidance")) {
    guidance_options(section.at("guidance"), join_path(path, "guidance"));
    out.guidance = section.at("guidance");
  }
  if (takes(rules, "thresholding") && section.contains("thresholding")) {
    threshold_options(section.at("thresholding"), join_path(path, "thresholding"));
    out.thresholding = section.at("thresholding");
  }
  if (!out.uncond.is_null() && out.guidance.is_null())
    throw ConfigError(join_path(path, "uncond"),
                      "is used only with \"guidance\" (it gives the unconditional inputs of classifier-free guidance)");
}

void condition_problem(const ProblemSpec& spec, Problem& problem) {
  const Model& base = *problem.base_model;
  // The layers wrap problem.model as it comes (the registry's model, or that model
  // evaluated at a grid's network times: retime_problem).
  const std::shared_ptr<const Model> inner = problem.model;
  const std::vector<InputSpec> specs = base.inputs();
  const std::string cond_path = join_path(spec.path, "cond");
  std::map<std::string, Source> sources;
  Conditioning cond;
  if (!spec.cond.is_null()) cond = read_inputs(spec.cond, cond_path, specs, spec, base.name(), sources);
  if (!specs.empty() || !cond.empty()) check_inputs(specs, cond, spec.batch, cond_path, sources);
  problem.cond = std::make_shared<const Conditioning>(std::move(cond));

  if (!spec.guidance.is_null()) {
    const std::string path = join_path(spec.path, "guidance");
    GuidanceOptions o = guidance_options(spec.guidance, path);
    if (specs.empty())
      throw ConfigError(path, "model '" + base.name() +
                                  "' takes no conditioning, so there is nothing to guide (guidance needs a conditional "
                                  "model: gmm with \"classes\", or a network with inputs)");
    if (problem.cond->empty())
      throw ConfigError(cond_path, "guidance needs the conditional inputs: give them in \"cond\"");
    if (spec.guidance.contains("interval_sigma")) {
      // sigma here is the noise level of the variance-exploding form, sigma / alpha =
      // exp(-lambda), as EDM and k-diffusion count it.
      const auto iv = number_pair(spec.guidance.at("interval_sigma"), join_path(path, "interval_sigma"));
      const auto t_of = [&](double s, double none) {
        if (s <= 0) return none;
        if (std::isinf(s)) return std::numeric_limits<double>::infinity();
        return problem.schedule->t_of_lambda(-std::log(s));
      };
      o.t_lo = t_of(iv[0], -std::numeric_limits<double>::infinity());
      o.t_hi = t_of(iv[1], -std::numeric_limits<double>::infinity());
    }
    const std::string uncond_path = join_path(spec.path, "uncond");
    Conditioning uncond;
    if (!spec.uncond.is_null()) {
      std::map<std::string, Source> usources;
      uncond = read_inputs(spec.uncond, uncond_path, specs, spec, base.name(), usources);
      for (const auto& in : problem.cond->inputs())
        if (uncond.find(in.name()) == nullptr)
          throw ConfigError(join_path(uncond_path, in.name()),
                            "is missing: \"uncond\" gives the unconditional counterpart of every \"cond\" input (" +
                                joined(problem.cond->names()) + ")");
      for (const auto& in : uncond.inputs())
        if (problem.cond->find(in.name()) == nullptr)
          throw ConfigError(join_path(uncond_path, in.name()), "has no counterpart in \"cond\" (" +
                                                                   joined(problem.cond->names()) + ")");
      check_inputs(specs, uncond, spec.batch, uncond_path, usources);
    } else {
      try {
        uncond = null_conditioning(specs, *problem.cond);
      } catch (const Error& e) {
        throw ConfigError(uncond_path, e.what());
      }
    }
    try {
      problem.model = std::make_shared<GuidedModel>(inner, problem.schedule, problem.cond,
                                                    std::make_shared<const Conditioning>(std::move(uncond)), o,
                                                    spec.batch, spec.first_sample);
    } catch (const ConfigError&) {
      throw;
    } catch (const Error& e) {
      throw ConfigError(path, e.what());
    }
  } else if (!specs.empty()) {
    problem.model = std::make_shared<ConditionedModel>(inner, problem.cond, spec.batch, spec.first_sample);
  }
  if (!spec.thresholding.is_null()) {
    const ThresholdOptions o = threshold_options(spec.thresholding, join_path(spec.path, "thresholding"));
    problem.model = std::make_shared<ThresholdedModel>(problem.model, problem.schedule, o);
  }
}

void retime_problem(const ProblemSpec& spec, Problem& problem, const std::vector<double>& times,
                    const std::vector<double>& model_times) {
  if (model_times.empty()) return;
  problem.model = std::make_shared<RetimedModel>(problem.base_model, problem.schedule, times, model_times);
  condition_problem(spec, problem);
}

}  // namespace diffsde
