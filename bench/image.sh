#!/bin/sh
# Benchmark `hermetic image` against `docker build` + `docker save` of the
# same bundle on the same base, and measure what a second push sends after
# only the app changed.
#
#   bench/image.sh <bundle dir> [suite]
#
# Runs the release `hermetic` binary (OCI=/path/to/hermetic overrides).
# Needs docker and Debian's docker-registry (started here, anonymous, on
# loopback).
set -eu
BUNDLE=$(realpath "$1")
SUITE=${2:-trixie}
NAME=$(basename "$BUNDLE")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -z "${OCI:-}" ]; then
    (cd "$ROOT" && cargo build --release -q)
    OCI=$TARGET/release/hermetic
fi
WORK=$(mktemp -d)
REG_PID=
cleanup() {
    [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null || true
    docker rmi -f "bench-$NAME:docker" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }

# Warm the rootfs cache (mmdebstrap) outside the timings.
"$OCI" image "$BUNDLE" --base "$SUITE" --oci-layout "$WORK/warm" >/dev/null
rm -rf "$WORK/warm"

# 1. hermetic image --oci-layout
t0=$(now)
"$OCI" image "$BUNDLE" --base "$SUITE" --oci-layout "$WORK/layout" --json > "$WORK/image.json"
t1=$(now)
H_TIME=$(secs "$t0" "$t1")
H_SIZE=$(du -sb "$WORK/layout" | cut -f1)
ROOTFS=$(ls "${HERMETIC_HOME:-$HOME/.cache/hermetic}"/rootfs/"$SUITE"-*.tar | head -1)

# 2. docker build (COPY) on the same base (the rootfs imported) + docker save
BASE_TAG="bench-base-$SUITE:latest"
docker import "$ROOTFS" "$BASE_TAG" >/dev/null
mkdir -p "$WORK/ctx"
cp -a "$BUNDLE" "$WORK/ctx/$NAME"
cp "$ROOT/Dockerfiles/runtime.Dockerfile" "$WORK/ctx/Dockerfile"
t0=$(now)
DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$BASE_TAG" --build-arg NAME="$NAME" \
    -t "bench-$NAME:docker" "$WORK/ctx" >/dev/null
docker save -o "$WORK/docker.tar" "bench-$NAME:docker"
t1=$(now)
D_TIME=$(secs "$t0" "$t1")
D_SIZE=$(stat -c %s "$WORK/docker.tar")
docker rmi -f "$BASE_TAG" >/dev/null 2>&1 || true

# 3. push, change only the app, push again: bytes of blobs sent
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/reg.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $WORK/reg}}
http: {addr: 127.0.0.1:$PORT}
YML
/usr/bin/docker-registry serve "$WORK/reg.yml" >/dev/null 2>&1 &
REG_PID=$!
sleep 1
"$OCI" push "$WORK/layout" "127.0.0.1:$PORT/bench/$NAME:1" --json > "$WORK/push1.json"
cp -a "$BUNDLE" "$WORK/changed"
LAUNCHER=$(python3 -c "import json,sys; print(json.load(open('$WORK/changed/share/hermetic/bundle.json'))['launchers'][0])")
printf '\n# changed\n' >> "$WORK/changed/$LAUNCHER"
"$OCI" image "$WORK/changed" --base "$SUITE" --oci-layout "$WORK/layout2" >/dev/null
"$OCI" push "$WORK/layout2" "127.0.0.1:$PORT/bench/$NAME:2" --json > "$WORK/push2.json"
P1=$(python3 -c "import json; print(json.load(open('$WORK/push1.json'))['bytes_uploaded'])")
P2=$(python3 -c "import json; print(json.load(open('$WORK/push2.json'))['bytes_uploaded'])")
LAYERS=$(python3 -c "
import json; r=json.load(open('$WORK/image.json'))
print(', '.join(f\"{l['role']} {l['size']}\" for l in r['layers']))")

printf '\nbundle %s on %s\n' "$NAME" "$SUITE"
printf '%-40s %12s %16s\n' "" "time (s)" "size (bytes)"
printf '%-40s %12.2f %16s\n' "hermetic image --oci-layout" "$H_TIME" "$H_SIZE"
printf '%-40s %12.2f %16s\n' "docker build (COPY) + docker save" "$D_TIME" "$D_SIZE"
printf 'hermetic layers (compressed bytes): %s\n' "$LAYERS"
printf '%-40s %29s\n' "first push, blob bytes sent" "$P1"
printf '%-40s %29s\n' "second push (app changed), blob bytes" "$P2"
