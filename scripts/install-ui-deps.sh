#!/usr/bin/env bash
# What the browser tests of the web UI need (scripts/install-deps.sh --test runs it):
# Debian's chromium and a font, Node.js with npm, and playwright-core at the version pinned in
# tests/ui/package-lock.json, installed into tests/ui/node_modules. Idempotent and quiet
# when everything is there. No browser is downloaded: the tests drive /usr/bin/chromium.
set -euo pipefail
ui="$(cd "$(dirname "$0")/.." && pwd)/tests/ui"

missing=()
# a font, or a fresh system's chromium draws the screenshots without text
for p in chromium fonts-dejavu-core; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Debian's Node.js unless a node is there already (a node from elsewhere brings its own npm)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

want=$(sed -n 's/.*"playwright-core": *"\([0-9.]*\)".*/\1/p' "$ui/package.json" | head -1)
have=""
if [ -f "$ui/node_modules/playwright-core/package.json" ]; then
  have=$(sed -n 's/^ *"version": *"\([0-9.]*\)".*/\1/p' "$ui/node_modules/playwright-core/package.json" | head -1)
fi
if [ "$have" != "$want" ]; then
  echo "installing: playwright-core@$want (npm) into $ui" >&2
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$ui" --no-audit --no-fund --loglevel=error >/dev/null
fi
