#!/bin/bash
# SupaManager Backup benchmark: our engine vs restic, borg and tar|zstd|openssl,
# measured side by side in one run on one deterministic dataset.
#
#   bench/run.sh [SCALE]            SCALE: float, 1.0 = ~1 GB dump + ~1 GiB files (default 1)
#
# Writes bench/results/<UTC date>.md (report), <date>.csv (one row per measured
# operation), <date>-machine.csv (limits, baselines, versions); logs of every
# command go to bench/results/tmp/<date>/ (git-ignored).  See
# docs/BENCHMARKS-method.md for what is measured and how.
#
# Environment (all optional):
#   SUPAMANAGER=path       engine binary (default <repo>/build/supamanager; skipped if missing)
#   BENCH_DIR=dir          work area, must be reachable by user postgres (default /var/tmp/supamanager-bench)
#   BENCH_PG_PORT=port     port of the benchmark's PostgreSQL cluster (default 55811)
#   BENCH_TOOLS="..."      subset of: supamanager restic borg tar
#   BENCH_SCENARIOS="..."  subset of: files1 append1 update1 (restores run in the first one)
#   BENCH_DROP_CACHES=auto|1|0   drop the page cache before every timed step (auto: if permitted)
#   BENCH_KEEP_DATA=1      keep the generated dataset in BENCH_DIR/data for the next run (default 1)
#   BENCH_RESULTS=dir      where reports go (default bench/results)
#   BENCH_HASH_TARGET=0.8  "dump at hashing speed" passes at this fraction of 1-core SHA-256
#   BENCH_GEN_VACUUM=1     vacuum the generated tables (appended rows then scatter; see gen-dataset.sh)
# Needs root (PostgreSQL via runuser, drop_caches), restic, borg, zstd, openssl,
# GNU tar, /usr/bin/time, cc, postgresql-15.  It is a benchmark: never part of the tests.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SCALE=${1:-1}
awk -v s="$SCALE" 'BEGIN { exit !(s > 0 && s <= 100) }' || die "bad SCALE $SCALE"
[ "$(id -u)" = 0 ] || die "run as root"
REPO_ROOT=$(cd "$BENCH_HOME/.." && pwd)
SUPAMANAGER=${SUPAMANAGER:-$REPO_ROOT/build/supamanager}
BENCH_DIR=$(abspath "${BENCH_DIR:-/var/tmp/supamanager-bench}")
BENCH_TOOLS=${BENCH_TOOLS:-supamanager restic borg tar}
BENCH_SCENARIOS=${BENCH_SCENARIOS:-files1 append1 update1}
BENCH_DROP_CACHES=${BENCH_DROP_CACHES:-auto}
BENCH_KEEP_DATA=${BENCH_KEEP_DATA:-1}
BENCH_RESULTS=$(abspath "${BENCH_RESULTS:-$BENCH_HOME/results}")
BENCH_HASH_TARGET=${BENCH_HASH_TARGET:-0.8}
SECRET=supamanager-bench-secret-7f3a9c

DATA=$BENCH_DIR/data
WORK=$BENCH_DIR/work
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
MD=$BENCH_RESULTS/$STAMP.md
CSV=$BENCH_RESULTS/$STAMP.csv
MCSV=$BENCH_RESULTS/$STAMP-machine.csv
LOGDIR=$BENCH_RESULTS/tmp/$STAMP
RUN_T0=$EPOCHREALTIME

for c in restic borg zstd openssl tar cc /usr/bin/time; do
	command -v "$c" >/dev/null || die "missing $c (apt-get install restic borgbackup zstd openssl tar gcc time)"
done
mkdir -p "$BENCH_DIR" "$BENCH_RESULTS" "$LOGDIR"
chmod 755 "$BENCH_DIR"
pg_check_dir "$BENCH_DIR"
exec 9>"$BENCH_DIR/.lock"
flock -n 9 || die "another benchmark run holds $BENCH_DIR/.lock"
rm -rf "$WORK" # leftovers of an interrupted run

