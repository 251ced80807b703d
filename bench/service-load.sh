#!/bin/bash
# Service load benchmark (issue "the service"): on loopback, 100 concurrent
# connections listing backups and reading a backup's status for 60 s while
# two backups run (one after another, on two projects); errors, latency
# percentiles, the daemon's RSS over time; 50 SSE subscribers to one backup;
# a download against `cat file > /dev/null`.
#
#   bench/service-load.sh [DURATION_S]     (default 60; needs wrk: apt-get install wrk)
#
# Writes bench/results/<date>-service.md. A benchmark: never part of the tests.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DURATION=${1:-60}
REPO_ROOT=$(cd "$BENCH_HOME/.." && pwd)
SUPAMANAGER=${SUPAMANAGER:-$REPO_ROOT/build/supamanager}
BENCH_DIR=$(abspath "${BENCH_DIR:-/var/tmp/supamanager-bench}")
DATA=$BENCH_DIR/data
W=$BENCH_DIR/service-work
OUT=$BENCH_HOME/results/$(date -u +%Y-%m-%dT%H%M%SZ)-service.md
export ENCRYPTION_SECRET=bench-service-secret JWT_SECRET=bench-service-jwt-secret-0123456789
export SUPAMANAGER_HOME=$W/home
PORT_API=${BENCH_API_PORT:-58080}

command -v wrk >/dev/null || die "wrk is missing (apt-get install wrk)"
[ -f "$DATA/dataset.env" ] || "$BENCH_HOME/gen-dataset.sh" "$DATA" 0.25
rm -rf "$W" && mkdir -p "$W" && chmod 755 "$W"
pg_start "$DATA" run
PGPORT=$(pg_port "$DATA")
DAEMON=
cleanup() { [ -z "$DAEMON" ] || kill "$DAEMON" 2>/dev/null || true; wait 2>/dev/null || true; pg_stop "$DATA"; rm -rf "$W"; }
trap cleanup EXIT

mkdir -p "$W/s2" && cp -a "$DATA/files/." "$W/s2/" 2>/dev/null || true
"$SUPAMANAGER" project add load1 --name L1 --db-url "postgresql://postgres@127.0.0.1:$PGPORT/bench" --storage-dir "$DATA/files" >/dev/null 2>&1
"$SUPAMANAGER" project add load2 --name L2 --db-url "postgresql://postgres@127.0.0.1:$PGPORT/bench" --storage-dir "$W/s2" >/dev/null 2>&1
seed=$("$SUPAMANAGER" backup create load1 --type database 2>/dev/null)
"$SUPAMANAGER" serve --listen "127.0.0.1:$PORT_API" >"$W/serve.out" 2>"$W/serve.log" &
DAEMON=$!
for i in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT_API/health" >/dev/null && break; sleep 0.1; done
TOKEN=$(python3 - <<'PY'
import base64, hashlib, hmac, json, os, time
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
p = b(json.dumps({"role": "service_role", "exp": int(time.time()) + 7200}).encode())
s = b(hmac.new(os.environ["JWT_SECRET"].encode(), (h + "." + p).encode(), hashlib.sha256).digest())
print(h + "." + p + "." + s)
PY
)
api() { curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }

# keep two backups running (one per project) for the whole load
keep_busy() {
	local p=$1 end=$(($(date +%s) + DURATION + 5)) n=0
	while [ "$(date +%s)" -lt $end ]; do
		id=$(api -X POST -d '{"type":"FULL"}' "http://127.0.0.1:$PORT_API/platform/projects/$p/backups" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("backup_id",""))')
		[ -n "$id" ] || { sleep 0.5; continue; }
		n=$((n + 1))
		while api "http://127.0.0.1:$PORT_API/platform/projects/$p/backups/$id" | grep -q '"status":"CREATING"'; do sleep 0.5; done
	done
	echo $n >"$W/busy-$p"
}
keep_busy load1 & B1=$!
keep_busy load2 & B2=$!
sleep 2

# RSS sampler
( while kill -0 $DAEMON 2>/dev/null; do awk '/VmRSS/ {print $2}' /proc/$DAEMON/status; sleep 1; done ) >"$W/rss" &
SAMPLER=$!

cat >"$W/load.lua" <<LUA
local paths = {"/platform/projects/load1/backups", "/platform/projects/load1/backups/$seed",
               "/platform/projects/load2/backups?limit=10", "/health"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1], {["Authorization"] = "Bearer $TOKEN"})
