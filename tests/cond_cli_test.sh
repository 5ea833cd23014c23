#!/usr/bin/env bash
# Conditioning and guidance from the command line: the contract's keys run, give the same
# samples whatever the split, and bad input is refused before any step with exit code 2
# and the JSON path (or file) of the offending value.
source "$(dirname "$0")/cli_common.sh" "$1"

# expect_error NAME NEEDLE CONFIG_JSON: sample exits 2 naming NEEDLE and writes nothing.
expect_error() {
  local name=$1 needle=$2 config=$3
  printf '%s' "$config" > "$work/$name.json"
  "$bin" sample "$work/$name.json" --out "$work/$name.npy" > "$work/$name.out" 2> "$work/$name.err"
  local rc=$?
  [ "$rc" -eq 2 ]; check "$name: exit code $rc, expected 2: $(cat "$work/$name.err")" $?
  grep -qF -- "$needle" "$work/$name.err"; rc=$?; check "$name: stderr lacks '$needle': $(cat "$work/$name.err")" $rc
  [ ! -e "$work/$name.npy" ]; check "$name: output file was written" $?
}

# A labelled version of the built-in mixture: class 0 = component 0, class 1 = components 1, 2.
head='"schedule":{"name":"vp_linear"},"model":{"name":"gmm","classes":[[0],[1,2]]},"grid":{"name":"logSNR","steps":20,"t_start":1,"t_end":1e-3},"solver":{"name":"dpm_solver","order":2},"batch":6,"seed":3'

# Per-sample labels from the JSON and from an int64 .npy give the same samples, and 1 and 2
# threads and the batched or two-call guidance give the same bytes.
/usr/bin/python3 -c "import numpy as np; np.save('$work/y.npy', np.array([0,1,1,0,-1,1], dtype=np.int64)); np.save('$work/y32.npy', np.array([0,1,1,0,-1,1], dtype=np.int32)); np.save('$work/yf.npy', np.zeros(6)); np.save('$work/y5.npy', np.zeros(5, dtype=np.int64))"
run() {  # run NAME CONFIG_TAIL
  printf '{%s,%s}' "$head" "$2" > "$work/$1.json"
  "$bin" sample "$work/$1.json" --out "$work/$1.npy" --summary "$work/$1.s.json" > "$work/$1.out" 2>&1
  local rc=$?; check "$1 runs: $(cat "$work/$1.out")" $rc
}
run list '"cond":{"y":[0,1,1,0,-1,1]},"guidance":{"scale":3}'
run file '"cond":{"y":"y.npy"},"guidance":{"scale":3}'
run file32 '"cond":{"y":"y32.npy"},"guidance":{"scale":3}'
run threads '"cond":{"y":"y.npy"},"guidance":{"scale":3},"threads":2'
run twocalls '"cond":{"y":"y.npy"},"guidance":{"scale":3,"batched":false},"threads":2'
for other in file file32 threads twocalls; do
  cmp -s "$work/list.npy" "$work/$other.npy"; check "list and $other give the same samples" $?
done
grep -q '"network_rows": 240' "$work/list.s.json"; check "guided: 20 steps x 6 rows x 2 network rows: $(grep network_rows "$work/list.s.json")" $?
grep -q '"nfe": 20' "$work/list.s.json"; check "guided: 20 model evaluations" $?

# Guidance scale 0 is the unconditional model; scale 1 and no guidance are the conditional one.
run s0 '"cond":{"y":1},"guidance":{"scale":0}'
run plain '"threads":1'
cmp -s "$work/s0.npy" "$work/plain.npy"; check "scale 0 = the unconditional mixture" $?
run s1 '"cond":{"y":1},"guidance":{"scale":1}'
run cond1 '"cond":{"y":1}'
cmp -s "$work/s1.npy" "$work/cond1.npy"; check "scale 1 = the conditional model" $?
grep -q '"network_rows": 120' "$work/s1.s.json"; check "scale 1: one network row per row" $?
run interval '"cond":{"y":1},"guidance":{"scale":4,"interval":[0.3,0.7],"rescale":0.5,"space":"x0"},"thresholding":{"ratio":0.9,"max":2}'
run clip '"cond":{"y":1},"thresholding":{"clip":[-1,1]}'

