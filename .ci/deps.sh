#!/usr/bin/env bash
# Installs what building, testing, the examples and the benchmarks need on a
# fresh Debian 12 machine. Skips apt when everything is present already.
set -euo pipefail
pkgs=(build-essential meson ninja-build pkg-config liburing-dev python3 curl
      libuv1-dev libboost-context-dev golang-go nginx-light wrk
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
