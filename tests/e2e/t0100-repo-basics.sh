#!/bin/bash
# The repository commands on a small data set: init, backup of a directory, a
# file and stdin in one snapshot, ls, restore of each kind, stats, verify.
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/data/sub dir" && printf 'hello\n' >"$T/data/a.txt" &&
  head -c 300000 /dev/urandom >"$T/data/sub dir/rand.bin" &&
  ln -s a.txt "$T/data/link" && mkdir "$T/data/empty" || fail setup
seq 1 200000 >"$T/file.txt"

smr init 2>"$T/init.err" || fail "init: $(cat "$T/init.err")"
grep -q "created repository at" "$T/init.err" || fail "init message"
[ -f "$R/config" ] && [ -n "$(ls "$R/keys")" ] || fail "init wrote no config or key"
ok "init"

id=$(seq 1 50000 | smr backup storage="$T/data" cfg="$T/file.txt" database=- 2>"$T/b.err") ||
  fail "backup: $(cat "$T/b.err")"
[[ $id =~ ^[0-9a-f]{64}$ ]] || fail "backup printed '$id', not a snapshot id"
[ -f "$R/snapshots/$id" ] || fail "manifest snapshots/$id missing"
ok "backup of a tree, a file and stdin"

# nothing in the store names a file, a table or a size in the clear
! grep -rqa "rand.bin\|sub dir\|a.txt" "$R" || fail "a file name is visible in the store"
ok "the store sees opaque objects"

smr ls >"$T/ls.out" && grep -q "${id:0:12}" "$T/ls.out" && grep -q "storage,cfg,database" "$T/ls.out" ||
  fail "ls: $(cat "$T/ls.out")"
smr ls "${id:0:8}" >"$T/ls2.out" && grep -q "sub dir/rand.bin" "$T/ls2.out" &&
  grep -q "l 0777            0 link -> a.txt" "$T/ls2.out" || fail "ls snapshot: $(cat "$T/ls2.out")"
smr ls --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d)==1 and d[0]["streams"][2]["name"]=="database"' ||
  fail "ls --json"
ok "ls"

smr restore latest --target "$T/out" 2>/dev/null || fail "restore"
$TREETOOL compare "$T/data" "$T/out/storage" || fail "restored tree differs"
cmp "$T/file.txt" "$T/out/cfg" || fail "restored file differs"
seq 1 50000 | cmp - "$T/out/database" || fail "restored stdin stream differs"
cmp <(seq 1 50000) <(smr restore "$id" --stream database --stdout) ||
  fail "restore --stdout differs"
smr restore "$id" --stream storage --target "$T/only" 2>/dev/null && $TREETOOL compare "$T/data" "$T/only" ||
  fail "restore one tree stream"
ok "restore of every stream kind"

expect_fail 3 "no stream 'nope'" -- smr restore latest --stream nope --stdout
expect_fail 3 "has no stream 'nope'" -- smr restore latest --stream nope --target "$T/x"
ok "restore of a missing stream is refused"

smr stats --json >"$T/stats.json" || fail stats
python3 - "$T/stats.json" <<'PY' || fail "stats values: $(cat "$T/stats.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["snapshots"] == 1, d
assert d["packs"] >= 1 and d["blobs"] > 3, d
assert d["stored_bytes"] < d["logical_bytes"], d   # compressed
assert d["config"]["compression_level"] == 2, d
PY
ok "stats"

smr verify 2>"$T/v.err" && grep -q "verified 1 snapshot" "$T/v.err" || fail "verify: $(cat "$T/v.err")"
smr verify --all 2>/dev/null || fail "verify --all"
ok "verify"

# a second identical backup stores no new data
smr backup --json storage="$T/data" cfg="$T/file.txt" >"$T/b2.json" 2>/dev/null || fail "backup 2"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["bytes_new"]==0, d' "$T/b2.json" ||
  fail "second backup of unchanged data stored new data: $(cat "$T/b2.json")"
ok "unchanged data is deduplicated"
