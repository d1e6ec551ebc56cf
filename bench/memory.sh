#!/bin/sh
# Peak resident memory (GNU time's "Maximum resident set size") of
# `hermetic audit` on a ~1 MB .tar.gz that inflates to one 1 GiB file
# starting with the ELF magic (a gzip bomb), and of the build-path scan
# (examples/scan.rs, the code the build runs) over a tree holding a 4 GiB
# sparse file with a build path at its end, and of a whole `hermetic build`
# whose step prints 1 GiB and leaves a 4 GiB sparse file in the bundle;
# goal: <= 256 MiB each.
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

# The build: a recipe whose build step prints 1 GiB (short lines, as a
# chatty compiler would) and leaves a 4 GiB sparse file in the bundle,
# through the whole pipeline (step output, copy out, unpack, relocate,
# scan, audit, SBOM, archive, smoke). Needs the engine and the local
# glibc 2.31 builder (scripts/setup); skipped ("-") without them.
mkdir -p "$WORK/big"
cat >"$WORK/big/hermetic.toml" <<'TOML'
[app]
name = "bigbuild"
version = "1.0"
glibc = "2.31"
python = "3.11"
source_date_epoch = 1700000000

[build]
commands = [
  "yes 'a line of build output, as a chatty compiler prints them' | head -c 1073741824",
  "truncate -s 4G big.bin",
]
collect = [{ from = "big.bin", to = "share/big.bin" }]

[smoke]
command = ["python/runtime/bin/python3.11", "-c", "print('ok')"]
expect = "ok"
TOML
build_rss() { # $1: the hermetic binary
  rm -rf "$WORK/big/dist"
  start=$(date +%s)
  status=0
  "$TIME" -v "$1" build -r "$WORK/big/hermetic.toml" --out "$WORK/big/dist" --rebuild \
    >/dev/null 2>"$WORK/build-time.txt" || status=$?
  echo $(( $(date +%s) - start )) >"$WORK/build-secs"
  if [ "$status" != 0 ]; then
    tail -5 "$WORK/build-time.txt" >&2
    echo "failed"
    return
  fi
  kib=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/build-time.txt")
  echo $((kib / 1024))
}
build_this=-
build_main=-
if "$WORK/this/hermetic" images list 2>/dev/null | grep -Eq '^builder +2\.31 +local .* yes '; then
  build_this=$(build_rss "$WORK/this/hermetic")
  this_secs=$(cat "$WORK/build-secs")
  if [ "${MAIN:-0}" = 1 ]; then
    build_main=$(build_rss "$WORK/main/hermetic")
  fi
else
  echo "no engine or no local glibc 2.31 builder: the build is not measured" >&2
fi

echo "peak RSS, MiB ($(nproc) cores; bomb: $bomb_size bytes -> 1 GiB; tree: one 4 GiB sparse file)"
printf '%-44s %8s %8s %8s\n' "" "this" "main" "goal"
printf '%-44s %8s %8s %8s\n' "hermetic audit <gzip bomb>" "$audit_this" "$audit_main" "<= 256"
printf '%-44s %8s %8s %8s\n' "build-path scan <4 GiB sparse file>" "$scan_this" "$scan_main" "<= 256"
printf '%-44s %8s %8s %8s\n' "hermetic build <1 GiB output, 4 GiB file>" "$build_this" "$build_main" "<= 256"
[ "$build_this" = - ] || echo "(the build took ${this_secs:-?} s here)"
