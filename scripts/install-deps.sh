#!/usr/bin/env bash
# Installs what SupaManager Backup needs from Debian 12's packages.
#   scripts/install-deps.sh          build and run
#   scripts/install-deps.sh --test   also everything the test suite starts
# Idempotent and quiet when everything is there already.
set -euo pipefail

build_pkgs=(build-essential meson ninja-build pkg-config
  libssl-dev libzstd-dev libarchive-dev libjansson-dev libsqlite3-dev
  libmicrohttpd-dev libcurl4-openssl-dev libpq-dev libcmocka-dev libjwt-dev python3)
run_pkgs=(postgresql-15 postgresql-client-15 postgresql-contrib attr zstd gpg ca-certificates)
test_pkgs=(python3 procps psmisc util-linux curl python3-aiosmtpd)

want=("${build_pkgs[@]}" "${run_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then
  want+=("${test_pkgs[@]}")
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO="sudo"
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
