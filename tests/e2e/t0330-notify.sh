#!/bin/bash
# Notifications through `supamanager notify test`: a real e-mail reaches an
# SMTP server (aiosmtpd) with the right headers and a non-ASCII subject that
# decodes; a webhook reaches a receiver with a valid HMAC signature; webhooks
# are retried after 500s under one delivery id and after a 429 as Retry-After
# says, never after a 400; a dead SMTP server fails at once with a clear
# message; bad settings are refused naming the key.
. "$(dirname "$0")/lib.sh"
. "$SOURCE_ROOT/tests/lib/pg.sh" # pg_free_port
PY=/usr/bin/python3
RECEIVER="$SOURCE_ROOT/tests/e2e/notify_receiver.py"
PROJECT='Café-Ünïcödé-проект'
for v in SMTP_URL SMTP_FROM SMTP_USER SMTP_PASSWORD NOTIFY_EMAIL WEBHOOK_URL WEBHOOK_SECRET; do
  unset "SUPAMANAGER_$v"
done

$PY -c 'import aiosmtpd' 2>/dev/null ||
  fail "python3-aiosmtpd is missing (scripts/install-deps.sh --test installs it)"

# the SMTP server: every message becomes a file in $MAIL/new
SMTP_PORT=$(pg_free_port) || fail "no free port"
MAIL=$T/mail
mkdir -p "$MAIL"/{tmp,new,cur}
$PY -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$MAIL" >"$T/smtp.log" 2>&1 &
SMTP_PID=$!
on_exit "kill $SMTP_PID"
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT" && head -c3 <&3 | grep -q 220) 2>/dev/null && break
  kill -0 $SMTP_PID 2>/dev/null || fail "the SMTP server did not start: $(cat "$T/smtp.log")"
  sleep 0.1
done

# start_receiver NAME [receiver options]: a webhook receiver recording into
# $T/NAME; sets RPORT
start_receiver() {
  local name=$1 pid
  shift
  $PY "$RECEIVER" "$T/$name" "$@" >"$T/$name.log" 2>&1 &
  pid=$!
  on_exit "kill $pid"
  for _ in $(seq 100); do
    [ -f "$T/$name/port" ] && break
    kill -0 $pid 2>/dev/null || fail "receiver $name did not start: $(cat "$T/$name.log")"
    sleep 0.1
  done
  RPORT=$(cat "$T/$name/port")
}
requests() { [ -f "$T/$1/requests.jsonl" ] && wc -l <"$T/$1/requests.jsonl" || echo 0; }