end
done = function(summary, latency, requests)
  io.write(string.format("LAT p50=%.2f p90=%.2f p99=%.2f max=%.2f\n", latency:percentile(50)/1000,
    latency:percentile(90)/1000, latency:percentile(99)/1000, latency.max/1000))
  io.write(string.format("ERR connect=%d read=%d write=%d status=%d timeout=%d req=%d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout, summary.requests))
end
LUA
say "load: 100 connections for ${DURATION}s while backups run"
wrk -t2 -c100 -d"${DURATION}s" --timeout 10s -s "$W/load.lua" "http://127.0.0.1:$PORT_API" >"$W/wrk.out" 2>&1
kill $SAMPLER 2>/dev/null || true
wait $B1 $B2 2>/dev/null || true
cat "$W/wrk.out"

say "requests only: 100 connections for ${DURATION}s, no backups running (does RSS stay flat?)"
RSS_Q0=$(awk '/VmRSS/ {print $2}' /proc/$DAEMON/status)
wrk -t2 -c100 -d"${DURATION}s" --timeout 10s -s "$W/load.lua" "http://127.0.0.1:$PORT_API" >"$W/wrk2.out" 2>&1
RSS_Q1=$(awk '/VmRSS/ {print $2}' /proc/$DAEMON/status)
wrk -t2 -c100 -d"${DURATION}s" --timeout 10s -s "$W/load.lua" "http://127.0.0.1:$PORT_API" >>"$W/wrk2.out" 2>&1
RSS_Q2=$(awk '/VmRSS/ {print $2}' /proc/$DAEMON/status)
REQS2=$(grep -o 'req=[0-9]*' "$W/wrk2.out" | cut -d= -f2 | paste -sd+ | bc)
read -r _ Q50 Q90 Q99 QMAX <<<"$(grep ^LAT "$W/wrk2.out" | tail -1 | tr '=' ' ' | awk '{print $1, $3, $5, $7, $9}')"

say "SSE: 50 subscribers to one backup"
sse=$(python3 - "$PORT_API" "$TOKEN" <<'PY'
import http.client, json, sys, threading, time
port, tok = int(sys.argv[1]), sys.argv[2]
c = http.client.HTTPConnection("127.0.0.1", port)
c.request("POST", "/platform/projects/load1/backups", body=json.dumps({"type": "FULL"}),
          headers={"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
bid = json.loads(c.getresponse().read())["backup_id"]
res = []
def sub():
    cc = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    cc.request("GET", "/platform/projects/load1/backups/%s/events" % bid, headers={"Authorization": "Bearer " + tok})
    r = cc.getresponse()
    evs = [l for l in r.read().decode().splitlines() if l.startswith("event:")]
    res.append(evs)
ts = [threading.Thread(target=sub) for _ in range(50)]
t0 = time.time()
[t.start() for t in ts]; [t.join() for t in ts]
ok = sum(1 for e in res if e and e[-1] == "event: done")
print("%d %d %.1f" % (ok, min(len(e) for e in res), time.time() - t0))
PY
)
read -r SSE_OK SSE_MIN SSE_S <<<"$sse"

say "download vs cat"
id=$("$SUPAMANAGER" backup list load1 --json | python3 -c 'import json,sys; print([b["id"] for b in json.load(sys.stdin)["backups"] if b["status"]=="COMPLETED"][0])')
url=$(api "http://127.0.0.1:$PORT_API/platform/projects/load1/backups/$id/download" | python3 -c 'import json,sys; print(json.load(sys.stdin)["download_url"])')
f=$(ls "$SUPAMANAGER_HOME"/exports/"$id"*)
SIZE=$(stat -c %s "$f")
sync; echo 3 >/proc/sys/vm/drop_caches
T_CAT=$( { /usr/bin/time -f %e cat "$f" >/dev/null; } 2>&1 )
sync; echo 3 >/proc/sys/vm/drop_caches
T_DL=$( { /usr/bin/time -f %e curl -s -o /dev/null "$url"; } 2>&1 )

read -r _ P50 P90 P99 MAX <<<"$(grep ^LAT "$W/wrk.out" | tr '=' ' ' | awk '{print $1, $3, $5, $7, $9}')"
ERRS=$(grep ^ERR "$W/wrk.out")
REQS=$(grep -o 'req=[0-9]*' <<<"$ERRS" | cut -d= -f2)
RSS_FIRST=$(sed -n 3p "$W/rss"); RSS_LAST=$(tail -1 "$W/rss"); RSS_MAX=$(sort -n "$W/rss" | tail -1)
{
	echo "# Service load benchmark — $(date -u +%FT%TZ)"
	echo
	echo "$(nproc) cores, $(uname -r), wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), supamanager $(git -C "$REPO_ROOT" rev-parse --short HEAD). Loopback."
	echo
	echo "| figure | value | target |"
	echo "|---|---|---|"
	echo "| requests in ${DURATION}s (100 connections, 2 wrk threads) | $REQS | |"
	echo "| errors | $ERRS | none |"
	echo "| latency p50 / p90 / p99 / max (ms) | $P50 / $P90 / $P99 / $MAX | p99 < 50 |"
	echo "| backups completed meanwhile (load1, load2) | $(cat "$W/busy-load1" 2>/dev/null) , $(cat "$W/busy-load2" 2>/dev/null) | two running |"
	echo "| daemon RSS at start / end / max (MB) | $((RSS_FIRST / 1024)) / $((RSS_LAST / 1024)) / $((RSS_MAX / 1024)) | flat |"
	echo "| daemon RSS every 5 s (MB) | $(awk 'NR % 5 == 1 { printf "%s%d", (n++ ? " " : ""), $1 / 1024 }' "$W/rss") | |"
	echo "| requests only, no backups: two ${DURATION}s runs, $REQS2 requests; RSS before / after 1st / after 2nd (MB) | $((RSS_Q0 / 1024)) / $((RSS_Q1 / 1024)) / $((RSS_Q2 / 1024)) | flat |"
	echo "| requests only: latency p50 / p90 / p99 / max (ms), 2nd run | $Q50 / $Q90 / $Q99 / $QMAX | p99 < 50 |"
	echo "| SSE: subscribers that got every event up to done | $SSE_OK of 50 (min $SSE_MIN events, ${SSE_S}s) | 50 |"
	echo "| download of a $((SIZE / 1000000)) MB archive vs \`cat\` (cold cache) | ${T_DL}s vs ${T_CAT}s | disk speed |"
} >"$OUT"
say "written $OUT"
cat "$OUT"
