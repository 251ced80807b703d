# Helpers for the browser tests of the web UI (t06xx-ui-*): Debian's chromium,
# headless, driven by playwright-core from tests/ui (scripts/install-deps.sh
# --test installs both). Source after lib.sh and lib_project.sh.
UI=$SOURCE_ROOT/tests/ui
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
command -v node >/dev/null || fail "node is missing: run scripts/install-deps.sh --test"
[ -x "$CHROMIUM" ] || fail "$CHROMIUM is missing: run scripts/install-deps.sh --test"
[ -d "$UI/node_modules/playwright-core" ] ||
  fail "playwright-core is missing in $UI/node_modules: run scripts/install-deps.sh --test"

# run_ui SCRIPT [VAR=VALUE...]: runs tests/ui/SCRIPT against the service that
# start_service started and the cluster of start_cluster (PORT)
run_ui() {
  local script=$1
  shift
  env URL="http://127.0.0.1:$API/" PGPORT="$PORT" PGUSER="$PG_SUPERUSER" T="$T" SERVICE_LOG="$T/serve.log" \
    CHROMIUM="$CHROMIUM" "$@" node "$UI/$script"
}
