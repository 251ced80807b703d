#!/bin/bash
# Keys: add, change (old secret stops working, data is not rewritten), list,
# remove. Locks: a second writer is refused with pid and host; readers are
# not blocked; a lock of a killed writer is cleared by the next writer; a
# stale foreign lock is removed by `unlock`, a live one only with --all.
. "$(dirname "$0")/lib.sh"

smr init 2>/dev/null || fail init
echo data >"$T/f"
id=$(smr backup f="$T/f" 2>/dev/null) || fail backup
packs_before=$(cd "$R" && find data -type f | sort | xargs sha256sum)

newkey=$(NEW_ENCRYPTION_SECRET=second smr key add 2>/dev/null) || fail "key add"
ENCRYPTION_SECRET=second smr ls >/dev/null 2>&1 || fail "the added secret does not open"
smr ls >/dev/null 2>&1 || fail "the first secret stopped working after key add"
[ "$(smr key list | wc -l)" = 2 ] || fail "key list: $(smr key list)"
smr key list | grep -q "^\* " || fail "key list marks no current key"
ok "key add: both secrets open the repository"

printf 'third\n' >"$T/third"
ENCRYPTION_SECRET=second smr key change --new-secret-file "$T/third" 2>/dev/null || fail "key change"
expect_fail 4 "wrong ENCRYPTION_SECRET" -- env ENCRYPTION_SECRET=second "$SM" repo ls --repo "$R"
ENCRYPTION_SECRET=third smr restore "$id" --stream f --stdout | grep -q data || fail "the new secret does not read the data"
[ "$(cd "$R" && find data -type f | sort | xargs sha256sum)" = "$packs_before" ] || fail "key change rewrote data"
ok "key change re-wraps the master key without rewriting data"

first=$(smr key list --json | python3 -c 'import json,sys; print([k["id"] for k in json.load(sys.stdin) if k["current"]][0])')
expect_fail 2 "is the one in use" -- smr key remove "$first"
ENCRYPTION_SECRET=third smr key remove "$first" 2>/dev/null || fail "key remove"
expect_fail 4 "wrong ENCRYPTION_SECRET" -- smr ls
export ENCRYPTION_SECRET=third
[ "$(smr key list | wc -l)" = 1 ] || fail "a key was not removed"
expect_fail 2 "no new secret given" -- env -u NEW_ENCRYPTION_SECRET "$SM" repo key add --repo "$R"
ok "key remove; the key in use cannot be removed"

# a writer holds the lock while it reads a slow stdin
mkfifo "$T/slow"
"$SM" repo backup --repo "$R" slow=- <"$T/slow" >/dev/null 2>&1 &
writer=$!
exec 4>"$T/slow"
echo started >&4
for i in $(seq 1 50); do [ -n "$(ls "$R/locks" 2>/dev/null)" ] && break; sleep 0.1; done
expect_fail 5 "is locked: an exclusive lock held by pid $writer on host '$(hostname)' (backup)" -- smr backup f="$T/f"
expect_fail 5 "is locked" -- smr prune --keep-last 1
smr ls >/dev/null 2>&1 || fail "a reader was blocked by a writer"
smr restore "$id" --stream f --stdout >/dev/null 2>&1 || fail "restore was blocked by a writer"
smr unlock 2>"$T/u.err" && grep -q "removed 0 locks" "$T/u.err" || fail "unlock removed a live lock: $(cat "$T/u.err")"
ok "a second writer is refused naming pid and host; readers are not blocked"

kill -9 $writer; wait $writer 2>/dev/null; exec 4>&-
[ -n "$(ls "$R/locks")" ] || fail "the killed writer left no lock (test setup)"
smr backup f="$T/f" >/dev/null 2>&1 || fail "the lock of a dead writer was not cleared"
[ -z "$(ls "$R/locks")" ] || fail "locks left behind: $(ls "$R/locks")"
ok "the lock of a killed writer is detected and cleared"

# a lock from another host: live (fresh) blocks, stale (old) is removed by unlock
now=$(date +%s)
printf '{"exclusive":true,"hostname":"other-host","pid":4242,"purpose":"backup","start":"1","time":%d}' "$now" >"$R/locks/aaaa"
expect_fail 5 "pid 4242 on host 'other-host' (backup)" -- smr backup f="$T/f"
smr unlock 2>/dev/null && [ -f "$R/locks/aaaa" ] || fail "unlock removed a live foreign lock"
smr unlock --all 2>/dev/null && [ ! -f "$R/locks/aaaa" ] || fail "unlock --all kept a lock"
printf '{"exclusive":true,"hostname":"other-host","pid":4242,"purpose":"backup","start":"1","time":%d}' $((now - 7200)) >"$R/locks/bbbb"
smr unlock 2>"$T/u.err" && grep -q "removed 1 lock" "$T/u.err" && [ ! -f "$R/locks/bbbb" ] ||
  fail "unlock did not remove a stale foreign lock"
smr backup f="$T/f" >/dev/null 2>&1 || fail "backup after unlock"
ok "foreign locks: a fresh one blocks and stays, a stale one is removed by unlock"
