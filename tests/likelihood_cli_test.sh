#!/usr/bin/env bash
# `diffsde likelihood` as a user meets it: one JSON line per row with the required keys,
# split runs that reproduce a whole run byte for byte, the VLB method, and bad input that
# names its place, exits 2 and writes nothing.
source "$(dirname "$0")/cli_common.sh" "$1"

# jsonl_check FILE ROWS KEYS...: every line is a JSON object with the keys, indices in order.
jsonl_check() {
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
path, rows, keys = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
lines = open(path).read().splitlines()
assert len(lines) == rows, (len(lines), rows)
for i, line in enumerate(lines):
    d = json.loads(line)
    for k in keys:
        assert k in d, (k, d)
    assert d["index"] == i, d
PY
}

model='{"name":"gmm","weights":[0.5,0.5],"means":[[-1,0],[1,0]],"stds":[[0.3,0.3],[0.3,0.3]]}'
write_npy "$work/x.npy" 6 2  -1.1 0.2  0.9 -0.1  -0.8 0.3  1.2 0.0  -1.0 -0.4  1.05 0.25

# PF-ODE with the exact trace: the required keys, stderr 0, and a summary.
printf '{"schedule":{"name":"vp_linear"},"model":%s,"t_min":1e-4}' "$model" > "$work/exact.json"
"$bin" likelihood "$work/exact.json" --data "$work/x.npy" --out "$work/exact.jsonl" \
  --summary "$work/exact_summary.json" > "$work/exact.out" 2>&1
rc=$?; check "exact run: $(cat "$work/exact.out")" $rc
jsonl_check "$work/exact.jsonl" 6 index nll bpd stderr nfe exact_nll
check "exact.jsonl has 6 lines with index, nll, bpd, stderr, nfe" $?
grep -q '"stderr":0.0' "$work/exact.jsonl"; check "exact trace: stderr 0" $?
grep -q "bits/dim" "$work/exact.out"; check "summary printed" $?
/usr/bin/python3 - "$work/exact_summary.json" "$work/exact.jsonl" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
for k in ("mean_bpd", "mean_bpd_stderr", "mean_nfe", "seconds", "mean_exact_nll"):
    assert k in s, k
rows = [json.loads(l) for l in open(sys.argv[2])]
for r in rows:  # the PF-ODE NLL is the exact one, to the tolerance and the prior's O(alpha(1))
    assert abs(r["nll"] - r["exact_nll_t_min"]) < 2e-2, r
PY
check "summary keys; nll close to the exact NLL" $?

# Hutchinson: positive standard errors; two halves of the data reproduce the whole run.
printf '{"schedule":{"name":"vp_linear"},"model":%s,"trace":{"method":"hutchinson","probes":4,"distribution":"gaussian"},"seed":3}' \
  "$model" > "$work/hutch.json"
"$bin" likelihood "$work/hutch.json" --data "$work/x.npy" --out "$work/all.jsonl" > /dev/null 2>&1
check "hutchinson run" $?
/usr/bin/python3 -c "
import json,sys
assert all(json.loads(l)['stderr'] > 0 for l in open('$work/all.jsonl'))" ; check "hutchinson stderr > 0" $?
"$bin" likelihood "$work/hutch.json" --data "$work/x.npy" --out "$work/a.jsonl" --count 2 > /dev/null 2>&1
"$bin" likelihood "$work/hutch.json" --data "$work/x.npy" --out "$work/b.jsonl" --first 2 > /dev/null 2>&1
cat "$work/a.jsonl" "$work/b.jsonl" > "$work/ab.jsonl"
/usr/bin/python3 - "$work/all.jsonl" "$work/ab.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 6
for x, y in zip(a, b):
    for k in ("index", "nll", "stderr", "bpd", "nfe"):
        assert x[k] == y[k], (k, x, y)
PY
check "split runs (--count 2, --first 2) give the whole run's lines" $?

# The VLB on a discrete schedule.
printf '{"schedule":{"name":"vp_discrete","num_steps":100},"model":%s,"method":"vlb","vlb":{"draws":2,"per_term":true}}' \
  "$model" > "$work/vlb.json"
"$bin" likelihood "$work/vlb.json" --data "$work/x.npy" --out "$work/vlb.jsonl" --summary "$work/vlb_summary.json" > "$work/vlb.out" 2>&1
rc=$?; check "vlb run: $(cat "$work/vlb.out")" $rc
jsonl_check "$work/vlb.jsonl" 6 index nll bpd stderr nfe L_T L_0 terms
check "vlb.jsonl keys" $?
/usr/bin/python3 -c "
import json
s = json.load(open('$work/vlb_summary.json'))
assert len(s['terms_bpd']) == 101 and s['vlb']['steps'] == 100, s" ; check "vlb summary has 101 terms" $?

# 8-bit data: the discretized decoder, and PF-ODE with dequantization.
write_npy "$work/img.npy" 2 2  -1 1  0.003921568627450966 -0.5058823529411764
printf '{"schedule":{"name":"vp_discrete","num_steps":50},"model":%s,"method":"vlb","data_kind":"image8"}' \
  "$model" > "$work/vlb8.json"
"$bin" likelihood "$work/vlb8.json" --data "$work/img.npy" --out "$work/vlb8.jsonl" > /dev/null 2>&1
check "image8 vlb run" $?
printf '{"schedule":{"name":"vp_linear"},"model":%s,"data_kind":"image8"}' "$model" > "$work/pf8.json"
"$bin" likelihood "$work/pf8.json" --data "$work/img.npy" --out "$work/pf8.jsonl" > /dev/null 2>&1
check "image8 pf_ode run" $?

