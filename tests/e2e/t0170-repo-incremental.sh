#!/bin/bash
# Incremental tree backups: files unchanged since the parent snapshot (size,
# mtime, ctime, inode) are not read again; changed ones are, even when size
# and mtime were kept; every snapshot restores exactly.
. "$(dirname "$0")/lib.sh"

smr init 2>/dev/null || fail init
$TREETOOL gen "$T/src" 11 --files 200 || fail gen
nfiles=$(find "$T/src" -type f -printf x | wc -c)
total=$(find "$T/src" -type f -printf '%s %i\n' | sort -u -k2 | awk '{s+=$1} END {print s}')

field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["streams"][0][sys.argv[2]])' "$1" "$2"; }

smr backup --json tree="$T/src" >"$T/b1.json" 2>/dev/null || fail "backup 1"
[ "$(field "$T/b1.json" files_unchanged)" = 0 ] || fail "first backup reused files"
first_read=$(field "$T/b1.json" bytes_read)
[ "$first_read" -ge "$total" ] || fail "first backup read $first_read of $total bytes"
cp -a "$T/src" "$T/s1"

# change one file's content; another keeps its size and mtime but not its content
f1=$(find "$T/src/tiny" -type f | sort | head -1)
echo "changed" >>"$f1"
f2=$(find "$T/src/tiny" -type f | sort | sed -n 2p)
head -c "$(stat -c %s "$f2")" /dev/zero | tr '\0' Z >"$T/z" && touch -r "$f2" "$T/z" &&
  cp --preserve=timestamps "$T/z" "$f2" || fail "rewrite f2"
[ "$(stat -c %s.%Y "$f2")" = "$(stat -c %s.%Y "$T/s1/${f2#$T/src/}")" ] || fail "f2 kept neither size nor mtime"
smr backup --json tree="$T/src" >"$T/b2.json" 2>/dev/null || fail "backup 2"
want_read=$(( $(stat -c %s "$f1") + $(stat -c %s "$f2") ))
[ "$(field "$T/b2.json" bytes_read)" = "$want_read" ] ||
  fail "second backup read $(field "$T/b2.json" bytes_read) bytes, expected $want_read (only the two changed files)"
[ "$(field "$T/b2.json" files_unchanged)" = $((nfiles - 2)) ] ||
  fail "files_unchanged $(field "$T/b2.json" files_unchanged), expected $((nfiles - 2))"
id1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot"])' "$T/b1.json")
id2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot"])' "$T/b2.json")
ok "only the 2 changed files of $nfiles are read again (one kept its size and mtime)"

smr restore "$id2" --target "$T/r2" 2>/dev/null && $TREETOOL compare "$T/src" "$T/r2/tree" || fail "incremental snapshot"
smr restore "$id1" --target "$T/r1" 2>/dev/null && $TREETOOL compare "$T/s1" "$T/r1/tree" || fail "first snapshot"
ok "both snapshots restore exactly"

# a file replaced by another inode with the same size and times is read again
f3=$(find "$T/src/tiny" -type f | sort | sed -n 3p)
cp -p "$f3" "$f3.x" && mv "$f3.x" "$f3"
smr backup --json tree="$T/src" >"$T/b3.json" 2>/dev/null || fail "backup 3"
[ "$(field "$T/b3.json" bytes_read)" = "$(stat -c %s "$f3")" ] || fail "a replaced inode was not read again"
ok "a new inode is read again"

# the parent is the newest snapshot holding this tree stream, even when
# snapshots of other streams (a database dump) came in between
echo "a dump" | smr backup db=- >/dev/null 2>&1 || fail "dump-only backup"
smr backup --json tree="$T/src" >"$T/b3b.json" 2>/dev/null || fail "backup 3b"
[ "$(field "$T/b3b.json" files_unchanged)" = "$nfiles" ] && [ "$(field "$T/b3b.json" bytes_read)" = 0 ] ||
  fail "a dump-only snapshot in between broke the parent: $(field "$T/b3b.json" files_unchanged) unchanged"
ok "the parent is found past snapshots of other streams"

# --no-parent reads everything; a parent without the stream gives no reuse
smr backup --json --no-parent tree="$T/src" >"$T/b4.json" 2>/dev/null || fail "backup 4"
[ "$(field "$T/b4.json" files_unchanged)" = 0 ] || fail "--no-parent reused files"
smr backup --json other="$T/src" >"$T/b5.json" 2>/dev/null || fail "backup 5"
[ "$(field "$T/b5.json" files_unchanged)" = 0 ] || fail "a stream of another name was used as parent"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["bytes_new"] < 20000, d' "$T/b5.json" ||
  fail "re-reading unchanged data stored new data: $(cat "$T/b5.json")"
ok "--no-parent and other stream names read everything, and it deduplicates"

# file streams: an unchanged file (same path, size, mtime, ctime, inode) is
# not read again; a touched one, another path, --no-parent and stdin are
head -c 3000000 /dev/urandom >"$T/dump"
smr backup --json db="$T/dump" >"$T/f1.json" 2>/dev/null || fail "file backup 1"
[ "$(field "$T/f1.json" bytes_read)" = 3000000 ] || fail "first file backup read $(field "$T/f1.json" bytes_read)"
smr backup --json db="$T/dump" >"$T/f2.json" 2>/dev/null || fail "file backup 2"
[ "$(field "$T/f2.json" bytes_read)" = 0 ] && [ "$(field "$T/f2.json" unchanged)" = True ] ||
  fail "an unchanged file was read again: $(cat "$T/f2.json")"
fid2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot"])' "$T/f2.json")
smr restore "$fid2" --target "$T/fr" 2>/dev/null && cmp -s "$T/dump" "$T/fr/db" || fail "the reused file stream does not restore"
smr verify "$fid2" 2>/dev/null || fail "verify of the reused file stream"
# same size and mtime, new content: ctime tells
head -c 3000000 /dev/urandom >"$T/dump2" && touch -r "$T/dump" "$T/dump2" && cat "$T/dump2" >"$T/dump" &&
  touch -r "$T/dump2" "$T/dump" || fail "rewrite dump"
smr backup --json db="$T/dump" >"$T/f3.json" 2>/dev/null || fail "file backup 3"
[ "$(field "$T/f3.json" bytes_read)" = 3000000 ] || fail "a rewritten file with the same size and mtime was not read"
fid3=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot"])' "$T/f3.json")
rm -rf "$T/fr"; smr restore "$fid3" --target "$T/fr" 2>/dev/null && cmp -s "$T/dump" "$T/fr/db" || fail "the rewritten file does not restore"
cp -p "$T/dump" "$T/dump-copy"
smr backup --json db="$T/dump-copy" >"$T/f4.json" 2>/dev/null || fail "file backup 4"
[ "$(field "$T/f4.json" bytes_read)" = 3000000 ] || fail "a file at another path reused the parent"
smr backup --json --no-parent db="$T/dump" >"$T/f5.json" 2>/dev/null || fail "file backup 5"
[ "$(field "$T/f5.json" bytes_read)" = 3000000 ] || fail "--no-parent reused a file stream"
smr backup --json db=- <"$T/dump" >"$T/f6.json" 2>/dev/null || fail "file backup 6"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); s=d["streams"][0]; assert "source" not in s and d["bytes_read"]==3000000, d' "$T/f6.json" ||
  fail "stdin was not read whole: $(cat "$T/f6.json")"
ok "file streams: an unchanged file is not read again; a rewritten one, another path, --no-parent and stdin are"
