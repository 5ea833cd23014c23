#!/usr/bin/env bash
# `diffsde sweep`, `merge` and `report` as a user meets them: results that do not depend on
# threads, shards or interruptions, bad input that exits 2 naming its place with nothing
# written, and the report's table and plot.
#   sweep_cli_test.sh DIFFSDE                 the command-line tests
#   sweep_cli_test.sh DIFFSDE --mpi MPIEXEC   2 MPI ranks against 1 process, cell for cell
set -u
bin="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
passes=0

check() {  # check NAME CONDITION-RESULT
  if [ "$2" -eq 0 ]; then passes=$((passes + 1)); else echo "FAIL: $1"; failures=$((failures + 1)); fi
}

# same_cells A B: the two results files hold the same cells with the same results (the
# timings aside), whatever the order of their lines.
same_cells() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
def cells(path):
    out = {}
    for line in open(path):
        j = json.loads(line)
        j.pop("seconds", None)
        out[j["key"]] = j
    return out
a, b = cells(sys.argv[1]), cells(sys.argv[2])
sys.exit(0 if a == b and len(a) > 0 else 1)
PY
}

cat > "$work/small.json" <<'EOF'
{"description": "a small sweep for the tests",
 "problem": {"schedule": "vp_linear", "model": "gmm", "batch": 48, "seed": 1},
 "reference": {"ode": {"solver": {"name": "pf_ode", "rtol": 1e-9, "atol": 1e-9}, "grid": {"name": "time_uniform", "steps": 1}},
               "sde": {"solver": "stochastic_heun", "grid": {"name": "logSNR", "steps": 200}}},
 "solvers": [{"name": "ddim", "eta": [0, 1]}, {"name": "dpm_solver", "order": [2, 3]}, "euler_maruyama", "pf_ode"],
 "grids": [{"name": "logSNR", "t_end": 0.001}],
 "steps": [4, 8, 16], "tolerances": [1e-3, 1e-5], "seeds": [0, 1]}
EOF
cells=$(( (2 + 2 + 1) * 3 * 2 + 2 * 2 ))

if [ "${2:-}" = "--mpi" ]; then
  mpiexec="$3"
  "$bin" sweep "$work/small.json" --out "$work/one.jsonl" --quiet > /dev/null 2>&1
  check "1-process sweep runs" $?
  "$mpiexec" --allow-run-as-root --oversubscribe -n 2 "$bin" sweep "$work/small.json" --out "$work/mpi.jsonl" \
    > "$work/mpi.out" 2>&1
  check "mpirun -n 2 sweep runs: $(cat "$work/mpi.out")" $?
  grep -q "on each of 2 ranks" "$work/mpi.out"; check "the sweep ran on 2 ranks: $(cat "$work/mpi.out")" $?
  [ "$(wc -l < "$work/mpi.jsonl")" -eq "$cells" ]; check "2 ranks wrote $cells lines" $?
  same_cells "$work/one.jsonl" "$work/mpi.jsonl"; check "2 ranks give the 1-process cells" $?
  ls "$work"/mpi.jsonl.rank-* > /dev/null 2>&1; [ $? -ne 0 ]; check "rank files folded in and removed" $?
  # 2 ranks with 2 threads each, resumed after a torn line.
  head -c 3000 "$work/one.jsonl" > "$work/mpi_resume.jsonl"
  "$mpiexec" --allow-run-as-root --oversubscribe -n 2 "$bin" sweep "$work/small.json" --out "$work/mpi_resume.jsonl" \
    --resume --threads 2 > "$work/mpi_resume.out" 2>&1
  check "mpirun resume runs: $(cat "$work/mpi_resume.out")" $?
  same_cells "$work/one.jsonl" "$work/mpi_resume.jsonl"; check "2 ranks resumed give the 1-process cells" $?
  echo "$passes passed, $failures failed"
  [ "$failures" -eq 0 ]
  exit
fi

