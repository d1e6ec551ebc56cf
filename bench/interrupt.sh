#!/bin/sh
# How long `hermetic build` takes to end after SIGINT in its finish phase
# (unpack, relocate, prune, scan, archive of the bundle: synchronous work
# that used to ignore signals until it was done), on a bundle holding
# 768 MiB of incompressible data; goal: <= 2 s, with nothing left behind.
# With MAIN=1 main's binary (built from a detached worktree) is measured
# too and printed beside. Needs the engine and the local glibc 2.31
# builder (scripts/setup).
# Usage: bench/interrupt.sh [WORKDIR]
set -eu
cd "$(dirname "$0")/.."
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
export CARGO_TARGET_DIR
WORK=$(mktemp -d "${1:-${TMPDIR:-/tmp}}/hermetic-interrupt.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

cargo build --release --quiet --bin hermetic >&2
mkdir -p "$WORK/this"
cp "$CARGO_TARGET_DIR/release/hermetic" "$WORK/this/"
if [ "${MAIN:-0}" = 1 ]; then
  git worktree add --quiet --detach "$WORK/main-src" main >&2
  trap 'git worktree remove --force "$WORK/main-src"; rm -rf "$WORK"' EXIT
  (cd "$WORK/main-src" && cargo build --release --quiet --bin hermetic >&2)
  mkdir -p "$WORK/main"
  cp "$CARGO_TARGET_DIR/release/hermetic" "$WORK/main/"
fi

mkdir -p "$WORK/app"
cat >"$WORK/app/hermetic.toml" <<'TOML'
[app]
name = "bigdata"
version = "1.0"
glibc = "2.31"
python = "3.11"
source_date_epoch = 1700000000

[build]
commands = ["head -c 805306368 /dev/urandom > data.bin"]
collect = [{ from = "data.bin", to = "share/data.bin" }]

[smoke]
command = ["python/runtime/bin/python3.11", "-c", "print('ok')"]
expect = "ok"
TOML

# Seconds from SIGINT (1.5 s into the finish phase) to exit, then the exit
# status and what was left in --out and $TMPDIR.
measure() { # $1: the hermetic binary
  rm -rf "$WORK/dist" "$WORK/tmp" "$WORK/err.log"
  mkdir -p "$WORK/tmp"
  TMPDIR="$WORK/tmp" "$1" -v build -r "$WORK/app/hermetic.toml" --out "$WORK/dist" \
    --rebuild 2>"$WORK/err.log" &
  pid=$!
  until grep -q "relocating, pruning, archiving" "$WORK/err.log"; do
    kill -0 "$pid" 2>/dev/null || { tail -5 "$WORK/err.log" >&2; echo "failed"; return; }
    sleep 0.1
  done
  sleep 1.5
  kill -INT "$pid"
  t0=$(date +%s.%N)
  rc=0
  wait "$pid" || rc=$?
  t1=$(date +%s.%N)
  left=$(( $(ls -A "$WORK/dist" 2>/dev/null | wc -l) + $(ls -A "$WORK/tmp" | wc -l) ))
  printf '%.2f (exit %s, %s left)\n' "$(echo "$t1 - $t0" | bc)" "$rc" "$left"
}

this=$(measure "$WORK/this/hermetic")
main=-
[ "${MAIN:-0}" = 1 ] && main=$(measure "$WORK/main/hermetic")
echo "seconds from SIGINT to exit, finish phase of a 768 MiB bundle ($(nproc) cores)"
printf '%-12s %-28s %-28s %s\n' "" "this" "main" "goal"
printf '%-12s %-28s %-28s %s\n' "build" "$this" "$main" "<= 2 (exit 130, 0 left)"
