#!/usr/bin/env bash
# The command line as a user meets it: exit codes, error messages that name the place,
# and no partial or clobbered output when a run fails.
source "$(dirname "$0")/cli_common.sh" "$1"


# expect_error NAME EXPECTED_RC NEEDLE CONFIG_JSON: runs sample on the config, expects the
# exit code and a message containing NEEDLE, and that the output file was not written.
expect_error() {
  local name=$1 rc_expected=$2 needle=$3 config=$4
  printf '%s' "$config" > "$work/$name.json"
  "$bin" sample "$work/$name.json" --out "$work/$name.npy" > "$work/$name.out" 2> "$work/$name.err"
  local rc=$?
  [ "$rc" -eq "$rc_expected" ]; check "$name: exit code $rc, expected $rc_expected" $?
  grep -qF -- "$needle" "$work/$name.err"; rc=$?; check "$name: stderr lacks '$needle': $(cat "$work/$name.err")" $rc
  [ ! -e "$work/$name.npy" ]; check "$name: output file was written" $?
}

good='{"schedule":{"name":"vp_linear"},"model":{"name":"gmm","weights":[0.5,0.5],"means":[[-1,0],[1,0]],"stds":[[0.2,0.2],[0.2,0.2]]},"grid":{"name":"time_uniform","steps":50,"t_start":1,"t_end":1e-3},"solver":{"name":"euler_maruyama"},"batch":16,"seed":0}'

# A good run writes a 16 x 2 float64 .npy and a summary with the required keys.
printf '%s' "$good" > "$work/good.json"
"$bin" sample "$work/good.json" --out "$work/good.npy" --summary "$work/good_summary.json" > "$work/good.out" 2>&1
rc=$?; check "good config runs: $(cat "$work/good.out")" $rc
head -c 128 "$work/good.npy" | grep -qF "'shape': (16, 2)"; check "good.npy has shape (16, 2)" $?
for key in nfe steps seconds accepted rejected; do
  grep -q "\"$key\"" "$work/good_summary.json"; check "summary has $key" $?
done
grep -q '"nfe": 50' "$work/good_summary.json"; check "summary nfe is 50" $?

# Provenance: the summary and the sidecar good.npy.json carry the build, the config with its
# defaults filled in, and the config file's size and SHA-256 (checked against sha256sum).
config_hash=$(sha256sum "$work/good.json" | cut -d' ' -f1)
for f in good_summary.json good.npy.json; do
  grep -q "\"sha256\": \"$config_hash\"" "$work/$f"; check "$f: the config file's sha256" $?
  grep -q '"commit": "' "$work/$f"; check "$f: the build's commit" $?
  grep -q '"t_last": 0.001' "$work/$f"; check "$f: the grid's defaults filled in" $?
done
grep -q '"shape": \[' "$work/good.npy.json"; check "the sidecar gives the shape" $?
# A run shorter than 10 s in a log (stderr not a terminal) prints no progress line.
! grep -q "^sampling:\|sampling \[" "$work/good.out"; check "no progress lines for a short run" $?

# The same run again gives the same bytes (reproducible to the last bit).
"$bin" sample "$work/good.json" --out "$work/good2.npy" > /dev/null 2>&1
cmp -s "$work/good.npy" "$work/good2.npy"; check "two runs give identical samples" $?

# Any thread count gives the same bytes, from the config's `threads` or from --threads.
"$bin" sample "$work/good.json" --out "$work/good3.npy" --threads 3 > /dev/null 2>&1
cmp -s "$work/good.npy" "$work/good3.npy"; check "--threads 3 gives identical samples" $?
printf '%s' "${good/\"batch\":16/\"batch\":16,\"threads\":2}" > "$work/threads.json"
"$bin" sample "$work/threads.json" --out "$work/good4.npy" > /dev/null 2>&1
cmp -s "$work/good.npy" "$work/good4.npy"; check "threads 2 gives identical samples" $?