cleanup() {
	pg_stop "$DATA"
	rm -rf "$WORK"
	[ "$BENCH_KEEP_DATA" = 1 ] || rm -rf "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ small helpers
calc() { awk "BEGIN { x = $1; printf \"%.${2:-2}f\", x }"; }
# ok if every argument is a number
nums() { local v; for v; do [[ $v =~ ^-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?$ ]] || return 1; done; }
mb() { nums "${1:-}" && calc "$1 / 1e6" 1 || echo "—"; }
rate() { nums "${1:-}" "${2:-}" && awk -v b="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", b / s / 1e6; else print "—" }' || echo "—"; }
pct() { nums "${1:-}" "${2:-}" && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f %%", 100 * a / b; else print "—" }' || echo "—"; }
ratio() { nums "${1:-}" "${2:-}" && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf (a / b < 0.1 ? "%.4f" : "%.2f"), a / b; else print "—" }' || echo "—"; }
sec() { nums "${1:-}" && calc "$1" 2 || echo "—"; }
numbers() { printf '%s\n' "$@" | awk '/^[0-9]+(\.[0-9]+)?$/'; }
median() { numbers "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
maxnum() { numbers "$@" | sort -g | tail -1; }
dusize() { du -sb "$1" 2>/dev/null | cut -f1; }

DROP=0
if [ "$BENCH_DROP_CACHES" != 0 ] && [ -w /proc/sys/vm/drop_caches ] && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
	DROP=1
elif [ "$BENCH_DROP_CACHES" = 1 ]; then
	die "BENCH_DROP_CACHES=1 but /proc/sys/vm/drop_caches is not writable"
fi
drop_caches() { sync; [ "$DROP" = 0 ] || echo 3 >/proc/sys/vm/drop_caches; }

declare -A M          # machine facts and limits
declare -A R          # measurements: R[scenario|tool|step|part|field]
declare -A SNAP       # snapshot ids: SNAP[scenario|tool|part|tag]
declare -A FAILED     # FAILED[scenario|tool]=reason
declare -A NOTE
echo "scenario,tool,step,part,seconds,sync_seconds,input_bytes,repo_bytes,added_bytes,max_rss_kb,status" >"$CSV"
echo "name,value,unit" >"$MCSV"
mrec() { M[$1]=$2; printf '%s,"%s",%s\n' "$1" "${2//\"/\'}" "${3:-}" >>"$MCSV"; }

# timed NAME SYNC_PATH CMD: run CMD (bash -o pipefail -c) under /usr/bin/time -v after dropping
# caches, then sync the file system of SYNC_PATH.  Sets T_OK T_S (incl. sync) T_SYNC T_RSS (KiB).
timed() {
	local name=$1 syncp=$2 cmd=$3 t0 t1 t2
	drop_caches
	printf '%s\n' "$cmd" >"$LOGDIR/$name.cmd"
	t0=$EPOCHREALTIME
	if /usr/bin/time -v -o "$LOGDIR/$name.time" bash -o pipefail -c "$cmd" >"$LOGDIR/$name.out" 2>"$LOGDIR/$name.err" </dev/null; then
		T_OK=1
	else
		T_OK=0
		say "FAILED: $name (log: $LOGDIR/$name.err)"
		tail -5 "$LOGDIR/$name.err" >&2 || true
	fi
	t1=$EPOCHREALTIME
	sync -f "$syncp" 2>/dev/null || sync
	t2=$EPOCHREALTIME
	T_S=$(calc "$t2 - $t0" 3)
	T_SYNC=$(calc "$t2 - $t1" 3)
	T_RSS=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$LOGDIR/$name.time")
}

# ------------------------------------------------------------------ machine and versions
say "run $STAMP, scale $SCALE, work dir $BENCH_DIR"
ver() { "$@" 2>&1 | head -1 || true; }
mrec date "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
mrec scale "$SCALE"
mrec uname "$(uname -a)"
mrec cpu "$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
mrec cores "$(nproc)"
mrec memory "$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
mrec filesystem "$(df -PT "$BENCH_DIR" | awk 'NR == 2 { print $2 " on " $1 }')"
mrec os "$( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null || echo unknown)"
mrec drop_caches "$DROP"
mrec restic_version "$(ver restic version)"
mrec borg_version "$(ver borg --version)"
mrec zstd_version "$(ver zstd --version)"
mrec openssl_version "$(ver openssl version)"
mrec tar_version "$(ver tar --version)"
mrec postgres_version "$(ver "$PG_BIN/postgres" --version)"
mrec pg_dump_version "$(ver "$PG_BIN/pg_dump" --version)"
mrec git_commit "$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo "none yet")$([ -z "$(git -C "$REPO_ROOT" status --porcelain -- src 2>/dev/null | head -1)" ] || echo ' (src/ has uncommitted changes)')"

TOOLS=()
for t in $BENCH_TOOLS; do
	case $t in
	supamanager)
		if [ -x "$SUPAMANAGER" ]; then
			TOOLS+=(supamanager)
			# run a pinned copy: a rebuild during the run must not change the binary under test
			mkdir -p "$WORK"
			cp "$SUPAMANAGER" "$WORK/supamanager.bin"
			mrec supamanager_path "$SUPAMANAGER"
			mrec supamanager_sha256 "$(sha256sum "$SUPAMANAGER" | cut -c1-64)"
			SUPAMANAGER=$WORK/supamanager.bin
			mrec supamanager_version "$(ver "$SUPAMANAGER" --version)"
		else
			NOTE[supamanager]="skipped: engine binary not found at $SUPAMANAGER (set SUPAMANAGER=...)"
			mrec supamanager_version "not found at $SUPAMANAGER"
			say "${NOTE[supamanager]}"
		fi
		;;
	restic | borg | tar) TOOLS+=("$t") ;;
	*) die "unknown tool $t" ;;
	esac
done
read -ra SCENARIOS <<<"$BENCH_SCENARIOS"
for s in "${SCENARIOS[@]}"; do case $s in files1 | append1 | update1) ;; *) die "unknown scenario $s" ;; esac; done
RESTORE_SC=${SCENARIOS[0]}

# ------------------------------------------------------------------ dataset
GEN_STAMP="$SCALE ${BENCH_GEN_VACUUM:-0} $(cat "$BENCH_HOME/benchgen.c" "$BENCH_HOME/gen-dataset.sh" "$BENCH_HOME/lib.sh" | sha256sum | cut -c1-16)"
if [ "$(cat "$DATA/.stamp" 2>/dev/null)" != "$GEN_STAMP" ]; then
	say "generating dataset (scale $SCALE)"
	t0=$EPOCHREALTIME
	"$BENCH_HOME/gen-dataset.sh" "$DATA" "$SCALE" 2>&1 | tee "$LOGDIR/gen-dataset.log" >&2
	mrec gen_dataset_seconds "$(calc "$EPOCHREALTIME - $t0" 1)" s
	echo "$GEN_STAMP" >"$DATA/.stamp"
else
	say "reusing dataset in $DATA"
fi
GEN=$DATA/bin/benchgen
bench_build_gen "$DATA"
TREE=$DATA/files
PGKEY=()
"$PG_BIN/pg_dump" --help | grep -q -- --restrict-key && PGKEY=(--restrict-key=supamanagerbench)

pg_start "$DATA" run
mkdir -p "$WORK"

reset_dataset() {
	psql_ "$DATA" postgres -c "DROP DATABASE IF EXISTS bench" \
		-c "CREATE DATABASE bench TEMPLATE bench_pristine STRATEGY FILE_COPY"
	rm -rf "$TREE"
	"$GEN" files "$TREE" "$SCALE" 2>>"$LOGDIR/reset.log"
	sync
}
tree_bytes() { find "$TREE" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }

