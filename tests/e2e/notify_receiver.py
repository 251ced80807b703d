#!/usr/bin/python3
"""Receivers for the notification tests.

    notify_receiver.py DIR [--fail N] [--status CODE] [--retry-after S]
    notify_receiver.py DIR --smtp PORT [--starttls | --implicit-tls] [--cert C --key K]
                           [--auth USER:PASSWORD]

Listens on 127.0.0.1 on a free port, which it writes to DIR/port once it
accepts connections. Every request is appended to DIR/requests.jsonl as one
JSON object: {"n", "time", "method", "path", "headers" (lower-case names),
"body" (text), "status" (what it answered)}. The first N requests (every
request with N = -1) get CODE (default 500), with a Retry-After header when
--retry-after is given; the others get 200. (Python stdlib only.)

With --smtp it is an SMTP server instead (python3-aiosmtpd) on 127.0.0.1:PORT
that stores every message as a file in the maildir DIR (DIR/new), offering
STARTTLS (--starttls) or speaking TLS from the start (--implicit-tls) with the
given certificate, and requiring AUTH with USER:PASSWORD (--auth). It writes
DIR/port once it answers.
"""
import argparse
import json
import os
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--fail", type=int, default=0)
    ap.add_argument("--status", type=int, default=500)
    ap.add_argument("--retry-after", type=int, default=None)
    ap.add_argument("--smtp", type=int, default=None)
    ap.add_argument("--starttls", action="store_true")
    ap.add_argument("--implicit-tls", action="store_true")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--auth")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    if args.smtp is not None:
        return smtp(args)
    log_path = os.path.join(args.dir, "requests.jsonl")
    state = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            state["n"] += 1
            n = state["n"]
            failing = args.fail < 0 or n <= args.fail
            status = args.status if failing else 200
            rec = {
                "n": n,
                "time": time.time(),
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
                "status": status,
            }
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
            answer = (b"receiver says no" if failing else b"ok")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            if failing and args.retry_after is not None:
                self.send_header("Retry-After", str(args.retry_after))
            self.end_headers()
            self.wfile.write(answer)

        do_PUT = do_POST
        do_GET = do_POST

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), Handler)
    tmp = os.path.join(args.dir, "port.tmp")
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, os.path.join(args.dir, "port"))
    srv.serve_forever()


def smtp(args):
    import signal
    import ssl
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Mailbox
    from aiosmtpd.smtp import AuthResult

    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(args.dir, sub), exist_ok=True)
    kwargs = {}
    ctx = None
    if args.starttls or args.implicit_tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
    if args.starttls:
        kwargs.update(tls_context=ctx, require_starttls=True)
    if args.implicit_tls:
        kwargs.update(ssl_context=ctx)
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (getattr(auth_data, "login", b"") == user.encode()
                  and getattr(auth_data, "password", b"") == password.encode())
            return AuthResult(success=ok, handled=False)

        kwargs.update(authenticator=authenticator, auth_required=True,
                      auth_require_tls=bool(ctx))
    ctl = Controller(Mailbox(args.dir), hostname="127.0.0.1", port=args.smtp, **kwargs)
    ctl.start()
    tmp = os.path.join(args.dir, "port.tmp")
    with open(tmp, "w") as f:
        f.write(str(args.smtp))
    os.rename(tmp, os.path.join(args.dir, "port"))
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    ctl.stop()


if __name__ == "__main__":
    main()