# Bad input: exit 2 naming the place, before any step.
expect_error uncond_model 'cond.y: model '"'"'gmm'"'"' takes no conditioning' \
  '{"schedule":{"name":"vp_linear"},"model":{"name":"gmm"},"grid":{"name":"logSNR","steps":5},"solver":{"name":"ddim"},"cond":{"y":1}}'
expect_error guide_uncond_model 'guidance: model '"'"'gmm'"'"' takes no conditioning' \
  '{"schedule":{"name":"vp_linear"},"model":{"name":"gmm"},"grid":{"name":"logSNR","steps":5},"solver":{"name":"ddim"},"guidance":{"scale":2}}'
expect_error label_range 'cond.y: label 5 (row 0) is out of range' "{$head,\"cond\":{\"y\":5}}"
expect_error label_float 'cond.y: input '"'"'y'"'"' takes integer class labels' "{$head,\"cond\":{\"y\":0.5}}"
expect_error label_count 'cond.y: has 4 values' "{$head,\"cond\":{\"y\":[0,1,0,1]}}"
expect_error label_shape 'cond.y: has per-sample shape (1, 1), the model takes ()' "{$head,\"cond\":{\"y\":[[1]]}}"
expect_error unknown_input "cond.label: model 'gmm' has no input 'label'" "{$head,\"cond\":{\"label\":1}}"
expect_error cond_type 'cond.y: expected a number, a list of numbers or the path of a .npy file' "{$head,\"cond\":{\"y\":true}}"
expect_error cond_form 'cond: expected an object' "{$head,\"cond\":[1]}"
expect_error file_float 'yf.npy: holds floating-point values' "{$head,\"cond\":{\"y\":\"yf.npy\"}}"
expect_error file_rows 'y5.npy: has 5 rows; expected 6' "{$head,\"cond\":{\"y\":\"y5.npy\"}}"
expect_error file_missing 'nothere.npy: file not found' "{$head,\"cond\":{\"y\":\"nothere.npy\"}}"
expect_error no_cond 'cond: guidance needs the conditional inputs' "{$head,\"guidance\":{\"scale\":2}}"
expect_error scale_missing 'guidance.scale: is required' "{$head,\"cond\":{\"y\":1},\"guidance\":{}}"
expect_error rescale_range 'guidance.rescale: must be between 0 and 1' "{$head,\"cond\":{\"y\":1},\"guidance\":{\"scale\":2,\"rescale\":2}}"
expect_error interval_order 'guidance.interval: must be [t_lo, t_hi]' "{$head,\"cond\":{\"y\":1},\"guidance\":{\"scale\":2,\"interval\":[0.8,0.2]}}"
expect_error space 'guidance.space: expected one of eps, x0, v' "{$head,\"cond\":{\"y\":1},\"guidance\":{\"scale\":2,\"space\":\"x\"}}"
expect_error guidance_key "guidance.scael: unknown key" "{$head,\"cond\":{\"y\":1},\"guidance\":{\"scale\":2,\"scael\":1}}"
expect_error uncond_alone 'uncond: is used only with "guidance"' "{$head,\"cond\":{\"y\":1},\"uncond\":{\"y\":-1}}"
expect_error uncond_range 'uncond.y: label 7 (row 0) is out of range' "{$head,\"cond\":{\"y\":1},\"uncond\":{\"y\":7},\"guidance\":{\"scale\":2}}"
expect_error ratio 'thresholding.ratio: must be in (0, 1]' "{$head,\"thresholding\":{\"ratio\":1.5}}"
expect_error tmax 'thresholding.max: must be finite and >= 1' "{$head,\"thresholding\":{\"max\":0.5}}"
expect_error clip_mixed 'thresholding.clip: static clipping takes no ratio or max' "{$head,\"thresholding\":{\"clip\":[-1,1],\"ratio\":0.9}}"
expect_error clip_order 'thresholding.clip: must be [lo, hi]' "{$head,\"thresholding\":{\"clip\":[1,-1]}}"
expect_error classes_range 'model.classes: class 1 names 3; the components are 0 .. 2' \
  '{"schedule":{"name":"vp_linear"},"model":{"name":"gmm","classes":[[0],[1,3]]},"grid":{"name":"logSNR","steps":5},"solver":{"name":"ddim"}}'

