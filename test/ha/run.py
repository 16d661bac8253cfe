#!/usr/bin/python3
"""The sms extension under Patroni: failover while the outbox drains.

Run by `make test-ha` (see test/test.mk), as the unprivileged test user, in a
scratch directory.  For each variant it starts a fresh cluster: one etcd, two
Patroni nodes (node1 bootstraps and leads, node2 is its synchronous standby,
`synchronous_mode: true`), PostgreSQL 15 with the sms worker pointed at the
Twilio emulator.  It queues N messages with unique bodies on the leader,
breaks something, waits (polling, with a timeout) until a leader exists and
every row there is final, then counts creates per body at the emulator.

Variants:
  kill             kill -9 the leader's Patroni and postmaster mid-drain
  switchover       patronictl switchover mid-drain
  stalled-standby  the standby stops acknowledging (its walsender stopped)
                   while the worker's claim waits for it, then the leader is
                   killed
  replica-death    kill -9 the synchronous standby's Patroni and postmaster
                   mid-drain; the leader goes on alone

One line per variant:
  variant=kill lost=0 duplicated=0 messages=5000 promotion=9.1s settled=2.0s
promotion: from the kill or switchover to the new leader accepting writes
(pg_is_in_recovery() false); for replica-death, to the leader completing a
synchronous commit again.  settled: from the sms worker's start on the new
primary (replica-death: from writes being accepted again) to the last row's
final write-back (max(updated_at)).  Exit status 1 if any variant lost or
duplicated a message, left a row not sent or failed to run.

Everything listens on 127.0.0.1 only.  Every process started is killed at
the end of its variant, also on failure or on a signal; data directories
are removed, logs kept under ROOT/logs.
"""

import argparse
import collections
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = ['kill', 'switchover', 'stalled-standby', 'replica-death']
DB = 'smsha'
FINAL = "('sent', 'failed', 'canceled')"
NODES = ('node1', 'node2')

# no proxy for 127.0.0.1, whatever the environment says
URL = urllib.request.build_opener(urllib.request.ProxyHandler({}))
CHILD_ENV = {k: v for k, v in os.environ.items() if 'proxy' not in k.lower()}


class Failure(Exception):
    pass


def say(msg):
    print(msg, flush=True)


NOTES = None


def note(msg):
    """A timestamped line in the variant's harness.log, to read beside
    Patroni's and PostgreSQL's logs."""
    if NOTES:
        t = time.time()
        NOTES.write('%s.%03d UTC %s\n' % (time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(t)),
                                          int(t % 1 * 1000), msg))
        NOTES.flush()


def free_port(taken):
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
        s.close()
        if port not in taken:
            taken.add(port)
            return port


