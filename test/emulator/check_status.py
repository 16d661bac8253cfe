#!/usr/bin/env python3
"""End-to-end check of delivery status in twilio-emulator (make check-status).

Starts the emulator on a free port of 127.0.0.1 and a small callback
receiver (http.server) on another, creates messages to the delivery magic
numbers and checks: the statuses each message's callbacks report, in order;
every callback's X-Twilio-Signature, verified here with Python's hmac (an
implementation independent of the emulator's); fetch by SID and the list
with DateSent filters and paging; freezing; shuffled, reversed and dropped
callbacks; a 5xx answer that is not retried; receivers that are refused.
Standard library only.  Usage: check_status.py [path/to/twilio-emulator]."""

import base64
import datetime
import hashlib
import hmac
import http.client
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse

EMU = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "twilio-emulator")
ACCT = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
TOKEN = "emulator-token"
BASE = "/2010-04-01/Accounts/%s" % ACCT
FROM = "+15557654321"
MG = "MG" + "0123456789abcdef" * 2
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what)
    else:
        print("ok:", what)


def twilio_signature(token, url, params):
    """Twilio's algorithm, written from its documentation."""
    data = url + "".join(k + v for k, v in sorted(
        params, key=lambda p: (p[0].encode(), p[1].encode())))
    return base64.b64encode(hmac.new(token.encode(), data.encode(),
                                     hashlib.sha1).digest()).decode()