# A sweep with per-sample labels across reference chunks (300 samples: chunks of 256 and
# 44): the reference solves each chunk with its own rows' labels, so a converged solver's
# path error is small, and log_likelihood is each sample's exact conditional log-density.
/usr/bin/python3 -c "import numpy as np; np.save('$work/y300.npy', (np.arange(300) % 3 == 0).astype(np.int64))"
cat > "$work/sweep.json" <<JSON
{"problem": {"schedule": "vp_linear", "model": {"name": "gmm", "classes": [[0], [1, 2]]}, "batch": 300, "seed": 1,
             "cond": {"y": "y300.npy"}, "guidance": {"scale": 1.5}, "noise": "philox"},
 "reference": {"ode": {"solver": {"name": "pf_ode", "rtol": 1e-10, "atol": 1e-10}, "grid": {"name": "time_uniform", "steps": 1}}},
 "solvers": [{"name": "dpm_solver", "order": 3}],
 "grids": [{"name": "logSNR", "t_end": 0.001}], "steps": [100], "seeds": [0],
 "metrics": ["path_error", "log_likelihood"]}
JSON
"$bin" sweep "$work/sweep.json" --out "$work/sweep.jsonl" --quiet > "$work/sweep.out" 2>&1
rc=$?; check "conditional sweep runs: $(cat "$work/sweep.out")" $rc
/usr/bin/python3 - "$work/sweep.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cells = [l for l in lines if l.get("status") == "ok"]
assert len(cells) == 1, lines
m = cells[0]["metrics"]
assert m["path_rms"] < 2e-3 and m["path_max"] < 0.05, m
assert -4 < m["log_likelihood"] < 0, m
assert cells[0]["network_rows"] == 2 * 300 * cells[0]["nfe"], cells[0]
PY
check "conditional sweep: small path error across chunks, conditional log-likelihood, network rows" $?
# The guidance is part of the sweep's identity: results of another scale are not resumed.
sed 's/"scale": 1.5/"scale": 2.5/' "$work/sweep.json" > "$work/sweep25.json"
"$bin" sweep "$work/sweep25.json" --out "$work/sweep.jsonl" --resume > "$work/sweep25.out" 2>&1
rc=$?; [ "$rc" -ne 0 ] && grep -qiF "sweep" "$work/sweep25.out"
check "resuming another guidance scale's results is refused: rc $rc, $(cat "$work/sweep25.out")" $?
sed 's/"path_error", "log_likelihood"/"frechet"/' "$work/sweep.json" > "$work/sweep_frechet.json"
"$bin" sweep "$work/sweep_frechet.json" --out "$work/sweep_frechet.jsonl" --quiet > "$work/sweep_frechet.out" 2>&1
rc=$?; [ "$rc" -eq 2 ] && grep -qF "frechet compares the samples with the unconditional data law" "$work/sweep_frechet.out"
check "frechet on a conditional sweep: exit 2 with the reason: rc $rc, $(cat "$work/sweep_frechet.out")" $?

