// Paging with the official SDK: previous pages are PB tokens, stable while
// messages arrive (issue 14, work in progress).  Usage: node paging.js URL
const twilio = require('twilio');
const base = process.argv[2];
class Local extends twilio.RequestClient { request(o) { o.uri = o.uri.replace('https://api.twilio.com', base); return super.request(o); } }
const c = twilio('ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'emulator-token', { httpClient: new Local() });
(async () => {
  const s = [];
  for (const b of ['one', 'two', 'three']) s.push((await c.messages.create({ to: '+15558675310', from: '+15017122661', body: b })).body);
  const p0 = await c.messages.page({ pageSize: 1 });
  const p1 = await p0.nextPage();
  const p2 = await p1.nextPage();
  await c.messages.create({ to: '+15558675310', from: '+15017122661', body: 'four, meanwhile' });
  const back = await p2.previousPage();
  const back2 = await back.previousPage();
  console.log([p0, p1, p2, back, back2].map(p => p.instances.map(m => m.body).join(',')).join(' | '));
  console.log('end of list:', await p2.nextPage());
  const all = await c.messages.list({ pageSize: 2 });
  console.log('list all:', all.map(m => m.body).join(','));
})().catch(e => console.log('error', e.status, e.message));