# A batch that cannot fit in memory is refused before anything is allocated, with the
# estimate (2^31 samples of 1000 values: 32 TiB at the least), exit 2 naming `batch`.
zeros=$(printf '0,%.0s' $(seq 1 999))0
printf '{"schedule":"vp_linear","model":{"name":"gaussian","mean":[%s],"std":[1]},"grid":{"name":"time_uniform","steps":2},"solver":"ddim","batch":2147483648}' "$zeros" > "$work/huge.json"
"$bin" sample "$work/huge.json" --out "$work/huge.npy" > "$work/huge.out" 2>&1
rc=$?; [ $rc -eq 2 ]; check "a batch too large for memory exits 2 (got $rc)" $?
grep -q "batch: 2147483648 samples of 1000 values need at least" "$work/huge.out"; check "the memory estimate names batch: $(cat "$work/huge.out")" $?
grep -q "GiB of memory is available" "$work/huge.out"; check "and the memory available" $?

# The embedded default runs without a config file.
"$bin" sample --print-config | grep -q '"euler_maruyama"'; check "embedded default config" $?

# list --json is an array with name, params, stochastic and order for solvers.
"$bin" list --json > "$work/list.json"; check "list --json runs" $?
/usr/bin/python3 - "$work/list.json" <<'PY'
import json, sys
entries = json.load(open(sys.argv[1]))
names = {e["name"] for e in entries}
assert {"euler_maruyama", "vp_linear", "vp_cosine", "vp_discrete", "time_uniform", "logSNR",
        "time_quadratic", "karras", "custom", "gaussian", "gmm"} <= names, names
for e in entries:
    assert "params" in e and isinstance(e["params"], dict)
    if e["kind"] == "solver":
        assert isinstance(e["stochastic"], bool) and isinstance(e["order"], (int, float))
PY
check "list --json content" $?
"$bin" list solvers | grep -q "euler_maruyama"; check "list solvers" $?

# Bad input: each kind names its place and exits 2 with no output.
expect_error unknown_key 2 "solvr: unknown key" "${good/\"solver\"/\"solvr\"}"
expect_error unknown_solver 2 "solver.name: unknown solver 'nope'; known: " "${good/euler_maruyama/nope}"
expect_error unknown_param 2 "schedule.beta2: unknown parameter" "${good/\"name\":\"vp_linear\"/\"name\":\"vp_linear\",\"beta2\":3}"
expect_error wrong_type 2 "grid.steps: expected an integer" "${good/\"steps\":50/\"steps\":\"many\"}"
expect_error bad_threads 2 "threads: must be between 0" "${good/\"batch\":16/\"batch\":16,\"threads\":5000}"
expect_error bad_value 2 "grid.steps" "${good/\"steps\":50/\"steps\":0}"
expect_error bad_shape 2 "model.means" "${good/\"means\":\[\[-1,0\],\[1,0\]\]/\"means\":[[-1,0]]}"
expect_error missing_model 2 "modl: unknown key" "${good/\"model\"/\"modl\"}"
expect_error bad_batch 2 "batch" "${good/\"batch\":16/\"batch\":-3}"
expect_error missing_init 2 "no_such_file.npy" "${good/\"seed\":0/\"seed\":0,\"init\":\"no_such_file.npy\"}"
expect_error bad_json 2 "line 1, column" '{"schedule": {"name": "vp_linear",}}'
expect_error short_replay 2 "" "${good/\"seed\":0/\"seed\":0,\"noise\":\"no_such_noise.npy\"}"
# A key given twice and a number beyond a double are refused with their JSON path, not
# passed over (the last value winning) or reported without a place.
expect_error duplicate_key 2 "the key grid.steps is given twice" "${good/\"steps\":50/\"steps\":50,\"steps\":60}"
expect_error overflow 2 "number overflow parsing '1e999' at schedule.beta1" "${good/\"name\":\"vp_linear\"/\"name\":\"vp_linear\",\"beta1\":1e999}"
# Unknown names suggest the nearest known one.
expect_error near_name 2 "unknown solver 'dpmsolver'; known: " "${good/euler_maruyama/dpmsolver}"
grep -qF "(did you mean 'dpm_solver'?)" "$work/near_name.err"; check "dpmsolver suggests dpm_solver" $?
expect_error near_key 2 "grd: unknown key" "${good/\"grid\"/\"grd\"}"
grep -qF "(did you mean 'grid'?)" "$work/near_key.err"; check "grd suggests grid" $?

