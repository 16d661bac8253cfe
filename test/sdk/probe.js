// Twilio's official Node.js SDK (npm twilio 5.13.1, pinned in package-lock.json)
// against the emulator, its HTTP client subclassed only to rewrite the
// origin.  Work in progress for issue 14: a probe, not yet a test in make
// test.  Usage: node probe.js http://127.0.0.1:PORT
const twilio = require('twilio');
const base = process.argv[2];
class Local extends twilio.RequestClient {
  request(opts) { opts.uri = opts.uri.replace('https://api.twilio.com', base); return super.request(opts); }
}
const client = twilio('ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'emulator-token', { httpClient: new Local() });
(async () => {
  const results = [];
  const t = async (name, f) => { try { const v = await f(); results.push(['ok', name, v]); } catch (e) { results.push(['FAIL', name, e.status + ' ' + (e.code || '') + ' ' + e.message]); } };
  let m;
  await t('create', async () => { m = await client.messages.create({ to: '+15558675310', from: '+15017122661', body: 'hi', mediaUrl: ['https://example.com/a.png'] }); return m.sid + ' ' + m.status; });
  await t('fetch', async () => (await client.messages(m.sid).fetch()).status);
  await t('media list', async () => (await client.messages(m.sid).media.list()).map(x => x.contentType));
  await t('media fetch', async () => { const l = await client.messages(m.sid).media.list(); return (await client.messages(m.sid).media(l[0].sid).fetch()).parentSid === m.sid; });
  await t('list page', async () => { const p = await client.messages.page({ pageSize: 1 }); const n = await p.nextPage(); const b = n && await n.previousPage(); return [p.instances.length, n && n.instances.length, b && b.instances[0] && b.instances[0].sid]; });
  await t('scheduled', async () => { const s = await client.messages.create({ to: '+15558675310', messagingServiceSid: 'MG' + 'a'.repeat(32), body: 'later', sendAt: new Date(Date.now() + 3600e3), scheduleType: 'fixed' }); return s.status; });
  await t('error 21211', async () => client.messages.create({ to: '+1', from: '+15017122661', body: 'x' }));
  for (const r of results) console.log(r.map(x => typeof x === 'object' ? JSON.stringify(x) : x).join('  '));
})();
