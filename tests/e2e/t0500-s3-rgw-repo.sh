#!/bin/bash
# The S3 store against Ceph radosgw, which checks every SigV4 signature: store check,
# a wrong secret fails with a clear message, multipart uploads, listings over more than
# 1000 objects (ListObjectsV2 paging), virtual-host addressing, prune, round trips
# that restore byte for byte, and restores that read each pack with one GET.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"

rgw_up
s3_mb "$RGW" sm-test
L="s3://sm-test/repo1?endpoint=$RGW&multipart_threshold=5M&part_size=5M"

sm store check "$L" >"$T/check.out" 2>&1 || fail "store check: $(cat "$T/check.out")"
for step in write read list delete; do
  grep -Eq "^  $step +ok" "$T/check.out" || fail "store check $step: $(cat "$T/check.out")"
done
[ "$(s3_count "$RGW" sm-test repo1/)" = 0 ] || fail "store check left its probe object"
ok "store check writes, reads, lists and deletes a probe object and leaves nothing"

# a wrong secret: RGW answers 403 SignatureDoesNotMatch; we say so, name bucket and key, no retries
AWS_SECRET_ACCESS_KEY=wrong sm store check "$L" >"$T/bad.out" 2>&1 && fail "store check passed with a wrong secret"
grep -Eq "^  write +FAILED +cannot write 'repo1/check/probe-[0-9a-f]+' in S3 bucket 'sm-test': HTTP 403 SignatureDoesNotMatch" "$T/bad.out" &&
  grep -Eq "^  list +FAILED .*HTTP 403 SignatureDoesNotMatch" "$T/bad.out" &&
  grep -q "Check the S3 access key and secret" "$T/bad.out" && ! grep -q "attempts" "$T/bad.out" ||
  fail "wrong-secret report: $(cat "$T/bad.out")"
ok "a wrong secret fails every step with HTTP 403 SignatureDoesNotMatch, the bucket and the key, unretried"

sm store check "s3://no-such-bucket/x?endpoint=$RGW" >"$T/nb.out" 2>&1 && fail "store check of a missing bucket passed"
grep -q "in S3 bucket 'no-such-bucket': HTTP 404 NoSuchBucket" "$T/nb.out" && grep -q "Create the bucket first" "$T/nb.out" ||
  fail "missing bucket: $(cat "$T/nb.out")"
sm repo init --repo "s3://sm-test/x?endpoint=http://127.0.0.1:1&retries=1&retry_base_ms=1" >/dev/null 2>"$T/conn.err" &&
  fail "init against a closed port passed"
grep -q "Couldn't connect to server (curl error 7) (after 2 attempts)" "$T/conn.err" &&
  grep -q "Check the S3 endpoint (http://127.0.0.1:1)" "$T/conn.err" || fail "closed port: $(cat "$T/conn.err")"
ok "a missing bucket (404 NoSuchBucket) and a closed endpoint (retried, then named) get messages that say what to fix"

# a repository with multipart packs: 12 MiB of incompressible data in 8 MiB packs, 5 MiB parts
mkdir -p "$T/src/sub"
head -c 12000000 /dev/urandom >"$T/src/big.bin"
for i in $(seq 20); do echo "file $i" >"$T/src/sub/f$i.txt"; done
sm repo init --repo "$L" --pack-size 8M >/dev/null 2>&1 || fail "repo init on S3"
id1=$(sm repo backup --repo "$L" tree="$T/src" 2>"$T/err") || fail "backup: $(cat "$T/err")"
etags=$(awsx "$RGW" s3api list-objects-v2 --bucket sm-test --prefix repo1/data/ --query 'Contents[].ETag' --output text)
grep -q -- '-2"' <<<"$etags" || fail "no pack went up in 2 parts: $etags"
[ -z "$(awsx "$RGW" s3api list-multipart-uploads --bucket sm-test --query 'Uploads[].Key' --output text | grep -v None)" ] ||
  fail "unfinished multipart uploads are left"
