// The inbox page: every message the emulator received, grouped by the
// number it was sent to, kept current by Server-Sent Events.  Everything
// from a message is put on the page as text (textContent), never as HTML:
// bodies and numbers are the application's users' data.
'use strict';

const messages = new Map();   // sid -> message, as /_emulator/messages shows it
let current = null;           // the number whose thread is shown

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function take(m) {
  const old = messages.get(m.sid);
  messages.set(m.sid, Object.assign(old || { history: [] }, m));
}

function clock(us) {
  return new Date(us / 1000).toLocaleTimeString([], { hour12: false }) +
    '.' + String(Math.floor(us / 1000) % 1000).padStart(3, '0');
}

function matches(m, q) {
  if (!q) return true;
  q = q.toLowerCase();
  return [m.to, m.from, m.messaging_service_sid, m.body, m.sid]
    .some(v => v && String(v).toLowerCase().includes(q));
}

function render() {
  const q = document.getElementById('search').value.trim();
  const byNumber = new Map();
  for (const m of messages.values()) {
    if (m.deleted || !matches(m, q)) continue;
    if (!byNumber.has(m.to)) byNumber.set(m.to, []);
    byNumber.get(m.to).push(m);
  }
  const numbers = [...byNumber.keys()].sort((a, b) => {
    const la = byNumber.get(a).at(-1).created_us || 0, lb = byNumber.get(b).at(-1).created_us || 0;
    return lb - la;
  });
  if (current === null || !byNumber.has(current)) current = numbers[0] || null;

  const nav = document.getElementById('conversations');
  nav.replaceChildren();
  for (const n of numbers) {
    const list = byNumber.get(n);
    const b = el('button', n === current ? 'active' : '');
    b.dataset.number = n;
    b.append(el('div', 'number', n), el('div', 'preview', list.at(-1).body || ''));
    b.addEventListener('click', () => { current = n; render(); });
    nav.append(b);
  }

  const thread = document.getElementById('thread');
  thread.replaceChildren();
  if (current === null) {
    thread.append(el('p', 'empty', 'No messages yet: send one from SQL.'));
    return;
  }
  for (const m of byNumber.get(current).sort((a, b) => (a.created_us || 0) - (b.created_us || 0))) {
    const div = el('div', 'message');
    div.dataset.sid = m.sid;
    div.append(el('div', 'bubble', m.body || ''));
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
                el('span', '', ' · ' + m.num_segments + ' segment' + (m.num_segments === 1 ? '' : 's') + ' · '),
                el('span', 'sid', m.sid));
    div.append(meta);
    thread.append(div);
  }
}

async function loadAll() {
  const r = await fetch('/_emulator/messages', { cache: 'no-store' });
  messages.clear();
  for (const m of await r.json()) take(m);
  render();
}

function listen() {
  const live = document.getElementById('live');
  const es = new EventSource('/_emulator/events');
  es.addEventListener('open', () => { live.textContent = 'live'; live.className = 'live on'; });
  es.addEventListener('error', () => { live.textContent = 'reconnecting…'; live.className = 'live'; });
  es.addEventListener('reset', loadAll);
  es.addEventListener('message', ev => {
    const e = JSON.parse(ev.data);
    if (e.type === 'message' && e.message) {
      const m = e.message;
      take({ sid: m.sid, to: m.to, from: m.from, messaging_service_sid: m.messaging_service_sid,
             body: m.body, status: m.status, error_code: m.error_code,
             num_segments: Number(m.num_segments), created_us: Date.now() * 1000, media_urls: [],
             history: [{ status: m.status, at_us: Date.now() * 1000 }] });
      render();
    } else if (e.type === 'cleared') {
      loadAll();
    } else if (e.type === 'status' && messages.has(e.sid)) {
      const m = messages.get(e.sid);
      m.status = e.status;
      if (e.error_code) m.error_code = e.error_code;
      (m.history = m.history || []).push({ status: e.status, at_us: e.at_us });
      render();
    }
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
document.getElementById('clear').addEventListener('click', async () => {
  if (await control('reset')) loadAll();
});
document.getElementById('search').addEventListener('input', render);
loadAll().then(listen);
