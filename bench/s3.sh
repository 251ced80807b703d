#!/bin/bash
# S3 benchmark (issue 7): the benchmark dataset backed up to and restored from Ceph
# radosgw on loopback by supamanager's S3 store and by restic's S3 backend, in one run,
# against the same server. The same input for both: a pg_dump -Fc -Z0 of the benchmark
# database (taken once, not timed) and the storage tree.
#
#   bench/s3.sh [SCALE]     (default 1; the dataset of gen-dataset.sh is reused)
#
# Measured per tool: first backup, a second backup with nothing changed, a restore of
# the first snapshot: wall seconds, peak RSS, and the S3 requests radosgw served
# (its `req` perf counter, read from the admin socket before and after).
# Writes bench/results/<date>-s3.md. A benchmark: never part of the tests.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SCALE=${1:-1}
REPO_ROOT=$(cd "$BENCH_HOME/.." && pwd)
SUPAMANAGER=${SUPAMANAGER:-$REPO_ROOT/build/supamanager}
BENCH_DIR=$(abspath "${BENCH_DIR:-/var/tmp/supamanager-bench}")
DATA=$BENCH_DIR/data
W=$BENCH_DIR/s3-work
OUT=$BENCH_HOME/results/$(date -u +%Y-%m-%dT%H%M%SZ)-s3.md
S3SH=$REPO_ROOT/tests/lib/s3.sh
export ENCRYPTION_SECRET=bench-s3-secret RESTIC_PASSWORD=bench-s3-secret
export AWS_ACCESS_KEY_ID=TESTKEY AWS_SECRET_ACCESS_KEY=TESTSECRET AWS_REGION=us-east-1
# both tools keep their local caches (our sealed trees, restic's trees and index) in the
# work directory, so each run starts cold and leaves nothing behind
export SUPAMANAGER_CACHE=$W/sm-cache RESTIC_CACHE_DIR=$W/restic-cache
RGW_PORT=${BENCH_RGW_PORT:-39480}
RGW_MON=${BENCH_RGW_MON:-39481}

[ "$(id -u)" = 0 ] || die "run as root"
[ -x "$SUPAMANAGER" ] || die "no engine at $SUPAMANAGER"
command -v restic >/dev/null || die "missing restic (apt-get install restic)"
mkdir -p "$BENCH_DIR" && chmod 755 "$BENCH_DIR"
exec 9>"$BENCH_DIR/.lock"
flock -w 600 9 || die "another benchmark holds $BENCH_DIR/.lock"
[ -f "$DATA/dataset.env" ] || "$BENCH_HOME/gen-dataset.sh" "$DATA" "$SCALE"
rm -rf "$W" && mkdir -p "$W/out" && chmod 755 "$W"
cleanup() { bash "$S3SH" rgw-stop "$W/rgw" >/dev/null 2>&1 || true; pg_stop "$DATA"; rm -rf "$W"; }
trap cleanup EXIT

say "pg_dump -Fc -Z0 of the benchmark database (input, not timed)"
pg_start "$DATA" run
pg_dump_ "$DATA" bench -Fc -Z0 >"$W/bench.dump"
pg_stop "$DATA"
IN_BYTES=$(( $(stat -c %s "$W/bench.dump") + $(du -sb "$DATA/files" | cut -f1) ))

say "radosgw (memstore) on 127.0.0.1:$RGW_PORT"
RGW_MEMSTORE_BYTES=$((12 << 30)) bash "$S3SH" rgw-start "$W/rgw" "$RGW_PORT" "$RGW_MON" >/dev/null
EP=http://127.0.0.1:$RGW_PORT
bash "$S3SH" mb "$EP" bench-sm && bash "$S3SH" mb "$EP" bench-restic
reqs() { ceph --admin-daemon "$W/rgw/run/client.rgw.asok" perf dump | python3 -c 'import json,sys; print(json.load(sys.stdin)["rgw"]["req"])'; }

drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
declare -A S RSS REQ
# timed KEY CMD...: seconds, peak RSS (MB) and S3 requests into S[KEY], RSS[KEY], REQ[KEY]
timed() {
	local key=$1 r0 t m
	shift
	drop
	r0=$(reqs)
	/usr/bin/time -f '%e %M' -o "$W/$key.time" bash -c "$*" >"$W/$key.out" 2>"$W/$key.err" ||
		{ tail -5 "$W/$key.err" >&2; die "$key failed"; }
	read -r t m <"$W/$key.time"
	S[$key]=$t; RSS[$key]=$((m / 1024)); REQ[$key]=$(( $(reqs) - r0 ))
	say "$key: $t s, $((m / 1024)) MB, ${REQ[$key]} requests"
}

