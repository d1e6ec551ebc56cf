#!/bin/sh
# Peak resident memory (GNU time's "Maximum resident set size") of
# `hermetic audit` on a ~1 MB .tar.gz that inflates to one 1 GiB file
# starting with the ELF magic (a gzip bomb), and of the build-path scan
# (examples/scan.rs, the code the build runs) over a tree holding a 4 GiB
# sparse file with a build path at its end; goal: <= 256 MiB each.
# With MAIN=1 the same is measured for main's binaries (built from a
# detached worktree) and printed beside.
# Usage: bench/memory.sh [WORKDIR]   (needs ~1 GiB free there for the bomb's
# source; the sparse files take no space)
set -eu
cd "$(dirname "$0")/.."
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
export CARGO_TARGET_DIR
TIME=/usr/bin/time
if [ ! -x "$TIME" ]; then
  echo "GNU time is missing: apt-get install time" >&2
  exit 2
fi
WORK=$(mktemp -d "${1:-${TMPDIR:-/tmp}}/hermetic-memory.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

build() { # $1: source dir, $2: where to copy the binaries
  (cd "$1" && cargo build --release --quiet --bin hermetic --example scan >&2)
  mkdir -p "$2"
  cp "$CARGO_TARGET_DIR/release/hermetic" "$CARGO_TARGET_DIR/release/examples/scan" "$2/"
}
build . "$WORK/this"
if [ "${MAIN:-0}" = 1 ]; then
  git worktree add --quiet --detach "$WORK/main-src" main >&2
  trap 'git worktree remove --force "$WORK/main-src"; rm -rf "$WORK"' EXIT
  # main may predate the example; its scan API is the same.
  cp examples/scan.rs "$WORK/main-src/examples/scan.rs"
  build "$WORK/main-src" "$WORK/main"
fi

# The bomb: one sparse 1 GiB file, ELF magic then zeros, tarred and gzipped.
mkdir -p "$WORK/bomb/demo/lib"
printf '\177ELF' >"$WORK/bomb/demo/lib/libbomb.so.1"
truncate -s 1G "$WORK/bomb/demo/lib/libbomb.so.1"
tar -C "$WORK/bomb" -cf - demo | gzip -9 >"$WORK/bomb.tar.gz"
bomb_size=$(stat -c %s "$WORK/bomb.tar.gz")

# The tree: a 4 GiB sparse file with a build path at its very end.
mkdir -p "$WORK/tree/app"
truncate -s 4G "$WORK/tree/app/big.bin"
printf '/hermetic/src' >>"$WORK/tree/app/big.bin"

# Peak RSS in MiB of a command (its output discarded, its exit status ignored).
rss() {
  "$TIME" -v "$@" >/dev/null 2>"$WORK/time.txt" || true
  kib=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time.txt")
  echo $((kib / 1024))
}

audit_this=$(rss "$WORK/this/hermetic" audit "$WORK/bomb.tar.gz" --glibc 2.31)
scan_this=$(rss "$WORK/this/scan" "$WORK/tree")
audit_main=-
scan_main=-
if [ "${MAIN:-0}" = 1 ]; then
  audit_main=$(rss "$WORK/main/hermetic" audit "$WORK/bomb.tar.gz" --glibc 2.31)
  scan_main=$(rss "$WORK/main/scan" "$WORK/tree")
fi

echo "peak RSS, MiB ($(nproc) cores; bomb: $bomb_size bytes -> 1 GiB; tree: one 4 GiB sparse file)"
printf '%-40s %8s %8s %8s\n' "" "this" "main" "goal"
printf '%-40s %8s %8s %8s\n' "hermetic audit <gzip bomb>" "$audit_this" "$audit_main" "<= 256"
printf '%-40s %8s %8s %8s\n' "build-path scan <4 GiB sparse file>" "$scan_this" "$scan_main" "<= 256"