say "resetting dataset and taking the reference dump"
reset_dataset
DUMP0=$WORK/dump-pristine.sql
timed pg_dump_plain "$WORK" "'$PG_BIN/pg_dump' -h '$DATA/pg.sock' -p $(pg_port "$DATA") -U postgres -Fp ${PGKEY[*]} bench > '$DUMP0'"
[ "$T_OK" = 1 ] || die "pg_dump failed"
mrec pg_dump_plain_seconds "$T_S" s
mrec dump_bytes "$(stat -c %s "$DUMP0")" bytes
mrec dump_sha256 "$(sha256sum "$DUMP0" | cut -c1-64)"
mrec tree_files "$(find "$TREE" -type f | wc -l)"
mrec tree_dirs "$(find "$TREE" -type d | wc -l)"
mrec tree_bytes "$(tree_bytes)" bytes
mrec tree_manifest_sha256 "$("$GEN" manifest "$TREE" content | sha256sum | cut -c1-64)"
mrec tree_incompressible "$(sed -n 's/.*, \([0-9.]*\) % incompressible.*/\1/p' "$LOGDIR/reset.log" | tail -1)" "%"
INPUT0=$((M[dump_bytes] + M[tree_bytes]))

# ------------------------------------------------------------------ PostgreSQL baselines
say "pg_dump -Fc / pg_restore -j2 baselines"
FC=$WORK/pristine.dump
timed pg_dump_custom "$WORK" "'$PG_BIN/pg_dump' -h '$DATA/pg.sock' -p $(pg_port "$DATA") -U postgres -Fc bench > '$FC'"
mrec pg_dump_custom_seconds "$T_S" s
mrec pg_dump_custom_bytes "$(stat -c %s "$FC")" bytes
mrec pg_dump_custom_rss_kb "$T_RSS" KiB
psql_ "$DATA" postgres -c "DROP DATABASE IF EXISTS bench_restore" -c "CREATE DATABASE bench_restore"
timed pg_restore_j2 "$DATA/pg" "'$PG_BIN/pg_restore' -h '$DATA/pg.sock' -p $(pg_port "$DATA") -U postgres -j2 -d bench_restore '$FC'"
mrec pg_restore_j2_seconds "$T_S" s
mrec pg_restore_ok "$T_OK"
psql_ "$DATA" postgres -c "DROP DATABASE bench_restore"
rm -f "$FC"

# ------------------------------------------------------------------ machine limits
say "measuring machine limits (disk, SHA-256, AES-256-GCM, zstd -3)"
DDMB=$(awk -v s="$SCALE" 'BEGIN { m = int(s * 2048); if (m < 256) m = 256; if (m > 2048) m = 2048; print m }')
ddrate() { awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "copied,") { printf "%.0f", $1 / $(i + 1) / 1e6 } }'; }
mrec disk_write_MBps "$(dd if=/dev/zero of="$WORK/ddtest" bs=1M count="$DDMB" conv=fdatasync 2>&1 | ddrate)" "MB/s (dd ${DDMB} MiB, fdatasync)"
drop_caches
mrec disk_read_MBps "$(dd if="$WORK/ddtest" of=/dev/null bs=1M 2>&1 | ddrate)" "MB/s (dd ${DDMB} MiB, cold cache: $DROP)"
rm -f "$WORK/ddtest"
osl() { # osl ALG [multi]: MB/s for 16 KiB blocks
	local extra=()
	[ -z "${2:-}" ] || extra=(-multi "$2")
	openssl speed -evp "$1" -bytes 16384 -seconds 3 "${extra[@]}" 2>/dev/null | tail -1 | awk '{ v = $NF; sub(/k$/, "", v); printf "%.0f", v / 1000 }'
}
mrec sha256_1core_MBps "$(osl sha256)" "MB/s (openssl speed -evp sha256, 16 KiB)"
mrec sha256_2core_MBps "$(osl sha256 2)" "MB/s (-multi 2)"
mrec aesgcm_1core_MBps "$(osl aes-256-gcm)" "MB/s (openssl speed -evp aes-256-gcm, 16 KiB)"
mrec aesgcm_2core_MBps "$(osl aes-256-gcm 2)" "MB/s (-multi 2)"
HALF=$(awk -v s="$SCALE" 'BEGIN { m = int(s * 256); if (m < 16) m = 16; if (m > 256) m = 256; print m * 1048576 }')
SAMPLE=$WORK/zstd-sample
head -c "$HALF" "$DUMP0" >"$SAMPLE"
(set +o pipefail; tar -cf - -C "$DATA" files 2>/dev/null | head -c "$HALF" >>"$SAMPLE")
zbench() { # zbench THREADS -> "ratio comp_MBps decomp_MBps"
	zstd -b3 -i3 -T"$1" "$SAMPLE" 2>&1 | tr '\r' '\n' | awk '/MB\/s, / { l = $0 } END { print l }' |
		sed -E 's/.*\(x([0-9.]+)\), *([0-9]+)[0-9.]* MB\/s, *([0-9]+)[0-9.]* MB\/s.*/\1 \2 \3/'
}
read -r zr zc zd < <(zbench 1)
mrec zstd3_ratio "$zr" "x (sample: $((HALF * 2 / 1048576)) MiB, half dump, half files)"
mrec zstd3_1t_MBps "$zc" "MB/s compress (zstd -b3 -T1)"
mrec zstd3_1t_dec_MBps "$zd" "MB/s decompress"
read -r zr zc zd < <(zbench 2)
mrec zstd3_2t_MBps "$zc" "MB/s compress (zstd -b3 -T2)"
rm -f "$SAMPLE"
# Ideal engine on 2 cores: every byte hashed, compressed and encrypted once, perfectly parallel.
CPU_BK=$(calc "2 / (1 / ${M[sha256_1core_MBps]} + 1 / ${M[zstd3_1t_MBps]} + 1 / ${M[aesgcm_1core_MBps]})" 0)
CPU_RS=$(calc "2 / (1 / ${M[sha256_1core_MBps]} + 1 / ${M[zstd3_1t_dec_MBps]} + 1 / ${M[aesgcm_1core_MBps]})" 0)
BK_CEIL=$(awk -v c="$CPU_BK" -v r="${M[disk_read_MBps]}" -v w="${M[disk_write_MBps]}" -v z="${M[zstd3_ratio]}" \
	'BEGIN { m = c; if (r < m) m = r; if (w * z < m) m = w * z; printf "%.0f", m }')
