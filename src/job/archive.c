/* Portable archives (see archive.h): libarchive writes and reads the tar
 * (pax, so that user.* xattrs, numeric owners and nanosecond mtimes travel);
 * gpg, run as a child process, encrypts and decrypts. Import checks every
 * entry itself before libarchive's write_disk sees it, so that refusals name
 * the entry; write_disk's own checks stay on as a second line. */
/* libarchive 3 still declares a deprecated function archive_compression(),
 * whose name our enum (archive.h) takes: rename it away, in this file only. */
#define archive_compression la_deprecated_archive_compression
#include <archive.h>
#include <archive_entry.h>
#undef archive_compression

#include "job/archive.h"

#include "core/buf.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "repo/crypto.h"
#include "repo/tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <pthread.h>
#include <search.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define COPY_BUF (256u * 1024)
#define RELAY_BUF (64u * 1024)
#define DEFAULT_MAX_ENTRIES 10000000ull
#define DEFAULT_MAX_METADATA (16u * 1024 * 1024)
#define MAX_PASSPHRASE 4096
#define GPG_LOG_MAX (1u << 20)
#define META_ENTRY "metadata.json"

#define MSG_NOT_OURS "'%s' is not a SupaManager archive: %s"
#define HINT_REFUSED                                                                               \
    "The archive was not made by SupaManager or was altered; nothing was written outside '%s'."

/* The parts of an archive: checksum key (= stream name), entry name, kind. */
typedef struct part {
    const char *key;
    const char *entry;
    const char *label; /* for messages */
    int tree;
} part;

enum { PART_DATABASE, PART_GLOBALS, PART_STORAGE, PART_CONFIG, NPARTS };

static const part parts[NPARTS] = {
    {"database", "database.dump", "database.dump", 0},
    {"globals", "globals.sql", "globals.sql", 0},
    {"storage", "storage", "storage/", 1},
    {"config", "config", "config/", 1},
};

int archive_compression_parse(const char *s, archive_compression *out)
{
    if (!s)
        return -1;
    if (!strcmp(s, "gzip"))
        *out = ARCHIVE_GZIP;
    else if (!strcmp(s, "zstd"))
        *out = ARCHIVE_ZSTD;
    else if (!strcmp(s, "none"))
        *out = ARCHIVE_NONE;
    else
        return -1;
    return 0;
}

const char *archive_suffix(archive_compression c)
{
    switch (c) {
    case ARCHIVE_GZIP:
        return ".tar.gz";
    case ARCHIVE_ZSTD:
        return ".tar.zst";
    case ARCHIVE_NONE:
        return ".tar";
    }
    return ".tar";
}

/* ---- small helpers ---- */

/* libarchive converts names between the archive's UTF-8 and the current
 * locale's charset, and fails on anything but ASCII in the "C" locale (3.6
 * even crashes writing pax). A UTF-8 LC_CTYPE for this thread only keeps
 * names byte-exact without touching the process's locale. */
typedef struct locale_guard {
    locale_t loc;
    locale_t old;
} locale_guard;

static void locale_enter(locale_guard *g)
{
    g->loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    if (!g->loc)
        g->loc = newlocale(LC_CTYPE_MASK, "en_US.UTF-8", (locale_t)0);
    if (g->loc)
        g->old = uselocale(g->loc);
}

static void locale_leave(locale_guard *g)
{
    if (!g->loc)
        return;
    uselocale(g->old);
    freelocale(g->loc);
    g->loc = (locale_t)0;
}

/* Writing to a pipe whose reader is gone (gpg, or whatever out_fd is) must
 * give EPIPE, not kill the process: SIGPIPE is blocked for this thread while
 * we write, and a pending one is consumed before the mask is restored. */
typedef struct sigpipe_guard {
    sigset_t old;
    int on;
} sigpipe_guard;

static void sigpipe_block(sigpipe_guard *g)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    g->on = pthread_sigmask(SIG_BLOCK, &s, &g->old) == 0;
}

static void sigpipe_restore(sigpipe_guard *g)
{
    sigset_t s;
    struct timespec zero = {0, 0};

    if (!g->on)
        return;
    if (!sigismember(&g->old, SIGPIPE)) {
        sigemptyset(&s);
        sigaddset(&s, SIGPIPE);
        while (sigtimedwait(&s, NULL, &zero) > 0)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
    g->on = 0;
}

/* A set of strings with a kind and an optional value (tsearch: balanced, so
 * hostile names cannot make it quadratic). */
typedef struct pent {
    char *key;
    int kind;
    char *val;
} pent;

static int pent_cmp(const void *a, const void *b)
{
    return strcmp(((const pent *)a)->key, ((const pent *)b)->key);
}

static pent *pmap_find(void *const *root, const char *key)
{
    pent k;
    void *hit;

    k.key = (char *)key;
    hit = tfind(&k, root, pent_cmp);
    return hit ? *(pent **)hit : NULL;
}

static pent *pmap_add(void **root, const char *key, int kind, const char *val)
{
    pent *e = sm_xcalloc(1, sizeof(*e));
    void *hit;

    e->key = sm_xstrdup(key);
    e->kind = kind;
    e->val = val ? sm_xstrdup(val) : NULL;
    hit = tsearch(e, root, pent_cmp);
    if (!hit) {
        fputs("supamanager: out of memory\n", stderr);
        abort();
    }
    return *(pent **)hit;
}

static void pent_free(void *p)
{
    pent *e = p;
    free(e->key);
    free(e->val);
    free(e);
}

static void pmap_free(void **root)
{
    if (*root)
        tdestroy(*root, pent_free);
    *root = NULL;
}

static int is_sha_value(const char *s)
{
    if (!s || strncmp(s, "sha256:", 7) != 0 || strlen(s) != 7 + 64)
        return 0;
    return strspn(s + 7, "0123456789abcdef") == 64;
}

static int part_of_key(const char *key)
{
    for (int i = 0; i < NPARTS; i++)
        if (!strcmp(parts[i].key, key))
            return i;
    return -1;
}

/* ---- metadata.json ---- */

/* Checks the shape of a metadata document (the fields import relies on).
 * Returns 0, or -1 with *code and a reason in why. */
static int meta_check(json_t *m, sm_code *code, char *why, size_t cap)
{
    /* required: must be there with this type; optional: may be absent or null */
    static const struct {
        const char *name;
        json_type type;
        int required;
    } fields[] = {
        {"backup_id", JSON_STRING, 1}, {"type", JSON_STRING, 1},    {"created_at", JSON_STRING, 1},
        {"checksums", JSON_OBJECT, 1}, {"project", JSON_OBJECT, 0}, {"sizes", JSON_OBJECT, 0},
    };
    json_t *v, *sums;
    const char *k;

    *code = SM_E_INVALID;
    if (!json_is_object(m)) {
        snprintf(why, cap, "metadata.json is not a JSON object");
        return -1;
    }
    v = json_object_get(m, "format");
    if (!v) {
        snprintf(why, cap, "metadata.json has no \"format\"");
        return -1;
    }
    if (!json_is_string(v) || strcmp(json_string_value(v), ARCHIVE_METADATA_FORMAT) != 0) {
        snprintf(why, cap, "metadata.json has format %s, not \"%s\"",
                 json_is_string(v) ? json_string_value(v) : "(not a string)",
                 ARCHIVE_METADATA_FORMAT);
        return -1;
    }
    v = json_object_get(m, "version");
    if (!v) {
        snprintf(why, cap, "metadata.json has no \"version\"");
        return -1;
    }
    if (!json_is_integer(v)) {
        snprintf(why, cap, "\"version\" in metadata.json is not an integer");
        return -1;
    }
    if (json_integer_value(v) > ARCHIVE_METADATA_VERSION) {
        *code = SM_E_VERSION;
        snprintf(why, cap, "%lld", (long long)json_integer_value(v));
        return -1;
    }
    if (json_integer_value(v) < 1) {
        snprintf(why, cap, "metadata.json has version %lld", (long long)json_integer_value(v));
        return -1;
    }
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        v = json_object_get(m, fields[i].name);
        if (!fields[i].required && (!v || json_is_null(v)))
            continue;
        if (!v) {
            snprintf(why, cap, "metadata.json has no \"%s\"", fields[i].name);
            return -1;
        }
        if (json_typeof(v) != fields[i].type) {
            snprintf(why, cap, "\"%s\" in metadata.json is not %s", fields[i].name,
                     fields[i].type == JSON_STRING ? "a string" : "an object");
            return -1;
        }
    }
    sums = json_object_get(m, "checksums");
    json_object_foreach(sums, k, v)
    {
        if (part_of_key(k) < 0) {
            snprintf(why, cap, "metadata.json lists an unknown part \"%s\" in its checksums", k);
            return -1;
        }
        if (!json_is_string(v) || !is_sha_value(json_string_value(v))) {
            snprintf(why, cap, "checksum \"%s\" in metadata.json is not sha256:<64 hex digits>", k);
            return -1;
        }
    }
    return 0;
}

/* ---- paths ---- */

/* Normalizes an archive path: leading "./" and trailing "/" go; the result
 * is "" for the root. Refuses absolute paths, "..", and empty or "."
 * components. Returns 0, or -1 with a reason. */
