#include "cli/output.h"
#include "cli/env.h"

#include "core/buf.h"
#include "core/fsutil.h"
#include "core/mem.h"
#include "core/util.h"
#include "job/ops.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile sig_atomic_t cli_cancel;

static void on_signal(int sig)
{
    (void)sig;
    cli_cancel = 1;
}

void cli_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int cli_fail(const sm_err *err)
{
    fprintf(stderr, "supamanager: error: %s\n", err->msg[0] ? err->msg : "unknown error");
    if (err->hint[0])
        fprintf(stderr, "hint: %s\n", err->hint);
    return sm_err_exit_code(err) ? sm_err_exit_code(err) : 1;
}

int cli_usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "supamanager: error: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nhint: run `supamanager help` for usage.\n");
    return 2;
}

void cli_print_json(json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
}

void cli_progress_init(cli_progress *p, int force_off)
{
    memset(p, 0, sizeof(*p));
    p->enabled = !force_off && isatty(STDERR_FILENO);
    p->started = sm_mono();
}

static void fmt_eta(char *out, size_t cap, double s)
{
    long v = (long)(s + 0.5);
    if (v >= 3600)
        snprintf(out, cap, "%ld:%02ld:%02ld", v / 3600, v / 60 % 60, v % 60);
    else
        snprintf(out, cap, "%ld:%02ld", v / 60, v % 60);
}

void cli_progress_cb(void *ud, const repo_progress *rp)
{
    cli_progress *p = ud;
    double now = sm_mono(), el = now - p->started, rate;
    char done[32], rate_s[32], eta[32] = "?";
    int pct = -1, width = 30;

    if (!p->enabled || now - p->last_draw < 0.1)
        return;
    p->last_draw = now;
    rate = el > 0 ? (double)rp->bytes_done / el : 0;
    sm_human_bytes(done, sizeof(done), rp->bytes_done);
    sm_human_bytes(rate_s, sizeof(rate_s), (uint64_t)rate);
    if (rp->bytes_total > 0) {
        pct = (int)(100.0 * (double)rp->bytes_done / (double)rp->bytes_total);
        if (pct > 100)
            pct = 100;
        if (rate > 0 && rp->bytes_total > rp->bytes_done)
            fmt_eta(eta, sizeof(eta), (double)(rp->bytes_total - rp->bytes_done) / rate);
        else if (rp->bytes_done >= rp->bytes_total)
            snprintf(eta, sizeof(eta), "0:00");
    }
    if (pct >= 0) {
        char bar[64];
        int fill = pct * width / 100;
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r%s [%s] %3d%% %s %s/s ETA %s   ", rp->phase ? rp->phase : "", bar, pct,
                done, rate_s, eta);
    } else {
        fprintf(stderr, "\r%s %s %s %s/s   ", rp->phase ? rp->phase : "",
                rp->stream ? rp->stream : "", done, rate_s);
    }
    p->drawn = 1;
}

void cli_progress_done(cli_progress *p)
{
    if (p->enabled && p->drawn)
        fprintf(stderr, "\r\033[K");
    p->drawn = 0;
}

char *cli_secret(const char *secret_file, const char *env_name, sm_err *err)
{
    const char *e;

    if (secret_file) {
        sm_buf b = SM_BUF_INIT;
        char *nl;
        if (sm_read_file(secret_file, &b, 65536, 0, err) < 0) {
            sm_buf_release(&b);
            return NULL;
        }
        nl = memchr(b.data ? (char *)b.data : "", '\n', b.len);
        if (nl)
            *nl = '\0';
        if (!b.data || !b.data[0]) {
            sm_buf_release(&b);
            sm_err_set(err, SM_E_BADKEY, "secret file '%s' is empty", secret_file);
            return NULL;
        }
        return sm_buf_detach(&b, NULL);
    }
    e = getenv(env_name);
    if (e && *e)
        return sm_xstrdup(e);
    return NULL;
}

const char *cli_home(void)
{
    const char *h = getenv("SUPAMANAGER_HOME");
    return h && *h ? h : "/var/lib/supamanager";
}

int cli_confirm(const char *question, const char *flag, sm_err *err)
{
    char line[32];

    if (!isatty(STDIN_FILENO) || !isatty(STDERR_FILENO)) {
        sm_err_set(err, SM_E_USAGE, "%s: no terminal to ask for confirmation", question);
        return sm_err_hint(err, "Pass %s to confirm.", flag);
    }
    fprintf(stderr, "%s [y/N] ", question);
    fflush(stderr);
    if (!fgets(line, sizeof(line), stdin))
        return 0;
    return line[0] == 'y' || line[0] == 'Y';
}

void cli_ops_event(void *ud, const struct ops_event *e)
{
    cli_progress *p = ud;
    double now = sm_mono();
    char done[32], rate[32], eta[32] = "";
    int width = 30;

    if (!p->enabled || (now - p->last_draw < 0.1 && e->progress < 100))
        return;
    p->last_draw = now;
    sm_human_bytes(done, sizeof(done), e->bytes_done);
    sm_human_bytes(rate, sizeof(rate), (uint64_t)(e->rate > 0 ? e->rate : 0));
    if (e->eta_s >= 0) {
        long v = (long)(e->eta_s + 0.5);
        snprintf(eta, sizeof(eta), " ETA %ld:%02ld", v / 60, v % 60);
    }
    if (e->progress >= 0) {
        char bar[64];
        int fill = (int)(e->progress * width / 100);
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r\033[K%-16s [%s] %3.0f%% %s %s/s%s", e->phase ? e->phase : "", bar,
                e->progress, done, rate, eta);
    } else {
        fprintf(stderr, "\r\033[K%s ...", e->phase ? e->phase : "");
    }
    p->drawn = 1;
}

int cli_env_open(cli_env *e, int needed, int quiet, sm_err *err)
{
    memset(e, 0, sizeof(*e));
    if (catalog_open(&e->cat, cli_home(), err) < 0)
        return -1;
    e->secret = cli_secret(NULL, "ENCRYPTION_SECRET", err);
    if (!e->secret && needed) {
        if (err->code == SM_OK) {
            sm_err_set(err, SM_E_BADKEY, "ENCRYPTION_SECRET is not set");
            sm_err_hint(err, "Set ENCRYPTION_SECRET: it encrypts every project's backups; keep a "
                             "copy somewhere safe.");
        }
        return -1;
    }
    ops_ctx_init(&e->o, e->cat, e->secret);
    cli_install_signals();
    e->o.cancel = &cli_cancel;
    cli_progress_init(&e->prog, quiet);
    e->o.event = cli_ops_event;
    e->o.event_ud = &e->prog;
    return 0;
}

void cli_env_close(cli_env *e)
{
    cli_progress_done(&e->prog);
    catalog_close(e->cat);
    if (e->secret) {
        sm_wipe(e->secret, strlen(e->secret));
        free(e->secret);
    }
}
