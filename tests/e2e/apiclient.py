#!/usr/bin/python3
"""A small HTTP client for end-to-end tests of `supamanager serve`
(standard library only): requests with JSON, tokens, SSE, multipart."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import time
import uuid


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(secret, role="authenticated", sub=None, exp_in=3600, alg="HS256", nbf=None, raw_header=None):
    """A JWT as Supabase issues them (HS256 over JWT_SECRET)."""
    now = int(time.time())
    header = raw_header or {"alg": alg, "typ": "JWT"}
    payload = {"role": role, "iat": now, "exp": now + exp_in}
    if sub:
        payload["sub"] = sub
    if nbf is not None:
        payload["nbf"] = nbf
    signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    if alg == "none":
        return signing + "."
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    sig = hmac.new(secret.encode(), signing.encode(), digest).digest()
    return signing + "." + b64url(sig)


class Api:
    def __init__(self, port, tok=None):
        self.port = port
        self.tok = tok

    def as_(self, tok):
        return Api(self.port, tok)

    def req(self, method, path, body=None, headers=None, raw=None, content_type=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        h = dict(headers or {})
        if self.tok:
            h["Authorization"] = "Bearer " + self.tok
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        if content_type:
            h["Content-Type"] = content_type
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        payload = r.read()
        c.close()
        try:
            doc = json.loads(payload) if payload else None
        except ValueError:
            doc = None
        return r.status, doc, payload, dict((k.lower(), v) for k, v in r.getheaders())

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.req("POST", path, body=body, **kw)

    def put(self, path, body=None, **kw):
        return self.req("PUT", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.req("DELETE", path, **kw)

    def events(self, path, timeout=300):
        """Reads a Server-Sent Events stream until it ends: [(event, data)]."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Accept": "text/event-stream"}
        if self.tok:
            h["Authorization"] = "Bearer " + self.tok
        c.request("GET", path, headers=h)
        r = c.getresponse()
        out, ev, data = [], None, []
        if r.status != 200 or not (r.getheader("Content-Type") or "").startswith("text/event-stream"):
            body = r.read()
            c.close()
            try:
                return r.status, json.loads(body or b"null")
            except ValueError:
                return r.status, body
        while True:
            line = r.fp.readline()
            if not line:
                break
            line = line.decode().rstrip("\r\n")
            if line.startswith(":"):
                continue
            if line == "":
                if ev or data:
                    out.append((ev or "message", "\n".join(data)))
                ev, data = None, []
                continue
            k, _, v = line.partition(":")
            v = v[1:] if v.startswith(" ") else v
            if k == "event":
                ev = v
            elif k == "data":
                data.append(v)
        c.close()
        return r.status, out

    def upload(self, path, fields, filename, filedata):
        boundary = uuid.uuid4().hex
        parts = []
        for k, v in fields.items():
            parts.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (boundary, k, v)).encode())
        parts.append(("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
                      "Content-Type: application/octet-stream\r\n\r\n" % (boundary, filename)).encode())
        parts.append(filedata)
        parts.append(("\r\n--%s--\r\n" % boundary).encode())
        return self.req("POST", path, raw=b"".join(parts),
                        content_type="multipart/form-data; boundary=" + boundary)

    def wait_job(self, job_id, timeout=300):
        t0 = time.time()
        while time.time() - t0 < timeout:
            st, doc, _, _ = self.get("/platform/jobs/" + job_id)
            if st == 200 and doc["status"] not in ("QUEUED", "RUNNING"):
                return doc
            time.sleep(0.2)
        raise AssertionError("job %s did not finish" % job_id)

    def wait_backup(self, project, backup, timeout=300):
        t0 = time.time()
        while time.time() - t0 < timeout:
            st, doc, _, _ = self.get("/platform/projects/%s/backups/%s" % (project, backup))
            if st == 200 and doc["status"] != "CREATING":
                return doc
            time.sleep(0.2)
        raise AssertionError("backup %s did not finish" % backup)
