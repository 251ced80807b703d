#!/bin/bash
# Crash safety: kill -9 the writer at many random moments (>= 20) during
# backups, and prune too. After each kill the half-done snapshot is not
# listed and the repository verifies; at the end every complete snapshot
# restores byte-identical, the next backup succeeds, and prune removes the
# orphans.
. "$(dirname "$0")/lib.sh"

smr init --chunk-min 8k --chunk-avg 32k --chunk-max 128k --pack-size 256k 2>/dev/null || fail init
$TREETOOL gen "$T/src" 7 --files 150 --max-size 400000 || fail gen
head -c 8000000 /dev/urandom >"$T/src/big.bin"

# one complete backup; then how long a backup like the ones killed below
# takes (it re-reads everything and stores a changed tree and a new file),
# so that the kills spread over a whole backup
id=$(smr backup tree="$T/src" 2>/dev/null) || fail "first backup"
cp -a "$T/src" "$T/state-$id"
ids=("$id")
$TREETOOL mutate "$T/src" 1000 3 >/dev/null
head -c 1000000 /dev/urandom >"$T/src/new-0.bin"
start=$(date +%s%N)
id=$(smr backup --no-parent tree="$T/src" 2>/dev/null) || fail "second backup"
dur_ms=$(( ($(date +%s%N) - start) / 1000000 ))
ids+=("$id"); cp -a "$T/src" "$T/state-$id"
window=$((dur_ms > 20 ? dur_ms : 20))

kills=0 completed=0 round=0
while [ $kills -lt 22 ] && [ $round -lt 80 ]; do
  round=$((round + 1))
  $TREETOOL mutate "$T/src" $round 3 >/dev/null
  head -c 1000000 /dev/urandom >"$T/src/new-$round.bin"
  delay=$((RANDOM % window))
  "$SM" repo backup --repo "$R" --no-parent tree="$T/src" >"$T/bk.out" 2>/dev/null &
  pid=$!
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  if kill -9 $pid 2>/dev/null; then
    wait $pid 2>/dev/null
    kills=$((kills + 1))
  else
    wait $pid && { newid=$(cat "$T/bk.out"); ids+=("$newid"); cp -a "$T/src" "$T/state-$newid"; completed=$((completed + 1)); }
  fi
  # only complete snapshots are listed; a kill that landed after the commit
  # point (the manifest) leaves a complete snapshot, which must then restore
  listed=$(smr ls --json | python3 -c 'import json,sys; print(" ".join(sorted(s["id"] for s in json.load(sys.stdin))))')
  for l in $listed; do
    if ! printf '%s\n' "${ids[@]}" | grep -qx "$l"; then
      ids+=("$l"); cp -a "$T/src" "$T/state-$l"; completed=$((completed + 1))
    fi
  done
  want=$(printf '%s\n' "${ids[@]}" | sort | tr '\n' ' ' | sed 's/ $//')
  [ "$listed" = "$want" ] || fail "round $round (killed after ${delay} ms): listed '$listed', expected '$want'"
  smr verify 2>"$T/v.err" || fail "round $round: verify failed after a kill at ${delay} ms: $(cat "$T/v.err")"
done
[ $kills -ge 20 ] || fail "only $kills kills landed during backups (window ${window} ms)"
ok "$kills kills during backups: nothing half-done listed, verify passes each time ($completed backups completed)"

for id in "${ids[@]}"; do
  rm -rf "$T/out"
  smr restore "$id" --target "$T/out" 2>"$T/r.err" || fail "restore $id: $(cat "$T/r.err")"
  $TREETOOL compare "$T/state-$id" "$T/out/tree" || fail "snapshot $id does not restore identical"
done
ok "every complete snapshot restores byte-identical"

# one kill that surely leaves an orphan: wait until the killed backup has
# stored a pack (the random kills above may all land before the first one
# on a loaded machine), then kill it before it lists its packs in an index
npacks() { find "$R/data" -type f ! -name "*.tmp.*" | wc -l; }
head -c 12000000 /dev/urandom >"$T/src/orphan.bin"
before=$(npacks)
"$SM" repo backup --repo "$R" --no-parent tree="$T/src" >/dev/null 2>&1 &
pid=$!
while [ "$(npacks)" -le "$before" ] && kill -0 $pid 2>/dev/null; do sleep 0.005; done
kill -9 $pid 2>/dev/null || fail "the backup finished before it could be killed with a pack on disk"
wait $pid 2>/dev/null
rm -f "$T/src/orphan.bin"

id=$(smr backup tree="$T/src" 2>/dev/null) || fail "backup after the crashes"
ids+=("$id"); cp -a "$T/src" "$T/state-$id"
smr prune --keep-last 100 >"$T/p.out" 2>&1 || fail "prune: $(cat "$T/p.out")"
grep -q "orphaned pack" "$T/p.out" || fail "prune found no orphans: $(cat "$T/p.out")"
smr prune --keep-last 100 --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["orphans_removed"]==0 and d["packs_deleted"]==0, d' ||
  fail "a second prune still found garbage"
smr verify --all 2>/dev/null || fail "verify --all after prune"
ok "the next backup succeeds and prune removes the orphans"

# kill prune at random moments: the repository stays valid
for round in $(seq 1 8); do
  head -c 2000000 /dev/urandom >"$T/src/p-$round.bin"
  id=$(smr backup tree="$T/src" 2>/dev/null) || fail "backup before prune $round"
  cp -a "$T/src" "$T/state-$id"; ids+=("$id")
  "$SM" repo prune --repo "$R" --keep-last 3 >/dev/null 2>&1 &
  pid=$!
  sleep "0.$(printf '%03d' $((RANDOM % 400)))"
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  smr verify 2>"$T/v.err" || fail "verify after killing prune (round $round): $(cat "$T/v.err")"
done
smr prune --keep-last 3 2>/dev/null || fail "prune after killed prunes"
smr verify --all 2>/dev/null || fail "verify --all after killed prunes"
for id in $(smr ls --json | python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(sys.stdin)))'); do
  rm -rf "$T/out"
  smr restore "$id" --target "$T/out" 2>/dev/null && $TREETOOL compare "$T/state-$id" "$T/out/tree" ||
    fail "snapshot $id does not restore identical after killed prunes"
done
ok "prune killed at random moments leaves a valid repository"