sm repo verify --repo "$L" --all >/dev/null 2>"$T/err" || fail "verify: $(cat "$T/err")"
sm repo restore --repo "$L" "$id1" --target "$T/out1" 2>/dev/null && $TREETOOL compare "$T/src" "$T/out1/tree" ||
  fail "restore from S3 differs"
ok "packs over the threshold go up as multipart uploads (ETag -2), nothing unfinished is left, verify and restore match"

# a restore reads every pack it needs once: the restore plan groups the chunks by pack and
# fetches each pack's needed bytes with one ranged GET (32 MiB packs, where read-ahead windows of
# 8 MiB took 4-5 GETs a pack), with or without read-ahead; chunks used many times (a copied file,
# runs of zeros) are read once. Counted at a logging proxy: GETs of packs (data/...), which also
# carry the directory listings (one GET for the root's, one per level below at most here).
proxy "$RGW" plan --rate 0
PL="s3://sm-test/plan?endpoint=$PX"
mkdir -p "$T/plan/a/b"
head -c 90000000 /dev/urandom >"$T/plan/a/big.bin"
head -c 8000000 "$T/plan/a/big.bin" >"$T/plan/a/b/copy.bin"
head -c 6000000 /dev/zero >"$T/plan/a/b/zeros.bin"
for i in $(seq 30); do echo "small $i" >"$T/plan/a/b/s$i.txt"; done
head -c 50000000 /dev/urandom >"$T/plan-stream.bin"
sm repo init --repo "$PL" >/dev/null 2>&1 || fail "init plan repo"
idp=$(sm repo backup --repo "$PL" tree="$T/plan" db="$T/plan-stream.bin" 2>"$T/err") || fail "backup plan: $(cat "$T/err")"
np=$(s3_count "$RGW" sm-test plan/data/)
[ "$np" -ge 4 ] || fail "only $np packs (test setup)"
data_gets() { grep -c "^GET /sm-test/plan/data/" "$T/plan.log"; }
for ra in "" "&readahead=0"; do
  : >"$T/plan.log"
  sm repo restore --repo "$PL$ra" "$idp" --target "$T/outp$ra" 2>"$T/err" &&
    $TREETOOL compare "$T/plan" "$T/outp$ra/tree" && cmp "$T/outp$ra/db" "$T/plan-stream.bin" || fail "plan restore$ra: $(cat "$T/err")"
  g=$(data_gets)
  # each pack once, plus the listings (root, a, a/b: one GET a level) and the pack both
  # streams share, read by each stream's plan: np + 4 (9 here); the bound leaves room for a
  # retried request or a kept chunk dropped under the memory budget, and still fails the
  # read-ahead restore this replaced (38 GETs for 5 packs)
  [ "$g" -le $((2 * np + 4)) ] || fail "restore$ra of $np packs took $g GETs of packs: $(grep -c . "$T/plan.log") requests"
done
: >"$T/plan.log"
sm repo restore --repo "$PL" "$idp" --stream db --stdout 2>"$T/err" | cmp - "$T/plan-stream.bin" || fail "plan stdout: $(cat "$T/err")"
gs=$(data_gets)
[ "$gs" -le $((np + 1)) ] || fail "restoring one stream to stdout took $gs GETs of packs, the repository has $np packs"
ok "a restore of $np packs (32 MiB) takes $g GETs of packs, with or without read-ahead; one stream to stdout $gs"

# credentials from a file named in the location, or the shared file with a profile; none in the env
printf '[default]\naws_access_key_id = TESTKEY\naws_secret_access_key = wrong\n[backup]\naws_access_key_id=TESTKEY\naws_secret_access_key=TESTSECRET\n' >"$T/creds"
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$SM" repo ls --repo "$L&credentials=$T/creds&profile=backup" 2>"$T/err" |
  grep -q "${id1:0:12}" || fail "credentials file: $(cat "$T/err")"
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_SHARED_CREDENTIALS_FILE="$T/creds" AWS_PROFILE=backup \
  "$SM" repo ls --repo "$L" 2>"$T/err" | grep -q "${id1:0:12}" || fail "shared credentials file: $(cat "$T/err")"
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_SHARED_CREDENTIALS_FILE="$T/creds" \
  "$SM" repo ls --repo "$L" >/dev/null 2>"$T/err" && fail "the default profile's wrong secret was accepted"