# A solver that does not fit the grid or the noise is refused before any step, at its path.
expect_error abm_grid 2 "solver: pf_ode: stepper adams_bashforth_moulton needs a uniform grid" \
  '{"schedule":{"name":"vp_linear"},"model":"gmm","grid":{"name":"logSNR","steps":8},"solver":{"name":"pf_ode","stepper":"adams_bashforth_moulton"},"batch":4}'
expect_error increasing_grid 2 "solver: euler_maruyama with noise runs backwards in time" \
  '{"schedule":{"name":"vp_linear"},"model":"gmm","grid":{"name":"time_uniform","t_start":0.1,"t_end":0.9,"steps":4},"solver":"euler_maruyama","batch":4}'
expect_error ggf_philox 2 "solver: ggf needs the brownian_tree noise source" \
  '{"schedule":{"name":"vp_linear"},"model":"gmm","grid":{"name":"time_uniform","steps":4},"solver":"ggf","batch":4}'

# Unknown commands say so and suggest the nearest; --version names the build's options.
"$bin" samplee > "$work/cmd.out" 2>&1
rc=$?; [ $rc -eq 2 ]; check "unknown command exits 2 (got $rc)" $?
grep -qF "unknown command 'samplee' (did you mean 'sample'?)" "$work/cmd.out"; check "samplee suggests sample" $?
"$bin" --version > "$work/version.out" 2>&1
rc=$?; check "--version exits 0 (got $rc)" $rc
grep -q "^diffsde [0-9]" "$work/version.out" && grep -q "^LibTorch: " "$work/version.out" && grep -q "^MPI: " "$work/version.out"
check "--version names the version, LibTorch and MPI: $(cat "$work/version.out")" $?

# ggf's options are checked like every solver's, at their JSON path.
expect_error ggf_h_init 2 "solver.h_init: must be > 0" "${good/\"name\":\"euler_maruyama\"/\"name\":\"ggf\",\"h_init\":0}"
expect_error ggf_safety 2 "solver.safety: must be in (0, 1]" "${good/\"name\":\"euler_maruyama\"/\"name\":\"ggf\",\"safety\":0}"

# Outputs that cannot be written are refused before the run, and nothing is written.
"$bin" sample --out "$work/no_such_folder/x.npy" > "$work/nofolder.out" 2>&1
rc=$?; [ $rc -eq 2 ]; check "--out in a missing folder exits 2 (got $rc)" $?
grep -q "no_such_folder/x.npy: cannot be written: the folder" "$work/nofolder.out"; check "--out in a missing folder is named" $?
grep -q "^sampling" "$work/nofolder.out"; [ $? -ne 0 ]; check "--out in a missing folder: no run started" $?
mkdir -p "$work/adir"
"$bin" sample --out "$work/early.npy" --summary "$work/adir" > "$work/sumdir.out" 2>&1
rc=$?; [ $rc -eq 2 ]; check "--summary on a folder exits 2 (got $rc)" $?
grep -q "adir: is a directory" "$work/sumdir.out"; check "--summary on a folder is named" $?
[ ! -e "$work/early.npy" ]; check "--summary on a folder: samples not written either" $?

# A file that is not there.
"$bin" sample "$work/absent.json" --out "$work/absent.npy" 2> "$work/absent.err"
[ $? -eq 2 ]; check "absent config exits 2" $?
grep -qF "absent.json" "$work/absent.err"; check "absent config is named" $?