static int norm_path(const char *raw, char **out, const char **why)
{
    const char *p = raw, *c;
    size_t len;

    *out = NULL;
    if (!raw || !*raw) {
        *why = "it has no path";
        return -1;
    }
    if (raw[0] == '/') {
        *why = "absolute paths are not allowed";
        return -1;
    }
    for (c = raw; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 2 && c[0] == '.' && c[1] == '.') {
            *why = "'..' is not allowed in paths";
            return -1;
        }
        c += n;
        if (*c == '/')
            c++;
    }
    while (p[0] == '.' && p[1] == '/') {
        p += 2;
        while (*p == '/')
            p++;
    }
    if (!strcmp(p, "."))
        p += 1;
    len = strlen(p);
    while (len > 0 && p[len - 1] == '/')
        len--;
    for (size_t i = 0; i < len;) {
        size_t n = 0;
        while (i + n < len && p[i + n] != '/')
            n++;
        if (n == 0 || (n == 1 && p[i] == '.')) {
            *why = "its path has empty or '.' components";
            return -1;
        }
        i += n + 1;
    }
    *out = sm_xstrndup(p, len);
    return 0;
}

/* Whether a symlink at rel (first component: its subtree) with this target
 * stays inside the subtree, resolved lexically from the link's directory.
 * ".." may only lead the target: "a/../.." could climb through a link "a"
 * that itself points up, which no lexical check can see. */
static int symlink_inside(const char *rel, const char *target, char *why, size_t cap)
{
    size_t depth = 0, top_len = strcspn(rel, "/");
    int named = 0;

    if (!target || !*target) {
        snprintf(why, cap, "it is a symlink without a target");
        return -1;
    }
    if (target[0] == '/') {
        snprintf(why, cap, "symlink to the absolute path '%s'", target);
        return -1;
    }
    for (const char *c = rel; *c; c++)
        if (*c == '/')
            depth++; /* components of the link's directory */
    for (const char *c = target; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 2 && c[0] == '.' && c[1] == '.') {
            if (named) {
                snprintf(why, cap, "symlink target '%s' has '..' after a name", target);
                return -1;
            }
            if (depth <= 1) {
                snprintf(why, cap, "symlink target '%s' leaves %.*s/", target, (int)top_len, rel);
                return -1;
            }
            depth--;
        } else if (n > 0 && !(n == 1 && c[0] == '.')) {
            named = 1;
            depth++;
        }
        c += n;
        if (*c == '/')
            c++;
    }
    return 0;
}

/* ---- gpg ---- */

typedef struct gpg_proc {
    pid_t pid;  /* 0: not running */
    char *home; /* private --homedir; status and stderr go there too */
    int in_w;   /* encrypting: our end of gpg's stdin (non-blocking) */
    int out_r;  /* gpg's stdout */
} gpg_proc;

static void gpg_init(gpg_proc *g)
{
    g->pid = 0;
    g->home = NULL;
    g->in_w = -1;
    g->out_r = -1;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* A CLOEXEC duplicate above the standard descriptors, so that the dup2s in
 * the child cannot overwrite each other. */
static int dup_high(int fd, sm_err *err)
{
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    if (d < 0)
        return sm_err_sys(err, SM_E_IO, "cannot duplicate a file descriptor");
    return d;
}

/* The environment for gpg: ours with English messages. */
static char **gpg_env(char **lc_all)
{
    size_t n = 0, k = 0;
    char **env;

    while (environ && environ[n])
        n++;
    env = sm_xcalloc(n + 2, sizeof(*env));
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LC_ALL=", 7) && strncmp(environ[i], "LANGUAGE=", 9) &&
            strncmp(environ[i], "LC_MESSAGES=", 12))
            env[k++] = environ[i];
    *lc_all = sm_xstrdup("LC_ALL=C");
    env[k++] = *lc_all;
    env[k] = NULL;
    return env;
}

/* Starts gpg. Decrypting, its stdin is src_fd; encrypting, a pipe (in_w).
 * Its stdout is out_r. The passphrase goes through a pipe on fd 3; it is
 * never on a command line or in an environment. */