RS_CEIL=$(awk -v c="$CPU_RS" -v r="${M[disk_read_MBps]}" -v w="${M[disk_write_MBps]}" -v z="${M[zstd3_ratio]}" \
	'BEGIN { m = c; if (w < m) m = w; if (r * z < m) m = r * z; printf "%.0f", m }')
mrec backup_cpu_ceiling_MBps "$CPU_BK" "MB/s = 2 / (1/sha256 + 1/zstd3 + 1/aes-gcm), 1-core speeds"
mrec backup_ceiling_MBps "$BK_CEIL" "MB/s = min(cpu ceiling, disk read, disk write x zstd ratio)"
mrec restore_cpu_ceiling_MBps "$CPU_RS" "MB/s = 2 / (1/sha256 + 1/unzstd + 1/aes-gcm)"
mrec restore_ceiling_MBps "$RS_CEIL" "MB/s = min(cpu ceiling, disk write, disk read x zstd ratio)"

# ------------------------------------------------------------------ tools
# Each function prints the shell command for one step; paths contain no spaces (checked).
export RESTIC_PASSWORD=$SECRET BORG_PASSPHRASE=$SECRET ENCRYPTION_SECRET=$SECRET
export BORG_DISPLAY_PASSPHRASE=n BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
ENC="openssl enc -aes-256-ctr -pbkdf2 -pass pass:$SECRET"

cmd_init() { # tool repo home
	case $1 in
	supamanager) echo "'$SUPAMANAGER' repo init --repo $2" ;;
	restic) echo "restic -r $2 --cache-dir $3/cache init --repository-version 2" ;;
	borg) echo "BORG_BASE_DIR=$3 borg init -e repokey-blake2 $2" ;;
	tar) echo "mkdir -p $2" ;;
	esac
}
cmd_backup() { # tool repo home part(dump|tree) tag input
	local t=$1 r=$2 h=$3 part=$4 tag=$5 in=$6
	case $t:$part in
	supamanager:dump) echo "cat $in | '$SUPAMANAGER' repo backup --repo $r database=-" ;;
	supamanager:tree) echo "'$SUPAMANAGER' repo backup --repo $r storage=$in" ;;
	restic:dump) echo "cat $in | restic -r $r --cache-dir $h/cache backup --json --host bench --compression auto --stdin --stdin-filename database.dump" ;;
	restic:tree) echo "restic -r $r --cache-dir $h/cache backup --json --host bench --compression auto $in" ;;
	borg:dump) echo "cat $in | BORG_BASE_DIR=$h borg create -C zstd,3 --stdin-name database.dump $r::db-$tag -" ;;
	borg:tree) echo "BORG_BASE_DIR=$h borg create -C zstd,3 $r::files-$tag $in" ;;
	tar:dump) echo "cat $in | zstd -3 -T0 -q -c | $ENC -out $r/db-$tag.zst.enc" ;;
	# GNU tar listed-incremental: the second archive holds only what changed since the first
	tar:tree) echo "tar --xattrs -g $r/files.snar -cf - -C $(dirname "$in") $(basename "$in") | zstd -3 -T0 -q -c | $ENC -out $r/files-$tag.tar.zst.enc" ;;
	esac
}
cmd_restore() { # tool repo home part tag target scenario
	local t=$1 r=$2 h=$3 part=$4 tag=$5 tg=$6 sc=$7 x
	case $t:$part in
	supamanager:*) echo "'$SUPAMANAGER' repo restore --repo $r ${SNAP[$sc|$t|$part|$tag]:-latest} --target $tg" ;;
	restic:*) echo "restic -r $r --cache-dir $h/cache restore ${SNAP[$sc|$t|$part|$tag]:-latest} --target $tg" ;;
	borg:dump) echo "cd $tg && BORG_BASE_DIR=$h borg extract $r::db-$tag" ;;
	borg:tree) echo "cd $tg && BORG_BASE_DIR=$h borg extract $r::files-$tag" ;;
	tar:dump) echo "$ENC -d -in $r/db-$tag.zst.enc | zstd -d -q -c > $tg/database.dump" ;;
	tar:tree) # full chain: level 0, then the incremental
		for x in $(cd "$r" && ls files-*.tar.zst.enc | sort); do
			printf '%s -d -in %s/%s | zstd -d -q -c | tar --xattrs -x -g /dev/null -f - -C %s && ' "$ENC" "$r" "$x" "$tg"
		done
		echo true
		;;
	esac
}
# snapshot id printed by a backup step
snap_id() { # tool name
	case $1 in
	supamanager) awk 'NF { l = $1 } END { print l }' "$LOGDIR/$2.out" ;;
	restic) sed -nE 's/.*"message_type":"summary".*"snapshot_id":"([0-9a-f]+)".*/\1/p' "$LOGDIR/$2.out" | tail -1 ;;
	*) echo - ;;
	esac
}
# where a restore put things: restored_dump tool target / restored_tree tool target
restored_dump() {
	local t=$1 tg=$2 f
	for f in "$tg/database.dump" "$tg/database" "$tg/database.sql"; do [ -f "$f" ] && { echo "$f"; return; }; done
	f=$(find "$tg" -type f | head -2)
	if [ -n "$f" ] && [ "$(printf '%s\n' "$f" | wc -l)" = 1 ]; then echo "$f"; fi
	return 0
}
restored_tree() {
	local t=$1 tg=$2 c want
	want=$(ls "$TREE" | sort | tr '\n' ' ')
	for c in "$tg$TREE" "$tg/$(basename "$TREE")" "$tg/storage" "$tg/storage$TREE" "$tg"; do
		if [ -d "$c" ] && [ "$(ls "$c" | sort | tr '\n' ' ')" = "$want" ]; then echo "$c"; return 0; fi
	done
	return 0
}

