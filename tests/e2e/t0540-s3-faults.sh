#!/bin/bash
# Faults between us and radosgw, injected by tests/lib/s3proxy.py: with a quarter of the
# requests dropped, reset after the server acted, stalled past the timeout, answered
# 500/503/SlowDown/429 or cut short, a backup still completes, verifies and restores;
# whole objects and listings whose bytes were altered on the way are caught (MD5, XML) and fetched
# again; a permanent 403 fails at once with a clear message; a multipart upload whose
# part is refused is aborted; a backup killed (SIGKILL) in the middle of a multipart
# upload leaves a repository that verifies, takes the next backup, and whose leftovers
# prune removes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"

rgw_up
s3_mb "$RGW" sm-faults
uploads() { # PREFIX: unfinished multipart uploads under it
  awsx "$RGW" s3api list-multipart-uploads --bucket sm-faults --prefix "$1" --output json |
    /usr/bin/python3 -c 'import json,sys; t=sys.stdin.read().strip(); print(len(json.loads(t).get("Uploads") or []) if t else 0)'
}
stat_of() { sed -n "s/.*$2=\([0-9]*\).*/\1/p" "$T/$1.log.stats"; }

mkdir -p "$T/src/d"
head -c 12000000 /dev/urandom >"$T/src/big.bin"
for i in $(seq 40); do head -c $((i * 1500)) /dev/urandom >"$T/src/d/f$i"; done

# 1. flaky: 25 % of the requests fail in one of eight ways
kinds="drop reset-after stall 500 503 slowdown 429 truncate"
proxy "$RGW" flaky --rate 0.25 --seed 7 --faults "$(tr ' ' , <<<"$kinds")" --stall-s 3
F="s3://sm-faults/flaky?endpoint=$PX&multipart_threshold=5M&part_size=5M&retry_base_ms=5&retries=10&timeout=1"
sm repo init --repo "$F" --pack-size 8M >/dev/null 2>"$T/err" || fail "init through faults: $(cat "$T/err")"
id=$(sm repo backup --repo "$F" tree="$T/src" 2>"$T/err") || fail "backup through faults: $(cat "$T/err")"
sm repo verify --repo "$F" --all >/dev/null 2>"$T/err" || fail "verify through faults: $(cat "$T/err")"
sm repo restore --repo "$F" "$id" --target "$T/out1" 2>"$T/err" && $TREETOOL compare "$T/src" "$T/out1/tree" ||
  fail "restore through faults: $(cat "$T/err")"
for f in $kinds; do
  grep -q " $f ev=" "$T/flaky.log" || fail "the proxy never injected '$f' (test setup): $(cat "$T/flaky.log.stats")"
done
sm repo verify --repo "s3://sm-faults/flaky?endpoint=$RGW" --all >/dev/null 2>"$T/err" || fail "verify without the proxy: $(cat "$T/err")"
ok "through $(stat_of flaky faults) injected faults in $(stat_of flaky requests) requests, a backup completes, verifies and restores"

# whole objects and listings altered on the way (same length): the MD5 ETag or the XML parser
# catches it, they are fetched again
proxy "$RGW" corrupt --rate 0.5 --seed 3 --faults corrupt
C="s3://sm-faults/flaky?endpoint=$PX&retry_base_ms=5&retries=10"
sm repo verify --repo "$C" >/dev/null 2>"$T/err" || fail "verify through corrupting proxy: $(cat "$T/err")"
sm repo ls --repo "$C" >/dev/null 2>"$T/err" || fail "ls through corrupting proxy: $(cat "$T/err")"
grep -q ' corrupt ev=' "$T/corrupt.log" || fail "nothing was corrupted (test setup)"
grep -q 'list-type=2.* corrupt ev=' "$T/corrupt.log" || fail "no listing was garbled (test setup)"
ok "$(grep -c ' corrupt ev=' "$T/corrupt.log") objects and listings altered on the way were caught (MD5, XML) and fetched again"

