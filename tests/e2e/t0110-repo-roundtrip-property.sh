#!/bin/bash
# Round trips over random trees: empty files, names with spaces, UTF-8 and
# newlines, deep paths, symlinks (dangling too), hard links, empty dirs,
# modes, owners, nanosecond mtimes, user.* xattrs, many tiny files, a 1 GiB
# sparse file; plus 0-byte streams. Each tree is backed up, changed, backed
# up again on top of its parent, and both snapshots restore identical.
. "$(dirname "$0")/lib.sh"

smr init --chunk-min 16k --chunk-avg 64k --chunk-max 256k --pack-size 1M 2>/dev/null || fail init

for seed in 1 2 3 4; do
  src="$T/src$seed"
  extra=()
  [ $seed = 1 ] && extra=(--sparse-gib 1)
  $TREETOOL gen "$src" $seed --files 250 "${extra[@]}" || fail "gen $seed"
  if [ $seed = 2 ]; then chown -R 1234:2345 "$src/tiny" 2>/dev/null || true; fi
  cp -a "$src" "$T/copy$seed" || fail "copy $seed"
  id1=$(smr backup "tree=$src" 2>"$T/err") || fail "backup $seed: $(cat "$T/err")"
  $TREETOOL mutate "$src" $seed 5 >/dev/null || fail "mutate $seed"
  id2=$(smr backup --parent "$id1" "tree=$src" 2>"$T/err") || fail "backup 2 of $seed: $(cat "$T/err")"
  smr restore "$id1" --target "$T/r1-$seed" 2>"$T/err" || fail "restore $seed: $(cat "$T/err")"
  smr restore "$id2" --target "$T/r2-$seed" 2>"$T/err" || fail "restore 2 of $seed: $(cat "$T/err")"
  $TREETOOL compare "$T/copy$seed" "$T/r1-$seed/tree" || fail "seed $seed: first snapshot differs"
  $TREETOOL compare "$src" "$T/r2-$seed/tree" || fail "seed $seed: second snapshot differs"
  if [ $seed = 1 ]; then
    used=$(du -k "$T/r1-$seed/tree/sparse.img" | cut -f1)
    [ "$used" -lt 10240 ] || fail "the sparse file was restored dense ($used KiB)"
  fi
  rm -rf "$T/r1-$seed" "$T/r2-$seed" "$T/copy$seed"
  ok "random tree $seed round-trips (twice, the second incremental)"
done

# 0-byte streams and 0-byte files
: >"$T/empty.bin"
id=$(smr backup empty-stdin=- empty-file="$T/empty.bin" </dev/null 2>/dev/null) || fail "backup of empty streams"
[ "$(smr restore "$id" --stream empty-stdin --stdout | wc -c)" = 0 ] || fail "empty stdin stream"
smr restore "$id" --target "$T/e" 2>/dev/null && [ -f "$T/e/empty-file" ] && [ ! -s "$T/e/empty-file" ] ||
  fail "empty file stream"
ok "0-byte streams"

# an empty directory as a whole stream
mkdir "$T/emptyroot" && chmod 710 "$T/emptyroot"
id=$(smr backup root="$T/emptyroot" 2>/dev/null) && smr restore "$id" --target "$T/er" 2>/dev/null &&
  $TREETOOL compare "$T/emptyroot" "$T/er/root" || fail "empty directory stream"
ok "empty directory stream keeps its mode"

smr verify --all 2>/dev/null || fail "verify after round trips"
ok "verify --all"
