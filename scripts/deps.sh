#!/usr/bin/env bash
# Installs the Debian packages parley needs to build and test. Idempotent and quick when
# everything is present: it asks dpkg first and only calls apt-get for what is missing.
# Usage: scripts/deps.sh [--bench]   (--bench adds the peers the benchmark runs against)
set -eu
pkgs=(
  build-essential cmake pkg-config git python3 curl ca-certificates procps
  libuv1-dev libhttp-parser-dev libwslay-dev libssl-dev openssl
  libsqlite3-dev sqlite3 libsodium-dev libjansson-dev
  libprotobuf-c-dev protobuf-c-compiler libcmocka-dev
  clang libclang-rt-14-dev
)
if [ "${1:-}" = "--bench" ]; then pkgs+=(mosquitto util-linux); fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
