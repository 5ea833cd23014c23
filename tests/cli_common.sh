# Shared by the command-line test scripts: `source "$(dirname "$0")/cli_common.sh" "$1"`.
# Sets $bin (the diffsde executable) and $work (a scratch folder removed on exit), and
# defines check NAME STATUS, which counts a pass when STATUS is 0. Capture the status
# first (`cmd; rc=$?; check "..." $rc`): a "$(...)" in NAME would reset $? before it is read.
set -u
bin="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
passes=0

check() {  # check NAME CONDITION-RESULT
  if [ "$2" -eq 0 ]; then passes=$((passes + 1)); else echo "FAIL: $1"; failures=$((failures + 1)); fi
}
