#!/usr/bin/env bash
# `diffsde encode` and `diffsde decode` as a user meets them: latents that decode back to the
# data with the reconstruction error reported, the exact latents of Gaussian data, and bad
# input that names its place, exits 2 and writes nothing; a run that breaks down exits 1.
source "$(dirname "$0")/cli_common.sh" "$1"

# Gaussian data N(mu, sd^2) per axis on vp_linear (beta0 = 0.1, beta1 = 20).
model='{"name":"gaussian","mean":[0.5,-1.0],"std":[0.6,1.2]}'
grid='{"name":"logSNR","t_start":1,"t_end":0.01,"steps":100}'
config() { printf '{"schedule":{"name":"vp_linear"},"model":%s,"grid":%s,"solver":%s}' "$model" "$grid" "$1"; }
write_npy "$work/x.npy" 4 2  0.1 -0.5  0.9 -2.0  0.4 0.3  -0.2 -1.1

config '{"name":"dpm_solver","order":2,"method":"multistep","algorithm":"dpmsolver++"}' > "$work/enc.json"
"$bin" encode "$work/enc.json" --data "$work/x.npy" --out "$work/z.npy" --summary "$work/s.json" --reconstruct \
  > "$work/enc.out" 2>&1
rc=$?; check "encode run: $(cat "$work/enc.out")" $rc
grep -q "reconstruction (data -> noise -> data" "$work/enc.out"; check "reconstruction error printed" $?
# The latents are the exact PF-ODE flow of the data to t = 1: (x - alpha mu)/sqrt(alpha^2 sd^2 + sigma^2)
# is constant along it; alpha^2 = exp(-(beta0 t + (beta1 - beta0) t^2/2)).
/usr/bin/python3 - "$work/z.npy" "$work/x.npy" "$work/s.json" <<'PY'
import json, math, struct, sys
def read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<H", b[8:10])[0]
    return list(struct.unpack("<%dd" % ((len(b) - 10 - n) // 8), b[10 + n:]))
z, x, s = read(sys.argv[1]), read(sys.argv[2]), json.load(open(sys.argv[3]))
a2 = lambda t: math.exp(-(0.1 * t + 19.9 * t * t / 2))
mu, sd = [0.5, -1.0], [0.6, 1.2]
for i, v in enumerate(x):
    j = i % 2
    std = lambda t: math.sqrt(a2(t) * sd[j] ** 2 + 1 - a2(t))
    exact = math.sqrt(a2(1)) * mu[j] + std(1) / std(0.01) * (v - math.sqrt(a2(0.01)) * mu[j])
    assert abs(z[i] - exact) < 1e-3, (i, z[i], exact)
r = s["reconstruction"]
assert 0 < r["max_abs_error"] < 1e-3 and 0 < r["rms_error"] <= r["max_abs_error"], r
assert s["t_start"] == 0.01 and s["t_end"] == 1 and s["steps"] == 100 and s["batch"] == 4, s
PY
check "latents are the exact flow; summary has the reconstruction error" $?

# decode returns the data from the latents.
"$bin" decode "$work/enc.json" --latents "$work/z.npy" --out "$work/x2.npy" --summary "$work/d.json" > "$work/dec.out" 2>&1
rc=$?; check "decode run: $(cat "$work/dec.out")" $rc
/usr/bin/python3 - "$work/x.npy" "$work/x2.npy" <<'PY'
import struct, sys
def read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<H", b[8:10])[0]
    return list(struct.unpack("<%dd" % ((len(b) - 10 - n) // 8), b[10 + n:]))
a, b = read(sys.argv[1]), read(sys.argv[2])
assert len(a) == len(b) == 8 and max(abs(u - v) for u, v in zip(a, b)) < 1e-3, (a, b)
PY
check "decode(encode(x)) = x" $?

# heun (k-diffusion, s_churn = 0) and pf_ode invert too.
for solver in '"heun"' '{"name":"pf_ode","rtol":1e-8,"atol":1e-8}' '{"name":"unipc","order":3}' '"ddim"'; do
  config "$solver" > "$work/inv.json"
  "$bin" encode "$work/inv.json" --data "$work/x.npy" --out "$work/zi.npy" --reconstruct > "$work/inv.out" 2>&1
  rc=$?; check "encode with $solver: $(cat "$work/inv.out")" $rc
done

# expect_error NAME RC NEEDLE CONFIG [DATA]: exit code, message, and no output written.
expect_error() {
  local name=$1 rc_expected=$2 needle=$3 config=$4 data=${5:-$work/x.npy}
  printf '%s' "$config" > "$work/$name.json"
  "$bin" encode "$work/$name.json" --data "$data" --out "$work/$name.npy" --summary "$work/$name.s.json" \
    > "$work/$name.out" 2> "$work/$name.err"
  local rc=$?
  [ "$rc" -eq "$rc_expected" ]; check "$name: exit code $rc, expected $rc_expected" $?
  grep -qF -- "$needle" "$work/$name.err"; rc=$?; check "$name: stderr lacks '$needle': $(cat "$work/$name.err")" $rc
  [ ! -e "$work/$name.npy" ] && [ ! -e "$work/$name.s.json" ]; check "$name: an output file was written" $?
}

expect_error stochastic 2 "solver: euler_maruyama is stochastic" "$(config '"euler_maruyama"')"
expect_error ddim_eta 2 "solver: ddim is stochastic" "$(config '{"name":"ddim","eta":1}')"
expect_error churn 2 "is stochastic" "$(config '{"name":"heun","s_churn":2}')"
expect_error unknown_solver 2 "solver" "$(config '"nope"')"
expect_error missing_data 2 "no_such.npy" "$(config '"ddim"')" "$work/no_such.npy"
write_npy "$work/x3.npy" 2 3  0 0 0  1 1 1
expect_error wrong_dim 2 "x3.npy: has 3 values per row, the model's dim is 2" "$(config '"ddim"')" "$work/x3.npy"
write_npy "$work/nan.npy" 3 2  0 0  1 1  2 nan
expect_error not_finite 2 "nan.npy: row 2, column 1 is not finite" "$(config '"ddim"')" "$work/nan.npy"
grid='{"name":"time_uniform","t_start":1,"t_end":0,"steps":10}'
expect_error t_end_zero 2 "grid: encoding runs the grid from t_end up to t_start" "$(config '"ddim"')"
grid='{"name":"logSNR","t_start":1,"t_end":0.01,"steps":100}'
expect_error bad_json 2 "line 1, column" '{"schedule": {"name": "vp_linear",}}'

# A run that breaks down (the state overflows) exits 1 and writes nothing.
write_npy "$work/huge.npy" 1 2  1.7e308 1.7e308
model='{"name":"gaussian","mean":[0,0],"std":[0.001,0.001]}'
expect_error overflow 1 "run failed at" "$(config '"ddim"')" "$work/huge.npy"
model='{"name":"gaussian","mean":[0.5,-1.0],"std":[0.6,1.2]}'

# Outputs that cannot be written are refused before the run.
config '"ddim"' > "$work/ok.json"
"$bin" encode "$work/ok.json" --data "$work/x.npy" --out "$work/no_such_folder/z.npy" > "$work/outs.out" 2>&1
rc=$?; [ $rc -eq 2 ]; check "--out in a missing folder exits 2 (got $rc)" $?
grep -q "no_such_folder/z.npy: cannot be written" "$work/outs.out"; check "--out in a missing folder is named" $?
"$bin" encode "$work/ok.json" --out "$work/none.npy" > /dev/null 2>&1
[ $? -eq 2 ]; check "missing --data exits 2" $?

# decode: latents of the wrong shape, a missing file.
"$bin" decode "$work/ok.json" --latents "$work/x3.npy" --out "$work/d3.npy" > /dev/null 2> "$work/d3.err"
rc=$?; [ $rc -eq 2 ]; check "decode of 3-column latents exits 2 (got $rc)" $?
grep -qF "x3.npy: has 3 values per row" "$work/d3.err"; check "decode names the latents file: $(cat "$work/d3.err")" $?
[ ! -e "$work/d3.npy" ]; check "decode wrote nothing on bad latents" $?
"$bin" decode "$work/ok.json" --latents "$work/no_such.npy" --out "$work/d4.npy" > /dev/null 2>&1
[ $? -eq 2 ]; check "decode of a missing file exits 2" $?

# The worked example of docs/encode.md: sample, then encode with --reconstruct.
example="$(dirname "$0")/../configs/encode/gaussian.json"
"$bin" sample "$example" --out "$work/ex.npy" > /dev/null 2>&1; check "docs example: sample" $?
"$bin" encode "$example" --data "$work/ex.npy" --out "$work/ex_z.npy" --reconstruct > "$work/ex.out" 2>&1
rc=$?; check "docs example: encode: $(cat "$work/ex.out")" $rc
grep -q "reconstruction (data -> noise -> data, 50 NFE): max abs error 0.000439, rms error 9.69e-05" "$work/ex.out"
check "docs example: the reconstruction line docs/encode.md shows: $(cat "$work/ex.out")" $?

echo "encode CLI: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
