#!/usr/bin/env python3
"""Self-test of twilio-emulator: starts it on a free port and checks the
API, the magic numbers, paging, every fault action, delays, the control API
and (with --tls) HTTPS.  Usage: selftest.py [path/to/twilio-emulator]."""

import base64
import datetime
import http.client
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

EMU = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "twilio-emulator")
ACCT = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
TOKEN = "emulator-token"
BASE = "/2010-04-01/Accounts/%s" % ACCT
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what)
    else:
        print("ok:", what)


def start(*args):
    p = subprocess.Popen([EMU, "--port", "0", "--quiet", "--check-credentials", *args],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    port = int(line.split("127.0.0.1:")[1].split()[0])
    return p, port, line


class Client:
    def __init__(self, port, tls_ctx=None, user=ACCT, password=TOKEN):
        self.port = port
        self.tls_ctx = tls_ctx
        self.auth = "Basic " + base64.b64encode(
            ("%s:%s" % (user, password)).encode()).decode()

    def conn(self):
        if self.tls_ctx:
            return http.client.HTTPSConnection("127.0.0.1", self.port,
                                               context=self.tls_ctx, timeout=10)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def req(self, method, path, form=None, auth=True):
        c = self.conn()
        headers = {}
        body = None
        if auth:
            headers["Authorization"] = self.auth
        if form is not None:
            body = urllib.parse.urlencode(form, doseq=True)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        try:
            j = json.loads(data) if data else None
        except ValueError:
            j = data
        return r.status, j, r

    def create(self, **form):
        return self.req("POST", BASE + "/Messages.json", form)


def main():
    p, port, line = start("--progress-ms", "300")
    check(line.startswith("twilio-emulator listening on 127.0.0.1:") and
          line.strip().endswith("(http)"), "listening line: " + line.strip())
    c = Client(port)
    try:
        run(c)
        run_delays(c)
    finally:
        p.terminate()
        check(p.wait(10) == 0, "clean exit on SIGTERM")
    run_tls()
    print("FAILURES: %d" % failures)
    sys.exit(1 if failures else 0)


def run(c):
    ok = {"To": "+15551230001", "From": "+15557654321"}
    body = 'a & b = c + d %% e\nnew "line" \\ \t\x01 emoji \U0001F600 \u20ac'
    s, j, _ = c.create(Body=body, MediaUrl=["https://x/1.png", "https://x/2.png?a=1&b=2"], **ok)
    check(s == 201 and j["body"] == body and j["num_media"] == "2" and
          j["status"] == "queued" and j["sid"].startswith("SM") and
          len(j["sid"]) == 34 and j["from"] == ok["From"], "create 201")
    sid = j["sid"]
    s, msgs, _ = c.req("GET", "/_emulator/messages", auth=False)
    check(msgs[-1]["body"] == body and msgs[-1]["media_urls"] == ["https://x/1.png", "https://x/2.png?a=1&b=2"],
          "body and media round-trip byte for byte")
    s, j, _ = c.req("GET", BASE + "/Messages/%s/Media.json" % sid)
    check(s == 200 and [m["content_type"] for m in j["media_list"]] == ["image/png", "image/png"] and
          all(m["parent_sid"] == sid and m["sid"].startswith("ME") for m in j["media_list"]),
          "media list")
    me = j["media_list"][0]["sid"]
    s, j, _ = c.req("GET", BASE + "/Messages/%s/Media/%s.json" % (sid, me))
    check(s == 200 and j["sid"] == me, "media fetch")
    s, j, _ = c.req("DELETE", BASE + "/Messages/%s/Media/%s.json" % (sid, me))
    check(s == 204, "media delete 204")
    s, j, _ = c.req("GET", BASE + "/Messages/%s/Media/%s.json" % (sid, me))
    s2, j2, _ = c.req("GET", BASE + "/Messages/%s/Media.json" % sid)
    check(s == 404 and j["code"] == 20404 and len(j2["media_list"]) == 1, "media deleted: 404, left out")

    # segments
    for text, seg in [("a" * 160, "1"), ("a" * 161, "2"), ("{" * 80, "1"),
                      ("{" * 81, "2"), ("é" * 160, "1"), ("\u0101" * 70, "1"),
                      ("\u0101" * 71, "2"), ("\U0001F600" * 35, "1"),
                      ("\U0001F600" * 36, "2"), ("a" * 306, "2"), ("a" * 307, "3")]:
        s, j, _ = c.create(Body=text, **ok)
        check(s == 201 and j["num_segments"] == seg, "segments %r.. x%d = %s" % (text[0], len(text), seg))

    # validation
    cases = [
        ({"From": "+15557654321", "Body": "x"}, 21604),
        ({"To": "+15551230001", "Body": "x"}, 21603),
        (dict(ok, Body=""), 21602),
        (dict(ok, Body="é" * 1601), 21617),
        ({"To": "12345", "From": "+15557654321", "Body": "x"}, 21211),
        ({"To": "+0123456789", "From": "+15557654321", "Body": "x"}, 21211),
        ({"To": "+15551230001", "From": "+15005550001", "Body": "x"}, 21212),
        ({"To": "+15551230001", "From": "+15005550007", "Body": "x"}, 21606),
        ({"To": "+15551230001", "From": "+15005550008", "Body": "x"}, 21611),
        ({"To": "+15551230001", "From": "+15005550010", "Body": "x"}, 21608),
        ({"To": "+15005550001", "From": "+15557654321", "Body": "x"}, 21211),
        ({"To": "+15005550002", "From": "+15557654321", "Body": "x"}, 21612),
        ({"To": "+15005550003", "From": "+15557654321", "Body": "x"}, 21408),
        ({"To": "+15005550004", "From": "+15557654321", "Body": "x"}, 21610),
        ({"To": "+15005550009", "From": "+15557654321", "Body": "x"}, 21614),
    ]
    for form, code in cases:
        s, j, r = c.req("POST", BASE + "/Messages.json", form)
        check(s == 400 and j["code"] == code and j["status"] == 400 and
              j["more_info"] == "https://www.twilio.com/docs/errors/%d" % code and
              r.getheader("Content-Type") == "application/json", "error %d" % code)
    s, j, _ = c.create(Body="é" * 1600, **ok)
    check(s == 201, "1600 characters accepted")
    s, j, _ = c.req("POST", BASE + "/Messages.json",
                    {"To": "+15551230001", "MessagingServiceSid": "MG" + "0" * 32,
                     "MediaUrl": "https://x/y.jpg"})
    check(s == 201 and j["from"] is None and j["status"] == "accepted" and
          j["messaging_service_sid"] == "MG" + "0" * 32 and j["body"] == "",
          "messaging service, media only")

    # auth
    for cl, what in [(Client(c.port, password="wrong"), "wrong token"),
                     (Client(c.port, user="ACbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"), "wrong user")]:
        s, j, r = cl.create(Body="x", **ok)
        check(s == 401 and j["code"] == 20003 and j["message"] == "Authenticate", "401 " + what)
    s, j, _ = c.req("POST", BASE + "/Messages.json", dict(ok, Body="x"), auth=False)
    check(s == 401 and j["code"] == 20003, "401 no credentials")
    s, j, _ = c.req("GET", "/2010-04-01/Accounts/ACbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb/Messages.json")
    check(s == 401 and j["code"] == 20003, "401 other account in path")
    s, j, _ = c.req("GET", BASE + "/Calls.json")
    check(s == 404 and j["code"] == 20404, "404 unknown path")

    # fetch, progression, cancel, delete
    s, j, _ = c.req("GET", BASE + "/Messages/%s.json" % sid)
    check(s == 200 and j["sid"] == sid and j["body"] == body, "fetch")
    time.sleep(0.35)
    s, j, _ = c.req("GET", BASE + "/Messages/%s.json" % sid)
    check(j["status"] == "sent" and j["date_sent"] is not None, "progressed to sent")
    time.sleep(0.3)
    s, j, _ = c.req("GET", BASE + "/Messages/%s.json" % sid)
    check(j["status"] == "delivered", "progressed to delivered")
    s, j, _ = c.req("POST", BASE + "/Messages/%s.json" % sid, {"Status": "canceled"})
    check(s == 400 and j["code"] == 30409, "cannot cancel delivered")
    s, j, _ = c.create(Body="cancel me", **ok)
    queued = j["sid"]
    s, j, _ = c.req("POST", BASE + "/Messages/%s.json" % queued, {"Status": "canceled"})
    check(s == 400 and j["code"] == 30409, "cannot cancel queued: only a scheduled message")
    s, j, _ = c.req("DELETE", BASE + "/Messages/%s.json" % queued)
    check(s == 400 and j["code"] == 20009, "cannot delete before complete (queued)")
    later = (datetime.datetime.now(datetime.timezone.utc) +
             datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    s, j, _ = c.create(To="+15551230001", MessagingServiceSid="MG" + "a" * 32, Body="cancel me",
                       ScheduleType="fixed", SendAt=later)
    s, j, _ = c.req("POST", BASE + "/Messages/%s.json" % j["sid"], {"Status": "canceled"})
    check(s == 200 and j["status"] == "canceled", "cancel scheduled")
    s, j, _ = c.req("DELETE", BASE + "/Messages/%s.json" % sid)
    check(s == 204, "delete 204")
    s, j, _ = c.req("GET", BASE + "/Messages/%s.json" % sid)
    check(s == 404 and j["code"] == 20404, "fetch deleted 404")
    s, j, _ = c.req("GET", BASE + "/Messages/SMffffffffffffffffffffffffffffffff.json")
    check(s == 404 and j["code"] == 20404, "fetch unknown 404")

    # paging; frozen, so that none is sent before the DateSent checks below
    c.req("POST", "/_emulator/reset", auth=False)
    c.req("POST", "/_emulator/config", {"frozen": "true"}, auth=False)
    for i in range(120):
        c.create(To="+15551230002", From="+15557654321", Body="page %d" % i)
    c.create(To="+15551230003", From="+15557654321", Body="other")
    path = BASE + "/Messages.json?To=%2B15551230002&PageSize=50"
    seen, pages = [], 0
    while path:
        s, j, _ = c.req("GET", path)
        seen += [m["body"] for m in j["messages"]]
        pages += 1
        path = j["next_page_uri"]
    check(pages == 3 and seen == ["page %d" % i for i in range(119, -1, -1)],
          "120 messages in 3 pages, newest first, via next_page_uri")
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    # Twilio filters on date_sent, which a message has only once sent
    s, j, _ = c.req("GET", BASE + "/Messages.json?PageSize=1000&DateSent%3E=" + today)
    check(s == 200 and len(j["messages"]) == 0, "list filter DateSent: unsent messages left out")
    c.req("POST", "/_emulator/config", {"frozen": "false"}, auth=False)
    time.sleep(0.35)
    for q, n in [("DateSent>=" + today, 121), ("DateSent%3E=" + today, 121),
                 ("DateSent<=2000-01-01", 0), ("DateSent=" + today, 121),
                 ("DateSent%3C%3D=2999-01-01", 121)]:
        s, j, _ = c.req("GET", BASE + "/Messages.json?PageSize=1000&" + q)
        check(s == 200 and len(j["messages"]) == n, "list filter " + q)

    # faults
    c.req("POST", "/_emulator/reset", auth=False)

    def fault(**kw):
        s, j, _ = c.req("POST", "/_emulator/faults", kw, auth=False)
        return j["id"]

    def messages():
        return c.req("GET", "/_emulator/messages", auth=False)[1]

    fault(action="500_before", count=1)
    s, j, _ = c.create(Body="f1", **ok)
    check(s == 500 and j["code"] == 20500 and len(messages()) == 0, "500_before creates nothing")
    s, j, _ = c.create(Body="f1", **ok)
    check(s == 201, "count exhausted")
    fault(action="500_after", count=1)
    s, j, _ = c.create(Body="f2", **ok)
    check(s == 500 and messages()[-1]["body"] == "f2", "500_after creates")
    fault(action="503_after", count=1)
    s, j, _ = c.create(Body="f3", **ok)
    check(s == 503 and messages()[-1]["body"] == "f3", "503_after creates")
    fault(action="429", count=1)
    s, j, r = c.create(Body="f4", **ok)
    check(s == 429 and j["code"] == 20429 and r.getheader("Retry-After") is None and
          messages()[-1]["body"] == "f3", "429 without Retry-After")
    fault(action="429_retry_after", retry_after=7, count=1)
    s, j, r = c.create(Body="f5", **ok)
    check(s == 429 and r.getheader("Retry-After") == "7", "429 with Retry-After")
    fault(action="auth_fail", count=1)
    s, j, r = c.create(Body="f6", **ok)
    check(s == 401 and j["code"] == 20003, "auth_fail")
    fault(action="drop_before", count=1)
    try:
        c.create(Body="f7", **ok)
        check(False, "drop_before")
    except (http.client.RemoteDisconnected, ConnectionError):
        check(messages()[-1]["body"] == "f3", "drop_before closes, creates nothing")
    fault(action="drop_after", count=1)
    try:
        c.create(Body="f8", **ok)
        check(False, "drop_after")
    except (http.client.RemoteDisconnected, ConnectionError):
        check(messages()[-1]["body"] == "f8", "drop_after closes, created")
    fault(action="delay", delay_ms=300, count=1)
    t0 = time.time()
    s, j, _ = c.create(Body="f9", **ok)
    dt = time.time() - t0
    check(s == 201 and 0.28 <= dt < 1.0, "delay 300 ms (%.3f s)" % dt)
    fault(action="500_before", to="+15551239999")
    s, j, _ = c.create(Body="f10", **ok)
    check(s == 201, "to filter: other number unaffected")
    s, j, _ = c.create(Body="f10", To="+15551239999", From="+15557654321")
    check(s == 500, "to filter: matching number faulted")
    s, j, _ = c.req("DELETE", "/_emulator/faults", auth=False)
    check(s == 200 and j["cleared"] >= 1, "clear faults")
    fault(action="500_before", percent=50)
    res = [c.create(Body="p", **ok)[0] for _ in range(200)]
    n500 = res.count(500)
    check(60 < n500 < 140, "percent=50 gives %d/200" % n500)
    c.req("DELETE", "/_emulator/faults", auth=False)

    s, reqs, _ = c.req("GET", "/_emulator/requests", auth=False)
    seqs = [r["seq"] for r in reqs]
    check(seqs == sorted(seqs) and len(reqs) == 212, "request log in order (%d)" % len(reqs))
    drops = [r for r in reqs if r["fault"] in ("drop_before", "drop_after")]
    check(len(drops) == 2 and all(r["status"] == 0 for r in drops), "drops logged with status 0")
    r0 = reqs[0]
    check(r0["method"] == "POST" and r0["form"]["Body"] == "f1" and r0["auth_user"] == ACCT and
          r0["content_type"] == "application/x-www-form-urlencoded" and r0["fault"] == "500_before",
          "request log entry fields")
    s, since, _ = c.req("GET", "/_emulator/requests?since=%d" % seqs[-3], auth=False)
    check([r["seq"] for r in since] == seqs[-2:], "requests?since=")
    s, summ, _ = c.req("GET", "/_emulator/summary", auth=False)
    check(summ["requests"] == 212 and summ["creates"] == 212 and summ["by_status"]["500"] >= 4,
          "summary " + json.dumps(summ))

    # config: revoke and restore the token
    c.req("POST", "/_emulator/config", {"auth_token": "new-token"}, auth=False)
    s, j, _ = c.create(Body="x", **ok)
    check(s == 401, "revoked token refused")
    s, j, _ = Client(c.port, password="new-token").create(Body="x", **ok)
    check(s == 201, "new token accepted")
    c.req("POST", "/_emulator/config", {"auth_token": TOKEN, "api_key_sid": "SK" + "1" * 32,
                                       "api_key_secret": "sekrit"}, auth=False)
    s, j, _ = Client(c.port, user="SK" + "1" * 32, password="sekrit").create(Body="x", **ok)
    check(s == 201, "API key accepted")
    s, j, _ = c.req("POST", "/_emulator/reset", auth=False)
    check(s == 200 and messages() == [], "reset")


def run_delays(c):
    """64 concurrent requests under a 200 ms global delay finish in ~200 ms."""
    c.req("POST", "/_emulator/config", {"delay_ms": 200}, auth=False)
    results = []

    def one():
        t0 = time.time()
        s, j, _ = c.create(To="+15551230001", From="+15557654321", Body="slow")
        results.append((s, time.time() - t0))

    t0 = time.time()
    threads = [threading.Thread(target=one) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = time.time() - t0
    check(len(results) == 64 and all(s == 201 and d >= 0.19 for s, d in results) and total < 1.5,
          "64 concurrent delayed requests in %.3f s" % total)
    c.req("POST", "/_emulator/config", {"delay_ms": 0}, auth=False)


def run_tls():
    d = tempfile.mkdtemp()
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    p, port, line = start("--tls-cert", cert, "--tls-key", key)
    try:
        check(line.strip().endswith("(https)"), "https listening line")
        ctx = ssl.create_default_context(cafile=cert)
        s, j, _ = Client(port, tls_ctx=ctx).create(To="+15551230001", From="+15557654321", Body="tls")
        check(s == 201, "HTTPS create with the CA")
        try:
            Client(port, tls_ctx=ssl.create_default_context()).create(
                To="+15551230001", From="+15557654321", Body="tls")
            check(False, "HTTPS refused without the CA")
        except ssl.SSLError:
            check(True, "HTTPS refused without the CA")
    finally:
        p.terminate()
        p.wait(10)


if __name__ == "__main__":
    main()
