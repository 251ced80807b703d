#!/usr/bin/env bash
# Installs what SupaManager Backup needs from Debian 12's packages.
#   scripts/install-deps.sh          build and run
#   scripts/install-deps.sh --test   also everything the test suite starts
# Idempotent and quiet when everything is there already.
set -euo pipefail

build_pkgs=(build-essential meson ninja-build pkg-config
  libssl-dev libzstd-dev libarchive-dev libjansson-dev libsqlite3-dev
  libmicrohttpd-dev libcurl4-openssl-dev libxml2-dev libpq-dev libcmocka-dev libjwt-dev python3)
run_pkgs=(postgresql-15 postgresql-client-15 postgresql-contrib attr zstd gpg ca-certificates)
test_pkgs=(python3 procps psmisc util-linux curl python3-aiosmtpd
  ceph-mon ceph-osd radosgw awscli s3cmd)

want=("${build_pkgs[@]}" "${run_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then
  want+=("${test_pkgs[@]}")
  bash "$(dirname "$0")/install-ui-deps.sh" # chromium, Node.js, playwright-core (web UI tests)
fi

# s3rver (npm, pinned) for the S3 tests, in the source tree (tests/s3/node_modules)
install_s3rver() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/tests/s3"
  [ -f "$dir/node_modules/s3rver/bin/s3rver.js" ] && return 0
  echo "installing: s3rver@3.7.1 (npm) into $dir" >&2
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error s3rver@3.7.1 >/dev/null
}

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# node and npm for s3rver: Debian's packages unless a node with its npm is there already
if [ "${1:-}" = "--test" ] && ! { command -v node && command -v npm; } >/dev/null; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -eq 0 ]; then
  if [ "${1:-}" = "--test" ]; then install_s3rver; fi
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO="sudo"
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if [ "${1:-}" = "--test" ]; then install_s3rver; fi
