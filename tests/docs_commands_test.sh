#!/usr/bin/env bash
# Every diffsde command line shown in README.md and docs/*.md names a subcommand the program
# has, and every --flag on it is one that subcommand takes (its --help lists it): the
# documented command lines cannot drift from the program. Usage: docs_commands_test.sh
# DIFFSDE SOURCE_DIR.
source "$(dirname "$0")/cli_common.sh" "$1"
src="$2"

# Lines of fenced code blocks (```sh, ``` or ```bash) that run diffsde, with any
# leading path or mpirun prefix; one per line: FILE<TAB>LINE.
extract() {
  awk 'FNR == 1 { fence = 0; shell = 0 }
       /^[ \t]*```/ { if (fence) { fence = 0; shell = 0 } else { fence = 1; shell = ($0 ~ /^[ \t]*```(sh|bash|console)?[ \t]*$/) } ; next }
       fence && shell && /^[ \t]*(\$ )?(mpirun [^#]* )?([.A-Za-z0-9_\/-]*\/)?diffsde [a-z]/ { print FILENAME "\t" $0 }' "$src/README.md" "$src"/docs/*.md
}

checked=0
declare -A helps rcs  # each subcommand's --help, asked once
while IFS=$'\t' read -r file line; do
  # The words after the program: the subcommand, then options.
  rest=$(printf '%s\n' "$line" | sed -E 's/.*(^|[ \/])diffsde //')
  sub=$(printf '%s\n' "$rest" | awk '{print $1}')
  case "$sub" in
    -*) continue ;;  # diffsde --version and the like: checked below
  esac
  if [ -z "${rcs[$sub]+set}" ]; then
    helps[$sub]=$("$bin" "$sub" --help 2>&1)
    rcs[$sub]=$?
  fi
  help=${helps[$sub]}
  rc=${rcs[$sub]}
  check "$file: 'diffsde $sub' is a subcommand ($line)" $rc
  [ $rc -eq 0 ] || continue
  # Options as written (the part before a comment).
  for flag in $(printf '%s\n' "${rest%%#*}" | grep -oE '(^|[ \[])--[a-z][a-z0-9-]*' | tr -d ' ['); do
    printf '%s\n' "$help" | grep -qE -- "(^|[ ,])$flag( |$|,)"
    check "$file: 'diffsde $sub' takes $flag ($line)" $?
  done
  checked=$((checked + 1))
done < <(extract)

# Enough lines were found for the check to mean something, and --version works.
[ "$checked" -ge 15 ]; check "found the documented command lines ($checked)" $?
"$bin" --version > /dev/null 2>&1; check "diffsde --version" $?

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
