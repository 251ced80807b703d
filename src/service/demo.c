/* The demo project of `supamanager serve --demo`: a throwaway PostgreSQL
 * cluster loaded with the embedded Supabase fixture, a storage tree and a
 * config directory, registered as project "demo". */
#include "service/demo.h"

#include "catalog/catalog.h"
#include "core/buf.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "embedded.h"
#include "job/ops.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define DEMO_ID "demo"
#define DEMO_DB "postgres"
#define OUTPUT_KEEP 1500 /* bytes of a command's output kept for its error */

/* ---- running programs ---- */

static void close_from(int lowfd)
{
    long max = sysconf(_SC_OPEN_MAX);

    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = lowfd; fd < max; fd++)
        close(fd);
}

static void keep_tail(sm_buf *out, const char *p, size_t n)
{
    sm_buf_put(out, p, n);
    if (out->len > 2 * OUTPUT_KEEP) {
        memmove(out->data, out->data + out->len - OUTPUT_KEEP, OUTPUT_KEEP);
        out->len = OUTPUT_KEEP;
        out->data[out->len] = '\0';
    }
}

/* Runs argv (argv[0] a path) from cwd /, as user postgres when as_pg and we
 * are root; in (may be NULL) goes to its stdin; the end of its stdout and
 * stderr goes to out. Returns its exit status (128 + signal when killed), or
 * -1 with err set when it could not run. */
