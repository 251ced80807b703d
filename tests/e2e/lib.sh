# Shared helpers for end-to-end tests. Source it first:  . "$(dirname "$0")/lib.sh"
# Each test gets a private directory ($T) removed on success and kept on
# failure (its path is printed) for post-mortems.
set -u
SM=${SUPAMANAGER:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/supamanager}
SOURCE_ROOT=${SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TREETOOL="/usr/bin/python3 $SOURCE_ROOT/tests/e2e/treetool.py"
export ENCRYPTION_SECRET=${ENCRYPTION_SECRET:-e2e-secret-1}
export SUPAMANAGER_LOG=${SUPAMANAGER_LOG:-warn}

T=$(mktemp -d "${TMPDIR:-/tmp}/sm-e2e.$(basename "$0" .sh).XXXXXX")
chmod 755 "$T"
# the local cache of tree blobs (S3 repositories) stays inside the test
export SUPAMANAGER_CACHE=${SUPAMANAGER_CACHE:-$T/cache}
_failed=0
_cleanup() {
  local rc=$?
  for f in "${_cleanups[@]:-}"; do [ -n "$f" ] && eval "$f" >/dev/null 2>&1 || true; done
  if [ $rc -eq 0 ] && [ $_failed -eq 0 ]; then
    rm -rf "$T"
  else
    echo "test directory kept: $T" >&2
  fi
}
_cleanups=()
trap _cleanup EXIT
on_exit() { _cleanups+=("$1"); }

fail() { echo "FAIL: $*" >&2; _failed=1; exit 1; }
ok() { echo "ok - $*"; }

# expect_fail CODE PATTERN -- command...   : the command fails with exit code
# CODE and its stderr contains PATTERN (a fixed string).
expect_fail() {
  local code=$1 pat=$2; shift 3
  local out rc
  out=$("$@" 2>&1 >/dev/null); rc=$?
  [ $rc -eq "$code" ] || fail "expected exit $code, got $rc from: $* :: $out"
  grep -qF -- "$pat" <<<"$out" || fail "expected '$pat' in output of: $* :: $out"
}

# A repository in $T/repo and a shortcut.
R="$T/repo"
sm() { "$SM" "$@"; }
smr() { local sub=$1; shift; "$SM" repo "$sub" --repo "$R" "$@"; }

# Stops a service with SIGTERM and fails unless it exits 0 (under ASan, a leak makes it non-zero).
stop_service() {
  local pid=$1 log=$2 rc=0
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || fail "the service exited $rc on SIGTERM: $(grep -v '^{' "$log" | head -20)"
  ok "the service stops cleanly on SIGTERM"
}
