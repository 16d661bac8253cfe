// The inbox page: every message the emulator received, grouped by the
// number it was sent to, kept current by Server-Sent Events.  Everything
// from a message is put on the page as text (textContent), never as HTML:
// bodies and numbers are the application's users' data.
'use strict';

// The page shows what the emulator holds, and asks for no more than that:
// the conversations (/_emulator/conversations) and the thread of one
// number (/_emulator/messages?to=), each narrowed by the search.  The event
// stream says which numbers changed; the page asks again, at most every
// REFRESH_MS, and only for what changed.  A load test can send thousands
// of messages a second while the page is open: its work stays the same.
const REFRESH_MS = 500;
const THREAD_LIMIT = 50;
const NUMBERS_LIMIT = 300;

let current = null;           // the number whose thread is shown
let conversations = [];       // as the emulator last listed them
let thread = [];              // the current number's messages, oldest first
let threadTotal = 0;
let dirtyList = true, dirtyThread = true;
let refreshing = false, refreshAgain = false, refreshedAt = 0;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

// The local time of day to the millisecond, by hand: toLocaleTimeString
// builds a formatter on every call, which made the page's layout of a
// thread cost a tenth of a second.
function clock(us) {
  const d = new Date(us / 1000), two = n => String(n).padStart(2, '0');
  return two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds()) +
    '.' + String(d.getMilliseconds()).padStart(3, '0');
}

function search() { return document.getElementById('search').value.trim(); }

async function getJSON(path, params) {
  const r = await fetch(path + '?' + new URLSearchParams(params), { cache: 'no-store' });
  if (!r.ok) throw new Error(path + ': ' + r.status);
  return r.json();
}

// Ask for what changed, then lay the page out once.  Never two at a time,
// and never more often than every REFRESH_MS.
async function refresh() {
  if (refreshing) { refreshAgain = true; return; }
  refreshing = true;
  try {
    do {
      const wait = refreshedAt + REFRESH_MS - performance.now();
      if (wait > 0) await new Promise(r => setTimeout(r, wait));
      refreshAgain = false;
      const q = search();
      if (dirtyList) {
        dirtyList = false;
        const c = await getJSON('/_emulator/conversations', { q, limit: NUMBERS_LIMIT });
        conversations = c.conversations;
        conversations.total = c.numbers;
        if (current === null || !conversations.some(x => x.number === current)) {
          const first = conversations.length ? conversations[0].number : null;
          if (first !== current) { current = first; dirtyThread = true; }
        }
      }
      if (dirtyThread) {
        dirtyThread = false;
        thread = current === null ? [] :
          await getJSON('/_emulator/messages', { to: current, q, limit: THREAD_LIMIT });
        const c = conversations.find(x => x.number === current);
        threadTotal = c ? c.count : thread.length;
      }
      render();
      refreshedAt = performance.now();
    } while (refreshAgain);
  } catch (e) {
    document.getElementById('live').textContent = 'error: ' + e.message;
    refreshedAt = performance.now();
  }
  refreshing = false;
}

// Make container hold one element per item, in order, making only those
// whose item changed: the rest stay as they are, so the browser lays out
// and paints only what is new.  (Under a load test, a refresh changes a
// few messages of the fifty shown.)
const made = new WeakMap();   // element -> the JSON of the item it shows
function patch(container, items, make) {
  const old = new Map();
  for (const e of container.children) old.set(e.dataset.key, e);
  let at = container.firstElementChild;
  for (const { key, item } of items) {
    const sig = JSON.stringify(item);
    let e = old.get(key);
    old.delete(key);
    if (!e || made.get(e) !== sig) {
      const fresh = make(item);
      fresh.dataset.key = key;
      made.set(fresh, sig);
      if (e) {
        if (at === e) at = fresh;
        e.replaceWith(fresh);
      }
      e = fresh;
    }
    if (e !== at) container.insertBefore(e, at);
    at = e.nextElementSibling;
  }
  for (const e of old.values()) e.remove();
}

function conversation(c) {
  const b = el('button', c.active ? 'active' : '');
  b.dataset.number = c.number;
  b.append(el('div', 'number', c.number),
           el('div', 'preview', c.last.redacted ? '(body redacted)' : (c.last.body || '')));
  b.addEventListener('click', () => { current = c.number; dirtyThread = true; refresh(); });
  return b;
}

function note(id, text) {
  const e = document.getElementById(id);
  e.textContent = text;
  e.hidden = !text;
}

function render() {
  patch(document.getElementById('numbers'),
        // (only what the button shows: a status change leaves it alone)
        conversations.map(c => ({ key: c.number, item: {
          number: c.number, active: c.number === current,
          last: { body: c.last.body, redacted: c.last.redacted } } })),
        conversation);
  note('numbers-more', conversations.total > conversations.length ?
       (conversations.total - conversations.length) + ' more numbers: search to find one' : '');
  note('thread-empty', current !== null ? '' :
       search() ? 'Nothing matches.' : 'No messages yet: send one from SQL.');
  note('thread-more', threadTotal > thread.length ?
       (threadTotal - thread.length) + ' earlier messages not shown' : '');
  patch(document.getElementById('messages'), thread.map(m => ({ key: m.sid, item: m })), bubble);
}