static int run(const char *const *argv, int as_pg, const void *in, size_t inlen, sm_buf *out,
               sm_err *err)
{
    int inp[2] = {-1, -1}, outp[2] = {-1, -1}, status = 0;
    const char *full[64];
    size_t n = 0, off = 0;
    pid_t pid;
    sigset_t pipe_set, old_set;

    if (as_pg && geteuid() == 0) {
        full[n++] = "/usr/sbin/runuser";
        if (access(full[0], X_OK) != 0)
            full[0] = "/sbin/runuser";
        full[n++] = "-u";
        full[n++] = "postgres";
        full[n++] = "--";
    }
    for (size_t i = 0; argv[i] && n < 63; i++)
        full[n++] = argv[i];
    full[n] = NULL;
    if (pipe(inp) != 0 || pipe(outp) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot run '%s'", argv[0]);
        goto fail;
    }
    pid = fork();
    if (pid < 0) {
        sm_err_sys(err, SM_E_IO, "cannot run '%s'", argv[0]);
        goto fail;
    }
    if (pid == 0) {
        if (chdir("/") != 0)
            _exit(126);
        dup2(inp[0], STDIN_FILENO);
        dup2(outp[1], STDOUT_FILENO);
        dup2(outp[1], STDERR_FILENO);
        close_from(3);
        execv(full[0], (char *const *)full);
        _exit(127);
    }
    close(inp[0]);
    close(outp[1]);
    inp[0] = outp[1] = -1;
    if (!in || inlen == 0) {
        close(inp[1]);
        inp[1] = -1;
    } else {
        fcntl(inp[1], F_SETFL, fcntl(inp[1], F_GETFL) | O_NONBLOCK);
    }
    /* a program that exits without reading its input must not kill us */
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
    while (outp[0] >= 0) {
        struct pollfd pf[2];
        nfds_t np = 0;
        pf[np].fd = outp[0];
        pf[np++].events = POLLIN;
        if (inp[1] >= 0) {
            pf[np].fd = inp[1];
            pf[np++].events = POLLOUT;
        }
        if (poll(pf, np, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (np > 1 && (pf[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w =
                write(inp[1], (const char *)in + off, inlen - off > 65536 ? 65536 : inlen - off);
            if (w > 0)
                off += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || off == inlen) {
                close(inp[1]);
                inp[1] = -1;
            }
        }
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            char buf[4096];
            ssize_t r = read(outp[0], buf, sizeof(buf));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                close(outp[0]);
                outp[0] = -1;
            } else {
                keep_tail(out, buf, (size_t)r);
            }
        }
    }
    if (inp[1] >= 0)
        close(inp[1]);
    {
        /* drop a SIGPIPE we caused before unblocking it */
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old_set, NULL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    while (out->len > 0 && (out->data[out->len - 1] == '\n' || out->data[out->len - 1] == ' '))
        out->data[--out->len] = '\0';
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
fail:
    for (int i = 0; i < 2; i++) {
        if (inp[i] >= 0)
            close(inp[i]);
        if (outp[i] >= 0)
            close(outp[i]);
    }
    return -1;
}

/* run() that must succeed: SM_E_EXTERNAL with the output's end otherwise. */
static int run_ok(const char *const *argv, int as_pg, const void *in, size_t inlen,
                  const char *what, sm_err *err)
{
    sm_buf out = SM_BUF_INIT;
    int st = run(argv, as_pg, in, inlen, &out, err);

    if (st == 0) {
        sm_buf_release(&out);
        return 0;
    }
    if (st > 0) {
        const char *o = sm_buf_str(&out);
        if (out.len > OUTPUT_KEEP)
            o += out.len - OUTPUT_KEEP;
        sm_err_set(err, SM_E_EXTERNAL, "%s failed (exit status %d)%s%s", what, st, *o ? ": " : "",
                   o);
    }
    sm_buf_release(&out);
    return -1;
}

/* ---- the cluster ---- */

typedef struct cluster {
    char *base; /* parent directory */
    char *data; /* base/data */
    char *sock; /* socket directory */
    char *log;  /* base/postgres.log */
    char bindir[256];
    int major;
    int port;
    uid_t uid;
    gid_t gid;
} cluster;

static void cluster_release(cluster *c)
{
    free(c->base);
    free(c->data);
    free(c->sock);
    free(c->log);
    memset(c, 0, sizeof(*c));
}

static char *prog(const cluster *c, const char *name)
{
    return sm_xasprintf("%s/%s", c->bindir, name);
}

/* The newest major under /usr/lib/postgresql with the server programs, or
 * want when it is given. */
static int find_server(cluster *c, int want, sm_err *err)
{
    DIR *d = opendir("/usr/lib/postgresql");
    struct dirent *de;
    int best = 0;

    while (d && (de = readdir(d)) != NULL) {
        char path[512];
        int v = atoi(de->d_name);
        if (v <= 0 || (want && v != want))
            continue;
        snprintf(path, sizeof(path), "/usr/lib/postgresql/%d/bin/initdb", v);
        if (access(path, X_OK) != 0)
            continue;
        snprintf(path, sizeof(path), "/usr/lib/postgresql/%d/bin/pg_ctl", v);
        if (access(path, X_OK) != 0)
            continue;
        snprintf(path, sizeof(path), "/usr/lib/postgresql/%d/bin/psql", v);
        if (access(path, X_OK) == 0 && v > best)
            best = v;
    }
    if (d)
        closedir(d);
    if (!best) {
        if (want)
            sm_err_set(err, SM_E_NOTFOUND,
                       "the demo cluster needs PostgreSQL %d, which is not "
                       "installed",
                       want);
        else
            sm_err_set(err, SM_E_NOTFOUND, "no PostgreSQL server is installed for the demo");
        return sm_err_hint(err,
                           "Install it (apt-get install postgresql-%d), or remove "
                           "<home>/demo to start the demo afresh.",
                           want ? want : 15);
    }
    c->major = best;
    snprintf(c->bindir, sizeof(c->bindir), "/usr/lib/postgresql/%d/bin", best);
    return 0;
}

/* Can user postgres reach dir? */
static int postgres_reaches(const char *dir)
{
    const char *argv[] = {"/usr/bin/test", "-x", dir, NULL};
    sm_buf out = SM_BUF_INIT;
    sm_err e = SM_ERR_INIT;
    int st = run(argv, 1, NULL, 0, &out, &e);

    sm_buf_release(&out);
    return st == 0;
}

static int give_to_server(const cluster *c, const char *path, sm_err *err)
{
    if (geteuid() == 0 && chown(path, c->uid, c->gid) != 0)
        return sm_err_sys(err, SM_E_IO, "cannot give '%s' to user postgres", path);
    return 0;
}

/* The port of the server running in c->data, or 0. */
static int running_port(const cluster *c)
{
    char *pidfile = sm_path_join(c->data, "postmaster.pid");
    char *pgctl = prog(c, "pg_ctl");
    const char *argv[] = {pgctl, "-D", c->data, "status", NULL};
    sm_buf out = SM_BUF_INIT, pf = SM_BUF_INIT;
    sm_err e = SM_ERR_INIT;
    int port = 0;

    if (sm_exists(pidfile) && run(argv, 1, NULL, 0, &out, &e) == 0 &&
        sm_read_file(pidfile, &pf, 1 << 16, 0, &e) == 0) {
        /* line 4 of postmaster.pid is the port */
        const char *s = sm_buf_str(&pf);
        for (int line = 1; s && line < 4; line++) {
            s = strchr(s, '\n');
            if (s)
                s++;
        }
        if (s)
            port = atoi(s);
    }
    sm_buf_release(&out);
    sm_buf_release(&pf);
    free(pgctl);
    free(pidfile);
    return port;
}

static int port_free(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok, one = 1;

    if (fd < 0)
        return 0;
    /* as PostgreSQL binds: connections of its last run in TIME_WAIT do not count */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* A port the kernel considers free right now. */
static int pick_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = 0;

    if (fd < 0)
        return 0;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int cluster_initdb(cluster *c, sm_err *err)
{
    char *initdb = prog(c, "initdb");
    const char *argv[] = {initdb,      "-D",       c->data,
                          "-U",        "postgres", "--auth=trust",
                          "-E",        "UTF8",     "--locale=C.UTF-8",
                          "--no-sync", NULL};
    int rc = -1;

    if (sm_mkdir_p(c->base, 0755, err) < 0 || sm_mkdir_p(c->data, 0700, err) < 0 ||
        give_to_server(c, c->data, err) < 0)
        goto out;
    chmod(c->base, 0755);
    sm_log(SM_LOG_INFO, "demo: creating a PostgreSQL %d cluster in '%s'", c->major, c->data);
    rc = run_ok(argv, 1, NULL, 0, "initdb of the demo cluster", err);
out:
    free(initdb);
    return rc;
}

static int cluster_start(cluster *c, int port, sm_err *err)
{
    char *pgctl = prog(c, "pg_ctl");
    char *lib = sm_xasprintf("/usr/lib/postgresql/%d/lib/pg_stat_statements.so", c->major);
    char *opts = sm_xasprintf(
        "-p %d -k '%s' -c listen_addresses=127.0.0.1 "
        "-c synchronous_commit=off -c wal_level=logical%s",
        port, c->sock,
        access(lib, R_OK) == 0 ? " -c shared_preload_libraries=pg_stat_statements" : "");
    const char *argv[] = {pgctl, "-D", c->data, "-l", c->log,  "-o",
                          opts,  "-w", "-t",    "60", "start", NULL};
    int fd, rc = -1;

    if (sm_mkdir_p(c->sock, 0755, err) < 0 || give_to_server(c, c->sock, err) < 0)
        goto out;
    fd = open(c->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        sm_err_sys(err, SM_E_IO, "cannot create '%s'", c->log);
        goto out;
    }
    close(fd);
    if (give_to_server(c, c->log, err) < 0)
        goto out;
    if (run_ok(argv, 1, NULL, 0, "starting the demo cluster", err) < 0) {
        sm_err_hint(err, "See its log '%s'.", c->log);
        goto out;
    }
    c->port = port;
    sm_log(SM_LOG_INFO, "demo: PostgreSQL %d started on 127.0.0.1:%d", c->major, port);
    rc = 0;
out:
    free(opts);
    free(lib);
    free(pgctl);
    return rc;
}

static void cluster_stop(const char *bindir, const char *data)
{
    char *pgctl = sm_xasprintf("%s/pg_ctl", bindir);
    const char *fast[] = {pgctl, "-D", data, "-m", "fast", "-w", "-t", "30", "stop", NULL};
    const char *now[] = {pgctl, "-D", data, "-m", "immediate", "-w", "-t", "30", "stop", NULL};
    sm_err e = SM_ERR_INIT;

    if (run_ok(fast, 1, NULL, 0, "stopping the demo cluster", &e) < 0 &&
        run_ok(now, 1, NULL, 0, "stopping the demo cluster", &e) < 0)
        sm_log(SM_LOG_WARN, "demo: %s", e.msg);
    free(pgctl);
}

static int psql_load(const cluster *c, const unsigned char *sql, size_t len, const char *name,
                     sm_err *err)
{
    char *psql = prog(c, "psql");
    char port[16], what[128];
    const char *argv[] = {psql, "-X", "-q",       "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                          port, "-U", "postgres", "-d", DEMO_DB,           "-f", "-",         NULL};
    int rc;

    snprintf(port, sizeof(port), "%d", c->port);
    snprintf(what, sizeof(what), "loading %s into the demo database", name);
    rc = run_ok(argv, 0, sql, len, what, err);
    free(psql);
    return rc;
}

/* ---- the storage tree (tests/fixtures/supabase/make-storage.sh) ---- */

#define BASE_EPOCH 1709294400 /* 2024-03-01 12:00:00 UTC: object n has BASE + n hours */
#define DIR_EPOCH 1709251200  /* 2024-03-01 00:00:00 UTC */
#define GALLERY 24            /* extra images, also added to storage.objects */

/* md5(text)::uuid as PostgreSQL prints it, into out (37 bytes). */
static void uuid_of(char out[37], const char *text)
{
    unsigned char md[16];
    unsigned int mdlen = 0;
    char hex[33];

    EVP_Digest(text, strlen(text), md, &mdlen, EVP_md5(), NULL);
    sm_hex(hex, md, 16);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

static void md5_hex(char out[33], const void *p, size_t n)
{
    unsigned char md[16];
    unsigned int mdlen = 0;

    EVP_Digest(p, n, md, &mdlen, EVP_md5(), NULL);
    sm_hex(out, md, 16);
}

/* The object body of make-storage.sh's content(). */
static void body_of(sm_buf *b, const char *kind, int n, const char *bucket, const char *key)
{
    sm_buf_reset(b);
    if (!strcmp(kind, "text")) {
        for (int i = 1; i <= n; i++)
            sm_buf_putf(b, "%s/%s line %d\n", bucket, key, i);
        return;
    }
    if (!strcmp(kind, "png"))
        sm_buf_put(b, "\x89PNG\r\n\x1a\n", 8);
    for (int r = 0; r < n; r++)
        for (int v = 0; v < 256; v++)
            sm_buf_putc(b, v);
}

static int set_mtime(const char *path, time_t t, int follow, sm_err *err)
{
    struct timespec ts[2] = {{t, 0}, {t, 0}};

    if (utimensat(AT_FDCWD, path, ts, follow ? 0 : AT_SYMLINK_NOFOLLOW) != 0)
        return sm_err_sys(err, SM_E_IO, "cannot set the time of '%s'", path);
    return 0;
}

static int put_file(const char *path, const sm_buf *body, const char *mime, const char *cache,
                    mode_t mode, time_t mtime, sm_err *err)
{
    char *dir = sm_xstrndup(path, (size_t)(strrchr(path, '/') - path));
    int fd = -1, rc = -1;

    if (sm_mkdir_p(dir, 0755, err) < 0)
        goto out;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        sm_err_sys(err, SM_E_IO, "cannot create '%s'", path);
        goto out;
    }
    if (body->len && sm_write_all(fd, body->data, body->len, path, err) < 0)
        goto out;
    if (mime && fsetxattr(fd, "user.supabase.content-type", mime, strlen(mime), 0) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot set the content type of '%s'", path);
        sm_err_hint(err, "The storage directory needs a file system with user xattrs (ext4, "
                         "xfs, btrfs, tmpfs on Linux 6.6 or later).");
        goto out;
    }
    if (cache && fsetxattr(fd, "user.supabase.cache-control", cache, strlen(cache), 0) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot set the cache control of '%s'", path);
        goto out;
    }
    if (fchmod(fd, mode) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot set the mode of '%s'", path);
        goto out;
    }
    close(fd);
    fd = -1;
    rc = set_mtime(path, mtime, 1, err);
out:
    if (fd >= 0)
        close(fd);
    free(dir);
    return rc;
}

static const struct object {
    int n;
    const char *bucket, *name, *mime, *cache, *kind;
    int param;
    mode_t mode;
    const char *seed;
} objects[] = {
    {1, "avatars", "{u1}/avatar.png", "image/png", "max-age=3600", "png", 3, 0644, "version"},
    {2, "avatars", "{u2}/avatar.png", "image/png", "max-age=3600", "png", 7, 0644, "version"},
    {3, "avatars", "public/default avatar.png", "image/png", "no-cache", "png", 1, 0644, "version"},
    {4, "documents", "reports/2024 Q1/r\xc3\xa9sum\xc3\xa9 final.pdf", "application/pdf",
     "max-age=3600", "text", 40, 0600, "version"},
    {5, "documents",
     "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/\xe3\x83\x95\xe3\x82\xa1\xe3\x82\xa4\xe3\x83\xab\xe5"
     "\x90\x8d.txt",
     "text/plain;charset=UTF-8", "max-age=60", "text", 12, 0640, "version"},
    {6, "documents", "notes/weird name (1) [draft]+v2.txt", "text/plain", "no-cache", "text", 3,
     0644, "version"},
    {7, "documents", "empty.txt", "text/plain", "no-cache", "text", 0, 0644, "version"},
    {8, "documents", "big/blob.bin", "application/octet-stream", "max-age=31536000", "bin", 4096,
     0755, "version"},
    {9, "documents", "{u1}/private/notes.md", "text/markdown", "no-cache", "text", 25, 0600,
     "version"},
    /* the previous version of object 1, left behind by an overwrite (no row) */
    {0, "avatars", "{u1}/avatar.png", "image/png", "max-age=3600", "png", 2, 0644, "old-version"},
};

/* {u1}/{u2} replaced by the users' uuids (caller frees). */
static char *object_key(const char *name)
{
    char u[37];
    const char *p = strstr(name, "{u");

    if (!p)
        return sm_xstrdup(name);
    uuid_of(u, p[2] == '1' ? "fixture-user-1" : "fixture-user-2");
    return sm_xasprintf("%.*s%s%s", (int)(p - name), name, u, p + 4);
}

/* Sets every directory's time, deepest first. */
static int dir_times(const char *path, sm_err *err)
{
    DIR *d = opendir(path);
    struct dirent *de;
    int rc = 0;

    if (!d)
        return sm_err_sys(err, SM_E_IO, "cannot read '%s'", path);
    while (rc == 0 && (de = readdir(d)) != NULL) {
        struct stat sb;
        char *sub;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        sub = sm_path_join(path, de->d_name);
        if (lstat(sub, &sb) == 0 && S_ISDIR(sb.st_mode))
            rc = dir_times(sub, err);
        free(sub);
    }
    closedir(d);
    return rc < 0 ? -1 : set_mtime(path, DIR_EPOCH, 1, err);
}

static char *gallery_name(int i)
{
    return sm_xasprintf("gallery/photo-%02d.png", i);
}

/* Builds the tree in dir (which must not exist). */
static int make_storage(const char *dir, sm_err *err)
{
    char *root = sm_path_join(dir, "stub/stub");
    sm_buf body = SM_BUF_INIT;
    char ver[37], up[37], seed[512];
    char *path = NULL, *key = NULL, *link = NULL, *mdir = NULL;
    int rc = -1;

    for (size_t i = 0; i < sizeof(objects) / sizeof(objects[0]); i++) {
        const struct object *o = &objects[i];
        key = object_key(o->name);
        snprintf(seed, sizeof(seed), "%s:%s/%s", o->seed, o->bucket, key);
        uuid_of(ver, seed);
        path = sm_xasprintf("%s/%s/%s/%s", root, o->bucket, key, ver);
        body_of(&body, o->kind, o->param, o->bucket, key);
        if (put_file(path, &body, o->mime, o->cache, o->mode, BASE_EPOCH + o->n * 3600, err) < 0)
            goto out;
        free(path);
        free(key);
        path = key = NULL;
    }
    for (int i = 1; i <= GALLERY; i++) {
        key = gallery_name(i);
        snprintf(seed, sizeof(seed), "version:avatars/%s", key);
        uuid_of(ver, seed);
        path = sm_xasprintf("%s/avatars/%s/%s", root, key, ver);
        body_of(&body, "png", i, "avatars", key);
        if (put_file(path, &body, "image/png", "max-age=3600", 0644, BASE_EPOCH + (100 + i) * 3600,
                     err) < 0)
            goto out;
        free(path);
        free(key);
        path = key = NULL;
    }

    /* an S3 multipart upload in progress */
    uuid_of(up, "fixture-upload-1");
    uuid_of(ver, "version:documents/uploads/huge video.mp4");
    mdir = sm_xasprintf("%s/multiparts/%s/stub/stub/documents/uploads/huge video.mp4/%s", dir, up,
                        ver);
    path = sm_path_join(mdir, "metadata.json");
    sm_buf_reset(&body);
    sm_buf_puts(&body, "{\"contentType\":\"video/mp4\",\"cacheControl\":\"max-age=3600\"}");
    if (put_file(path, &body, NULL, NULL, 0644, BASE_EPOCH + 21 * 3600, err) < 0)
        goto out;
    free(path);
    path = sm_path_join(mdir, "part-1");
    body_of(&body, "bin", 256, "documents", "uploads/huge video.mp4");
    {
        char etag[33];
        md5_hex(etag, body.data, body.len);
        if (put_file(path, &body, etag, NULL, 0644, BASE_EPOCH + 21 * 3600, err) < 0)
            goto out;
    }
    free(path);

    /* a symlink, empty directories, directory modes */
    uuid_of(ver, "version:avatars/public/default avatar.png");
    link = sm_xasprintf("default avatar.png/%s", ver);
    path = sm_path_join(root, "avatars/public/current.png");
    if (symlink(link, path) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot create the symlink '%s'", path);
        goto out;
    }
    if (set_mtime(path, DIR_EPOCH, 0, err) < 0)
        goto out;
    free(path);
    path = sm_path_join(root, "empty-bucket");
    if (sm_mkdir_p(path, 0755, err) < 0)
        goto out;
    free(path);
    path = sm_path_join(root, "documents/tmp");
    if (sm_mkdir_p(path, 0700, err) < 0)
        goto out;
    free(path);
    path = sm_path_join(root, "documents/reports");
    chmod(path, 0750);
    rc = dir_times(dir, err);
out:
    free(path);
    free(key);
    free(link);
    free(mdir);
    free(root);
    sm_buf_release(&body);
    return rc;
}

/* Rows for the gallery images (the fixture's rows cover the rest). */
static char *gallery_sql(void)
{
    sm_buf sql = SM_BUF_INIT, body = SM_BUF_INIT;

    sm_buf_puts(&sql, "INSERT INTO storage.objects (id, bucket_id, name, owner, owner_id, "
                      "created_at, updated_at, last_accessed_at, metadata, version) VALUES\n");
    for (int i = 1; i <= GALLERY; i++) {
        char *key = gallery_name(i), etag[33], ver[37], id[37], seed[256], ts[32];
        time_t t = BASE_EPOCH + (100 + i) * 3600;
        struct tm tm;
        body_of(&body, "png", i, "avatars", key);
        md5_hex(etag, body.data, body.len);
        snprintf(seed, sizeof(seed), "version:avatars/%s", key);
        uuid_of(ver, seed);
        snprintf(seed, sizeof(seed), "fixture-object-avatars/%s", key);
        uuid_of(id, seed);
        gmtime_r(&t, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
        sm_buf_putf(&sql,
                    "%s('%s', 'avatars', '%s', NULL, NULL, '%s', '%s', '%s', "
                    "'{\"eTag\": \"\\\"%s\\\"\", \"size\": %zu, \"mimetype\": \"image/png\", "
                    "\"cacheControl\": \"max-age=3600\", \"lastModified\": \"%s\", "
                    "\"contentLength\": %zu, \"httpStatusCode\": 200}', '%s')",
                    i > 1 ? ",\n" : "", id, key, ts, ts, ts, etag, body.len, ts, body.len, ver);
        free(key);
    }
    sm_buf_puts(&sql, ";\n");
    sm_buf_release(&body);
    return sm_buf_detach(&sql, NULL);
}

/* ---- the config directory ---- */

static const char demo_env[] =
    "# The demo project of `supamanager serve --demo`: demo values, not secrets.\n"
    "POSTGRES_PASSWORD=demo-password-not-a-secret\n"
    "POSTGRES_HOST=db\n"
    "POSTGRES_DB=postgres\n"
    "POSTGRES_PORT=5432\n"
    "JWT_SECRET=demo-jwt-secret-with-at-least-32-characters\n"
    "JWT_EXPIRY=3600\n"
    "ANON_KEY=demo-anon-key\n"
    "SERVICE_ROLE_KEY=demo-service-role-key\n"
    "DASHBOARD_USERNAME=supabase\n"
    "DASHBOARD_PASSWORD=demo-dashboard-password\n"
    "SITE_URL=http://localhost:3000\n"
    "API_EXTERNAL_URL=http://localhost:8000\n"
    "KONG_HTTP_PORT=8000\n"
    "STORAGE_BACKEND=file\n"
    "FILE_STORAGE_BACKEND_PATH=/var/lib/storage\n"
    "GLOBAL_S3_BUCKET=stub\n"
    "TENANT_ID=stub\n";

static const char demo_compose[] =
    "# Reduced docker-compose.yml of a self-hosted Supabase (demo project)\n"
    "name: supabase\n"
    "services:\n"
    "  db:\n"
    "    image: supabase/postgres:15.8.1.060\n"
    "    environment:\n"
    "      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}\n"
    "      POSTGRES_DB: ${POSTGRES_DB}\n"
    "      JWT_SECRET: ${JWT_SECRET}\n"
    "    volumes:\n"
    "      - ./volumes/db/data:/var/lib/postgresql/data:Z\n"
    "  storage:\n"
    "    image: supabase/storage-api:v1.11.13\n"
    "    depends_on: [db]\n"
    "    environment:\n"
    "      STORAGE_BACKEND: file\n"
    "      FILE_STORAGE_BACKEND_PATH: /var/lib/storage\n"
    "      GLOBAL_S3_BUCKET: stub\n"
    "      TENANT_ID: stub\n"
    "    volumes:\n"
    "      - ./volumes/storage:/var/lib/storage:z\n"
    "  kong:\n"
    "    image: kong:2.8.1\n"
    "    ports:\n"
    "      - ${KONG_HTTP_PORT}:8000/tcp\n"
    "    volumes:\n"
    "      - ./volumes/api/kong.yml:/home/kong/temp.yml:ro\n";

static const char demo_kong[] = "_format_version: '2.1'\n"
                                "_transform: true\n"
                                "services:\n"
                                "  - name: auth-v1\n"
                                "    url: http://auth:9999/\n"
                                "    routes:\n"
                                "      - name: auth-v1-all\n"
                                "        strip_path: true\n"
                                "        paths: [/auth/v1/]\n"
                                "  - name: rest-v1\n"
                                "    url: http://rest:3000/\n"
                                "    routes:\n"
                                "      - name: rest-v1-all\n"
                                "        strip_path: true\n"
                                "        paths: [/rest/v1/]\n"
                                "  - name: storage-v1\n"
                                "    url: http://storage:5000/\n"
                                "    routes:\n"
                                "      - name: storage-v1-all\n"
                                "        strip_path: true\n"
                                "        paths: [/storage/v1/]\n";

static int make_config(const char *dir, sm_err *err)
{
    static const struct {
        const char *name;
        const char *text;
        mode_t mode;
    } files[] = {{".env", demo_env, 0600},
                 {"docker-compose.yml", demo_compose, 0644},
                 {"kong.yml", demo_kong, 0644}};

    if (sm_mkdir_p(dir, 0755, err) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *path = sm_path_join(dir, files[i].name);
        int rc = 0;
        if (!sm_exists(path)) {
            rc = sm_write_file_atomic(path, files[i].text, strlen(files[i].text), 1, err);
            if (rc == 0)
                chmod(path, files[i].mode);
        }
        free(path);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ---- the project ---- */

static int register_project(const char *home, const demo_info *d, sm_err *err)
{
    catalog *cat = NULL;
    project *p = NULL, *have = NULL;
    ops_ctx o;
    sm_err e2 = SM_ERR_INIT;
    int rc = -1;

    if (catalog_open(&cat, home, err) < 0)
        return -1;
    if (catalog_project_get(cat, DEMO_ID, &have, &e2) == 0) {
        if (strcmp(have->db_url, d->db_url) != 0 || strcmp(have->storage_dir, d->storage_dir) ||
            !have->config_dir || strcmp(have->config_dir, d->config_dir)) {
            free(have->db_url);
            free(have->storage_dir);
            free(have->config_dir);
            have->db_url = sm_xstrdup(d->db_url);
            have->storage_dir = sm_xstrdup(d->storage_dir);
            have->config_dir = sm_xstrdup(d->config_dir);
            if (catalog_project_update(cat, have, err) < 0)
                goto out;
            sm_log(SM_LOG_INFO, "demo: project '%s' now uses port %d", DEMO_ID, d->port);
        }
        rc = 0;
        goto out;
    }
    if (e2.code != SM_E_NOTFOUND) {
        sm_err_copy(err, &e2);
        goto out;
    }
    p = project_new();
    p->id = sm_xstrdup(DEMO_ID);
    p->name = sm_xstrdup("Demo project");
    p->db_url = sm_xstrdup(d->db_url);
    p->storage_dir = sm_xstrdup(d->storage_dir);
    p->config_dir = sm_xstrdup(d->config_dir);
    ops_ctx_init(&o, cat, NULL);
    rc = ops_project_add(&o, p, 1, err);
    if (rc == 0)
        sm_log(SM_LOG_INFO, "demo: project '%s' registered", DEMO_ID);
out:
    project_free(p);
    project_free(have);
    catalog_close(cat);
    return rc;
}

/* ---- setup ---- */

static char *home_tag(const char *home)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    char hex[65];

    EVP_Digest(home, strlen(home), md, &mdlen, EVP_sha256(), NULL);
    sm_hex(hex, md, 32);
    hex[8] = '\0';
    return sm_xstrdup(hex);
}

static void write_state(const char *path, const cluster *c, int loaded)
{
    json_t *st = json_pack("{s:s,s:i,s:i,s:b}", "cluster_dir", c->base, "port", c->port, "major",
                           c->major, "loaded", loaded);
    char *s = json_dumps(st, JSON_INDENT(2));
    sm_err e = SM_ERR_INIT;

    if (sm_write_file_atomic(path, s, strlen(s), 0, &e) < 0)
        sm_log(SM_LOG_WARN, "demo: %s", e.msg);
    free(s);
    json_decref(st);
}

int demo_setup(const char *home, demo_info *out, sm_err *err)
{
    char *demo = NULL, *state_path = NULL, *storage = NULL, *config = NULL, *tmp = NULL;
    char *gsql = NULL;
    sm_buf raw = SM_BUF_INIT;
    json_t *state = NULL;
    cluster c;
    int loaded = 0, want_major = 0, started = 0, created = 0, rc = -1, port;
    struct passwd *pw = NULL;

    memset(out, 0, sizeof(*out));
    memset(&c, 0, sizeof(c));
    demo = sm_path_join(home, "demo");
    state_path = sm_path_join(demo, "demo.json");
    storage = sm_path_join(demo, "storage");
    config = sm_path_join(demo, "config");
    if (sm_mkdir_p(demo, 0755, err) < 0)
        goto out;
    chmod(demo, 0755);
    if (geteuid() == 0) {
        pw = getpwnam("postgres");
        if (!pw) {
            sm_err_set(err, SM_E_NOTFOUND,
                       "the demo cluster needs the user postgres, which does "
                       "not exist");
            sm_err_hint(err, "Install PostgreSQL (apt-get install postgresql-15): it creates the "
                             "user.");
            goto out;
        }
        c.uid = pw->pw_uid;
        c.gid = pw->pw_gid;
    }

    /* 1. where the cluster is, and what state it is in */
    if (sm_read_file(state_path, &raw, 1 << 16, 1, err) < 0)
        goto out;
    state = raw.len ? json_loads(sm_buf_str(&raw), 0, NULL) : NULL;
    if (json_string_value(json_object_get(state, "cluster_dir")))
        c.base = sm_xstrdup(json_string_value(json_object_get(state, "cluster_dir")));
    loaded = json_is_true(json_object_get(state, "loaded"));
    port = (int)json_integer_value(json_object_get(state, "port"));
    if (!c.base) {
        c.base = sm_path_join(demo, "pg");
        if (geteuid() == 0 && !postgres_reaches(demo)) {
            char *tag = home_tag(home);
            free(c.base);
            c.base = sm_xasprintf("/var/tmp/supamanager-demo-%ld-%s", (long)geteuid(), tag);
            free(tag);
            sm_log(SM_LOG_WARN,
                   "demo: user postgres cannot reach '%s', so the demo cluster "
                   "lives in '%s'",
                   demo, c.base);
        }
    }
    c.data = sm_path_join(c.base, "data");
    c.log = sm_path_join(c.base, "postgres.log");
    c.sock = sm_path_join(c.base, "sock");
    if (strlen(c.sock) > 80) { /* a socket path holds 107 bytes */
        char *tag = home_tag(c.base);
        free(c.sock);
        c.sock = sm_xasprintf("/tmp/supamanager-demo-sock-%s", tag);
        free(tag);
    }
    {
        char *pv = sm_path_join(c.data, "PG_VERSION");
        sm_buf v = SM_BUF_INIT;
        if (sm_read_file(pv, &v, 64, 1, err) < 0) {
            free(pv);
            goto out;
        }
        want_major = atoi(sm_buf_str(&v));
        sm_buf_release(&v);
        free(pv);
    }
    if (find_server(&c, want_major, err) < 0)
        goto out;
    if (want_major && !loaded) {
        /* a cluster whose loading never finished: start afresh */
        sm_log(SM_LOG_WARN, "demo: the cluster in '%s' was never fully loaded; making it again",
               c.data);
        if (running_port(&c))
            cluster_stop(c.bindir, c.data);
        if (sm_rm_rf(c.data, err) < 0)
            goto out;
        want_major = 0;
    }

    /* 2. the cluster: made, running */
    if (!want_major) {
        if (cluster_initdb(&c, err) < 0)
            goto out;
        created = 1;
        loaded = 0; /* e.g. the cluster directory was removed behind our back */
    }
    c.port = running_port(&c);
    if (!c.port) {
        if (port <= 0 || !port_free(port))
            port = pick_port();
        if (cluster_start(&c, port, err) < 0)
            goto out;
        started = 1;
    }
    if (!loaded) {
        write_state(state_path, &c, 0);
        gsql = gallery_sql();
        if (psql_load(&c, sm_demo_roles_sql, sm_demo_roles_sql_len, "roles.sql", err) < 0 ||
            psql_load(&c, sm_demo_init_sql, sm_demo_init_sql_len, "init.sql", err) < 0 ||
            psql_load(&c, sm_demo_data_sql, sm_demo_data_sql_len, "sample-data.sql", err) < 0 ||
            psql_load(&c, (const unsigned char *)gsql, strlen(gsql), "the gallery rows", err) < 0)
            goto out;
        sm_log(SM_LOG_INFO, "demo: sample data loaded into database '%s'", DEMO_DB);
    }
    write_state(state_path, &c, 1);

    /* 3. storage tree and config directory */
    if (!sm_exists(storage)) {
        tmp = sm_path_join(demo, "storage.tmp");
        if (sm_rm_rf(tmp, err) < 0 || make_storage(tmp, err) < 0)
            goto out;
        if (rename(tmp, storage) != 0) {
            sm_err_sys(err, SM_E_IO, "cannot rename '%s' to '%s'", tmp, storage);
            goto out;
        }
        set_mtime(storage, DIR_EPOCH, 1, NULL);
    }
    if (make_config(config, err) < 0)
        goto out;

    /* 4. the project */
    out->project_id = sm_xstrdup(DEMO_ID);
    out->db_url = sm_xasprintf("postgresql://postgres@127.0.0.1:%d/%s", c.port, DEMO_DB);
    out->storage_dir = storage;
    out->config_dir = config;
    storage = config = NULL;
    out->cluster_dir = sm_xstrdup(c.base);
    out->bindir = sm_xstrdup(c.bindir);
    out->port = c.port;
    out->major = c.major;
    out->created = created;
    out->started = started;
    if (register_project(home, out, err) < 0)
        goto out;
    rc = 0;
out:
    if (rc < 0) {
        if (started)
            cluster_stop(c.bindir, c.data);
        free(out->project_id);
        free(out->db_url);
        free(out->storage_dir);
        free(out->config_dir);
        free(out->cluster_dir);
        free(out->bindir);
        memset(out, 0, sizeof(*out));
        if (tmp)
            sm_rm_rf(tmp, NULL);
    }
    json_decref(state);
    sm_buf_release(&raw);
    cluster_release(&c);
    free(gsql);
    free(tmp);
    free(demo);
    free(state_path);
    free(storage);
    free(config);
    return rc;
}

void demo_teardown(demo_info *d)
{
    if (!d)
        return;
    if (d->cluster_dir && d->bindir) {
        char *data = sm_path_join(d->cluster_dir, "data");
        cluster_stop(d->bindir, data);
        sm_log(SM_LOG_INFO, "demo: PostgreSQL stopped");
        free(data);
    }
    free(d->project_id);
    free(d->db_url);
    free(d->storage_dir);
    free(d->config_dir);
    free(d->cluster_dir);
    free(d->bindir);
    memset(d, 0, sizeof(*d));
}
