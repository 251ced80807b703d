# Helpers for S3 end-to-end tests; source after lib.sh. Servers run on 127.0.0.1 with free
# ports, from tests/lib/s3.sh, and are stopped when the test exits.
S3SH="$SOURCE_ROOT/tests/lib/s3.sh"
AWS=/usr/bin/aws   # Debian's awscli (a pyenv shim may come first on PATH)
export AWS_REGION=us-east-1 AWS_PAGER="" AWS_EC2_METADATA_DISABLED=true
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_PROFILE AWS_SESSION_TOKEN

# s3_free_port: a TCP port nobody listens on, in 31000-39999 (PostgreSQL tests use 21000-29999)
s3_free_port() {
  /usr/bin/python3 - <<'PY'
import random, socket
for _ in range(200):
    p = random.randint(31000, 39999)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); s.close(); print(p); break
    except OSError:
        s.close()
PY
}

# rgw_up: Ceph radosgw in $T/rgw; sets RGW (endpoint URL) and the AWS_* credentials
rgw_up() {
  local port mon
  port=$(s3_free_port); mon=$(s3_free_port)
  on_exit "bash '$S3SH' rgw-stop '$T/rgw'"
  bash "$S3SH" rgw-start "$T/rgw" "$port" "$mon" >"$T/rgw.out" 2>&1 || fail "radosgw did not start: $(tail -5 "$T/rgw.out")"
  RGW=http://127.0.0.1:$port
  export AWS_ACCESS_KEY_ID=TESTKEY AWS_SECRET_ACCESS_KEY=TESTSECRET
}

# s3rver_up: s3rver in $T/s3rver; sets S3RVER (endpoint URL) and the AWS_* credentials
s3rver_up() {
  local port
  port=$(s3_free_port)
  on_exit "bash '$S3SH' s3rver-stop '$T/s3rver'"
  bash "$S3SH" s3rver-start "$T/s3rver" "$port" >"$T/s3rver.out" 2>&1 || fail "s3rver did not start: $(tail -5 "$T/s3rver.out")"
  S3RVER=http://127.0.0.1:$port
  export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
}

s3_mb() { bash "$S3SH" mb "$1" "$2" || fail "cannot create bucket $2"; }

# awsx ENDPOINT args...: the AWS CLI against a test server
awsx() { local ep=$1; shift; "$AWS" --endpoint-url "$ep" "$@"; }

# s3_count ENDPOINT BUCKET PREFIX: objects under the prefix, as the AWS CLI lists them
s3_count() { awsx "$1" s3 ls --recursive "s3://$2/$3" | wc -l; }

# rgw_requests: how many requests radosgw has served so far (its perf counter)
rgw_requests() {
  ceph --admin-daemon "$T/rgw/run/client.rgw.asok" perf dump |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["rgw"]["req"])'
}

# proxy UPSTREAM NAME ARGS...: tests/lib/s3proxy.py in front of UPSTREAM, logging to $T/NAME.log;
# sets PX (its URL)
proxy() {
  local up=$1 name=$2 port pid
  shift 2
  port=$(s3_free_port)
  /usr/bin/python3 "$SOURCE_ROOT/tests/lib/s3proxy.py" --listen "$port" --upstream "$up" --log "$T/$name.log" "$@" \
    2>"$T/$name.err" &
  pid=$!
  on_exit "kill $pid"
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
  PX=http://127.0.0.1:$port
}