def poll(what, fn, timeout, interval=0.1):
    """Call fn until it returns something true; that value, or Failure."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Failure('timed out after %gs waiting for %s' % (timeout, what))
        time.sleep(interval)


def http(url, method='GET', timeout=10):
    """(status, body) of a request to 127.0.0.1; status 0 if none came."""
    req = urllib.request.Request(url, method=method)
    try:
        with URL.open(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, urllib.error.URLError):
        return 0, b''


class Procs:
    """The processes of one variant.  Each is started with its working
    directory in the variant's directory; PostgreSQL's own processes have
    theirs in a data directory below it.  So every process of the variant,
    the postmasters that Patroni detaches and the backends a killed
    postmaster leaves behind included, is found by its working directory,
    and killed by its id."""

    def __init__(self, base):
        self.base = base
        self.started = []

    def start(self, argv, logfile, env=None):
        with open(logfile, 'ab') as out:
            p = subprocess.Popen(argv, cwd=self.base, stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT,
                                 env=env or CHILD_ENV, start_new_session=True)
        self.started.append(p)
        return p

    def pids_under(self, directory):
        """Our processes whose working directory is in directory."""
        me, pids = os.getuid(), []
        for d in os.listdir('/proc'):
            if not d.isdigit() or int(d) == os.getpid():
                continue
            try:
                if os.stat('/proc/' + d).st_uid != me:
                    continue
                cwd = os.readlink('/proc/%s/cwd' % d)
            except OSError:
                continue
            if cwd.endswith(' (deleted)'):
                cwd = cwd[:-len(' (deleted)')]
            if cwd == directory or cwd.startswith(directory + '/'):
                pids.append(int(d))
        return pids

    def kill_all(self):
        for p in self.started:
            if p.poll() is None:
                p.kill()
        for _ in range(100):
            pids = self.pids_under(self.base)
            if not pids:
                break
            for pid in pids:
                kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        for p in self.started:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def kill(pid, sig):
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


class Node:
    def __init__(self, name, cluster, taken):
        self.name = name
        self.cluster = cluster
        self.pg_port = free_port(taken)
        self.api_port = free_port(taken)
        self.data_dir = os.path.join(cluster.base, name)
        self.config = os.path.join(cluster.base, name + '.yml')
        self.pg_log_dir = os.path.join(cluster.logdir, name + '-postgres')
        self.patroni = None

    def psql(self, sql, db=DB, timeout=30, check=True):
        """Run sql; its output (unaligned, tuples only), or None on error
        when check is false."""
        argv = [os.path.join(self.cluster.args.pg_bindir, 'psql'), '-X', '-q', '-A', '-t',
                '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', str(self.pg_port),
                '-U', self.cluster.user, '-d', db, '-f', '-']
        env = dict(CHILD_ENV, PGCONNECT_TIMEOUT='3')
        try:
            r = subprocess.run(argv, input=sql, capture_output=True, text=True,
                               timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            if check:
                raise Failure('%s: timed out: %s' % (self.name, sql.strip()[:200]))
            return None
        if r.returncode != 0:
            if check:
                raise Failure('%s: psql failed: %s: %s' % (self.name, sql.strip()[:200],
                                                          r.stderr.strip()))
            return None
        return r.stdout.strip()

    def q(self, sql, **kw):
        """psql that answers None instead of failing (for polling)."""
        return self.psql(sql, check=False, timeout=kw.get('timeout', 10), db=kw.get('db', DB))

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.data_dir, 'postmaster.pid')) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def is_primary(self):
        return self.q('SELECT NOT pg_is_in_recovery()', db='postgres') == 't'

    def api(self, path):
        status, body = http('http://127.0.0.1:%d%s' % (self.api_port, path))
        return status, body

    def kill_hard(self):
        """kill -9 this node's Patroni, then its postmaster; the postmaster's
        children are left to notice its death, as after a real crash."""
        pm = self.postmaster_pid()
        kill(self.patroni.pid, signal.SIGKILL)
        if pm:
            kill(pm, signal.SIGKILL)
        note('killed %s: patroni %d, postmaster %s' % (self.name, self.patroni.pid, pm))
        return pm


class Cluster:
    def __init__(self, variant, args):
        self.variant = variant
        self.args = args
        self.base = os.path.join(args.root, variant)
        self.logdir = os.path.join(args.root, 'logs', variant)
        for d in (self.base, self.logdir):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.procs = Procs(self.base)
        taken = set()
        self.etcd_port = free_port(taken)
        self.etcd_peer_port = free_port(taken)
        self.nodes = {n: Node(n, self, taken) for n in NODES}
        self.emu_port = None

    # -- the emulator ------------------------------------------------------

    def start_emulator(self):
        logfile = os.path.join(self.logdir, 'emulator.log')
        self.procs.start([self.args.emulator, '--port', '0', '--delay-ms', '20',
                          '--progress-ms', '-1'], logfile)

        def port():
            with open(logfile, errors='replace') as f:
                m = re.search(r'listening on 127\.0\.0\.1:(\d+)', f.read())
            return m and int(m.group(1))
        self.emu_port = poll('the emulator to listen', port, 10, 0.05)

    def emu(self, path):
        status, body = http('http://127.0.0.1:%d/_emulator/%s' % (self.emu_port, path),
                            timeout=60)
        if status != 200:
            raise Failure('emulator %s: status %d' % (path, status))
        return json.loads(body)

    # -- etcd and Patroni --------------------------------------------------

    def start_etcd(self):
        client = 'http://127.0.0.1:%d' % self.etcd_port
        peer = 'http://127.0.0.1:%d' % self.etcd_peer_port
        self.procs.start([
            'etcd', '--name', 'etcd1', '--data-dir', os.path.join(self.base, 'etcd'),
            '--listen-client-urls', client, '--advertise-client-urls', client,
            '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
            '--initial-cluster', 'etcd1=' + peer, '--initial-cluster-state', 'new',
            '--initial-cluster-token', 'sms-ha-' + self.variant],
            os.path.join(self.logdir, 'etcd.log'))
        poll('etcd to be healthy',
             lambda: b'"true"' in http(client + '/health', timeout=2)[1], 30)

    def write_config(self, node):
        with open(os.path.join(HERE, 'patroni.yml.in')) as f:
            text = f.read()
        a = self.args
        values = {
            'SCOPE': 'sms-ha-' + self.variant, 'NAME': node.name,
            'API_PORT': node.api_port, 'ETCD_PORT': self.etcd_port,
            'TTL': a.ttl, 'LOOP_WAIT': a.loop_wait, 'RETRY_TIMEOUT': a.retry_timeout,
            'PG_PORT': node.pg_port, 'DATA_DIR': node.data_dir,
            'PG_BINDIR': a.pg_bindir, 'BASE': self.base, 'USER': self.user,
            'PG_LOG_DIR': node.pg_log_dir, 'DB': DB, 'EMU_PORT': self.emu_port,
            'RECONCILE_GRACE': a.reconcile_grace, 'RECONCILE_RATE': a.reconcile_rate,
        }
        text = re.sub(r'@([A-Z_]+)@', lambda m: str(values[m.group(1)]), text)
        with open(node.config, 'w') as f:
            f.write(text)

    def start_patroni(self, node):
        self.write_config(node)
        os.makedirs(node.pg_log_dir, exist_ok=True)
        env = dict(CHILD_ENV, HOME=self.base, PYTHONFAULTHANDLER='1',
                   PATH=self.args.pg_bindir + ':' + CHILD_ENV.get('PATH', '/usr/bin:/bin'))
        node.patroni = self.procs.start(['patroni', node.config],
                                        os.path.join(self.logdir, node.name + '-patroni.log'),
                                        env=env)

    def patronictl(self, *args):
        """patronictl, started; its output is read from the pipe."""
        note('patronictl ' + ' '.join(args))
        return subprocess.Popen(['patronictl', '-c', self.nodes['node1'].config] + list(args),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=dict(CHILD_ENV, HOME=self.base))

    def up(self):
        """etcd, the emulator, node1 bootstrapped as the leader with the
        extension created, node2 its synchronous standby, the worker running."""
        t = time.monotonic()
        self.start_emulator()
        self.start_etcd()
        n1, n2 = self.nodes['node1'], self.nodes['node2']
        self.start_patroni(n1)
        poll('node1 to bootstrap and lead', lambda: n1.api('/primary')[0] == 200, 90, 0.2)
        poll('node1 to accept connections', n1.is_primary, 30)
        n1.psql('CREATE DATABASE %s' % DB, db='postgres')
        n1.psql('CREATE EXTENSION sms; CREATE TABLE ha_probe (t timestamptz);')
        self.start_patroni(n2)
        # synchronous in PostgreSQL, and so recorded in etcd's /sync key:
        # Patroni 3.0.2 writes the key about 2 s after it has set
        # synchronous_standby_names, and if the standby goes away in between,
        # it never resets synchronous_standby_names (every commit waits)
        poll('node2 to be the synchronous standby',
             lambda: n1.q("SELECT count(*) FROM pg_stat_replication "
                          "WHERE application_name = 'node2' AND sync_state = 'sync'") == '1'
             and n2.api('/sync')[0] == 200, 120, 0.2)
        poll('the sms worker to run on node1',
             lambda: n1.q('SELECT condition FROM sms_worker_condition()') == 'running', 60, 0.2)
        return time.monotonic() - t

    def dcs_config(self):
        status, body = self.nodes['node1'].api('/config')
        return json.loads(body) if status == 200 else {}

    def stop(self):
        self.procs.kill_all()
        for n in self.nodes.values():
            shutil.rmtree(n.data_dir, ignore_errors=True)
        shutil.rmtree(os.path.join(self.base, 'etcd'), ignore_errors=True)


# -- what each variant shares -------------------------------------------------

def prefix_of(variant):
    return 'ha-' + variant


def queue(node, prefix, n, batch=1000, send_at=None):
    """n messages, bodies "prefix i", distinct To numbers, in transactions of
    batch rows through sms_send()."""
    at = ", send_at => '%s'" % send_at if send_at else ''
    parts = []
    for lo in range(1, n + 1, batch):
        hi = min(lo + batch - 1, n)
        parts.append(
            "BEGIN;\nSELECT count(sms_send('+1555' || lpad(i::text, 7, '0'), '+15017122661', "
            "'%s ' || i%s)) FROM generate_series(%d, %d) i;\nCOMMIT;\n" % (prefix, at, lo, hi))
    node.psql(''.join(parts), timeout=120)
    note('queued %d messages on %s' % (n, node.name))


def sent_count(node):
    v = node.q("SELECT count(*) FROM sms_outbox WHERE state = 'sent'")
    return int(v) if v else 0


def wait_sent(node, at_least, timeout=60):
    at = poll('%d messages sent' % at_least,
              lambda: (lambda c: c >= at_least and c)(sent_count(node)), timeout, 0.05)
    note('%d sent on %s' % (at, node.name))
    return at


def wait_promoted(node, t0, timeout):
    poll('%s to accept writes' % node.name, node.is_primary, timeout, 0.05)
    note('%s accepts writes' % node.name)
    return time.monotonic() - t0


def worker_start(node, timeout=60):
    """(pid, backend_start as epoch) of the sms worker on node."""
    def get():
        v = node.q("SELECT pid, extract(epoch FROM backend_start) FROM pg_stat_activity "
                   "WHERE backend_type = 'sms worker' ORDER BY backend_start DESC LIMIT 1")
        return v and (int(v.split('|')[0]), float(v.split('|')[1]))
    r = poll('the sms worker on %s' % node.name, get, timeout, 0.05)
    note('sms worker on %s: pid %d' % (node.name, r[0]))
    return r


def wait_final(node, n, timeout):
    """Until node holds n rows, all final; the epoch of the last write-back."""
    last = {}

    def get():
        v = node.q("SELECT count(*), count(*) FILTER (WHERE state NOT IN %s), "
                   "extract(epoch FROM max(updated_at)) FROM sms_outbox" % FINAL)
        if not v:
            return None
        total, open_, maxu = v.split('|')
        last['v'] = v
        return int(total) == n and int(open_) == 0 and float(maxu)
    try:
        r = poll('every row final on %s' % node.name, get, timeout, 0.1)
        note('every row final on %s' % node.name)
        return r
    except Failure as e:
        states = node.q('SELECT state, count(*) FROM sms_outbox GROUP BY 1 ORDER BY 1')
        raise Failure('%s (rows, not final: %s; states: %s)'
                      % (e, last.get('v'), (states or '?').replace('\n', ', ')))


class GoneWatch:
    """From the kill on, watches the processes of a node's data directory
    (the backends of a killed postmaster exit when they notice its death)
    and notes when the last one is gone."""

    def __init__(self, cluster, node, t0):
        self.cluster, self.node, self.t0 = cluster, node, t0
        self.gone_at = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            if not self.cluster.procs.pids_under(self.node.data_dir):
                self.gone_at = time.monotonic()
                return
            time.sleep(0.02)

    def result(self, timeout=30):
        """seconds after the kill, or a note of what was left (and killed)."""
        self.thread.join(max(0.0, self.t0 + timeout - time.monotonic()))
        self.stop.set()
        self.thread.join()
        if self.gone_at is not None:
            return '%.2fs' % (self.gone_at - self.t0)
        desc = []
        for pid in self.cluster.procs.pids_under(self.node.data_dir):
            try:
                with open('/proc/%d/cmdline' % pid, 'rb') as f:
                    desc.append('%d %s' % (pid, f.read().replace(b'\0', b' ').decode().strip()))
            except OSError:
                pass
            kill(pid, signal.SIGKILL)
        return 'NOT after %ds (killed: %s)' % (timeout, '; '.join(desc))


def count(cluster, leader, prefix, n):
    """lost, duplicated and the rows that are not sent with a SID the
    emulator created for the same body."""
    reqs = cluster.emu('requests')
    creates = [r for r in reqs if r.get('method') == 'POST'
               and re.search(r'/Messages(\.json)?$', r.get('path', ''))]
    ok = collections.Counter((r.get('form') or {}).get('Body') for r in creates
                             if r.get('status') == 201)
    statuses = collections.Counter(r.get('status') for r in creates)
    lookups = sum(1 for r in reqs if r.get('method') == 'GET')
    bodies = ['%s %d' % (prefix, i) for i in range(1, n + 1)]
    lost = sum(1 for b in bodies if ok[b] == 0)
    dup = sum(ok[b] - 1 for b in bodies if ok[b] > 1)
    dup_bodies = sorted((b for b in bodies if ok[b] > 1), key=lambda b: int(b.split()[-1]))

    msgs = cluster.emu('messages')
    sid_body = {m['sid']: m.get('body') for m in msgs}
    per_msg = collections.Counter(m.get('body') for m in msgs)
    msg_dup = sum(per_msg[b] - 1 for b in bodies if per_msg[b] > 1)

    rows = leader.psql("SELECT id, state, coalesce(sid, ''), body FROM sms_outbox ORDER BY id")
    rows = [r.split('|', 3) for r in rows.splitlines()] if rows else []
    by_state = collections.Counter(r[1] for r in rows)
    bad = [r for r in rows if r[1] != 'sent' or sid_body.get(r[2]) != r[3]]
    return {
        'lost': lost, 'dup': dup, 'dup_bodies': dup_bodies, 'msg_dup': msg_dup,
        'creates': len(creates), 'statuses': dict(statuses), 'rows': len(rows),
        'lookups': lookups,
        'by_state': dict(by_state), 'bad': len(bad), 'bad_sample': bad[:5],
    }


def attempts_summary(node):
    v = node.q("SELECT attempts, count(*) FROM sms_outbox GROUP BY 1 ORDER BY 1")
    return (v or '?').replace('\n', ', ')


# -- the variants -------------------------------------------------------------

def kill_mid_drain(c, n, victim):
    """Queue n messages on node1, and kill -9 victim's Patroni and postmaster
    at about a quarter of the drain; returns the time of the kill, the watch
    on the victim's processes and the variant's report so far."""
    queue(c.nodes['node1'], prefix_of(c.variant), n)
    at = wait_sent(c.nodes['node1'], n // 4)
    t0 = time.monotonic()
    victim.kill_hard()
    gone = GoneWatch(c, victim, t0)
    return t0, gone, {'before': 'sent before the kill: %d of %d (%d%%)' % (at, n, 100 * at // n)}


def v_kill(c, n):
    """kill -9 the leader's Patroni and postmaster mid-drain."""
    n1, n2 = c.nodes['node1'], c.nodes['node2']
    t0, gone, info = kill_mid_drain(c, n, n1)
    info['promotion'] = wait_promoted(n2, t0, c.args.ttl * 3 + 30)
    return after_failover(c, gone, n2, t0, n, info)


