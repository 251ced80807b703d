/* The web UI's files, served from the copies embedded at build time. */
#include "service/ui.h"

#include "embedded.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct ui_file {
    const char *name; /* as in /ui/{name} */
    const unsigned char *data;
    const size_t *len;
    const char *ctype;
} ui_file;

/* The only files served: a name not listed here is a 404, whatever the path. */
static const ui_file files[] = {
    {"index.html", sm_ui_index_html, &sm_ui_index_html_len, "text/html; charset=utf-8"},
    {"style.css", sm_ui_style_css, &sm_ui_style_css_len, "text/css; charset=utf-8"},
    {"app.js", sm_ui_app_js, &sm_ui_app_js_len, "text/javascript; charset=utf-8"},
    {"api.js", sm_ui_api_js, &sm_ui_api_js_len, "text/javascript; charset=utf-8"},
    {"chart.js", sm_ui_chart_js, &sm_ui_chart_js_len, "text/javascript; charset=utf-8"},
    {"favicon.svg", sm_ui_favicon_svg, &sm_ui_favicon_svg_len, "image/svg+xml"},
};
#define NFILES (sizeof(files) / sizeof(files[0]))

/* ETags: a hash of each file's bytes, computed once. */
static char etags[NFILES][24];
static pthread_once_t etags_once = PTHREAD_ONCE_INIT;

static void etags_init(void)
{
    for (size_t i = 0; i < NFILES; i++) {
        uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 */
        for (size_t k = 0; k < *files[i].len; k++) {
            h ^= files[i].data[k];
            h *= 0x100000001b3ULL;
        }
        snprintf(etags[i], sizeof(etags[i]), "\"%016llx\"", (unsigned long long)h);
    }
}

/* Does If-None-Match (a list of tags, or *) name this tag? */
static int etag_matches(const char *inm, const char *tag)
{
    size_t tl = strlen(tag);

    if (!inm)
        return 0;
    for (const char *p = inm; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!strncmp(p, "W/", 2))
            p += 2;
        if (*p == '*' || (!strncmp(p, tag, tl) && (p[tl] == '\0' || p[tl] == ',' || p[tl] == ' ')))
            return 1;
        p += strcspn(p, ",");
    }
    return 0;
}

static int serve(http_req *rq, size_t i)
{
    pthread_once(&etags_once, etags_init);
    http_add_header(rq, "ETag", etags[i]);
    /* kept by the browser, revalidated on every use: a new binary's files are seen at once */
    http_add_header(rq, "Cache-Control", "no-cache");
    http_add_header(rq, "Cross-Origin-Opener-Policy", "same-origin");
    http_add_header(rq, "Cross-Origin-Resource-Policy", "same-origin");
    if (etag_matches(http_header(rq, "If-None-Match"), etags[i]))
        return http_static(rq, 304, NULL, "", 0);
    return http_static(rq, 200, files[i].ctype, files[i].data, *files[i].len);
}

int ui_index(http_req *rq, void *ud)
{
    (void)ud;
    return serve(rq, 0);
}

int ui_asset(http_req *rq, void *ud)
{
    const char *name = http_param(rq, "file");

    (void)ud;
    for (size_t i = 0; i < NFILES; i++)
        if (name && !strcmp(name, files[i].name))
            return serve(rq, i);
    return http_error(rq, 404, "not_found", "no such file of the web UI: '%.100s'",
                      name ? name : "");
}
