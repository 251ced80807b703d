/* The PostgreSQL side of project backups. The restore recipe (and why each
 * step is there) is in tests/fixtures/supabase/README.md; tests/lib/selftest.sh
 * has the same recipe in shell (restore_globals, restore_database).
 *
 * Client programs run with fork/exec, never through a shell. They get the
 * connection as a keyword/value string in -d without the password, which
 * goes into their environment as PGPASSWORD (readable only by our uid), so
 * it appears neither in ps output nor in any message. */
#include "source/pg.h"

#include "core/buf.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/mem.h"

#include <libpq-fe.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Server settings for pg_restore: no trigger or event trigger fires while
 * the data loads (superuser only). */
#define REPLICA_OPTIONS "-c session_replication_role=replica"

/* How long we wait for a connection, unless the URL or PGCONNECT_TIMEOUT
 * says otherwise. */
#define CONNECT_TIMEOUT "10"

#define SUPERUSER_HINT                                                                             \
    "Connect as a superuser (on Supabase: supabase_admin): dumping roles with their passwords "    \
    "reads pg_authid, and an exact restore creates event triggers and extensions as their owners."

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                               */

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* "x" with embedded quotes doubled: always a valid SQL identifier. */
static void put_ident(sm_buf *b, const char *name)
{
    sm_buf_putc(b, '"');
    for (const char *p = name; *p; p++) {
        if (*p == '"')
            sm_buf_putc(b, '"');
        sm_buf_putc(b, *p);
    }
    sm_buf_putc(b, '"');
}

/* E'x' with quotes and backslashes escaped: right whatever
 * standard_conforming_strings is. */
static void put_literal(sm_buf *b, const char *s)
{
    sm_buf_putc(b, 'E');
    sm_buf_putc(b, '\'');
    for (const char *p = s; *p; p++) {
        if (*p == '\'' || *p == '\\')
            sm_buf_putc(b, *p);
        sm_buf_putc(b, *p);
    }
    sm_buf_putc(b, '\'');
}

/* keyword='value' for a libpq connection string. */
static void put_kv(sm_buf *b, const char *kw, const char *val)
{
    if (b->len)
        sm_buf_putc(b, ' ');
    sm_buf_putf(b, "%s='", kw);
    for (const char *p = val; *p; p++) {
        if (*p == '\'' || *p == '\\')
            sm_buf_putc(b, '\\');
        sm_buf_putc(b, *p);
    }
    sm_buf_putc(b, '\'');
}

/* Collapses runs of white space (libpq and the server indent with tabs and
 * double spaces) and trims both ends, in place. */
static void squeeze(char *s)
{
    char *w = s;
    int space = 0;

    for (const char *r = s; *r; r++) {
        if (isspace((unsigned char)*r)) {
            space = 1;
            continue;
        }
        if (space && w != s)
            *w++ = ' ';
        space = 0;
        *w++ = *r;
    }
    *w = '\0';
}

static int is_uri(const char *url)
{
    return starts_with(url, "postgresql://") || starts_with(url, "postgres://");
}

static void progress(const pg_restore_opts *o, const char *phase)
{
    if (o && o->progress)
        o->progress(o->progress_ud, phase);
}

/* ------------------------------------------------------------------------------------------ */
/* URLs                                                                                        */

/* libpq's options of a URL (caller frees with PQconninfoFree). A bare word is
 * a database name, as psql takes it. */
static PQconninfoOption *url_parse(const char *url, sm_err *err)
{
    char *errmsg = NULL;
    PQconninfoOption *opts;
    sm_buf tmp = SM_BUF_INIT;

    if (!url)
        url = "";
    if (*url && !is_uri(url) && !strchr(url, '=')) {
        put_kv(&tmp, "dbname", url);
        url = sm_buf_str(&tmp);
    }
    opts = PQconninfoParse(url, &errmsg);
    if (!opts) {
        char msg[512];
        copy_str(msg, sizeof(msg), errmsg ? errmsg : "out of memory");
        /* libpq quotes the offending part, which may be (part of) a password */
        if (strchr(url, '@') || strstr(url, "password")) {
            char *q = strchr(msg, '"');
            if (q) {
                char *e = strrchr(q + 1, '"');
                if (e)
                    memmove(q + 1, e, strlen(e) + 1);
            }
        }
        squeeze(msg);
        sm_err_set(err, SM_E_INVALID, "invalid database URL: %s", msg);
        sm_err_hint(err, "Write it as postgresql://USER:PASSWORD@HOST:PORT/DATABASE, with special "
                         "characters of the password percent-encoded.");
    }
    PQfreemem(errmsg);
    sm_buf_release(&tmp);
    return opts;
}

static const char *opt_get(const PQconninfoOption *opts, const char *kw)
{
    for (const PQconninfoOption *o = opts; o && o->keyword; o++)
        if (!strcmp(o->keyword, kw))
            return o->val;
    return NULL;
}

static void put_pct(sm_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            sm_buf_putc(b, *p);
        } else {
            sm_buf_putc(b, '%');
            sm_buf_putc(b, hex[*p >> 4]);
            sm_buf_putc(b, hex[*p & 15]);
        }
    }
}

char *pg_url_with_db(const char *url, const char *dbname)
{
    sm_buf b = SM_BUF_INIT;
    PQconninfoOption *opts = NULL;

    if (!url)
        url = "";
    if (is_uri(url)) {
        /* as libpq reads it: credentials end at '@' or '/', the host part at '/' or '?' */
        const char *p = strstr(url, "://") + 3, *q;
        for (q = p; *q && *q != '@' && *q != '/'; q++)
            ;
        if (*q == '@')
            p = q + 1;
        p += strcspn(p, "/?");
        sm_buf_put(&b, url, (size_t)(p - url));
        sm_buf_putc(&b, '/');
        put_pct(&b, dbname);
        q = strchr(p, '?');
        if (q) {
            /* keep every parameter but dbname */
            int first = 1;
            q++;
            while (*q) {
                size_t n = strcspn(q, "&");
                if (!(n >= 7 && !strncmp(q, "dbname=", 7))) {
                    sm_buf_putc(&b, first ? '?' : '&');
                    sm_buf_put(&b, q, n);
                    first = 0;
                }
                q += n;
                if (*q == '&')
                    q++;
            }
        }
        return sm_buf_detach(&b, NULL);
    }
    opts = url_parse(url, NULL);
    if (!opts) {
        /* unparsable: the connection that uses it reports why */
        sm_buf_puts(&b, url);
        put_kv(&b, "dbname", dbname);
        return sm_buf_detach(&b, NULL);
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val && strcmp(o->keyword, "dbname"))
            put_kv(&b, o->keyword, o->val);
    put_kv(&b, "dbname", dbname);
    PQconninfoFree(opts);
    return sm_buf_detach(&b, NULL);
}

/* The connection string a client program gets in -d: the URL's options
 * without the password (*password gets it, or NULL), with dbname replaced
 * (dbname non-NULL) or dropped (drop_dbname), and extra server options
 * appended to the URL's (or PGOPTIONS'). */
static int child_conninfo(const char *url, const char *dbname, int drop_dbname,
                          const char *extra_options, sm_buf *out, char **password, sm_err *err)
{
    PQconninfoOption *opts = url_parse(url, err);
    int have_options = 0;

    *password = NULL;
    if (!opts)
        return -1;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val)
            continue;
        if (!strcmp(o->keyword, "password")) {
            *password = sm_xstrdup(o->val);
        } else if (!strcmp(o->keyword, "dbname")) {
            continue;
        } else if (!strcmp(o->keyword, "options") && extra_options) {
            char *merged = sm_xasprintf("%s %s", o->val, extra_options);
            put_kv(out, "options", merged);
            free(merged);
            have_options = 1;
        } else {
            put_kv(out, o->keyword, o->val);
        }
    }
    if (extra_options && !have_options) {
        const char *env = getenv("PGOPTIONS");
        char *merged =
            env && *env ? sm_xasprintf("%s %s", env, extra_options) : sm_xstrdup(extra_options);
        put_kv(out, "options", merged);
        free(merged);
    }
    if (!drop_dbname) {
        const char *db = dbname ? dbname : opt_get(opts, "dbname");
        if (db)
            put_kv(out, "dbname", db);
    }
    PQconninfoFree(opts);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* connections                                                                                 */

/* The reason of a failed connection, without libpq's "connection to server
 * at ... failed: " and the server's "FATAL:", on one line. */
static void conn_reason(const char *msg, char *out, size_t cap)
{
    const char *p = msg ? msg : "";
    const char *f = strstr(p, " failed: ");
    size_t n;

    if (starts_with(p, "connection to server") && f && f < p + strcspn(p, "\n"))
        p = f + strlen(" failed: ");
    n = strcspn(p, "\n");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    squeeze(out);
    if (starts_with(out, "FATAL: "))
        memmove(out, out + 7, strlen(out + 7) + 1);
    if (!*out)
        copy_str(out, cap, "unknown error");
}

static int conn_fail(PGconn *c, sm_err *err)
{
    const char *host = PQhost(c), *port = PQport(c), *user = PQuser(c), *db = PQdb(c);
    char reason[600];

    conn_reason(PQerrorMessage(c), reason, sizeof(reason));
    if (!host || !*host)
        host = "localhost";
    if (!port || !*port)
        port = "5432";
    if (!user)
        user = "";
    if (strstr(reason, "password authentication failed") ||
        strstr(reason, "no password supplied") ||
        strstr(reason, "authentication failed for user") ||
        strstr(reason, "no pg_hba.conf entry") || strstr(reason, "pg_hba.conf rejects") ||
        strstr(reason, "SCRAM") ||
        (starts_with(reason, "role \"") && strstr(reason, "does not exist"))) {
        sm_err_set(err, SM_E_AUTH, "cannot log in to PostgreSQL at %s:%s as '%s': %s", host, port,
                   user, reason);
        return sm_err_hint(err, "Check the user name and password in the database URL: the role "
                                "must exist, and pg_hba.conf must let it connect from this host.");
    }
    if (starts_with(reason, "database \"") && strstr(reason, "does not exist")) {
        sm_err_set(err, SM_E_NOTFOUND, "database '%s' does not exist on PostgreSQL at %s:%s",
                   db ? db : "", host, port);
        return sm_err_hint(err, "Check the database name in the URL.");
    }
    sm_err_set(err, SM_E_DB, "cannot connect to PostgreSQL at %s:%s: %s", host, port, reason);
    return sm_err_hint(err,
                       "Check that PostgreSQL is running and accepts connections on %s:%s, "
                       "and that the host and port in the database URL are right.",
                       host, port);
}

/* The server's message of a failed command, on one line (with its detail). */
static void res_reason(const PGresult *r, PGconn *c, char *out, size_t cap)
{
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *d = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL;

    if (!m)
        m = PQerrorMessage(c);
    if (d)
        snprintf(out, cap, "%s (%s)", m, d);
    else
        copy_str(out, cap, m);
    squeeze(out);
}