def v_switchover(c, n):
    """patronictl switchover to node2 mid-drain."""
    n1, n2 = c.nodes['node1'], c.nodes['node2']
    queue(n1, prefix_of(c.variant), n)
    at = wait_sent(n1, n // 4)
    t0 = time.monotonic()
    ctl = c.patronictl('switchover', '--leader', 'node1', '--candidate', 'node2', '--force')
    info = {'before': 'sent before the switchover: %d of %d (%d%%)' % (at, n, 100 * at // n)}
    try:
        def promoted():
            if ctl.poll() not in (None, 0):
                raise Failure('patronictl switchover failed: ' + ctl.stdout.read().strip())
            return n2.is_primary()
        poll('node2 to accept writes', promoted, 120, 0.05)
        note('node2 accepts writes')
        info['promotion'] = time.monotonic() - t0
        out, _ = ctl.communicate(timeout=120)
    finally:
        if ctl.poll() is None:
            ctl.kill()
            ctl.wait()
    with open(os.path.join(c.logdir, 'patronictl-switchover.log'), 'w') as f:
        f.write(out)
    if ctl.returncode != 0:
        raise Failure('patronictl switchover failed: ' + out.strip())
    said = [ln for ln in out.splitlines() if re.search(r'[Ss]witched over', ln)]
    info['patronictl'] = said[-1].strip() if said else out.strip()[-200:]
    r = after_failover(c, None, n2, t0, n, info)
    # the old leader comes back as a standby of the new one
    try:
        poll('node1 to rejoin as a standby',
             lambda: n2.q("SELECT count(*) FROM pg_stat_replication "
                          "WHERE application_name = 'node1'") == '1', 60, 0.2)
        info['rejoined'] = 'node1 rejoined as a standby of node2'
    except Failure as e:
        info['rejoined'] = 'node1 did not rejoin: %s' % e
    return r


def v_stalled_standby(c, n):
    """The standby stops acknowledging while the worker's claim waits for
    it; then the leader dies.  node2 never saw the claim."""
    n1, n2 = c.nodes['node1'], c.nodes['node2']
    delay = c.args.stall_delay
    send_at = n1.psql("SELECT now() + interval '%g s'" % delay)
    queue(n1, prefix_of(c.variant), n, send_at=send_at)
    lsn = n1.psql('SELECT pg_current_wal_lsn()')
    poll('node2 to replay the queued rows',
         lambda: n2.q("SELECT pg_last_wal_replay_lsn() >= '%s'" % lsn) == 't', 30, 0.05)
    if n2.psql('SELECT count(*) FROM sms_outbox') != str(n):
        raise Failure('node2 does not hold the %d rows' % n)
    ws = n1.psql("SELECT pid FROM pg_stat_replication WHERE application_name = 'node2'")
    if not ws:
        raise Failure('no walsender for node2')
    ws = int(ws)
    early = n1.psql("SELECT count(*) FROM sms_outbox WHERE state <> 'pending' "
                    "OR now() > '%s'::timestamptz - interval '300 ms'" % send_at)
    if early != '0':
        raise Failure('send_at came before the walsender could be stopped: '
                      'raise --stall-delay (now %gs)' % delay)
    os.kill(ws, signal.SIGSTOP)
    note('SIGSTOP to walsender %d' % ws)
    info = {}
    try:
        t_stop = time.monotonic()
        poll("the sms worker's claim to wait in SyncRep",
             lambda: n1.q("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                          "'sms worker' AND wait_event = 'SyncRep'") not in (None, '0'),
             delay + 30, 0.05)
        note('the sms worker waits in SyncRep')
        info['before'] = ('walsender %d stopped; the worker waited in SyncRep %.1fs later; '
                          'sent on node1 before the kill: %d'
                          % (ws, time.monotonic() - t_stop, sent_count(n1)))
        t0 = time.monotonic()
        n1.kill_hard()
    finally:
        kill(ws, signal.SIGKILL)
    gone = GoneWatch(c, n1, t0)
    info['promotion'] = wait_promoted(n2, t0, c.args.ttl * 3 + 30)
    return after_failover(c, gone, n2, t0, n, info)


def v_replica_death(c, n):
    """kill -9 the synchronous standby's Patroni and postmaster mid-drain:
    Patroni (synchronous_mode, not strict) drops synchronous replication and
    the leader goes on."""
    n1, n2 = c.nodes['node1'], c.nodes['node2']
    t0, gone, info = kill_mid_drain(c, n, n2)
    # a synchronous commit returns once Patroni has dropped the dead standby
    n1.psql('SET synchronous_commit = on; INSERT INTO ha_probe VALUES (now())',
            timeout=c.args.ttl * 3 + 30)
    t_writes = time.time()
    note('node1 completed a synchronous commit')
    info['promotion'] = time.monotonic() - t0
    info['sync'] = 'synchronous_standby_names on node1 afterwards: %r' % n1.psql(
        'SHOW synchronous_standby_names')
    info['gone'] = gone.result()
    last = wait_final(n1, n, c.args.settle_timeout)
    info['settled'] = max(0.0, last - t_writes)
    info['settled_from'] = 'from node1 accepting synchronous writes again'
    info['attempts'] = attempts_summary(n1)
    return n1, info


def after_failover(c, gone, new, t0, n, info):
    """The new primary's worker, every row final there, the old primary's
    processes gone (so whatever they sent is at the emulator)."""
    pid, started = worker_start(new)
    if gone is not None:
        info['gone'] = gone.result()
    last = wait_final(new, n, c.args.settle_timeout)
    pid2, _ = worker_start(new)
    info['settled'] = max(0.0, last - started)
    info['settled_from'] = ("from the sms worker's start on %s (pid %d%s)"
                            % (new.name, pid, '' if pid2 == pid else
                               ', restarted since as pid %d' % pid2))
    info['attempts'] = attempts_summary(new)
    return new, info


RUN = {'kill': v_kill, 'switchover': v_switchover,
       'stalled-standby': v_stalled_standby, 'replica-death': v_replica_death}


def run_variant(variant, args, show_config):
    global NOTES
    c = Cluster(variant, args)
    n = args.messages
    NOTES = open(os.path.join(c.logdir, 'harness.log'), 'a')
    try:
        so = so_identity(c.args.sms_so)
        setup = c.up()
        note('cluster up; sms.so %s' % so)
        if show_config:
            cfg = c.dcs_config()
            say('patroni (from its REST API /config): ttl=%s loop_wait=%s retry_timeout=%s '
                'synchronous_mode=%s synchronous_mode_strict=%s maximum_lag_on_failover=%s'
                % tuple(cfg.get(k) for k in ('ttl', 'loop_wait', 'retry_timeout',
                                              'synchronous_mode', 'synchronous_mode_strict',
                                              'maximum_lag_on_failover')))
        leader, info = RUN[variant](c, n)
        r = count(c, leader, prefix_of(variant), n)
        ok = r['lost'] == 0 and r['dup'] == 0 and r['bad'] == 0 and r['rows'] == n
        say('variant=%s lost=%d duplicated=%d messages=%d promotion=%.1fs settled=%.1fs'
            % (variant, r['lost'], r['dup'], n, info['promotion'], info['settled']))
        say('  %s: cluster up in %.1fs with sms.so %s; %s' % (variant, setup, so, info['before']))
        if 'patronictl' in info:
            say('  %s: patronictl: %s' % (variant, info['patronictl']))
        if 'sync' in info:
            say('  %s: %s' % (variant, info['sync']))
        if 'gone' in info:
            say("  %s: the dead node's processes all gone %s after the kill"
                % (variant, info['gone']))
        if 'rejoined' in info:
            say('  %s: %s' % (variant, info['rejoined']))
        say('  %s: settled measured %s; final leader %s: rows=%d %s; attempts: %s'
            % (variant, info['settled_from'], leader.name, r['rows'],
               ' '.join('%s=%d' % kv for kv in sorted(r['by_state'].items())),
               info['attempts']))
        say('  %s: emulator: creates=%d by status %s, lookups (GET)=%d; duplicated by '
            '/_emulator/messages=%d; rows not sent with a SID the emulator created for '
            'their body: %d'
            % (variant, r['creates'], json.dumps(r['statuses'], sort_keys=True), r['lookups'],
               r['msg_dup'], r['bad']))
        if r['dup_bodies']:
            say('  %s: created twice or more: %s%s' % (
                variant, ', '.join(r['dup_bodies'][:10]),
                ' ...' if len(r['dup_bodies']) > 10 else ''))
        if r['bad_sample']:
            say('  %s: e.g. %s' % (variant, r['bad_sample']))
        return ok
    except Failure as e:
        note('failed: %s' % e)
        say('variant=%s error: %s' % (variant, e))
        return False
    finally:
        note('stopping everything')
        c.stop()
        NOTES.close()
        NOTES = None


def so_identity(path):
    """The build a server started now loads: mtime and md5 of sms.so."""
    try:
        with open(path, 'rb') as f:
            digest = hashlib.md5(f.read()).hexdigest()[:12]
        return '(%s UTC, md5 %s)' % (time.strftime('%Y-%m-%d %H:%M:%S',
                                                   time.gmtime(os.stat(path).st_mtime)), digest)
    except OSError:
        return '(missing)'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--root', required=True, help='scratch directory (logs are kept in ROOT/logs)')
    ap.add_argument('--emulator', required=True, help='the twilio-emulator binary')
    ap.add_argument('--variants', default=','.join(VARIANTS))
    ap.add_argument('--messages', type=int, default=5000)
    ap.add_argument('--pg-bindir', default='/usr/lib/postgresql/15/bin')
    # Patroni's defaults and the extension's: what a user gets
    ap.add_argument('--ttl', type=int, default=30)
    ap.add_argument('--loop-wait', type=int, default=10)
    ap.add_argument('--retry-timeout', type=int, default=10)
    ap.add_argument('--reconcile-grace', default='5s', help='sms.reconcile_grace (default 5s)')
    ap.add_argument('--reconcile-rate', type=int, default=10,
                    help='sms.reconcile_rate (default 10)')
    ap.add_argument('--stall-delay', type=float, default=3,
                    help='stalled-standby: send_at this many seconds after queueing starts')
    ap.add_argument('--settle-timeout', type=float, default=120)
    args = ap.parse_args()
    args.root = os.path.abspath(args.root)
    args.emulator = os.path.abspath(args.emulator)
    variants = [v for v in re.split(r'[,\s]+', args.variants) if v]
    for v in variants:
        if v not in RUN:
            ap.error('unknown variant %r (known: %s)' % (v, ', '.join(VARIANTS)))

    # a signal ends the run through the finally clauses that kill everything
    def stop(signum, frame):
        raise KeyboardInterrupt('signal %d' % signum)
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, stop)

    versions = []
    for argv in (['patroni', '--version'], ['etcd', '--version'],
                 [os.path.join(args.pg_bindir, 'postgres'), '--version']):
        out = subprocess.run(argv, capture_output=True, text=True).stdout
        versions.append(out.splitlines()[0].strip() if out else argv[0] + ' ?')
    libdir = subprocess.run([os.path.join(args.pg_bindir, 'pg_config'), '--pkglibdir'],
                            capture_output=True, text=True).stdout.strip()
    args.sms_so = os.path.join(libdir, 'sms.so')
    say('== sms under Patroni: %s; %s; %s' % tuple(versions))
    say('== installed extension: %s %s' % (args.sms_so, so_identity(args.sms_so)))
    say('== patroni timing: ttl=%d loop_wait=%d retry_timeout=%d (bootstrap.dcs); '
        'sms.reconcile_grace=%s sms.reconcile_rate=%d; emulator --delay-ms 20; '
        '%d messages per variant'
        % (args.ttl, args.loop_wait, args.retry_timeout, args.reconcile_grace,
           args.reconcile_rate, args.messages))
    say('== variants: %s; logs in %s' % (' '.join(variants), os.path.join(args.root, 'logs')))

    results = {}
    t = time.monotonic()
    try:
        for i, v in enumerate(variants):
            results[v] = run_variant(v, args, i == 0)
    except KeyboardInterrupt as e:
        say('== interrupted (%s); everything started was killed' % e)
        results['interrupted'] = False
    failed = [v for v, ok in results.items() if not ok]
    say('== %d variants in %.0fs: %s' % (len(results), time.monotonic() - t,
                                         'all exactly once' if not failed else
                                         'FAILED: ' + ' '.join(failed)))
    if failed:
        say('== logs (patroni, postgres, etcd, emulator) kept in %s'
            % os.path.join(args.root, 'logs'))
        sys.exit(1)


if __name__ == '__main__':
    main()
