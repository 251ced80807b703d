#!/bin/bash
# Measures how the chunker's sizes (min/avg/max) trade deduplication against
# the number of chunks, on the benchmark's PostgreSQL dump and storage files:
#
#   bench/chunk-sizes.sh [SCALE]      (default 0.5)
#
# For each size set: stored size of the first backup, chunks, and the new data
# stored by a second backup after each change scenario (append1, update1 on the
# dump; files1 on the tree). restic is measured on the same inputs for
# reference. Writes bench/results/<date>-chunk-sizes.md. A benchmark, not a test.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SCALE=${1:-0.5}
REPO_ROOT=$(cd "$BENCH_HOME/.." && pwd)
SUPAMANAGER=${SUPAMANAGER:-$REPO_ROOT/build/supamanager}
BENCH_DIR=$(abspath "${BENCH_DIR:-/var/tmp/supamanager-chunkbench}")
DATA=$BENCH_DIR/data
WORK=$BENCH_DIR/work
OUT=$BENCH_HOME/results/$(date -u +%Y-%m-%dT%H%M%SZ)-chunk-sizes.md
SIZES=${CHUNK_SIZES:-"64k:256k:1M 128k:512k:2M 256k:1M:4M 512k:2M:8M 1M:4M:16M"}
export ENCRYPTION_SECRET=chunk-bench RESTIC_PASSWORD=chunk-bench

[ -x "$SUPAMANAGER" ] || die "no engine at $SUPAMANAGER"
mkdir -p "$BENCH_DIR" && chmod 755 "$BENCH_DIR"
rm -rf "$WORK" && mkdir -p "$WORK"
cleanup() { pg_stop "$DATA"; rm -rf "$WORK"; }
trap cleanup EXIT

[ -f "$DATA/dataset.env" ] || "$BENCH_HOME/gen-dataset.sh" "$DATA" "$SCALE"
bench_build_gen "$DATA"
GEN=$DATA/bin/benchgen
pg_start "$DATA" run
KEY=()
"$PG_BIN/pg_dump" --help | grep -q -- --restrict-key && KEY=(--restrict-key=chunkbench)
reset() {
	psql_ "$DATA" postgres -c "DROP DATABASE IF EXISTS bench" \
		-c "CREATE DATABASE bench TEMPLATE bench_pristine STRATEGY FILE_COPY"
	rm -rf "$DATA/files" && "$GEN" files "$DATA/files" "$(. "$DATA/dataset.env"; echo "$SCALE")" 2>/dev/null
}
dump() { pg_dump_ "$DATA" bench -Fc -Z0 "${KEY[@]}" >"$1"; }

say "dumps: base, append1, update1; trees: base, files1"
reset; dump "$WORK/base.dump"; cp -a "$DATA/files" "$WORK/files-base"
"$BENCH_HOME/mutate.sh" "$DATA" files1 >/dev/null 2>&1; cp -a "$DATA/files" "$WORK/files-1"
"$BENCH_HOME/mutate.sh" "$DATA" append1 >/dev/null 2>&1; dump "$WORK/append1.dump"
reset; "$BENCH_HOME/mutate.sh" "$DATA" update1 >/dev/null 2>&1; dump "$WORK/update1.dump"
dsize=$(stat -c %s "$WORK/base.dump")
tsize=$(du -sb "$WORK/files-base" | cut -f1)

stored() { du -sb "$1" | cut -f1; }
row() { printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$@" >>"$OUT"; }
{
	echo "# Chunk sizes: deduplication vs chunk count ($(date -u +%F), SCALE $SCALE)"
	echo
	echo "Dump (pg_dump -Fc -Z0): $((dsize / 1000000)) MB. Tree: $((tsize / 1000000)) MB."
	echo "New data = bytes the repository grew by on the second backup (MB = 10^6 bytes)."
	echo
	echo "| min:avg:max | dump stored | dump chunks | append1 new | update1 new | tree chunks | files1 new |"
	echo "|---|---|---|---|---|---|---|"
} >"$OUT"

for s in $SIZES; do
	IFS=: read -r mn av mx <<<"$s"
	say "supamanager $s"
	for case in append1 update1; do
		R=$WORK/r-$case
		rm -rf "$R"
		"$SUPAMANAGER" repo init --repo "$R" --chunk-min "$mn" --chunk-avg "$av" --chunk-max "$mx" 2>/dev/null
		"$SUPAMANAGER" repo backup --repo "$R" db="$WORK/base.dump" >/dev/null 2>&1
		a=$(stored "$R")
		chunks=$("$SUPAMANAGER" repo stats --repo "$R" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["blobs"])')
		"$SUPAMANAGER" repo backup --repo "$R" db="$WORK/$case.dump" >/dev/null 2>&1
		eval "new_$case=$(( $(stored "$R") - a ))"
	done
	R=$WORK/r-tree
	rm -rf "$R"
	"$SUPAMANAGER" repo init --repo "$R" --chunk-min "$mn" --chunk-avg "$av" --chunk-max "$mx" 2>/dev/null
	"$SUPAMANAGER" repo backup --repo "$R" t="$WORK/files-base" >/dev/null 2>&1
	t0=$(stored "$R")
	tchunks=$("$SUPAMANAGER" repo stats --repo "$R" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["blobs"])')
	"$SUPAMANAGER" repo backup --repo "$R" --no-parent t="$WORK/files-1" >/dev/null 2>&1
	row "$s" "$((a / 1000000)) MB" "$chunks" "$(awk -v x="$new_append1" 'BEGIN{printf "%.1f MB", x/1e6}')" \
		"$(awk -v x="$new_update1" 'BEGIN{printf "%.1f MB", x/1e6}')" "$tchunks" \
		"$(awk -v x=$(( $(stored "$R") - t0 )) 'BEGIN{printf "%.1f MB", x/1e6}')"
done

say "restic (its chunker: 512 KiB min, 1 MiB avg, 8 MiB max)"
for case in append1 update1; do
	R=$WORK/restic-$case
	rm -rf "$R"
	restic init -q -r "$R" --repository-version 2 >/dev/null
	restic -q -r "$R" backup --compression auto --stdin --stdin-filename db "$WORK/base.dump" <"$WORK/base.dump" >/dev/null 2>&1 || restic -q -r "$R" backup --compression auto --stdin --stdin-filename db <"$WORK/base.dump" >/dev/null
	a=$(stored "$R")
	restic -q -r "$R" backup --compression auto --stdin --stdin-filename db <"$WORK/$case.dump" >/dev/null
	eval "new_$case=$(( $(stored "$R") - a ))"
done
R=$WORK/restic-tree
restic init -q -r "$R" --repository-version 2 >/dev/null
(cd "$WORK" && restic -q -r "$R" backup --compression auto --host b files-base >/dev/null)
t0=$(stored "$R")
mv "$WORK/files-base" "$WORK/files-base.orig" && cp -a "$WORK/files-1" "$WORK/files-base"
(cd "$WORK" && restic -q -r "$R" backup --compression auto --host b --force files-base >/dev/null)
row "restic" "$((a / 1000000)) MB" "—" "$(awk -v x="$new_append1" 'BEGIN{printf "%.1f MB", x/1e6}')" \
	"$(awk -v x="$new_update1" 'BEGIN{printf "%.1f MB", x/1e6}')" "—" \
	"$(awk -v x=$(( $(stored "$R") - t0 )) 'BEGIN{printf "%.1f MB", x/1e6}')"
say "written $OUT"
cat "$OUT"
