#!/bin/bash
# Disk full: back up into a small tmpfs until it fills. A clear error, nothing
# listed as good, the repository still verifies, and after making room the
# next backup and prune work.
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/small"
if ! mount -t tmpfs -o size=6m tmpfs "$T/small" 2>/dev/null; then
  echo "SKIP: cannot mount a tmpfs here (needs root)"; exit 77
fi
on_exit "umount -l '$T/small'"
R="$T/small/repo"

smr init --pack-size 512k 2>/dev/null || fail init
mkdir "$T/a" && head -c 1000000 /dev/urandom >"$T/a/one.bin"
id=$(smr backup tree="$T/a" 2>/dev/null) || fail "small backup"

mkdir "$T/big" && head -c 12000000 /dev/urandom >"$T/big/big.bin"
smr backup tree="$T/big" >"$T/out" 2>"$T/err"
rc=$?
[ $rc = 6 ] || fail "expected exit 6 (no space), got $rc: $(cat "$T/err")"
grep -q "No space left on device" "$T/err" || fail "no clear message: $(cat "$T/err")"
grep -q "^hint: Free some space" "$T/err" || fail "no hint: $(cat "$T/err")"
[ ! -s "$T/out" ] || fail "a snapshot id was printed"
[ "$(smr ls --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] ||
  fail "the failed backup is listed"
ok "disk full gives a clear error and lists nothing"

smr verify --all 2>"$T/v.err" || fail "repository does not verify after ENOSPC: $(cat "$T/v.err")"
smr restore "$id" --target "$T/r" 2>/dev/null && $TREETOOL compare "$T/a" "$T/r/tree" || fail "earlier snapshot"
ok "the repository still verifies and restores"

smr prune --keep-last 1 2>/dev/null || fail "prune after ENOSPC"
[ -z "$(find "$R" -name '*.tmp.*')" ] || fail "temporary files left after prune"
rm -f "$T/big/big.bin" && head -c 2000000 /dev/urandom >"$T/big/small.bin"
smr backup tree="$T/big" >/dev/null 2>&1 || fail "backup after making room"
smr verify --all 2>/dev/null || fail "verify at the end"
ok "after making room, backup and prune work and no temporary files remain"