static int gpg_start(gpg_proc *g, int decrypt, const char *passphrase, int src_fd, sm_err *err)
{
    int pass[2] = {-1, -1}, in[2] = {-1, -1}, out[2] = {-1, -1};
    int c_in = -1, c_out = -1, c_pass = -1;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int fa_on = 0, attr_on = 0, e, k = 0, rc = -1;
    char *status = NULL, *errfile = NULL, *lc_all = NULL, **env = NULL;
    const char *argv[40];
    sigset_t none, def;
    size_t plen = strlen(passphrase);

    if (plen == 0)
        return sm_err_set(err, SM_E_INVALID, "the passphrase is empty");
    if (plen > MAX_PASSPHRASE)
        return sm_err_set(err, SM_E_INVALID, "the passphrase is longer than %d bytes",
                          MAX_PASSPHRASE);
    if (strpbrk(passphrase, "\r\n")) {
        sm_err_set(err, SM_E_INVALID, "the passphrase contains a line break");
        return sm_err_hint(err, "gpg reads a passphrase up to its first line break; choose one "
                                "without line breaks.");
    }
    g->home = sm_mkdtemp(NULL, "sm-gpg", err);
    if (!g->home)
        goto out;
    status = sm_path_join(g->home, "status");
    errfile = sm_path_join(g->home, "stderr");
    /* the passphrase fits the pipe buffer: write it all now, before gpg runs */
    if (pipe2(pass, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 ||
        (!decrypt && pipe2(in, O_CLOEXEC) != 0)) {
        sm_err_sys(err, SM_E_IO, "cannot create a pipe for gpg");
        goto out;
    }
    if (sm_write_all(pass[1], passphrase, plen, "the passphrase pipe", err) < 0)
        goto out;
    close_fd(&pass[1]);
    if ((c_pass = dup_high(pass[0], err)) < 0 || (c_out = dup_high(out[1], err)) < 0 ||
        (c_in = dup_high(decrypt ? src_fd : in[0], err)) < 0)
        goto out;

    argv[k++] = "gpg";
    argv[k++] = "--batch";
    argv[k++] = "--yes";
    argv[k++] = "--no-tty";
    argv[k++] = "--quiet";
    argv[k++] = "--no-options";
    /* gpg-agent is not needed for passphrases given on a descriptor (with
     * a fixed S2K count gpg does not ask it for one) and would outlive us */
    argv[k++] = "--no-autostart";
    argv[k++] = "--homedir";
    argv[k++] = g->home;
    argv[k++] = "--pinentry-mode";
    argv[k++] = "loopback";
    argv[k++] = "--passphrase-fd";
    argv[k++] = "3";
    argv[k++] = "--status-file";
    argv[k++] = status;
    if (decrypt) {
        argv[k++] = "--decrypt";
    } else {
        argv[k++] = "--symmetric";
        argv[k++] = "--cipher-algo";
        argv[k++] = "AES256";
        argv[k++] = "--s2k-mode";
        argv[k++] = "3";
        argv[k++] = "--s2k-digest-algo";
        argv[k++] = "SHA512";
        argv[k++] = "--s2k-count";
        argv[k++] = "65011712";
        argv[k++] = "--compress-algo";
        argv[k++] = "none";
    }
    argv[k++] = "-o";
    argv[k++] = "-";
    argv[k] = NULL;

    posix_spawn_file_actions_init(&fa);
    fa_on = 1;
    posix_spawn_file_actions_adddup2(&fa, c_in, 0);
    posix_spawn_file_actions_adddup2(&fa, c_out, 1);
    posix_spawn_file_actions_addopen(&fa, 2, errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, c_pass, 3);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    posix_spawn_file_actions_addclosefrom_np(&fa, 4);
#endif
    posix_spawnattr_init(&attr);
    attr_on = 1;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    env = gpg_env(&lc_all);
    e = posix_spawnp(&g->pid, "gpg", &fa, &attr, (char *const *)argv, env);
    if (e != 0) {
        g->pid = 0;
        errno = e;
        if (e == ENOENT) {
            sm_err_set(err, SM_E_EXTERNAL, "cannot run gpg: it is not installed");
            sm_err_hint(err, "Install GnuPG (Debian and Ubuntu: apt-get install gnupg).");
        } else {
            sm_err_sys(err, SM_E_EXTERNAL, "cannot run gpg");
        }
        goto out;
    }
    g->out_r = out[0];
    out[0] = -1;
    if (!decrypt) {
        g->in_w = in[1];
        in[1] = -1;
        if (fcntl(g->in_w, F_SETFL, fcntl(g->in_w, F_GETFL) | O_NONBLOCK) != 0) {
            sm_err_sys(err, SM_E_IO, "cannot set up the pipe to gpg");
            goto out;
        }
    }
    rc = 0;
out:
    if (fa_on)
        posix_spawn_file_actions_destroy(&fa);
    if (attr_on)
        posix_spawnattr_destroy(&attr);
    close_fd(&pass[0]);
    close_fd(&pass[1]);
    close_fd(&in[0]);
    close_fd(&in[1]);
    close_fd(&out[0]);
    close_fd(&out[1]);
    close_fd(&c_in);
    close_fd(&c_out);
    close_fd(&c_pass);
    free(env);
    free(lc_all);
    free(status);
    free(errfile);
    return rc;
}

/* Closes our ends (killing gpg first when asked) and reaps it. */
static int gpg_wait(gpg_proc *g, int kill_it)
{
    int st = 0;

    close_fd(&g->in_w);
    if (kill_it && g->pid > 0)
        kill(g->pid, SIGTERM);
    close_fd(&g->out_r);
    while (g->pid > 0 && waitpid(g->pid, &st, 0) < 0) {
        if (errno != EINTR) {
            st = -1;
            break;
        }
    }
    g->pid = 0;
    return st;
}

static void gpg_cleanup(gpg_proc *g)
{
    if (g->pid > 0)
        gpg_wait(g, 1);
    close_fd(&g->in_w);
    close_fd(&g->out_r);
    if (g->home) {
        sm_rm_rf(g->home, NULL);
        free(g->home);
        g->home = NULL;
    }
}

/* The last line gpg wrote to stderr, or a description of how it ended. */
static void gpg_last_line(const char *log, int st, char *out, size_t cap)
{
    size_t end = strlen(log), start;

    while (end > 0 && (log[end - 1] == '\n' || log[end - 1] == '\r' || log[end - 1] == ' '))
        end--;
    start = end;
    while (start > 0 && log[start - 1] != '\n')
        start--;
    if (end > start)
        snprintf(out, cap, "%.*s", (int)(end - start), log + start);
    else if (st < 0)
        snprintf(out, cap, "gpg ended in an unknown way");
    else if (WIFSIGNALED(st))
        snprintf(out, cap, "gpg was killed by signal %d", WTERMSIG(st));
    else
        snprintf(out, cap, "gpg exited with status %d", WEXITSTATUS(st));
}

/* Interprets how gpg ended (st from gpg_wait). what: the file, decrypting. */
static int gpg_check(gpg_proc *g, int decrypt, int st, const char *what, sm_err *err)
{
    sm_buf status = SM_BUF_INIT, log = SM_BUF_INIT;
    char *sp = sm_path_join(g->home, "status"), *lp = sm_path_join(g->home, "stderr");
    char line[512];
    const char *s;
    int ok = st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, rc = -1;

    sm_read_file(sp, &status, GPG_LOG_MAX, 1, NULL);
    sm_read_file(lp, &log, GPG_LOG_MAX, 1, NULL);
    s = sm_buf_str(&status);
    gpg_last_line(sm_buf_str(&log), st, line, sizeof(line));
    if (!decrypt) {
        if (ok)
            rc = 0;
        else
            sm_err_set(err, SM_E_EXTERNAL, "gpg cannot encrypt the archive: %s", line);
    } else if (strstr(s, "BAD_PASSPHRASE")) {
        sm_err_set(err, SM_E_BADKEY, "cannot decrypt '%s': wrong passphrase", what);
        sm_err_hint(err, "Give the passphrase the archive was exported with.");
    } else if (strstr(s, "DECRYPTION_FAILED")) {
        sm_err_set(err, SM_E_CORRUPT,
                   "cannot decrypt '%s': the encrypted data is truncated or damaged (%s)", what,
                   line);
        sm_err_hint(err, "Copy or download the archive again.");
    } else if (ok && strstr(s, "DECRYPTION_OKAY")) {
        rc = 0;
    } else {
        sm_err_set(err, SM_E_EXTERNAL, "gpg cannot decrypt '%s': %s", what, line);
    }
    sm_buf_release(&status);
    sm_buf_release(&log);
    free(sp);
    free(lp);
    return rc;
}

/* ---- tree digest ---- */

typedef struct digest_ctx {
    sha256_ctx *sha;
    sm_buf line;
} digest_ctx;

static void digest_init(digest_ctx *d)
{
    d->sha = sha256_new();
    memset(&d->line, 0, sizeof(d->line));
}

static void digest_add(digest_ctx *d, const char *path, const tree_node *n)
{
    sm_buf_reset(&d->line);
    tree_digest_line(&d->line, path, n);
    sha256_update(d->sha, d->line.data, d->line.len);
}

static void digest_final(digest_ctx *d, char hex[65])
{
    unsigned char md[32];
    sha256_final(d->sha, md);
    sm_hex(hex, md, 32);
}

static void digest_release(digest_ctx *d)
{
    sha256_free(d->sha);
    d->sha = NULL;
    sm_buf_release(&d->line);
}

static int is_special(node_type t)
{
    return t == NODE_FIFO || t == NODE_CHR || t == NODE_BLK || t == NODE_SOCK;
}

static int cmp_xattr_name(const void *a, const void *b)
{
    return strcmp(((const tree_xattr *)a)->name, ((const tree_xattr *)b)->name);
}

/* user.* attributes of an open file, sorted by name (the digest lists no
 * others). */
static int dd_xattrs(tree_node *n, int fd, const char *what, sm_err *err)
{
    char *list = NULL;
    unsigned char *val = NULL;
    ssize_t len = -1;
    int rc = -1;

    for (int tries = 0; tries < 4 && len < 0; tries++) {
        ssize_t want = flistxattr(fd, NULL, 0);
        if (want < 0)
            break;
        if (want == 0)
            return 0;
        free(list);
        list = sm_xmalloc((size_t)want + 1);
        len = flistxattr(fd, list, (size_t)want);
        if (len < 0 && errno != ERANGE)
            break;
    }
    if (len < 0) {
        if (errno == ENOTSUP || errno == EOPNOTSUPP) {
            rc = 0;
            goto out;
        }
        sm_err_sys(err, SM_E_IO, "cannot list the extended attributes of '%s'", what);
        goto out;
    }
    for (ssize_t off = 0; off < len; off += (ssize_t)strlen(list + off) + 1) {
        const char *name = list + off;
        ssize_t vl;
        if (strncmp(name, "user.", 5) != 0)
            continue;
        vl = fgetxattr(fd, name, NULL, 0);
        if (vl >= 0) {
            free(val);
            val = sm_xmalloc((size_t)vl + 1);
            vl = fgetxattr(fd, name, val, (size_t)vl);
        }
        if (vl < 0) {
            if (errno == ENODATA)
                continue;
            sm_err_sys(err, SM_E_IO, "cannot read extended attribute '%s' of '%s'", name, what);
            goto out;
        }
        tree_node_add_xattr(n, name, val, (size_t)vl);
    }
    if (n->nxattrs > 1)
        qsort(n->xattrs, n->nxattrs, sizeof(*n->xattrs), cmp_xattr_name);
    rc = 0;
out:
    free(list);
    free(val);
    return rc;
}

typedef struct dd_ctx {
    digest_ctx d;
    sha256_ctx *fsha;
    sm_buf rel;
    unsigned char *buf;
} dd_ctx;

static int dd_hash_file(dd_ctx *c, int fd, tree_node *n, const char *what, sm_err *err)
{
    uint64_t size = 0;

    sha256_reset(c->fsha);
    for (;;) {
        ssize_t got = read(fd, c->buf, COPY_BUF);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return sm_err_sys(err, SM_E_IO, "cannot read '%s'", what);
        }
        if (got == 0)
            break;
        sha256_update(c->fsha, c->buf, (size_t)got);
        size += (uint64_t)got;
    }
    sha256_final(c->fsha, n->sha256);
    n->has_sha = 1;
    n->size = size;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int dd_names(int dfd, const char *what, char ***out, size_t *n, sm_err *err)
{
    int fd2 = dup(dfd);
    DIR *d;
    struct dirent *de;
    char **v = NULL;
    size_t cnt = 0, cap = 0;

    if (fd2 < 0)
        return sm_err_sys(err, SM_E_IO, "cannot read directory '%s'", what);
    d = fdopendir(fd2);
    if (!d) {
        close(fd2);
        return sm_err_sys(err, SM_E_IO, "cannot read directory '%s'", what);
    }
    rewinddir(d);
    while ((errno = 0, de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        SM_GROW(v, cap, cnt + 1);
        v[cnt++] = sm_xstrdup(de->d_name);
    }
    if (errno != 0) {
        int saved = errno;
        closedir(d);
        for (size_t i = 0; i < cnt; i++)
            free(v[i]);
        free(v);
        errno = saved;
        return sm_err_sys(err, SM_E_IO, "cannot read directory '%s'", what);
    }
    closedir(d);
    if (cnt > 1)
        qsort(v, cnt, sizeof(*v), cmp_str);
    *out = v;
    *n = cnt;
    return 0;
}

static int dd_dir(dd_ctx *c, int dfd, const char *abs, sm_err *err)
{
    char **names = NULL;
    size_t nnames = 0, saved = c->rel.len;
    int rc = -1;

    if (dd_names(dfd, abs, &names, &nnames, err) < 0)
        return -1;
    for (size_t k = 0; k < nnames; k++) {
        const char *name = names[k];
        char *fabs = sm_path_join(abs, name);
        tree_node n;
        struct stat sb;
        int fd = -1, r2 = -1;

        memset(&n, 0, sizeof(n));
        if (c->rel.len)
            sm_buf_putc(&c->rel, '/');
        sm_buf_puts(&c->rel, name);
        if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
            sm_err_sys(err, SM_E_IO, "cannot stat '%s'", fabs);
        } else if (node_type_from_mode(sb.st_mode, &n.type) < 0) {
            sm_err_set(err, SM_E_IO, "'%s' has an unknown file type", fabs);
        } else {
            n.mode = (uint32_t)(sb.st_mode & 07777);
            if (n.type == NODE_FILE) {
                fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                    sm_err_sys(err, SM_E_IO, "cannot open '%s'", fabs);
                else if (dd_xattrs(&n, fd, fabs, err) == 0 &&
                         dd_hash_file(c, fd, &n, fabs, err) == 0)
                    r2 = 0;
            } else if (n.type == NODE_SYMLINK) {
                size_t cap = sb.st_size > 0 ? (size_t)sb.st_size + 1 : PATH_MAX;
                char *t = sm_xmalloc(cap);
                ssize_t len = readlinkat(dfd, name, t, cap - 1);
                if (len < 0) {
                    sm_err_sys(err, SM_E_IO, "cannot read link '%s'", fabs);
                    free(t);
                } else {
                    t[len] = '\0';
                    n.target = t;
                    r2 = 0;
                }
            } else if (n.type == NODE_DIR) {
                fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                    sm_err_sys(err, SM_E_IO, "cannot open directory '%s'", fabs);
                else
                    r2 = dd_xattrs(&n, fd, fabs, err);
            } else {
                r2 = 0;
            }
        }
        if (r2 == 0) {
            digest_add(&c->d, sm_buf_str(&c->rel), &n);
            if (n.type == NODE_DIR)
                r2 = dd_dir(c, fd, fabs, err);
        }
        if (fd >= 0)
            close(fd);
        tree_node_release(&n);
        free(fabs);
        c->rel.len = saved;
        c->rel.data[saved] = '\0';
        if (r2 < 0)
            goto out;
    }
    rc = 0;
out:
    for (size_t k = 0; k < nnames; k++)
        free(names[k]);
    free(names);
    return rc;
}

int archive_dir_digest(const char *path, char out[65], sm_err *err)
{
    dd_ctx c;
    tree_node root;
    struct stat sb;
    int dfd = -1, rc = -1;

    memset(&c, 0, sizeof(c));
    memset(&root, 0, sizeof(root));
    dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return sm_err_sys(err, errno == ENOENT ? SM_E_NOTFOUND : SM_E_IO,
                          "cannot open directory '%s'", path);
    digest_init(&c.d);
    c.fsha = sha256_new();
    c.buf = sm_xmalloc(COPY_BUF);
    sm_buf_puts(&c.rel, "");
    if (fstat(dfd, &sb) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot stat '%s'", path);
        goto out;
    }
    root.type = NODE_DIR;
    root.mode = (uint32_t)(sb.st_mode & 07777);
    if (dd_xattrs(&root, dfd, path, err) < 0)
        goto out;
    digest_add(&c.d, ".", &root);
    if (dd_dir(&c, dfd, path, err) < 0)
        goto out;
    digest_final(&c.d, out);
    rc = 0;
out:
    close(dfd);
    tree_node_release(&root);
    digest_release(&c.d);
    sha256_free(c.fsha);
    sm_buf_release(&c.rel);
    free(c.buf);
    return rc;
}

/* ---- export ---- */

/* The root node of a tree stream, parsed by the repository's own decoder
 * (as a one-node tree) so that its fields mean exactly what they mean there. */
static int stream_root(json_t *st, const snapshot *s, const char *name, tree *holder, sm_err *err)
{
    json_t *doc = json_pack("{s:[O]}", "nodes", json_object_get(st, "root"));
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    int rc = -1;

    if (!text) {
        sm_err_set(err, SM_E_CORRUPT, "stream '%s' of snapshot %.12s has no root", name,
                   snapshot_id(s));
    } else if (tree_decode(holder, (const unsigned char *)text, strlen(text), name, err) == 0) {
        if (holder->n == 1 && holder->nodes[0].type == NODE_DIR)
            rc = 0;
        else
            sm_err_set(err, SM_E_CORRUPT, "stream '%s' of snapshot %.12s has a bad root", name,
                       snapshot_id(s));
    }
    free(text);
    json_decref(doc);
    return rc;
}

/* The stream of a part, checking its kind: 0, 1 when absent, -1 on error. */
static int part_stream(const snapshot *s, int p, json_t **out, sm_err *err)
{
    json_t *st = snapshot_stream(s, parts[p].key);
    const char *kind;

    *out = NULL;
    if (!st)
        return 1;
    kind = json_string_value(json_object_get(st, "kind"));
    if (!kind || strcmp(kind, parts[p].tree ? "tree" : "file") != 0)
        return sm_err_set(err, SM_E_INVALID,
                          "stream '%s' of snapshot %.12s is a %s stream, but archives hold %s "
                          "from a %s stream",
                          parts[p].key, snapshot_id(s), kind ? kind : "?", parts[p].label,
                          parts[p].tree ? "tree" : "file");
    *out = st;
    return 0;
}

static int walk_digest(void *ud, const char *path, const tree_node *n, sm_err *err)
{
    (void)err;
    if (!is_special(n->type))
        digest_add(ud, path, n);
    return 0;
}

/* The digest of a tree stream as the archive holds it (no special files). */
static int export_tree_digest(repo *r, const snapshot *s, int p, json_t *st, char hex[65],
                              sm_err *err)
{
    tree holder = TREE_INIT;
    digest_ctx d;
    int rc = -1;

    digest_init(&d);
    if (stream_root(st, s, parts[p].key, &holder, err) < 0)
        goto out;
    digest_add(&d, ".", &holder.nodes[0]);
    if (repo_tree_walk(r, s, parts[p].key, walk_digest, &d, err) < 0)
        goto out;
    digest_final(&d, hex);
    rc = 0;
out:
    tree_release(&holder);
    digest_release(&d);
    return rc;
}

int archive_export_checksums(repo *r, const snapshot *s, json_t **out, sm_err *err)
{
    json_t *o = json_object();
    int rc = -1;

    *out = NULL;
    for (int p = 0; p < NPARTS; p++) {
        json_t *st;
        const char *sha;
        char hex[65];
        int r2 = part_stream(s, p, &st, err);

        if (r2 < 0)
            goto out;
        if (r2 > 0)
            continue;
        sha = json_string_value(json_object_get(st, "sha256"));
        if (!sha || strlen(sha) != 64 || strspn(sha, "0123456789abcdef") != 64) {
            sm_err_set(err, SM_E_CORRUPT, "stream '%s' of snapshot %.12s has no valid sha256",
                       parts[p].key, snapshot_id(s));
            goto out;
        }
        if (parts[p].tree && json_integer_value(json_object_get(st, "special")) > 0) {
            /* special files are left out of the archive, so its digest differs */
            if (export_tree_digest(r, s, p, st, hex, err) < 0)
                goto out;
            sha = hex;
        }
        json_object_set_new(o, parts[p].key, json_sprintf("sha256:%s", sha));
    }
    *out = o;
    o = NULL;
    rc = 0;
out:
    json_decref(o);
    return rc;
}

typedef struct exp_ctx {
    repo *r;
    repo_reader *rr; /* reader threads kept across files */
    const snapshot *s;
    const archive_export_opts *o;
    struct archive *a;
    struct archive_entry *e;
    int out_fd;
    uint64_t written;
    int encrypting;
    gpg_proc gpg;
    unsigned char *relay;
    sm_err werr; /* what failed in the write callback */
    int wfailed;
    /* current entry */
    const char *cur;
    uint64_t left;
    /* trees */
    const char *top;
    void *links; /* "dev:inode" -> first path */
    digest_ctx d;
    /* progress */
    uint64_t bytes_done, bytes_total, files_done;
    double last;
    const char *stream;
} exp_ctx;

static void exp_progress(exp_ctx *x, int force)
{
    repo_progress p;
    double now;

    if (!x->o || !x->o->progress)
        return;
    now = sm_mono();
    if (!force && now - x->last < 0.2)
        return;
    x->last = now;
    memset(&p, 0, sizeof(p));
    p.phase = "export";
    p.stream = x->stream;
    p.bytes_done = x->bytes_done;
    p.bytes_total = x->bytes_total;
    p.files_done = x->files_done;
    x->o->progress(x->o->progress_ud, &p);
}

static int out_write(exp_ctx *x, const void *p, size_t n, sm_err *err)
{
    const unsigned char *c = p;

    while (n > 0) {
        ssize_t w = write(x->out_fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return sm_err_sys(err, SM_E_IO, "cannot write the archive");
        }
        c += w;
        n -= (size_t)w;
        x->written += (uint64_t)w;
    }
    return 0;
}

static int gpg_died(exp_ctx *x, sm_err *err)
{
    int st = gpg_wait(&x->gpg, 0);
    if (gpg_check(&x->gpg, 0, st, NULL, err) == 0)
        sm_err_set(err, SM_E_EXTERNAL, "gpg stopped before reading the whole archive");
    return -1;
}

/* Feeds (p, n) to gpg while passing what it writes on to out_fd; with
 * closing (n == 0, gpg's stdin closed) copies its output to the end. Both
 * directions are served so that neither pipe can fill up and stall. */
static int relay(exp_ctx *x, const unsigned char *p, size_t n, int closing, sm_err *err)
{
    for (;;) {
        struct pollfd pf[2];
        nfds_t nf = 0;
        int iw = -1, ir;

        if (n > 0) {
            pf[nf].fd = x->gpg.in_w;
            pf[nf].events = POLLOUT;
            pf[nf].revents = 0;
            iw = (int)nf++;
        } else if (!closing) {
            return 0;
        }
        pf[nf].fd = x->gpg.out_r;
        pf[nf].events = POLLIN;
        pf[nf].revents = 0;
        ir = (int)nf++;
        if (poll(pf, nf, -1) < 0) {
            if (errno == EINTR)
                continue;
            return sm_err_sys(err, SM_E_IO, "cannot wait for gpg");
        }
        if (pf[ir].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t got = read(x->gpg.out_r, x->relay, RELAY_BUF);
            if (got < 0) {
                if (errno != EINTR && errno != EAGAIN)
                    return sm_err_sys(err, SM_E_IO, "cannot read from gpg");
            } else if (got == 0) {
                if (closing)
                    return 0;
                return gpg_died(x, err);
            } else if (out_write(x, x->relay, (size_t)got, err) < 0) {
                return -1;
            }
        }
        if (iw >= 0 && (pf[iw].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t put = write(x->gpg.in_w, p, n);
            if (put < 0) {
                if (errno == EPIPE)
                    return gpg_died(x, err);
                if (errno != EINTR && errno != EAGAIN)
                    return sm_err_sys(err, SM_E_IO, "cannot write to gpg");
            } else {
                p += put;
                n -= (size_t)put;
            }
        }
    }
}

static la_ssize_t exp_write_cb(struct archive *a, void *ud, const void *p, size_t n)
{
    exp_ctx *x = ud;
    int r;

    (void)a;
    if (x->wfailed)
        return -1;
    r = x->encrypting ? relay(x, p, n, 0, &x->werr) : out_write(x, p, n, &x->werr);
    if (r < 0) {
        x->wfailed = 1;
        return -1;
    }
    return (la_ssize_t)n;
}

static int la_write_err(exp_ctx *x, const char *what, sm_err *err)
{
    const char *m = archive_error_string(x->a);

    if (x->wfailed) {
        sm_err_copy(err, &x->werr);
        return -1;
    }
    return sm_err_set(err, SM_E_IO, "cannot write '%s' to the archive: %s", what,
                      m ? m : "unknown error");
}

/* One entry header. Only user.* attributes go into the archive. */
static int exp_header(exp_ctx *x, const char *path, mode_t type, const tree_node *n, uint64_t size,
                      const char *hardlink, sm_err *err)
{
    struct archive_entry *e = x->e;

    archive_entry_clear(e);
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, n->mode & 07777);
    archive_entry_set_uid(e, n->uid);
    archive_entry_set_gid(e, n->gid);
    archive_entry_set_mtime(e, n->mtime_s, n->mtime_ns);
    if (type == AE_IFREG)
        archive_entry_set_size(e, hardlink ? 0 : (la_int64_t)size);
    if (type == AE_IFLNK)
        archive_entry_set_symlink(e, n->target ? n->target : "");
    if (hardlink)
        archive_entry_set_hardlink(e, hardlink);
    for (size_t i = 0; i < n->nxattrs; i++)
        if (!strncmp(n->xattrs[i].name, "user.", 5))
            archive_entry_xattr_add_entry(e, n->xattrs[i].name, n->xattrs[i].value,
                                          n->xattrs[i].len);
    /* ARCHIVE_WARN: a name that is not UTF-8 went out as raw bytes */
    if (archive_write_header(x->a, e) < ARCHIVE_WARN)
        return la_write_err(x, path, err);
    x->cur = path;
    x->left = type == AE_IFREG && !hardlink ? size : 0;
    return 0;
}

static int exp_data(void *ud, const void *p, size_t n, sm_err *err)
{
    exp_ctx *x = ud;
    la_ssize_t w;

    if (n > x->left)
        return sm_err_set(err, SM_E_CORRUPT, "'%s' holds more data than its recorded size", x->cur);
    w = archive_write_data(x->a, p, n);
    if (w < 0 || (size_t)w != n)
        return la_write_err(x, x->cur, err);
    x->left -= n;
    x->bytes_done += n;
    exp_progress(x, 0);
    return 0;
}

static int exp_end_entry(exp_ctx *x, sm_err *err)
{
    if (x->left != 0)
        return sm_err_set(err, SM_E_CORRUPT, "'%s' holds less data than its recorded size", x->cur);
    return 0;
}

/* A node for the top-level files: private, owned by root, the snapshot's time. */
static void top_node(tree_node *n, const snapshot *s)
{
    memset(n, 0, sizeof(*n));
    n->type = NODE_FILE;
    n->mode = 0600;
    n->mtime_s = (int64_t)snapshot_time(s);
}

static int exp_file_stream(exp_ctx *x, int p, json_t *st, sm_err *err)
{
    tree_node n;
    json_t *size = json_object_get(st, "size");

    if (!json_is_integer(size) || json_integer_value(size) < 0)
        return sm_err_set(err, SM_E_CORRUPT, "stream '%s' of snapshot %.12s has no size",
                          parts[p].key, snapshot_id(x->s));
    top_node(&n, x->s);
    x->stream = parts[p].key;
    if (exp_header(x, parts[p].entry, AE_IFREG, &n, (uint64_t)json_integer_value(size), NULL, err) <
        0)
        return -1;
    if (repo_read_stream(x->r, x->s, parts[p].key, exp_data, x, err) < 0 ||
        exp_end_entry(x, err) < 0) {
        if (!x->wfailed) /* the snapshot's side failed, not the output */
            sm_err_prefix(err, "cannot export '%s'", parts[p].entry);
        return -1;
    }
    x->files_done++;
    return 0;
}

static int exp_walk(void *ud, const char *path, const tree_node *n, sm_err *err)
{
    exp_ctx *x = ud;
    char *full = sm_xasprintf("%s/%s", x->top, path), *key = NULL;
    const char *link = NULL;
    char why[512];
    int rc = -1;

    if (is_special(n->type)) {
        sm_log(SM_LOG_WARN, "export: skipping '%s': %s files are not exported", full,
               node_type_name(n->type));
        rc = 0;
        goto out;
    }
    digest_add(&x->d, path, n);
    if (n->type == NODE_SYMLINK) {
        if (symlink_inside(full, n->target, why, sizeof(why)) < 0)
            sm_log(SM_LOG_WARN, "export: '%s': %s; importing this archive will refuse it", full,
                   why);
        rc = exp_header(x, full, AE_IFLNK, n, 0, NULL, err);
    } else if (n->type == NODE_DIR) {
        rc = exp_header(x, full, AE_IFDIR, n, 0, NULL, err);
    } else {
        if (n->nlink > 1) {
            pent *first;
            key =
                sm_xasprintf("%llu:%llu", (unsigned long long)n->dev, (unsigned long long)n->inode);
            first = pmap_find(&x->links, key);
            if (first)
                link = first->val;
            else
                pmap_add(&x->links, key, 0, full);
        }
        if (exp_header(x, full, AE_IFREG, n, n->size, link, err) < 0)
            goto out;
        if (link) /* its bytes are in the stream's size, but written once */
            x->bytes_done += n->size;
        if (!link && (repo_reader_read_node(x->rr, n, exp_data, x, err) < 0 ||
                      exp_end_entry(x, err) < 0)) {
            if (!x->wfailed)
                sm_err_prefix(err, "cannot export '%s'", full);
            goto out;
        }
        x->files_done++;
        rc = 0;
    }
out:
    free(key);
    free(full);
    return rc;
}

static int exp_tree(exp_ctx *x, int p, json_t *st, const char *want, sm_err *err)
{
    tree holder = TREE_INIT;
    char hex[65];
    int rc = -1;

    x->stream = parts[p].key;
    x->top = parts[p].entry;
    digest_init(&x->d);
    if (stream_root(st, x->s, parts[p].key, &holder, err) < 0)
        goto out;
    digest_add(&x->d, ".", &holder.nodes[0]);
    if (exp_header(x, parts[p].entry, AE_IFDIR, &holder.nodes[0], 0, NULL, err) < 0)
        goto out;
    if (repo_tree_walk(x->r, x->s, parts[p].key, exp_walk, x, err) < 0)
        goto out;
    digest_final(&x->d, hex);
    if (strcmp(hex, want + 7) != 0) {
        sm_err_set(err, SM_E_CORRUPT, "tree '%s' of snapshot %.12s does not match its checksum",
                   parts[p].key, snapshot_id(x->s));
        goto out;
    }
    rc = 0;
out:
    digest_release(&x->d);
    pmap_free(&x->links);
    tree_release(&holder);
    return rc;
}

/* The metadata must describe what the archive will hold, or import would
 * refuse the archive: check that now rather than after writing it. */
static int exp_check_meta(repo *r, const snapshot *s, json_t *metadata, json_t **want, sm_err *err)
{
    char why[512];
    sm_code code;
    json_t *sums, *v;
    const char *k;

    if (!metadata)
        return sm_err_set(err, SM_E_INTERNAL, "cannot export: no metadata document");
    if (meta_check(metadata, &code, why, sizeof(why)) < 0) {
        if (code == SM_E_VERSION)
            return sm_err_set(err, SM_E_INTERNAL,
                              "cannot export: the metadata document has version %s", why);
        return sm_err_set(err, SM_E_INTERNAL, "cannot export: %s", why);
    }
    if (archive_export_checksums(r, s, want, err) < 0)
        return -1;
    sums = json_object_get(metadata, "checksums");
    json_object_foreach(*want, k, v)
    {
        json_t *m = json_object_get(sums, k);
        if (!m) {
            sm_err_set(err, SM_E_INTERNAL,
                       "cannot export: metadata.json does not list %s in its checksums, but "
                       "snapshot %.12s holds it",
                       k, snapshot_id(s));
            return sm_err_hint(err, "Take the checksums from archive_export_checksums().");
        }
        if (strcmp(json_string_value(m), json_string_value(v)) != 0) {
            sm_err_set(err, SM_E_INTERNAL,
                       "cannot export: metadata.json says %s is %s, but the archive holds %s", k,
                       json_string_value(m), json_string_value(v));
            return sm_err_hint(err, "Take the checksums from archive_export_checksums().");
        }
    }
    json_object_foreach(sums, k, v)
    {
        if (!json_object_get(*want, k))
            return sm_err_set(err, SM_E_INTERNAL,
                              "cannot export: metadata.json lists %s in its checksums, but "
                              "snapshot %.12s has no such stream",
                              k, snapshot_id(s));
    }
    return 0;
}

int archive_export(repo *r, const snapshot *s, json_t *metadata, int out_fd,
                   const archive_export_opts *o, uint64_t *written, sm_err *err)
{
    exp_ctx x;
    locale_guard lg = {(locale_t)0, (locale_t)0};
    sigpipe_guard pg;
    json_t *want = NULL, *st[NPARTS];
    char *meta_text = NULL;
    tree_node mn;
    int rc = -1, r2;

    memset(&x, 0, sizeof(x));
    memset(&pg, 0, sizeof(pg));
    gpg_init(&x.gpg);
    x.r = r;
    if (repo_reader_new(&x.rr, r, 0, err) < 0)
        return -1;
    x.s = s;
    x.o = o;
    x.out_fd = out_fd;
    if (written)
        *written = 0;
    if (exp_check_meta(r, s, metadata, &want, err) < 0)
        goto out;
    for (int p = 0; p < NPARTS; p++) {
        if (part_stream(s, p, &st[p], err) < 0)
            goto out;
        if (st[p])
            x.bytes_total += (uint64_t)json_integer_value(json_object_get(st[p], "size"));
    }
    meta_text = json_dumps(metadata, JSON_INDENT(2));
    if (!meta_text) {
        sm_err_set(err, SM_E_INTERNAL, "cannot encode the metadata document");
        goto out;
    }
    {
        char *t = sm_xasprintf("%s\n", meta_text);
        free(meta_text);
        meta_text = t;
    }
    x.bytes_total += strlen(meta_text);

    locale_enter(&lg);
    sigpipe_block(&pg);
    if (o && o->passphrase) {
        if (gpg_start(&x.gpg, 0, o->passphrase, -1, err) < 0)
            goto out;
        x.encrypting = 1;
        x.relay = sm_xmalloc(RELAY_BUF);
    }
    x.a = archive_write_new();
    x.e = archive_entry_new();
    if (!x.a || !x.e) {
        sm_err_set(err, SM_E_INTERNAL, "cannot set up libarchive");
        goto out;
    }
    archive_write_set_format_pax(x.a);
    /* GNU tar reads SCHILY.xattr and warns about libarchive's own keys */
    archive_write_set_format_option(x.a, "pax", "xattrheader", "SCHILY");
    switch (o ? o->compression : ARCHIVE_GZIP) {
    case ARCHIVE_GZIP:
        r2 = archive_write_add_filter_gzip(x.a);
        break;
    case ARCHIVE_ZSTD:
        r2 = archive_write_add_filter_zstd(x.a);
        break;
    default:
        r2 = archive_write_add_filter_none(x.a);
        break;
    }
    if (r2 != ARCHIVE_OK) {
        sm_err_set(err, SM_E_INTERNAL, "cannot set up the archive's compression: %s",
                   archive_error_string(x.a));
        goto out;
    }
    /* no padding after the compressed stream: zstd readers take it for a
     * damaged frame (the tar's own end-of-archive blocks are still written) */
    archive_write_set_bytes_in_last_block(x.a, 1);
    if (archive_write_open2(x.a, &x, NULL, exp_write_cb, NULL, NULL) != ARCHIVE_OK) {
        la_write_err(&x, "the header", err);
        goto out;
    }

    top_node(&mn, s);
    mn.mode = 0644;
    x.stream = META_ENTRY;
    if (exp_header(&x, META_ENTRY, AE_IFREG, &mn, strlen(meta_text), NULL, err) < 0 ||
        exp_data(&x, meta_text, strlen(meta_text), err) < 0 || exp_end_entry(&x, err) < 0)
        goto out;
    for (int p = 0; p < NPARTS; p++) {
        if (!st[p])
            continue;
        if (parts[p].tree)
            r2 =
                exp_tree(&x, p, st[p], json_string_value(json_object_get(want, parts[p].key)), err);
        else
            r2 = exp_file_stream(&x, p, st[p], err);
        if (r2 < 0)
            goto out;
    }
    if (archive_write_close(x.a) != ARCHIVE_OK) {
        la_write_err(&x, "the end", err);
        goto out;
    }
    if (x.encrypting) {
        int gst;
        close_fd(&x.gpg.in_w);
        if (relay(&x, NULL, 0, 1, err) < 0)
            goto out;
        gst = gpg_wait(&x.gpg, 0);
        if (gpg_check(&x.gpg, 0, gst, NULL, err) < 0)
            goto out;
    }
    exp_progress(&x, 1);
    if (written)
        *written = x.written;
    rc = 0;
out:
    x.wfailed = 1; /* nothing more reaches out_fd or gpg */
    if (x.a)
        archive_write_free(x.a);
    if (x.e)
        archive_entry_free(x.e);
    gpg_cleanup(&x.gpg);
    sigpipe_restore(&pg);
    locale_leave(&lg);
    free(x.relay);
    free(meta_text);
    json_decref(want);
    repo_reader_free(x.rr);
    return rc;
}

/* ---- import ---- */

enum { K_DIR = 1, K_IMPLICIT_DIR, K_FILE, K_LINK, K_SYMLINK };

typedef struct imp_ctx {
    const char *path; /* the archive, for messages */
    const char *dest; /* as given, for messages */
    char *root;       /* realpath of dest */
    uint64_t max_total, max_entries;
    size_t max_meta;
    struct archive *in;
    struct archive *out;
    gpg_proc gpg;
    void *seen; /* normalized path -> kind */
    json_t *meta;
    unsigned present; /* bit per part */
    char hex[NPARTS][65];
    uint64_t entries, total;
    sha256_ctx *sha;
    unsigned char *buf;
} imp_ctx;

static int refuse(imp_ctx *x, const char *entry, const char *why, sm_err *err)
{
    size_t len = strlen(entry);

    /* a long name would push the reason out of the message */
    if (len > 200)
        sm_err_set(err, SM_E_INVALID, "refusing entry '%.120s...%s' of '%s': %s", entry,
                   entry + len - 60, x->path, why);
    else
        sm_err_set(err, SM_E_INVALID, "refusing entry '%s' of '%s': %s", entry, x->path, why);
    return sm_err_hint(err, HINT_REFUSED, x->dest);
}

/* Reads whatever gpg still writes (so that it can finish and check the
 * integrity of everything), up to EOF. */
static void drain(int fd, unsigned char *buf)
{
    for (;;) {
        ssize_t got = read(fd, buf, COPY_BUF);
        if (got == 0 || (got < 0 && errno != EINTR))
            return;
    }
}

/* A read error of libarchive: a decryption failure explains it best, then
 * truncation, then not being an archive at all. */
static int imp_read_fail(imp_ctx *x, sm_err *err)
{
    const char *m = archive_error_string(x->in);
    char msg[512];

    snprintf(msg, sizeof(msg), "%s", m ? m : "unknown error");
    if (x->gpg.pid > 0) {
        int st;
        drain(x->gpg.out_r, x->buf);
        st = gpg_wait(&x->gpg, 0);
        if (gpg_check(&x->gpg, 1, st, x->path, err) < 0)
            return -1;
    }
    if (strstr(msg, "runcated")) {
        sm_err_set(err, SM_E_CORRUPT, "'%s' is truncated: %s", x->path, msg);
        return sm_err_hint(err, "Copy or download the archive again.");
    }
    if (x->entries == 0)
        return sm_err_set(err, SM_E_INVALID, MSG_NOT_OURS, x->path, msg);
    return sm_err_set(err, SM_E_CORRUPT, "'%s' is damaged: %s", x->path, msg);
}

static int imp_write_err(imp_ctx *x, const char *rel, sm_err *err)
{
    const char *m = archive_error_string(x->out);
    int e = archive_errno(x->out);

    return sm_err_set(err, e == ENOSPC || e == EDQUOT ? SM_E_NOSPC : SM_E_IO,
                      "cannot extract '%s' into '%s': %s", rel, x->dest, m ? m : "unknown error");
}

/* Keeps only user.* attributes: others (security.capability, trusted.*)
 * could grant privileges and are not what travels between hosts. */
static void keep_user_xattrs(struct archive_entry *e, const char *rel)
{
    size_t n = (size_t)archive_entry_xattr_reset(e), k = 0;
    char **names;
    void **vals;
    size_t *lens;

    if (n == 0)
        return;
    names = sm_xcalloc(n, sizeof(*names));
    vals = sm_xcalloc(n, sizeof(*vals));
    lens = sm_xcalloc(n, sizeof(*lens));
    for (size_t i = 0; i < n; i++) {
        const char *name;
        const void *v;
        size_t len;
        if (archive_entry_xattr_next(e, &name, &v, &len) != ARCHIVE_OK)
            break;
        if (strncmp(name, "user.", 5) != 0) {
            sm_log(SM_LOG_WARN,
                   "import: dropping extended attribute '%s' of '%s': only user.* "
                   "attributes are restored",
                   name, rel);
            continue;
        }
        names[k] = sm_xstrdup(name);
        vals[k] = sm_xmemdup(v, len ? len : 1);
        lens[k++] = len;
    }
    archive_entry_xattr_clear(e);
    for (size_t i = 0; i < k; i++) {
        archive_entry_xattr_add_entry(e, names[i], vals[i], lens[i]);
        free(names[i]);
        free(vals[i]);
    }
    free(names);
    free(vals);
    free(lens);
}

/* Copies the current entry's data to disk, hashing it when sha is given. */
static int imp_copy(imp_ctx *x, const char *rel, sha256_ctx *sha, sm_err *err)
{
    for (;;) {
        la_ssize_t got = archive_read_data(x->in, x->buf, COPY_BUF);
        if (got < 0)
            return imp_read_fail(x, err);
        if (got == 0)
            return 0;
        if (sha)
            sha256_update(sha, x->buf, (size_t)got);
        if (archive_write_data(x->out, x->buf, (size_t)got) != got)
            return imp_write_err(x, rel, err);
    }
}

static int imp_metadata(imp_ctx *x, struct archive_entry *e, sm_err *err)
{
    sm_buf b = SM_BUF_INIT;
    sm_err lerr = SM_ERR_INIT;
    json_error_t je;
    json_t *doc = NULL;
    la_int64_t size = archive_entry_size(e);
    char why[512];
    sm_code code;
    int rc = -1;

    if (size < 0 || (uint64_t)size > x->max_meta) {
        sm_err_set(err, SM_E_LIMIT,
                   "metadata.json in '%s' is %lld bytes, over the limit of %zu "
                   "bytes",
                   x->path, (long long)size, x->max_meta);
        goto out;
    }
    sm_buf_limit(&b, x->max_meta);
    for (;;) {
        la_ssize_t got = archive_read_data(x->in, x->buf, COPY_BUF);
        if (got < 0) {
            imp_read_fail(x, err);
            goto out;
        }
        if (got == 0)
            break;
        if (sm_buf_add(&b, x->buf, (size_t)got, &lerr) < 0) {
            sm_err_set(err, SM_E_LIMIT, "metadata.json in '%s' is over the limit of %zu bytes",
                       x->path, x->max_meta);
            goto out;
        }
    }
    doc = json_loadb((const char *)b.data, b.len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        snprintf(why, sizeof(why), "metadata.json is not valid JSON (%s, line %d)", je.text,
                 je.line);
        sm_err_set(err, SM_E_INVALID, MSG_NOT_OURS, x->path, why);
        goto out;
    }
    if (meta_check(doc, &code, why, sizeof(why)) < 0) {
        if (code == SM_E_VERSION) {
            sm_err_set(err, SM_E_VERSION,
                       "'%s' is a version %s SupaManager archive; this SupaManager reads "
                       "version %d",
                       x->path, why, ARCHIVE_METADATA_VERSION);
            sm_err_hint(err, "Upgrade SupaManager to import it.");
        } else {
            sm_err_set(err, SM_E_INVALID, MSG_NOT_OURS, x->path, why);
        }
        goto out;
    }
    if (archive_write_header(x->out, e) != ARCHIVE_OK ||
        archive_write_data(x->out, b.data, b.len) != (la_ssize_t)b.len ||
        archive_write_finish_entry(x->out) != ARCHIVE_OK) {
        imp_write_err(x, META_ENTRY, err);
        goto out;
    }
    x->meta = doc;
    doc = NULL;
    rc = 0;
out:
    json_decref(doc);
    sm_buf_release(&b);
    return rc;
}

/* Checks one entry and extracts it. */
static int imp_entry(imp_ctx *x, struct archive_entry *e, sm_err *err)
{
    const char *raw = archive_entry_pathname(e), *hlraw = archive_entry_hardlink(e), *why = NULL;
    char *rel = NULL, *hl = NULL, *full = NULL, *fullhl = NULL, *top = NULL;
    char whybuf[600];
    mode_t ft = archive_entry_filetype(e);
    int kind, p = -1, is_meta = 0, rc = -1;
    size_t top_len;
    pent *have;

    if (norm_path(raw, &rel, &why) < 0) {
        refuse(x, raw ? raw : "", why, err);
        goto out;
    }
    if (hlraw)
        kind = K_LINK;
    else if (ft == AE_IFREG)
        kind = K_FILE;
    else if (ft == AE_IFDIR)
        kind = K_DIR;
    else if (ft == AE_IFLNK)
        kind = K_SYMLINK;
    else {
        refuse(x, raw,
               ft == AE_IFIFO                     ? "fifos are not allowed"
               : ft == AE_IFCHR || ft == AE_IFBLK ? "device files are not allowed"
               : ft == AE_IFSOCK                  ? "sockets are not allowed"
                                                  : "it has an unknown type",
               err);
        goto out;
    }
    if (!*rel) { /* "./": the destination itself, whose metadata we keep */
        if (kind != K_DIR) {
            refuse(x, raw, "it must be a directory", err);
            goto out;
        }
        rc = 0;
        goto out;
    }

    top_len = strcspn(rel, "/");
    top = sm_xstrndup(rel, top_len);
    if (!strcmp(top, META_ENTRY)) {
        is_meta = 1;
    } else {
        for (int i = 0; i < NPARTS; i++)
            if (!strcmp(top, parts[i].entry))
                p = i;
    }
    if (!is_meta && p < 0) {
        refuse(x, raw,
               "only metadata.json, database.dump, globals.sql, storage/ and config/ "
               "belong in the archive",
               err);
        goto out;
    }
    if (is_meta || !parts[p].tree) {
        if (rel[top_len]) {
            snprintf(whybuf, sizeof(whybuf), "'%s' is a file, not a directory", top);
            refuse(x, raw, whybuf, err);
            goto out;
        }
        if (kind != K_FILE) {
            refuse(x, raw, "it must be a regular file", err);
            goto out;
        }
    } else if (!rel[top_len] && kind != K_DIR) {
        refuse(x, raw, "it must be a directory", err);
        goto out;
    }

    if (kind == K_SYMLINK &&
        symlink_inside(rel, archive_entry_symlink(e), whybuf, sizeof(whybuf)) < 0) {
        refuse(x, raw, whybuf, err);
        goto out;
    }
    if (kind == K_LINK) {
        pent *t;
        if (norm_path(hlraw, &hl, &why) < 0) {
            snprintf(whybuf, sizeof(whybuf), "hard link to '%s': %s", hlraw, why);
            refuse(x, raw, whybuf, err);
            goto out;
        }
        if (strncmp(hl, top, top_len) != 0 || hl[top_len] != '/') {
            snprintf(whybuf, sizeof(whybuf), "hard link to '%s' outside %s/", hlraw, top);
            refuse(x, raw, whybuf, err);
            goto out;
        }
        t = pmap_find(&x->seen, hl);
        if (!t || (t->kind != K_FILE && t->kind != K_LINK)) {
            snprintf(whybuf, sizeof(whybuf),
                     "hard link to '%s', which is not an earlier file of the archive", hlraw);
            refuse(x, raw, whybuf, err);
            goto out;
        }
    }

    /* parents must be directories; they are implied when not listed */
    for (size_t i = top_len; rel[i]; i += 1 + strcspn(rel + i + 1, "/")) {
        char *parent = sm_xstrndup(rel, i);
        pent *pe = pmap_find(&x->seen, parent);
        if (!pe) {
            pmap_add(&x->seen, parent, K_IMPLICIT_DIR, NULL);
        } else if (pe->kind != K_DIR && pe->kind != K_IMPLICIT_DIR) {
            snprintf(whybuf, sizeof(whybuf), "'%s' is not a directory", parent);
            free(parent);
            refuse(x, raw, whybuf, err);
            goto out;
        }
        free(parent);
    }
    have = pmap_find(&x->seen, rel);
    if (have && have->kind == K_IMPLICIT_DIR && kind == K_DIR) {
        have->kind = K_DIR;
    } else if (have && have->kind == K_IMPLICIT_DIR) {
        refuse(x, raw, "it is also a directory holding earlier entries", err);
        goto out;
    } else if (have) {
        refuse(x, raw, "it appears twice in the archive", err);
        goto out;
    } else {
        pmap_add(&x->seen, rel, kind, NULL);
    }

    if (!is_meta && x->meta &&
        !json_object_get(json_object_get(x->meta, "checksums"), parts[p].key)) {
        snprintf(whybuf, sizeof(whybuf), "metadata.json does not list %s in its checksums",
                 parts[p].key);
        refuse(x, raw, whybuf, err);
        goto out;
    }

    if (kind == K_LINK) {
        archive_entry_set_size(e, 0); /* a hard link brings no data of its own */
    } else if (kind == K_FILE) {
        la_int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
        x->total += size > 0 ? (uint64_t)size : 0;
        if (x->max_total && x->total > x->max_total) {
            sm_err_set(err, SM_E_LIMIT,
                       "'%s' holds more than the limit of %llu bytes (at entry "
                       "'%s')",
                       x->path, (unsigned long long)x->max_total, raw);
            goto out;
        }
    }
    /* write_disk would chdir() down a path this long, and the working
     * directory belongs to every thread of the process */
    full = sm_path_join(x->root, rel);
    fullhl = hl ? sm_path_join(x->root, hl) : NULL;
    if (strlen(full) >= PATH_MAX || (fullhl && strlen(fullhl) >= PATH_MAX)) {
        snprintf(whybuf, sizeof(whybuf),
                 "its path is too long to extract under '%s' (the limit is %d bytes)", x->dest,
                 PATH_MAX - 1);
        refuse(x, raw, whybuf, err);
        goto out;
    }
    keep_user_xattrs(e, rel);
    archive_entry_set_pathname(e, full);
    if (is_meta) {
        rc = imp_metadata(x, e, err);
        goto out;
    }
    x->present |= 1u << p;
    if (fullhl)
        archive_entry_set_hardlink(e, fullhl);
    if (archive_write_header(x->out, e) != ARCHIVE_OK) {
        imp_write_err(x, rel, err);
        goto out;
    }
    if (kind == K_FILE) {
        sha256_ctx *sha = parts[p].tree ? NULL : x->sha;
        if (sha)
            sha256_reset(sha);
        if (imp_copy(x, rel, sha, err) < 0)
            goto out;
        if (sha) {
            unsigned char md[32];
            sha256_final(sha, md);
            sm_hex(x->hex[p], md, 32);
        }
    }
    if (archive_write_finish_entry(x->out) != ARCHIVE_OK) {
        imp_write_err(x, rel, err);
        goto out;
    }
    rc = 0;
out:
    free(rel);
    free(hl);
    free(full);
    free(fullhl);
    free(top);
    return rc;
}

/* The checksums of metadata.json against what was extracted. */
static int imp_verify(imp_ctx *x, sm_err *err)
{
    json_t *sums = json_object_get(x->meta, "checksums");

    for (int p = 0; p < NPARTS; p++) {
        json_t *v = json_object_get(sums, parts[p].key);
        int present = (x->present >> p) & 1;
        const char *want;
        char hex[65];

        if (v && !present)
            return sm_err_set(err, SM_E_CORRUPT, "'%s' lacks %s, which metadata.json lists",
                              x->path, parts[p].label);
        if (!v && present)
            return sm_err_set(err, SM_E_CORRUPT,
                              "'%s' holds %s, which metadata.json does not list in its checksums",
                              x->path, parts[p].label);
        if (!v)
            continue;
        want = json_string_value(v);
        if (parts[p].tree) {
            char *dir = sm_path_join(x->root, parts[p].entry);
            int r2 = archive_dir_digest(dir, hex, err);
            free(dir);
            if (r2 < 0)
                return -1;
        } else {
            memcpy(hex, x->hex[p], sizeof(hex));
        }
        if (strcmp(want + 7, hex) != 0)
            return sm_err_set(err, SM_E_CORRUPT,
                              "checksum mismatch for %s: metadata.json says %s, the archive "
                              "holds sha256:%s",
                              parts[p].label, want, hex);
    }
    return 0;
}

static int check_dest(const char *dest, char **root, sm_err *err)
{
    struct stat sb;
    DIR *d;
    struct dirent *de;
    int empty = 1;

    if (stat(dest, &sb) != 0) {
        if (errno == ENOENT)
            return sm_err_set(err, SM_E_NOTFOUND, "import destination '%s' does not exist", dest);
        return sm_err_sys(err, SM_E_IO, "cannot stat '%s'", dest);
    }
    if (!S_ISDIR(sb.st_mode))
        return sm_err_set(err, SM_E_INVALID, "import destination '%s' is not a directory", dest);
    if (sb.st_uid != geteuid() || (sb.st_mode & 077)) {
        sm_err_set(err, SM_E_INVALID,
                   "import destination '%s' is not private (mode %04o, owner %u)", dest,
                   (unsigned)(sb.st_mode & 07777), (unsigned)sb.st_uid);
        return sm_err_hint(err, "Create it with mode 0700, owned by the user who imports "
                                "(mkdir -m 700).");
    }
    d = opendir(dest);
    if (!d)
        return sm_err_sys(err, SM_E_IO, "cannot read '%s'", dest);
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            empty = 0;
    closedir(d);
    if (!empty) {
        sm_err_set(err, SM_E_EXISTS, "import destination '%s' is not empty", dest);
        return sm_err_hint(err, "Import into a new, empty directory.");
    }
    /* write_disk resolves names from the working directory, which a
     * threaded process cannot change: entries get an absolute prefix,
     * free of symlinks (SECURE_SYMLINKS would refuse them) */
    *root = realpath(dest, NULL);
    if (!*root)
        return sm_err_sys(err, SM_E_IO, "cannot resolve '%s'", dest);
    return 0;
}

/* What the first bytes say: 0 plain, 1 OpenPGP (passphrase), -1 refused. */
static int sniff(imp_ctx *x, int fd, sm_err *err)
{
    unsigned char head[32];
    ssize_t got;

    do
        got = pread(fd, head, sizeof(head), 0);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        return sm_err_sys(err, SM_E_IO, "cannot read '%s'", x->path);
    if (got == 0)
        return sm_err_set(err, SM_E_INVALID, MSG_NOT_OURS, x->path, "it is empty");
    /* a symmetric-key packet (tag 3) opens a passphrase-encrypted message,
     * in the old (0x8c-0x8f) or the new (0xc3) packet format */
    if ((head[0] >= 0x8c && head[0] <= 0x8f) || head[0] == 0xc3 ||
        ((size_t)got >= 27 && !memcmp(head, "-----BEGIN PGP MESSAGE-----", 27)))
        return 1;
    if ((head[0] >= 0x84 && head[0] <= 0x87) || head[0] == 0xc1) {
        sm_err_set(err, SM_E_INVALID, "'%s' is encrypted to a public key, not with a passphrase",
                   x->path);
        return sm_err_hint(err, "Decrypt it with gpg first (gpg --decrypt -o backup.tar.gz "
                                "FILE), then import the result.");
    }
    return 0;
}

int archive_import(const char *path, const char *dest, const char *passphrase,
                   const archive_import_limits *lim, json_t **metadata, sm_err *err)
{
    imp_ctx x;
    locale_guard lg = {(locale_t)0, (locale_t)0};
    struct archive_entry *e;
    int fd = -1, rfd, enc, rc = -1, r2;
    /* not NO_OVERWRITE: it keeps the mode of a directory created before
     * its own entry arrives; dest starts empty and duplicates are refused
     * before write_disk sees them */
    int flags = ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR;

    memset(&x, 0, sizeof(x));
    gpg_init(&x.gpg);
    x.path = path;
    x.dest = dest;
    x.max_total = lim ? lim->max_total_bytes : 0;
    x.max_entries = lim && lim->max_entries ? lim->max_entries : DEFAULT_MAX_ENTRIES;
    x.max_meta = lim && lim->max_metadata_bytes ? lim->max_metadata_bytes : DEFAULT_MAX_METADATA;
    if (metadata)
        *metadata = NULL;
    if (check_dest(dest, &x.root, err) < 0)
        goto out;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sm_err_sys(err, errno == ENOENT ? SM_E_NOTFOUND : SM_E_IO, "cannot open '%s'", path);
        goto out;
    }
    enc = sniff(&x, fd, err);
    if (enc < 0)
        goto out;
    x.buf = sm_xmalloc(COPY_BUF);
    x.sha = sha256_new();
    locale_enter(&lg);
    rfd = fd;
    if (enc) {
        if (!passphrase) {
            sm_err_set(err, SM_E_BADKEY, "'%s' is encrypted", path);
            sm_err_hint(err, "Give the passphrase the archive was exported with.");
            goto out;
        }
        if (gpg_start(&x.gpg, 1, passphrase, fd, err) < 0)
            goto out;
        rfd = x.gpg.out_r;
    }

    x.in = archive_read_new();
    x.out = archive_write_disk_new();
    if (!x.in || !x.out) {
        sm_err_set(err, SM_E_INTERNAL, "cannot set up libarchive");
        goto out;
    }
    /* the compressions we name, built in: support_filter_all would also
     * run external programs (lrzip, lzop, grzip) on untrusted input */
    archive_read_support_filter_gzip(x.in);
    archive_read_support_filter_bzip2(x.in);
    archive_read_support_filter_xz(x.in);
    archive_read_support_filter_zstd(x.in);
    archive_read_support_format_tar(x.in);
    if (geteuid() == 0)
        flags |= ARCHIVE_EXTRACT_OWNER;
    archive_write_disk_set_options(x.out, flags);
    if (archive_read_open_fd(x.in, rfd, 64 * 1024) != ARCHIVE_OK) {
        imp_read_fail(&x, err);
        goto out;
    }
    for (;;) {
        r2 = archive_read_next_header(x.in, &e);
        if (r2 == ARCHIVE_EOF)
            break;
        if (r2 < ARCHIVE_WARN) {
            imp_read_fail(&x, err);
            goto out;
        }
        if (++x.entries > x.max_entries) {
            sm_err_set(err, SM_E_LIMIT, "'%s' has more than the limit of %llu entries", path,
                       (unsigned long long)x.max_entries);
            goto out;
        }
        if (imp_entry(&x, e, err) < 0)
            goto out;
    }
    if (x.gpg.pid > 0) {
        int st;
        drain(x.gpg.out_r, x.buf);
        st = gpg_wait(&x.gpg, 0);
        if (gpg_check(&x.gpg, 1, st, path, err) < 0)
            goto out;
    }
    if (!x.meta) {
        sm_err_set(err, SM_E_INVALID, MSG_NOT_OURS, path, "it holds no metadata.json");
        goto out;
    }
    /* directories get their modes and times now */
    if (archive_write_close(x.out) != ARCHIVE_OK) {
        imp_write_err(&x, "directories", err);
        goto out;
    }
    if (imp_verify(&x, err) < 0)
        goto out;
    if (metadata) {
        *metadata = x.meta;
        x.meta = NULL;
    }
    rc = 0;
out:
    if (x.in)
        archive_read_free(x.in);
    if (x.out)
        archive_write_free(x.out);
    gpg_cleanup(&x.gpg);
    locale_leave(&lg);
    if (fd >= 0)
        close(fd);
    pmap_free(&x.seen);
    json_decref(x.meta);
    sha256_free(x.sha);
    free(x.buf);
    free(x.root);
    return rc;
}