static const char *res_state(const PGresult *r)
{
    const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

/* Connects to the URL (or its server's database dbname). Sessions use
 * search_path pg_catalog and no statement or idle timeouts. */
static int conn_open(PGconn **out, const char *url, const char *dbname, sm_err *err)
{
    PQconninfoOption *opts = NULL;
    const char **kw = NULL, **val = NULL;
    size_t n = 0, cap = 4;
    PGconn *c = NULL;
    PGresult *r = NULL;
    int rc = -1, have_db = 0, have_timeout = 0;

    *out = NULL;
    opts = url_parse(url, err);
    if (!opts)
        goto out;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        cap++;
    kw = sm_xcalloc(cap, sizeof(*kw));
    val = sm_xcalloc(cap, sizeof(*val));
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val)
            continue;
        if (!strcmp(o->keyword, "dbname")) {
            have_db = 1;
            if (dbname) {
                kw[n] = "dbname";
                val[n++] = dbname;
                continue;
            }
        }
        if (!strcmp(o->keyword, "connect_timeout"))
            have_timeout = 1;
        kw[n] = o->keyword;
        val[n++] = o->val;
    }
    if (dbname && !have_db) {
        kw[n] = "dbname";
        val[n++] = dbname;
    }
    if (!have_timeout && !getenv("PGCONNECT_TIMEOUT")) {
        kw[n] = "connect_timeout";
        val[n++] = CONNECT_TIMEOUT;
    }
    kw[n] = "fallback_application_name";
    val[n++] = "supamanager";
    c = PQconnectdbParams(kw, val, 0);
    if (!c) {
        sm_err_set(err, SM_E_INTERNAL, "cannot connect to PostgreSQL: out of memory");
        goto out;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        conn_fail(c, err);
        goto out;
    }
    r = PQexec(c, "SELECT pg_catalog.set_config('search_path', 'pg_catalog', false), "
                  "pg_catalog.set_config('statement_timeout', '0', false), "
                  "pg_catalog.set_config('idle_in_transaction_session_timeout', '0', false)");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char why[512];
        res_reason(r, c, why, sizeof(why));
        sm_err_set(err, SM_E_DB, "cannot set up a session on PostgreSQL at %s:%s: %s", PQhost(c),
                   PQport(c), why);
        goto out;
    }
    *out = c;
    c = NULL;
    rc = 0;
out:
    PQclear(r);
    PQfinish(c);
    free(kw);
    free(val);
    PQconninfoFree(opts);
    return rc;
}

/* Runs one command; on failure sets SM_E_DB "cannot <what>: <server message>"
 * (the caller may refine it from *sqlstate). */
static int exec_cmd(PGconn *c, const char *sql, int nparams, const char *const *params,
                    PGresult **res, char sqlstate[6], sm_err *err, const char *what, ...)
    __attribute__((format(printf, 8, 9)));

static int exec_cmd(PGconn *c, const char *sql, int nparams, const char *const *params,
                    PGresult **res, char sqlstate[6], sm_err *err, const char *what, ...)
{
    PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);

    if (sqlstate)
        sqlstate[0] = '\0';
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char why[700], doing[256];
        va_list ap;
        va_start(ap, what);
        vsnprintf(doing, sizeof(doing), what, ap);
        va_end(ap);
        res_reason(r, c, why, sizeof(why));
        if (sqlstate)
            copy_str(sqlstate, 6, res_state(r));
        sm_err_set(err, SM_E_DB, "cannot %s: %s", doing, why);
        PQclear(r);
        if (res)
            *res = NULL;
        return -1;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return 0;
}

/* A connection to a maintenance database of the URL's server: postgres, or
 * template1 when postgres is one of the databases the caller works on (or
 * does not exist). *used gets the name. */
static int maint_open(PGconn **out, const char *url, const char *a, const char *b, const char *c,
                      const char **used, sm_err *err)
{
    static const char *const names[] = {"postgres", "template1"};
    sm_err first = SM_ERR_INIT;
    int tried = 0;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *n = names[i];
        if ((a && !strcmp(a, n)) || (b && !strcmp(b, n)) || (c && !strcmp(c, n)))
            continue;
        if (conn_open(out, url, n, tried ? NULL : &first) == 0) {
            if (used)
                *used = n;
            return 0;
        }
        if (first.code != SM_E_NOTFOUND)
            break; /* unreachable or refused: another database will not help */
        tried = 1;
    }
    if (first.code == SM_OK)
        sm_err_set(&first, SM_E_NOTFOUND, "no maintenance database (postgres, template1) to use");
    sm_err_copy(err, &first);
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* probe                                                                                       */

int pg_find_bindir(int major, char *out, size_t cap, sm_err *err)
{
    /* prefix + major + suffix */
    static const char *const patterns[][2] = {{"/usr/lib/postgresql/", "/bin"},
                                              {"/usr/pgsql-", "/bin"}};
    static const char *const programs[] = {"pg_dump", "pg_dumpall", "pg_restore", "psql"};
    char dir[256], path[300];

    for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
        snprintf(dir, sizeof(dir), "%s%d%s", patterns[i][0], major, patterns[i][1]);
        snprintf(path, sizeof(path), "%s/pg_dump", dir);
        if (access(path, X_OK) != 0)
            continue;
        for (size_t k = 1; k < sizeof(programs) / sizeof(programs[0]); k++) {
            snprintf(path, sizeof(path), "%s/%s", dir, programs[k]);
            if (access(path, X_OK) != 0) {
                sm_err_set(err, SM_E_NOTFOUND, "'%s' of PostgreSQL %d is missing from '%s'",
                           programs[k], major, dir);
                return sm_err_hint(err,
                                   "Reinstall the PostgreSQL %d client programs: apt-get "
                                   "install --reinstall postgresql-client-%d.",
                                   major, major);
            }
        }
        copy_str(out, cap, dir);
        return 0;
    }
    sm_err_set(err, SM_E_NOTFOUND,
               "no pg_dump of PostgreSQL %d found (looked in /usr/lib/postgresql/%d/bin and "
               "/usr/pgsql-%d/bin)",
               major, major, major);
    return sm_err_hint(err,
                       "Install the client programs of the server's version: apt-get install "
                       "postgresql-client-%d (from apt.postgresql.org if your distribution does "
                       "not have it).",
                       major);
}

int pg_probe(const char *url, pg_server *out, sm_err *err)
{
    PGconn *c = NULL;
    PGresult *r = NULL;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (conn_open(&c, url, NULL, err) < 0)
        goto out;
    copy_str(out->host, sizeof(out->host), PQhost(c));
    copy_str(out->port, sizeof(out->port), PQport(c));
    if (exec_cmd(c,
                 "SELECT current_setting('server_version_num')::int, "
                 "current_setting('server_version'), current_user, "
                 "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user), current_database()",
                 0, NULL, &r, NULL, err, "read the server version on PostgreSQL at %s:%s",
                 out->host, out->port) < 0)
        goto out;
    out->version_num = atoi(PQgetvalue(r, 0, 0));
    copy_str(out->version, sizeof(out->version), PQgetvalue(r, 0, 1));
    out->version[strcspn(out->version, " ")] = '\0'; /* "15.20 (Debian ...)" */
    copy_str(out->user, sizeof(out->user), PQgetvalue(r, 0, 2));
    out->superuser = !strcmp(PQgetvalue(r, 0, 3), "t");
    copy_str(out->dbname, sizeof(out->dbname), PQgetvalue(r, 0, 4));
    if (out->version_num < 100000) {
        sm_err_set(err, SM_E_VERSION,
                   "PostgreSQL %s at %s:%s is too old: version 10 or newer is "
                   "needed",
                   out->version, out->host, out->port);
        goto out;
    }
    out->major = out->version_num / 10000;
    if (!out->superuser) {
        sm_err_set(err, SM_E_FORBIDDEN, "role '%s' is not a superuser on PostgreSQL at %s:%s",
                   out->user, out->host, out->port);
        sm_err_hint(err, SUPERUSER_HINT);
        goto out;
    }
    if (pg_find_bindir(out->major, out->bindir, sizeof(out->bindir), err) < 0)
        goto out;
    rc = 0;
out:
    PQclear(r);
    PQfinish(c);
    return rc;
}

static int need_superuser(const pg_server *srv, const char *doing, sm_err *err)
{
    if (srv->superuser)
        return 0;
    sm_err_set(err, SM_E_FORBIDDEN, "%s needs a superuser, and role '%s' is not one", doing,
               srv->user);
    return sm_err_hint(err, SUPERUSER_HINT);
}

/* ------------------------------------------------------------------------------------------ */
/* child processes                                                                             */

/* Moves fd to 3 or above (so dup2 onto 0..2 in the child cannot clobber it). */
static int fd_high(int fd)
{
    int h;

    if (fd < 0 || fd > 2)
        return fd;
    h = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return h;
}

/* In the child: standard descriptors, default signals, nothing else open. */
__attribute__((noreturn)) static void child_exec(const char *path, char *const argv[],
                                                 char *const envp[], int in, int out, int errfd)
{
    struct sigaction sa;
    sigset_t none;
    static const char msg[] = "supamanager: cannot execute the program\n";

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &sa, NULL); /* invalid numbers fail harmlessly */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0)
        _exit(127);
    if (close_range(3, ~0U, 0) != 0)
        for (int fd = 3; fd < 65536; fd++)
            close(fd);
    execve(path, argv, envp);
    if (write(2, msg, sizeof(msg) - 1) < 0)
        _exit(127);
    _exit(127);
}

/* Starts bindir/prog with argv (argv[0] included). Its stdout goes to out_fd,
 * or to a pipe whose read end becomes p->fd when out_fd is -1; its stderr to
 * an in-memory file (p->err_fd), so that it can never block on it. */
static int spawn(pg_proc *p, const char *bindir, const char *prog, char **argv,
                 const char *password, int out_fd, sm_err *err)
{
    int rc = -1;
    int pipefd[2] = {-1, -1};
    int errfd = -1, nullfd = -1, child_out;
    char *path = NULL, *pw_entry = NULL;
    char **env = NULL;
    size_t n = 0, k = 0;
    pid_t pid;

    p->pid = -1;
    p->fd = -1;
    p->err_fd = -1;
    copy_str(p->what, sizeof(p->what), prog);
    path = sm_xasprintf("%s/%s", bindir, prog);
    argv[0] = path;
    if (access(path, X_OK) != 0) {
        sm_err_sys(err, SM_E_NOTFOUND, "cannot run '%s'", path);
        goto out;
    }
    errfd = fd_high(memfd_create("supamanager-stderr", MFD_CLOEXEC));
    nullfd = fd_high(open("/dev/null", O_RDWR | O_CLOEXEC));
    if (errfd < 0 || nullfd < 0) {
        sm_err_sys(err, SM_E_IO, "cannot prepare to run %s", prog);
        goto out;
    }
    if (out_fd < 0) {
        if (pipe2(pipefd, O_CLOEXEC) != 0) {
            sm_err_sys(err, SM_E_IO, "cannot create a pipe for %s", prog);
            goto out;
        }
        pipefd[0] = fd_high(pipefd[0]);
        pipefd[1] = fd_high(pipefd[1]);
        if (pipefd[0] < 0 || pipefd[1] < 0) {
            sm_err_sys(err, SM_E_IO, "cannot create a pipe for %s", prog);
            goto out;
        }
        child_out = pipefd[1];
    } else {
        child_out = out_fd;
    }

    /* everything the child needs is built before fork: after it, in a
     * threaded process, the child may only make async-signal-safe calls */
    for (char **e = environ; e && *e; e++)
        n++;
    env = sm_xcalloc(n + 2, sizeof(*env));
    for (char **e = environ; e && *e; e++)
        if (!(password && starts_with(*e, "PGPASSWORD=")))
            env[k++] = *e;
    if (password) {
        pw_entry = sm_xasprintf("PGPASSWORD=%s", password);
        env[k++] = pw_entry;
    }
    if (child_out >= 0 && child_out <= 2) {
        child_out = fd_high(dup(child_out));
        if (child_out < 0) {
            sm_err_sys(err, SM_E_IO, "cannot prepare to run %s", prog);
            goto out;
        }
        if (out_fd >= 0)
            out_fd = child_out; /* ours now: closed below */
    }

    pid = fork();
    if (pid < 0) {
        sm_err_sys(err, SM_E_IO, "cannot start %s", prog);
        goto out;
    }
    if (pid == 0)
        child_exec(path, argv, env, nullfd, child_out, errfd);
    p->pid = pid;
    p->err_fd = errfd;
    errfd = -1;
    if (out_fd < 0) {
        p->fd = pipefd[0];
        pipefd[0] = -1;
    }
    rc = 0;
out:
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    if (errfd >= 0)
        close(errfd);
    if (nullfd >= 0)
        close(nullfd);
    if (pw_entry) {
        sm_wipe(pw_entry, strlen(pw_entry));
        free(pw_entry);
    }
    free(env);
    free(path);
    argv[0] = NULL;
    return rc;
}

