// Native networks written as TorchScript source with parameters registered from C++.
#include "diffsde/scores/networks.hpp"

#include <cmath>
#include <iomanip>
#include <map>
#include <numeric>
#include <sstream>

#include "diffsde/error.hpp"

namespace diffsde {

namespace {

using nlohmann::json;

// Writes TorchScript methods and registers the parameters they use.
class Builder {
 public:
  explicit Builder(torch::jit::Module& module) : m_(module) {}

  // A parameter initialised uniformly in [-bound, bound] (bound 0: zeros).
  std::string param(const std::string& name, std::vector<int64_t> sizes, double bound) {
    torch::Tensor value = torch::empty(sizes, torch::kFloat32);
    if (bound > 0)
      value.uniform_(-bound, bound);
    else
      value.zero_();
    m_.register_parameter(name, value.requires_grad_(true), false);
    return "self." + name;
  }
  // A parameter of independent N(0, std^2) entries.
  std::string normal(const std::string& name, std::vector<int64_t> sizes, double std) {
    m_.register_parameter(name, (torch::randn(sizes, torch::kFloat32) * std).requires_grad_(true), false);
    return "self." + name;
  }
  std::string ones(const std::string& name, int64_t n) {
    m_.register_parameter(name, torch::ones({n}).requires_grad_(true), false);
    return "self." + name;
  }

  // y = x W^T + b for x (B, in).
  std::string linear(const std::string& name, const std::string& x, int64_t in, int64_t out,
                     bool zero = false) {
    const double bound = zero ? 0.0 : 1.0 / std::sqrt(static_cast<double>(in));
    const std::string w = param(name + "_w", {out, in}, bound);
    const std::string b = param(name + "_b", {out}, bound);
    return "torch.addmm(" + b + ", " + x + ", " + w + ".t())";
  }
  std::string conv(const std::string& name, const std::string& x, int64_t in, int64_t out,
                   int64_t k, int64_t stride = 1, bool zero = false) {
    const double bound = zero ? 0.0 : 1.0 / std::sqrt(static_cast<double>(in * k * k));
    const std::string w = param(name + "_w", {out, in, k, k}, bound);
    const std::string b = param(name + "_b", {out}, bound);
    return "torch.conv2d(" + x + ", " + w + ", " + b + ", " + std::to_string(stride) + ", " +
           std::to_string(k / 2) + ")";
  }
  std::string group_norm(const std::string& name, const std::string& x, int64_t c) {
    const int64_t groups = std::gcd<int64_t>(c, 8);
    const std::string w = ones(name + "_w", c);
    const std::string b = param(name + "_b", {c}, 0.0);
    return "torch.group_norm(" + x + ", " + std::to_string(groups) + ", " + w + ", " + b + ", 1e-05)";
  }

  std::string source;

