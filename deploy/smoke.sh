#!/usr/bin/env bash
# Build the serving image and try it for real, with no registry: health, a photo (same size back,
# in colour), garbage (a JSON 4xx), an oversized body (413), then SIGTERM. Prints its figures and
# removes what it made (the Debian base image is kept, as a cache for the next run).
#
#   bash deploy/smoke.sh                       # podman or docker, whichever is here
#   BASE_IMAGE=python:3.11-slim bash deploy/smoke.sh   # a base from a registry instead of debootstrap
#   TARGET=torch TORCH_INDEX=https://pypi.org/simple bash deploy/smoke.sh   # the torch image
#
# Exits non-zero, saying why, on any failure, including a machine that cannot run containers.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "smoke: FAILED: $*" >&2; exit 1; }
say() { echo "smoke: $*" >&2; }

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3 )}
TARGET=${TARGET:-onnx}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=${BASE_IMAGE:-localhost/colorful-world-base:bookworm}
TAG=localhost/colorful-world-smoke:$TARGET-$$
PORT_INSIDE=8080  # not the default 8000: shows that the server and its health check follow $PORT

if command -v podman >/dev/null; then
    ENGINE=podman
    # crun cannot set resource limits on some VMs: runc, and no default ulimits to set.
    conf=$(mktemp)
    printf '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n' > "$conf"
    export CONTAINERS_CONF=$conf
    # docker format keeps HEALTHCHECK; no intermediate images left behind
    BUILD=(podman build --format docker --layers=false --ignorefile deploy/Dockerfile.dockerignore)
elif command -v docker >/dev/null; then
    ENGINE=docker
    BUILD=(docker build)  # BuildKit reads deploy/Dockerfile.dockerignore itself
else
    fail "neither podman nor docker is installed (Debian: apt-get install podman runc)"
fi
$ENGINE info >/dev/null 2>&1 || fail "$ENGINE cannot run here: $($ENGINE info 2>&1 | tail -1)"

cid=""
cleanup() {
    [ -n "$cid" ] && $ENGINE rm -f "$cid" >/dev/null 2>&1 || true
    $ENGINE rmi -f "$TAG" >/dev/null 2>&1 || true
    [ -n "${conf:-}" ] && rm -f "$conf"
    [ -n "${work:-}" ] && rm -rf "$work"
}
trap cleanup EXIT
work=$(mktemp -d)

if [ -z "${BASE_IMAGE:-}" ] && ! $ENGINE image inspect "$BASE" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || fail "no base image and no debootstrap to make one (apt-get install debootstrap)"
    say "making the base image $BASE with debootstrap ($MIRROR)"
    start=$(date +%s)
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$work/rootfs" "$MIRROR" \
        >"$work/debootstrap.log" 2>&1 || { tail -5 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*  # 70 MB of apt's own
    # The base trusts what this machine trusts (a proxy's own authority included), and so does
    # pip inside it, which would otherwise read only its own bundle.
    cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$work/rootfs/etc/pip.conf"
    tar -C "$work/rootfs" -c . | $ENGINE import - "$BASE" >/dev/null || fail "$ENGINE import of the base failed"
    rm -rf "$work/rootfs"
    say "base image made in $(( $(date +%s) - start )) s"
fi

say "building $TARGET on $BASE with $ENGINE"
start=$(date +%s)
"${BUILD[@]}" -f deploy/Dockerfile --target "$TARGET" --build-arg "BASE=$BASE" \
    ${TORCH_INDEX:+--build-arg "TORCH_INDEX=$TORCH_INDEX"} -t "$TAG" . >"$work/build.log" 2>&1 \
    || { tail -20 "$work/build.log" >&2; fail "the image did not build"; }
build_s=$(( $(date +%s) - start ))
size_mb=$(( $($ENGINE image inspect "$TAG" --format '{{.Size}}') / 1000000 ))
health=$($ENGINE image inspect "$TAG" --format '{{if .Config.Healthcheck}}{{json .Config.Healthcheck.Test}}{{end}}')
[ -n "$health" ] || fail "the image has no HEALTHCHECK"

