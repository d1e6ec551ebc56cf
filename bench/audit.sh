#!/bin/sh
# Audit time over a tree with thousands of ELF files, next to `readelf -dV`
# over the same files. Usage: bench/audit.sh [TREE] [GLIBC] [RUNS]
# Default tree: /usr/lib/x86_64-linux-gnu (the host's shared libraries).
set -eu
cd "$(dirname "$0")/.."
TREE=${1:-/usr/lib/x86_64-linux-gnu}
GLIBC=${2:-2.36}
RUNS=${3:-3}
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
export CARGO_TARGET_DIR

cargo build --release --quiet
HERMETIC=$CARGO_TARGET_DIR/release/hermetic
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

now() { date +%s.%N; }
# Best of $RUNS wall-clock seconds of a command (its output discarded).
best() {
  best=""
  i=0
  while [ "$i" -lt "$RUNS" ]; do
    t0=$(now)
    "$@" >/dev/null 2>&1 || true
    t1=$(now)
    t=$(echo "$t1 - $t0" | bc)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
    i=$((i + 1))
  done
  printf '%.2f' "$best"
}

files=$(find "$TREE" -type f | wc -l)
# Warm the page cache so both tools read from memory.
find "$TREE" -type f -print0 | xargs -0 cat >/dev/null 2>&1 || true

set +e
"$HERMETIC" audit "$TREE" --glibc "$GLIBC" --json >"$OUT"
rc=$?
set -e
if [ "$rc" -eq 2 ]; then
  echo "audit failed (exit 2); see above" >&2
  exit 2
fi
elves=$(sed -n 's/^  "elf_files": \([0-9]*\),/\1/p' "$OUT")
findings=$(grep -c '"kind":' "$OUT" || true)

t_audit=$(best "$HERMETIC" audit "$TREE" --glibc "$GLIBC" --json)
t_readelf=$(best sh -c 'find "$1" -type f -print0 | xargs -0 readelf -dV' _ "$TREE")
t_readelf_p=$(best sh -c 'find "$1" -type f -print0 | xargs -0 -P "$(nproc)" -n 200 readelf -dV' _ "$TREE")

echo "tree: $TREE  files: $files  ELF files: $elves  findings: $findings  (glibc $GLIBC, best of $RUNS, $(nproc) cores)"
printf '%-44s %8s s\n' "hermetic audit (parallel, full audit)" "$t_audit"
printf '%-44s %8s s\n' "readelf -dV (xargs, 1 process at a time)" "$t_readelf"
printf '%-44s %8s s\n' "readelf -dV (xargs -P $(nproc))" "$t_readelf_p"