# likelihood: each row's density given its label, PF-ODE and VLB, against the exact
# conditional density; a label file sliced by --first / --count; sampling layers refused.
/usr/bin/python3 -c "
import numpy as np
np.save('$work/lx.npy', np.array([[-2.1, -0.9], [1.4, -1.2], [0.6, 1.8], [-1.0, 0.5]]))
np.save('$work/ly.npy', np.array([0, 1, 1, -1], dtype=np.int64))"
lmodel='{"name":"gmm","classes":[[0],[1,2]]}'
printf '{"schedule":"vp_linear","model":%s,"t_min":1e-4,"cond":{"y":"ly.npy"},"solver":{"name":"pf_ode","stepper":"dopri5","rtol":1e-8,"atol":1e-8}}' "$lmodel" > "$work/lik.json"
"$bin" likelihood "$work/lik.json" --data "$work/lx.npy" --out "$work/lik.jsonl" > "$work/lik.out" 2>&1
rc=$?; check "conditional likelihood runs: $(cat "$work/lik.out")" $rc
"$bin" likelihood "$work/lik.json" --data "$work/lx.npy" --out "$work/lik2.jsonl" --first 2 --count 2 > "$work/lik2.out" 2>&1
rc=$?; check "conditional likelihood of rows 2..3 runs: $(cat "$work/lik2.out")" $rc
printf '{"schedule":"vp_linear","model":%s,"t_min":1e-4,"solver":{"name":"pf_ode","stepper":"dopri5","rtol":1e-8,"atol":1e-8}}' "$lmodel" > "$work/likm.json"
"$bin" likelihood "$work/likm.json" --data "$work/lx.npy" --out "$work/likm.jsonl" > /dev/null 2>&1
/usr/bin/python3 - "$work/lik.jsonl" "$work/lik2.jsonl" "$work/likm.jsonl" <<'PY'
import json, sys, math
rows = [json.loads(l) for l in open(sys.argv[1])]
part = [json.loads(l) for l in open(sys.argv[2])]
whole = [json.loads(l) for l in open(sys.argv[3])]
# An independent transcription of the labelled mixture's log-density at t = 0.
W = [0.25, 0.35, 0.40]; M = [[-2.0, -1.0], [1.5, -1.5], [0.5, 2.0]]; S = [[0.4, 0.3], [0.3, 0.5], [0.5, 0.35]]
X = [[-2.1, -0.9], [1.4, -1.2], [0.6, 1.8], [-1.0, 0.5]]; Y = [0, 1, 1, -1]
classes = {0: [0], 1: [1, 2], -1: [0, 1, 2]}
for r, x in enumerate(X):
    ks = classes[Y[r]]; w = sum(W[k] for k in ks)
    p = sum(W[k] / w * math.prod(math.exp(-0.5 * ((x[j] - M[k][j]) / S[k][j]) ** 2) / (S[k][j] * math.sqrt(2 * math.pi)) for j in range(2)) for k in ks)
    assert abs(rows[r]["exact_nll"] + math.log(p)) < 1e-10, (r, rows[r], -math.log(p))
    assert abs(rows[r]["nll"] - rows[r]["exact_nll_t_min"]) < 1e-2, rows[r]  # tolerance and the prior at t = 1
assert [p["nll"] for p in part] == [rows[2]["nll"], rows[3]["nll"]], (part, rows)
assert abs(whole[3]["nll"] - rows[3]["nll"]) < 1e-12  # label -1: the whole mixture
assert abs(whole[1]["nll"] - rows[1]["nll"]) > 0.1    # label 1: its class, not the mixture
PY
check "conditional likelihood: exact conditional NLL, PF-ODE close to it, --first/--count slice the labels" $?
printf '{"schedule":"vp_linear","model":%s,"method":"vlb","vlb":{"steps":200,"draws":2},"cond":{"y":"ly.npy"}}' "$lmodel" > "$work/vlb.json"
"$bin" likelihood "$work/vlb.json" --data "$work/lx.npy" --out "$work/vlb.jsonl" > "$work/vlb.out" 2>&1
rc=$?; check "conditional VLB runs: $(cat "$work/vlb.out")" $rc
printf '{"schedule":"vp_linear","model":%s,"cond":{"y":1},"guidance":{"scale":2}}' "$lmodel" > "$work/likg.json"
"$bin" likelihood "$work/likg.json" --data "$work/lx.npy" --out "$work/likg.jsonl" > "$work/likg.out" 2>&1
rc=$?; [ "$rc" -eq 2 ] && grep -qF "guidance: is a sampling layer" "$work/likg.out"
check "likelihood refuses guidance: rc $rc, $(cat "$work/likg.out")" $?
printf '{"schedule":"vp_linear","model":%s,"cond":{"y":"y5.npy"}}' "$lmodel" > "$work/likr.json"
"$bin" likelihood "$work/likr.json" --data "$work/lx.npy" --out "$work/likr.jsonl" > "$work/likr.out" 2>&1
rc=$?; [ "$rc" -eq 2 ] && grep -qF "y5.npy: has 5 rows; expected 4" "$work/likr.out"
check "likelihood: a label file with the wrong rows: rc $rc, $(cat "$work/likr.out")" $?

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
