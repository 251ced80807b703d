# Helpers for project end-to-end tests: a real PostgreSQL 15 cluster with a
# Supabase-shaped database, a storage tree, config files. Source after lib.sh.
. "$SOURCE_ROOT/tests/lib/pg.sh"
. "$SOURCE_ROOT/tests/lib/dbcompare.sh"
FIX=$SOURCE_ROOT/tests/fixtures/supabase
export SUPAMANAGER_HOME=$T/home
# PostgreSQL runs as user postgres and must reach the test directory
chmod 755 "$T"

# start_cluster NAME [fixture: source|target|empty] -> sets PORT (and PORT_<NAME>)
start_cluster() {
  local name=$1 kind=${2:-source} port
  port=$(pg_free_port) || fail "no free port"
  pg_start "$T/pg-$name" "$port" >/dev/null || fail "cannot start PostgreSQL ($name)"
  on_exit "pg_destroy '$T/pg-$name'"
  case $kind in
  source)
    pg_psql "$port" postgres -f "$FIX/roles.sql" >/dev/null &&
      pg_createdb "$port" proj &&
      pg_psql "$port" proj -f "$FIX/init.sql" >/dev/null &&
      pg_psql "$port" proj -f "$FIX/sample-data.sql" >/dev/null || fail "cannot load the fixture"
    ;;
  target)
    pg_createdb "$port" proj &&
      (cd "$FIX" && pg_psql "$port" proj -f target-prepared.sql >/dev/null) || fail "cannot prepare the target"
    ;;
  esac
  eval "PORT_$name=$port"
  PORT=$port
}

# make_project_files DIR: storage tree, config dir with the files Supabase keeps
make_project_files() {
  local d=$1
  mkdir -p "$d" && bash "$FIX/make-storage.sh" "$d/storage" >/dev/null || fail "make-storage"
  mkdir -p "$d/config" &&
    printf 'JWT_SECRET=super-secret-jwt-token\nPOSTGRES_PASSWORD=pw\n' >"$d/config/.env" &&
    printf 'services:\n  db:\n    image: supabase/postgres:15\n' >"$d/config/docker-compose.yml" &&
    printf '_format_version: "2.1"\n' >"$d/config/kong.yml" &&
    printf 'sources: {}\n' >"$d/config/vector.yml" &&
    chmod 600 "$d/config/.env" || fail "config files"
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/pgsodium_root.key"
}

# snapshot of everything a restore must bring back, into DIR
fingerprint_project() { # PORT DB FILESDIR OUTDIR
  local port=$1 db=$2 files=$3 out=$4
  mkdir -p "$out"
  db_fingerprint "$(pg_url "$port" "$db")" "$out/db" >/dev/null 2>&1 || fail "db_fingerprint"
  roles_fingerprint "$(pg_url "$port" postgres)" "$out/roles" >/dev/null 2>&1 || fail "roles_fingerprint"
  storage_fingerprint "$files/storage" "$out/storage" >/dev/null 2>&1 || fail "storage_fingerprint"
  storage_fingerprint "$files/config" "$out/config" >/dev/null 2>&1 || fail "config fingerprint"
}

same_fingerprints() { # A B what
  for part in db roles storage config; do
    if ! cmp -s "$1/$part" "$2/$part"; then
      diff "$1/$part" "$2/$part" | head -20 >&2
      fail "$3: $part differs"
    fi
  done
}

# start_service [ARGS...]: `supamanager serve ARGS` on a free port in the background, its
# output in $T/serve.out and $T/serve.log; sets API (the port) and DAEMON (the pid), waits
# until /health answers, and kills it at exit (stop_service stops it and checks the exit)
start_service() {
  API=$(pg_free_port) || fail "no free port"
  "$SM" serve --listen "127.0.0.1:$API" "$@" >"$T/serve.out" 2>"$T/serve.log" &
  DAEMON=$!
  on_exit "kill $DAEMON 2>/dev/null; wait $DAEMON 2>/dev/null"
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$API/health" >/dev/null && return 0; sleep 0.1; done
  fail "the service did not start: $(tail -5 "$T/serve.log")"
}
