#!/usr/bin/env bash
# Installs every Debian 12 package the build and the test suite need.
# Idempotent: packages already present are skipped by apt-get; safe to run often.
set -euo pipefail

PKGS=(
    # build
    build-essential cmake pkg-config ninja-build valgrind
    # engine: BLAS for the CPU backend's large GEMMs
    libopenblas-dev
    # server: HTTP, JSON, event loop
    libmicrohttpd-dev libjansson-dev libuv1-dev
    # `infvsr submit` (the daemon's client): HTTP with TLS, redirects, Range, streaming
    libcurl4-openssl-dev
    # media: FFmpeg libraries and the ffmpeg/ffprobe tools used by tests
    libavformat-dev libavcodec-dev libavutil-dev libswscale-dev ffmpeg
    # tests: PyTorch reference (Debian's python3-torch), numpy, OpenCV, curl
    python3 python3-numpy python3-torch python3-opencv curl
    # tests: YAML (OpenAPI and Kubernetes manifests), systemd-analyze for the unit file
    python3-yaml systemd
    # tests: the web page in headless Chromium (tests/browser, with playwright-core from npm)
    chromium
    # tests/deploy/test_container.py: its own dockerd (docker.io), compose v1, a
    # debootstrap'ed debian:12-slim base, a bridge made with ip (iproute2)
    docker.io docker-compose debootstrap iproute2
)
# Node.js + npm run the npm-based test tools (tus-js-client, OpenAPI lint, schema
# validators). Debian's packages are used only where no node is installed already (the
# machine's own Node.js, if any, is newer and is left alone).
if ! command -v node > /dev/null 2>&1 || ! command -v npm > /dev/null 2>&1; then
    PKGS+=(nodejs npm)
fi

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-deps: all ${#PKGS[@]} packages present"
    exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