# a multipart upload whose part 2 is refused fails with the part named, and is aborted
proxy "$RGW" part2 --rate 0 --forbid-match 'partNumber=2&'
A="s3://sm-faults/abort?endpoint=$PX&multipart_threshold=5M&part_size=5M"
sm repo init --repo "s3://sm-faults/abort?endpoint=$RGW" --pack-size 16M >/dev/null 2>&1 || fail "init abort repo"
sm repo backup --repo "$A" big="$T/src/big.bin" >/dev/null 2>"$T/err" && fail "a refused part did not fail the backup"
grep -q "cannot write a part of 'abort/data/.*' in S3 bucket 'sm-faults': HTTP 403 AccessDenied" "$T/err" || fail "part error: $(cat "$T/err")"
grep -q "DELETE /sm-faults/abort/data/.*uploadId=" "$T/part2.log" && [ "$(uploads abort/)" = 0 ] ||
  fail "the failed upload was not aborted: $(uploads abort/) left"
ok "a refused part fails the upload with the part's object named, and the upload is aborted"

# 2. a permanent 403: no retries, a clear message
proxy "$RGW" forbid --forbid
B="s3://sm-faults/forbid?endpoint=$PX&retry_base_ms=5"
sm repo init --repo "$B" >/dev/null 2>"$T/err" && fail "init passed through a 403"
grep -q "in S3 bucket 'sm-faults': HTTP 403 AccessDenied: Access Denied" "$T/err" &&
  grep -q "hint: The S3 credentials are not allowed to do this" "$T/err" && ! grep -q attempts "$T/err" ||
  fail "403 message: $(cat "$T/err")"
n=$(grep -c ' /sm-faults/' "$T/forbid.log")   # the HEAD, and a one-byte GET for the error code
[ "$n" -le 2 ] || fail "a 403 was retried: $(cat "$T/forbid.log")"
ok "a permanent 403 fails after $n requests (no retries) with HTTP 403 AccessDenied and a hint"

# 3. SIGKILL in the middle of a multipart upload
D="s3://sm-faults/crash?endpoint=$RGW&multipart_threshold=5M&part_size=5M"
sm repo init --repo "$D" --pack-size 32M >/dev/null 2>&1 || fail "init crash repo"
small=$(sm repo backup --repo "$D" d="$T/src/d" 2>"$T/err") || fail "first backup: $(cat "$T/err")"
proxy "$RGW" slow --rate 0 --delay-ms 100
K="s3://sm-faults/crash?endpoint=$PX&multipart_threshold=5M&part_size=5M&parallel=1"
head -c 30000000 /dev/urandom >"$T/huge.bin"
"$SM" repo backup --repo "$K" huge="$T/huge.bin" >/dev/null 2>"$T/kill.err" &
bpid=$!
for _ in $(seq 600); do grep -q "partNumber=" "$T/slow.log" 2>/dev/null && break; sleep 0.05; done
grep -q "partNumber=" "$T/slow.log" || fail "no part was uploaded (test setup): $(cat "$T/kill.err")"
kill -9 $bpid
wait $bpid 2>/dev/null
ups=$(uploads crash/)
[ "$ups" -ge 1 ] || fail "no unfinished upload after the kill (test setup): $ups"
sm repo verify --repo "$D" --all >/dev/null 2>"$T/err" || fail "verify after the kill: $(cat "$T/err")"
sm repo ls --repo "$D" 2>/dev/null | grep -q "${small:0:12}" || fail "the first snapshot is gone"
id3=$(sm repo backup --repo "$D" huge="$T/huge.bin" 2>"$T/err") || fail "backup after the kill: $(cat "$T/err")"
sm repo prune --repo "$D" --keep-last 2 >/dev/null 2>"$T/err" || fail "prune: $(cat "$T/err")"
ups=$(uploads crash/)
[ "$ups" = 0 ] || fail "prune left $ups unfinished uploads"
sm repo verify --repo "$D" --all >/dev/null 2>"$T/err" || fail "verify after prune: $(cat "$T/err")"
sm repo restore --repo "$D" "$id3" --target "$T/out3" 2>/dev/null && cmp "$T/out3/huge" "$T/huge.bin" || fail "restore after the kill"
ok "a backup killed mid-multipart leaves a valid repository; the next backup works and prune aborts the leftover upload"