function bubble(m) {
  const div = el('div', 'message' + (m.deleted ? ' deleted' : ''));
  div.dataset.sid = m.sid;
  div.append(el('div', 'bubble', m.redacted ? '(body redacted)' : (m.body || '')));
  if (m.media_urls && m.media_urls.length) {
    const media = el('div', 'media');
    for (const u of m.media_urls) {
      // a link only for http(s): a javascript: URL stays text
      if (/^https?:\/\//i.test(u)) {
        const a = el('a', '', u);
        a.href = u; a.rel = 'noopener noreferrer'; a.target = '_blank';
        media.append(a, document.createElement('br'));
      } else media.append(el('span', '', u), document.createElement('br'));
    }
    div.append(media);
  }
  if (m.history && m.history.length) {
    const h = el('div', 'meta history');
    h.append(el('span', '', m.history.map(s => s.status + ' ' + clock(s.at_us)).join(' → ')));
    div.append(h);
  }
  const meta = el('div', 'meta');
  meta.append(el('span', '', 'from ' + (m.from || m.messaging_service_sid || '?') + ' · '),
              el('span', 'status ' + m.status, m.status),
              el('span', '', m.error_code ? ' (' + m.error_code + ')' : ''),
              el('span', '', ' · ' + m.num_segments + ' segment' + (m.num_segments === 1 ? '' : 's') +
                 ' ' + (m.encoding || '') + ' · '),
              el('span', 'sid', m.sid),
              el('span', '', m.deleted ? ' · deleted' : ''));
  div.append(meta);
  return div;
}

function everything() { dirtyList = dirtyThread = true; refresh(); }

function listen() {
  const live = document.getElementById('live');
  const es = new EventSource('/_emulator/events');
  es.addEventListener('open', () => { live.textContent = 'live'; live.className = 'live on'; everything(); });
  es.addEventListener('error', () => { live.textContent = 'reconnecting…'; live.className = 'live'; });
  // fell behind the emulator's memory of events: ask for everything again
  es.addEventListener('reset', everything);
  es.addEventListener('message', ev => {
    const e = JSON.parse(ev.data);
    if (e.type !== 'changed') return;
    dirtyList = true;
    if (e.cleared || e.numbers === null || e.numbers.includes(current)) dirtyThread = true;
    refresh();
  });
}

// The controls post to the emulator's control API, as the tests do.
async function control(path, fields, method) {
  const r = await fetch('/_emulator/' + path, {
    method: method || 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: fields ? new URLSearchParams(fields) : undefined,
  });
  const text = await r.text();
  document.getElementById('control-result').textContent =
    r.ok ? 'done' : 'refused: ' + (JSON.parse(text).error || r.status);
  return r.ok;
}

document.getElementById('controls').addEventListener('submit', ev => {
  ev.preventDefault();
  const [status, code] = document.getElementById('outcome').value.split(':');
  const fields = { to: document.getElementById('outcome-to').value.trim(), status, count: '1' };
  if (code) fields.error_code = code;
  control('outcomes', fields);
});
document.getElementById('fault-add').addEventListener('click', () => {
  const action = document.getElementById('fault').value;
  const fields = { action };
  if (action === '429_retry_after') fields.retry_after = '2';
  if (action === 'delay') fields.delay_ms = '5000';
  control('faults', fields);
});
document.getElementById('faults-clear').addEventListener('click', () => control('faults', null, 'DELETE'));

// What the API answered so far, and the faults on: a create refused by a
// fault leaves no message, so this is where the worker's retries show.
// Asked for every TRAFFIC_MS while the page is visible.
const TRAFFIC_MS = 1000;
async function traffic() {
  if (document.hidden) return;
  try {
    const [faults, summary] = await Promise.all([
      fetch('/_emulator/faults', { cache: 'no-store' }).then(r => r.json()),
      fetch('/_emulator/summary', { cache: 'no-store' }).then(r => r.json())]);
    const answers = Object.entries(summary.by_status)
      .map(([code, n]) => (code === '0' ? 'dropped' : code) + ' ×' + n).join(' · ');
    const on = faults.map(f => f.action + (f.to ? ' to ' + f.to : '') + ', applied ' + f.applied + '×');
    document.getElementById('traffic').textContent =
      'API requests: ' + summary.requests + (answers ? ' (' + answers + ')' : '') +
      ' · faults: ' + (on.length ? on.join('; ') : 'none');
  } catch (e) { /* the emulator is gone: the event stream says so */ }
}
setInterval(traffic, TRAFFIC_MS);
traffic();
document.getElementById('clear').addEventListener('click', async () => {
  if (await control('reset')) everything();
});
document.getElementById('search').addEventListener('input', everything);
listen();
