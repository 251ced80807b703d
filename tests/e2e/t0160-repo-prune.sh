#!/bin/bash
# prune: --keep-last and --snapshot remove manifests and then the data only
# they used; mostly-garbage packs are repacked; space is really freed; the
# survivors restore identical; a reader running during prune keeps working.
. "$(dirname "$0")/lib.sh"

smr init --chunk-min 4k --chunk-avg 16k --chunk-max 64k --pack-size 256k 2>/dev/null || fail init
mkdir -p "$T/src"
ids=()
for i in 1 2 3 4 5; do
  head -c 600000 /dev/urandom >"$T/src/gen$i.bin"   # each snapshot adds its own data
  [ $i -gt 1 ] && rm -f "$T/src/gen$((i - 1)).bin"  # and drops the previous one
  id=$(smr backup tree="$T/src" 2>/dev/null) || fail "backup $i"
  cp -a "$T/src" "$T/state-$id"
  ids+=("$id")
done
size_of() { du -sb "$R/data" | cut -f1; }
before=$(size_of)

smr prune --keep-last 3 --dry-run >"$T/dry.out" 2>&1 || fail "dry run"
grep -q "would remove snapshot ${ids[0]:0:12}" "$T/dry.out" || fail "dry run output: $(cat "$T/dry.out")"
[ "$(size_of)" = "$before" ] && [ "$(smr ls --json | python3 -c 'import json,sys;print(len(json.load(sys.stdin)))')" = 5 ] ||
  fail "dry run changed the repository"
ok "dry run changes nothing"

smr prune --keep-last 3 --json >"$T/p.json" 2>"$T/p.err" || fail "prune: $(cat "$T/p.err")"
python3 - "$T/p.json" <<'PY' || fail "prune result: $(cat "$T/p.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["snapshots_removed"] == 2, d
assert d["packs_deleted"] + d["packs_repacked"] > 0, d
assert d["bytes_freed"] > 900000, d
PY
after=$(size_of)
[ $after -lt $((before - 900000)) ] || fail "space not freed: $before -> $after"
left=$(smr ls --json | python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(sys.stdin)))')
[ "$left" = "${ids[2]} ${ids[3]} ${ids[4]}" ] || fail "kept the wrong snapshots: $left"
for id in ${ids[2]} ${ids[3]} ${ids[4]}; do
  rm -rf "$T/out"; smr restore "$id" --target "$T/out" 2>/dev/null && $TREETOOL compare "$T/state-$id" "$T/out/tree" ||
    fail "snapshot $id after prune"
done
smr verify --all 2>/dev/null || fail "verify --all after prune"
ok "--keep-last 3 removes the two oldest, frees $((before - after)) bytes, the rest restore"

smr prune --snapshot "${ids[3]:0:10}" 2>/dev/null || fail "prune --snapshot"
left=$(smr ls --json | python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(sys.stdin)))')
[ "$left" = "${ids[2]} ${ids[4]}" ] || fail "--snapshot removed the wrong one: $left"
smr verify --all 2>/dev/null || fail "verify after prune --snapshot"
expect_fail 3 "no snapshot 'abcdef99'" -- smr prune --snapshot abcdef99
ok "--snapshot removes exactly that snapshot"

# repacking: a pack that is mostly garbage is rewritten with only its live blobs
smr init --repo "$T/r2" --chunk-min 1k --chunk-avg 4k --chunk-max 16k --pack-size 1M 2>/dev/null || fail init2
mkdir "$T/s2"
head -c 300000 /dev/urandom >"$T/s2/keep.bin"; head -c 700000 /dev/urandom >"$T/s2/drop.bin"
a=$("$SM" repo backup --repo "$T/r2" t="$T/s2" 2>/dev/null) || fail "r2 backup 1"
rm "$T/s2/drop.bin"
b=$("$SM" repo backup --repo "$T/r2" t="$T/s2" 2>/dev/null) || fail "r2 backup 2"
cp -a "$T/s2" "$T/s2copy"
"$SM" repo prune --repo "$T/r2" --snapshot "$a" --json >"$T/p2.json" 2>/dev/null || fail "r2 prune"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["packs_repacked"]>=1 and d["packs_written"]>=1, d' "$T/p2.json" ||
  fail "no repack: $(cat "$T/p2.json")"
[ "$(du -sb "$T/r2/data" | cut -f1)" -lt 500000 ] || fail "repacked repository still holds the garbage"
"$SM" repo restore --repo "$T/r2" "$b" --target "$T/o2" 2>/dev/null && $TREETOOL compare "$T/s2copy" "$T/o2/t" ||
  fail "restore after repack"
"$SM" repo verify --repo "$T/r2" --all 2>/dev/null || fail "verify after repack"
ok "a mostly-garbage pack is repacked and its garbage freed"

# a reader keeps working while prune removes the snapshot it reads
head -c 4000000 /dev/urandom >"$T/stream.bin"
sid=$(smr backup s="$T/stream.bin" 2>/dev/null) || fail "stream backup"
smr backup other="$T/src" >/dev/null 2>&1 || fail "other backup"
mkfifo "$T/pipe"
( "$SM" repo restore --repo "$R" "$sid" --stream s --stdout >"$T/pipe" 2>"$T/reader.err"; echo $? >"$T/reader.rc" ) &
exec 3<"$T/pipe"
head -c 100000 <&3 >"$T/got"            # the reader is mid-way, blocked on the pipe
smr prune --snapshot "$sid" >"$T/p3.out" 2>&1 || fail "prune during a read: $(cat "$T/p3.out")"
grep -q "readers are active" "$T/p3.out" || fail "prune did not see the reader: $(cat "$T/p3.out")"
cat <&3 >>"$T/got"; exec 3<&-
wait
[ "$(cat "$T/reader.rc")" = 0 ] || fail "the reader failed during prune: $(cat "$T/reader.err")"
cmp "$T/got" "$T/stream.bin" || fail "the reader got wrong bytes during prune"
smr prune --keep-last 100 --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["orphans_removed"]>0, d' ||
  fail "the next prune did not delete what the reader had kept"
smr verify --all 2>/dev/null || fail "verify at the end"
ok "a reader keeps working while prune runs; the next prune frees its packs"
