#!/usr/bin/env bash
# README command 1: install, build, and run the main job on embedded defaults:
# the service (`supamanager serve --demo`) with a demo project it creates itself
# (a throwaway PostgreSQL cluster with sample data and a storage tree); it
# prints the URL and a service-role token. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
if [ ! -f build-release/build.ninja ]; then
  meson setup build-release --buildtype=release >/dev/null
fi
ninja -C build-release >/dev/null
export SUPAMANAGER_HOME=${SUPAMANAGER_HOME:-/var/lib/supamanager}
exec build-release/supamanager serve --demo "$@"