 private:
  torch::jit::Module& m_;
};

std::string literal(double v) {
  std::ostringstream os;
  os << std::setprecision(17) << v;
  std::string s = os.str();
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

// The sinusoidal embedding of time_scale * t (width `width`) through a two-layer MLP
// to `out` features: method embed(t) -> (B, out).
void add_time_embedding(Builder& b, torch::jit::Module& m, int64_t width, int64_t out, double time_scale) {
  const int64_t half = width / 2;
  torch::Tensor freqs = torch::exp(-std::log(10000.0) * torch::arange(half, torch::kFloat64) /
                                   static_cast<double>(half))
                            .to(torch::kFloat32);
  m.register_buffer("freqs", freqs);
  std::ostringstream s;
  s << "def embed(self, t):\n"
    << "    a = (t * " << literal(time_scale) << ").unsqueeze(1) * self.freqs.unsqueeze(0)\n"
    << "    e = torch.cat([torch.sin(a), torch.cos(a)], 1)\n"
    << "    e = torch.silu(" << b.linear("temb1", "e", 2 * half, out) << ")\n"
    << "    return " << b.linear("temb2", "e", out, out) << "\n";
  b.source += s.str();
}

long positive(const Params& p, const std::string& name) {
  const long v = p.integer(name);
  if (v < 1) p.fail(name, "must be >= 1");
  return v;
}

long classes_of(const Params& p) {
  const long v = p.integer("classes");
  if (v < 0) p.fail("classes", "must be >= 0 (0: an unconditional network)");
  return v;
}

// The head of forward: its signature, and `e`, the time embedding (plus, with classes > 0,
// the label's row of a learned table of classes + 1 rows, the last one the null label, as
// in class-conditional U-Nets: the label shifts the embedding every block sees).
std::string forward_head(Builder& b, int64_t classes, int64_t emb) {
  if (classes == 0)
    return "def forward(self, x, t):\n"
           "    e = torch.silu(self.embed(t))\n";
  return "def forward(self, x, t, y):\n"
         "    e = torch.silu(self.embed(t) + torch.embedding(" +
         b.normal("label_embedding", {classes + 1, emb}, 1.0) + ", y))\n";
}

torch::jit::Module make_mlp(const Params& p, const std::vector<int>& shape, double time_scale) {
  int64_t d = 1;
  for (int s : shape) d *= s;
  const int64_t hidden = positive(p, "hidden"), layers = p.integer("layers"),
                emb = positive(p, "embedding");
  if (layers < 0) p.fail("layers", "must be >= 0");
  if (emb % 2) p.fail("embedding", "must be even");
  const int64_t classes = classes_of(p);
  torch::jit::Module m("DiffsdeMLP");
  Builder b(m);
  add_time_embedding(b, m, emb, emb, time_scale);
  std::ostringstream s;
  s << forward_head(b, classes, emb) << "    h = " << b.linear("inp", "x.reshape(x.shape[0], -1)", d, hidden) << "\n";
  for (int64_t l = 0; l < layers; ++l) {
    const std::string k = std::to_string(l);
    s << "    u = " << b.linear("blk" + k + "a", "torch.silu(h)", hidden, hidden) << " + "
      << b.linear("blk" + k + "t", "e", emb, hidden) << "\n"
      << "    h = h + " << b.linear("blk" + k + "b", "torch.silu(u)", hidden, hidden) << "\n";
  }
  s << "    return " << b.linear("out", "torch.silu(h)", hidden, d, true) << ".reshape(x.shape)\n";
  b.source += s.str();
  m.define(b.source);
  return m;
}

// U-Net pieces: each residual block and attention block is its own method.
struct UNetWriter {
  Builder& b;
  int64_t emb;
  int blocks = 0, attns = 0;

  // Method name of a new residual block in -> out channels.
  std::string res(int64_t in, int64_t out) {
    const std::string n = "rb" + std::to_string(blocks++);
    std::ostringstream s;
    s << "def " << n << "(self, x, e):\n"
      << "    h = " << b.conv(n + "c1", "torch.silu(" + b.group_norm(n + "n1", "x", in) + ")", in, out, 3) << "\n"
      << "    h = h + " << b.linear(n + "t", "e", emb, out) << ".unsqueeze(2).unsqueeze(3)\n"
      << "    h = " << b.conv(n + "c2", "torch.silu(" + b.group_norm(n + "n2", "h", out) + ")", out, out, 3, 1, true)
      << "\n";
    if (in != out)
      s << "    return " << b.conv(n + "sk", "x", in, out, 1) << " + h\n";
    else
      s << "    return x + h\n";
    b.source += s.str();
    return "self." + n;
  }
  std::string attention(int64_t c) {
    const std::string n = "at" + std::to_string(attns++);
    std::ostringstream s;
    s << "def " << n << "(self, x):\n"
      << "    B, C, H, W = x.shape\n"
      << "    qkv = " << b.conv(n + "qkv", b.group_norm(n + "n", "x", c), c, 3 * c, 1) << "\n"
      << "    q, k, v = qkv.reshape(B, 3, C, H * W).unbind(1)\n"
      << "    w = torch.softmax(torch.bmm(q.transpose(1, 2), k) * " << literal(1.0 / std::sqrt(double(c)))
      << ", -1)\n"
      << "    o = torch.bmm(v, w.transpose(1, 2)).reshape(B, C, H, W)\n"
      << "    return x + " << b.conv(n + "o", "o", c, c, 1, 1, true) << "\n";
    b.source += s.str();
    return "self." + n;
  }
};

torch::jit::Module make_unet(const Params& p, const std::vector<int>& shape, double time_scale) {
  if (shape.size() != 3) p.fail("name", "the unet needs a per-sample shape [C, H, W]");
  const int64_t channels_in = shape[0];
  const int64_t ch = positive(p, "channels"), nblocks = positive(p, "blocks");
  const auto mult = p.numbers("multipliers");
  if (mult.empty()) p.fail("multipliers", "must have at least one entry (one per resolution)");
  const int levels = static_cast<int>(mult.size());
  const int64_t attn_res = p.integer("attention_resolution");
  for (double v : mult)
    if (!(v >= 1) || v != std::floor(v)) p.fail("multipliers", "entries must be integers >= 1");
  if (ch % 8 != 0) p.fail("channels", "must be a multiple of 8 (group norm in groups of 8)");
  const int64_t div = int64_t{1} << (levels - 1);
  if (shape[1] % div || shape[2] % div)
    p.fail("multipliers", "H and W (" + std::to_string(shape[1]) + ", " + std::to_string(shape[2]) +
                              ") must be divisible by 2^(levels - 1) = " + std::to_string(div));
  const int64_t emb = 4 * ch;
  const int64_t classes = classes_of(p);

  torch::jit::Module m("DiffsdeUNet");
  Builder b(m);
  add_time_embedding(b, m, ch, emb, time_scale);
  UNetWriter w{b, emb};
  std::ostringstream f;
  f << forward_head(b, classes, emb) << "    h = " << b.conv("cin", "x", channels_in, ch, 3) << "\n";
  std::vector<std::pair<std::string, int64_t>> skips;  // variable, channels
  int64_t c = ch;
  int64_t res = shape[1];
  for (int l = 0; l < levels; ++l) {
    const int64_t out = ch * static_cast<int64_t>(mult[static_cast<std::size_t>(l)]);
    for (int64_t k = 0; k < nblocks; ++k) {
      f << "    h = " << w.res(c, out) << "(h, e)\n";
      c = out;
      if (res <= attn_res) f << "    h = " << w.attention(c) << "(h)\n";
      const std::string var = "s" + std::to_string(skips.size());
      f << "    " << var << " = h\n";
      skips.emplace_back(var, c);
    }
    if (l + 1 < levels) {
      f << "    h = " << b.conv("down" + std::to_string(l), "h", c, c, 3, 2) << "\n";
      res /= 2;
    }
  }
  f << "    h = " << w.res(c, c) << "(h, e)\n";
  f << "    h = " << w.attention(c) << "(h)\n";
  f << "    h = " << w.res(c, c) << "(h, e)\n";
  for (int l = levels - 1; l >= 0; --l) {
    const int64_t out = ch * static_cast<int64_t>(mult[static_cast<std::size_t>(l)]);
    for (int64_t k = 0; k < nblocks; ++k) {
      const auto skip = skips.back();
      skips.pop_back();
      f << "    h = " << w.res(c + skip.second, out) << "(torch.cat([h, " << skip.first << "], 1), e)\n";
      c = out;
      if (res <= attn_res) f << "    h = " << w.attention(c) << "(h)\n";
    }
    if (l > 0) {
      f << "    h = " << b.conv("up" + std::to_string(l), "h.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)", c, c, 3)
        << "\n";
      res *= 2;
    }
  }
  f << "    h = torch.silu(" << b.group_norm("nout", "h", c) << ")\n"
    << "    return " << b.conv("cout", "h", c, channels_in, 3, 1, true) << "\n";
  b.source += f.str();
  m.define(b.source);
  return m;
}

constexpr const char* kClassesHelp =
    "class labels 0 .. classes - 1 as input y, plus the null label `classes` (0: unconditional)";

const std::map<std::string, std::vector<ParamSpec>>& all_specs() {
  static const std::map<std::string, std::vector<ParamSpec>> specs = {
      {"mlp",
       {{"hidden", ParamType::integer, 256, "width of the hidden layers"},
        {"layers", ParamType::integer, 3, "number of residual blocks"},
        {"embedding", ParamType::integer, 128, "width of the sinusoidal time embedding (even)"},
        {"classes", ParamType::integer, 0, kClassesHelp}}},
      {"unet",
       {{"channels", ParamType::integer, 32, "channels at the first resolution (multiple of 8)"},
        {"multipliers", ParamType::numbers, json::array({1, 2, 2}),
         "channel multiplier per resolution; each further entry halves H and W"},
        {"blocks", ParamType::integer, 1, "residual blocks per resolution"},
        {"attention_resolution", ParamType::integer, 7,
         "self-attention at resolutions (height) up to this"},
        {"classes", ParamType::integer, 0, kClassesHelp}}},
      {"classifier",
       {{"channels", ParamType::integer, 32, "channels of the first convolution (doubled once)"},
        {"features", ParamType::integer, 128, "width of the penultimate layer (the feature space)"}}},
  };
  return specs;
}

Params network_params_of(const json& spec, const std::string& path) {
  if (!spec.is_object() || !spec.contains("name") || !spec["name"].is_string())
    throw ConfigError(path, "must be an object with a \"name\": one of mlp, unet");
  const std::string name = spec["name"].get<std::string>();
  const auto& specs = all_specs();
  const auto it = specs.find(name);
  if (it == specs.end())
    throw ConfigError(join_path(path, "name"), "unknown network '" + name + "'; known: mlp, unet, classifier");
  return Params(spec, it->second, path);
}

torch::jit::Module make_conv_classifier(const Params& p, const std::vector<int>& shape, int classes) {
  if (shape.size() != 3) throw ConfigError(p.path(), "the classifier needs a per-sample shape [C, H, W]");
  const int64_t c = positive(p, "channels"), features = positive(p, "features");
  torch::jit::Module m("DiffsdeClassifier");
  Builder b(m);
  const int64_t h = (shape[1] + 3) / 4, w = (shape[2] + 3) / 4;  // after two stride-2 convolutions
  std::ostringstream s;
  s << "def features(self, x):\n"
    << "    h = torch.relu(" << b.conv("c1", "x", shape[0], c, 3) << ")\n"
    << "    h = torch.relu(" << b.conv("c2", "h", c, 2 * c, 3, 2) << ")\n"
    << "    h = torch.relu(" << b.conv("c3", "h", 2 * c, 2 * c, 3, 2) << ")\n"
    << "    return torch.relu(" << b.linear("f", "h.reshape(h.shape[0], -1)", 2 * c * h * w, features) << ")\n"
    << "def forward(self, x):\n"
    << "    return " << b.linear("out", "self.features(x)", features, classes) << "\n";
  b.source += s.str();
  m.define(b.source);
  return m;
}

}  // namespace

const std::vector<ParamSpec>& network_params(const std::string& kind) {
  const auto& specs = all_specs();
  const auto it = specs.find(kind);
  if (it == specs.end()) throw Error("unknown network kind " + kind);
  return it->second;
}

std::vector<std::string> network_names() { return {"mlp", "unet", "classifier"}; }

torch::jit::Module make_network(const json& spec, const std::string& path, const std::vector<int>& shape,
                                double time_scale, std::uint64_t seed) {
  const Params p = network_params_of(spec, path);
  torch::manual_seed(seed);
  const std::string name = spec["name"].get<std::string>();
  if (name == "mlp") return make_mlp(p, shape, time_scale);
  if (name == "unet") return make_unet(p, shape, time_scale);
  throw ConfigError(join_path(path, "name"), "'" + name + "' is not a noise-prediction network (mlp, unet)");
}

torch::jit::Module make_classifier(const json& spec, const std::string& path, const std::vector<int>& shape,
                                   int classes, std::uint64_t seed) {
  json s = spec.is_null() ? json{{"name", "classifier"}} : spec;
  if (s.is_object() && !s.contains("name")) s["name"] = "classifier";
  const Params p = network_params_of(s, path);
  if (s["name"] != "classifier")
    throw ConfigError(join_path(path, "name"), "must be \"classifier\"");
  torch::manual_seed(seed);
  return make_conv_classifier(p, shape, classes);
}

int network_classes(const json& spec, const std::string& path) {
  const Params p = network_params_of(spec, path);
  if (spec["name"] == "classifier") return 0;
  return static_cast<int>(classes_of(p));
}

std::int64_t parameter_count(const torch::jit::Module& module) {
  std::int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace diffsde