class Receiver(http.server.ThreadingHTTPServer):
    """Records every POST; paths under /fail are answered 500."""
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.got = []
        self.lock = threading.Lock()

    def calls(self, tag=None):
        with self.lock:
            return [c for c in self.got if tag is None or c["tag"] == tag]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        call = {"path": self.path, "tag": query.get("m", [None])[0],
                "signature": self.headers.get("X-Twilio-Signature"),
                "content_type": self.headers.get("Content-Type"),
                "pairs": urllib.parse.parse_qsl(body, keep_blank_values=True),
                "t": time.time()}
        call["params"] = dict(call["pairs"])
        with self.server.lock:
            self.server.got.append(call)
        status = 500 if self.path.startswith("/fail") else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class Emulator:
    def __init__(self):
        self.p = subprocess.Popen([EMU, "--port", "0", "--quiet", "--check-credentials"],
                                  stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        self.port = int(line.split("127.0.0.1:")[1].split()[0])
        self.auth = "Basic " + base64.b64encode(
            ("%s:%s" % (ACCT, TOKEN)).encode()).decode()

    def req(self, method, path, form=None, auth=True):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Authorization": self.auth} if auth else {}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form, doseq=True)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, (json.loads(data) if data else None)

    def control(self, method, what, form=None):
        return self.req(method, "/_emulator/" + what, form, auth=False)[1]

    def create(self, to, url=None, **form):
        form.setdefault("Body", "status check")
        if "MessagingServiceSid" not in form:
            form.setdefault("From", FROM)
        form["To"] = to
        if url:
            form["StatusCallback"] = url
        return self.req("POST", BASE + "/Messages.json", form)

    def fetch(self, sid):
        return self.req("GET", BASE + "/Messages/%s.json" % sid)[1]

    def quiet(self, timeout=5.0):
        """Wait until no callback is due or being sent."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            cb = self.control("GET", "summary")["callbacks"]
            if cb["scheduled"] == 0 and cb["pending"] == 0:
                return True
            time.sleep(0.05)
        return False


def statuses(calls):
    return [c["params"].get("MessageStatus") for c in calls]


def main():
    rx = Receiver()
    threading.Thread(target=rx.serve_forever, daemon=True).start()
    emu = Emulator()
    try:
        run(emu, rx)
    finally:
        emu.p.terminate()
        check(emu.p.wait(10) == 0, "clean exit on SIGTERM")
        rx.shutdown()
    print("FAILURES: %d" % failures)
    sys.exit(1 if failures else 0)


def cb_url(rx, tag, path="/cb"):
    return "http://127.0.0.1:%d%s?m=%s&x=a%%20b" % (rx.server_address[1], path, tag)


def run(emu, rx):
    cfg = emu.control("GET", "config")
    check(cfg["queued_ms"] + cfg["sending_ms"] == 100 and cfg["sent_ms"] == 100 and
          not cfg["frozen"] and cfg["callback_order"] == "inorder",
          "defaults: sent after 100 ms, final 100 ms later, in order")

    # --- every outcome, in order, signed
    cases = [
        # tag, To, extra form, create status, callback statuses, error
        ("ok", "+15551230001", {}, "queued", ["sending", "sent", "delivered"], None),
        ("twilio", "+15005550006", {}, "queued", ["sending", "sent", "delivered"], None),
        ("u3", "+15005553003", {}, "queued", ["sending", "sent", "undelivered"], 30003),
        ("u5", "+15005553005", {}, "queued", ["sending", "sent", "undelivered"], 30005),
        ("u6", "+15005553006", {}, "queued", ["sending", "sent", "undelivered"], 30006),
        ("u7", "+15005553007", {}, "queued", ["sending", "sent", "undelivered"], 30007),
        ("f1", "+15005553001", {}, "queued", ["failed"], 30001),
        ("nodlr", "+15005553000", {}, "queued", ["sending", "sent"], None),
        ("mg", "+15551230002", {"MessagingServiceSid": MG}, "accepted",
         ["queued", "sending", "sent", "delivered"], None),
    ]
    sids = {}
    urls = {}
    t0 = time.time()
    for tag, to, extra, first, _, _ in cases:
        urls[tag] = cb_url(rx, tag)
        s, j = emu.create(to, urls[tag], **extra)
        check(s == 201 and j["status"] == first and j["error_code"] is None,
              "%s: created %s" % (tag, first))
        sids[tag] = j["sid"]
    check(emu.quiet(), "every callback out within 5 s")
    time.sleep(0.3)                     # nothing more may come
    for tag, to, extra, _, want, err in cases:
        got = rx.calls(tag)
        check(statuses(got) == want, "%s: callbacks %s (got %s)" % (tag, want, statuses(got)))
        for c in got:
            p = c["params"]
            check(c["signature"] == twilio_signature(TOKEN, urls[tag], c["pairs"]),
                  "%s/%s: X-Twilio-Signature verifies" % (tag, p.get("MessageStatus")))
            must = {"MessageSid": sids[tag], "SmsSid": sids[tag], "AccountSid": ACCT,
                    "To": to, "ApiVersion": "2010-04-01",
                    "SmsStatus": p.get("MessageStatus")}
            if "MessagingServiceSid" in extra:
                must["MessagingServiceSid"] = MG
            else:
                must["From"] = FROM
            final = p.get("MessageStatus") in ("delivered", "undelivered", "failed")
            if final and err:
                must["ErrorCode"] = str(err)
            check(all(p.get(k) == v for k, v in must.items()) and
                  ("ErrorCode" in p) == bool(final and err) and
                  c["content_type"] == "application/x-www-form-urlencoded",
                  "%s/%s: parameters %s" % (tag, p.get("MessageStatus"), sorted(p)))
            dlr = p.get("MessageStatus") in ("delivered", "undelivered")
            check(("RawDlrDoneDate" in p) == dlr and
                  (not dlr or (len(p["RawDlrDoneDate"]) == 10 and p["RawDlrDoneDate"].isdigit())),
                  "%s/%s: RawDlrDoneDate only with a receipt" % (tag, p.get("MessageStatus")))
        # fetch by SID: the final status
        j = emu.fetch(sids[tag])
        check(j["status"] == want[-1] and j["error_code"] == err and
              (j["error_message"] is not None) == (err is not None),
              "%s: fetch shows %s, error %s (%s)" % (tag, want[-1], err, j["error_message"]))
        check((j["date_sent"] is None) == (want[-1] == "failed"),
              "%s: date_sent %s" % (tag, j["date_sent"]))
    ok_calls = rx.calls("ok")
    if len(ok_calls) == 3:
        d = [c["t"] - t0 for c in ok_calls]
        check(0.03 < d[0] and 0.08 < d[1] < 1.0 and 0.18 < d[2] < 1.5,
              "timing: sending %.3f, sent %.3f, delivered %.3f s after create" % tuple(d))

    # the log of attempts matches what arrived
    log = emu.control("GET", "callbacks")
    check(len(log) == len(rx.calls()) and
          all(e["result"] == "answered" and e["response_status"] == 200 for e in log),
          "callback log: %d attempts, all answered 200" % len(log))
    e = log[0]
    check(e["url"] == urls[next(t for t, s in sids.items() if s == e["sid"])] and
          e["params"]["MessageSid"] == e["sid"] and len(e["signature"]) == 28,
          "callback log entry: url, params, signature")

    # --- the list: DateSent filters, paging, current statuses
    today = datetime.datetime.now(datetime.timezone.utc).date()
    day = today.isoformat()
    before, after = (today - datetime.timedelta(days=1)).isoformat(), \
        (today + datetime.timedelta(days=1)).isoformat()
    sent = len(cases) - 1               # the failed one was never sent
    for q, n in [("DateSent=" + day, sent), ("DateSent%3E=" + day, sent),
                 ("DateSent%3C=" + after, sent), ("DateSent%3E=" + after, 0),
                 ("DateSent%3C=" + before, 0), ("DateSent>=" + day, sent)]:
        s, j = emu.req("GET", BASE + "/Messages.json?PageSize=1000&" + q)
        check(s == 200 and len(j["messages"]) == n, "list %s: %d messages" % (q, n))
    s, j = emu.req("GET", BASE + "/Messages.json?To=%2B15005553003")
    check([m["status"] for m in j["messages"]] == ["undelivered"] and
          j["messages"][0]["error_code"] == 30003, "list To=: current status and error")
    path, seen = BASE + "/Messages.json?From=%2B15557654321&DateSent%3E=" + day + "&PageSize=3", []
    while path:
        s, j = emu.req("GET", path)
        seen += [(m["sid"], m["status"]) for m in j["messages"]]
        path = j["next_page_uri"]
    want = [(sids[t], c[4][-1]) for t, c in zip(sids, cases)
            if "MessagingServiceSid" not in c[2] and c[4][-1] != "failed"][::-1]
    check(seen == want, "list From= DateSent>= in pages of 3, newest first, final statuses")

    # --- frozen: nothing moves, then everything resumes
    emu.control("POST", "config", {"frozen": "true"})
    s, j = emu.create("+15551230003", cb_url(rx, "frozen"))
    sid = j["sid"]
    time.sleep(0.4)
    check(emu.fetch(sid)["status"] == "queued" and rx.calls("frozen") == [],
          "frozen: still queued after 400 ms, no callback")
    emu.control("POST", "config", {"frozen": "false"})
    check(emu.quiet(), "thawed: callbacks out")
    j = emu.fetch(sid)
    check(j["status"] == "delivered" and statuses(rx.calls("frozen")) == ["sending", "sent", "delivered"],
          "thawed: delivered, callbacks sending, sent, delivered")
    # sent from 100 ms to 500 ms: plenty of time to freeze it there
    emu.control("POST", "config", {"sent_ms": 400})
    s, j = emu.create("+15551230004", cb_url(rx, "midway"))
    emu.control("POST", "config", {"sent_ms": 100})
    sid = j["sid"]
    time.sleep(0.15)
    emu.control("POST", "config", {"frozen": "true"})
    st = emu.fetch(sid)["status"]
    time.sleep(0.3)
    check(st == "sent" and emu.fetch(sid)["status"] == "sent",
          "frozen while sent: stays sent (%s)" % st)
    check(statuses(rx.calls("midway")) == ["sending", "sent"],
          "frozen while sent: the callbacks of the statuses reached are out")
    emu.control("POST", "config", {"frozen": "false"})
    emu.quiet()
    check(emu.fetch(sid)["status"] == "delivered" and
          statuses(rx.calls("midway")) == ["sending", "sent", "delivered"],
          "thawed: delivered, each callback once")

    # --- no receipt: stays sent
    j = emu.fetch(sids["nodlr"])
    check(j["status"] == "sent" and j["date_sent"] is not None and
          statuses(rx.calls("nodlr")) == ["sending", "sent"],
          "no receipt: still sent, no further callback")

    # --- shuffled and reversed callbacks
    emu.control("POST", "config", {"callback_order": "shuffle"})
    for i in range(4):
        emu.create("+15551230010", cb_url(rx, "shuf%d" % i))
    emu.create("+15551230011", cb_url(rx, "shufmg"), MessagingServiceSid=MG)
    emu.control("POST", "config", {"callback_order": "reverse"})
    emu.create("+15551230012", cb_url(rx, "rev"))
    emu.control("POST", "config", {"callback_order": "inorder"})
    emu.quiet()
    for i in range(4):
        got = statuses(rx.calls("shuf%d" % i))
        check(sorted(got) == sorted(["sending", "sent", "delivered"]) and
              got != ["sending", "sent", "delivered"], "shuffle: %s" % got)
    got = statuses(rx.calls("shufmg"))
    check(sorted(got) == sorted(["queued", "sending", "sent", "delivered"]) and
          got != ["queued", "sending", "sent", "delivered"], "shuffle, messaging service: %s" % got)
    check(statuses(rx.calls("rev")) == ["delivered", "sent", "sending"], "reverse")
    for c in rx.calls("shuf0") + rx.calls("rev"):
        check(c["signature"] == twilio_signature(TOKEN, cb_url(rx, c["tag"]), c["pairs"]),
              "%s/%s: signature verifies" % (c["tag"], c["params"]["MessageStatus"]))

    # --- dropped callbacks
    emu.control("POST", "config", {"callback_drop_percent": 100})
    s, j = emu.create("+15551230013", cb_url(rx, "drop"))
    emu.quiet()
    dropped = [e for e in emu.control("GET", "callbacks") if e["sid"] == j["sid"]]
    check(rx.calls("drop") == [] and len(dropped) == 3 and
          all(e["result"] == "dropped" for e in dropped), "drop 100%: logged, none sent")
    emu.control("POST", "config", {"callback_drop_percent": 50})
    for i in range(20):
        emu.create("+15551230014", cb_url(rx, "half"))
    emu.quiet()
    n = len(rx.calls("half"))
    check(10 < n < 50, "drop 50%%: %d of 60 arrived" % n)
    emu.control("POST", "config", {"callback_drop_percent": 0})

    # --- a 5xx answer is not retried
    url = cb_url(rx, "fail", "/fail")
    s, j = emu.create("+15551230015", url)
    emu.quiet()
    time.sleep(0.2)
    log = [e for e in emu.control("GET", "callbacks") if e["sid"] == j["sid"]]
    check(statuses(rx.calls("fail")) == ["sending", "sent", "delivered"] and
          [e["response_status"] for e in log] == [500, 500, 500],
          "500 from the receiver: each callback tried once")

    # --- receivers that are refused, URLs that are invalid
    for url in ["http://example.com/cb", "https://10.1.2.3/cb", "http://localhost.example.com:1/x"]:
        s, j = emu.create("+15551230016", url)
        emu.quiet()
        log = [e for e in emu.control("GET", "callbacks") if e["sid"] == j["sid"]]
        check(s == 201 and len(log) == 3 and all(e["result"] == "refused" for e in log),
              "not loopback, refused: " + url)
    for url in ["ftp://127.0.0.1/x", "http://bad_host/x", "not a url", "http:///x"]:
        s, j = emu.create("+15551230017", url)
        check(s == 400 and j["code"] == 21609, "21609 for StatusCallback %r" % url)
    s, j = emu.create("+15551230018", "http://127.0.0.1:1/nobody")
    emu.quiet()
    log = [e for e in emu.control("GET", "callbacks") if e["sid"] == j["sid"]]
    check(len(log) == 3 and all(e["result"] == "failed" and e["error"] for e in log),
          "nobody listening: failed, with the reason")
    s, j = emu.create("+15551230019", "http://localhost:%d/cb?m=lh" % rx.server_address[1])
    emu.quiet()
    check(statuses(rx.calls("lh")) == ["sending", "sent", "delivered"], "localhost receiver")

    # --- signing token, cancel, outcome rules
    emu.control("POST", "config", {"callback_token": "rotated"})
    emu.create("+15551230020", cb_url(rx, "tok"))
    emu.quiet()
    emu.control("POST", "config", {"callback_token": ""})
    got = rx.calls("tok")
    check(len(got) == 3 and all(c["signature"] == twilio_signature("rotated", cb_url(rx, "tok"), c["pairs"])
                                for c in got), "callback_token signs instead of the auth token")
    emu.control("POST", "config", {"frozen": "true"})
    s, j = emu.create("+15551230021", cb_url(rx, "cancel"), MessagingServiceSid=MG)
    s, j = emu.req("POST", BASE + "/Messages/%s.json" % j["sid"], {"Status": "canceled"})
    emu.control("POST", "config", {"frozen": "false"})
    emu.quiet()
    time.sleep(0.3)
    check(s == 400 and j["code"] == 30409 and "canceled" not in statuses(rx.calls("cancel")),
          "accepted, not scheduled: cannot be canceled (30409), no canceled callback")
    # scheduled (Messaging Service, ScheduleType=fixed, SendAt 5 min to 35 days ahead)
    def iso(seconds):
        t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    s, j = emu.create("+15551230023", cb_url(rx, "sched"), MessagingServiceSid=MG,
                      ScheduleType="fixed", SendAt=iso(600))
    time.sleep(0.3)
    check(s == 201 and j["status"] == "scheduled" and emu.fetch(j["sid"])["status"] == "scheduled",
          "scheduled: stays scheduled until SendAt")
    s, j = emu.req("POST", BASE + "/Messages/%s.json" % j["sid"], {"Status": "canceled"})
    emu.quiet()
    check(s == 200 and j["status"] == "canceled" and statuses(rx.calls("sched")) == ["canceled"],
          "scheduled, canceled: one callback, canceled")
    for form, code in [({"ScheduleType": "fixed"}, 35111),
                       ({"ScheduleType": "later", "SendAt": iso(600)}, 35126),
                       ({"ScheduleType": "fixed", "SendAt": iso(60)}, 35114),
                       ({"ScheduleType": "fixed", "SendAt": iso(36 * 86400)}, 35114),
                       ({"ScheduleType": "fixed", "SendAt": "tomorrow"}, 35114)]:
        s, j = emu.create("+15551230024", MessagingServiceSid=MG, **form)
        check(s == 400 and j["code"] == code, "scheduling error %d: %s" % (code, form))
    s, j = emu.create("+15551230024", ScheduleType="fixed", SendAt=iso(600))
    check(s == 201 and j["status"] == "queued", "ScheduleType without a Messaging Service: ignored")

    rule = emu.control("POST", "outcomes", {"status": "undelivered", "error_code": 30008,
                                            "to": "+15551230022", "count": 1})
    s, j1 = emu.create("+15551230022", cb_url(rx, "rule"))
    s, j2 = emu.create("+15551230022")
    rules = emu.control("GET", "outcomes")
    time.sleep(0.35)
    a, b = emu.fetch(j1["sid"]), emu.fetch(j2["sid"])
    check(rule["id"] >= 1 and rules[0]["applied"] == 1 and rules[0]["remaining"] == 0 and
          a["status"] == "undelivered" and a["error_code"] == 30008 and b["status"] == "delivered",
          "outcome rule: undelivered 30008 once, then delivered")
    check(emu.control("DELETE", "outcomes")["cleared"] == 1, "outcome rules cleared")
    s, j = emu.req("POST", "/_emulator/outcomes", {"status": "delivered", "error_code": 30003}, auth=False)
    check(s == 400, "error_code refused with delivered")

    # --- reset forgets callbacks and their log
    emu.control("POST", "reset")
    summ = emu.control("GET", "summary")
    check(emu.control("GET", "callbacks") == [] and summ["callbacks"]["answered"] == 0,
          "reset clears the callback log")


if __name__ == "__main__":
    main()