# A run: one JSON line per cell, with the keys the docs promise.
"$bin" sweep "$work/small.json" --out "$work/one.jsonl" > "$work/one.out" 2>&1
check "small sweep runs: $(cat "$work/one.out")" $?
[ "$(wc -l < "$work/one.jsonl")" -eq "$cells" ]; check "one line per cell ($cells)" $?
/usr/bin/python3 - "$work/one.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    for k in ["key", "sweep", "cell", "label", "solver", "grid", "steps", "tolerance", "seed", "nfe", "seconds",
              "accepted", "rejected", "status", "metrics"]:
        assert k in j, k
    assert j["status"] == "ok"
    assert j["solver"]["name"] in ("ddim", "dpm_solver", "euler_maruyama", "pf_ode")
    for m in ["log_likelihood", "frechet", "sliced_w2", "mmd2", "mmd2_se"]:
        assert m in j["metrics"], m
    if not j["stochastic"] or j["on_path"]:
        assert "path_rms" in j["metrics"]
PY
check "results lines have every key" $?
! grep -q $'\r' "$work/one.out"; check "no progress bar when stderr is not a terminal" $?

# Threads and shards change nothing.
"$bin" sweep "$work/small.json" --out "$work/two.jsonl" --threads 2 --quiet
check "--threads 2 runs" $?
same_cells "$work/one.jsonl" "$work/two.jsonl"; check "--threads 2 gives the same cells" $?
"$bin" sweep "$work/small.json" --out "$work/s0.jsonl" --shard 0/2 --quiet && \
  "$bin" sweep "$work/small.json" --out "$work/s1.jsonl" --shard 1/2 --threads 2 --quiet
check "two shards run" $?
"$bin" merge "$work/s1.jsonl" "$work/s0.jsonl" --out "$work/merged.jsonl" > /dev/null
check "merge runs" $?
same_cells "$work/one.jsonl" "$work/merged.jsonl"; check "shards 0/2 + 1/2 merged give the same cells" $?

# A kill -9 in mid-line: --resume ignores the torn line, runs only the missing cells.
head -c 2500 "$work/one.jsonl" > "$work/cut.jsonl"
whole=$(grep -c '' "$work/cut.jsonl")
whole=$((whole - 1))
"$bin" sweep "$work/small.json" --out "$work/cut.jsonl" --resume > "$work/cut.out" 2>&1
check "resume runs: $(cat "$work/cut.out")" $?
grep -q "ran $((cells - whole)) cell(s)" "$work/cut.out"; check "resume ran only the $((cells - whole)) missing cells: $(cat "$work/cut.out")" $?
grep -q "torn last line" "$work/cut.out"; check "resume says it ignored the torn line" $?
same_cells "$work/one.jsonl" "$work/cut.jsonl"; check "resumed file has the same cells" $?
# ...and a real kill -9 of a running sweep.
cp "$work/small.json" "$work/slow.json"
sed -i 's/"steps": \[4, 8, 16\]/"steps": [4, 8, 16, 1500, 3000]/' "$work/slow.json"
"$bin" sweep "$work/slow.json" --out "$work/killed.jsonl" --quiet &
pid=$!
for _ in $(seq 200); do  # until some cells are written (at most 10 s)
  [ "$(cat "$work/killed.jsonl" 2> /dev/null | wc -l)" -ge 3 ] && break
  sleep 0.05
done
kill -9 "$pid" 2> /dev/null
wait "$pid" 2> /dev/null
"$bin" sweep "$work/slow.json" --out "$work/killed.jsonl" --resume --quiet
check "resume after kill -9 runs" $?
"$bin" sweep "$work/slow.json" --out "$work/unkilled.jsonl" --threads 2 --quiet
same_cells "$work/unkilled.jsonl" "$work/killed.jsonl"; check "after kill -9 and --resume: the same cells" $?
[ "$(wc -l < "$work/killed.jsonl")" -eq "$(wc -l < "$work/unkilled.jsonl")" ]; check "no cell twice after resume" $?

# An existing results file is not overwritten without --resume or --force.
cp "$work/one.jsonl" "$work/keep.jsonl"
"$bin" sweep "$work/small.json" --out "$work/keep.jsonl" > /dev/null 2> "$work/keep.err"
[ $? -eq 2 ]; check "existing results file: exit 2" $?
grep -q "keep.jsonl" "$work/keep.err"; check "existing results file is named: $(cat "$work/keep.err")" $?
cmp -s "$work/one.jsonl" "$work/keep.jsonl"; check "existing results file unchanged" $?

