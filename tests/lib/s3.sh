#!/bin/bash
# S3 servers for the tests, on 127.0.0.1 only (recipes in ../shared/RECIPES.md):
#   s3.sh rgw-start DIR PORT MON_PORT   Ceph single node (1 mon, 1 memstore OSD, no mgr, no
#                                        auth) + radosgw; verifies SigV4. User TESTKEY/TESTSECRET.
#                                        (RGW_MEMSTORE_BYTES: its RAM store, default 2 GiB)
#   s3.sh rgw-stop DIR
#   s3.sh s3rver-start DIR PORT         s3rver 3.7.1 (npm, in tests/s3/node_modules); checks the
#                                        access key only. User S3RVER/S3RVER.
#   s3.sh s3rver-stop DIR
#   s3.sh mb ENDPOINT BUCKET            create a bucket (AWS_ACCESS_KEY_ID/SECRET from the env)
# Installs what is missing (apt-get, npm) first; idempotent. A second start of a running server
# answers "already running".
set -euo pipefail
cmd=${1:?usage: s3.sh rgw-start|rgw-stop|s3rver-start|s3rver-stop|mb ...}
shift
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S3RVER_HOME=${S3RVER_HOME:-$(cd "$HERE/.." && pwd)/s3}

apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

rgw_stop() {
  local dir=$1 pids="" f
  for f in "$dir"/run/{client.rgw,osd.0,mon.a}.pid; do [ -f "$f" ] && pids="$pids $(cat "$f")"; done
  [ -n "$pids" ] || return 0
  # SIGKILL: the cluster's data lives in memory and is thrown away (SIGTERM takes ~2 s per daemon)
  kill -9 $pids 2>/dev/null || true
  for _ in $(seq 50); do kill -0 $pids 2>/dev/null || break; sleep 0.1; done
  rm -f "$dir"/run/*.pid
}

rgw_start() {
  local dir port=$2 mon=$3 fsid c id
  dir=$(abs "$1")
  if [ -f "$dir/run/client.rgw.pid" ] && kill -0 "$(cat "$dir/run/client.rgw.pid")" 2>/dev/null; then
    echo "rgw already running: http://127.0.0.1:$port"; return 0
  fi
  command -v radosgw >/dev/null && command -v ceph-osd >/dev/null && command -v ceph-mon >/dev/null ||
    apt_install ceph-mon ceph-osd radosgw
  [ -f "$dir/ceph.conf" ] && rgw_stop "$dir"
  rm -rf "$dir"; mkdir -p "$dir"/{run,log,mon,osd0,rgw}
  fsid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$dir/ceph.conf" <<EOC
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon]
mon initial members = a
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
osd objectstore = memstore
memstore device bytes = ${RGW_MEMSTORE_BYTES:-2147483648}
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
paxos propose interval = 0.1
run dir = $dir/run
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
keyring = /dev/null
[mon.a]
mon data = $dir/mon
[osd.0]
osd data = $dir/osd0
osd journal = $dir/osd0/journal
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$port tcp_nodelay=1
rgw data = $dir/rgw
rgw dns name = localhost
EOC
  c="-c $dir/ceph.conf"
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon]" "$dir/monmap" >/dev/null
  ceph-mon $c -i a --mkfs --monmap "$dir/monmap" >"$dir/log/mkfs.log" 2>&1
  ceph-mon $c -i a
  id=$(timeout 30 ceph $c osd create)
  ceph-osd $c -i "$id" --mkfs >>"$dir/log/mkfs.log" 2>&1
  ceph-osd $c -i "$id" 2>>"$dir/log/osd-start.log"
  for _ in $(seq 150); do timeout 5 ceph $c osd stat 2>/dev/null | grep -q '1 up' && break; sleep 0.2; done
  radosgw $c -n client.rgw
  for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
  curl -sf -o /dev/null "http://127.0.0.1:$port/" || { echo "radosgw did not come up; see $dir/log" >&2; return 1; }
  radosgw-admin $c user create --uid=test --display-name=test \
    --access-key="${RGW_ACCESS:-TESTKEY}" --secret-key="${RGW_SECRET:-TESTSECRET}" >"$dir/user.json"
  echo "rgw ready: http://127.0.0.1:$port"
}

s3rver_start() {
  local dir port=$2 pidf
  dir=$(abs "$1"); pidf=$dir.s3rver.pid
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    echo "s3rver already running (pid $(cat "$pidf"))"; return 0
  fi
  { command -v node && command -v npm; } >/dev/null || apt_install nodejs npm
  if [ ! -f "$S3RVER_HOME/node_modules/s3rver/bin/s3rver.js" ]; then
    mkdir -p "$S3RVER_HOME"
    echo "installing: s3rver@3.7.1 (npm) into $S3RVER_HOME" >&2
    # a lock: parallel tests install once
    ( flock 9; [ -f "$S3RVER_HOME/node_modules/s3rver/bin/s3rver.js" ] ||
        npm install --prefix "$S3RVER_HOME" --no-audit --no-fund --loglevel=error s3rver@3.7.1 >/dev/null
    ) 9>"$S3RVER_HOME/.install.lock"
  fi
  mkdir -p "$dir"
  # --openssl-legacy-provider: without it paginated lists answer 500 (ERR_OSSL_EVP_UNSUPPORTED)
  (cd "$dir" && exec nohup node --openssl-legacy-provider "$S3RVER_HOME/node_modules/s3rver/bin/s3rver.js" \
    -d "$dir" -a 127.0.0.1 -p "$port" --silent >"$dir.s3rver.log" 2>&1) &
  echo $! >"$pidf"
  for _ in $(seq 150); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    kill -0 "$(cat "$pidf")" 2>/dev/null || { cat "$dir.s3rver.log" >&2; return 1; }
    sleep 0.1
  done
  curl -s -o /dev/null "http://127.0.0.1:$port/" || { cat "$dir.s3rver.log" >&2; return 1; }
  echo "s3rver ready: http://127.0.0.1:$port"
}

s3rver_stop() {
  local pidf
  pidf=$(abs "$1").s3rver.pid
  if [ -f "$pidf" ]; then kill "$(cat "$pidf")" 2>/dev/null || true; rm -f "$pidf"; fi
}

# PUT /BUCKET signed with curl's own SigV4 (no AWS CLI start-up cost); 409 = already there
mb() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --aws-sigv4 "aws:amz:${AWS_REGION:-us-east-1}:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    "$1/$2")
  case $code in 200|409) return 0 ;; *) echo "cannot create bucket $2 at $1: HTTP $code" >&2; return 1 ;; esac
}

case $cmd in
rgw-start) rgw_start "$@" ;;
rgw-stop) rgw_stop "$(abs "$1")"; echo "stopped rgw in $1" ;;
s3rver-start) s3rver_start "$@" ;;
s3rver-stop) s3rver_stop "$1" ;;
mb) mb "$@" ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
