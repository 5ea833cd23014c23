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

# write_npy FILE ROWS COLS V1 V2 ...: a float64 C-order .npy, with the standard library only.
write_npy() {
  /usr/bin/python3 - "$@" <<'PY'
import struct, sys
path, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
values = [float(v) for v in sys.argv[4:]]
assert len(values) == rows * cols
header = "{'descr': '<f8', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, cols)
header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
with open(path, "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
    f.write(struct.pack("<%dd" % len(values), *values))
PY
}