# check_hooks NAME SECRET COUNT: COUNT requests, each signed with SECRET over
# "t.body", all with the same delivery id and body, in order
check_hooks() {
  $PY - "$T/$1/requests.jsonl" "$2" "$3" "$PROJECT" <<'PY'
import hashlib, hmac, json, re, sys, time
path, secret, count, project = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
reqs = [json.loads(l) for l in open(path, encoding="utf-8")]
assert len(reqs) == count, ("requests", len(reqs), reqs)
ids = set()
for r in reqs:
    h = r["headers"]
    assert r["method"] == "POST" and r["path"] == "/hook", r
    assert h["content-type"] == "application/json", h
    assert h["x-supamanager-event"] == "test", h
    m = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", h["x-supamanager-signature"])
    assert m, h["x-supamanager-signature"]
    t = m.group(1)
    want = hmac.new(secret.encode(), (t + "." + r["body"]).encode(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(want, m.group(2)), ("bad signature", r)
    assert abs(int(t) - time.time()) < 600, ("stale timestamp", t)
    body = json.loads(r["body"])
    assert list(body) == ["event", "delivery_id", "sent_at", "project_id", "data"], body
    assert body["event"] == "test" and body["delivery_id"] == h["x-supamanager-delivery"], body
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["sent_at"]), body
    assert body["project_id"] == project, body
    assert body["data"]["message"] == "This is a test notification.", body
    ids.add(body["delivery_id"])
assert len(ids) == 1, ("one delivery id across retries", ids)
assert len({r["body"] for r in reqs}) == 1, "the body changed between retries"
assert [r["n"] for r in reqs] == list(range(1, count + 1)), reqs
assert all(a["time"] <= b["time"] for a, b in zip(reqs, reqs[1:])), "out of order"
PY
}

# ---- e-mail and webhook, both delivered ----
start_receiver ok
OK_URL="http://127.0.0.1:$RPORT/hook"
cat >"$T/full.json" <<EOF
{"listen": "127.0.0.1:1", "notifications": {
  "smtp": {"url": "smtp://127.0.0.1:$SMTP_PORT", "from": "SupaManager Bäckup <backup@example.test>"},
  "email": ["ops@example.test", "dev@example.test"],
  "webhook": {"url": "$OK_URL", "secret": "whsec-e2e-1"},
  "webhook_backoff_ms": 200, "timeout_s": 10}}
EOF
sm notify test --config "$T/full.json" --project "$PROJECT" >"$T/out" 2>"$T/err" ||
  fail "notify test: $(cat "$T/out" "$T/err")"
grep -qxF "email to ops@example.test, dev@example.test: sent" "$T/out" || fail "email line: $(cat "$T/out")"
grep -qxF "webhook $OK_URL: sent (HTTP 200, 1 attempt)" "$T/out" || fail "webhook line: $(cat "$T/out")"
[ "$(ls "$MAIL/new" | wc -l)" = 1 ] || fail "expected one message in the mailbox: $(ls "$MAIL/new")"
$PY - "$MAIL/new/$(ls "$MAIL/new")" "$PROJECT" <<'PY' || fail "the e-mail: $(cat "$MAIL"/new/*)"
import email, email.policy, re, sys
raw = open(sys.argv[1], "rb").read()
project = sys.argv[2]
msg = email.message_from_bytes(raw, policy=email.policy.default)
assert msg["Subject"] == "SupaManager test notification for project " + project, msg["Subject"]
# the raw subject is RFC 2047 encoded (the header itself is ASCII)
raw_subject = re.search(rb"^Subject: (.*(?:\n[ \t].*)*)", raw, re.M).group(1)
assert raw_subject.isascii() and b"=?UTF-8?B?" in raw_subject, raw_subject
frm = msg["From"].addresses[0]
assert (frm.display_name, frm.addr_spec) == ("SupaManager Bäckup", "backup@example.test"), msg["From"]
assert [a.addr_spec for a in msg["To"].addresses] == ["ops@example.test", "dev@example.test"], msg["To"]
assert msg["X-MailFrom"] == "backup@example.test", msg["X-MailFrom"]
assert msg["X-RcptTo"] == "ops@example.test, dev@example.test", msg["X-RcptTo"]
assert msg["Date"].datetime is not None and re.fullmatch(r"<[0-9a-f]{32}\.\d+@example\.test>", msg["Message-ID"]), (msg["Date"], msg["Message-ID"])
assert msg["MIME-Version"] == "1.0" and msg.get_content_type() == "text/plain", msg
assert msg.get_content_charset() == "utf-8" and msg["Content-Transfer-Encoding"] == "8bit", msg
body = msg.get_content()
assert "This is a test notification from SupaManager Backup" in body, body
assert "Project: " + project + "\n" in body, body
PY
check_hooks ok whsec-e2e-1 1 || fail "the webhook: $(cat "$T/ok/requests.jsonl")"
ok "an e-mail with a non-ASCII subject and a signed webhook are delivered"

# the environment alone configures a webhook, and wins over the file
start_receiver env
ENV_URL="http://127.0.0.1:$RPORT/hook"
SUPAMANAGER_WEBHOOK_URL=$ENV_URL SUPAMANAGER_WEBHOOK_SECRET=env-secret \
  sm notify test --project "$PROJECT" >"$T/out" 2>"$T/err" || fail "env webhook: $(cat "$T/out" "$T/err")"
check_hooks env env-secret 1 || fail "the env webhook: $(cat "$T/env/requests.jsonl")"
ok "SUPAMANAGER_WEBHOOK_URL and SUPAMANAGER_WEBHOOK_SECRET configure a webhook"

# ---- retries ----
cat >"$T/hook.json" <<EOF
{"notifications": {"webhook_attempts": 3, "webhook_backoff_ms": 200, "timeout_s": 10}}
EOF
start_receiver flaky --fail 2 --status 500
URL="http://127.0.0.1:$RPORT/hook"
sm notify test --config "$T/hook.json" --webhook "$URL" --secret s2 --project "$PROJECT" \
  >"$T/out" 2>"$T/err" || fail "retries: $(cat "$T/out" "$T/err")"
grep -qxF "webhook $URL: sent (HTTP 200, 3 attempts)" "$T/out" || fail "retry line: $(cat "$T/out")"
check_hooks flaky s2 3 || fail "retried webhooks: $(cat "$T/flaky/requests.jsonl")"
grep -q "attempt 1 of 3 failed: HTTP 500" "$T/err" || fail "no warning for the failed attempt: $(cat "$T/err")"
ok "a webhook answered 500 twice is retried under the same delivery id and delivered"

start_receiver down --fail -1 --status 500
URL="http://127.0.0.1:$RPORT/hook"
expect_fail 1 "webhook $URL: HTTP 500: receiver says no after 3 attempts" -- \
  sm notify test --config "$T/hook.json" --webhook "$URL" --secret s3 --project "$PROJECT"
[ "$(requests down)" = 3 ] || fail "expected 3 attempts, got $(requests down)"
ok "a webhook that keeps answering 500 fails after webhook_attempts"

start_receiver refuses --fail -1 --status 400
URL="http://127.0.0.1:$RPORT/hook"
sm notify test --config "$T/hook.json" --webhook "$URL" --secret s4 >"$T/out" 2>"$T/err"
rc=$?
[ $rc = 1 ] || fail "a 400 gave exit $rc: $(cat "$T/out" "$T/err")"
grep -qxF "webhook $URL: failed" "$T/out" || fail "400 line: $(cat "$T/out")"
grep -qF "supamanager: error: webhook $URL: HTTP 400: receiver says no (not retried)" "$T/err" ||
  fail "400 message: $(cat "$T/err")"
grep -qF "hint: The receiver refused the request" "$T/err" || fail "400 hint: $(cat "$T/err")"
sleep 0.5
[ "$(requests refuses)" = 1 ] || fail "a 400 was retried: $(requests refuses) requests"
ok "a webhook answered 400 is not retried and the failure names it"

start_receiver busy --fail 1 --status 429 --retry-after 1
URL="http://127.0.0.1:$RPORT/hook"
sm notify test --config "$T/hook.json" --webhook "$URL" --secret s5 --project "$PROJECT" \
  >"$T/out" 2>"$T/err" || fail "429: $(cat "$T/out" "$T/err")"
check_hooks busy s5 2 || fail "429 retry: $(cat "$T/busy/requests.jsonl")"
$PY -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert r[1]["time"] - r[0]["time"] >= 0.9, "Retry-After: 1 not honoured (back-off is 0.2 s)"
' "$T/busy/requests.jsonl" || fail "Retry-After"
ok "a 429 is retried after the receiver's Retry-After"

# ---- failures that must be quick and clear ----
DEAD=$(pg_free_port) || fail "no free port"
cat >"$T/dead.json" <<EOF
{"notifications": {"smtp": {"url": "smtp://127.0.0.1:$DEAD"}, "email": ["ops@example.test"],
  "webhook_backoff_ms": 200}}
EOF
start=$(date +%s)
timeout 60 "$SM" notify test --config "$T/dead.json" >"$T/out" 2>"$T/err"
rc=$?
[ $rc != 124 ] || fail "notify test hangs on a dead SMTP port"
[ $rc = 1 ] || fail "a dead SMTP port gave exit $rc: $(cat "$T/out" "$T/err")"
[ $(($(date +%s) - start)) -lt 30 ] || fail "a dead SMTP port took $(($(date +%s) - start)) s"
grep -qxF "email to ops@example.test: failed" "$T/out" || fail "dead SMTP line: $(cat "$T/out")"
grep -qF "supamanager: error: SMTP: connection refused by 127.0.0.1:$DEAD (after 3 attempts)" "$T/err" ||
  fail "dead SMTP message: $(cat "$T/err")"
grep -qF "hint: Check notifications.smtp.url" "$T/err" || fail "dead SMTP hint: $(cat "$T/err")"
ok "a dead SMTP server gives exit 1 with a clear message, quickly"

# ---- STARTTLS, TLS from the start, AUTH ----
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 2 \
  -subj /CN=localhost 2>/dev/null || fail "cannot make a certificate"
TLS_PORT=$(pg_free_port) || fail "no free port"
start_receiver starttls --smtp "$TLS_PORT" --starttls --cert "$T/cert.pem" --key "$T/key.pem" --auth alice:pw-1
tls_config() { # FILE TLS INSECURE
  cat >"$1" <<EOF
{"notifications": {"smtp": {"url": "smtp://127.0.0.1:$TLS_PORT", "tls": "$2", "insecure": $3,
  "user": "alice", "from": "backup@example.test"}, "email": ["ops@example.test"],
  "webhook_backoff_ms": 100}}
EOF
}
tls_config "$T/tls.json" required true
SUPAMANAGER_SMTP_PASSWORD=pw-1 sm notify test --config "$T/tls.json" --project "$PROJECT" >"$T/out" 2>"$T/err" ||
  fail "STARTTLS with AUTH: $(cat "$T/out" "$T/err")"
[ "$(ls "$T/starttls/new" | wc -l)" = 1 ] || fail "no message through STARTTLS"
$PY -c '
import email, email.policy, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
assert m["Subject"] == "SupaManager test notification for project " + sys.argv[2], m["Subject"]
' "$T/starttls/new/$(ls "$T/starttls/new")" "$PROJECT" || fail "the STARTTLS message"
SUPAMANAGER_SMTP_PASSWORD=wrong expect_fail 1 \
  "SMTP: 127.0.0.1:$TLS_PORT refused the login of user 'alice' (reply 535)" -- sm notify test --config "$T/tls.json"
tls_config "$T/tls-verify.json" try false
SUPAMANAGER_SMTP_PASSWORD=pw-1 expect_fail 1 \
  "SMTP: the TLS certificate of 127.0.0.1:$TLS_PORT does not verify" -- sm notify test --config "$T/tls-verify.json"
cat >"$T/plain-required.json" <<EOF
{"notifications": {"smtp": {"url": "smtp://127.0.0.1:$SMTP_PORT", "tls": "required"},
  "email": ["ops@example.test"]}}
EOF
expect_fail 1 "SMTP: 127.0.0.1:$SMTP_PORT does not offer STARTTLS, and notifications.smtp.tls is \"required\"" -- \
  sm notify test --config "$T/plain-required.json"
SMTPS_PORT=$(pg_free_port) || fail "no free port"
start_receiver smtps --smtp "$SMTPS_PORT" --implicit-tls --cert "$T/cert.pem" --key "$T/key.pem"
SUPAMANAGER_SMTP_URL="smtps://127.0.0.1:$SMTPS_PORT" sm notify test --config "$T/tls.json" >"$T/out" 2>"$T/err" ||
  fail "smtps: $(cat "$T/out" "$T/err")"
[ "$(ls "$T/smtps/new" | wc -l)" = 1 ] || fail "no message through smtps://"
[ "$(ls "$T/starttls/new" | wc -l)" = 1 ] || fail "a failed login or handshake delivered mail"
ok "STARTTLS with AUTH, smtps://, bad passwords, unverified certificates and missing STARTTLS"

# ---- bad settings: exit 2 naming the key ----
bad() { # JSON (the notifications object) PATTERN
  printf '{"notifications": %s}\n' "$1" >"$T/bad.json"
  expect_fail 2 "$2" -- sm notify test --config "$T/bad.json"
}
bad '{"smtp": {"url": "smtp://127.0.0.1:25", "tls": "maybe"}, "email": ["a@b.test"]}' \
  "invalid notifications.smtp.tls 'maybe': use \"try\", \"required\" or \"none\""
bad '{"smtp": {"url": "smtp://127.0.0.1:25"}, "email": ["ops@example.test", "not an address"]}' \
  "invalid notifications.email[1] 'not an address': expected an address like ops@example.com"
bad '{"smtp": {"urll": "smtp://127.0.0.1:25"}}' \
  "unknown key notifications.smtp.urll: use url, from, user, password, tls, insecure"
bad '{"smtp": {"url": "http://127.0.0.1:25"}}' \
  "invalid notifications.smtp.url (or SUPAMANAGER_SMTP_URL): not an smtp:// or smtps:// URL"
bad '{"webhook": {"url": "ftp://x.test/"}}' "invalid notifications.webhook.url"
bad '{"webhook_attempts": 0}' "invalid notifications.webhook_attempts 0: use an integer from 1 to 20"
bad '{"digest_time": "25:00"}' "invalid notifications.digest_time '25:00': use \"HH:MM\" (UTC)"
bad '{"smtp": {"url": "smtps://127.0.0.1:465", "tls": "none"}}' "invalid notifications.smtp.tls \"none\""
SUPAMANAGER_NOTIFY_EMAIL='ops@example.test, bad' expect_fail 2 \
  "invalid SUPAMANAGER_NOTIFY_EMAIL 'bad'" -- sm notify test --config "$T/full.json"
expect_fail 2 "invalid --email 'x y@z'" -- sm notify test --config "$T/full.json" --email 'x y@z'
expect_fail 2 "nothing to test: configure notifications.smtp.url and notifications.email, or notifications.webhook.url (see docs/NOTIFICATIONS.md)" -- \
  sm notify test
expect_fail 2 "e-mail recipients are set but no SMTP server" -- sm notify test --email ops@example.test
echo '{"notifications": ' >"$T/broken.json"
expect_fail 2 "cannot read the config file '$T/broken.json'" -- sm notify test --config "$T/broken.json"
expect_fail 2 "unknown notify command 'tset'" -- sm notify tset
[ "$(ls "$MAIL/new" | wc -l)" = 1 ] || fail "a refused configuration sent mail"
ok "bad settings give exit 2 naming the key and what is allowed"
