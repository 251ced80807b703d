# Helpers for S3 end-to-end tests; source after lib.sh. Servers run on 127.0.0.1 with free
# ports, from tests/lib/s3.sh, and are stopped when the test exits.
S3SH="$SOURCE_ROOT/tests/lib/s3.sh"
AWS=/usr/bin/aws   # Debian's awscli (a pyenv shim may come first on PATH)
export AWS_REGION=us-east-1 AWS_PAGER="" AWS_EC2_METADATA_DISABLED=true
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_PROFILE AWS_SESSION_TOKEN

# s3_free_port: a TCP port nobody listens on, in 30000-32699: below the kernel's ephemeral
# range (32768-60999), where outgoing connections (ceph's daemons talking to each other, curl,
# libpq) take their local ports and could take ours between this choice and the bind
# (PostgreSQL tests use 21000-29999). Reserved for this test by an atomic mkdir, as pg.sh does.
s3_free_port() {
  local p lock=/tmp/supamanager-s3-ports
  mkdir -p "$lock" 2>/dev/null; chmod 1777 "$lock" 2>/dev/null
  for _ in $(seq 200); do
    p=$((30000 + RANDOM % 2700))
    if [ -d "$lock/$p" ]; then # held: free it only when its test has gone
      kill -0 "$(cat "$lock/$p/pid" 2>/dev/null)" 2>/dev/null && continue
      rm -rf "$lock/$p"
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue # someone listens
    mkdir "$lock/$p" 2>/dev/null || continue
    echo $$ >"$lock/$p/pid"
    echo "$p"
    return 0
  done
  return 1
}

# rgw_up: Ceph radosgw in $T/rgw; sets RGW (endpoint URL) and the AWS_* credentials
rgw_up() {
  local port mon try
  on_exit "bash '$S3SH' rgw-stop '$T/rgw'"
  for try in 1 2 3; do
    port=$(s3_free_port) && mon=$(s3_free_port) || fail "no free port for radosgw"
    bash "$S3SH" rgw-start "$T/rgw" "$port" "$mon" >"$T/rgw.out" 2>&1 && break
    # a port taken between the choice and the bind: again, on other ports
    grep -qs "Address already in use" "$T"/rgw/log/*.log && [ $try -lt 3 ] || fail "radosgw did not start: $(tail -5 "$T/rgw.out")"
    bash "$S3SH" rgw-stop "$T/rgw" >/dev/null 2>&1
    rm -rf "$T/rgw"
  done
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
