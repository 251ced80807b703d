#!/bin/bash
# The web UI in a real browser (Debian's chromium, headless, driven by
# playwright-core from tests/ui) against a real `supamanager serve` and a real
# PostgreSQL: sign-in (bad, expired and forged tokens explained), the projects
# list, the Backups page, a backup created from the UI whose progress bar
# survives a reload and reaches 100 %, a download that is an archive with
# database.dump, a restore of the database only (the database comes back, the
# storage stays as it is), the schedule with its next run and the server's
# message beside a bad field, the backup storage settings (an s3:// store saved
# from the form and read back through the API, refused values shown beside
# their field; no S3 server: PATCH only stores them; "Check this store" on the local
# store and "Check these settings" on an unreachable endpoint show their ok and error
# lines, once however often they are clicked, and a save repeated shows one notice), delete, export, import with upload progress, the
# chart, the dialogs' focus trap, a member who may only look, and a stranger who sees
# no project. Any
# console error fails it. Screenshots of every screen at desktop and phone
# widths go to $BUILD_ROOT/ui-screenshots/.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_project.sh"
. "$(dirname "$0")/lib_ui.sh"

start_cluster src source
make_project_files "$T/p"
export JWT_SECRET=e2e-jwt-secret-0123456789abcdef
sm org add acme --name Acme 2>/dev/null && sm member add acme user-member --role member 2>/dev/null ||
  fail "org setup"
sm project add abc123 --name "My App" --db-url "$(pg_url "$PORT" proj)" --storage-dir "$T/p/storage" \
  --config-dir "$T/p/config" --org acme --owner user-owner 2>/dev/null || fail "project add"
# credentials for the S3 settings the storage page checks (no S3 server answers them)
export AWS_ACCESS_KEY_ID=ui-test-key AWS_SECRET_ACCESS_KEY=ui-test-secret-0123456789
start_service

SHOTS=${BUILD_ROOT:-$T}/ui-screenshots
mkdir -p "$SHOTS" && rm -f "$SHOTS"/[0-9][0-9]-*.png || fail "cannot make $SHOTS"
run_ui ui-test.mjs PROJECT_DIR="$T/p" SHOTS="$SHOTS" || fail "browser checks (service log: $T/serve.log)"
stop_service "$DAEMON" "$T/serve.log"
