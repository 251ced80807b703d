#!/bin/bash
# Project-level benchmark (issue "project backups"): on the benchmark
# database (~1 GB) and storage tree, in one run:
#   - `supamanager backup create --type database` vs `pg_dump -Fc > file`
#   - `supamanager restore --parts database` vs `pg_restore -j2` from that file
#   - a second FULL backup after append1 and after update1: what it stores,
#     beside restic backing up the same pg_dump -Fc -Z0 stream and tree
#
#   bench/project.sh [SCALE]     (default 1; the dataset of gen-dataset.sh is reused)
#
# Writes bench/results/<date>-project.md. A benchmark: never part of the tests.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SCALE=${1:-1}
REPO_ROOT=$(cd "$BENCH_HOME/.." && pwd)
SUPAMANAGER=${SUPAMANAGER:-$REPO_ROOT/build/supamanager}
BENCH_DIR=$(abspath "${BENCH_DIR:-/var/tmp/supamanager-bench}")
DATA=$BENCH_DIR/data
W=$BENCH_DIR/project-work
OUT=$BENCH_HOME/results/$(date -u +%Y-%m-%dT%H%M%SZ)-project.md
export ENCRYPTION_SECRET=bench-project-secret RESTIC_PASSWORD=bench-project-secret
export SUPAMANAGER_HOME=$W/home

[ "$(id -u)" = 0 ] || die "run as root"
[ -x "$SUPAMANAGER" ] || die "no engine at $SUPAMANAGER"
mkdir -p "$BENCH_DIR" && chmod 755 "$BENCH_DIR"
[ -f "$DATA/dataset.env" ] || "$BENCH_HOME/gen-dataset.sh" "$DATA" "$SCALE"
bench_build_gen "$DATA"
GEN=$DATA/bin/benchgen
rm -rf "$W" && mkdir -p "$W" && chmod 755 "$W"
pg_start "$DATA" run
PORT=$(pg_port "$DATA")
URL="postgresql://postgres@127.0.0.1:$PORT/bench"
cleanup() { pg_stop "$DATA"; rm -rf "$W"; }
trap cleanup EXIT

drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
# timed NAME CMD...: seconds and peak RSS (MB) into T_S, T_RSS
timed() {
	local name=$1
	shift
	drop
	/usr/bin/time -f '%e %M' -o "$W/$name.time" bash -c "$*" >"$W/$name.out" 2>"$W/$name.err" ||
		{ tail -5 "$W/$name.err" >&2; die "$name failed"; }
	read -r T_S T_RSS <"$W/$name.time"
	T_RSS=$((T_RSS / 1024))
	say "$name: $T_S s, $T_RSS MB"
}
reset() {
	psql_ "$DATA" postgres -c "DROP DATABASE IF EXISTS bench WITH (FORCE)" \
		-c "CREATE DATABASE bench TEMPLATE bench_pristine STRATEGY FILE_COPY" >/dev/null
	rm -rf "$DATA/files" && "$GEN" files "$DATA/files" "$(. "$DATA/dataset.env"; echo "$SCALE")" 2>/dev/null
}
stored_of() { "$SUPAMANAGER" backup show "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored"])'; }

reset
DBSIZE=$(psql_ "$DATA" bench -Atc "SELECT pg_database_size('bench')")

say "baselines: pg_dump -Fc, pg_restore -j2"
timed pg_dump "'$PG_BIN/pg_dump' -h 127.0.0.1 -p $PORT -U postgres -Fc bench > '$W/bench.fc'"
B_DUMP=$T_S; B_DUMP_RSS=$T_RSS
psql_ "$DATA" postgres -c "DROP DATABASE IF EXISTS bench_r" -c "CREATE DATABASE bench_r" >/dev/null
timed pg_restore "'$PG_BIN/pg_restore' -h 127.0.0.1 -p $PORT -U postgres -j2 -d bench_r '$W/bench.fc'"
B_REST=$T_S
psql_ "$DATA" postgres -c "DROP DATABASE bench_r" >/dev/null

say "supamanager: backup --type database, restore --parts database"
"$SUPAMANAGER" project add bench1 --name Bench --db-url "$URL" --storage-dir "$DATA/files" >/dev/null 2>&1 ||
	die "project add: $("$SUPAMANAGER" project add bench1 --name Bench --db-url "$URL" --storage-dir "$DATA/files" 2>&1)"
