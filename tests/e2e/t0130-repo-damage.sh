#!/bin/bash
# Damage: flip one byte in a pack, truncate one, delete one. verify and
# restore must report it, name the snapshots and files hurt, and never write
# wrong bytes silently.
. "$(dirname "$0")/lib.sh"

smr init --chunk-min 4k --chunk-avg 16k --chunk-max 64k --pack-size 128k 2>/dev/null || fail init
mkdir -p "$T/src/d"
for i in $(seq 1 12); do head -c $((100000 + i * 7919)) /dev/urandom >"$T/src/d/file$i.bin"; done
id1=$(smr backup tree="$T/src" 2>/dev/null) || fail backup1
echo "later" >"$T/src/new.txt"
id2=$(smr backup tree="$T/src" 2>/dev/null) || fail backup2
smr verify --all 2>/dev/null || fail "fresh repository does not verify"

# the largest packs hold file data (directory listings go last, into the small final pack)
packs=($(cd "$R" && find data -type f -printf '%s %p\n' | sort -rn | awk '{print $2}'))
[ ${#packs[@]} -ge 6 ] || fail "expected several packs, got ${#packs[@]}"

# no file written by a failed restore may hold a byte that differs from the source
check_no_wrong_bytes() {
  local out=$1
  (cd "$out" 2>/dev/null && find . -type f) | while read -r f; do
    src="$T/src/${f#./tree/}"
    [ -f "$src" ] || continue
    n=$(stat -c %s "$out/$f")
    cmp -n "$n" "$out/$f" "$src" >/dev/null || { echo "wrong bytes in $f"; exit 1; }
  done
}

damage_case() { # name, then a command that damages $P
  local name=$1 expect=$2
  P="$R/${packs[$3]}"
  cp "$P" "$T/pack.bak"
  eval "$4"
  pid=$(basename "$P")
  smr verify >"$T/v.out" 2>&1 && fail "$name: verify passed"
  grep -q "$expect" "$T/v.out" || fail "$name: verify did not say '$expect': $(cat "$T/v.out")"
  grep -q "${pid:0:12}" "$T/v.out" || fail "$name: verify did not name the pack: $(cat "$T/v.out")"
  grep -q "damaged: snapshot ${id1:0:12} stream 'tree': 'd/file[0-9]*.bin'" "$T/v.out" ||
    fail "$name: verify did not name the snapshot and file: $(cat "$T/v.out")"
  grep -q "damaged: snapshot ${id2:0:12} stream 'tree'" "$T/v.out" ||
    fail "$name: verify did not name the second snapshot sharing the pack"
  smr verify --all >"$T/va.out" 2>&1 && fail "$name: verify --all passed"
  rm -rf "$T/out"
  smr restore "$id1" --target "$T/out" >"$T/r.out" 2>&1 && fail "$name: restore passed"
  grep -q "$expect" "$T/r.out" || fail "$name: restore did not say '$expect': $(cat "$T/r.out")"
  check_no_wrong_bytes "$T/out" || fail "$name: restore wrote wrong bytes"
  cp "$T/pack.bak" "$P"
  smr verify --all 2>/dev/null || fail "$name: repaired repository does not verify"
  ok "$name is reported by verify and restore, naming snapshots and files"
}

damage_case "a flipped byte" "failed its MAC check" 1 \
  'printf "\\x$(printf %02x $(( ($(od -An -tu1 -j 40 -N1 "$P") + 1) % 256 )))" | dd of="$P" bs=1 seek=40 conv=notrunc 2>/dev/null'
damage_case "a truncated pack" "is truncated" 2 'truncate -s 1000 "$P"'
damage_case "a deleted pack" "is missing" 3 'rm "$P"'

# changes the byte at OFFSET of FILE (to another value, whatever it was)
flip_byte() {
  printf "\\x$(printf %02x $(( ($(od -An -tu1 -j "$2" -N1 "$1") + 1) % 256 )))" |
    dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

# a flipped byte at the end of a pack (its header) is found by verify --all
P="$R/${packs[0]}"; cp "$P" "$T/pack.bak"
sz=$(stat -c %s "$P")
flip_byte "$P" $((sz - 10))
smr verify --all >"$T/va.out" 2>&1 && fail "verify --all missed a damaged pack header"
grep -q "content does not match its name" "$T/va.out" || fail "pack hash check: $(cat "$T/va.out")"
cp "$T/pack.bak" "$P"
ok "verify --all checks whole packs"

# a damaged manifest or index file
S="$R/snapshots/$id1"; cp "$S" "$T/snap.bak"
flip_byte "$S" 50
expect_fail 4 "file 'snapshots/$id1' is damaged" -- smr ls
cp "$T/snap.bak" "$S"
I="$R/index/$(ls "$R/index" | head -1)"; cp "$I" "$T/idx.bak"
flip_byte "$I" 50
expect_fail 4 "is damaged: its content does not match its name" -- smr restore "$id1" --target "$T/o2"
cp "$T/idx.bak" "$I"
smr verify --all 2>/dev/null || fail "repository does not verify after repairs"
ok "damaged manifests and index files are reported"