static int wait_child(pid_t pid, int *status)
{
    while (waitpid(pid, status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return 0;
}

/* The end of what the process wrote to stderr (at most 64 KiB). */
static void read_stderr(int fd, sm_buf *out)
{
    struct stat sb;
    off_t from = 0;
    char tmp[8192];
    ssize_t r;

    if (fd < 0 || fstat(fd, &sb) != 0)
        return;
    if (sb.st_size > 65536)
        from = sb.st_size - 65536;
    while ((r = pread(fd, tmp, sizeof(tmp), from)) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        sm_buf_put(out, tmp, (size_t)r);
        from += r;
    }
}

/* The lines that matter of a program's stderr, on one line: from the first
 * error line on (or the last lines when there is none), "; "-separated.
 * psql's "psql:/tmp/.../file.sql:12: " becomes "line 12: ". */
static void stderr_summary(const char *text, char *out, size_t cap)
{
    const char *start = NULL, *p = text;
    size_t used = 0, lines = 0, total = 0;
    char prev[4096] = "";

    for (const char *l = text; *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] ? 1 : 0)) {
        size_t n = strcspn(l, "\n");
        char line[4096];
        copy_str(line, n < sizeof(line) ? n + 1 : sizeof(line), l);
        total++;
        /* pg_restore names the TOC entry before the error */
        if (!start && (strstr(line, "error:") || strstr(line, "ERROR:") || strstr(line, "FATAL:") ||
                       strstr(line, "while PROCESSING TOC")))
            start = l;
    }
    if (!start) {
        /* the last 5 lines */
        size_t skip = total > 5 ? total - 5 : 0;
        start = text;
        while (skip-- > 0 && *start)
            start += strcspn(start, "\n") + 1;
    }
    out[0] = '\0';
    for (p = start; *p && lines < 8;) {
        size_t n = strcspn(p, "\n");
        char line[4096];
        const char *body = line;
        copy_str(line, n < sizeof(line) ? n + 1 : sizeof(line), p);
        p += n + (p[n] ? 1 : 0);
        squeeze(line);
        if (!*line || !strcmp(line, prev)) /* parallel workers repeat themselves */
            continue;
        copy_str(prev, sizeof(prev), line);
        if (starts_with(line, "psql:") && strstr(line, ": ")) {
            /* psql:FILE:LINE: MESSAGE */
            char *colon = strstr(line, ": ");
            char *q = colon;
            while (q > line + 5 && isdigit((unsigned char)q[-1]))
                q--;
            if (q < colon && q[-1] == ':') {
                char num[16];
                copy_str(num,
                         (size_t)(colon - q + 1) < sizeof(num) ? (size_t)(colon - q + 1)
                                                               : sizeof(num),
                         q);
                snprintf(out + used, cap - used, "%sline %s: ", used ? "; " : "", num);
                used += strlen(out + used);
                body = colon + 2;
                snprintf(out + used, cap - used, "%s", body);
                used += strlen(out + used);
                lines++;
                if (used + 1 >= cap)
                    break;
                continue;
            }
        }
        snprintf(out + used, cap - used, "%s%s", used ? "; " : "", body);
        used += strlen(out + used);
        lines++;
        if (used + 1 >= cap)
            break;
    }
    if (used + 1 >= cap && cap > 4)
        memcpy(out + cap - 4, "...", 4);
}

int pg_proc_finish(pg_proc *p, sm_err *err)
{
    return pg_proc_finish_text(p, NULL, err);
}

int pg_proc_finish_text(pg_proc *p, sm_buf *out, sm_err *err)
{
    int status = 0, rc = -1;
    sm_buf text = SM_BUF_INIT;
    char summary[700];

    if (p->fd > 2)
        close(p->fd);
    p->fd = -1;
    if (p->pid <= 0) {
        if (p->err_fd > 2)
            close(p->err_fd);
        p->err_fd = -1;
        return sm_err_set(err, SM_E_INTERNAL, "no %s process to wait for",
                          p->what[0] ? p->what : "child");
    }
    if (wait_child(p->pid, &status) < 0) {
        sm_err_sys(err, SM_E_INTERNAL, "cannot wait for %s", p->what);
        goto out;
    }
    read_stderr(p->err_fd, &text);
    if (out)
        sm_buf_puts(out, sm_buf_str(&text));
    stderr_summary(sm_buf_str(&text), summary, sizeof(summary));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        if (summary[0])
            sm_log(strstr(summary, "WARNING") || strstr(summary, "warning:") ? SM_LOG_WARN
                                                                             : SM_LOG_DEBUG,
                   "%s: %s", p->what, summary);
        rc = 0;
    } else if (WIFEXITED(status)) {
        sm_err_set(err, SM_E_EXTERNAL, "%s failed (exit status %d)%s%s", p->what,
                   WEXITSTATUS(status), summary[0] ? ": " : "", summary);
    } else if (WIFSIGNALED(status)) {
        sm_err_set(err, SM_E_EXTERNAL, "%s was killed by signal %d (%s)%s%s", p->what,
                   WTERMSIG(status), strsignal(WTERMSIG(status)), summary[0] ? ": " : "", summary);
    } else {
        sm_err_set(err, SM_E_EXTERNAL, "%s ended abnormally", p->what);
    }
out:
    p->pid = -1;
    if (p->err_fd > 2)
        close(p->err_fd);
    p->err_fd = -1;
    sm_buf_release(&text);
    return rc;
}

void pg_proc_abort(pg_proc *p)
{
    int status;

    if (!p)
        return;
    if (p->fd > 2)
        close(p->fd);
    p->fd = -1;
    if (p->pid > 0) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        int gone = 0;
        kill(p->pid, SIGTERM);
        for (int i = 0; i < 250 && !gone; i++) { /* 5 s */
            pid_t w = waitpid(p->pid, &status, WNOHANG);
            if (w == p->pid || (w < 0 && errno != EINTR))
                gone = 1;
            else
                nanosleep(&ts, NULL);
        }
        if (!gone) {
            kill(p->pid, SIGKILL);
            wait_child(p->pid, &status);
        }
    }
    p->pid = -1;
    if (p->err_fd > 2)
        close(p->err_fd);
    p->err_fd = -1;
}

/* Runs a program to its end (stdout to out_fd, or discarded when -1). */
static int run_prog(const char *bindir, const char *prog, char **argv, const char *password,
                    int out_fd, sm_err *err)
{
    pg_proc p = PG_PROC_INIT;
    int null_fd = -1, rc;

    if (out_fd < 0) {
        null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null_fd < 0)
            return sm_err_sys(err, SM_E_IO, "cannot open '/dev/null'");
        out_fd = null_fd;
    }
    rc = spawn(&p, bindir, prog, argv, password, out_fd, err);
    if (null_fd >= 0)
        close(null_fd);
    if (rc < 0)
        return -1;
    return pg_proc_finish(&p, err);
}