SM_REPO="s3://bench-sm/repo?endpoint=$EP"
RESTIC_REPO="s3:$EP/bench-restic/repo"
"$SUPAMANAGER" repo init --repo "$SM_REPO" >/dev/null 2>&1 || die "supamanager repo init"
restic -q -r "$RESTIC_REPO" init >/dev/null || die "restic init"

# the same order for both, one tool at a time
timed sm_backup "'$SUPAMANAGER' repo backup --repo '$SM_REPO' database='$W/bench.dump' storage='$DATA/files'"
timed restic_backup "restic -q -r '$RESTIC_REPO' backup '$W/bench.dump' '$DATA/files'"
timed sm_backup2 "'$SUPAMANAGER' repo backup --repo '$SM_REPO' database='$W/bench.dump' storage='$DATA/files'"
timed restic_backup2 "restic -q -r '$RESTIC_REPO' backup '$W/bench.dump' '$DATA/files'"
SM_ID=$(head -1 "$W/sm_backup.out")
timed sm_restore "'$SUPAMANAGER' repo restore --repo '$SM_REPO' '$SM_ID' --target '$W/out/sm'"
rm -rf "$W/out/sm"
timed restic_restore "restic -q -r '$RESTIC_REPO' restore latest --target '$W/out/restic'"
rm -rf "$W/out/restic"
SM_STORED=$(python3 -c 'import sys' && /usr/bin/aws --endpoint-url "$EP" s3 ls --recursive --summarize s3://bench-sm/repo/ | awk '/Total Size/ {print $3}')
RESTIC_STORED=$(/usr/bin/aws --endpoint-url "$EP" s3 ls --recursive --summarize s3://bench-restic/repo/ | awk '/Total Size/ {print $3}')
SM_OBJS=$(/usr/bin/aws --endpoint-url "$EP" s3 ls --recursive s3://bench-sm/repo/ | wc -l)
RESTIC_OBJS=$(/usr/bin/aws --endpoint-url "$EP" s3 ls --recursive s3://bench-restic/repo/ | wc -l)

mbs() { awk -v b="$IN_BYTES" -v s="$1" 'BEGIN { if (s > 0) printf "%.0f", b / s / 1e6; else print "—" }'; }
row() { printf '| %s | %s s (%s MB/s) | %s MB | %s |\n' "$1" "${S[$2]}" "$(mbs "${S[$2]}")" "${RSS[$2]}" "${REQ[$2]}"; }
{
	echo "# S3 benchmark: supamanager vs restic on radosgw ($(date -u +%Y-%m-%dT%H:%MZ))"
	echo
	echo "Input: pg_dump -Fc -Z0 of the benchmark database (scale $(. "$DATA/dataset.env"; echo "$SCALE")) and the storage tree,"
	echo "$(awk -v b="$IN_BYTES" 'BEGIN { printf "%.2f GB", b / 1e9 }') in all. Server: Ceph radosgw $(radosgw --version | awk '{print $3}'), one memstore OSD, on"
	echo "127.0.0.1 (tcp_nodelay=1). supamanager $("$SUPAMANAGER" version | awk '{print $2}'), $(restic version | awk '{print $1, $2}')."
	echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GB RAM; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo
	echo "| step | wall (input rate) | peak RSS | S3 requests |"
	echo "|---|---|---|---|"
	row "supamanager backup" sm_backup
	row "restic backup" restic_backup
	row "supamanager 2nd backup, nothing changed" sm_backup2
	row "restic 2nd backup, nothing changed" restic_backup2
	row "supamanager restore" sm_restore
	row "restic restore" restic_restore
	echo
	echo "Stored: supamanager $(awk -v b="$SM_STORED" 'BEGIN { printf "%.2f GB", b / 1e9 }') in $SM_OBJS objects;" \
		"restic $(awk -v b="$RESTIC_STORED" 'BEGIN { printf "%.2f GB", b / 1e9 }') in $RESTIC_OBJS objects."
} >"$OUT"
cat "$OUT"
say "report: $OUT"
