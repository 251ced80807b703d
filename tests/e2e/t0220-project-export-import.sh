#!/bin/bash
# Export and import: the portable archive holds metadata.json with every
# part's checksum; importing it into a fresh Supabase instance (roles and
# auth/storage schemas already there) gives the same database, roles and
# files; a restore by hand with tar and pg_restore works too; encrypted
# exports decrypt with stock gpg; hostile archives change nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_project.sh"

start_cluster src source
SRCPORT=$PORT
make_project_files "$T/p"
sm project add abc123 --name "My App" --db-url "$(pg_url "$SRCPORT" proj)" --storage-dir "$T/p/storage" \
  --config-dir "$T/p/config" 2>"$T/err" || fail "project add: $(cat "$T/err")"
fingerprint_project "$SRCPORT" proj "$T/p" "$T/fp0"
id=$(sm backup create abc123 2>"$T/err") || fail "backup: $(cat "$T/err")"

cd "$T" || fail cd
file=$(sm backup export abc123 "$id" 2>"$T/err") || fail "export: $(cat "$T/err")"
[[ $file =~ ^backup_[0-9]{8}_[0-9]{6}_full\.tar\.gz$ ]] || fail "export file name '$file'"
tar -tzf "$file" >"$T/entries" || fail "not a tar.gz"
for e in metadata.json database.dump globals.sql storage/ config/; do
  grep -q "^$e" "$T/entries" || fail "archive lacks $e"
done
tar -xzf "$file" -O metadata.json >"$T/md.json"
sum=$(tar -xzf "$file" -O database.dump | sha256sum | cut -d' ' -f1)
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["checksums"]["database"]=="sha256:"+sys.argv[2], d["checksums"]' "$T/md.json" "$sum" ||
  fail "metadata.json's database checksum does not match database.dump"
ok "export writes $file with metadata.json, database.dump, globals.sql, storage/, config/"

# import into a fresh Supabase instance (its own roles and schemas already exist)
start_cluster dst target
DSTPORT=$PORT
sm import "$file" --id xyz789 --name "Imported" --db-url "$(pg_url "$DSTPORT" proj)" \
  --storage-dir "$T/q/storage" --config-dir "$T/q/config" 2>"$T/ierr" >"$T/iid" || fail "import: $(cat "$T/ierr")"
fingerprint_project "$DSTPORT" proj "$T/q" "$T/fp1"
same_fingerprints "$T/fp0" "$T/fp1" "after import"
sm backup list xyz789 | grep -q "(imported)" || fail "the import is not listed as a backup of the new project"
ok "import into a fresh Supabase instance gives the same database, roles, storage and config"

# by hand: tar (keeping xattrs) + pg_restore, no supamanager
start_cluster hand empty
HPORT=$PORT
mkdir -p "$T/hand" && tar --xattrs --xattrs-include='user.*' --numeric-owner -xpzf "$file" -C "$T/hand" || fail "tar -x by hand"
# as documented: errors for roles that already exist (postgres) are expected and harmless
psql -X -q -h 127.0.0.1 -p "$HPORT" -U postgres -d postgres -f "$T/hand/globals.sql" >/dev/null 2>"$T/herr" ||
  fail "globals by hand: $(cat "$T/herr")"
pg_restore -h 127.0.0.1 -p "$HPORT" -U postgres --create -d postgres "$T/hand/database.dump" 2>"$T/herr" ||
  fail "pg_restore by hand: $(tail -5 "$T/herr")"
for t in public.comments auth.users storage.objects; do
  a=$(pg_psql "$SRCPORT" proj -Atc "SELECT count(*) FROM $t"); b=$(pg_psql "$HPORT" proj -Atc "SELECT count(*) FROM $t")
  [ "$a" = "$b" ] || fail "by hand: $t has $b rows, expected $a"
done
storage_fingerprint "$T/hand/storage" "$T/hand.storage" >/dev/null && cmp -s "$T/fp0/storage" "$T/hand.storage" ||
  fail "by hand: the storage tree (with xattrs) differs"
ok "the archive restores by hand with tar --xattrs and pg_restore"

# encrypted export: stock gpg decrypts it
printf 'export-passphrase\n' >"$T/pass"
enc=$(sm backup export abc123 "$id" --encrypt --passphrase-file "$T/pass" -o "$T/enc.tar.gz.gpg" 2>/dev/null) ||
  fail "encrypted export"
! tar -tzf "$T/enc.tar.gz.gpg" >/dev/null 2>&1 || fail "the encrypted export is readable as a plain archive"
mkdir -m 700 "$T/gnupg"
gpg --batch --yes --homedir "$T/gnupg" --pinentry-mode loopback --passphrase-file "$T/pass" --decrypt -o "$T/dec.tar.gz" "$T/enc.tar.gz.gpg" 2>/dev/null ||
  fail "gpg cannot decrypt the export"
tar -tzf "$T/dec.tar.gz" | grep -q '^database.dump$' || fail "decrypted export is not the archive"
ok "an encrypted export decrypts with stock gpg"

# hostile archives: refused, nothing left behind
mkdir -p "$T/evil/storage" && echo x >"$T/evil/storage/a" && cp "$T/md.json" "$T/evil/metadata.json"
(cd "$T/evil" && tar -czf "$T/evil1.tar.gz" metadata.json storage --transform 's,^storage/a,../../escape,')
echo "not an archive" >"$T/evil2.tar.gz"
for a in evil1 evil2; do
  sm import "$T/$a.tar.gz" --id bad-$a --name X --db-url "$(pg_url "$DSTPORT" newdb_$a)" \
    --storage-dir "$T/bad-$a" >/dev/null 2>"$T/$a.err" && fail "$a was imported"
  sm project show bad-$a >/dev/null 2>&1 && fail "$a left a project"
  [ ! -e "$T/bad-$a" ] || fail "$a left its storage directory"
  [ -z "$(pg_psql "$DSTPORT" postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'newdb_$a'")" ] || fail "$a left a database"
done
[ ! -e "$T/../escape" ] && [ ! -e "$T/escape" ] || fail "a path escaped"
grep -q "'..'" "$T/evil1.err" || grep -qi "\.\." "$T/evil1.err" || fail "no clear message for ..: $(cat "$T/evil1.err")"
grep -qi "not a SupaManager archive" "$T/evil2.err" || fail "no clear message for a non-archive: $(cat "$T/evil2.err")"
ok "hostile archives are refused with a clear message and leave nothing behind"
