// Twilio's official Node.js SDK (npm twilio, the version pinned in
// package-lock.json) against the emulator: the calls an application makes,
// each checked against what Twilio documents (the Message resource,
// https://www.twilio.com/docs/messaging/api/message-resource, its Media
// subresource, message scheduling, the error codes' pages, and the SDK's
// own typings in node_modules/twilio/lib/rest/api/v2010/account/message*).
//
// The SDK is used as an application uses it.  Its HTTP client is
// subclassed only to rewrite the origin https://api.twilio.com to the
// emulator's; nothing else is changed or stubbed.  Besides the Messages
// API, the script uses the emulator's control API (/_emulator/faults) to
// make it answer 429, and runs a status callback receiver of its own on
// 127.0.0.1.  It sends nothing anywhere else.
//
// Usage:
//   node check.js BASE_URL [--account-sid AC...] [--auth-token T]
//                          [--api-key-sid SK... --api-key-secret S]
// BASE_URL is the emulator's, e.g. http://127.0.0.1:8099.  The options
// default to TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_API_KEY and
// TWILIO_API_SECRET, then to the emulator's defaults (no API key: those
// checks fail, saying so).  SMS_SDK_DIR names the directory whose
// node_modules holds the SDK (default: this script's directory).
//
// Output: one JSON line per check, {"name", "ok", "detail"}, then one
// line {"done": true, "checks", "passed", "calls", "facts"}: the count,
// the SDK's HTTP calls (one per call the SDK made, its own 429 retries not
// counted), and what the caller can verify at the emulator (facts).  The
// exit status is 0 when every check passed.
'use strict';

const http = require('http');
const path = require('path');

const sdkDir = path.resolve(process.env.SMS_SDK_DIR || __dirname);
const twilio = require(require.resolve('twilio', { paths: [sdkDir] }));

// ---------------------------------------------------------------- options

const opt = {
  base: null,
  accountSid: process.env.TWILIO_ACCOUNT_SID || 'ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  authToken: process.env.TWILIO_AUTH_TOKEN || 'emulator-token',
  apiKeySid: process.env.TWILIO_API_KEY || null,
  apiKeySecret: process.env.TWILIO_API_SECRET || null,
};
{
  const names = { '--account-sid': 'accountSid', '--auth-token': 'authToken',
    '--api-key-sid': 'apiKeySid', '--api-key-secret': 'apiKeySecret' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (names[argv[i]] && i + 1 < argv.length)
      opt[names[argv[i]]] = argv[++i];
    else if (!argv[i].startsWith('--') && opt.base === null)
      opt.base = argv[i].replace(/\/+$/, '');
    else {
      console.error('usage: node check.js BASE_URL [--account-sid AC] [--auth-token T] [--api-key-sid SK --api-key-secret S]');
      process.exit(2);
    }
  }
  if (!opt.base || !/^https?:\/\/(127\.[0-9.]+|localhost|\[::1\])(:[0-9]+)?$/.test(opt.base)) {
    console.error('check.js: BASE_URL must be the emulator on this machine, e.g. http://127.0.0.1:8099');
    process.exit(2);
  }
}
const AC = opt.accountSid;
const MG = 'MG9752274e9e519418a7406176694466fa';
const FROM = '+15017122661';

// ---------------------------------------------------- the SDK's HTTP client

// Every call the SDK made: method, path (query included), To, status.
const calls = [];

class Local extends twilio.RequestClient {
  async request(opts) {
    // the one change: Twilio's origin becomes the emulator's
    opts.uri = opts.uri.replace('https://api.twilio.com', opt.base);
    const entry = { method: String(opts.method).toUpperCase(),
      path: opts.uri.slice(opt.base.length), to: opts.data && opts.data.To, status: null };
    calls.push(entry);
    const res = await super.request(opts);
    entry.status = res.statusCode;
    return res;
  }
}

const client = twilio(AC, opt.authToken, { httpClient: new Local() });

// ------------------------------------------------------------ the checks

const results = [];
const facts = { bodies: {}, media: {}, retry: {}, scheduled: null };

class Failed extends Error {}

function expect(cond, what) {
  if (!cond)
    throw new Failed(what);
}

function same(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e)
    throw new Failed(`${what}: got ${a}, expected ${e}`);
}

function describe(e) {
  if (e instanceof twilio.RestException)
    return `RestException status ${e.status} code ${e.code}: ${e.message}`;
  return e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : String(e);
}

async function check(name, fn) {
  let ok = false;
  let detail;
  try {
    detail = await fn();
    ok = true;
  } catch (e) {
    detail = e instanceof Failed ? e.message : `threw ${describe(e)}`;
  }
  const line = { name, ok, detail: detail === undefined ? '' : String(detail) };
  results.push(line);
  console.log(JSON.stringify(line));
}

