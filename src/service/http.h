/* The HTTP layer of `supamanager serve`, on libmicrohttpd: routing with path
 * parameters, JSON requests and responses, JSON errors, streamed file
 * responses with Range, Server-Sent Events, uploads streamed to disk, a
 * structured access log, and security headers on every response.
 *
 *   static int get_backup(http_req *rq, void *ud) {
 *       const char *id = http_param(rq, "backupID");
 *       ...
 *       return http_json(rq, 200, doc);            // takes the reference
 *   }
 *   http_server *s;
 *   http_route routes[] = {
 *       {"GET", "/platform/projects/{id}/backups/{backupID}", get_backup, 0},
 *       {NULL}};
 *   http_server_start(&s, &(http_config){.listen = "127.0.0.1:8080"}, routes, ud, &err);
 *   ...
 *   http_server_stop(s);
 *
 * Handlers run on libmicrohttpd's threads (one per connection), may block
 * (SSE, streaming) and must be thread-safe. A handler returns what one of the
 * http_* response functions returned (0 on success).
 */
#ifndef SM_SERVICE_HTTP_H
#define SM_SERVICE_HTTP_H

#include "core/err.h"

#include <jansson.h>
#include <stdint.h>

typedef struct http_server http_server;
typedef struct http_req http_req;

typedef int (*http_handler)(http_req *rq, void *ud);

/* Upload routes (flag HTTP_UPLOAD) receive their body streamed to a file:
 * see http_upload_path(). Other routes get the body in memory (JSON, up to
 * config.max_body). */
#define HTTP_UPLOAD 1
/* Routes that do their own authorization (signed download links, health). */
#define HTTP_PUBLIC 2

typedef struct http_route {
    const char *method;  /* "GET", "POST", "PUT", "DELETE" */
    const char *pattern; /* "/platform/projects/{id}/backups"; {name} matches one segment */
    http_handler fn;
    int flags;
} http_route;

typedef struct http_config {
    const char *listen;         /* "ADDR:PORT" (default 127.0.0.1:8080) */
    size_t max_body;            /* JSON bodies (default 1 MiB) */
    uint64_t max_upload;        /* uploads (default 10 GiB); beyond: 413 */
    const char *upload_dir;     /* where uploads are spooled (private) */
    unsigned threads;           /* unused: one thread per connection */
    int access_log;             /* JSON lines on stderr: 0 (default) or >0 on, <0 off */
    unsigned sse_keepalive_ms;  /* ":keepalive" comment on idle event streams (default 15000) */
} http_config;

/* Starts serving. routes is borrowed (static) and ends with {NULL}. An
 * unmatched path gives 404, a matched path with another method 405 (with
 * Allow). */
int http_server_start(http_server **out, const http_config *cfg, const http_route *routes,
                      void *ud, sm_err *err);
/* The port actually bound (useful with port 0). */
unsigned http_server_port(const http_server *s);
/* Stops accepting, ends SSE streams, waits for handlers to return. */
void http_server_stop(http_server *s);

/* ---- the request ---- */

const char *http_method(const http_req *rq);
const char *http_path(const http_req *rq);            /* decoded, without the query */
const char *http_param(const http_req *rq, const char *name); /* from the pattern; NULL if absent */
const char *http_query(const http_req *rq, const char *name); /* NULL if absent */
const char *http_header(const http_req *rq, const char *name);
const char *http_request_id(const http_req *rq);
/* The parsed JSON body; on a malformed body or wrong content type the
 * request was already answered with 400/415 and this returns NULL with
 * *answered set. A missing body gives an empty object. Borrowed. */
json_t *http_body_json(http_req *rq, int *answered);
/* For HTTP_UPLOAD routes: the multipart field `file` was streamed to this
 * path (a 0600 file in config.upload_dir, deleted after the handler returns
 * unless it renames it), its original file name (untrusted: sanitize it),
 * and the other form fields (at most 32, 64 KiB each). NULL when the request
 * carried no file (the handler answers 400). A file over max_upload, a
 * wrong content type (415) or a malformed form never reach the handler. */
const char *http_upload_path(http_req *rq);
const char *http_upload_filename(http_req *rq);
const char *http_form_field(http_req *rq, const char *name);
/* Identity set by the authorization step (auth.h), for the access log. */
void http_set_user(http_req *rq, const char *who);
void *http_user_data(http_req *rq); /* per-request slot for the app */
void http_set_user_data(http_req *rq, void *p);

/* ---- responses (each returns 0, or -1 if the connection failed) ---- */

/* A JSON string of untrusted text (an error message that quotes a server's
 * answer): invalid UTF-8 becomes '?'; NULL gives null. New reference. */
json_t *http_json_text(const char *s);
/* Sends a JSON document (takes the reference). */
int http_json(http_req *rq, unsigned status, json_t *doc);
/* {"error": code, "message": msg, "request_id": id}; 500s are also logged
 * with the request id; 401 also gets "WWW-Authenticate: Bearer". */
int http_error(http_req *rq, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps an sm_err to a status (not found 404, invalid 400, conflict/locked
 * 409, forbidden 403, auth 401, limit 413, others 500) and sends it. */
int http_error_from(http_req *rq, const sm_err *err);
/* Sends a file with Content-Length, honouring Range (206, 416), with the
 * given content type and download file name (Content-Disposition; NULL for
 * none), an ETag (If-Range honoured) and Last-Modified. A missing file
 * answers 404. The bytes go out with sendfile(). */
int http_file(http_req *rq, const char *path, const char *content_type, const char *filename);
/* Sends a static body (copied). */
int http_static(http_req *rq, unsigned status, const char *content_type, const void *data,
                size_t len);
/* Extra response header for the next response of this request. */
void http_add_header(http_req *rq, const char *name, const char *value);

/* ---- Server-Sent Events ---- */

/* Starts an event stream (200, text/event-stream). Events are then pushed
 * with http_sse_send (thread-safe; from any thread) until the producer calls
 * http_sse_close, the client goes away, or the server stops. The handler
 * returns right after http_sse_begin; the stream lives on. */
typedef struct http_sse http_sse;
int http_sse_begin(http_req *rq, http_sse **out);
/* Returns -1 once the client is gone (then stop sending and close). A quiet
 * stream notices a hang-up within about a second; a client that lets more
 * than 4 MiB of events queue up is dropped. data may hold several lines. */
int http_sse_send(http_sse *s, const char *event, const char *data);
void http_sse_close(http_sse *s);

#endif
