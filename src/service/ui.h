/* The web UI: static files from web/, embedded into the binary at build time
 * (meson.build, embed_inputs) and served by `supamanager serve`:
 *
 *   GET /            index.html
 *   GET /ui/{file}   the UI's scripts, styles and icon (a fixed list; others 404)
 *
 * The UI is a client of the public API only (/platform/..., documented in
 * /openapi.json); these routes are not part of that API, so their handlers are
 * named ui_* and the tests that compare the API routes with openapi.json skip
 * them. Responses carry the service's security headers (a Content-Security-
 * Policy that allows only this origin's own scripts and styles), an ETag and
 * "Cache-Control: no-cache": browsers keep the files and revalidate them, and
 * an unchanged file answers 304. */
#ifndef SM_SERVICE_UI_H
#define SM_SERVICE_UI_H

#include "service/http.h"

/* GET / : the UI's page. Public (the page holds no data; the API asks for a token). */
int ui_index(http_req *rq, void *ud);
/* GET /ui/{file} : one of the UI's files; an unknown name answers 404. Public. */
int ui_asset(http_req *rq, void *ud);

#endif
