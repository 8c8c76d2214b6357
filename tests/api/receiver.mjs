// receiver.mjs: a local HTTP receiver for hark's callbacks
// (tests/api/test_callbacks.sh). Listens on 127.0.0.1 (a free port,
// printed as "listening PORT"), answers POST /flaky with 500 the first
// time and 200 after, POST /down with 503 always, anything else with 200, and
// appends every request to HARK_LOG as one JSON line: {path, headers,
// body, validSignature} where validSignature says whether X-Hark-Signature
// is the HMAC-SHA256 of the raw body under HARK_SECRET.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';

const log = process.env.HARK_LOG;
const secret = process.env.HARK_SECRET || '';
let flaky = 0;

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const want = 'sha256=' + crypto.createHmac('sha256', secret).update(body).digest('hex');
    const got = req.headers['x-hark-signature'] || '';
    const validSignature = got.length === want.length && crypto.timingSafeEqual(Buffer.from(got), Buffer.from(want));
    fs.appendFileSync(log, JSON.stringify({ path: req.url, method: req.method, headers: req.headers,
      body: body.toString('utf8'), validSignature }) + '\n');
    let status = 200;
    if (req.url === '/flaky' && flaky++ === 0) status = 500;
    if (req.url === '/down') status = 503;
    res.writeHead(status, { 'Content-Type': 'text/plain' });
    res.end(status === 200 ? 'ok' : 'not now');
  });
});
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