record() { # scenario tool step part seconds sync input repo added rss status
	local k="$1|$2|$3|$4"
	echo "$1,$2,$3,$4,$5,$6,$7,$8,$9,${10},\"${11}\"" >>"$CSV"
	R[$k|st]=${11}
	# the report only uses steps that worked (a restore that ran but did not verify still counts)
	case ${11} in FAIL | skipped) return 0 ;; esac
	R[$k|s]=$5 R[$k|sync]=$6 R[$k|in]=$7 R[$k|repo]=$8 R[$k|added]=$9 R[$k|rss]=${10}
}

# backup_step SC TOOL STEP(first|second) PART INPUT TAG
backup_step() {
	local sc=$1 t=$2 step=$3 part=$4 in=$5 tag=$6 d=$WORK/$1/$2 name before after insize
	name=$sc-$t-$step-$part
	[ -z "${FAILED[$sc|$t]:-}" ] || { record "$sc" "$t" "$step" "$part" "" "" "" "" "" "" skipped; return 0; }
	before=$(dusize "$d/repo")
	timed "$name" "$d/repo" "$(cmd_backup "$t" "$d/repo" "$d/home" "$part" "$tag" "$in")"
	after=$(dusize "$d/repo")
	if [ "$part" = dump ]; then insize=$(stat -c %s "$in"); else insize=$(tree_bytes); fi
	if [ "$T_OK" = 1 ]; then
		SNAP[$sc|$t|$part|$tag]=$(snap_id "$t" "$name")
		record "$sc" "$t" "$step" "$part" "$T_S" "$T_SYNC" "$insize" "$after" "$((after - before))" "$T_RSS" ok
	else
		FAILED[$sc|$t]="$step $part backup failed (see $LOGDIR/$name.err)"
		record "$sc" "$t" "$step" "$part" "$T_S" "$T_SYNC" "$insize" "$after" "" "$T_RSS" FAIL
	fi
}

# restore_step SC TOOL PART TAG EXPECTED(dump file | tree manifests prefix)
restore_step() {
	local sc=$1 t=$2 part=$3 tag=$4 d=$WORK/$1/$2 name tg got st insize
	name=$sc-$t-restore-$part
	[ -z "${FAILED[$sc|$t]:-}" ] || { record "$sc" "$t" restore "$part" "" "" "" "" "" "" skipped; return 0; }
	tg=$d/restore-$part
	rm -rf "$tg"
	mkdir -p "$tg"
	timed "$name" "$tg" "$(cmd_restore "$t" "$d/repo" "$d/home" "$part" "$tag" "$tg" "$sc")"
	if [ "$T_OK" != 1 ]; then
		FAILED[$sc|$t]="restore $part failed (see $LOGDIR/$name.err)"
		record "$sc" "$t" restore "$part" "$T_S" "$T_SYNC" "" "" "" "$T_RSS" FAIL
		return 0
	fi
	if [ "$part" = dump ]; then
		got=$(restored_dump "$t" "$tg")
		insize=$(stat -c %s "$5")
		if [ -z "$got" ]; then st="unverified: no single restored file"
		elif cmp -s "$got" "$5"; then st=ok
		else st="MISMATCH"; fi
	else
		got=$(restored_tree "$t" "$tg")
		insize=$(tree_bytes)
		if [ -z "$got" ]; then
			st="unverified: restored tree not found"
		else
			"$GEN" manifest "$got" content >"$LOGDIR/$name.content"
			"$GEN" manifest "$got" meta >"$LOGDIR/$name.meta"
			if ! cmp -s "$LOGDIR/$name.content" "$5.content"; then st="MISMATCH (content)"
			elif ! cmp -s "$LOGDIR/$name.meta" "$5.meta"; then st="ok (metadata differs)"
			else st=ok; fi
			diff "$5.meta" "$LOGDIR/$name.meta" >"$LOGDIR/$name.meta.diff" || true
		fi
	fi
	[ "$st" = ok ] || say "restore $t $part: $st"
	record "$sc" "$t" restore "$part" "$T_S" "$T_SYNC" "$insize" "" "" "$T_RSS" "$st"
	rm -rf "$tg"
}

sum_parts() { # scenario tool step field -> dump + tree
	local a=${R[$1|$2|$3|dump|$4]:-} b=${R[$1|$2|$3|tree|$4]:-}
	nums "$a" "$b" && calc "$a + $b" 3 || echo ""
}

