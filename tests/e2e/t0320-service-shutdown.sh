#!/bin/bash
# SIGTERM during a backup loses nothing: the backup ends INTERRUPTED (never
# listed as good, never left CREATING), the repository verifies, and after a
# restart the next backup completes. A daemon killed -9 mid-backup is found
# out at the next start: its job and backup are marked INTERRUPTED with the
# reason, its leftovers removed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_project.sh"

start_cluster src source
make_project_files "$T/p"
head -c 150000000 /dev/urandom >"$T/p/storage/big.bin"
export JWT_SECRET=e2e-jwt-secret-0123456789abcdef
sm project add abc123 --name "My App" --db-url "$(pg_url "$PORT" proj)" --storage-dir "$T/p/storage" \
  --config-dir "$T/p/config" 2>/dev/null || fail "project add"
API=$(pg_free_port)
start_daemon() {
  "$SM" serve --listen "127.0.0.1:$API" >>"$T/serve.out" 2>>"$T/serve.log" &
  DAEMON=$!
  for i in $(seq 1 100); do curl -sf "http://127.0.0.1:$API/health" >/dev/null && return 0; sleep 0.1; done
  fail "the service did not start"
}
py() { PYTHONPATH="$(dirname "$0")" API=$API /usr/bin/python3 -c "
import os, sys, time
from apiclient import Api, token
api = Api(int(os.environ['API']), token(os.environ['JWT_SECRET'], 'service_role'))
$1"; }

start_daemon
bid=$(py "
st, doc, _, _ = api.post('/platform/projects/abc123/backups', {'type': 'STORAGE'})
assert st == 202, (st, doc)
for _ in range(600):
    st, b, _, _ = api.get('/platform/projects/abc123/backups/' + doc['backup_id'])
    if b.get('progress', 0) > 1: break
    time.sleep(0.05)
print(doc['backup_id'])") || fail "start a backup"
kill -TERM $DAEMON
for i in $(seq 1 300); do kill -0 $DAEMON 2>/dev/null || break; sleep 0.1; done
! kill -0 $DAEMON 2>/dev/null || fail "the service did not stop within 30 s of SIGTERM"
wait $DAEMON
status=$(sm backup show "$bid" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
[ "$status" = INTERRUPTED ] || [ "$status" = COMPLETED ] || fail "after SIGTERM the backup is $status"
[ "$status" = INTERRUPTED ] || echo "note: the backup finished before the signal"
sm repo verify --repo "$SUPAMANAGER_HOME/backups/abc123" 2>/dev/null || fail "the repository does not verify after SIGTERM"
ok "SIGTERM during a backup: the backup is $status, the repository verifies"

start_daemon
py "
st, doc, _, _ = api.post('/platform/projects/abc123/backups', {'type': 'DATABASE'})
assert st == 202, (st, doc)
b = api.wait_backup('abc123', doc['backup_id'])
assert b['status'] == 'COMPLETED', b" || fail "the next backup after a restart"
ok "after a restart the next backup completes"

# kill -9 in the middle of a backup: found out at the next start
bid=$(py "
st, doc, _, _ = api.post('/platform/projects/abc123/backups', {'type': 'STORAGE'})
for _ in range(600):
    st, b, _, _ = api.get('/platform/projects/abc123/backups/' + doc['backup_id'])
    if b.get('progress', 0) > 1: break
    time.sleep(0.05)
print(doc['backup_id'])") || fail "start a backup to kill"
kill -9 $DAEMON; wait $DAEMON 2>/dev/null
start_daemon
py "
st, b, _, _ = api.get('/platform/projects/abc123/backups/$bid')
assert b['status'] in ('INTERRUPTED', 'COMPLETED') and (b['status'] == 'COMPLETED' or b['error']), b
st, doc, _, _ = api.post('/platform/projects/abc123/backups', {'type': 'DATABASE'})
assert st == 202, ('the project is still busy after a crash', st, doc)
assert api.wait_backup('abc123', doc['backup_id'])['status'] == 'COMPLETED'" || fail "after kill -9 and a restart"
[ -z "$(ls "$SUPAMANAGER_HOME/tmp" 2>/dev/null)" ] || fail "leftovers in the home's tmp: $(ls "$SUPAMANAGER_HOME/tmp")"
kill -TERM $DAEMON; wait $DAEMON
ok "a daemon killed mid-backup: at the next start the backup is marked, leftovers cleaned, work goes on"