grep -q "SignatureDoesNotMatch" "$T/err" || fail "default profile: $(cat "$T/err")"
ok "credentials come from credentials=FILE&profile=, or the shared file and AWS_PROFILE"

# virtual-host addressing (http://BUCKET.localhost:PORT), same repository
V="s3://sm-test/repo1?endpoint=http://localhost:${RGW##*:}&path_style=0"
sm repo ls --repo "$V" 2>"$T/err" | grep -q "${id1:0:12}" || fail "virtual-host ls: $(cat "$T/err")"
ok "virtual-host addressing reads the same repository"

# paging: > 1000 packs (4 KiB packs of ~1 KiB chunks), listed by verify, copy and prune
P="s3://sm-test/many?endpoint=$RGW"
sm repo init --repo "$P" --chunk-min 512 --chunk-avg 1k --chunk-max 2k --pack-size 4k >/dev/null 2>&1 || fail "init many"
head -c 5500000 /dev/urandom >"$T/many.bin"
idm=$(sm repo backup --repo "$P" many="$T/many.bin" 2>"$T/err") || fail "backup many: $(cat "$T/err")"
n=$(s3_count "$RGW" sm-test many/data/)
[ "$n" -gt 1000 ] || fail "only $n packs: the paging test needs more than 1000"
sm repo verify --repo "$P" --all >"$T/v.out" 2>&1 || fail "verify many: $(cat "$T/v.out")"
# a copy killed half way leaves a valid (older) repository and resumes where it stopped
"$SM" repo copy --from "$P" --to "$T/many-local" --parallel 1 >"$T/c0.out" 2>&1 &
cpid=$!
for _ in $(seq 600); do [ "$(grep -c '^copied  data/' "$T/c0.out")" -ge 100 ] && break; sleep 0.05; done
kill -9 $cpid; wait $cpid 2>/dev/null
got=$(find "$T/many-local/data" -type f ! -name '*.tmp.*' | wc -l)
[ "$got" -ge 100 ] && [ "$got" -lt "$n" ] && [ ! -d "$T/many-local/snapshots" ] || fail "the copy was not stopped half way (test setup): $got of $n"
sm repo verify --repo "$T/many-local" >"$T/v0.out" 2>&1 || fail "the interrupted copy is not a valid repository: $(cat "$T/v0.out")"
sm repo copy --from "$P" --to "$T/many-local" --quiet >"$T/c.out" 2>&1 || fail "copy: $(cat "$T/c.out")"
grep -Eq "already there" "$T/c.out" && ! grep -q ", 0 already there" "$T/c.out" || fail "the resumed copy did not skip: $(cat "$T/c.out")"
[ "$(find "$T/many-local/data" -type f ! -name '*.tmp.*' | wc -l)" = "$n" ] || fail "copy got $(find "$T/many-local/data" -type f ! -name '*.tmp.*' | wc -l) of $n packs"
sm repo copy --from "$T/many-local" --to "$P" --quiet >"$T/c2.out" 2>&1 &&
  grep -q "copied 0 objects (0 B), $(find "$T/many-local" -type f ! -name '*.tmp.*' | wc -l) already there" "$T/c2.out" || fail "second copy: $(cat "$T/c2.out")"
ok "$n packs: ListObjectsV2 paging lists them all for verify and copy; a copy killed at $got packs was valid and resumed"

# prune: a second snapshot, keep the last, the first one's packs go away
head -c 300000 /dev/urandom >"$T/many.bin"
idm2=$(sm repo backup --repo "$P" many="$T/many.bin" 2>"$T/err") || fail "backup many 2: $(cat "$T/err")"
sm repo prune --repo "$P" --keep-last 1 >"$T/p.out" 2>&1 || fail "prune: $(cat "$T/p.out")"
n2=$(s3_count "$RGW" sm-test many/data/)
[ "$n2" -lt 1000 ] || fail "prune left $n2 packs"
sm repo ls --repo "$P" 2>/dev/null | grep -q "${idm2:0:12}" && ! sm repo ls --repo "$P" 2>/dev/null | grep -q "${idm:0:12}" ||
  fail "prune kept the wrong snapshot"
