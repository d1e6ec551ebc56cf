#!/usr/bin/env bash
# Benchmark for `hermetic build` (issue 3), on the shipped qr-cli recipe:
#
#   1. cold build with hermetic: empty download and output caches (the
#      builder and base images are reused: they are made once per machine);
#   2. the same work done by hand in one `docker run` of the same builder
#      image: pip install of the hashed requirements into a copy of the
#      runtime, then copying the result out (no repair, no relocation, no
#      smoke test, no archive: the floor a hand-rolled script starts from);
#   3. an unchanged rebuild with hermetic (outputs reused from the cache).
#
# Usage: bench/build.sh [recipe-dir]   (default recipes/qr-cli)
# Needs: a running Docker engine, `scripts/setup` done (images present).
set -euo pipefail
cd "$(dirname "$0")/.."

recipe_dir=${1:-recipes/qr-cli}
recipe="$recipe_dir/hermetic.toml"

cargo build --release --locked --quiet
bin=$PWD/target/release/hermetic
home=${HERMETIC_HOME:-$HOME/.cache/hermetic}

work=$(mktemp -d /tmp/hermetic-bench-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
# A fresh home with only the image lock: no cached downloads or outputs.
mkdir -p "$work/home"
cp "$home/images.lock.json" "$work/home/"
[ -d "$home/rootfs" ] && ln -s "$home/rootfs" "$work/home/rootfs"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

echo "== hermetic build, cold ($recipe)"
t0=$(now)
HERMETIC_HOME=$work/home "$bin" build --recipe "$recipe" --glibc 2.31 --out "$work/dist" --rebuild --json > "$work/cold.json"
t1=$(now)
cold=$(elapsed "$t0" "$t1")

echo "== by hand: one docker run of the same builder (pip install + copy out)"
builder=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['builders']['2.31']['image_id'])" "$work/home/images.lock.json")
ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
mkdir -p "$work/manual"
t0=$(now)
docker run --rm -v "$PWD/$recipe_dir:/src:ro" -v "$ca:/ca.crt:ro" -v "$work/manual:/out" -e PIP_CERT=/ca.crt \
    "$builder" sh -c 'cp -a /opt/python/cp311-cp311 /tmp/rt &&
        /tmp/rt/bin/python3.11 -m pip install -q --no-compile --require-hashes -r /src/requirements.txt &&
        tar -C /tmp -czf /out/manual.tar.gz rt' >/dev/null
t1=$(now)
manual=$(elapsed "$t0" "$t1")

echo "== hermetic build, unchanged inputs"
t0=$(now)
HERMETIC_HOME=$work/home "$bin" build --recipe "$recipe" --glibc 2.31 --out "$work/dist" --json > "$work/warm.json"
t1=$(now)
warm=$(elapsed "$t0" "$t1")
cached=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['targets'][0]['cached'])" "$work/warm.json")
phases=$(python3 -c "import json,sys; print(', '.join(f'{n} {ms/1000:.1f}s' for n, ms in json.load(open(sys.argv[1]))['targets'][0]['phases_ms']))" "$work/cold.json")

printf '\n%-58s %10s\n' "what" "seconds"
printf '%-58s %10s\n' "hermetic build, cold (fetch+build+repair+smoke+archive)" "$cold"
printf '%-58s %10s\n' "by hand: docker run, pip install + copy out" "$manual"
printf '%-58s %10s   (cached: %s)\n' "hermetic build, unchanged inputs" "$warm" "$cached"
printf '\nhermetic phases (cold): %s\n' "$phases"