# Bad input: exit 2, the place named, no results file.
expect_error() {  # expect_error NAME NEEDLE SWEEP_JSON [ARGS...]
  local name=$1 needle=$2 config=$3
  shift 3
  printf '%s' "$config" > "$work/$name.json"
  "$bin" sweep "$work/$name.json" --out "$work/$name.jsonl" "$@" > "$work/$name.out" 2> "$work/$name.err"
  local rc=$?
  [ "$rc" -eq 2 ]; check "$name: exit code $rc, expected 2" $?
  grep -qF -- "$needle" "$work/$name.err"; check "$name: stderr lacks '$needle': $(cat "$work/$name.err")" $?
  [ ! -e "$work/$name.jsonl" ]; check "$name: a results file was written" $?
}
good=$(cat "$work/small.json")
expect_error unknown_key "sweep.solverz: unknown key" "${good/\"solvers\"/\"solverz\"}"
expect_error bad_order "sweep.solvers[1].order[1]" "${good/\"order\": \[2, 3\]/\"order\": [2, 5]}"
expect_error bad_steps "sweep.steps[1]" "${good/\"steps\": \[4, 8, 16\]/\"steps\": [4, -8]}"
expect_error bad_metric "sweep.metrics[0].name: unknown metric 'fid'" "${good/\"seeds\"/\"metrics\": [\"fid\"], \"seeds\"}"
expect_error bad_reference "sweep.reference.ode.solver" "${good/\"pf_ode\", \"rtol\"/\"euler_maruyama\", \"rtol\"}"
expect_error bad_json "line 1, column" '{"problem": {"schedule": "vp_linear",}}'
expect_error bad_shard "--shard" "$good" --shard 2/2
expect_error bad_threads "--threads" "$good" --threads 0
"$bin" sweep "$work/absent.json" --out "$work/absent.jsonl" 2> "$work/absent.err"
[ $? -eq 2 ]; check "absent sweep file exits 2" $?
grep -qF "absent.json" "$work/absent.err"; check "absent sweep file is named" $?

# The embedded default sweep is shown by --print-config.
"$bin" sweep --print-config | grep -q '"euler_maruyama"'; check "embedded default sweep" $?

# report: a table with orders, a PNG, errors named.
"$bin" report "$work/one.jsonl" --plot "$work/plot.png" > "$work/report.out" 2>&1
check "report runs: $(cat "$work/report.out")" $?
grep -q "path_rms by steps" "$work/report.out"; check "report tabulates path_rms by default" $?
grep -q "dpm_solver(order=3)" "$work/report.out"; check "report has a row per configuration" $?
grep -q "order" "$work/report.out"; check "report prints fitted orders" $?
head -c 4 "$work/plot.png" | grep -q "PNG"; check "report --plot writes a PNG" $?
"$bin" report "$work/one.jsonl" --metric sliced_w2 | grep -q "sliced_w2 by steps"; check "report --metric" $?
"$bin" report "$work/one.jsonl" --metric fid > /dev/null 2> "$work/fid.err"
[ $? -eq 2 ]; check "report --metric unknown exits 2" $?
grep -q -- "--metric" "$work/fid.err"; check "report names --metric: $(cat "$work/fid.err")" $?
"$bin" report "$work/cut_absent.jsonl" > /dev/null 2>&1
[ $? -eq 2 ]; check "report of an absent file exits 2" $?
# Without gnuplot: the table still prints, the reason is given, no PNG.
PATH=/nonexistent "$bin" report "$work/one.jsonl" --plot "$work/noplot.png" > "$work/noplot.out" 2> "$work/noplot.err"
[ $? -eq 1 ]; check "report without gnuplot exits 1" $?
grep -q "path_rms by steps" "$work/noplot.out"; check "report without gnuplot still prints the table" $?
grep -q "gnuplot not found" "$work/noplot.err"; check "report without gnuplot says so: $(cat "$work/noplot.err")" $?
[ ! -e "$work/noplot.png" ]; check "report without gnuplot writes no PNG" $?

# merge refuses cells of another sweep.
sed 's/"batch": 48/"batch": 40/' "$work/small.json" > "$work/other.json"
"$bin" sweep "$work/other.json" --out "$work/other.jsonl" --quiet
"$bin" merge "$work/one.jsonl" "$work/other.jsonl" --out "$work/mixed.jsonl" > /dev/null 2> "$work/mixed.err"
[ $? -eq 2 ]; check "merge of two sweeps exits 2" $?
grep -q "other.jsonl" "$work/mixed.err"; check "merge names the file: $(cat "$work/mixed.err")" $?
[ ! -e "$work/mixed.jsonl" ]; check "merge of two sweeps writes nothing" $?

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