# ------------------------------------------------------------------ scenarios
for sc in "${SCENARIOS[@]}"; do
	say "=== scenario $sc ==="
	[ "$sc" = "${SCENARIOS[0]}" ] || reset_dataset
	for t in "${TOOLS[@]}"; do
		d=$WORK/$sc/$t
		rm -rf "$d"
		mkdir -p "$d/home"
		timed "$sc-$t-init" "$d/home" "$(cmd_init "$t" "$d/repo" "$d/home")"
		[ "$T_OK" = 1 ] || FAILED[$sc|$t]="repo init failed (see $LOGDIR/$sc-$t-init.err)"
		say "$sc: $t first backup"
		backup_step "$sc" "$t" first dump "$DUMP0" 1
		backup_step "$sc" "$t" first tree "$TREE" 1
	done
	say "$sc: mutating dataset"
	"$BENCH_HOME/mutate.sh" "$DATA" "$sc" 2>&1 | tee -a "$LOGDIR/mutate.log" >&2
	DUMP1=$DUMP0
	if [ "$sc" != files1 ]; then
		DUMP1=$WORK/dump-$sc.sql
		"$PG_BIN/pg_dump" -h "$DATA/pg.sock" -p "$(pg_port "$DATA")" -U postgres -Fp "${PGKEY[@]}" bench >"$DUMP1"
	fi
	mrec "${sc}_dump_bytes" "$(stat -c %s "$DUMP1")" bytes
	mrec "${sc}_tree_bytes" "$(tree_bytes)" bytes
	for t in "${TOOLS[@]}"; do
		say "$sc: $t second backup"
		backup_step "$sc" "$t" second dump "$DUMP1" 2
		backup_step "$sc" "$t" second tree "$TREE" 2
	done
	if [ "$sc" = "$RESTORE_SC" ]; then
		"$GEN" manifest "$TREE" content >"$WORK/expected.content"
		"$GEN" manifest "$TREE" meta >"$WORK/expected.meta"
		for t in "${TOOLS[@]}"; do
			say "$sc: $t restore (latest)"
			restore_step "$sc" "$t" dump 2 "$DUMP1"
			restore_step "$sc" "$t" tree 2 "$WORK/expected"
		done
	fi
	for t in "${TOOLS[@]}"; do
		[ "$t" != supamanager ] || [ -n "${FAILED[$sc|$t]:-}" ] ||
			"$SUPAMANAGER" repo stats --repo "$WORK/$sc/$t/repo" --json >"$LOGDIR/$sc-$t-stats.json" 2>&1 || true
		rm -rf "${WORK:?}/$sc/$t"
	done
	[ "$DUMP1" = "$DUMP0" ] || rm -f "$DUMP1"
done
pg_stop "$DATA"
mrec run_seconds "$(calc "$EPOCHREALTIME - $RUN_T0" 0)" s

# ------------------------------------------------------------------ report
say "writing $MD"
# first-backup figures: median over the scenarios (each scenario starts with a first backup)
declare -A F
for t in "${TOOLS[@]}"; do
	for f in dump tree total repo rss dumprepo; do
		vals=()
		for sc in "${SCENARIOS[@]}"; do
			case $f in
			dump | tree) vals+=("${R[$sc|$t|first|$f|s]:-}") ;;
			total) vals+=("$(sum_parts "$sc" "$t" first s)") ;;
			repo) vals+=("${R[$sc|$t|first|tree|repo]:-}") ;;
			dumprepo) vals+=("${R[$sc|$t|first|dump|repo]:-}") ;;
			rss) vals+=("${R[$sc|$t|first|dump|rss]:-}" "${R[$sc|$t|first|tree|rss]:-}") ;;
			esac
		done
		if [ "$f" = rss ]; then F[$t|$f]=$(maxnum "${vals[@]}")
		else F[$t|$f]=$(median "${vals[@]}"); fi
		[ "$f" != total ] || F[$t|spread]=$(numbers "${vals[@]}" | sort -g | awk 'NR == 1 { a = $1 } { b = $1 } END { if (NR > 1) printf "%.2f–%.2f", a, b }')
	done
	# peak RSS over every step of the tool
	vals=()
	for k in "${!R[@]}"; do if [[ $k == *"|$t|"*"|rss" ]]; then vals+=("${R[$k]}"); fi; done
	F[$t|peakrss]=$(maxnum "${vals[@]}")
	F[$t|restore]=$(sum_parts "$RESTORE_SC" "$t" restore s)
done
fmt_rss() { nums "${1:-}" && calc "$1 / 1000" 0 || echo "—"; }
ROW() { local IFS='|'; echo "|$*|"; }

