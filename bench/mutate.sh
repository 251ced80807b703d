#!/bin/bash
# Apply one deterministic change scenario to a dataset made by gen-dataset.sh.
#
#   bench/mutate.sh DIR MODE
#
#   files1   1 % of the storage files changed: half of them rewritten in place
#            (logs appended to, other files replaced by a new version of about
#            the same size), half new files added next to existing ones.
#   append1  new rows equal to 1 % of each table (ids after the current maximum,
#            referencing existing and new users) + a files1-style change with
#            another seed (another 1 % of the files).
#   update1  1 % of the rows of every table updated, chosen by a fixed hash of
#            the primary key (no files touched).
#
# Applied to a fresh dataset the result is always the same; to start again from
# the original state: DROP DATABASE bench; CREATE DATABASE bench TEMPLATE
# bench_pristine; and regenerate DIR/files (bench/run.sh does this).
# Uses the running cluster of DIR if there is one, else starts it and stops it
# again (port $BENCH_PG_PORT).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -eq 2 ] || { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
DIR=$(abspath "$1")
MODE=$2
[ -f "$DIR/dataset.env" ] || die "$DIR is not a dataset (run gen-dataset.sh first)"
bench_build_gen "$DIR"
GEN=$DIR/bin/benchgen

# 10 per mille = 1 % of the files
mutate_files() { "$GEN" mutate "$DIR/files" "$1" 10; }

started=
with_pg() {
	if ! pg_running "$DIR"; then
		pg_check_dir "$DIR"
		pg_start "$DIR" run
		started=1
	fi
}
cleanup() { [ -z "$started" ] || pg_stop "$DIR"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

append_rows() {
	local t n k first nusers
	nusers=$(psql_ "$DIR" bench -At -c "SELECT count(*) FROM auth.users")
	for t in "${BENCH_TABLES[@]}"; do
		if [ "$t" = users ]; then
			n=$nusers
			first=$((n + 1))
		else
			read -r n first < <(psql_ "$DIR" bench -At -F' ' -c "SELECT count(*), coalesce(max(id), 0) + 1 FROM ${BENCH_QTABLE[$t]}")
		fi
		k=$(((n + 50) / 100))
		[ "$k" -ge 1 ] || k=1
		psql_ "$DIR" bench -c "COPY ${BENCH_QTABLE[$t]} FROM PROGRAM '$GEN rows $t $first $k $nusers'"
		[ "$t" != users ] || nusers=$((nusers + k))
		say "append1: $t +$k rows"
	done
}

update_rows() {
	# hashint8extended / hashtextextended are stable, so the same 1 % is chosen every time;
	# new values are computed from the row itself (no random(), no now()).
	psql_ "$DIR" bench <<'SQL'
UPDATE auth.users
   SET last_sign_in_at = last_sign_in_at + interval '17 days',
       updated_at = updated_at + interval '17 days',
       raw_user_meta_data = raw_user_meta_data || jsonb_build_object('plan', 'pro', 'ref', md5(id::text))
 WHERE mod(hashtextextended(id::text, 11), 100) = 0;
UPDATE public.orders
   SET status = 'refunded', amount = amount + 1, note = 'refund ' || md5(id::text)
 WHERE mod(hashint8extended(id, 11), 100) = 0;
UPDATE public.posts
   SET body = body || E'\n\nEdit: ' || md5(id::text) || ' ' || md5(slug), updated_at = updated_at + interval '3 days'
 WHERE mod(hashint8extended(id, 11), 100) = 0;
UPDATE public.events
   SET payload = jsonb_set(payload, '{props,n}', to_jsonb((payload #>> '{props,n}')::int + 1)) || '{"rev": 2}'
 WHERE mod(hashint8extended(id, 11), 100) = 0;
UPDATE public.attachments a
   SET data = (SELECT decode(string_agg(md5(a.id::text || ':' || g::text), '' ORDER BY g), 'hex')
                 FROM generate_series(1, (a.size + 15) / 16) g),
       size = ((a.size + 15) / 16) * 16
 WHERE mod(hashint8extended(id, 11), 100) = 0;
SQL
	say "update1: 1 % of the rows of each table updated"
}

case $MODE in
files1) mutate_files 101 ;;
append1)
	with_pg
	append_rows
	mutate_files 202
	;;
update1)
	with_pg
	update_rows
	;;
*) die "unknown MODE $MODE (files1|append1|update1)" ;;
esac