host_port=$("$PYTHON" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
base_url="http://127.0.0.1:$host_port"
start_ns=$(date +%s%N)
cid=$($ENGINE run -d -e "PORT=$PORT_INSIDE" -p "127.0.0.1:$host_port:$PORT_INSIDE" "$TAG" 2>"$work/run.log") \
    || fail "the container did not start"
for _ in $(seq 600); do
    curl -fsS "$base_url/healthz" >/dev/null 2>&1 && break
    [ "$($ENGINE inspect "$cid" --format '{{.State.Running}}')" = true ] \
        || { $ENGINE logs "$cid" >&2; fail "the container exited before it was healthy"; }
    sleep 0.05
done
healthy_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
curl -fsS "$base_url/healthz" >/dev/null || { $ENGINE logs "$cid" >&2; fail "no answer on /healthz after 30 s"; }
if [ "$ENGINE" = podman ]; then  # docker runs it on its own schedule; podman on demand
    podman healthcheck run "$cid" >/dev/null 2>&1 || fail "the image's health check fails on \$PORT=$PORT_INSIDE"
fi
user=$($ENGINE exec "$cid" id -un)
[ "$user" != root ] || fail "the server runs as root"

"$PYTHON" - "$work/photo.jpg" <<'EOF'
import sys
import numpy as np
from PIL import Image
ramp = np.linspace(30, 220, 512)
Image.fromarray(np.add.outer(ramp, ramp[::-1]).clip(0, 255).astype(np.uint8) // 2 + 40, "L").save(sys.argv[1])
EOF
request_s=$(curl -sS -o "$work/colour.png" -w '%{http_code} %{time_total}' --data-binary "@$work/photo.jpg" "$base_url/colorize")
[ "${request_s%% *}" = 200 ] || { cat "$work/colour.png" >&2; fail "a photo was answered ${request_s%% *}"; }
"$PYTHON" - "$work/colour.png" <<'EOF' || fail "the answer is not the photo in colour at its own size"
import sys
import numpy as np
from PIL import Image
image = Image.open(sys.argv[1])
assert image.size == (512, 512) and image.mode == "RGB", (image.size, image.mode)
pixels = np.asarray(image, dtype=int)
assert np.abs(pixels[..., 0] - pixels[..., 2]).mean() > 1, "grey"
EOF
# A colour hint reaches the ONNX model in the lean image: the spot it names turns its colour.
hinted=$(curl -sS -o "$work/hinted.png" -w '%{http_code}' -F "image=@$work/photo.jpg" \
    -F 'hints=[[256, 256, "#2040ff"]]' "$base_url/colorize")
[ "$hinted" = 200 ] || { cat "$work/hinted.png" >&2; fail "a photo with a hint was answered $hinted"; }
"$PYTHON" - "$work/colour.png" "$work/hinted.png" <<'EOF' || fail "the hint did not turn its spot blue"
import sys
import numpy as np
from PIL import Image
plain, hinted = (np.asarray(Image.open(path), dtype=int)[250:263, 250:263] for path in sys.argv[1:])
blueness = [(pixels[..., 2] - pixels[..., 0]).mean() for pixels in (plain, hinted)]
assert blueness[1] > blueness[0] + 10, blueness
EOF
garbage=$(curl -sS -o "$work/garbage.json" -w '%{http_code}' --data-binary "not a photo at all" "$base_url/colorize")
[ "$garbage" = 415 ] && grep -q '"error"' "$work/garbage.json" || fail "garbage was answered $garbage: $(cat "$work/garbage.json")"
head -c 10000001 /dev/zero > "$work/big.bin"
oversized=$(curl -sS -o "$work/big.json" -w '%{http_code}' -H 'Content-Type: application/octet-stream' \
    --data-binary "@$work/big.bin" "$base_url/colorize" || true)
[ "$oversized" = 413 ] && grep -q '"error"' "$work/big.json" || fail "an oversized body was answered $oversized"
# Peak memory of the container's cgroup (v1 or v2); where neither is readable, its memory now.
cgroup=$($ENGINE inspect "$cid" --format '{{.State.CgroupPath}}' 2>/dev/null || true)
memory="$($ENGINE stats --no-stream --format '{{.MemUsage}}' "$cid" 2>/dev/null | cut -d/ -f1 | tr -d ' ') now"
for file in "/sys/fs/cgroup/memory$cgroup/memory.max_usage_in_bytes" "/sys/fs/cgroup$cgroup/memory.peak"; do
    if [ -n "$cgroup" ] && [ -r "$file" ]; then memory="$(( $(cat "$file") / 1000000 )) MB peak"; break; fi
done

$ENGINE stop -t 20 "$cid" >/dev/null || fail "the container did not stop"
code=$($ENGINE inspect "$cid" --format '{{.State.ExitCode}}')
[ "$code" = 0 ] || { $ENGINE logs "$cid" >&2; fail "the server exited $code on SIGTERM"; }

echo "smoke: passed: $ENGINE, target $TARGET on $BASE"
printf 'smoke: image %s MB, built in %s s; start to healthy %s ms; a 512x512 photo %s s; memory %s; runs as %s\n' \
    "$size_mb" "$build_s" "$healthy_ms" "${request_s#* }" "$memory" "$user"