// A call that must fail as Twilio fails it: a RestException with the
// HTTP status, Twilio's code, its message, and more_info pointing at the
// code's page.
async function rejects(promise, status, code) {
  let e = null;
  try {
    const v = await promise;
    throw new Failed(`succeeded (${JSON.stringify(v && v.sid ? v.sid : v)}), expected ${status}/${code}`);
  } catch (err) {
    if (err instanceof Failed)
      throw err;
    e = err;
  }
  expect(e instanceof twilio.RestException, `threw ${describe(e)}, not a RestException`);
  same(e.status, status, 'RestException status');
  same(e.code, code, 'RestException code');
  same(e.moreInfo, `https://www.twilio.com/docs/errors/${code}`, 'RestException moreInfo');
  expect(typeof e.message === 'string' && e.message.length > 0 && !e.message.startsWith('[HTTP'),
    `RestException message is Twilio's, got ${JSON.stringify(e.message)}`);
  return e;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Fetch until the status is one of `until` (or 10 s): the statuses seen.
async function follow(sid, until, c = client) {
  const seen = [];
  const deadline = Date.now() + 10000;
  let m;
  for (;;) {
    m = await c.messages(sid).fetch();
    if (seen[seen.length - 1] !== m.status)
      seen.push(m.status);
    if (until.includes(m.status) || Date.now() > deadline)
      return { m, seen };
    await sleep(20);
  }
}

// Is `seen` in the order of `course` (statuses may be skipped between polls)?
function inOrder(seen, course) {
  let i = 0;
  for (const s of seen) {
    const j = course.indexOf(s, i);
    if (j < 0)
      return false;
    i = j;
  }
  return true;
}

// The emulator's control API, for faults (not part of Twilio's API).
async function control(method, what, form) {
  const res = await fetch(`${opt.base}/_emulator/${what}`, {
    method, body: form ? new URLSearchParams(form) : undefined });
  expect(res.ok, `control ${method} ${what}: ${res.status}`);
  return res.json();
}

// A Message as Twilio documents it, right after create.
function documentedShape(m, { to, from, body, status, service = null, numMedia = '0', segments }) {
  expect(/^SM[0-9a-f]{32}$/.test(m.sid), `sid ${m.sid} is SM + 32 hex`);
  same(m.accountSid, AC, 'accountSid');
  same(m.to, to, 'to');
  same(m.from, from, 'from');
  same(m.body, body, 'body');
  same(m.status, status, 'status');
  same(m.messagingServiceSid, service, 'messagingServiceSid');
  same(m.numMedia, numMedia, 'numMedia');
  if (segments !== undefined)
    same(m.numSegments, segments, 'numSegments');
  same(m.direction, 'outbound-api', 'direction');
  same(m.apiVersion, '2010-04-01', 'apiVersion');
  same(m.price, null, 'price');
  same(m.errorCode, null, 'errorCode');
  same(m.errorMessage, null, 'errorMessage');
  same(m.dateSent, null, 'dateSent');
  expect(m.dateCreated instanceof Date && Math.abs(m.dateCreated - Date.now()) < 120000,
    `dateCreated is a Date near now, got ${m.dateCreated}`);
  expect(m.dateUpdated instanceof Date && m.dateUpdated >= m.dateCreated, 'dateUpdated is a Date, not before dateCreated');
  same(m.uri, `/2010-04-01/Accounts/${AC}/Messages/${m.sid}.json`, 'uri');
  same(m.subresourceUris && m.subresourceUris.media,
    `/2010-04-01/Accounts/${AC}/Messages/${m.sid}/Media.json`, 'subresourceUris.media');
}

// The status callback receiver: every request, with its parameters.
const callbacks = [];
const receiver = http.createServer((req, res) => {
  let data = '';
  req.on('data', (d) => { data += d; });
  req.on('end', () => {
    callbacks.push({ url: req.url, signature: req.headers['x-twilio-signature'],
      params: Object.fromEntries(new URLSearchParams(data)) });
    res.writeHead(204);
    res.end();
  });
});

async function main() {
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  const cbBase = `http://127.0.0.1:${receiver.address().port}`;
  const created = [];    // every SID created, for the list checks
  const deleted = new Set();
  const remember = (m) => { created.push(m.sid); facts.bodies[m.sid] = m.body; return m; };

  // ------------------------------------------------------------ create
  let plain;
  await check('create: From number, the documented fields', async () => {
    plain = remember(await client.messages.create({ to: '+15558675310', from: FROM, body: 'Your code is 4821' }));
    documentedShape(plain, { to: '+15558675310', from: FROM, body: 'Your code is 4821', status: 'queued', segments: '1' });
    same(plain.priceUnit, 'USD', 'priceUnit');
    return `${plain.sid} queued`;
  });

  await check('create: MessagingServiceSid without From is accepted', async () => {
    const m = remember(await client.messages.create({ to: '+15558675311', messagingServiceSid: MG, body: 'Through a service' }));
    documentedShape(m, { to: '+15558675311', from: null, body: 'Through a service', status: 'accepted', service: MG, segments: '1' });
    return `${m.sid} accepted, from null`;
  });

  await check('create: MessagingServiceSid and a From of its pool', async () => {
    const m = remember(await client.messages.create({ to: '+15558675311', from: FROM, messagingServiceSid: MG, body: 'Pool sender' }));
    documentedShape(m, { to: '+15558675311', from: FROM, body: 'Pool sender', status: 'accepted', service: MG });
    return m.sid;
  });

  await check('create: alphanumeric sender ID', async () => {
    const m = remember(await client.messages.create({ to: '+447700900123', from: 'ACME', body: 'Hello from ACME' }));
    documentedShape(m, { to: '+447700900123', from: 'ACME', body: 'Hello from ACME', status: 'queued', segments: '1' });
    return m.sid;
  });

  await check('create: short code sender', async () => {
    const m = remember(await client.messages.create({ to: '+15558675312', from: '12345', body: 'From a short code' }));
    documentedShape(m, { to: '+15558675312', from: '12345', body: 'From a short code', status: 'queued' });
    return m.sid;
  });

  // bodies exactly as sent, and their segments (GSM-7: 160, then 153 a
  // segment; UCS-2: 70 UTF-16 units, then 67)
  const bodies = [
    ['emoji, Cyrillic, CJK and Arabic (UCS-2)', 'Привет 世界 😀 café € مرحبا', '1'],
    ['right-to-left marks and Hebrew', '\u202Bשלום\u202C \u200Fעולם', '1'],
    ['newlines LF, CRLF and CR', 'line one\nline two\r\nline three\rline four\n', '1'],
    ['form-encoding reserved characters', 'a&b=c+d%20e%25f #g ?h/i;j', '1'],
    ['160 GSM-7 characters: one segment', 'x'.repeat(160), '1'],
    ['161 GSM-7 characters: two segments', 'x'.repeat(161), '2'],
    ['71 UCS-2 characters: two segments', 'ж'.repeat(71), '2'],
    ['the longest body, 1600 characters', 'y'.repeat(1600), '11'],
  ];
  for (const [what, body, segments] of bodies) {
    await check(`create: body exactly as sent: ${what}`, async () => {
      const m = remember(await client.messages.create({ to: '+15558675313', from: FROM, body }));
      same(m.body, body, 'body in the create reply');
      same(m.numSegments, segments, 'numSegments');
      same((await client.messages(m.sid).fetch()).body, body, 'body fetched back');
      return `${m.sid}, ${segments} segment(s)`;
    });
  }

  let withMedia;
  await check('create: one MediaUrl', async () => {
    const m = remember(await client.messages.create({ to: '+15558675314', from: FROM, body: 'A picture',
      mediaUrl: ['https://demo.twilio.com/owl.png'] }));
    documentedShape(m, { to: '+15558675314', from: FROM, body: 'A picture', status: 'queued', numMedia: '1' });
    facts.media[m.sid] = ['https://demo.twilio.com/owl.png'];
    return m.sid;
  });
  const urls = ['https://example.com/cat.jpg', 'https://example.com/report.pdf',
    'https://example.com/clip.mp4?size=small', 'https://example.com/card.vcf'];
  await check('create: several MediaUrl, media only (no Body)', async () => {
    withMedia = remember(await client.messages.create({ to: '+15558675314', from: FROM, mediaUrl: urls }));
    documentedShape(withMedia, { to: '+15558675314', from: FROM, body: '', status: 'queued', numMedia: String(urls.length) });
    facts.media[withMedia.sid] = urls;
    return `${withMedia.sid}, ${withMedia.numMedia} media`;
  });

  let cbMessage;
  await check('create: StatusCallback', async () => {
    cbMessage = remember(await client.messages.create({ to: '+15558675315', from: FROM, body: 'Tell me',
      statusCallback: `${cbBase}/status?id=1` }));
    documentedShape(cbMessage, { to: '+15558675315', from: FROM, body: 'Tell me', status: 'queued' });
    return cbMessage.sid;
  });

  await check('createWithHttpInfo: 201 and JSON', async () => {
    const r = await client.messages.createWithHttpInfo({ to: '+15558675316', from: FROM, body: 'With HTTP info' });
    remember(r.body);
    same(r.statusCode, 201, 'statusCode');
    expect(/^application\/json/.test(r.headers['content-type']), `content-type ${r.headers['content-type']}`);
    same(r.body.body, 'With HTTP info', 'body');
    return r.body.sid;
  });

  // ------------------------------------------------------------ errors
  const errors = [
    ['To not a phone number: 21211', { to: '+1', from: FROM, body: 'x' }, 21211],
    ['To empty: 21604', { to: '', from: FROM, body: 'x' }, 21604],
    ['neither From nor MessagingServiceSid: 21603', { to: '+15558675317', body: 'x' }, 21603],
    ['no Body and no MediaUrl: 21602', { to: '+15558675317', from: FROM }, 21602],
    ['Body over 1600 characters: 21617', { to: '+15558675317', from: FROM, body: 'y'.repeat(1601) }, 21617],
    ['StatusCallback not a URL: 21609', { to: '+15558675317', from: FROM, body: 'x', statusCallback: 'not a url' }, 21609],
    ['magic From +15005550001: 21212', { to: '+15558675317', from: '+15005550001', body: 'x' }, 21212],
    ['magic From +15005550007: 21606', { to: '+15558675317', from: '+15005550007', body: 'x' }, 21606],
    ['magic From +15005550008: 21611', { to: '+15558675317', from: '+15005550008', body: 'x' }, 21611],
    ['magic To +15005550001: 21211', { to: '+15005550001', from: FROM, body: 'x' }, 21211],
    ['magic To +15005550002: 21612', { to: '+15005550002', from: FROM, body: 'x' }, 21612],
    ['magic To +15005550003: 21408', { to: '+15005550003', from: FROM, body: 'x' }, 21408],
    ['magic To +15005550004: 21610', { to: '+15005550004', from: FROM, body: 'x' }, 21610],
    ['magic To +15005550009: 21614', { to: '+15005550009', from: FROM, body: 'x' }, 21614],
  ];
  for (const [what, params, code] of errors) {
    await check(`create refused: ${what}`, async () => {
      const e = await rejects(client.messages.create(params), 400, code);
      return e.message;
    });
  }

  await check('create: magic To +15005550006 is accepted', async () => {
    const m = remember(await client.messages.create({ to: '+15005550006', from: FROM, body: 'valid' }));
    same(m.status, 'queued', 'status');
    return m.sid;
  });

  await check('bad credentials: 401, 20003', async () => {
    const bad = twilio(AC, 'not-the-token', { httpClient: new Local() });
    const e = await rejects(bad.messages.create({ to: '+15558675318', from: FROM, body: 'x' }), 401, 20003);
    return e.message;
  });

  await check('another account: 401, 20003', async () => {
    const other = twilio('ACbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', opt.authToken, { httpClient: new Local() });
    const e = await rejects(other.messages.list({ limit: 1 }), 401, 20003);
    return e.message;
  });

  // ------------------------------------------------------------ fetch
  await check('fetch: the message as created', async () => {
    const m = await client.messages(plain.sid).fetch();
    same(m.sid, plain.sid, 'sid');
    same(m.body, plain.body, 'body');
    same(m.to, plain.to, 'to');
    same(m.from, plain.from, 'from');
    same(m.dateCreated.getTime(), plain.dateCreated.getTime(), 'dateCreated');
    return m.status;
  });

  await check('fetch through client.api.v2010.accounts(AC).messages(SM)', async () => {
    const m = await client.api.v2010.accounts(AC).messages(plain.sid).fetch();
    same(m.sid, plain.sid, 'sid');
    return m.sid;
  });

  await check('fetchWithHttpInfo: 200', async () => {
    const r = await client.messages(plain.sid).fetchWithHttpInfo();
    same(r.statusCode, 200, 'statusCode');
    same(r.body.sid, plain.sid, 'sid');
    return r.statusCode;
  });

  await check('fetch: an unknown SID is 404, 20404', async () => {
    const e = await rejects(client.messages('SM' + 'f'.repeat(32)).fetch(), 404, 20404);
    return e.message;
  });

  // ------------------------------------------------ status progression
  await check('status progression: queued, sending, sent, delivered', async () => {
    const { m, seen } = await follow(plain.sid, ['delivered', 'undelivered', 'failed']);
    expect(inOrder(seen, ['queued', 'sending', 'sent', 'delivered']), `statuses out of order: ${seen}`);
    same(m.status, 'delivered', 'final status');
    expect(m.dateSent instanceof Date && m.dateSent >= m.dateCreated, `dateSent ${m.dateSent} set, not before dateCreated`);
    expect(m.dateUpdated >= m.dateSent, 'dateUpdated not before dateSent');
    same(m.errorCode, null, 'errorCode');
    return seen.join(' -> ');
  });

  await check('status progression with a Messaging Service: accepted first', async () => {
    const m0 = remember(await client.messages.create({ to: '+15558675319', messagingServiceSid: MG, body: 'Service course' }));
    const { m, seen } = await follow(m0.sid, ['delivered', 'undelivered', 'failed']);
    expect(inOrder(['accepted', ...seen], ['accepted', 'queued', 'sending', 'sent', 'delivered']), `statuses out of order: ${seen}`);
    same(m.status, 'delivered', 'final status');
    return ['accepted', ...seen].join(' -> ');
  });

  const outcomes = [
    ['+15005553003', 'undelivered', 30003],
    ['+15005553005', 'undelivered', 30005],
    ['+15005553006', 'undelivered', 30006],
    ['+15005553007', 'undelivered', 30007],
    ['+15005553001', 'failed', 30001],
  ];
  for (const [to, status, code] of outcomes) {
    await check(`status: To ${to} ends ${status} ${code}`, async () => {
      const m0 = remember(await client.messages.create({ to, from: FROM, body: `to ${to}` }));
      const { m, seen } = await follow(m0.sid, ['delivered', 'undelivered', 'failed']);
      same(m.status, status, 'final status');
      same(m.errorCode, code, 'errorCode (a number)');
      expect(typeof m.errorMessage === 'string' || m.errorMessage === null, 'errorMessage a string or null');
      if (status === 'failed')
        same(m.dateSent, null, 'dateSent of a message never sent');
      else
        expect(m.dateSent instanceof Date, 'dateSent set');
      return seen.join(' -> ');
    });
  }

  await check('status: To +15005553000 stays sent (no receipt)', async () => {
    const m0 = remember(await client.messages.create({ to: '+15005553000', from: FROM, body: 'no receipt' }));
    const { seen } = await follow(m0.sid, ['sent', 'delivered', 'undelivered', 'failed']);
    await sleep(500);
    const m = await client.messages(m0.sid).fetch();
    same(m.status, 'sent', 'status 0.5 s after sent');
    same(m.errorCode, null, 'errorCode');
    return seen.join(' -> ');
  });

  await check('status callbacks: each signed as twilio.validateRequest checks', async () => {
    const url = `${cbBase}/status?id=1`;
    const deadline = Date.now() + 10000;
    while (!callbacks.some((c) => c.params.MessageStatus === 'delivered') && Date.now() < deadline)
      await sleep(20);
    const got = callbacks.filter((c) => c.params.MessageSid === cbMessage.sid);
    const statuses = got.map((c) => c.params.MessageStatus);
    expect(got.length > 0, 'no callback arrived');
    same(statuses[statuses.length - 1], 'delivered', 'the last callback');
    expect(inOrder(statuses, ['queued', 'sending', 'sent', 'delivered']), `callbacks out of order: ${statuses}`);
    expect(statuses.includes('sent'), `a sent callback: ${statuses}`);
    for (const c of got) {
      expect(twilio.validateRequest(opt.authToken, c.signature, url, c.params),
        `X-Twilio-Signature of the ${c.params.MessageStatus} callback does not validate`);
      same(c.params.AccountSid, AC, 'AccountSid');
      same(c.params.To, '+15558675315', 'To');
      same(c.params.SmsSid, cbMessage.sid, 'SmsSid');
      same(c.params.SmsStatus, c.params.MessageStatus, 'SmsStatus');
    }
    expect(!twilio.validateRequest('another-token', got[0].signature, url, got[0].params),
      'a signature validated with a wrong token');
    return statuses.join(', ');
  });

  // ------------------------------------------------------------ media
  await check('media: list', async () => {
    const list = await client.messages(withMedia.sid).media.list();
    same(list.length, urls.length, 'number of media');
    const types = list.map((x) => x.contentType).sort();
    same(types, ['application/pdf', 'image/jpeg', 'text/vcard', 'video/mp4'], 'content types');
    for (const x of list) {
      expect(/^ME[0-9a-f]{32}$/.test(x.sid), `sid ${x.sid} is ME + 32 hex`);
      same(x.parentSid, withMedia.sid, 'parentSid');
      same(x.accountSid, AC, 'accountSid');
      same(x.uri, `/2010-04-01/Accounts/${AC}/Messages/${withMedia.sid}/Media/${x.sid}.json`, 'uri');
      expect(x.dateCreated instanceof Date, 'dateCreated is a Date');
    }
    return types.join(', ');
  });

  await check('media: fetch each', async () => {
    const list = await client.messages(withMedia.sid).media.list();
    for (const x of list) {
      const one = await client.messages(withMedia.sid).media(x.sid).fetch();
      same(one.sid, x.sid, 'sid');
      same(one.contentType, x.contentType, 'contentType');
      same(one.parentSid, withMedia.sid, 'parentSid');
    }
    return `${list.length} fetched`;
  });

  await check('media: remove() one, then it is gone from fetch and list', async () => {
    const before = await client.messages(withMedia.sid).media.list();
    const gone = before.find((x) => x.contentType === 'application/pdf');
    same(await client.messages(withMedia.sid).media(gone.sid).remove(), true, 'remove() resolves');
    await rejects(client.messages(withMedia.sid).media(gone.sid).fetch(), 404, 20404);
    const after = await client.messages(withMedia.sid).media.list();
    same(after.map((x) => x.sid).sort(), before.filter((x) => x !== gone).map((x) => x.sid).sort(), 'the others');
    await rejects(client.messages(withMedia.sid).media(gone.sid).remove(), 404, 20404);
    return `${before.length} -> ${after.length}`;
  });

  await check('media: an unknown media SID is 404, 20404', async () => {
    const e = await rejects(client.messages(withMedia.sid).media('ME' + '0'.repeat(32)).fetch(), 404, 20404);
    return e.message;
  });

  await check('media: a message without media lists none', async () => {
    same((await client.messages(plain.sid).media.list()).length, 0, 'media of a text message');
    return 'empty';
  });

  // ------------------------------------------------------------ scheduling
  let scheduled;
  await check('scheduled: SendAt and ScheduleType fixed, with a service', async () => {
    const sendAt = new Date(Date.now() + 3600e3);
    scheduled = remember(await client.messages.create({ to: '+15558675320', messagingServiceSid: MG,
      body: 'An hour from now', sendAt, scheduleType: 'fixed' }));
    documentedShape(scheduled, { to: '+15558675320', from: null, body: 'An hour from now', status: 'scheduled', service: MG });
    facts.scheduled = scheduled.sid;
    return scheduled.sid;
  });

  await check('scheduled: held until SendAt', async () => {
    await sleep(500);
    const m = await client.messages(scheduled.sid).fetch();
    same(m.status, 'scheduled', 'status 0.5 s later');
    same(m.dateSent, null, 'dateSent');
    return m.status;
  });

  await check('scheduled: ScheduleType without a service is ignored (sent now)', async () => {
    const m = remember(await client.messages.create({ to: '+15558675320', from: FROM, body: 'No service',
      sendAt: new Date(Date.now() + 3600e3), scheduleType: 'fixed' }));
    same(m.status, 'queued', 'status');
    return m.sid;
  });

  await check('scheduled refused: SendAt under 300 s ahead: 35114', async () => {
    const e = await rejects(client.messages.create({ to: '+15558675320', messagingServiceSid: MG, body: 'soon',
      sendAt: new Date(Date.now() + 60e3), scheduleType: 'fixed' }), 400, 35114);
    return e.message;
  });

  await check('scheduled refused: SendAt over 35 days ahead: 35114', async () => {
    const e = await rejects(client.messages.create({ to: '+15558675320', messagingServiceSid: MG, body: 'late',
      sendAt: new Date(Date.now() + 36 * 86400e3), scheduleType: 'fixed' }), 400, 35114);
    return e.message;
  });

  await check('scheduled refused: ScheduleType without SendAt: 35111', async () => {
    const e = await rejects(client.messages.create({ to: '+15558675320', messagingServiceSid: MG, body: 'when?',
      scheduleType: 'fixed' }), 400, 35111);
    return e.message;
  });

  // ------------------------------------------------------------ cancel
  await check('cancel: update status canceled on a scheduled message', async () => {
    const m = await client.messages(scheduled.sid).update({ status: 'canceled' });
    same(m.status, 'canceled', 'status in the reply');
    same(m.sid, scheduled.sid, 'sid');
    same((await client.messages(scheduled.sid).fetch()).status, 'canceled', 'status fetched');
    return 'canceled';
  });

  await check('cancel refused: a delivered message: 30409', async () => {
    const e = await rejects(client.messages(plain.sid).update({ status: 'canceled' }), 400, 30409);
    return e.message;
  });

  // Twilio's page for 30409: only a scheduled message can be canceled;
  // one accepted or queued is already on its way, and goes on
  for (const [what, params] of [['queued', { from: FROM }], ['accepted, through a service', { messagingServiceSid: MG }]]) {
    await check(`cancel refused: a message not scheduled (${what}): 30409`, async () => {
      const m0 = remember(await client.messages.create({ to: '+15558675322', body: `not scheduled, ${what}`, ...params }));
      const e = await rejects(client.messages(m0.sid).update({ status: 'canceled' }), 400, 30409);
      const { m } = await follow(m0.sid, ['delivered', 'undelivered', 'failed', 'canceled']);
      same(m.status, 'delivered', 'it goes on to');
      return e.message;
    });
  }

  // ------------------------------------------------------------ redact
  await check('redact: update body to empty', async () => {
    const m = await client.messages(plain.sid).update({ body: '' });
    same(m.body, '', 'body in the reply');
    same(m.status, 'delivered', 'status kept');
    same(m.to, plain.to, 'to kept');
    same((await client.messages(plain.sid).fetch()).body, '', 'body fetched');
    facts.bodies[plain.sid] = '';
    return m.sid;
  });

  // ------------------------------------------------------------ delete
  let doomed;
  await check('delete: remove() a delivered message', async () => {
    const m0 = remember(await client.messages.create({ to: '+15558675321', from: FROM, body: 'Delete me' }));
    await follow(m0.sid, ['delivered']);
    same(await client.messages(m0.sid).remove(), true, 'remove() resolves');
    doomed = m0.sid;
    deleted.add(doomed);
    return doomed;
  });

  await check('delete: then fetch is 404, 20404', async () => {
    const e = await rejects(client.messages(doomed).fetch(), 404, 20404);
    return e.message;
  });

  await check('delete: then the list leaves it out', async () => {
    const list = await client.messages.list({ to: '+15558675321' });
    same(list.map((m) => m.sid), [], 'messages to its number');
    return 'gone';
  });

  // Twilio's 20009: a message cannot be deleted before it is complete (the
  // emulator is frozen meanwhile, so that the message is still queued)
  await check('delete refused: a message not yet complete (queued): 20009', async () => {
    await control('POST', 'config', { frozen: 'true' });
    let m0, e;
    try {
      m0 = remember(await client.messages.create({ to: '+15558675323', from: FROM, body: 'Too soon to delete' }));
      e = await rejects(client.messages(m0.sid).remove(), 400, 20009);
    } finally {
      await control('POST', 'config', { frozen: 'false' });
    }
    const { m } = await follow(m0.sid, ['delivered']);
    same(m.status, 'delivered', 'still there, and it goes on to');
    return e.message;
  });

  await check('delete: a message with media, then its media are gone too (404)', async () => {
    const m0 = remember(await client.messages.create({ to: '+15558675323', from: FROM, body: 'A picture, then none',
      mediaUrl: ['https://example.com/gone.gif'] }));
    facts.media[m0.sid] = ['https://example.com/gone.gif'];
    await follow(m0.sid, ['delivered']);
    same(await client.messages(m0.sid).remove(), true, 'remove() resolves');
    const e = await rejects(client.messages(m0.sid).media.list(), 404, 20404);
    deleted.add(m0.sid);
    return e.message;
  });

  // ------------------------------------------------------------ list
  const listTo = '+15558675330';
  const listed = [];
  for (let i = 1; i <= 5; i++)
    listed.unshift(remember(await client.messages.create({ to: listTo, from: '+15017122662', body: `list ${i}` })).sid);

  await check('list: to filter, newest first', async () => {
    const list = await client.messages.list({ to: listTo });
    same(list.map((m) => m.sid), listed, 'messages to the number');
    return `${list.length} messages`;
  });

  await check('list: from filter', async () => {
    const list = await client.messages.list({ from: '+15017122662' });
    same(list.map((m) => m.sid), listed, 'messages from the number');
    const alpha = await client.messages.list({ from: 'ACME' });
    same(alpha.map((m) => m.from), ['ACME'], 'messages from the alphanumeric sender');
    return `${list.length} + ${alpha.length}`;
  });

  await check('list: limit', async () => {
    const list = await client.messages.list({ to: listTo, limit: 3 });
    same(list.map((m) => m.sid), listed.slice(0, 3), 'the 3 newest');
    return '3';
  });

  await check('list: pageSize 2 and limit 5 take three pages', async () => {
    const before = calls.length;
    const list = await client.messages.list({ to: listTo, pageSize: 2, limit: 5 });
    same(list.map((m) => m.sid), listed, 'all five, in order');
    const gets = calls.slice(before).filter((c) => c.method === 'GET');
    same(gets.length, 3, 'pages requested');
    expect(gets.slice(1).every((c) => /[?&]PageToken=PA/.test(c.path)), `next pages by PA tokens: ${gets.map((c) => c.path)}`);
    return gets.map((c) => c.path.replace(/^.*\?/, '')).join(' ; ');
  });

  await check('list: each() with a done callback', async () => {
    const seen = [];
    await new Promise((resolve, reject) => {
      client.messages.each({ to: listTo, pageSize: 2,
        done: (err) => (err ? reject(err) : resolve()) }, (m) => { seen.push(m.sid); });
    });
    same(seen, listed, 'each message once, newest first');
    return `${seen.length} messages`;
  });

  await check('list: each() stops at limit', async () => {
    const seen = [];
    await new Promise((resolve, reject) => {
      client.messages.each({ to: listTo, pageSize: 2, limit: 3,
        done: (err) => (err ? reject(err) : resolve()) }, (m) => { seen.push(m.sid); });
    });
    same(seen, listed.slice(0, 3), 'the first three');
    return '3';
  });

  let p0, p1, p2, late;
  await check('page(): pages forward by nextPage()', async () => {
    p0 = await client.messages.page({ to: listTo, pageSize: 2 });
    p1 = await p0.nextPage();
    p2 = await p1.nextPage();
    same(p0.instances.map((m) => m.sid), listed.slice(0, 2), 'page 0');
    same(p1.instances.map((m) => m.sid), listed.slice(2, 4), 'page 1');
    same(p2.instances.map((m) => m.sid), listed.slice(4), 'page 2');
    same(p2.nextPage(), undefined, 'nextPage() after the last page');
    same(p0.previousPage(), undefined, 'previousPage() of the first page');
    return '2 + 2 + 1';
  });

  await check('page(): previousPage() stays put while a message arrives', async () => {
    late = remember(await client.messages.create({ to: listTo, from: '+15017122662', body: 'list 6, meanwhile' }));
    const back1 = await p2.previousPage();
    const back0 = await back1.previousPage();
    same(back1.instances.map((m) => m.sid), listed.slice(2, 4), 'page 1 again');
    same(back0.instances.map((m) => m.sid), listed.slice(0, 2), 'page 0 again');
    expect(/[?&]PageToken=PB/.test(decodeURIComponent(p2.previousPageUrl)), `previous page by a PB token: ${p2.previousPageUrl}`);
    const newer = await back0.previousPage();
    same(newer && newer.instances.map((m) => m.sid), [late.sid], 'the page before page 0: the new message');
    return 'stable';
  });

  await check('page(): nextPage() from a page got back stays put', async () => {
    const again = await p0.nextPage();
    same(again.instances.map((m) => m.sid), listed.slice(2, 4), 'page 1 once more');
    return 'stable';
  });

  // date_sent filters: on the UTC day the message was sent
  const dayOf = (d) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  await check('list: dateSent, dateSentAfter, dateSentBefore', async () => {
    const { m } = await follow(listed[0], ['delivered']);
    const day = dayOf(m.dateSent);
    const next = new Date(day.getTime() + 86400e3);
    const prev = new Date(day.getTime() - 86400e3);
    const sids = async (f) => (await client.messages.list({ to: listTo, ...f })).map((x) => x.sid);
    for (const s of listed)
      await follow(s, ['delivered']);
    expect((await sids({ dateSent: day })).includes(listed[0]), 'dateSent = its day includes it');
    same(await sids({ dateSent: next }), [], 'dateSent = the next day');
    expect((await sids({ dateSentAfter: day })).includes(listed[0]), 'dateSentAfter its day (on or after) includes it');
    same(await sids({ dateSentAfter: next }), [], 'dateSentAfter the next day');
    expect((await sids({ dateSentBefore: day })).includes(listed[0]), 'dateSentBefore its day (on or before) includes it');
    same(await sids({ dateSentBefore: prev }), [], 'dateSentBefore the day before');
    return day.toISOString().slice(0, 10);
  });

  await check('list: date filters leave out a message never sent', async () => {
    const day = dayOf(new Date());
    const all = await client.messages.list({ to: '+15558675320', dateSentAfter: new Date(day.getTime() - 86400e3) });
    expect(!all.some((m) => m.sid === scheduled.sid), 'the canceled scheduled message has no date_sent');
    return `${all.length} sent`;
  });

  await check('list: everything, each created message once', async () => {
    const all = await client.messages.list({ pageSize: 1000 });
    const sids = all.map((m) => m.sid);
    const mine = created.filter((s) => !deleted.has(s));
    expect(mine.every((s) => sids.includes(s)), 'a created message is missing');
    expect(!sids.some((s) => deleted.has(s)), 'a deleted message is listed');
    same(new Set(sids).size, sids.length, 'distinct SIDs');
    for (let i = 1; i < all.length; i++)
      expect(all[i - 1].dateCreated >= all[i].dateCreated, 'newest first');
    return `${all.length} listed`;
  });

  // ------------------------------------------------------------ API key
  await check('API key: twilio(SK, secret, {accountSid}) creates and fetches', async () => {
    expect(opt.apiKeySid && opt.apiKeySecret, 'no API key given (--api-key-sid, --api-key-secret)');
    const keyed = twilio(opt.apiKeySid, opt.apiKeySecret, { accountSid: AC, httpClient: new Local() });
    const m = remember(await keyed.messages.create({ to: '+15558675340', from: FROM, body: 'With an API key' }));
    same(m.accountSid, AC, 'accountSid');
    same((await keyed.messages(m.sid).fetch()).sid, m.sid, 'fetched');
    return m.sid;
  });

  await check('API key: a wrong secret is 401, 20003', async () => {
    expect(opt.apiKeySid, 'no API key given (--api-key-sid)');
    const keyed = twilio(opt.apiKeySid, 'not-the-secret', { accountSid: AC, httpClient: new Local() });
    const e = await rejects(keyed.messages.list({ limit: 1 }), 401, 20003);
    return e.message;
  });

  // ------------------------------------------------------------ 429
  await check('429: without autoRetry, a RestException 429, 20429', async () => {
    await control('POST', 'faults', { action: '429', to: '+15558675350', count: '1' });
    const e = await rejects(client.messages.create({ to: '+15558675350', from: FROM, body: 'x' }), 429, 20429);
    facts.retry['+15558675350'] = [429];
    return e.message;
  });

  await check('429: autoRetry retries and the message is created once', async () => {
    await control('POST', 'faults', { action: '429', to: '+15558675351', count: '1' });
    const retrying = twilio(AC, opt.authToken, { httpClient: new Local({ autoRetry: true }) });
    const m = remember(await retrying.messages.create({ to: '+15558675351', from: FROM, body: 'after a 429' }));
    same(m.status, 'queued', 'status');
    facts.retry['+15558675351'] = [429, 201];
    return m.sid;
  });

  await check('429: autoRetry gives up after maxRetries', async () => {
    await control('POST', 'faults', { action: '429', to: '+15558675352', count: '5' });
    const retrying = twilio(AC, opt.authToken, { httpClient: new Local({ autoRetry: true, maxRetries: 2 }) });
    const e = await rejects(retrying.messages.create({ to: '+15558675352', from: FROM, body: 'x' }), 429, 20429);
    facts.retry['+15558675352'] = [429, 429, 429];
    await control('DELETE', 'faults');
    return e.message;
  });

  receiver.close();
  const passed = results.filter((r) => r.ok).length;
  const creates = calls.filter((c) => c.method === 'POST' && /\/Messages\.json$/.test(c.path));
  facts.created = created.length;
  facts.create_calls = creates.length;
  console.log(JSON.stringify({ done: true, checks: results.length, passed, calls: calls.length, facts }));
  console.error(`check.js: ${passed} of ${results.length} checks passed; the SDK made ${calls.length} calls`);
  process.exitCode = passed === results.length ? 0 : 1;
}

main().catch((e) => {
  console.error(`check.js: ${describe(e)}`);
  process.exit(3);
});
