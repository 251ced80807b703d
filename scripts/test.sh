#!/usr/bin/env bash
# README command 2: install, build, and run every test (unit and end-to-end),
# once in the normal build and once under AddressSanitizer + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --test

if [ ! -f build/build.ninja ]; then
  meson setup build >/dev/null
fi
if [ ! -f build-asan/build.ninja ]; then
  meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C build >/dev/null
ninja -C build-asan >/dev/null

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0
echo "== tests (build) =="
meson test -C build --print-errorlogs --num-processes 2 "$@" || status=1
echo "== tests (address + undefined sanitizers) =="
meson test -C build-asan --print-errorlogs --num-processes 2 "$@" || status=1
if [ $status = 0 ]; then
  echo "ALL TESTS PASSED (build and build-asan)"
else
  echo "SOME TESTS FAILED (see above)"
fi
exit $status