sm repo restore --repo "$P" latest --target "$T/outm" 2>/dev/null && cmp "$T/outm/many" "$T/many.bin" || fail "restore after prune"
sm repo verify --repo "$P" --all >/dev/null 2>&1 || fail "verify after prune"
ok "prune deletes the packs only the removed snapshot used ($n -> $n2) and the survivor restores"

# a pack deleted behind our back: the ranged reads of its blobs find it missing at once
pk=$(awsx "$RGW" s3 ls --recursive s3://sm-test/many/data/ | sort -k3 -n | tail -1 | awk '{print $4}')
awsx "$RGW" s3 rm --quiet "s3://sm-test/$pk" || fail "cannot delete $pk (test setup)"
SUPAMANAGER_LOG=debug sm repo restore --repo "$P" latest --target "$T/outx" >/dev/null 2>"$T/err"
rc=$?
[ $rc -ne 0 ] && grep -q "pack ${pk:13:12} is missing" "$T/err" && ! grep -q "s3: retrying" "$T/err" ||
  fail "restore with a missing pack (exit $rc): $(grep -v debug "$T/err" | tail -5)"
ok "a pack deleted behind our back is reported missing by name (exit $rc), without retries"

# bounded memory: 256 MiB in 32 MiB packs sent as 5 MiB parts, 4 at a time, need no more memory
# than the same backup into a local directory (parts are slices of the pack being sent)
maxrss() { # CMD...: runs it; prints its peak resident size in KiB (-1 when it failed)
  /usr/bin/python3 -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if r.returncode == 0 else -1)' "$@"
}
head -c $((256 * 1048576)) /dev/urandom >"$T/big.bin"
sm repo init --repo "$T/local-big" >/dev/null 2>&1 || fail "init local"
LB="s3://sm-test/big?endpoint=$RGW&multipart_threshold=5M&part_size=5M&parallel=4"
sm repo init --repo "$LB" >/dev/null 2>&1 || fail "init big"
rss_local=$(maxrss "$SM" repo backup --repo "$T/local-big" big="$T/big.bin")
rss_s3=$(maxrss "$SM" repo backup --repo "$LB" big="$T/big.bin")
[ "$rss_local" -gt 0 ] && [ "$rss_s3" -gt 0 ] || fail "the backups failed ($rss_local, $rss_s3)"
[ "$rss_s3" -le $((rss_local + 64 * 1024)) ] || fail "multipart to S3 used $rss_s3 KiB, a local backup $rss_local KiB"
rm -f "$T/big.bin"
ok "256 MiB through multipart uploads peak at $((rss_s3 / 1024)) MiB resident (a local backup: $((rss_local / 1024)) MiB)"

