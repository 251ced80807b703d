#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of an S3 server, for tests (standard library only).

usage: s3proxy.py --listen PORT --upstream http://127.0.0.1:PORT --log FILE
                  [--rate 0.25] [--seed N] [--faults drop,500,503,slowdown,429,truncate,reset-after,
                  corrupt,stall] [--stall-s 3] [--forbid] [--forbid-match REGEX] [--delay-ms N]
                  [--log-headers NAME,NAME]

For a share (--rate, picked at random) of the requests it injects a fault, taking the
faults in turn so that every kind shows up:
  drop         closes the connection before forwarding (the server never sees the request)
  reset-after  forwards the request, then closes the connection without answering (the server
               did the work; the client must retry safely)
  500 / 503    answers InternalError / ServiceUnavailable with an S3 error body
  slowdown     answers 503 SlowDown
  429          answers 429 TooManyRequests
  truncate     forwards, then sends the answer's headers and only half of its body
  corrupt      on a whole-object GET (no Range, no query) or a listing answered 200: flips the
               body's first byte, keeping its length (the client's MD5 check, or the XML
               parser, must tell); else no fault
  stall        holds the request --stall-s seconds without a byte, then closes
--forbid answers every request 403 AccessDenied (a permanent refusal); --forbid-match
only the requests whose "METHOD PATH" matches the regular expression.
--log-headers appends those request headers to each log line ("name=value").
Each log line ends with "ev=A-B": the request's arrival and completion on one event
counter, so overlapping (parallel) requests can be told without clocks.
--delay-ms slows every request down (to catch a client mid-upload).
The Host header is passed through unchanged, so SigV4 signatures stay valid.
Each request is logged to --log as "METHOD PATH -> STATUS FAULT"; the log's last line
"STATS requests=N faults=M" is rewritten as it goes (see the .stats file).
"""
import argparse, http.client, http.server, random, re, socket, threading, time, urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("--listen", type=int, required=True)
ap.add_argument("--upstream", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--rate", type=float, default=0.25)
ap.add_argument("--seed", type=int, default=None)
ap.add_argument("--faults", default="drop,500,503,slowdown,429,truncate,reset-after")
ap.add_argument("--stall-s", type=float, default=3.0)
ap.add_argument("--forbid", action="store_true")
ap.add_argument("--forbid-match", default=None)
ap.add_argument("--log-headers", default="")
ap.add_argument("--delay-ms", type=int, default=0)
args = ap.parse_args()
up = urllib.parse.urlparse(args.upstream)
rnd = random.Random(args.seed)
faults = [f for f in args.faults.split(",") if f]
forbid_re = re.compile(args.forbid_match) if args.forbid_match else None
log_headers = [h.strip().lower() for h in args.log_headers.split(",") if h.strip()]
lock = threading.Lock()
stats = {"requests": 0, "faults": 0, "events": 0}
turn = [0]
logf = open(args.log, "a", buffering=1)

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade"}


def error_xml(code, msg):
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code><Message>%s</Message>"
            "</Error>" % (code, msg)).encode()


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def note(self, status, fault):
        with lock:
            stats["requests"] += 1
            if fault:
                stats["faults"] += 1
            extra = "".join(" %s=%s" % (h, self.headers.get(h, "")) for h in log_headers)
            stats["events"] += 1
            extra += " ev=%d-%d" % (self.arrived, stats["events"])
            logf.write("%s %s -> %s %s%s\n" % (self.command, self.path, status, fault or "-", extra))
            with open(args.log + ".stats", "w") as f:
                f.write("requests=%d faults=%d\n" % (stats["requests"], stats["faults"]))

    def reply(self, status, body, fault):
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.note(status, fault)

    def cut(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def handle_any(self):
        with lock:
            stats["events"] += 1
            self.arrived = stats["events"]
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if args.delay_ms:
            time.sleep(args.delay_ms / 1000.0)
        if args.forbid or (forbid_re and forbid_re.search("%s %s" % (self.command, self.path))):
            return self.reply(403, error_xml("AccessDenied", "Access Denied"), "forbid")
        with lock:
            fault = None
            if faults and rnd.random() < args.rate:
                fault = faults[turn[0] % len(faults)]
                turn[0] += 1
        if fault == "drop":
            self.note(0, fault)
            return self.cut()
        if fault == "500":
            return self.reply(500, error_xml("InternalError", "injected"), fault)
        if fault == "503":
            return self.reply(503, error_xml("ServiceUnavailable", "injected"), fault)
        if fault == "slowdown":
            return self.reply(503, error_xml("SlowDown", "Please reduce your request rate."), fault)
        if fault == "429":
            return self.reply(429, error_xml("TooManyRequests", "injected"), fault)
        if fault == "stall":
            time.sleep(args.stall_s)
            self.note(0, fault)
            return self.cut()
        c = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
        c.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers.items():
            if k.lower() not in HOP:
                c.putheader(k, v)
        if body or self.command in ("PUT", "POST"):
            if "content-length" not in (k.lower() for k in self.headers.keys()):
                c.putheader("Content-Length", str(len(body)))
        c.endheaders(body if body else None)
        r = c.getresponse()
        data = r.read() if self.command != "HEAD" else b""
        c.close()
        if fault == "reset-after":
            self.note(r.status, fault)
            return self.cut()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        length = r.getheader("Content-Length")
        if self.command == "HEAD" and length is not None:
            self.send_header("Content-Length", length)
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault == "corrupt":
            whole = "?" not in self.path and "range" not in (k.lower() for k in self.headers.keys())
            listing = "list-type=2" in self.path
            if self.command == "GET" and r.status == 200 and (whole or listing) and data:
                data = bytes([data[0] ^ 0x01]) + data[1:]
            else:
                fault = None
        if fault == "truncate" and len(data) > 1:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.note(r.status, fault)
            return self.cut()
        if data:
            self.wfile.write(data)
        self.note(r.status, fault)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


S(("127.0.0.1", args.listen), H).serve_forever()