static void wipe_free(char *s)
{
    if (s) {
        sm_wipe(s, strlen(s));
        free(s);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* backup                                                                                      */

struct pg_session {
    PGconn *conn;
    char snapshot[64];
    char host[256];
    char port[16];
};

int pg_snapshot_begin(pg_session **out, const char *url, const pg_server *srv, sm_err *err)
{
    pg_session *s = sm_xcalloc(1, sizeof(*s));
    PGresult *r = NULL;
    int rc = -1;

    *out = NULL;
    if (conn_open(&s->conn, url, NULL, err) < 0)
        goto out;
    copy_str(s->host, sizeof(s->host), srv && srv->host[0] ? srv->host : PQhost(s->conn));
    copy_str(s->port, sizeof(s->port), srv && srv->port[0] ? srv->port : PQport(s->conn));
    if (exec_cmd(s->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, NULL, NULL,
                 err, "start a transaction on PostgreSQL at %s:%s", s->host, s->port) < 0 ||
        exec_cmd(s->conn, "SELECT pg_export_snapshot()", 0, NULL, &r, NULL, err,
                 "export a snapshot on PostgreSQL at %s:%s", s->host, s->port) < 0)
        goto out;
    copy_str(s->snapshot, sizeof(s->snapshot), PQgetvalue(r, 0, 0));
    *out = s;
    s = NULL;
    rc = 0;
out:
    PQclear(r);
    pg_snapshot_end(s);
    return rc;
}

const char *pg_snapshot_id(const pg_session *s)
{
    return s ? s->snapshot : NULL;
}

void pg_snapshot_end(pg_session *s)
{
    if (!s)
        return;
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
        PQclear(PQexec(s->conn, "ROLLBACK"));
    PQfinish(s->conn);
    free(s);
}

/* Which tables the row counts cover; see pg_snapshot_metadata in pg.h. */
static const char TABLES_SQL[] =
    "SELECT format('%I.%I', n.nspname, c.relname), c.relkind::text "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't' "
    "  AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "  AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_' "
    "  AND (NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
    "                   AND d.objid = c.oid AND d.deptype = 'e') "
    "       OR EXISTS (SELECT 1 FROM pg_extension e WHERE c.oid = ANY (e.extconfig) "
    "                  AND coalesce(e.extcondition[array_position(e.extconfig, c.oid)], '') = '')) "
    "ORDER BY 1";

/* {"schema.table": rows} of the database c is connected to, in its current
 * transaction. */
static json_t *count_rows(PGconn *c, const char *where, sm_err *err)
{
    PGresult *tables = NULL, *r = NULL;
    json_t *counts = json_object();
    sm_buf sql = SM_BUF_INIT;

    if (exec_cmd(c, TABLES_SQL, 0, NULL, &tables, NULL, err, "list the tables of %s", where) < 0)
        goto fail;
    for (int i = 0; i < PQntuples(tables); i++) {
        const char *name = PQgetvalue(tables, i, 0);
        json_int_t n = 0;
        if (!strcmp(PQgetvalue(tables, i, 1), "r")) {
            sm_buf_reset(&sql);
            /* name comes from format('%I.%I'): already quoted where needed */
            sm_buf_putf(&sql, "SELECT count(*) FROM ONLY %s", name);
            if (exec_cmd(c, sm_buf_str(&sql), 0, NULL, &r, NULL, err,
                         "count the rows of table '%s' of %s", name, where) < 0)
                goto fail;
            n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            PQclear(r);
            r = NULL;
        }
        json_object_set_new(counts, name, json_integer(n));
    }
    PQclear(tables);
    sm_buf_release(&sql);
    return counts;
fail:
    PQclear(tables);
    PQclear(r);
    sm_buf_release(&sql);
    json_decref(counts);
    return NULL;
}

static int count_large_objects(PGconn *c, const char *where, json_int_t *n, sm_err *err)
{
    PGresult *r = NULL;

    if (exec_cmd(c, "SELECT count(*) FROM pg_largeobject_metadata", 0, NULL, &r, NULL, err,
                 "count the large objects of %s", where) < 0)
        return -1;
    *n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}

json_t *pg_snapshot_metadata(pg_session *s, sm_err *err)
{
    PGresult *r = NULL;
    json_t *meta = json_object(), *arr;
    json_int_t n;
    char where[300];
    char version[64];

    snprintf(where, sizeof(where), "the database on PostgreSQL at %s:%s", s->host, s->port);
    if (exec_cmd(s->conn,
                 "SELECT current_setting('server_version'), d.datname, "
                 "pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, "
                 "pg_database_size(d.oid) "
                 "FROM pg_database d WHERE d.datname = current_database()",
                 0, NULL, &r, NULL, err, "read the database properties of %s", where) < 0)
        goto fail;
    copy_str(version, sizeof(version), PQgetvalue(r, 0, 0));
    version[strcspn(version, " ")] = '\0';
    json_object_set_new(meta, "server_version", json_string(version));
    json_object_set_new(meta, "database", json_string(PQgetvalue(r, 0, 1)));
    json_object_set_new(meta, "encoding", json_string(PQgetvalue(r, 0, 2)));
    json_object_set_new(meta, "collate", json_string(PQgetvalue(r, 0, 3)));
    json_object_set_new(meta, "ctype", json_string(PQgetvalue(r, 0, 4)));
    json_object_set_new(meta, "size_bytes", json_integer(strtoll(PQgetvalue(r, 0, 5), NULL, 10)));
    PQclear(r);
    r = NULL;

    arr = count_rows(s->conn, where, err);
    if (!arr)
        goto fail;
    json_object_set_new(meta, "row_counts", arr);

    if (exec_cmd(s->conn,
                 "SELECT e.extname, n.nspname, e.extversion, pg_get_userbyid(e.extowner) "
                 "FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                 "ORDER BY e.oid",
                 0, NULL, &r, NULL, err, "list the extensions of %s", where) < 0)
        goto fail;
    arr = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s}", "name", PQgetvalue(r, i, 0),
                                             "schema", PQgetvalue(r, i, 1), "version",
                                             PQgetvalue(r, i, 2), "owner", PQgetvalue(r, i, 3)));
    json_object_set_new(meta, "extensions", arr);
    PQclear(r);
    r = NULL;

    if (exec_cmd(s->conn,
                 "SELECT c.cfg FROM pg_db_role_setting s "
                 "CROSS JOIN LATERAL unnest(s.setconfig) WITH ORDINALITY AS c(cfg, i) "
                 "WHERE s.setrole = 0 AND s.setdatabase = "
                 "  (SELECT oid FROM pg_database WHERE datname = current_database()) "
                 "ORDER BY c.i",
                 0, NULL, &r, NULL, err, "read the database settings of %s", where) < 0)
        goto fail;
    arr = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(arr, json_string(PQgetvalue(r, i, 0)));
    json_object_set_new(meta, "database_settings", arr);
    PQclear(r);
    r = NULL;

    if (count_large_objects(s->conn, where, &n, err) < 0)
        goto fail;
    json_object_set_new(meta, "large_objects", json_integer(n));
    return meta;
fail:
    PQclear(r);
    json_decref(meta);
    return NULL;
}

int pg_dump_start(pg_proc *p, const pg_server *srv, const char *url, const char *snapshot,
                  sm_err *err)
{
    sm_buf ci = SM_BUF_INIT;
    char *password = NULL, *snap_arg = NULL;
    char *argv[10];
    int n = 0, rc = -1;

    p->pid = p->fd = p->err_fd = -1;
    if (child_conninfo(url, NULL, 0, NULL, &ci, &password, err) < 0)
        goto out;
    argv[n++] = NULL; /* the program's path, set by spawn */
    argv[n++] = "--format=custom";
    argv[n++] = "--compress=0";
    argv[n++] = "--no-password";
    if (snapshot) {
        snap_arg = sm_xasprintf("--snapshot=%s", snapshot);
        argv[n++] = snap_arg;
    }
    argv[n++] = "--dbname";
    argv[n++] = (char *)sm_buf_str(&ci);
    argv[n] = NULL;
    rc = spawn(p, srv->bindir, "pg_dump", argv, password, -1, err);
out:
    wipe_free(password);
    free(snap_arg);
    sm_buf_release(&ci);
    return rc;
}

int pg_basebackup_start(pg_proc *p, const pg_server *srv, const char *url, sm_err *err)
{
    sm_buf ci = SM_BUF_INIT;
    char *password = NULL;
    char *argv[12];
    int n = 0, rc = -1;

    p->pid = p->fd = p->err_fd = -1;
    if (child_conninfo(url, NULL, 1, NULL, &ci, &password, err) < 0)
        goto out;
    argv[n++] = NULL; /* the program's path, set by spawn */
    argv[n++] = "--pgdata=-";
    argv[n++] = "--format=tar";
    argv[n++] = "--wal-method=fetch";
    argv[n++] = "--checkpoint=fast";
    argv[n++] = "--verbose";
    argv[n++] = "--no-password";
    argv[n++] = "--label=supamanager base backup";
    argv[n++] = "--dbname";
    argv[n++] = (char *)sm_buf_str(&ci);
    argv[n] = NULL;
    rc = spawn(p, srv->bindir, "pg_basebackup", argv, password, -1, err);
out:
    wipe_free(password);
    sm_buf_release(&ci);
    return rc;
}

int pg_query_value(const char *url, const char *sql, char **value, sm_err *err)
{
    PGconn *c = NULL;
    PGresult *r = NULL;
    int rc = -1;

    *value = NULL;
    if (conn_open(&c, url, NULL, err) < 0)
        return -1;
    if (exec_cmd(c, sql, 0, NULL, &r, NULL, err, "run '%.60s'", sql) < 0)
        goto out;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        *value = sm_xstrdup(PQgetvalue(r, 0, 0));
    rc = 0;
out:
    PQclear(r);
    PQfinish(c);
    return rc;
}

