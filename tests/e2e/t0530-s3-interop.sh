#!/bin/bash
# Interoperability on radosgw: what we write is plain S3 that the AWS CLI and s3cmd list
# and fetch (a repository fetched by `aws s3 sync` verifies as a directory), and a
# repository the AWS CLI uploads (with its own multipart uploads) is readable by us.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"

rgw_up
s3_mb "$RGW" sm-interop
L="s3://sm-interop/ours?endpoint=$RGW&multipart_threshold=5M&part_size=5M"
mkdir -p "$T/src/d"
head -c 9000000 /dev/urandom >"$T/src/big.bin"
for i in $(seq 30); do echo "row $i" >"$T/src/d/f$i"; done
sm repo init --repo "$L" --pack-size 8M >/dev/null 2>&1 || fail "init"
sm repo backup --repo "$L" tree="$T/src" >/dev/null 2>"$T/err" || fail "backup: $(cat "$T/err")"
sm repo copy --from "$L" --to "$T/ref" --quiet >/dev/null 2>"$T/err" || fail "copy: $(cat "$T/err")"

# our objects as the AWS CLI sees them: the same keys and sizes as the copy
(cd "$T/ref" && find . -type f -printf '%P %s\n' | sort) >"$T/want"
awsx "$RGW" s3api list-objects-v2 --bucket sm-interop --prefix ours/ --query 'Contents[].[Key,Size]' --output text |
  sed 's|^ours/||' | awk '{print $1, $2}' | sort >"$T/got"
diff "$T/want" "$T/got" >&2 || fail "the AWS CLI lists other objects than ours"
awsx "$RGW" s3 cp s3://sm-interop/ours/config - >"$T/config" 2>"$T/err" && cmp "$T/config" "$T/ref/config" || fail "aws s3 cp of config: $(cat "$T/err")"
awsx "$RGW" s3 sync --quiet s3://sm-interop/ours "$T/fetched" 2>"$T/err" || fail "aws s3 sync down: $(cat "$T/err")"
sm repo verify --repo "$T/fetched" --all >/dev/null 2>"$T/err" || fail "the repository fetched by the AWS CLI: $(cat "$T/err")"
sm repo restore --repo "$T/fetched" latest --target "$T/out1" 2>/dev/null && $TREETOOL compare "$T/src" "$T/out1/tree" || fail "restore of the fetched copy"
ok "the AWS CLI lists our objects (same keys and sizes) and fetches a repository that verifies and restores"

S3CMD=(s3cmd --access_key="$AWS_ACCESS_KEY_ID" --secret_key="$AWS_SECRET_ACCESS_KEY" --host="${RGW#http://}"
  --host-bucket="${RGW#http://}" --no-ssl --region=us-east-1 --config=/dev/null)
"${S3CMD[@]}" ls --recursive s3://sm-interop/ours/ 2>"$T/err" | awk '{print $4}' | sed 's|^s3://sm-interop/ours/||' | sort >"$T/s3cmd"
[ "$(wc -l <"$T/s3cmd")" = "$(wc -l <"$T/want")" ] && [ -s "$T/s3cmd" ] || fail "s3cmd lists $(wc -l <"$T/s3cmd") objects: $(cat "$T/err")"
snap=$(grep '^snapshots/' "$T/s3cmd" | head -1)
"${S3CMD[@]}" get --quiet "s3://sm-interop/ours/$snap" "$T/snap" 2>"$T/err" && cmp "$T/snap" "$T/ref/$snap" || fail "s3cmd get: $(cat "$T/err")"
ok "s3cmd lists and fetches our objects too"

# the other way: a repository made in a directory, uploaded by the AWS CLI (multipart above 8 MiB)
sm repo init --repo "$T/theirs" --pack-size 16M >/dev/null 2>&1 || fail "init local"
head -c 14000000 /dev/urandom >"$T/src/big2.bin"
sm repo backup --repo "$T/theirs" tree="$T/src" >/dev/null 2>&1 || fail "backup local"
awsx "$RGW" s3 sync --quiet "$T/theirs" s3://sm-interop/theirs 2>"$T/err" || fail "aws s3 sync up: $(cat "$T/err")"
etags=$(awsx "$RGW" s3api list-objects-v2 --bucket sm-interop --prefix theirs/data/ --query 'Contents[].ETag' --output text)
grep -q -- '-[0-9]"' <<<"$etags" || fail "the AWS CLI made no multipart object (test setup): $etags"
S="s3://sm-interop/theirs?endpoint=$RGW"
sm repo verify --repo "$S" --all >/dev/null 2>"$T/err" || fail "verify of the AWS CLI's upload: $(cat "$T/err")"
sm repo restore --repo "$S" latest --target "$T/out2" 2>/dev/null && $TREETOOL compare "$T/src" "$T/out2/tree" || fail "restore of the AWS CLI's upload"
ok "a repository uploaded by the AWS CLI (multipart objects included) verifies and restores from S3"