# expect_error NAME RC NEEDLE CONFIG [DATA]: exit code, message, and no output written.
expect_error() {
  local name=$1 rc_expected=$2 needle=$3 config=$4 data=${5:-$work/x.npy}
  printf '%s' "$config" > "$work/$name.json"
  "$bin" likelihood "$work/$name.json" --data "$data" --out "$work/$name.jsonl" > "$work/$name.out" 2> "$work/$name.err"
  local rc=$?
  [ "$rc" -eq "$rc_expected" ]; check "$name: exit code $rc, expected $rc_expected" $?
  grep -qF -- "$needle" "$work/$name.err"; rc=$?; check "$name: stderr lacks '$needle': $(cat "$work/$name.err")" $rc
  [ ! -e "$work/$name.jsonl" ]; check "$name: output file was written" $?
}

base='{"schedule":{"name":"vp_linear"},"model":'"$model"
expect_error unknown_key 2 "tracee: unknown key" "$base"',"tracee":{}}'
expect_error probes 2 "trace.probes" "$base"',"trace":{"method":"hutchinson","probes":1}}'
expect_error distribution 2 "trace.distribution" "$base"',"trace":{"method":"hutchinson","distribution":"uniform"}}'
expect_error stepper 2 "solver.stepper" "$base"',"solver":{"stepper":"rk45"}}'
expect_error rtol_fixed 2 "solver.rtol" "$base"',"solver":{"stepper":"rk4","rtol":1e-3}}'
expect_error t_min 2 "t_min" "$base"',"t_min":0}'
expect_error vlb_steps 2 "vlb.steps" "$base"',"method":"vlb"}'
expect_error vlb_with_trace 2 "trace: only used when method is" "$base"',"method":"vlb","vlb":{"steps":10},"trace":{}}'
expect_error bad_method 2 "method" "$base"',"method":"elbo"}'
expect_error missing_data 2 "no_such.npy" "$base"'}' "$work/no_such.npy"
write_npy "$work/x3.npy" 2 3  0 0 0  1 1 1
expect_error wrong_dim 2 "x3.npy" "$base"'}' "$work/x3.npy"
expect_error off_grid 2 "row 0, column 0" "$base"',"data_kind":"image8"}'
expect_error bad_json 2 "line 1, column" '{"schedule": {"name": "vp_linear",}}'

# The general schedules: flow must end below t = 1 (alpha = 0 there); the DDPM bound is VP-only.
expect_error flow_t_max_default 2 "t_max: defaults to the schedule's t_max, 1" '{"schedule":{"name":"flow"},"model":'"$model"'}'
expect_error flow_t_max_1 2 "t_max: is 1, where flow has alpha = 0" '{"schedule":{"name":"flow"},"model":'"$model"',"t_max":1}'
expect_error vlb_ve 2 "schedule: method \"vlb\"" '{"schedule":{"name":"ve"},"model":'"$model"',"method":"vlb","vlb":{"steps":10}}'
for sched in '{"name":"ve"}' '{"name":"subvp"}' '{"name":"edm"},"t_min":0.002' '{"name":"flow","shift":3},"t_max":0.999'; do
  printf '{"schedule":%s,"model":%s}' "$sched" "$model" > "$work/general.json"
  "$bin" likelihood "$work/general.json" --data "$work/x.npy" --out "$work/general.jsonl" > "$work/general.out" 2>&1
  check "pf_ode on $sched: $(cat "$work/general.out")" $?
  /usr/bin/python3 - "$work/general.jsonl" <<'PY'
import json, sys
for l in open(sys.argv[1]):  # the prior's mismatch on these schedules is below 2e-2 nats here
    r = json.loads(l)
    assert abs(r["nll"] - r["exact_nll_t_min"]) < 2e-2, r
PY
  check "pf_ode on $sched: nll close to the exact NLL" $?
done

# Outputs that cannot be written are refused before the run.
printf '%s' "$base"'}' > "$work/outs.json"
"$bin" likelihood "$work/outs.json" --data "$work/x.npy" --out "$work/no_such_folder/o.jsonl" > "$work/outs.out" 2>&1
rc=$?; [ $rc -eq 2 ]; check "--out in a missing folder exits 2 (got $rc)" $?
grep -q "no_such_folder/o.jsonl: cannot be written" "$work/outs.out"; check "--out in a missing folder is named" $?
mkdir -p "$work/sdir"
"$bin" likelihood "$work/outs.json" --data "$work/x.npy" --out "$work/outs.jsonl" --summary "$work/sdir" > "$work/outs2.out" 2>&1
rc=$?; [ $rc -eq 2 ]; check "--summary on a folder exits 2 (got $rc)" $?
[ ! -e "$work/outs.jsonl" ]; check "--summary on a folder: the rows are not written either" $?

# A failed run leaves an existing output file as it was.
echo "keep" > "$work/keep.jsonl"
printf '%s' "$base"',"t_min":-1}' > "$work/keep.json"
"$bin" likelihood "$work/keep.json" --data "$work/x.npy" --out "$work/keep.jsonl" > /dev/null 2>&1
[ "$(cat "$work/keep.jsonl")" = "keep" ]; check "existing output kept on error" $?

# Missing required options are a command-line error (exit 2).
"$bin" likelihood "$work/exact.json" --out "$work/none.jsonl" > /dev/null 2>&1
[ $? -eq 2 ]; check "missing --data exits 2" $?

echo "likelihood CLI: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
