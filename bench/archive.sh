#!/bin/sh
# Archive + hash throughput of hermetic's writer next to GNU tar | sha256sum,
# over a tree of about 1 GiB in ~20,000 files, plus hermetic's peak RSS.
#
#   bench/archive.sh            (tree cached in $BENCH_TREE, default /tmp/hermetic-bench-tree)
#
# The tree is made once: 20,000 files whose sizes follow a rough power law
# (most a few KiB, a few of several MiB), half of them random bytes
# (incompressible), half repetitive text (compressible).
set -eu

TREE=${BENCH_TREE:-/tmp/hermetic-bench-tree}
OUT=${BENCH_OUT:-/tmp/hermetic-bench-out}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-helpers}
cd "$(dirname "$0")/.."

if [ ! -f "$TREE/.complete" ]; then
    echo "creating $TREE (once)..." >&2
    rm -rf "$TREE"
    python3 - "$TREE" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(42)
target, n = 1 << 30, 20000
# Pareto-ish sizes, rescaled so they sum to ~1 GiB.
raw = [rng.paretovariate(1.2) for _ in range(n)]
scale = target / sum(raw)
text = (b"hermetic bundles are reproducible; " * 64)
for i, r in enumerate(raw):
    size = max(1, int(r * scale))
    d = os.path.join(root, f"pkg{i % 97:02d}", f"mod{i % 13}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
        if i % 2:
            left = size
            while left:
                k = min(left, 1 << 20)
                f.write(os.urandom(k))
                left -= k
        else:
            f.write((text * (size // len(text) + 1))[:size])
open(os.path.join(root, ".complete"), "w").close()
PY
fi
BYTES=$(du -sb --exclude=.complete "$TREE" | cut -f1)
FILES=$(find "$TREE" -type f ! -name .complete | wc -l)

command -v /usr/bin/time >/dev/null || { echo "install the Debian package 'time' (/usr/bin/time)" >&2; exit 2; }
command -v zstd >/dev/null || { echo "install the Debian package 'zstd' (the reference for the .tar.zst row)" >&2; exit 2; }
cargo build --release --example archive >&2
BIN="$CARGO_TARGET_DIR/release/examples/archive"
mkdir -p "$OUT"
rm -f "$TREE/.complete.keep"; mv "$TREE/.complete" "$OUT/.complete.keep"  # keep the marker out of the archives
trap 'mv "$OUT/.complete.keep" "$TREE/.complete"' EXIT

# Warm the page cache so every run reads from memory.
tar -cf - -C "$TREE" . | cat >/dev/null

now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }
mibs() { python3 -c "import sys; print(f'{$BYTES / (1 << 20) / float(sys.argv[1]):.0f}')" "$1"; }

run_hermetic() { # $1 = output file; prints "seconds peak_kib"
    /usr/bin/time -v -o "$OUT/time.txt" "$BIN" "$TREE" "$1" >"$OUT/summary.txt"
    sec=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, a, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + a[i]; print s}' "$OUT/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$OUT/time.txt")
    echo "$sec $rss"
}
run_shell() { # $1 = shell pipeline; prints seconds
    t0=$(now); sh -c "$1" >/dev/null; t1=$(now); secs "$t0" "$t1"
}

set -- $(run_hermetic "$OUT/h.tar"); H_TAR=$1; H_TAR_RSS=$2
set -- $(run_hermetic "$OUT/h.tar.gz"); H_GZ=$1; H_GZ_RSS=$2
set -- $(run_hermetic "$OUT/h.tar.zst"); H_ZST=$1; H_ZST_RSS=$2
T_TAR=$(run_shell "tar -cf - -C '$TREE' . | sha256sum")
T_GZ=$(run_shell "tar -czf - -C '$TREE' . | sha256sum")
T_ZST=$(run_shell "tar -cf - -C '$TREE' . | zstd -q -10 -T1 | sha256sum")

printf '\ntree: %s files, %s MiB (%s)\n\n' "$FILES" "$((BYTES >> 20))" "$TREE"
printf '%-34s %9s %9s %12s\n' "" seconds "MiB/s" "peak RSS"
printf '%-34s %9s %9s %9s MiB\n' "hermetic tar + sha256" "$H_TAR" "$(mibs "$H_TAR")" "$((H_TAR_RSS / 1024))"
printf '%-34s %9s %9s %12s\n' "tar -c | sha256sum" "$T_TAR" "$(mibs "$T_TAR")" "-"
printf '%-34s %9s %9s %9s MiB\n' "hermetic tar.gz + 2x sha256" "$H_GZ" "$(mibs "$H_GZ")" "$((H_GZ_RSS / 1024))"
printf '%-34s %9s %9s %12s\n' "tar -cz | sha256sum" "$T_GZ" "$(mibs "$T_GZ")" "-"
printf '%-34s %9s %9s %9s MiB\n' "hermetic tar.zst (-10) + 2x sha256" "$H_ZST" "$(mibs "$H_ZST")" "$((H_ZST_RSS / 1024))"
printf '%-34s %9s %9s %12s\n' "tar -c | zstd -10 -T1 | sha256sum" "$T_ZST" "$(mibs "$T_ZST")" "-"
rm -f "$OUT/h.tar" "$OUT/h.tar.gz" "$OUT/h.tar.zst"