# the local cache of tree blobs: the next backup walks its parent's trees from the local disk
# (no GET of a pack when nothing changed); entries are sealed and checked like pack reads, so
# a damaged one is read from S3 again and replaced; SUPAMANAGER_CACHE=off reads every tree
# from S3; prune removes the entries of blobs it deleted
proxy "$RGW" cachet --rate 0
CL="s3://sm-test/cachet?endpoint=$PX"
export SUPAMANAGER_CACHE=$T/tcache
$TREETOOL gen "$T/ct" 21 --files 300 || fail "gen cache tree"
sm repo init --repo "$CL" >/dev/null 2>&1 || fail "init cache repo"
c1=$(sm repo backup --repo "$CL" tree="$T/ct" 2>"$T/err") || fail "cache backup 1: $(cat "$T/err")"
rid=$(ls "$T/tcache")
ents() { find "$T/tcache/$rid/trees" -type f ! -name "*.tmp.*" | sort; }
ndirs=$(find "$T/ct" -type d | wc -l)
ntrees=$(ents | wc -l) # distinct directory listings: identical ones are one blob
[ "$ntrees" -ge 2 ] && [ "$ntrees" -le "$ndirs" ] || fail "the cache holds $ntrees trees for $ndirs directories"
[ "$(stat -c %a "$T/tcache/$rid")" = 700 ] || fail "cache directory mode $(stat -c %a "$T/tcache/$rid")"
! grep -q "$(basename "$(find "$T/ct" -type f | head -1)")" -r "$T/tcache" || fail "a file name is readable in the cache"
pack_gets() { grep -c "^GET /sm-test/cachet/data/" "$T/cachet.log"; }
: >"$T/cachet.log"
sm repo backup --repo "$CL" tree="$T/ct" >/dev/null 2>"$T/err" || fail "cache backup 2: $(cat "$T/err")"
[ "$(pack_gets)" = 0 ] || fail "an unchanged backup read $(pack_gets) pack ranges with the trees cached"
: >"$T/cachet.log"
SUPAMANAGER_CACHE=off sm repo backup --repo "$CL" tree="$T/ct" >/dev/null 2>"$T/err" || fail "cache backup 3: $(cat "$T/err")"
[ "$(pack_gets)" -ge 1 ] || fail "without the cache the parent's trees were not read from S3"
nocache=$(pack_gets)
victim=$(ents | head -1)
cp "$victim" "$T/victim.bak"
printf '\x00\x01\x02' | dd of="$victim" bs=1 seek=20 conv=notrunc 2>/dev/null
: >"$T/cachet.log"
c4=$(sm repo backup --repo "$CL" tree="$T/ct" 2>"$T/err") || fail "backup over a damaged cache entry: $(cat "$T/err")"
[ "$(pack_gets)" = 1 ] || fail "a damaged entry took $(pack_gets) reads from S3, expected 1"
cmp -s "$victim" "$T/victim.bak" || fail "the damaged entry was not replaced by the store's copy"
rm -rf "$T/cr"
: >"$T/cachet.log"
sm repo restore --repo "$CL" "$c4" --target "$T/cr" 2>"$T/err" && $TREETOOL compare "$T/ct" "$T/cr/tree" ||
  fail "restore with the cache: $(cat "$T/err")"
rg_cache=$(pack_gets)
rm -rf "$T/cr"
: >"$T/cachet.log"
SUPAMANAGER_CACHE=off sm repo restore --repo "$CL" "$c4" --target "$T/cr" 2>"$T/err" &&
  $TREETOOL compare "$T/ct" "$T/cr/tree" || fail "restore without the cache: $(cat "$T/err")"
[ "$rg_cache" -lt "$(pack_gets)" ] || fail "a restore read $rg_cache pack ranges with the trees cached, $(pack_gets) without"
before=$(ents)
$TREETOOL mutate "$T/ct" 5 20 >/dev/null
sm repo backup --repo "$CL" tree="$T/ct" >/dev/null 2>"$T/err" || fail "cache backup 5: $(cat "$T/err")"
sm repo prune --repo "$CL" --keep-last 1 >/dev/null 2>"$T/err" || fail "prune: $(cat "$T/err")"
gone=$(comm -23 <(echo "$before") <(ents) | wc -l)
[ "$gone" -ge 1 ] || fail "prune left the entries of the trees it deleted in the cache"
: >"$T/cachet.log"
sm repo backup --repo "$CL" tree="$T/ct" >/dev/null 2>"$T/err" || fail "cache backup 6: $(cat "$T/err")"
[ "$(pack_gets)" = 0 ] || fail "prune trimmed trees the kept snapshot uses ($(pack_gets) reads)"
sm repo verify --repo "$CL" --all >/dev/null 2>"$T/err" || fail "verify after prune: $(cat "$T/err")"
unset SUPAMANAGER_CACHE
ok "a local cache of $ntrees sealed trees: an unchanged backup reads no pack from S3 (without it: $nocache reads), a restore $rg_cache; a damaged entry is replaced; prune trims $gone entries"
