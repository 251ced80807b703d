#!/bin/bash
# The S3 store against a second implementation, s3rver (npm): a round trip of a tree with a
# multipart-sized file, an incremental backup, verify, restore, prune, and a copy back to a
# directory that verifies on its own. Through a logging proxy: the headers every upload
# carries (storage class, server-side encryption, Content-MD5, the signed SHA-256).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"

s3rver_up
s3_mb "$S3RVER" sm-s3rver
L="s3://sm-s3rver/r?endpoint=$S3RVER&multipart_threshold=5M&part_size=5M"

mkdir -p "$T/src/a/b"
head -c 11000000 /dev/urandom >"$T/src/big.bin"
for i in $(seq 50); do head -c $((i * 997)) /dev/urandom >"$T/src/a/b/f$i"; done
ln -s a/b/f1 "$T/src/link"
chmod 640 "$T/src/a/b/f2"
sm repo init --repo "$L" --pack-size 8M >/dev/null 2>&1 || fail "init"
id1=$(sm repo backup --repo "$L" tree="$T/src" 2>"$T/err") || fail "backup 1: $(cat "$T/err")"
cp -a "$T/src" "$T/state1"
echo changed >"$T/src/a/b/f3"
rm "$T/src/a/b/f4"
id2=$(sm repo backup --repo "$L" tree="$T/src" 2>"$T/err") || fail "backup 2: $(cat "$T/err")"
sm repo verify --repo "$L" --all >/dev/null 2>"$T/err" || fail "verify: $(cat "$T/err")"
sm repo restore --repo "$L" "$id1" --target "$T/out1" 2>/dev/null && $TREETOOL compare "$T/state1" "$T/out1/tree" || fail "restore 1"
sm repo restore --repo "$L" "$id2" --target "$T/out2" 2>/dev/null && $TREETOOL compare "$T/src" "$T/out2/tree" || fail "restore 2"
ok "s3rver: two backups (one multipart pack) verify and restore exactly"

sm repo prune --repo "$L" --keep-last 1 >"$T/p.out" 2>&1 || fail "prune: $(cat "$T/p.out")"
sm repo ls --repo "$L" 2>/dev/null | grep -q "${id2:0:12}" && ! sm repo ls --repo "$L" 2>/dev/null | grep -q "${id1:0:12}" || fail "prune kept the wrong snapshot"
sm repo verify --repo "$L" --all >/dev/null 2>"$T/err" || fail "verify after prune: $(cat "$T/err")"
ok "s3rver: prune (no ListMultipartUploads there: skipped quietly) and the rest verifies"

sm repo copy --from "$L" --to "$T/local" --quiet >/dev/null 2>"$T/err" || fail "copy: $(cat "$T/err")"
sm repo verify --repo "$T/local" --all >/dev/null 2>"$T/err" || fail "verify of the copy: $(cat "$T/err")"
sm repo restore --repo "$T/local" latest --target "$T/out3" 2>/dev/null && $TREETOOL compare "$T/src" "$T/out3/tree" || fail "restore of the copy"
ok "s3rver: repo copy to a directory gives a repository that verifies and restores"

# what goes on the wire: a proxy logs the headers of every request
proxy "$S3RVER" hdr --rate 0 --delay-ms 300 --log-headers authorization,x-amz-storage-class,x-amz-server-side-encryption,content-md5,x-amz-content-sha256
H="s3://sm-s3rver/hdr?endpoint=$PX&region=eu-west-3&storage_class=STANDARD_IA&sse=AES256&multipart_threshold=5M&part_size=5M"
sm repo init --repo "$H" --pack-size 8M >/dev/null 2>"$T/err" || fail "init through the proxy: $(cat "$T/err")"
sm repo backup --repo "$H" tree="$T/src" >/dev/null 2>"$T/err" || fail "backup through the proxy: $(cat "$T/err")"
sha='x-amz-content-sha256=[0-9a-f]{64} ev='
single=$(grep -E "^PUT /sm-s3rver/hdr/data/[^?]* -> 200" "$T/hdr.log" | head -1)
grep -Eq "x-amz-storage-class=STANDARD_IA x-amz-server-side-encryption=AES256 content-md5=[A-Za-z0-9+/]{22}== $sha" <<<"$single" ||
  fail "a pack PUT without the headers: $single"
init=$(grep -E "^POST /sm-s3rver/hdr/data/.*\?uploads= -> 200" "$T/hdr.log" | head -1)
grep -q "x-amz-storage-class=STANDARD_IA x-amz-server-side-encryption=AES256" <<<"$init" || fail "multipart initiation: $init"
part=$(grep -E "^PUT /sm-s3rver/hdr/data/.*partNumber=2&uploadId=" "$T/hdr.log" | head -1)
grep -Eq "content-md5=[A-Za-z0-9+/]{22}== $sha" <<<"$part" || fail "a part without its checksums: $part"
[ -z "$(grep -E '^(PUT|POST) ' "$T/hdr.log" | grep -Ev "$sha")" ] || fail "a request without a signed payload hash"
grep -E "^PUT /sm-s3rver/hdr/data/.*partNumber=" "$T/hdr.log" | sed 's/.* ev=//' | /usr/bin/python3 -c '
import sys
iv = [tuple(map(int, l.split("-"))) for l in sys.stdin.read().split()]
assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(iv) for b in iv[i + 1:]), iv
' || fail "the parts of a multipart upload never overlapped: $(grep partNumber "$T/hdr.log")"
[ -z "$(grep -E '^[A-Z]+ /sm-s3rver' "$T/hdr.log" | grep -Ev 'authorization=AWS4-HMAC-SHA256 Credential=S3RVER/[0-9]{8}/eu-west-3/s3/aws4_request, ')" ] ||
  fail "a request not signed for region eu-west-3: $(grep -E '^[A-Z]+ /sm-s3rver' "$T/hdr.log" | grep -v 'eu-west-3/s3/aws4_request' | head -2)"
ok "uploads carry x-amz-storage-class, x-amz-server-side-encryption, Content-MD5 and the signed SHA-256; parts go up in parallel; every request is signed for the configured region"