int pg_globals_start(pg_proc *p, const pg_server *srv, const char *url, sm_err *err)
{
    sm_buf ci = SM_BUF_INIT;
    char *password = NULL;
    char *argv[10];
    int n = 0, rc = -1;

    p->pid = p->fd = p->err_fd = -1;
    /* pg_dumpall ignores a dbname in -d; -l names the database it connects to */
    if (child_conninfo(url, NULL, 1, NULL, &ci, &password, err) < 0)
        goto out;
    argv[n++] = NULL;
    argv[n++] = "--roles-only";
    argv[n++] = "--no-password";
    argv[n++] = "--database";
    argv[n++] = (char *)(srv->dbname[0] ? srv->dbname : "postgres");
    argv[n++] = "--dbname";
    argv[n++] = (char *)sm_buf_str(&ci);
    argv[n] = NULL;
    rc = spawn(p, srv->bindir, "pg_dumpall", argv, password, -1, err);
out:
    wipe_free(password);
    sm_buf_release(&ci);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* custom-format archives: data offsets                                                        */

/* Sequential reader over a file with its own buffer (block headers are a few
 * bytes apart: stdio seeks would cost a system call each). */
typedef struct arc_reader {
    int fd;
    unsigned char *buf;
    size_t len, at;  /* bytes in buf, read position in buf */
    off_t base;      /* file offset of buf[0] */
    size_t int_size; /* archive integers: sign byte + int_size bytes, little-endian */
    const char *path;
} arc_reader;

#define ARC_BUF (1u << 20)

static off_t ar_pos(const arc_reader *r)
{
    return r->base + (off_t)r->at;
}

/* 0, 1 at the end of the file, -1 on a read error (err set). */
static int ar_byte(arc_reader *r, int *b, sm_err *err)
{
    if (r->at == r->len) {
        ssize_t n;
        r->base += (off_t)r->len;
        r->len = r->at = 0;
        do
            n = pread(r->fd, r->buf, ARC_BUF, r->base);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            return sm_err_sys(err, SM_E_IO, "cannot read '%s'", r->path);
        if (n == 0)
            return 1;
        r->len = (size_t)n;
    }
    *b = r->buf[r->at++];
    return 0;
}

static int ar_need_byte(arc_reader *r, int *b, sm_err *err)
{
    int rc = ar_byte(r, b, err);
    if (rc > 0)
        return sm_err_set(err, SM_E_CORRUPT, "dump '%s' ends in the middle of an entry", r->path);
    return rc;
}

static int ar_int(arc_reader *r, long long *v, sm_err *err)
{
    int sign, b;
    unsigned long long u = 0;

    if (ar_need_byte(r, &sign, err) < 0)
        return -1;
    for (size_t i = 0; i < r->int_size; i++) {
        if (ar_need_byte(r, &b, err) < 0)
            return -1;
        u |= (unsigned long long)b << (8 * i);
    }
    *v = sign ? -(long long)u : (long long)u;
    return 0;
}

static int ar_skip(arc_reader *r, long long n, sm_err *err)
{
    if (n < 0)
        return sm_err_set(err, SM_E_CORRUPT, "dump '%s' has a negative length", r->path);
    if ((unsigned long long)n <= r->len - r->at) {
        r->at += (size_t)n;
    } else {
        r->base = ar_pos(r) + (off_t)n;
        r->len = r->at = 0;
    }
    return 0;
}

/* A string: skipped; *is_null tells a NULL one (length -1) apart. */
static int ar_str(arc_reader *r, int *is_null, sm_err *err)
{
    long long n;

    if (ar_int(r, &n, err) < 0)
        return -1;
    if (is_null)
        *is_null = n < 0;
    return n < 0 ? 0 : ar_skip(r, n, err);
}

typedef struct toc_off {
    long long dump_id;
    off_t at; /* where its offset field (flag byte) is */
    int flag;
} toc_off;

static int cmp_toc_off(const void *a, const void *b)
{
    const toc_off *x = a, *y = b;
    return x->dump_id < y->dump_id ? -1 : x->dump_id > y->dump_id;
}

int pg_dump_fill_offsets(const char *path, int *patched, sm_err *err)
{
    arc_reader r = {-1, NULL, 0, 0, 0, 4, path};
    toc_off *toc = NULL;
    long long count = 0, v;
    int rc = -1, b, vmaj, vmin, off_size, fmt, npatched = 0;
    unsigned char head[8];
    size_t got = 0;

    if (patched)
        *patched = 0;
    r.fd = open(path, O_RDWR | O_CLOEXEC);
    if (r.fd < 0)
        return sm_err_sys(err, SM_E_IO, "cannot open dump '%s'", path);
    r.buf = sm_xmalloc(ARC_BUF);
    if (sm_read_full(r.fd, head, sizeof(head), &got, path, err) < 0)
        goto out;
    if (got < sizeof(head) || memcmp(head, "PGDMP", 5)) {
        sm_err_set(err, SM_E_INVALID, "'%s' is not a pg_dump archive", path);
        goto out;
    }
    vmaj = head[5];
    vmin = head[6];
    if (vmaj != 1 || vmin < 12 || vmin > 14) {
        sm_log(SM_LOG_INFO, "dump '%s' has archive version %d.%d: data offsets left as they are",
               path, vmaj, vmin);
        rc = 1;
        goto out;
    }
    r.base = 8;
    r.int_size = 0;
    if (ar_need_byte(&r, &b, err) < 0 || ar_need_byte(&r, &off_size, err) < 0 ||
        ar_need_byte(&r, &fmt, err) < 0)
        goto out;
    r.int_size = (size_t)b;
    if (r.int_size < 1 || r.int_size > 8 || off_size < 1 || off_size > 8) {
        sm_err_set(err, SM_E_CORRUPT, "dump '%s' has a bad header", path);
        goto out;
    }
    if (fmt != 1) {
        sm_err_set(err, SM_E_INVALID, "dump '%s' is not in pg_dump's custom format", path);
        goto out;
    }
    /* compression, 7 time fields, database name, server and pg_dump versions */
    for (int i = 0; i < 8; i++)
        if (ar_int(&r, &v, err) < 0)
            goto out;
    for (int i = 0; i < 3; i++)
        if (ar_str(&r, NULL, err) < 0)
            goto out;
    if (ar_int(&r, &count, err) < 0)
        goto out;
    if (count < 0 || count > 100000000) {
        sm_err_set(err, SM_E_CORRUPT, "dump '%s' has a bad table of contents", path);
        goto out;
    }
    toc = sm_xcalloc((size_t)count + 1, sizeof(*toc));
    for (long long i = 0; i < count; i++) {
        int is_null = 0;
        /* dumpId, hadDumper, tableoid, oid, tag, desc, section, defn, dropStmt, copyStmt,
         * namespace, tablespace, tableam (1.14), owner, "with oids", dependencies */
        if (ar_int(&r, &toc[i].dump_id, err) < 0 || ar_int(&r, &v, err) < 0)
            goto out;
        for (int k = 0; k < 4; k++)
            if (ar_str(&r, NULL, err) < 0)
                goto out;
        if (ar_int(&r, &v, err) < 0)
            goto out;
        for (int k = 0; k < (vmin >= 14 ? 8 : 7); k++)
            if (ar_str(&r, NULL, err) < 0)
                goto out;
        do
            if (ar_str(&r, &is_null, err) < 0)
                goto out;
        while (!is_null);
        toc[i].at = ar_pos(&r);
        if (ar_need_byte(&r, &toc[i].flag, err) < 0 || ar_skip(&r, off_size, err) < 0)
            goto out;
        if (toc[i].flag < 1 || toc[i].flag > 3) {
            sm_err_set(err, SM_E_CORRUPT, "dump '%s' has a bad table of contents", path);
            goto out;
        }
    }
    qsort(toc, (size_t)count, sizeof(*toc), cmp_toc_off);

    /* the data blocks: type, dumpId, then chunks (length, bytes) up to a 0 length;
     * large objects: (oid, chunks...) up to a 0 oid */
    for (;;) {
        off_t blk = ar_pos(&r);
        long long id, n;
        toc_off key, *e;
        int st = ar_byte(&r, &b, err);
        if (st < 0)
            goto out;
        if (st > 0)
            break;
        if (ar_int(&r, &id, err) < 0)
            goto out;
        if (b != 1 && b != 3) {
            sm_err_set(err, SM_E_CORRUPT, "dump '%s' has an unknown data block at offset %lld",
                       path, (long long)blk);
            goto out;
        }
        for (;;) {
            if (b == 3) {
                long long oid;
                if (ar_int(&r, &oid, err) < 0)
                    goto out;
                if (oid == 0)
                    break;
            }
            do {
                if (ar_int(&r, &n, err) < 0 || ar_skip(&r, n, err) < 0)
                    goto out;
            } while (n != 0);
            if (b == 1)
                break;
        }
        key.dump_id = id;
        e = bsearch(&key, toc, (size_t)count, sizeof(*toc), cmp_toc_off);
        if (!e) {
            sm_err_set(err, SM_E_CORRUPT,
                       "dump '%s' has data for entry %lld, which is not in "
                       "its table of contents",
                       path, id);
            goto out;
        }
        if (e->flag == 1) { /* K_OFFSET_POS_NOT_SET */
            unsigned char field[9];
            field[0] = 2; /* K_OFFSET_POS_SET */
            for (int k = 0; k < off_size; k++)
                field[1 + k] = (unsigned char)((unsigned long long)blk >> (8 * k));
            if (pwrite(r.fd, field, (size_t)off_size + 1, e->at) != (ssize_t)off_size + 1) {
                sm_err_sys(err, SM_E_IO, "cannot write '%s'", path);
                goto out;
            }
            e->flag = 2;
            npatched++;
        }
    }
    if (patched)
        *patched = npatched;
    rc = 0;
out:
    if (r.fd >= 0 && close(r.fd) != 0 && rc == 0)
        rc = sm_err_sys(err, SM_E_IO, "cannot write '%s'", path);
    free(r.buf);
    free(toc);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* SQL text rewriting                                                                          */

typedef enum lex_state { LEX_NONE, LEX_SQUOTE, LEX_DQUOTE } lex_state;

/* The lexical state after a line (that started in state st): inside a
 * string literal or quoted identifier, or not. "--" comments end the scan. */
static lex_state lex_line(const char *p, size_t n, lex_state st)
{
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (st == LEX_NONE) {
            if (ch == '-' && i + 1 < n && p[i + 1] == '-')
                return st;
            if (ch == '\'')
                st = LEX_SQUOTE;
            else if (ch == '"')
                st = LEX_DQUOTE;
        } else if (st == LEX_SQUOTE && ch == '\'') {
            st = LEX_NONE;
        } else if (st == LEX_DQUOTE && ch == '"') {
            st = LEX_NONE;
        }
    }
    return st;
}

/* Parses an identifier as pg_dump writes it (bare, or "quoted" with ""
 * doubled) at p (n bytes). Returns its length in the text, 0 if none;
 * name (cap bytes) gets it unquoted. */
static size_t parse_ident(const char *p, size_t n, char *name, size_t cap)
{
    size_t i = 0, w = 0;

    if (n == 0)
        return 0;
    if (p[0] == '"') {
        for (i = 1; i < n; i++) {
            if (p[i] == '"') {
                if (i + 1 < n && p[i + 1] == '"') {
                    if (w + 1 < cap)
                        name[w++] = '"';
                    i++;
                    continue;
                }
                name[w < cap ? w : cap - 1] = '\0';
                return i + 1;
            }
            if (w + 1 < cap)
                name[w++] = p[i];
        }
        return 0; /* unterminated */
    }
    while (i < n && p[i] != ' ' && p[i] != ';' && p[i] != '\t' && p[i] != ',' && p[i] != '\r') {
        if (w + 1 < cap)
            name[w++] = p[i];
        i++;
    }
    name[w < cap ? w : cap - 1] = '\0';
    return i;
}

/* Length of the database name `from` at p (as an identifier followed by a
 * space, ';' or the end of the line), 0 if it is not there. */
static size_t match_db(const char *p, size_t n, const char *from)
{
    char name[512];
    size_t k = parse_ident(p, n, name, sizeof(name));

    if (k == 0 || strcmp(name, from))
        return 0;
    if (k < n && p[k] != ' ' && p[k] != ';' && p[k] != '\r')
        return 0;
    return k;
}

/* Finds `needle` in the n bytes at p. */
static const char *find_in(const char *p, size_t n, const char *needle)
{
    size_t m = strlen(needle);

    for (size_t i = 0; i + m <= n; i++)
        if (!memcmp(p + i, needle, m))
            return p + i;
    return NULL;
}

int pg_sql_rename_database(const char *sql, size_t len, const char *from, const char *to,
                           sm_buf *out, sm_err *err)
{
    lex_state st = LEX_NONE;
    int creates = 0;
    size_t pos = 0;

    while (pos < len) {
        const char *line = sql + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        size_t adv = nl ? n + 1 : n;
        const char *at = NULL; /* where the database name starts */

        if (st == LEX_NONE) {
            if (starts_with(line, "\\connect") || starts_with(line, "\\encoding ")) {
                pos += adv;
                continue;
            }
            static const char *const direct[] = {"CREATE DATABASE ", "ALTER DATABASE ",
                                                 "COMMENT ON DATABASE "};
            for (size_t i = 0; i < 3 && !at; i++)
                if (n > strlen(direct[i]) && !strncmp(line, direct[i], strlen(direct[i])))
                    at = line + strlen(direct[i]);
            if (!at && (starts_with(line, "GRANT ") || starts_with(line, "REVOKE ") ||
                        starts_with(line, "SECURITY LABEL "))) {
                at = find_in(line, n, " ON DATABASE ");
                if (at)
                    at += strlen(" ON DATABASE ");
            }
            if (!at && starts_with(line, "ALTER ROLE ")) {
                char role[512];
                size_t k = parse_ident(line + 11, n - 11, role, sizeof(role));
                const char *rest = line + 11 + k;
                if (k && (size_t)(rest - line) + 13 <= n && !strncmp(rest, " IN DATABASE ", 13))
                    at = rest + 13;
            }
        }
        if (at) {
            size_t k = match_db(at, n - (size_t)(at - line), from);
            if (k) {
                if (starts_with(line, "CREATE DATABASE "))
                    creates++;
                sm_buf_put(out, line, (size_t)(at - line));
                put_ident(out, to);
                sm_buf_put(out, at + k, adv - (size_t)(at - line) - k);
                st = lex_line(at + k, n - (size_t)(at - line) - k, st);
                pos += adv;
                continue;
            }
        }
        sm_buf_put(out, line, adv);
        st = lex_line(line, n, st);
        pos += adv;
    }
    if (!creates)
        return sm_err_set(err, SM_E_CORRUPT,
                          "the dump has no CREATE DATABASE statement for database '%s'", from);
    return 0;
}

/* "ALTER ROLE x WITH <attributes>;" for the role we are connected as, minus
 * what would lock the restore out. Returns 0, or -1 if the line is not in
 * the shape pg_dumpall writes (then it is kept as it is). */
static int rewrite_alter_self(const char *attrs, size_t n, sm_buf *kept)
{
    size_t i = 0;
    int skip_next = 0, count = 0;

    /* tokens: words, numbers and 'literals'; ends with ';' */
    while (i < n) {
        size_t s, e;
        if (attrs[i] == ' ') {
            i++;
            continue;
        }
        if (attrs[i] == ';')
            return (i + 1 == n || (i + 2 == n && attrs[i + 1] == '\r')) ? 0 : -1;
        s = i;
        if (attrs[i] == '\'') {
            i++;
            for (;;) {
                if (i >= n)
                    return -1;
                if (attrs[i] == '\'') {
                    if (i + 1 < n && attrs[i + 1] == '\'') {
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                i++;
            }
        } else {
            while (i < n && attrs[i] != ' ' && attrs[i] != ';')
                i++;
        }
        e = i;
        if (skip_next > 0) {
            skip_next--;
            continue;
        }
#define TOKEN_IS(w) (e - s == strlen(w) && !strncmp(attrs + s, w, e - s))
        if (TOKEN_IS("NOSUPERUSER") || TOKEN_IS("NOLOGIN"))
            continue;
        if (TOKEN_IS("PASSWORD")) {
            skip_next = 1;
            continue;
        }
        if (TOKEN_IS("VALID") || TOKEN_IS("CONNECTION")) {
            skip_next = 2; /* UNTIL 'x' / LIMIT n */
            continue;
        }
#undef TOKEN_IS
        if (count++)
            sm_buf_putc(kept, ' ');
        sm_buf_put(kept, attrs + s, e - s);
    }
    return -1;
}

int pg_globals_rewrite(const char *sql, size_t len, const char *current_user, sm_buf *out,
                       sm_err *err)
{
    lex_state st = LEX_NONE;
    size_t pos = 0;
    sm_buf kept = SM_BUF_INIT, lit = SM_BUF_INIT;

    (void)err;
    while (pos < len) {
        const char *line = sql + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        size_t adv = nl ? n + 1 : n;
        char name[512];

        if (st == LEX_NONE && n > 12 && starts_with(line, "CREATE ROLE ")) {
            size_t k = parse_ident(line + 12, n - 12, name, sizeof(name));
            const char *rest = line + 12 + k;
            size_t rn = n - 12 - k;
            if (k && rn >= 1 && rest[0] == ';' && (rn == 1 || (rn == 2 && rest[1] == '\r'))) {
                /* a dollar-quote tag that the statement does not contain */
                char tag[32] = "$sm$";
                for (int t = 1; find_in(line, n, tag); t++)
                    snprintf(tag, sizeof(tag), "$sm%d$", t);
                sm_buf_reset(&lit);
                put_literal(&lit, name);
                sm_buf_putf(out,
                            "DO %sBEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE "
                            "rolname = %s) THEN ",
                            tag, sm_buf_str(&lit));
                sm_buf_put(out, line, n - (rn == 2 ? 1 : 0));
                sm_buf_putf(out, " END IF; END%s;\n", tag);
                pos += adv;
                continue;
            }
        }
        if (st == LEX_NONE && current_user && n > 11 && starts_with(line, "ALTER ROLE ")) {
            size_t k = parse_ident(line + 11, n - 11, name, sizeof(name));
            const char *rest = line + 11 + k;
            size_t rn = n - 11 - k;
            if (k && !strcmp(name, current_user) && rn > 6 && !strncmp(rest, " WITH ", 6)) {
                sm_buf_reset(&kept);
                if (rewrite_alter_self(rest + 6, rn - 6, &kept) == 0) {
                    if (kept.len) {
                        sm_buf_put(out, line, 11 + k);
                        sm_buf_putf(out, " WITH %s;\n", sm_buf_str(&kept));
                    }
                    sm_log(SM_LOG_INFO,
                           "globals: role '%s' (the one the restore connects as) keeps its "
                           "password, login, superuser flag, connection limit and expiry",
                           current_user);
                    pos += adv;
                    continue;
                }
            }
        }
        sm_buf_put(out, line, adv);
        if (!nl && n)
            sm_buf_putc(out, '\n');
        st = lex_line(line, n, st);
        pos += adv;
    }
    sm_buf_release(&kept);
    sm_buf_release(&lit);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* restore                                                                                     */

static int write_file(const char *path, const sm_buf *b, sm_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc;

    if (fd < 0)
        return sm_err_sys(err, SM_E_IO, "cannot create '%s'", path);
    rc = sm_write_all(fd, b->data ? b->data : (const unsigned char *)"", b->len, path, err);
    if (close(fd) != 0 && rc == 0)
        rc = sm_err_sys(err, SM_E_IO, "cannot write '%s'", path);
    return rc;
}

/* psql -X -q -w -v ON_ERROR_STOP=1 -f file, connected to dbname of url. */
static int run_psql_file(const pg_server *srv, const char *url, const char *dbname,
                         const char *file, sm_err *err)
{
    sm_buf ci = SM_BUF_INIT;
    char *password = NULL;
    char *argv[12];
    int n = 0, rc = -1;

    if (child_conninfo(url, dbname, 0, NULL, &ci, &password, err) < 0)
        goto out;
    argv[n++] = NULL;
    argv[n++] = "--no-psqlrc";
    argv[n++] = "--quiet";
    argv[n++] = "--no-password";
    argv[n++] = "--set=ON_ERROR_STOP=1";
    /* errors without the statement text ("LINE 1: ..."), which may hold password hashes */
    argv[n++] = "--set=VERBOSITY=terse";
    argv[n++] = "--file";
    argv[n++] = (char *)file;
    argv[n++] = "--dbname";
    argv[n++] = (char *)sm_buf_str(&ci);
    argv[n] = NULL;
    rc = run_prog(srv->bindir, "psql", argv, password, -1, err);
out:
    wipe_free(password);
    sm_buf_release(&ci);
    return rc;
}

int pg_restore_globals(const pg_server *srv, const char *url, const char *globals_file,
                       const pg_restore_opts *o, sm_err *err)
{
    int rc = -1;
    char *dir = NULL, *path = NULL;
    sm_buf in = SM_BUF_INIT, out = SM_BUF_INIT;
    PGconn *c = NULL;
    PGresult *r = NULL;
    const char *maint = NULL;

    if (need_superuser(srv, "restoring roles", err) < 0)
        goto out;
    if (sm_read_file(globals_file, &in, 0, 0, err) != 0)
        goto out;
    if (maint_open(&c, url, NULL, NULL, NULL, &maint, err) < 0)
        goto out;
    if (exec_cmd(c, "SELECT current_user", 0, NULL, &r, NULL, err, "read the current role") < 0)
        goto out;
    if (pg_globals_rewrite((const char *)in.data, in.len, PQgetvalue(r, 0, 0), &out, err) < 0)
        goto out;
    dir = sm_mkdtemp(o ? o->work_dir : NULL, "supamanager-globals", err);
    if (!dir)
        goto out;
    path = sm_path_join(dir, "globals.sql");
    if (write_file(path, &out, err) < 0)
        goto out;
    progress(o, "restoring roles");
    if (run_psql_file(srv, url, maint, path, err) < 0) {
        sm_err_prefix(err, "cannot restore the roles of '%s'", globals_file);
        goto out;
    }
    rc = 0;
out:
    if (dir) {
        sm_err e2 = SM_ERR_INIT;
        if (sm_rm_rf(dir, &e2) < 0)
            sm_log(SM_LOG_WARN, "%s", e2.msg);
    }
    free(dir);
    free(path);
    PQclear(r);
    PQfinish(c);
    /* the file holds password hashes */
    if (in.data)
        sm_wipe(in.data, in.len);
    if (out.data)
        sm_wipe(out.data, out.len);
    sm_buf_release(&in);
    sm_buf_release(&out);
    return rc;
}

/* pg_restore with the given options, connected to dbname (replica mode). */
static int run_pg_restore(const pg_server *srv, const char *url, const char *dbname,
                          const char *list, int jobs, const char *dump, sm_err *err)
{
    sm_buf ci = SM_BUF_INIT;
    char *password = NULL, *jobs_arg = NULL;
    char *argv[14];
    int n = 0, rc = -1;

    if (child_conninfo(url, dbname, 0, REPLICA_OPTIONS, &ci, &password, err) < 0)
        goto out;
    argv[n++] = NULL;
    argv[n++] = "--exit-on-error";
    argv[n++] = "--no-password";
    if (jobs > 1) {
        jobs_arg = sm_xasprintf("--jobs=%d", jobs);
        argv[n++] = jobs_arg;
    }
    argv[n++] = "--use-list";
    argv[n++] = (char *)list;
    argv[n++] = "--dbname";
    argv[n++] = (char *)sm_buf_str(&ci);
    argv[n++] = (char *)dump;
    argv[n] = NULL;
    rc = run_prog(srv->bindir, "pg_restore", argv, password, -1, err);
out:
    wipe_free(password);
    free(jobs_arg);
    sm_buf_release(&ci);
    return rc;
}

/* Splits `pg_restore -l --create` output into the database entries, the
 * SCHEMA entries, and everything else; *dbname gets the dumped name. */
static int split_toc(const sm_buf *toc, sm_buf *db, sm_buf *schemas, sm_buf *rest, char **dbname,
                     const char *dump, sm_err *err)
{
    static const char *const db_descs[] = {"DATABASE ", "COMMENT - DATABASE ", "ACL - DATABASE ",
                                           "DATABASE PROPERTIES "};
    const char *p = sm_buf_str(toc);

    *dbname = NULL;
    while (*p) {
        size_t n = strcspn(p, "\n");
        const char *desc;
        if (*p == ';') {
            if (!*dbname && starts_with(p, ";     dbname: "))
                *dbname = sm_xstrndup(p + 14, n - 14);
        } else if (isdigit((unsigned char)*p)) {
            /* "ID; TABLEOID OID DESC NAMESPACE TAG OWNER" */
            desc = p;
            for (int f = 0; f < 3 && desc < p + n; f++) {
                desc = memchr(desc, ' ', (size_t)(p + n - desc));
                if (!desc)
                    break;
                desc++;
            }
            if (desc && desc < p + n) {
                sm_buf *to = rest;
                for (size_t i = 0; i < 4; i++)
                    if (starts_with(desc, db_descs[i]))
                        to = db;
                if (to == rest && starts_with(desc, "SCHEMA - "))
                    to = schemas;
                sm_buf_put(to, p, n);
                sm_buf_putc(to, '\n');
            }
        }
        p += n + (p[n] ? 1 : 0);
    }
    if (!*dbname || !db->len)
        return sm_err_set(err, SM_E_CORRUPT,
                          "'%s' has no database entries: it is not a whole-database dump of "
                          "pg_dump in custom format",
                          dump);
    return 0;
}

/* Turns a psql failure on CREATE DATABASE into a clear message when the
 * dump's locale is missing. */
static void explain_locale(const char *staging, const pg_server *srv, sm_err *err)
{
    const char *l = strstr(err->msg, "locale name: \"");
    char locale[128];
    size_t n;

    if (!l)
        return;
    l += strlen("locale name: \"");
    n = strcspn(l, "\"");
    copy_str(locale, n + 1 < sizeof(locale) ? n + 1 : sizeof(locale), l);
    sm_err_set(err, SM_E_DB,
               "cannot create database '%s': locale '%s' of the dumped database does not exist on "
               "PostgreSQL at %s:%s",
               staging, locale, srv->host, srv->port);
    sm_err_hint(err, "Install that locale on the database server (Debian: enable it in "
                     "/etc/locale.gen and run locale-gen), restart PostgreSQL, and run the restore "
                     "again.");
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* One extension, created by its owner inside a transaction. Returns 0, 1
 * when it could not be created yet (err set: maybe it needs another one
 * first), or -1 on an error that another try cannot fix. */
static int create_extension(PGconn *c, const pg_server *srv, const json_t *ext, sm_err *err)
{
    const char *name = jstr(ext, "name"), *schema = jstr(ext, "schema");
    const char *version = jstr(ext, "version"), *owner = jstr(ext, "owner");
    const char *p2[2] = {name, version};
    PGresult *r = NULL;
    sm_buf sql = SM_BUF_INIT, setrole = SM_BUF_INIT, su = SM_BUF_INIT;
    char state[6];
    int rc = -1, owner_super, have_version, have_schema;

    if (!*name || !*owner)
        return sm_err_set(err, SM_E_INVALID,
                          "the backup's metadata lists an extension without "
                          "a name or owner");
    if (exec_cmd(c,
                 "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = $1), "
                 "EXISTS (SELECT FROM pg_available_extensions WHERE name = $1), "
                 "EXISTS (SELECT FROM pg_available_extension_versions "
                 "        WHERE name = $1 AND version = $2)",
                 2, p2, &r, NULL, err, "look up extension '%s'", name) < 0)
        goto out;
    if (!strcmp(PQgetvalue(r, 0, 0), "t")) {
        rc = 0; /* plpgsql, or anything the template had */
        goto out;
    }
    if (strcmp(PQgetvalue(r, 0, 1), "t")) {
        sm_err_set(err, SM_E_NOTFOUND,
                   "extension '%s' of the backup is not installed on "
                   "PostgreSQL at %s:%s",
                   name, srv->host, srv->port);
        sm_err_hint(err,
                    "Install the package that provides extension '%s' on the database "
                    "server, then run the restore again.",
                    name);
        goto out;
    }
    have_version = *version && !strcmp(PQgetvalue(r, 0, 2), "t");
    if (*version && !have_version)
        sm_log(SM_LOG_WARN,
               "extension '%s' version %s is not installed on PostgreSQL at %s:%s: creating "
               "the server's default version",
               name, version, srv->host, srv->port);
    PQclear(r);
    r = NULL;
    if (exec_cmd(c,
                 "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = $1), "
                 "EXISTS (SELECT FROM pg_namespace WHERE nspname = $2)",
                 2, (const char *const[]){owner, schema}, &r, NULL, err,
                 "look up the owner of extension '%s'", name) < 0)
        goto out;
    if (PQgetisnull(r, 0, 0)) {
        sm_err_set(err, SM_E_NOTFOUND,
                   "extension '%s' was owned by role '%s', which does not exist on PostgreSQL "
                   "at %s:%s",
                   name, owner, srv->host, srv->port);
        sm_err_hint(err, "Restore the roles (globals) before the database.");
        goto out;
    }
    owner_super = !strcmp(PQgetvalue(r, 0, 0), "t");
    /* a schema the extension makes itself (control file) is not in the dump */
    have_schema = *schema && !strcmp(PQgetvalue(r, 0, 1), "t");
    PQclear(r);
    r = NULL;

    sm_buf_puts(&sql, "CREATE EXTENSION IF NOT EXISTS ");
    put_ident(&sql, name);
    if (have_schema) {
        sm_buf_puts(&sql, " WITH SCHEMA ");
        put_ident(&sql, schema);
    }
    if (have_version) {
        sm_buf_puts(&sql, " VERSION ");
        put_literal(&sql, version);
    }
    sm_buf_puts(&setrole, "SET LOCAL ROLE ");
    put_ident(&setrole, owner);

    if (exec_cmd(c, "BEGIN", 0, NULL, NULL, NULL, err, "start a transaction") < 0)
        goto out;
    if (exec_cmd(c, sm_buf_str(&setrole), 0, NULL, NULL, NULL, err, "switch to role '%s'", owner) ==
            0 &&
        exec_cmd(c, sm_buf_str(&sql), 0, NULL, NULL, state, err,
                 "create extension '%s' as role '%s'", name, owner) == 0 &&
        exec_cmd(c, "COMMIT", 0, NULL, NULL, NULL, err, "commit extension '%s'", name) == 0) {
        rc = 0;
        goto out;
    }
    PQclear(PQexec(c, "ROLLBACK"));
    if (strcmp(state, "42501") || owner_super) {
        rc = 1;
        goto out;
    }
    /* An untrusted extension owned by a role that is no superuser now (it
     * was one when it created it, as postgres on Supabase before its
     * demotion): lend it superuser inside one transaction, so that the
     * grant can never outlive the statement. */
    sm_buf_puts(&su, "ALTER ROLE ");
    put_ident(&su, owner);
    if (exec_cmd(c, "BEGIN", 0, NULL, NULL, NULL, err, "start a transaction") < 0)
        goto out;
    {
        char *grant = sm_xasprintf("%s SUPERUSER", sm_buf_str(&su));
        char *revoke = sm_xasprintf("%s NOSUPERUSER", sm_buf_str(&su));
        int ok =
            exec_cmd(c, grant, 0, NULL, NULL, NULL, err, "make role '%s' superuser", owner) == 0 &&
            exec_cmd(c, sm_buf_str(&setrole), 0, NULL, NULL, NULL, err, "switch to role '%s'",
                     owner) == 0 &&
            exec_cmd(c, sm_buf_str(&sql), 0, NULL, NULL, NULL, err,
                     "create extension '%s' as role '%s'", name, owner) == 0 &&
            exec_cmd(c, "RESET ROLE", 0, NULL, NULL, NULL, err, "reset the role") == 0 &&
            exec_cmd(c, revoke, 0, NULL, NULL, NULL, err, "make role '%s' no superuser", owner) ==
                0 &&
            exec_cmd(c, "COMMIT", 0, NULL, NULL, NULL, err, "commit extension '%s'", name) == 0;
        free(grant);
        free(revoke);
        if (ok) {
            rc = 0;
            goto out;
        }
    }
    PQclear(PQexec(c, "ROLLBACK"));
    rc = 1;
out:
    PQclear(r);
    sm_buf_release(&sql);
    sm_buf_release(&setrole);
    sm_buf_release(&su);
    return rc;
}

/* Creates meta's extensions in dbname as their owners. Dependencies: the
 * list is in creation order, and any that fails is tried again after the
 * others, until a round makes no progress. */
static int create_extensions(const pg_server *srv, const char *url, const char *dbname,
                             const json_t *meta, sm_err *err)
{
    const json_t *exts = meta ? json_object_get(meta, "extensions") : NULL;
    size_t n = json_array_size(exts), left = n;
    unsigned char *done = NULL;
    PGconn *c = NULL;
    int rc = -1;
    sm_err first = SM_ERR_INIT;

    if (!n)
        return 0;
    done = sm_xcalloc(n, 1);
    if (conn_open(&c, url, dbname, err) < 0)
        goto out;
    while (left) {
        size_t before = left;
        sm_err_clear(&first);
        for (size_t i = 0; i < n; i++) {
            sm_err e1 = SM_ERR_INIT;
            int r;
            if (done[i])
                continue;
            r = create_extension(c, srv, json_array_get(exts, i), &e1);
            if (r < 0) {
                sm_err_copy(err, &e1);
                goto out;
            }
            if (r == 0) {
                done[i] = 1;
                left--;
            } else if (first.code == SM_OK) {
                sm_err_copy(&first, &e1);
            }
        }
        if (left == before) {
            sm_err_copy(err, &first);
            goto out;
        }
    }
    rc = 0;
out:
    PQfinish(c);
    free(done);
    return rc;
}

int pg_restore_database(const pg_server *srv, const char *url, const char *dump_file,
                        const char *staging, const json_t *meta, const pg_restore_opts *o,
                        sm_err *err)
{
    int rc = -1, exists = 0, may_exist = 0, fd = -1;
    int jobs = o && o->jobs > 0 ? o->jobs : 2;
    char *dir = NULL, *src_db = NULL;
    char *toc_path = NULL, *db_list = NULL, *schema_list = NULL, *rest_list = NULL;
    char *db_sql = NULL, *staging_sql = NULL;
    sm_buf toc = SM_BUF_INIT, dbl = SM_BUF_INIT, schemas = SM_BUF_INIT, rest = SM_BUF_INIT;
    sm_buf sql = SM_BUF_INIT, renamed = SM_BUF_INIT;
    const char *maint = NULL;
    PGconn *c = NULL;
    char *argv[12];
    int n = 0;

    if (need_superuser(srv, "an exact restore", err) < 0)
        goto out;
    if (!staging || !*staging) {
        sm_err_set(err, SM_E_INVALID, "no staging database name given");
        goto out;
    }
    if (access(dump_file, R_OK) != 0) {
        sm_err_sys(err, SM_E_NOTFOUND, "cannot read dump '%s'", dump_file);
        goto out;
    }
    if (pg_database_exists(srv, url, staging, &exists, err) < 0)
        goto out;
    if (exists) {
        sm_err_set(err, SM_E_EXISTS, "database '%s' already exists on PostgreSQL at %s:%s", staging,
                   srv->host, srv->port);
        sm_err_hint(err, "Drop it if an interrupted restore left it behind, or restore under "
                         "another name.");
        goto out;
    }
    dir = sm_mkdtemp(o ? o->work_dir : NULL, "supamanager-restore", err);
    if (!dir)
        goto out;
    toc_path = sm_path_join(dir, "toc.full");
    db_list = sm_path_join(dir, "toc.database");
    schema_list = sm_path_join(dir, "toc.schemas");
    rest_list = sm_path_join(dir, "toc.rest");
    db_sql = sm_path_join(dir, "database.sql");
    staging_sql = sm_path_join(dir, "database.staging.sql");

    /* 1. the table of contents; only --create lists the database entries */
    progress(o, "reading the dump");
    fd = open(toc_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        sm_err_sys(err, SM_E_IO, "cannot create '%s'", toc_path);
        goto out;
    }
    argv[n++] = NULL;
    argv[n++] = "--list";
    argv[n++] = "--create";
    argv[n++] = (char *)dump_file;
    argv[n] = NULL;
    if (run_prog(srv->bindir, "pg_restore", argv, NULL, fd, err) < 0)
        goto out;
    close(fd);
    fd = -1;
    if (sm_read_file(toc_path, &toc, 0, 0, err) != 0 ||
        split_toc(&toc, &dbl, &schemas, &rest, &src_db, dump_file, err) < 0 ||
        write_file(db_list, &dbl, err) < 0 || write_file(schema_list, &schemas, err) < 0 ||
        write_file(rest_list, &rest, err) < 0)
        goto out;

    /* 2. the database itself (settings, comment, grants), renamed to staging */
    n = 0;
    argv[n++] = NULL;
    argv[n++] = "--create";
    argv[n++] = "--use-list";
    argv[n++] = db_list;
    argv[n++] = "--file";
    argv[n++] = db_sql;
    argv[n++] = (char *)dump_file;
    argv[n] = NULL;
    if (run_prog(srv->bindir, "pg_restore", argv, NULL, -1, err) < 0 ||
        sm_read_file(db_sql, &sql, 0, 0, err) != 0 ||
        pg_sql_rename_database((const char *)sql.data, sql.len, src_db, staging, &renamed, err) <
            0 ||
        write_file(staging_sql, &renamed, err) < 0)
        goto out;
    if (maint_open(&c, url, staging, NULL, NULL, &maint, err) < 0)
        goto out;
    PQfinish(c);
    c = NULL;
    progress(o, "creating the database");
    may_exist = 1;
    if (run_psql_file(srv, url, maint, staging_sql, err) < 0) {
        explain_locale(staging, srv, err);
        goto out;
    }

    /* 3. schemas, then the extensions in them as their owners */
    progress(o, "restoring schemas");
    if (schemas.len && run_pg_restore(srv, url, staging, schema_list, 1, dump_file, err) < 0)
        goto out;
    progress(o, "creating extensions");
    if (create_extensions(srv, url, staging, meta, err) < 0)
        goto out;

    /* 4. everything else, with triggers and event triggers off */
    progress(o, "restoring data");
    if (run_pg_restore(srv, url, staging, rest_list, jobs, dump_file, err) < 0)
        goto out;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0 && may_exist) {
        sm_err e2 = SM_ERR_INIT;
        if (pg_drop_database(srv, url, staging, &e2) < 0)
            sm_log(SM_LOG_WARN, "cannot drop staging database '%s' after a failed restore: %s",
                   staging, e2.msg);
    }
    if (dir) {
        sm_err e2 = SM_ERR_INIT;
        if (sm_rm_rf(dir, &e2) < 0)
            sm_log(SM_LOG_WARN, "%s", e2.msg);
    }
    PQfinish(c);
    free(dir);
    free(src_db);
    free(toc_path);
    free(db_list);
    free(schema_list);
    free(rest_list);
    free(db_sql);
    free(staging_sql);
    sm_buf_release(&toc);
    sm_buf_release(&dbl);
    sm_buf_release(&schemas);
    sm_buf_release(&rest);
    sm_buf_release(&sql);
    sm_buf_release(&renamed);
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int pg_verify_counts(const pg_server *srv, const char *url, const char *dbname, const json_t *meta,
                     sm_err *err)
{
    const json_t *want = meta ? json_object_get(meta, "row_counts") : NULL;
    const json_t *want_lo = meta ? json_object_get(meta, "large_objects") : NULL;
    json_t *have = NULL;
    PGconn *c = NULL;
    const char **names = NULL;
    size_t n = 0, i = 0;
    int rc = -1;
    char where[300];

    if (!json_is_object(want)) {
        sm_err_set(err, SM_E_INVALID, "the backup's metadata has no row counts");
        goto out;
    }
    snprintf(where, sizeof(where), "database '%s' on PostgreSQL at %s:%s", dbname, srv->host,
             srv->port);
    if (conn_open(&c, url, dbname, err) < 0 ||
        exec_cmd(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, NULL, NULL, err,
                 "start a transaction in %s", where) < 0)
        goto out;
    have = count_rows(c, where, err);
    if (!have)
        goto out;

    /* in name order, so that "the first" is well defined */
    names = sm_xcalloc(json_object_size(want) + json_object_size(have) + 1, sizeof(*names));
    for (void *it = json_object_iter((json_t *)want); it;
         it = json_object_iter_next((json_t *)want, it))
        names[n++] = json_object_iter_key(it);
    for (void *it = json_object_iter(have); it; it = json_object_iter_next(have, it))
        if (!json_object_get(want, json_object_iter_key(it)))
            names[n++] = json_object_iter_key(it);
    qsort(names, n, sizeof(*names), cmp_names);
    for (i = 0; i < n; i++) {
        const json_t *w = json_object_get(want, names[i]), *h = json_object_get(have, names[i]);
        if (w && !json_is_integer(w)) {
            sm_err_set(err, SM_E_INVALID, "the backup's metadata has a bad row count for '%s'",
                       names[i]);
            goto out;
        }
        if (w && !h) {
            sm_err_set(err, SM_E_CORRUPT, "table '%s' of the backup is missing from %s", names[i],
                       where);
            goto out;
        }
        if (!w && json_integer_value(h) != 0) {
            sm_err_set(err, SM_E_CORRUPT, "table '%s' has %lld rows in %s but is not in the backup",
                       names[i], (long long)json_integer_value(h), where);
            goto out;
        }
        if (w && json_integer_value(w) != json_integer_value(h)) {
            sm_err_set(err, SM_E_CORRUPT, "table '%s' has %lld rows in %s but %lld in the backup",
                       names[i], (long long)json_integer_value(h), where,
                       (long long)json_integer_value(w));
            goto out;
        }
    }
    if (json_is_integer(want_lo)) {
        json_int_t lo = 0;
        if (count_large_objects(c, where, &lo, err) < 0)
            goto out;
        if (lo != json_integer_value(want_lo)) {
            sm_err_set(err, SM_E_CORRUPT, "%s has %lld large objects but the backup has %lld",
                       where, (long long)lo, (long long)json_integer_value(want_lo));
            goto out;
        }
    }
    rc = 0;
out:
    free(names);
    json_decref(have);
    PQfinish(c);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* databases                                                                                   */

/* "ALTER DATABASE <name> " + rest, with the name quoted. */
static char *db_stmt(const char *head, const char *name, const char *tail)
{
    sm_buf b = SM_BUF_INIT;

    sm_buf_puts(&b, head);
    put_ident(&b, name);
    sm_buf_puts(&b, tail);
    return sm_buf_detach(&b, NULL);
}

int pg_block(const pg_server *srv, const char *url, const char *dbname, sm_err *err)
{
    PGconn *c = NULL;
    PGresult *r = NULL;
    char *sql = db_stmt("ALTER DATABASE ", dbname, " ALLOW_CONNECTIONS false");
    const char *p1[1] = {dbname};
    struct timespec ts = {0, 50 * 1000 * 1000};
    long left = -1;
    int rc = -1;

    if (maint_open(&c, url, dbname, NULL, NULL, NULL, err) < 0)
        goto out;
    if (exec_cmd(c, sql, 0, NULL, NULL, NULL, err, "block connections to database '%s'", dbname) <
        0)
        goto out;
    for (int i = 0; i < 200; i++) { /* 10 s */
        if (exec_cmd(c,
                     "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)), count(*) "
                     "FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                     1, p1, &r, NULL, err, "end the sessions of database '%s'", dbname) < 0)
            goto out;
        left = strtol(PQgetvalue(r, 0, 1), NULL, 10);
        PQclear(r);
        r = NULL;
        if (left == 0)
            break;
        nanosleep(&ts, NULL);
    }
    if (left != 0) {
        sm_err_set(err, SM_E_CONFLICT,
                   "database '%s' on PostgreSQL at %s:%s still has %ld sessions after 10 s", dbname,
                   srv->host, srv->port, left);
        sm_err_hint(err, "Find what keeps reconnecting (pg_stat_activity) and stop it; the "
                         "database stays blocked until pg_unblock.");
        goto out;
    }
    rc = 0;
out:
    PQclear(r);
    PQfinish(c);
    free(sql);
    return rc;
}

int pg_unblock(const pg_server *srv, const char *url, const char *dbname, sm_err *err)
{
    PGconn *c = NULL;
    char *sql = db_stmt("ALTER DATABASE ", dbname, " ALLOW_CONNECTIONS true");
    int rc = -1;

    (void)srv;
    if (maint_open(&c, url, dbname, NULL, NULL, NULL, err) < 0)
        goto out;
    rc = exec_cmd(c, sql, 0, NULL, NULL, NULL, err, "allow connections to database '%s'", dbname);
out:
    PQfinish(c);
    free(sql);
    return rc;
}

/* Refines an error of ALTER DATABASE / CREATE / DROP from its SQLSTATE. */
static void db_error_code(const char *state, const char *dbname, sm_err *err)
{
    if (!strcmp(state, "42P04")) {
        err->code = SM_E_EXISTS;
        sm_err_hint(err,
                    "Drop database '%s' (left by an earlier restore?) or choose another "
                    "name.",
                    dbname);
    } else if (!strcmp(state, "55006")) {
        err->code = SM_E_CONFLICT;
        sm_err_hint(err, "End the sessions of the databases first (pg_block) and try again.");
    } else if (!strcmp(state, "3D000")) {
        err->code = SM_E_NOTFOUND;
    }
}

int pg_swap(const pg_server *srv, const char *url, const char *live, const char *staging,
            const char *previous, sm_err *err)
{
    PGconn *c = NULL;
    PGresult *r = NULL;
    char *first = db_stmt("ALTER DATABASE ", live, " RENAME TO ");
    char *second = db_stmt("ALTER DATABASE ", staging, " RENAME TO ");
    char *a = NULL, *b = NULL;
    const char *p1[1] = {live};
    char state[6] = "";
    int rc = -1, live_exists;

    (void)srv;
    {
        sm_buf t = SM_BUF_INIT;
        sm_buf_puts(&t, first);
        put_ident(&t, previous);
        a = sm_buf_detach(&t, NULL);
        sm_buf_puts(&t, second);
        put_ident(&t, live);
        b = sm_buf_detach(&t, NULL);
    }
    if (maint_open(&c, url, live, staging, previous, NULL, err) < 0)
        goto out;
    if (exec_cmd(c, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", 1, p1, &r, NULL,
                 err, "look up database '%s'", live) < 0)
        goto out;
    live_exists = !strcmp(PQgetvalue(r, 0, 0), "t");
    if (exec_cmd(c, "BEGIN", 0, NULL, NULL, NULL, err, "start a transaction") < 0)
        goto out;
    if (live_exists && exec_cmd(c, a, 0, NULL, NULL, state, err, "rename database '%s' to '%s'",
                                live, previous) < 0) {
        db_error_code(state, previous, err);
        goto rollback;
    }
    if (exec_cmd(c, b, 0, NULL, NULL, state, err, "rename database '%s' to '%s'", staging, live) <
        0) {
        db_error_code(state, live, err);
        goto rollback;
    }
    if (exec_cmd(c, "COMMIT", 0, NULL, NULL, NULL, err, "commit the swap of database '%s'", live) <
        0)
        goto out;
    rc = 0;
    goto out;
rollback:
    PQclear(PQexec(c, "ROLLBACK"));
out:
    PQclear(r);
    PQfinish(c);
    free(first);
    free(second);
    free(a);
    free(b);
    return rc;
}

int pg_database_exists(const pg_server *srv, const char *url, const char *dbname, int *exists,
                       sm_err *err)
{
    PGconn *c = NULL;
    PGresult *r = NULL;
    const char *p1[1] = {dbname};
    int rc = -1;

    (void)srv;
    *exists = 0;
    if (maint_open(&c, url, dbname, NULL, NULL, NULL, err) < 0)
        goto out;
    if (exec_cmd(c, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", 1, p1, &r, NULL,
                 err, "look up database '%s'", dbname) < 0)
        goto out;
    *exists = !strcmp(PQgetvalue(r, 0, 0), "t");
    rc = 0;
out:
    PQclear(r);
    PQfinish(c);
    return rc;
}

int pg_create_database(const pg_server *srv, const char *url, const char *dbname, sm_err *err)
{
    PGconn *c = NULL;
    char *sql = db_stmt("CREATE DATABASE ", dbname, "");
    char state[6] = "";
    int rc = -1;

    (void)srv;
    if (maint_open(&c, url, dbname, NULL, NULL, NULL, err) < 0)
        goto out;
    rc = exec_cmd(c, sql, 0, NULL, NULL, state, err, "create database '%s'", dbname);
    if (rc < 0)
        db_error_code(state, dbname, err);
out:
    PQfinish(c);
    free(sql);
    return rc;
}

int pg_drop_database(const pg_server *srv, const char *url, const char *dbname, sm_err *err)
{
    PGconn *c = NULL;
    char *sql = db_stmt("DROP DATABASE IF EXISTS ", dbname, " WITH (FORCE)");
    char state[6] = "";
    int rc = -1;

    (void)srv;
    if (maint_open(&c, url, dbname, NULL, NULL, NULL, err) < 0)
        goto out;
    /* a notice "does not exist, skipping" is not worth a line on stderr */
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    rc = exec_cmd(c, sql, 0, NULL, NULL, state, err, "drop database '%s'", dbname);
    if (rc < 0)
        db_error_code(state, dbname, err);
out:
    PQfinish(c);
    free(sql);
    return rc;
}