{
	echo "# SupaManager Backup benchmark — $STAMP"
	echo
	echo "Scale **$SCALE** · run took $(calc "${M[run_seconds]} / 60" 1) min · MB = 10^6 bytes, MB/s = 10^6 bytes/s ·"
	echo "page cache dropped before every timed step: $([ "$DROP" = 1 ] && echo yes || echo no) · times include a final \`sync\`."
	echo "Method: [docs/BENCHMARKS-method.md](../../docs/BENCHMARKS-method.md). Raw data: \`$STAMP.csv\`, \`$STAMP-machine.csv\`."
	echo
	[ -z "${NOTE[supamanager]:-}" ] || { echo "> **supamanager ${NOTE[supamanager]}**"; echo; }
	echo "## Machine and versions"
	echo
	echo "| item | value |"
	echo "|---|---|"
	for k in date uname os cpu cores memory filesystem git_commit supamanager_path supamanager_version supamanager_sha256 restic_version borg_version zstd_version openssl_version tar_version postgres_version pg_dump_version; do
		echo "| $k | ${M[$k]:-} |"
	done
	echo
	echo "## Dataset"
	echo
	echo "| item | value |"
	echo "|---|---|"
	echo "| pg_dump -Fp stream (database \`bench\`) | $(mb "${M[dump_bytes]}") MB, sha256 \`${M[dump_sha256]:0:16}…\` |"
	echo "| storage tree | $(mb "${M[tree_bytes]}") MB in ${M[tree_files]} files, ${M[tree_dirs]} dirs, ${M[tree_incompressible]} % of bytes incompressible, manifest \`${M[tree_manifest_sha256]:0:16}…\` |"
	echo "| total input of a full backup | $(mb "$INPUT0") MB |"
	for sc in "${SCENARIOS[@]}"; do
		echo "| after $sc | dump $(mb "${M[${sc}_dump_bytes]:-}") MB, tree $(mb "${M[${sc}_tree_bytes]:-}") MB |"
	done
	echo
	echo "## Machine limits (measured in this run)"
	echo
	echo "| limit | MB/s | how |"
	echo "|---|---:|---|"
	echo "| disk sequential write | ${M[disk_write_MBps]} | dd ${DDMB} MiB, conv=fdatasync |"
	echo "| disk sequential read | ${M[disk_read_MBps]} | dd, cold cache |"
	echo "| SHA-256, 1 core / 2 cores | ${M[sha256_1core_MBps]} / ${M[sha256_2core_MBps]} | openssl speed -evp sha256, 16 KiB blocks |"
	echo "| AES-256-GCM, 1 core / 2 cores | ${M[aesgcm_1core_MBps]} / ${M[aesgcm_2core_MBps]} | openssl speed -evp aes-256-gcm |"
	echo "| zstd -3 compress, 1 / 2 threads | ${M[zstd3_1t_MBps]} / ${M[zstd3_2t_MBps]} | zstd -b3 on a dump+files sample, ratio x${M[zstd3_ratio]} |"
	echo "| zstd decompress, 1 thread | ${M[zstd3_1t_dec_MBps]} | same sample |"
	echo "| **backup ceiling** | **$BK_CEIL** | min(2 cores hashing+compressing+encrypting each byte once = $CPU_BK, disk read, disk write × ratio) |"
	echo "| **restore ceiling** | **$RS_CEIL** | min(2 cores hash+decompress+decrypt = $CPU_RS, disk write, disk read × ratio) |"
	echo
	echo "## PostgreSQL baselines"
	echo
	echo "| operation | seconds | MB/s | note |"
	echo "|---|---:|---:|---|"
	echo "| \`pg_dump -Fp > file\` (benchmark input) | $(sec "${M[pg_dump_plain_seconds]}") | $(rate "${M[dump_bytes]}" "${M[pg_dump_plain_seconds]}") | $(mb "${M[dump_bytes]}") MB; the source's own speed limit for a live pipe |"
	echo "| \`pg_dump -Fc > file\` | $(sec "${M[pg_dump_custom_seconds]}") | $(rate "${M[dump_bytes]}" "${M[pg_dump_custom_seconds]}") | $(mb "${M[pg_dump_custom_bytes]}") MB file, peak RSS $(fmt_rss "${M[pg_dump_custom_rss_kb]}") MB |"
	echo "| \`pg_restore -j2\` from that file into a new database | $(sec "${M[pg_restore_j2_seconds]}") | $(rate "${M[dump_bytes]}" "${M[pg_restore_j2_seconds]}") | ok=${M[pg_restore_ok]} |"
	echo
	echo "## First backup (median of ${#SCENARIOS[@]} run(s), one per scenario)"
	echo
	echo "Medians are taken per column, so dump + tree need not add up to the total. Range = fastest–slowest total."
	echo
	echo "| tool | dump s | tree s | total s | range s | MB/s | % of backup ceiling | repo MB | repo / input | peak RSS MB |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for t in "${TOOLS[@]}"; do
		ROW " $t " " $(sec "${F[$t|dump]}") " " $(sec "${F[$t|tree]}") " " $(sec "${F[$t|total]}") " " ${F[$t|spread]:-—} " \
			" $(rate "$INPUT0" "${F[$t|total]}") " " $(pct "$(rate "$INPUT0" "${F[$t|total]}")" "$BK_CEIL") " \
			" $(mb "${F[$t|repo]}") " " $(ratio "${F[$t|repo]}" "$INPUT0") " " $(fmt_rss "${F[$t|rss]}") "
	done
	echo
	echo "## Second backup after each change"
	echo
	echo "Added = growth of the repository directory. Tree vs first = tree-part time of the second backup / of the first backup in the same scenario."
	echo
	echo "| scenario | tool | dump s | tree s | tree vs first | added MB | added / first repo | added / input | peak RSS MB |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
	for sc in "${SCENARIOS[@]}"; do
		for t in "${TOOLS[@]}"; do
			added=$(sum_parts "$sc" "$t" second added)
			rss=$(maxnum "${R[$sc|$t|second|dump|rss]:-}" "${R[$sc|$t|second|tree|rss]:-}")
			ROW " $sc " " $t " " $(sec "${R[$sc|$t|second|dump|s]:-}") " " $(sec "${R[$sc|$t|second|tree|s]:-}") " \
				" $(pct "${R[$sc|$t|second|tree|s]:-}" "${R[$sc|$t|first|tree|s]:-}") " " $(mb "$added") " \
				" $(pct "$added" "${R[$sc|$t|first|tree|repo]:-}") " \
				" $(pct "$added" "$(calc "${M[${sc}_dump_bytes]:-0} + ${M[${sc}_tree_bytes]:-0}" 0)") " " $(fmt_rss "$rss") "
		done
	done
	echo
	echo "## Restore of the latest snapshot (scenario $RESTORE_SC, after its second backup)"
	echo
	echo "| tool | dump s | tree s | total s | MB/s | % of restore ceiling | peak RSS MB | verified dump | verified tree |"
	echo "|---|---:|---:|---:|---:|---:|---:|---|---|"
	RIN=$(calc "${M[${RESTORE_SC}_dump_bytes]:-0} + ${M[${RESTORE_SC}_tree_bytes]:-0}" 0)
	for t in "${TOOLS[@]}"; do
		rss=$(maxnum "${R[$RESTORE_SC|$t|restore|dump|rss]:-}" "${R[$RESTORE_SC|$t|restore|tree|rss]:-}")
		ROW " $t " " $(sec "${R[$RESTORE_SC|$t|restore|dump|s]:-}") " " $(sec "${R[$RESTORE_SC|$t|restore|tree|s]:-}") " \
			" $(sec "${F[$t|restore]}") " " $(rate "$RIN" "${F[$t|restore]}") " " $(pct "$(rate "$RIN" "${F[$t|restore]}")" "$RS_CEIL") " \
			" $(fmt_rss "$rss") " " ${R[$RESTORE_SC|$t|restore|dump|st]:-—} " " ${R[$RESTORE_SC|$t|restore|tree|st]:-—} "
	done
	echo
	echo "## Distance from this machine's limits"
	echo
	echo "| tool | first backup MB/s (ceiling $BK_CEIL) | first dump part MB/s vs SHA-256 1 core (${M[sha256_1core_MBps]}) | unchanged dump re-backup MB/s vs SHA-256 1 core | restore MB/s (ceiling $RS_CEIL) | peak RSS MB (target < 200) |"
	echo "|---|---:|---:|---:|---:|---:|"
	for t in "${TOOLS[@]}"; do
		fd=$(rate "${M[dump_bytes]}" "${F[$t|dump]}")
		ud=—
		[ "${SCENARIOS[*]}" = "${SCENARIOS[*]/files1/}" ] || ud=$(rate "${M[dump_bytes]}" "${R[files1|$t|second|dump|s]:-}")
		fb=$(rate "$INPUT0" "${F[$t|total]}")
		rs=$(rate "$RIN" "${F[$t|restore]}")
		ROW " $t " " $fb ($(pct "$fb" "$BK_CEIL")) " " $fd ($(pct "$fd" "${M[sha256_1core_MBps]}")) " \
			" $ud ($(pct "$ud" "${M[sha256_1core_MBps]}")) " " $rs ($(pct "$rs" "$RS_CEIL")) " " $(fmt_rss "${F[$t|peakrss]}") "
	done
	echo
	echo "## Targets (supamanager, ratios from this run)"
	echo
	verdict() { # value op threshold
		nums "${1:-}" || { echo "n/a"; return; }
		awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { ok = (op == "<" ? v < t : op == "<=" ? v <= t : v >= t); print ok ? "PASS" : "FAIL" }'
	}
	fig() { # fig TOOL -> the 8 figures, '|' separated
		local t=$1 a b c d e f g h
		a=$(ratio "${F[restic|total]:-}" "${F[$t|total]}")
		b=$(ratio "${F[$t|repo]}" "${F[restic|repo]:-}")
		c=$(ratio "${R[files1|$t|second|tree|s]:-}" "${R[files1|$t|first|tree|s]:-}")
		d=$(ratio "$(rate "${M[dump_bytes]}" "${R[files1|$t|second|dump|s]:-}")" "${M[sha256_1core_MBps]}")
		e=$(ratio "$(sum_parts append1 "$t" second added)" "${R[append1|$t|first|tree|repo]:-}")
		f=$(ratio "$(sum_parts update1 "$t" second added)" "$(sum_parts update1 restic second added)")
		g=$(ratio "${F[restic|restore]:-}" "${F[$t|restore]}")
		h=$(nums "${F[$t|peakrss]:-}" && calc "${F[$t|peakrss]} / 1000" 0 || echo —)
		echo "$a|$b|$c|$d|$e|$f|$g|$h"
	}
	declare -A FG
	for t in "${TOOLS[@]}"; do FG[$t]=$(fig "$t"); done
	names=("first backup speed vs restic (restic time / tool time)" "repository size vs restic (tool / restic)"
		"files1: tree part of 2nd backup / 1st" "unchanged dump re-backup speed / SHA-256 1 core"
		"append1: 2nd backup stores / first repo size" "update1: stored vs restic (tool / restic)"
		"restore speed vs restic (restic time / tool time)" "peak RSS MB")
	ops=(">=" "<=" "<" ">=" "<" "<=" ">=" "<")
	thr=(2 1 0.15 "$BENCH_HASH_TARGET" 0.03 1 1 200)
	hdr="| figure | target |"
	sep="|---|---|"
	for t in "${TOOLS[@]}"; do hdr="$hdr $t |"; sep="$sep---:|"; done
	echo "$hdr verdict (supamanager) |"
	echo "$sep---|"
	for i in 0 1 2 3 4 5 6 7; do
		line="| ${names[$i]} | ${ops[$i]} ${thr[$i]} |"
		for t in "${TOOLS[@]}"; do line="$line $(cut -d'|' -f$((i + 1)) <<<"${FG[$t]}") |"; done
		if [ -n "${FG[supamanager]:-}" ] && [ "$i" = 7 ] && [ -n "$(for k in "${!FAILED[@]}"; do [[ $k == *"|supamanager" ]] && echo x; done)" ]; then
			line="$line n/a (some steps failed) |"
		elif [ -n "${FG[supamanager]:-}" ]; then
			line="$line **$(verdict "$(cut -d'|' -f$((i + 1)) <<<"${FG[supamanager]}")" "${ops[$i]}" "${thr[$i]}")** |"
		else
			line="$line n/a (engine not run) |"
		fi
		echo "$line"
	done
	echo
	echo "## Failures and notes"
	echo
	n=0
	for k in "${!FAILED[@]}"; do echo "- ${k/|/ \/ }: ${FAILED[$k]}"; n=$((n + 1)); done
	[ -z "${NOTE[supamanager]:-}" ] || { echo "- supamanager ${NOTE[supamanager]}"; n=$((n + 1)); }
	[ "$n" -gt 0 ] || echo "- none"
	[[ " ${TOOLS[*]} " != *" tar "* ]] || echo "- tar baseline: second tree backup is a GNU tar --listed-incremental level 1; its dump part is a full copy every time; restore extracts level 0 then level 1."
	echo "- restic and borg back up the dump (stdin) and the tree as two snapshots/archives; so does supamanager here (database=- and storage=DIR), so each part is timed on its own."
} >"$MD"
say "done in $(calc "${M[run_seconds]} / 60" 1) min: $MD"
cat "$MD"