timed sm_dump "'$SUPAMANAGER' backup create bench1 --type database"
S_DUMP=$T_S; S_DUMP_RSS=$T_RSS
ID=$(cat "$W/sm_dump.out")
timed sm_restore "'$SUPAMANAGER' restore bench1 '$ID' --parts database --no-safety-backup --yes"
S_REST=$T_S; S_REST_RSS=$T_RSS
timed sm_restore_safety "'$SUPAMANAGER' restore bench1 '$ID' --parts database --yes"
S_REST2=$T_S

say "second FULL backup after append1 and update1 (supamanager and restic)"
for sc in append1 update1; do
	reset
	rm -rf "$SUPAMANAGER_HOME" "$W/restic-$sc"
	"$SUPAMANAGER" project add bench1 --name Bench --db-url "$URL" --storage-dir "$DATA/files" >/dev/null 2>&1
	first=$("$SUPAMANAGER" backup create bench1 --type full 2>/dev/null)
	restic init -q -r "$W/restic-$sc" --repository-version 2 >/dev/null
	pg_dump_ "$DATA" bench -Fc -Z0 | restic -q -r "$W/restic-$sc" backup --compression auto --stdin --stdin-filename database.dump >/dev/null
	(cd "$DATA" && restic -q -r "$W/restic-$sc" backup --compression auto --host b files >/dev/null)
	r0=$(du -sb "$W/restic-$sc" | cut -f1)
	"$BENCH_HOME/mutate.sh" "$DATA" "$sc" >/dev/null 2>&1
	second=$("$SUPAMANAGER" backup create bench1 --type full 2>/dev/null)
	pg_dump_ "$DATA" bench -Fc -Z0 | restic -q -r "$W/restic-$sc" backup --compression auto --stdin --stdin-filename database.dump >/dev/null
	(cd "$DATA" && restic -q -r "$W/restic-$sc" backup --compression auto --host b files >/dev/null)
	r1=$(du -sb "$W/restic-$sc" | cut -f1)
	eval "SM_FIRST_$sc=$(stored_of "$first") SM_NEW_$sc=$(stored_of "$second") R_FIRST_$sc=$r0 R_NEW_$sc=$((r1 - r0))"
done
reset

mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f %%", 100 * a / b }'; }
{
	echo "# Project benchmark — $(date -u +%FT%TZ)"
	echo
	echo "Database \`bench\`: $(mb "$DBSIZE") MB on disk; storage tree $(du -sb "$DATA/files" | awk '{printf "%.1f", $1/1e6}') MB."
	echo "Machine: $(nproc) cores, $(uname -r); $("$PG_BIN/pg_dump" --version); $(restic version | cut -d' ' -f1-2);"
	echo "supamanager $(git -C "$REPO_ROOT" rev-parse --short HEAD). Page cache dropped before each timed step."
	echo
	echo "| operation | seconds | peak RSS MB | vs baseline | target |"
	echo "|---|---:|---:|---:|---|"
	echo "| \`pg_dump -Fc > file\` | $B_DUMP | $B_DUMP_RSS | 1.00 | |"
	echo "| \`supamanager backup create --type database\` | $S_DUMP | $S_DUMP_RSS | $(ratio "$S_DUMP" "$B_DUMP") | <= 1.00 |"
	echo "| \`pg_restore -j2\` from that file | $B_REST | | 1.00 | |"
	echo "| \`supamanager restore --parts database --no-safety-backup\` | $S_REST | $S_REST_RSS | $(ratio "$S_REST" "$B_REST") | <= 1.20 |"
	echo "| the same with its safety backup first | $S_REST2 | | $(ratio "$S_REST2" "$B_REST") | |"
	echo
	echo "Second FULL backup (database + storage) after a change:"
	echo
	echo "| change | supamanager first | supamanager second stores | of first | restic second stores | supamanager / restic |"
	echo "|---|---:|---:|---:|---:|---:|"
	for sc in append1 update1; do
		eval "f=\$SM_FIRST_$sc n=\$SM_NEW_$sc rn=\$R_NEW_$sc"
		echo "| $sc | $(mb "$f") MB | $(mb "$n") MB | $(pct "$n" "$f") | $(mb "$rn") MB | $(ratio "$n" "$rn") |"
	done
} >"$OUT"
say "written $OUT"
cat "$OUT"
