#!/bin/bash
# Bad input gets a clear error and costs nothing: wrong or missing secret,
# damaged key file, a newer format, no repository, bad snapshot ids, bad
# arguments, a non-empty restore target, special files.
. "$(dirname "$0")/lib.sh"

expect_fail 3 "no repository at '$R'" -- smr ls
expect_fail 2 "no repository given" -- env -u SUPAMANAGER_REPO "$SM" repo ls
smr init 2>/dev/null || fail init
expect_fail 1 "a repository already exists at '$R'" -- smr init
echo "some data" >"$T/f"
id=$(smr backup f="$T/f" 2>/dev/null) || fail backup
ok "missing and existing repositories"

expect_fail 4 "wrong ENCRYPTION_SECRET for repository '$R'" -- env ENCRYPTION_SECRET=nope "$SM" repo ls --repo "$R"
expect_fail 4 "ENCRYPTION_SECRET is not set" -- env -u ENCRYPTION_SECRET "$SM" repo ls --repo "$R"
out=$(env ENCRYPTION_SECRET=nope "$SM" repo ls --repo "$R" 2>&1 | head -1)
[ "$(wc -l <<<"$out")" = 1 ] && [[ $out == "supamanager: error: wrong ENCRYPTION_SECRET"* ]] || fail "not one clear line: $out"
printf 'e2e-secret-1\n' >"$T/secret" && env -u ENCRYPTION_SECRET "$SM" repo ls --repo "$R" --secret-file "$T/secret" >/dev/null ||
  fail "--secret-file"
ok "wrong and missing secret"

# a damaged key file: the only key
key=$(ls "$R/keys")
cp "$R/keys/$key" "$T/key.bak"
sed -i 's/"data": "./"data": "A/' "$R/keys/$key"
expect_fail 4 "key file 'keys/$key' is damaged: checksum mismatch" -- smr ls
echo '{not json' >"$R/keys/$key"
expect_fail 4 "key file 'keys/$key' is damaged" -- smr ls
cp "$T/key.bak" "$R/keys/$key"
smr ls >/dev/null || fail "restored key file"
ok "damaged key file"

# a repository of a newer format version
cp "$R/config" "$T/config.bak"
sed -i 's/"version": 1/"version": 7/' "$R/config"
expect_fail 4 "has format version 7, newer than this supamanager understands (1)" -- smr ls
echo garbage >"$R/config"
expect_fail 4 "the config of repository '$R' is damaged" -- smr ls
# an id that is no id (it names the local cache's folder): refused, nothing created
python3 -c '
import json, sys
d = json.load(open(sys.argv[1])); d["id"] = "../../../../../tmp/sm-escape-xyz"
json.dump(d, open(sys.argv[2], "w"))' "$T/config.bak" "$R/config"
expect_fail 4 "the config of repository '$R' is damaged: fields missing" -- smr ls
cp "$T/config.bak" "$R/config"
ok "newer format and damaged config (an id that is not 32 hex digits too)"

expect_fail 3 "no snapshot 'abcdef12' in repository" -- smr restore abcdef12 --target "$T/o"
expect_fail 2 "snapshot id 'abc' is too short" -- smr ls abc
expect_fail 2 "'zzzzzzzz' is not a snapshot id" -- smr ls zzzzzzzz
[ ! -e "$T/o" ] || fail "a failed restore created its target"
ok "bad snapshot references"

expect_fail 2 "'nonsense' is not NAME=PATH" -- smr backup nonsense
expect_fail 2 "needs at least one NAME=PATH" -- smr backup
expect_fail 3 "cannot read '$T/missing'" -- smr backup x="$T/missing"
expect_fail 2 "invalid stream name 'a/b'" -- smr backup "a/b=$T/f"
expect_fail 2 "stream 'x' is given twice" -- smr backup "x=$T/f" "x=$T/f"
expect_fail 2 "needs either --target DIR or --stdout" -- smr restore latest
expect_fail 2 "--keep-last takes a number" -- smr prune --keep-last 0
[ "$(smr ls | wc -l)" = 2 ] || fail "a failed backup was listed"
ok "bad arguments"

mkdir -p "$T/full" && echo x >"$T/full/keep"
expect_fail 1 "restore target '$T/full' is not empty" -- smr restore latest --target "$T/full"
[ "$(cat "$T/full/keep")" = x ] && [ "$(ls "$T/full")" = keep ] || fail "non-empty target was touched"
ok "a non-empty restore target is refused and untouched"

mkdir "$T/spec" && mkfifo "$T/spec/fifo" && echo y >"$T/spec/file"
sid=$(smr backup spec="$T/spec" 2>/dev/null) || fail "backup with a fifo"
expect_fail 2 "holds 1 special files" -- smr restore "$sid" --target "$T/specout"
smr restore "$sid" --special --target "$T/specout2" 2>/dev/null && [ -p "$T/specout2/spec/fifo" ] ||
  fail "--special did not restore the fifo"
ok "special files are recorded and refused unless --special"