# A NaN in x_T stops the run at step 0 with t named, exit 1, and an existing output
# file stays as it was.
/usr/bin/python3 - "$work/nan.npy" <<'PY'
import struct, sys
header = "{'descr': '<f8', 'fortran_order': False, 'shape': (16, 2), }"
header += " " * (64 - 10 - len(header) - 1) + "\n"
data = [float("nan")] + [0.0] * 31
with open(sys.argv[1], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    f.write(struct.pack("<32d", *data))
PY
printf '%s' "${good/\"seed\":0/\"seed\":0,\"init\":\"nan.npy\"}" > "$work/nan.json"
echo "keep me" > "$work/kept.npy"
"$bin" sample "$work/nan.json" --out "$work/kept.npy" 2> "$work/nan.err"
[ $? -eq 1 ]; check "NaN run exits 1" $?
grep -qF "step 0 (t = 1)" "$work/nan.err"; rc=$?; check "NaN error names step and t: $(cat "$work/nan.err")" $rc
[ "$(cat "$work/kept.npy")" = "keep me" ]; check "existing output kept" $?

# train: trains with LibTorch; without it, exits 2 and says how to get it.
printf '%s' '{"data":{"name":"moons"},"network":{"name":"mlp","hidden":8,"layers":1,"embedding":8},"steps":2,"batch":8}' > "$work/tiny_train.json"
"$bin" train "$work/tiny_train.json" --out "$work/tiny.pt" > "$work/train.out" 2> "$work/train.err"
rc=$?
if [ "$rc" -eq 0 ]; then
  [ -s "$work/tiny.pt" ]; check "train wrote the model" $?
else
  [ "$rc" -eq 2 ] && grep -qF "needs LibTorch" "$work/train.err"; rc=$?; check "train without LibTorch: rc $rc, $(cat "$work/train.err")" $rc
fi

# diffusers' scheduler configs: a file beside the config, --print-config shows the native
# config, a run writes samples, and a setting that cannot be honoured exits 2 naming it.
mkdir -p "$work/sched"
printf '%s' '{"_class_name": "DPMSolverMultistepScheduler", "_diffusers_version": "0.30.0", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000, "use_karras_sigmas": true}' > "$work/sched/scheduler_config.json"
printf '%s' '{"scheduler_config": "sched/scheduler_config.json", "steps": 12, "model": {"name": "gmm"}, "batch": 8}' > "$work/diffusers.json"
"$bin" sample "$work/diffusers.json" --print-config > "$work/diffusers.out" 2>&1
check "scheduler_config --print-config: $(cat "$work/diffusers.out")" $?
/usr/bin/python3 - "$work/diffusers.out" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
assert c["schedule"]["beta_schedule"] == "scaled_linear", c
assert c["grid"] == {"name": "diffusers", "family": "dpm_solver", "steps": 12, "timestep_spacing": "linspace", "sigmas": "karras"}, c["grid"]
assert c["solver"]["name"] == "dpm_solver" and c["solver"]["order"] == 2, c["solver"]
assert "scheduler_config" not in c and "steps" not in c
PY
check "scheduler_config becomes the native config" $?
"$bin" sample "$work/diffusers.json" --out "$work/diffusers.npy" > "$work/diffusers_run.out" 2>&1
check "scheduler_config run: $(cat "$work/diffusers_run.out")" $?
"$bin" sample "$work/diffusers.json" --print-config > "$work/native.json" 2> /dev/null
"$bin" sample "$work/native.json" --out "$work/native.npy" > /dev/null 2>&1
cmp -s "$work/diffusers.npy" "$work/native.npy"; check "the printed native config gives the same samples" $?
printf '%s' '{"_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "sde-dpmsolver"}' > "$work/sched/heun.json"
printf '%s' '{"scheduler_config": "sched/heun.json", "steps": 12, "model": {"name": "gmm"}}' > "$work/heun.json"
"$bin" sample "$work/heun.json" --out "$work/heun.npy" > /dev/null 2> "$work/heun.err"
[ $? -eq 2 ]; check "unhonoured scheduler key exits 2" $?
grep -qF "scheduler_config.algorithm_type" "$work/heun.err"; check "the error names the key: $(cat "$work/heun.err")" $?
grep -qF "heun.json" "$work/heun.err"; check "the error names the file: $(cat "$work/heun.err")" $?

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
