// test.mjs: the web page of `hark serve` in a real browser (Debian's
// chromium, headless, driven by playwright-core), against live servers
// started by test_ui.sh: HARK_URL (no key) and HARK_KEY_URL (with the API
// key HARK_KEY). Every request that is not to the loopback servers is
// aborted and counted, and every console error or uncaught exception is
// collected: either fails the run. A screenshot of every screen is saved
// at 1280x800 and 390x844, light and dark, into HARK_UI_SHOTS.
//
// Prints "PASS name" / "FAIL name" (reasons indented below), like the
// other tests, and exits non-zero when anything failed.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const BASE = process.env.HARK_URL;
const KEY_URL = process.env.HARK_KEY_URL;
const KEY = process.env.HARK_KEY;
const USER_KEY = process.env.HARK_USER_KEY;
const VAD_URL = process.env.HARK_VAD_URL;
const MEDIA = process.env.HARK_MEDIA;
const AUDIO = process.env.HARK_AUDIO;
const TMP = process.env.HARK_TMP;
const SHOTS = process.env.HARK_UI_SHOTS;
const SLOW = Number(process.env.HARK_SLOW || 1);
const CHROMIUM = process.env.HARK_CHROMIUM || '/usr/bin/chromium';
// The model and clip for the player checks: rt-mini.en-f16 finds a single
// segment in jfk.mp4, rt-mini-f16 finds 7 in this 75 s WAV in a few seconds.
const PLAYER_MODEL = process.env.HARK_UI_PLAYER_MODEL || 'rt-mini-f16';
const PLAYER_CLIP = path.join(AUDIO, 'hifitts_concat_75s.wav');

const T = 15000 * SLOW; // page waits
const JOB = 90000 * SLOW; // a transcription

let passed = 0;
let failed = 0;
const external = [];
const consoleErrors = [];
let shots = 0;

async function check(name, fn) {
  try {
    await fn();
    console.log(`PASS ${name}`);
    passed++;
    return true;
  } catch (e) {
    console.log(`FAIL ${name}`);
    for (const line of String(e && e.stack ? e.message : e).split('\n').slice(0, 6)) console.log(`  ${line}`);
    failed++;
    return false;
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

function isLocal(url) {
  if (url.startsWith('blob:') || url.startsWith('data:')) return true;
  try {
    const u = new URL(url);
    const allowed = [new URL(BASE).host, new URL(KEY_URL).host, new URL(VAD_URL).host];
    return (u.protocol === 'http:' || u.protocol === 'ws:') && allowed.includes(u.host);
  } catch {
    return false;
  }
}

// The browser logs "Failed to load resource" for every answer of 400 or
// more, even those the page expects and handles; these are the ones the
// checks cause on purpose: a duplicate upload (409), a text file (415) and
// requests to the key server before the key is given (401).
function expectedStatus(text, url) {
  const m = /^Failed to load resource: the server responded with a status of (\d+)/.exec(text);
  if (!m) return false;
  const p = new URL(url).pathname;
  if (p === '/upload' && (m[1] === '409' || m[1] === '415')) return true;
  return m[1] === '401' && new URL(url).host === new URL(KEY_URL).host;
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });

async function newPage(label, options = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light', acceptDownloads: true, ...options });
  await ctx.route('**/*', (route) => {
    const url = route.request().url();
    if (isLocal(url)) return route.continue();
    external.push(url);
    return route.abort('blockedbyclient');
  });
  const page = await ctx.newPage();
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const where = m.location().url || '';
    if (expectedStatus(m.text(), where)) return;
    consoleErrors.push(`${label}: ${m.text()} (${where})`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${label}: uncaught ${e.message}`));
  return { ctx, page };
}

// shoot(page, name): the screen as it is, at desktop and phone width, in
// light and dark.
async function shoot(page, name) {
  const vp = page.viewportSize();
  for (const [w, h, tag] of [[1280, 800, 'desktop'], [390, 844, 'phone']]) {
    for (const scheme of ['light', 'dark']) {
      await page.setViewportSize({ width: w, height: h });
      await page.emulateMedia({ colorScheme: scheme });
      await page.screenshot({ path: path.join(SHOTS, `${name}-${tag}-${scheme}.png`), fullPage: true });
      shots++;
    }
  }
  await page.setViewportSize(vp);
  await page.emulateMedia({ colorScheme: 'light' });
}

const row = (page, name, nth = 0) => page.locator(`#queue li[data-name="${name}"]`).nth(nth);

async function api(base, p, init = {}) {
  const headers = { ...(init.headers || {}) };
  if (base === KEY_URL) headers.Authorization = `Bearer ${KEY}`;
  return fetch(base + p, { ...init, headers });
}

async function seed(file) {
  const form = new FormData();
  form.append('file', new Blob([fs.readFileSync(file)]), path.basename(file));
  const res = await api(BASE, '/upload', { method: 'POST', body: form });
  assert(res.status === 201 || res.status === 409, `seeding ${file}: HTTP ${res.status}`);
  return res.json();
}

// tabTo(page, test): presses Tab until the focused element passes test
// (a function run in the page on document.activeElement).
async function tabTo(page, test, what, max = 80) {
  for (let i = 0; i < max; i++) {
    if (await page.evaluate(test)) return;
    await page.keyboard.press('Tab');
  }
  throw new Error(`Tab never reached ${what}`);
}

const ids = {};

// ------------------------------------------------------------ main page

const { page } = await newPage('main');

await check('ui_page_loads', async () => {
  const res = await page.goto(`${BASE}/`);
  assert(res.status() === 200, `GET / -> ${res.status()}`);
  const csp = res.headers()['content-security-policy'] || '';
  assert(csp.includes("script-src 'self'"), `no CSP on the page: "${csp}"`);
  await page.waitForFunction(() => document.querySelectorAll('#opt-model option').length > 1, null, { timeout: T });
  const models = await page.$$eval('#opt-model option', (o) => o.map((x) => x.value));
  assert(models.includes('rt-mini.en-f16') && models.includes(PLAYER_MODEL), `models: ${models.join(',')}`);
  assert(!models.includes('whisper-1'), 'whisper-1 is listed as a model');
  assert((await page.inputValue('#opt-language')) === 'auto', 'the language is not "auto" by default');
  assert((await page.title()).includes('hark'), `title ${await page.title()}`);
});

await check('ui_upload_progress_reaches_100', async () => {
  await page.evaluate(() => {
    window.__seen = [];
    new MutationObserver(() => {
      for (const r of document.querySelectorAll('#queue li')) window.__seen.push(`${r.dataset.name}:${r.dataset.progress}`);
    }).observe(document.getElementById('queue'), { subtree: true, attributes: true, childList: true });
  });
  await page.setInputFiles('#file-input', path.join(MEDIA, 'jfk.mp4'));
  const r = row(page, 'jfk.mp4');
  await r.waitFor({ timeout: T });
  await page.waitForFunction(() => {
    const li = document.querySelector('#queue li[data-name="jfk.mp4"]');
    return li && li.dataset.state === 'uploaded';
  }, null, { timeout: T });
  const bar = await r.locator('progress').evaluate((p) => [p.value, p.max]);
  assert(bar[0] === 100 && bar[1] === 100, `progress bar at ${bar[0]} of ${bar[1]}`);
  const text = await r.locator('.status').textContent();
  assert(text.includes('100 %'), `status "${text}"`);
  const seen = await page.evaluate(() => window.__seen);
  assert(seen.includes('jfk.mp4:100'), `progress values seen: ${[...new Set(seen)].join(' ')}`);
  const href = await r.locator('a', { hasText: 'Open transcript' }).isHidden();
  assert(href, 'an "Open transcript" link before any transcription');
  const meta = await (await api(BASE, '/uploads?limit=10')).json();
  assert(meta.total === 1 && meta.uploads[0].filename === 'jfk.mp4', `history after upload: ${JSON.stringify(meta).slice(0, 200)}`);
  ids.jfk = meta.uploads[0].id;
  await shoot(page, 'upload-queue');
});

await check('ui_duplicate_already_uploaded', async () => {
  await page.setInputFiles('#file-input', path.join(MEDIA, 'jfk.mp4'));
  const r = row(page, 'jfk.mp4', 1);
  await r.locator('.status', { hasText: 'Already uploaded' }).waitFor({ timeout: T });
  const link = r.locator('.note a');
  assert((await link.getAttribute('href')) === `#/player/${ids.jfk}`, `link ${await link.getAttribute('href')}`);
  assert((await link.textContent()) === 'jfk.mp4', 'the link does not name the file');
  const meta = await (await api(BASE, '/uploads')).json();
  assert(meta.total === 1, `a duplicate made a second entry (${meta.total})`);
});

await check('ui_text_file_shows_error', async () => {
  const txt = path.join(TMP, 'notes.txt');
  fs.writeFileSync(txt, 'This is plain text, not audio.\n');
  await page.setInputFiles('#file-input', txt);
  const err = row(page, 'notes.txt').locator('.error');
  await err.waitFor({ state: 'visible', timeout: T });
  const text = await err.textContent();
  assert(/not an audio or video file/.test(text), `error text "${text}"`);
  assert((await row(page, 'notes.txt').getAttribute('data-state')) === 'error', 'row not in the error state');
  await shoot(page, 'upload-error');
});

await check('ui_cancel_upload', async () => {
  // A large file is throttled so that cancel lands mid-upload: the route
  // holds the request until the row has been canceled.
  const big = path.join(TMP, 'big.wav');
  fs.writeFileSync(big, Buffer.concat([fs.readFileSync(PLAYER_CLIP), Buffer.alloc(1 << 20)]));
  let held = null;
  const release = new Promise((resolve) => {
    held = resolve;
  });
  await page.route('**/upload', async (route) => {
    await release;
    await route.continue().catch(() => {});
  });
  await page.setInputFiles('#file-input', big);
  const r = row(page, 'big.wav');
  await r.locator('button', { hasText: 'Cancel upload' }).click({ timeout: T });
  await r.locator('.status', { hasText: 'Upload canceled' }).waitFor({ timeout: T });
  held();
  await page.unroute('**/upload');
  const meta = await (await api(BASE, '/uploads')).json();
  assert(!meta.uploads.some((u) => u.filename === 'big.wav'), 'the canceled upload is in the history');
  await r.locator('button', { hasText: 'Remove from list' }).click();
  assert((await row(page, 'big.wav').count()) === 0, 'the row was not removed');
});

await check('ui_schedule_and_wait_for_done', async () => {
  await page.setInputFiles('#file-input', PLAYER_CLIP);
  const clip = path.basename(PLAYER_CLIP);
  await page.waitForFunction((n) => document.querySelector(`#queue li[data-name="${n}"]`)?.dataset.state === 'uploaded', clip, { timeout: T });
  await page.selectOption('#opt-model', PLAYER_MODEL);
  await page.evaluate(() => {
    window.__states = [];
    window.__liveText = [];
    new MutationObserver(() => {
      for (const r of document.querySelectorAll('#queue li')) {
        window.__states.push(`${r.dataset.name}:${r.dataset.state}`);
        const live = r.querySelector('.live-text');
        if (live && !live.hidden && r.dataset.state === 'running') window.__liveText.push(`${r.dataset.name}:${live.textContent}`);
      }
    }).observe(document.getElementById('queue'), { subtree: true, attributes: true, childList: true, characterData: true });
  });
  await page.click('#transcribe-all');
  for (const n of ['jfk.mp4', clip]) {
    await page.waitForFunction((name) => document.querySelector(`#queue li[data-name="${name}"]`)?.dataset.state === 'done', n, { timeout: JOB });
  }
  const states = new Set(await page.evaluate(() => window.__states));
  assert(states.has(`${clip}:queued`) || states.has(`${clip}:running`), `the clip was never shown queued or running: ${[...states].join(' ')}`);
  // While it ran, its row showed the transcript so far.
  const live = (await page.evaluate(() => window.__liveText)).filter((t) => t.startsWith(`${clip}:`) && t.length > clip.length + 1);
  assert(live.length > 0, 'the running row never showed the transcript so far');
  const errors = await page.$$eval('#queue li .error:not([hidden])', (e) => e.map((x) => x.textContent));
  assert(errors.length === 1 && errors[0].includes('notes.txt'), `row errors: ${errors.join(' | ')}`);
  const status = await row(page, clip).locator('.status').textContent();
  assert(/^Done in /.test(status), `status "${status}"`);
  const list = await (await api(BASE, '/uploads')).json();
  const c = list.uploads.find((u) => u.filename === clip);
  assert(c && c.status === 'done' && c.model === PLAYER_MODEL, `clip entry ${JSON.stringify(c).slice(0, 300)}`);
  ids.clip = c.id;
  await shoot(page, 'upload-done');
});

let segments = [];
await check('ui_player_click_third_segment_seeks', async () => {
  const res = await (await api(BASE, `/results/${ids.clip}`)).json();
  segments = res.segments;
  assert(segments.length >= 3, `only ${segments.length} segments`);
  await row(page, path.basename(PLAYER_CLIP)).locator('a', { hasText: 'Open transcript' }).click();
  await page.waitForFunction((n) => document.querySelectorAll('#segments .seg').length === n, segments.length, { timeout: T });
  await page.waitForFunction(() => document.getElementById('player-video').readyState >= 1, null, { timeout: T });
  const src = await page.$eval('#player-video', (v) => v.currentSrc);
  assert(src.endsWith(`/${ids.clip}/${path.basename(PLAYER_CLIP)}`), `video src ${src}`);
  await page.locator('#segments .seg').nth(2).click();
  const t = await page.$eval('#player-video', (v) => v.currentTime);
  assert(Math.abs(t - segments[2].start) < 0.05, `currentTime ${t}, third segment starts at ${segments[2].start}`);
  await page.waitForFunction(() => document.querySelector('#segments .seg[aria-current]')?.dataset.index === '2', null, { timeout: T });
  // Seeking by the media element itself moves the highlight too.
  await page.$eval('#player-video', (v, s) => { v.currentTime = s; }, (segments[0].start + segments[0].end) / 2);
  await page.waitForFunction(() => document.querySelector('#segments .seg[aria-current]')?.dataset.index === '0', null, { timeout: T });
  await shoot(page, 'player');
});

// The search view finds a word of the clip's transcript, marks it in the
// hit, and the hit opens the player at that segment.
await check('ui_search_opens_player_at_hit', async () => {
  assert(segments.length >= 2, 'no segments to search');
  let k = -1;
  let word = '';
  for (let i = segments.length - 1; i >= 1 && k < 0; i--) {
    const words = (segments[i].text.match(/[A-Za-z]{4,}/g) || []).sort((a, b) => b.length - a.length);
    if (words.length && segments[i].start > 0) {
      k = i;
      word = words[0];
    }
  }
  assert(k > 0, 'no segment after the first has a word of 4 letters');
  await page.click('a[data-nav="search"]');
  await page.fill('#search-input', word.toUpperCase());
  await page.press('#search-input', 'Enter');
  await page.waitForFunction(() => document.querySelectorAll('#search-results .hit').length > 0, null, { timeout: T });
  assert(new URL(page.url()).hash === `#/search?q=${encodeURIComponent(word.toUpperCase())}`, `url ${page.url()}`);
  const want = `#/player/${ids.clip}@${segments[k].start.toFixed(2)}`;
  const hit = page.locator(`#search-results a[href="${want}"]`);
  assert((await hit.count()) === 1, `no hit linking to ${want}: ${await page.$$eval('#search-results a', (a) => a.map((x) => x.getAttribute('href')).join(' '))}`);
  const marked = await hit.locator('xpath=../p/mark').allTextContents();
  assert(marked.some((m) => m.toLowerCase() === word.toLowerCase()), `marked ${JSON.stringify(marked)}, word ${word}`);
  await shoot(page, 'search');
  await hit.click();
  await page.waitForFunction(() => !document.getElementById('view-player').hidden, null, { timeout: T });
  await page.waitForFunction((s) => Math.abs(document.getElementById('player-video').currentTime - s) < 0.05,
    segments[k].start, { timeout: T });
  await page.waitForFunction((i) => document.querySelector('#segments .seg[aria-current]')?.dataset.index === String(i), k, { timeout: T });
  // Back to the search: the hits are still there.
  await page.goBack();
  await page.waitForFunction(() => !document.getElementById('view-search').hidden &&
    document.querySelectorAll('#search-results .hit').length > 0, null, { timeout: T });
  await page.goForward();
  await page.waitForFunction(() => !document.getElementById('view-player').hidden, null, { timeout: T });
});

// The player opens a job still waiting in the queue: the media plays
// beside the transcript as it is written, read from the job's event stream
// (no polling), and the finished transcript takes its place.
await check('ui_player_live_transcript', async () => {
  const list = await (await api(BASE, '/uploads')).json();
  const jfk = list.uploads.find((u) => u.filename === 'jfk.mp4');
  assert(jfk && ids.clip, 'no entries to schedule');
  const schedule = (id, extra = {}) => api(BASE, '/model', { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ id, ...extra }) });
  // jfk.mp4 first, so that the clip waits in the queue while the page opens.
  assert((await schedule(jfk.id)).status === 202, 'jfk.mp4 not scheduled');
  assert((await schedule(ids.clip, { model: PLAYER_MODEL })).status === 202, 'the clip not scheduled');
  const requests = [];
  const onRequest = (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`);
  page.on('request', onRequest);
  await page.click('a[data-nav="history"]');
  await page.evaluate((id) => {
    window.__live = [];
    new MutationObserver(() => {
      window.__live.push({ n: document.querySelectorAll('#segments .seg').length,
        live: document.getElementById('player-body').dataset.live === 'true', status: document.getElementById('player-status').textContent });
    }).observe(document.getElementById('segments'), { childList: true });
    window.__statuses = [];
    new MutationObserver(() => window.__statuses.push(document.getElementById('player-status').textContent))
      .observe(document.getElementById('player-status'), { childList: true, characterData: true, subtree: true });
    location.hash = `#/player/${id}`;
  }, ids.clip);
  await page.waitForFunction(() => document.getElementById('player-body').dataset.live === 'true', null, { timeout: T });
  await shoot(page, 'player-live');
  await page.waitForFunction(() => !document.getElementById('player-body').dataset.live &&
    document.getElementById('player-pending').hidden, null, { timeout: JOB });
  page.off('request', onRequest);
  const res = await (await api(BASE, `/results/${ids.clip}`)).json();
  await page.waitForFunction((n) => document.querySelectorAll('#segments .seg').length === n, res.segments.length, { timeout: T });
  const log = await page.evaluate(() => window.__live);
  const grew = log.filter((e) => e.live && e.n > 0);
  assert(grew.length > 0, `no segment was shown while the job ran: ${JSON.stringify(log).slice(0, 300)}`);
  assert(grew.some((e) => /Transcribing|Queued/.test(e.status)), `the status while growing: ${JSON.stringify(grew).slice(0, 300)}`);
  // The clip waited behind jfk.mp4 alone: the next job to run, place 1.
  const queued = (await page.evaluate(() => window.__statuses)).filter((t) => /Queued/.test(t));
  assert(queued.every((t) => t.includes('Queued (position 1)')), `queued statuses: ${queued.join(' | ')}`);
  const words = await page.evaluate(async () => {
    const { status } = await import('/ui/format.js');
    return [1, 3].map((n) => status({ status: 'queued', queue_position: n }));
  });
  assert(words[0] === 'Queued (position 1)' && words[1] === 'Queued (position 3)', `queue places in words: ${words.join(', ')}`);
  const polls = requests.filter((r) => r === `GET /uploads/${ids.clip}`).length;
  const streams = requests.filter((r) => r === `GET /jobs/${ids.clip}/events`).length;
  assert(streams >= 1, `no event stream: ${requests.join(' ')}`);
  assert(polls <= 2, `the entry was fetched ${polls} times while its job ran: ${requests.join(' ')}`);
  const src = await page.$eval('#player-video', (v) => v.currentSrc);
  assert(src.endsWith(`/${ids.clip}/${path.basename(PLAYER_CLIP)}`), `video src ${src}`);
});

await check('ui_player_captions_track_loads', async () => {
  await page.waitForFunction(() => {
    const t = document.querySelector('#player-video track');
    return t && t.readyState === 2 && t.track.cues && t.track.cues.length > 0;
  }, null, { timeout: T });
  const info = await page.$eval('#player-video track', (t) => ({ src: t.src, kind: t.kind, cues: t.track.cues.length, mode: t.track.mode, first: t.track.cues[0].startTime }));
  assert(info.src.endsWith(`/results/${ids.clip}?format=vtt`), `track src ${info.src}`);
  assert(info.kind === 'captions' && info.mode === 'showing', `kind ${info.kind} mode ${info.mode}`);
  // The cues are those of the server's WebVTT (cut at words, so there may
  // be more cues than segments).
  const vtt = await (await api(BASE, `/results/${ids.clip}?format=vtt`)).text();
  const times = [...vtt.matchAll(/^(?:(\d+):)?(\d\d):(\d\d\.\d{3}) --> /gm)]
    .map((m) => 3600 * Number(m[1] || 0) + 60 * Number(m[2]) + Number(m[3]));
  assert(times.length >= segments.length && info.cues === times.length,
    `${info.cues} cues, ${times.length} in the WebVTT, ${segments.length} segments`);
  assert(Math.abs(info.first - times[0]) < 0.01 && Math.abs(info.first - segments[0].start) < 1,
    `first cue at ${info.first}`);
});

await check('ui_downloads_content_types', async () => {
  const want = { txt: 'text/plain', srt: 'application/x-subrip', vtt: 'text/vtt', json: 'application/json' };
  for (const [f, type] of Object.entries(want)) {
    const [response, download] = await Promise.all([
      page.waitForResponse((r) => r.url().includes(`/results/${ids.clip}?format=${f}&download=1`), { timeout: T }),
      page.waitForEvent('download', { timeout: T }),
      page.click(`#player-body button[data-format="${f}"]`),
    ]);
    const ct = response.headers()['content-type'] || '';
    assert(ct.startsWith(type), `${f}: Content-Type ${ct}`);
    assert(/attachment/.test(response.headers()['content-disposition'] || ''), `${f}: no attachment disposition`);
    assert(download.suggestedFilename().endsWith(`.${f}`), `${f}: saved as ${download.suggestedFilename()}`);
    const body = fs.readFileSync(await download.path(), 'utf8');
    if (f === 'vtt') assert(body.startsWith('WEBVTT'), 'the VTT file does not start with WEBVTT');
    if (f === 'json') assert(JSON.parse(body).segments.length === segments.length, 'the JSON has other segments');
    if (f === 'srt') assert(/^1\r?\n\d\d:\d\d:\d\d,\d{3} --> /.test(body), `SRT starts ${body.slice(0, 40)}`);
    if (f === 'txt') assert(body.trim().length > 0, 'the text file is empty');
  }
});

await check('ui_copy_text', async () => {
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
  await page.click('#player-copy');
  await page.locator('#player-copy', { hasText: 'Copied' }).waitFor({ timeout: T });
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  const res = await (await api(BASE, `/results/${ids.clip}`)).json();
  assert(copied === res.text.trim(), `copied ${JSON.stringify(copied.slice(0, 80))}`);
});

// Word timestamps (on by default): every word of results.json is an element
// of its own with the word's times, and the segments read as before; a time
// inside a word marks that word alone (also while playing), a time between
// words none, and a click on a word seeks to its start.
await check('ui_player_words', async () => {
  const res = await (await api(BASE, `/results/${ids.clip}`)).json();
  const words = res.segments.flatMap((s, i) => (s.words || []).map((w) => ({ ...w, seg: i })));
  assert(words.length >= 4 && res.segments.every((s) => Array.isArray(s.words)),
    `${words.length} words in results.json`);
  const shown = await page.$$eval('#segments .word', (w) => w.map((x) => ({
    text: x.textContent, start: Number(x.dataset.start), end: Number(x.dataset.end),
    seg: Number(x.closest('.seg').dataset.index), title: x.title, unsure: x.classList.contains('unsure'),
  })));
  assert(shown.length === words.length, `${shown.length} word elements for ${words.length} words`);
  for (const k of [0, words.length - 1]) {
    assert(shown[k].text === words[k].word.trim(),
      `word ${k}: "${shown[k].text}", results.json has "${words[k].word}"`);
  }
  let worst = 0;
  words.forEach((w, k) => {
    worst = Math.max(worst, Math.abs(shown[k].start - w.start), Math.abs(shown[k].end - w.end));
    assert(shown[k].seg === w.seg && shown[k].text === w.word.trim(), `word ${k}: ${JSON.stringify(shown[k])}`);
    assert(shown[k].unsure === w.probability < 0.5 && (!shown[k].unsure || /\d+ %/.test(shown[k].title)),
      `word ${k} with probability ${w.probability}: ${JSON.stringify(shown[k])}`);
  });
  assert(worst < 1e-6, `word times differ from results.json by up to ${worst} s`);
  const texts = await page.$$eval('#segments .seg .text', (t) => t.map((x) => x.textContent));
  res.segments.forEach((s, i) => {
    const want = s.text.trim();
    const joined = s.words.map((w) => w.word.trim()).join(' ');
    assert(texts[i] === want || texts[i] === joined, `segment ${i} reads "${texts[i]}", not "${want}"`);
  });
  const current = () => page.$$eval('#segments .word',
    (w) => w.map((x, k) => (x.classList.contains('current') ? k : -1)).filter((k) => k >= 0));
  const marks = (k) => page.waitForFunction((n) => {
    const all = document.querySelectorAll('#segments .word');
    return document.querySelectorAll('#segments .word.current').length === 1 && all[n].classList.contains('current');
  }, k, { timeout: T }).catch(() => {});
  const seekTo = (t) => page.$eval('#player-video', (v, x) => new Promise((resolve) => {
    v.addEventListener('seeked', resolve, { once: true });
    v.currentTime = x;
  }), t);
  // A word of the middle segment, long enough to land inside.
  const inside = (w) => w.end - w.start >= 0.04 && w.start >= res.segments[w.seg].start &&
    w.end <= res.segments[w.seg].end;
  const mid = Math.floor(res.segments.length / 2);
  const pick = words.findIndex((w, k) => w.seg === mid && k > 0 && inside(w));
  assert(pick >= 0, 'no word of the middle segment lasts 40 ms');
  const t = (words[pick].start + words[pick].end) / 2;
  await seekTo(t);
  await marks(pick);
  const marked = await current();
  assert(marked.length === 1 && marked[0] === pick,
    `at ${t} s the marked words are [${marked}], not [${pick}] ("${words[pick].word}")`);
  const seg = await page.$eval('#segments .seg[aria-current]', (b) => Number(b.dataset.index)).catch(() => -1);
  assert(seg === words[pick].seg, `at ${t} s segment ${seg} is current, not ${words[pick].seg}`);
  await shoot(page, 'player-words');
  // While it plays, the mark moves on to the words that follow.
  await page.$eval('#player-video', (v) => { v.muted = true; return v.play(); });
  await page.waitForFunction((k) => [...document.querySelectorAll('#segments .word')]
    .findIndex((x) => x.classList.contains('current')) > k, pick, { timeout: 10_000 * SLOW }).catch(() => {});
  const playing = await current();
  await page.$eval('#player-video', (v) => v.pause());
  assert(playing.length === 1 && playing[0] > pick,
    `while playing from "${words[pick].word}" the marked words are [${playing}]`);
  // Between two words nothing is marked.
  const gap = words.findIndex((w, k) => k + 1 < words.length && words[k + 1].start - w.end >= 0.04);
  if (gap >= 0) {
    const g = (words[gap].end + words[gap + 1].start) / 2;
    await seekTo(g);
    await page.waitForFunction(() => !document.querySelector('#segments .word.current'), null, { timeout: T })
      .catch(() => {});
    const none = await current();
    assert(none.length === 0, `at ${g} s, between words ${gap} and ${gap + 1}, the marked words are [${none}]`);
  }
  // A click on a word of another segment seeks to that word's start.
  const other = words.findIndex((w, k) => w.seg !== words[pick].seg && k !== pick && inside(w) &&
    w.start > res.segments[w.seg].start + 0.05);
  assert(other >= 0, 'no word to click in another segment');
  await page.locator('#segments .word').nth(other).click();
  const after = await page.$eval('#player-video', (v) => v.currentTime);
  assert(Math.abs(after - words[other].start) < 0.05,
    `currentTime ${after} after a click on "${words[other].word}" at ${words[other].start}`);
  await marks(other);
  const clicked = await current();
  assert(clicked.length === 1 && clicked[0] === other,
    `after the click the marked words are [${clicked}], not [${other}]`);
});

await check('ui_player_video_mp4', async () => {
  await page.goto(`${BASE}/#/player/${ids.jfk}`);
  await page.waitForFunction(() => document.getElementById('player-video').readyState >= 1, null, { timeout: T });
  const v = await page.$eval('#player-video', (x) => ({ w: x.videoWidth, h: x.videoHeight, d: x.duration }));
  assert(v.w > 0 && v.h > 0 && Math.abs(v.d - 11) < 1, `video ${JSON.stringify(v)}`);
  // Seeking needs byte ranges: a seek near the end plays from there.
  await page.$eval('#player-video', (x) => { x.currentTime = 9; });
  await page.waitForFunction(() => {
    const x = document.getElementById('player-video');
    return !x.seeking && Math.abs(x.currentTime - 9) < 0.1 && x.readyState >= 2;
  }, null, { timeout: T });
  await shoot(page, 'player-video');
});

// ------------------------------------------------------------- keyboard

await check('ui_keyboard_upload_schedule_open_player', async () => {
  const { ctx, page: kp } = await newPage('keyboard');
  await kp.goto(`${BASE}/`);
  await kp.waitForFunction(() => document.querySelectorAll('#opt-model option').length > 1, null, { timeout: T });
  // Space on the focused file input opens the picker. On a loaded machine
  // the first key press can land before the page has settled, so a press
  // that opens nothing is tried again (the keyboard still does it all).
  let chooser = null;
  for (let attempt = 0; attempt < 3 && !chooser; attempt++) {
    await tabTo(kp, () => document.activeElement?.id === 'file-input', 'the file picker');
    [chooser] = await Promise.all([
      kp.waitForEvent('filechooser', { timeout: T / 2 }).catch(() => null),
      kp.keyboard.press('Space'),
    ]);
  }
  assert(chooser, 'Space on the file input never opened the file picker');
  await chooser.setFiles(path.join(MEDIA, 'jfk.flac'));
  await kp.waitForFunction(() => document.querySelector('#queue li[data-name="jfk.flac"]')?.dataset.state === 'uploaded', null, { timeout: T });
  await tabTo(kp, () => document.activeElement?.textContent === 'Transcribe' && !!document.activeElement.closest('li[data-name="jfk.flac"]'), 'the row\'s Transcribe button');
  await kp.keyboard.press('Enter');
  await kp.waitForFunction(() => document.querySelector('#queue li[data-name="jfk.flac"]')?.dataset.state === 'done', null, { timeout: JOB });
  // The focus moved from the Transcribe button to the row's next control.
  await tabTo(kp, () => document.activeElement?.textContent === 'Open transcript' && !!document.activeElement.closest('li[data-name="jfk.flac"]'), 'the Open transcript link');
  await kp.keyboard.press('Enter');
  await kp.waitForFunction(() => location.hash.startsWith('#/player/') && document.querySelectorAll('#segments .seg').length > 0, null, { timeout: T });
  await kp.waitForFunction(() => document.getElementById('player-video').readyState >= 1, null, { timeout: T });
  await tabTo(kp, () => !!document.activeElement?.classList.contains('seg'), 'a segment', 120);
  const start = Number(await kp.evaluate(() => document.activeElement.dataset.start));
  await kp.$eval('#player-video', (v) => { v.currentTime = 5; });
  await kp.keyboard.press('Enter');
  const t = await kp.$eval('#player-video', (v) => v.currentTime);
  assert(Math.abs(t - start) < 0.05, `currentTime ${t} after Enter on a segment starting at ${start}`);
  await ctx.close();
});

// -------------------------------------------------------------- history

await check('ui_history_filter_and_pagination', async () => {
  for (const f of ['jfk.mp3', 'fleurs-de-000.ogg', 'fleurs-es-000.ogg', 'fleurs-fr-000.ogg', 'multilingual.mp3']) {
    const m = await seed(path.join(MEDIA, f));
    ids[f] = m.id;
  }
  const all = (await (await api(BASE, '/uploads?limit=1000')).json()).uploads;
  await page.goto(`${BASE}/#/history`);
  await page.waitForFunction((n) => document.querySelectorAll('#history-body tr').length === n, all.length, { timeout: T });
  assert(all.length === 8, `${all.length} entries in the history`);
  const done = page.locator(`#history-body tr[data-id="${ids.clip}"]`);
  const cells = await done.locator('th, td').allTextContents();
  assert(cells[0] === path.basename(PLAYER_CLIP) && cells[4] === PLAYER_MODEL && cells[5] === 'Done' && cells[6] !== '—', `clip row: ${cells.join(' | ')}`);
  await shoot(page, 'history');

  await page.fill('#history-filter', 'FLEURS');
  await page.waitForFunction(() => document.querySelectorAll('#history-body tr').length === 3, null, { timeout: T });
  const names = await page.$$eval('#history-body tr th', (t) => t.map((x) => x.textContent));
  assert(names.every((n) => n.startsWith('fleurs-')), `filtered: ${names.join(', ')}`);
  await page.fill('#history-filter', 'no such name');
  await page.locator('#history-message', { hasText: 'No file name contains' }).waitFor({ timeout: T });
  await page.fill('#history-filter', '');

  await page.selectOption('#history-size', '5');
  await page.waitForFunction(() => document.querySelectorAll('#history-body tr').length === 5, null, { timeout: T });
  assert((await page.textContent('#history-page')).startsWith('Page 1 of 2'), await page.textContent('#history-page'));
  assert(await page.isDisabled('#history-prev'), 'Previous is enabled on page 1');
  await page.click('#history-next');
  await page.waitForFunction(() => document.querySelectorAll('#history-body tr').length === 3, null, { timeout: T });
  assert((await page.textContent('#history-page')).startsWith('Page 2 of 2'), await page.textContent('#history-page'));
  assert(await page.isDisabled('#history-next'), 'Next is enabled on the last page');
  const page2 = await page.$$eval('#history-body tr', (t) => t.map((x) => x.dataset.id));
  const newestFirst = all.map((u) => u.id);
  assert(JSON.stringify(page2) === JSON.stringify(newestFirst.slice(5)), 'page 2 is not entries 6 to 8, newest first');
  await page.click('#history-prev');

  // Sorting by name covers every page.
  await page.click('#history-table th[data-key="filename"] button');
  await page.waitForFunction(() => document.querySelector('#history-table th[data-key="filename"]').getAttribute('aria-sort') === 'ascending', null, { timeout: T });
  const sorted = all.map((u) => u.filename).sort((a, b) => a.localeCompare(b, undefined, { numeric: true, sensitivity: 'base' }));
  const shown = await page.$$eval('#history-body tr th', (t) => t.map((x) => x.textContent));
  assert(JSON.stringify(shown) === JSON.stringify(sorted.slice(0, 5)), `sorted page 1: ${shown.join(', ')}`);
  await page.click('#history-table th[data-key="filename"] button');
  const desc = await page.$$eval('#history-body tr th', (t) => t.map((x) => x.textContent));
  assert(JSON.stringify(desc) === JSON.stringify(sorted.slice().reverse().slice(0, 5)), `descending page 1: ${desc.join(', ')}`);
  await page.selectOption('#history-size', '10');
  await shoot(page, 'history-sorted');
});

await check('ui_history_delete_with_confirmation', async () => {
  const id = ids['fleurs-es-000.ogg'];
  const btn = page.locator(`#history-body tr[data-id="${id}"] button[data-action="delete"]`);
  await btn.click();
  await page.waitForFunction(() => document.getElementById('confirm-dialog').open, null, { timeout: T });
  assert((await page.textContent('#confirm-title')).includes('fleurs-es-000.ogg'), 'the dialog does not name the file');
  await shoot(page, 'delete-dialog');
  await page.click('#confirm-dialog button[value="cancel"]');
  await page.waitForFunction(() => !document.getElementById('confirm-dialog').open, null, { timeout: T });
  assert((await api(BASE, `/uploads/${id}`)).status === 200, 'Cancel deleted the entry');
  assert((await page.locator(`#history-body tr[data-id="${id}"]`).count()) === 1, 'the row is gone after Cancel');
  await btn.click();
  await page.click('#confirm-ok');
  await page.waitForFunction((x) => !document.querySelector(`#history-body tr[data-id="${x}"]`), id, { timeout: T });
  assert((await api(BASE, `/uploads/${id}`)).status === 404, 'the entry is still on the server');
  assert((await page.$$('#history-body tr')).length === 7, 'not 7 rows after the delete');
});

// -------------------------------------------------------------- API key

await check('ui_api_key_dialog', async () => {
  const { ctx, page: kp } = await newPage('api-key');
  await kp.goto(`${KEY_URL}/`);
  await kp.waitForFunction(() => document.getElementById('key-dialog').open, null, { timeout: T });
  await shoot(kp, 'api-key-dialog');
  await kp.fill('#key-input', KEY);
  await kp.click('#key-save');
  await kp.waitForFunction(() => document.querySelectorAll('#opt-model option').length > 1, null, { timeout: T });
  assert((await kp.evaluate(() => localStorage.getItem('hark.apiKey'))) === KEY, 'the key is not in localStorage');
  await kp.setInputFiles('#file-input', path.join(MEDIA, 'jfk.mp4'));
  await kp.waitForFunction(() => document.querySelector('#queue li[data-name="jfk.mp4"]')?.dataset.state === 'uploaded', null, { timeout: T });
  await kp.locator('#queue li[data-name="jfk.mp4"] button', { hasText: 'Transcribe' }).click();
  await kp.waitForFunction(() => document.querySelector('#queue li[data-name="jfk.mp4"]')?.dataset.state === 'done', null, { timeout: JOB });
  await kp.locator('#queue li[data-name="jfk.mp4"] a', { hasText: 'Open transcript' }).click();
  await kp.waitForFunction(() => {
    const v = document.getElementById('player-video');
    const t = v.querySelector('track');
    return v.readyState >= 1 && t && t.readyState === 2;
  }, null, { timeout: T });
  const srcs = await kp.$eval('#player-video', (v) => [v.currentSrc, v.querySelector('track').src]);
  assert(srcs.every((s) => s.startsWith('blob:')), `media with a key not loaded as blobs: ${srcs.join(' ')}`);
  await kp.goto(`${KEY_URL}/#/history`);
  await kp.waitForFunction(() => document.querySelectorAll('#history-body tr').length === 1, null, { timeout: T });
  assert(!(await kp.evaluate(() => document.getElementById('key-dialog').open)), 'the key dialog opened again');
  await ctx.close();
});

// The keyed server's own key is its admin: the history says it shows every
// user's uploads. A user's key (carol, from hark keys add) sees an empty
// history under its own name, not the admin's upload.
await check('ui_history_owner', async () => {
  const { ctx, page: kp } = await newPage('owner');
  // Init scripts run before the page's own, in the order added: the key is
  // in place before the first request, and the later one wins.
  await ctx.addInitScript((k) => localStorage.setItem('hark.apiKey', k), KEY);
  await kp.goto(`${KEY_URL}/#/history`);
  await kp.waitForFunction(() => !document.getElementById('history-owner').hidden, null, { timeout: T });
  const admin = await kp.textContent('#history-owner');
  assert(/Every user/.test(admin), `the admin's history says "${admin}"`);
  await ctx.addInitScript((k) => localStorage.setItem('hark.apiKey', k), USER_KEY);
  await kp.reload();
  await kp.waitForFunction(() => /carol/.test(document.getElementById('history-owner').textContent), null, { timeout: T });
  await kp.waitForFunction(() => !document.getElementById('history-message').hidden, null, { timeout: T });
  assert((await kp.$$('#history-body tr')).length === 0, 'carol sees uploads that are not hers');
  await shoot(kp, 'history-owner');
  await ctx.close();
});

// ----------------------------------------------------- speech detection

// On the server with a VAD model: speech_gaps_71s.wav (speech from 2.31 to
// 12.64 s and from 39.04 to 59.01 s) has its 12 stretches of speech drawn
// in colour on a grey timeline; a click on the timeline seeks there; with
// "skip" on, playing in the 12.64-39.04 s gap jumps to 39.04 s. A file of
// silence says it has no speech.
async function vadEntry(file) {
  const form = new FormData();
  form.append('file', new Blob([fs.readFileSync(file)]), path.basename(file));
  const up = await (await fetch(`${VAD_URL}/upload`, { method: 'POST', body: form })).json();
  const res = await fetch(`${VAD_URL}/model`, { method: 'POST', body: JSON.stringify({ id: up.id, wait: true }) });
  assert(res.status === 200, `scheduling ${file}: HTTP ${res.status}`);
  return up.id;
}

await check('ui_player_speech_timeline', async () => {
  const id = await vadEntry(path.join(AUDIO, 'speech_gaps_71s.wav'));
  const result = await (await fetch(`${VAD_URL}/results/${id}`)).json();
  const { page: vp, ctx } = await newPage('vad');
  await vp.goto(`${VAD_URL}/#/player/${id}`);
  await vp.waitForFunction(() => !document.getElementById('speech').hidden, null, { timeout: T });
  const spans = await vp.$$eval('#speech-timeline .span', (s) => s.map((x) => [parseFloat(x.style.left), parseFloat(x.style.width)]));
  assert(spans.length === 12 && result.vad.speech.length === 12, `${spans.length} spans drawn`);
  assert(Math.abs(spans[0][0] - (100 * 2.31) / 71) < 0.01 && Math.abs(spans[4][0] - (100 * 39.04) / 71) < 0.01,
    `span positions ${JSON.stringify(spans.slice(0, 5))}`);
  const summary = await vp.textContent('#speech-summary');
  assert(/12 stretches/.test(summary), `summary "${summary}"`);
  await vp.waitForFunction(() => document.getElementById('player-video').readyState >= 1, null, { timeout: T });
  // A click a quarter of the way along seeks to a quarter of 71 s.
  const box = await vp.locator('#speech-timeline').boundingBox();
  await vp.mouse.click(box.x + box.width / 4, box.y + box.height / 2);
  const t = await vp.$eval('#player-video', (v) => v.currentTime);
  assert(Math.abs(t - 71 / 4) < 0.5, `clicked a quarter in: currentTime ${t}`);
  await shoot(vp, 'player-speech');
  // Skipping: from 15 s (no speech) playback jumps to 39.04 s.
  await vp.check('#skip-silence');
  await vp.$eval('#player-video', (v) => { v.muted = true; v.currentTime = 15; return v.play(); });
  await vp.waitForFunction(() => document.getElementById('player-video').currentTime >= 39, null, { timeout: 10_000 * SLOW });
  const after = await vp.$eval('#player-video', (v) => { v.pause(); return v.currentTime; });
  assert(after >= 39.04 - 0.01 && after < 45, `after skipping: ${after}`);
  // A recording without speech.
  const quiet = path.join(TMP, 'quiet.wav');
  const n = 16000 * 8;
  const buf = Buffer.alloc(44 + 2 * n);
  buf.write('RIFF', 0); buf.writeUInt32LE(36 + 2 * n, 4); buf.write('WAVEfmt ', 8); buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20); buf.writeUInt16LE(1, 22); buf.writeUInt32LE(16000, 24); buf.writeUInt32LE(32000, 28);
  buf.writeUInt16LE(2, 32); buf.writeUInt16LE(16, 34); buf.write('data', 36); buf.writeUInt32LE(2 * n, 40);
  fs.writeFileSync(quiet, buf);
  const qid = await vadEntry(quiet);
  await vp.goto(`${VAD_URL}/#/player/${qid}`);
  await vp.waitForFunction(() => !document.getElementById('speech').hidden &&
    /No speech/.test(document.getElementById('speech-summary').textContent), null, { timeout: T });
  const q = await vp.evaluate(() => [document.querySelectorAll('#speech-timeline .span').length,
    document.getElementById('speech-summary').textContent, document.getElementById('segments').textContent,
    document.getElementById('skip-silence').disabled]);
  assert(q[0] === 0 && /No speech was found/.test(q[1]) && /No speech was found/.test(q[2]) && q[3], `quiet: ${JSON.stringify(q)}`);
  await ctx.close();
});

// A job run without word timestamps: results.json has no words and the
// segments show their text alone.
await check('ui_player_without_words', async () => {
  const form = new FormData();
  form.append('file', new Blob([fs.readFileSync(path.join(MEDIA, 'jfk.mp4'))]), 'jfk.mp4');
  const up = await (await fetch(`${VAD_URL}/upload`, { method: 'POST', body: form })).json();
  const body = JSON.stringify({ id: up.id, wait: true, word_timestamps: false });
  const sched = await fetch(`${VAD_URL}/model`, { method: 'POST', body });
  assert(sched.status === 200, `scheduling without words: HTTP ${sched.status}`);
  const result = await (await fetch(`${VAD_URL}/results/${up.id}`)).json();
  assert(result.segments.length > 0 && result.segments.every((s) => !s.words), 'results.json has words');
  const { page: wp, ctx } = await newPage('no-words');
  await wp.goto(`${VAD_URL}/#/player/${up.id}`);
  await wp.waitForFunction((n) => document.querySelectorAll('#segments .seg').length === n, result.segments.length,
    { timeout: T });
  const shown = await wp.evaluate(() => [document.querySelectorAll('#segments .word').length,
    [...document.querySelectorAll('#segments .seg .text')].map((x) => x.textContent)]);
  assert(shown[0] === 0, `${shown[0]} word elements without words`);
  result.segments.forEach((s, i) => {
    assert(shown[1][i] === (s.text.trim() || '…'), `segment ${i} reads "${shown[1][i]}"`);
  });
  await ctx.close();
});

// Without speech detection the timeline stays hidden.
await check('ui_player_no_timeline_without_vad', async () => {
  await page.goto(`${BASE}/#/player/${ids.clip}`);
  await page.waitForFunction(() => !document.getElementById('player-body').hidden, null, { timeout: T });
  assert(await page.$eval('#speech', (e) => e.hidden), 'the speech timeline shows without speech detection');
});

// ------------------------------------------------------------ the whole run

await check('ui_no_external_requests', async () => {
  assert(external.length === 0, `external requests: ${external.slice(0, 5).join(' ')}`);
});

await check('ui_no_console_errors', async () => {
  assert(consoleErrors.length === 0, consoleErrors.slice(0, 6).join('\n'));
});

await check('ui_screenshots_saved', async () => {
  const files = fs.readdirSync(SHOTS).filter((f) => f.endsWith('.png'));
  assert(shots > 0 && files.length === shots, `${files.length} files for ${shots} screenshots`);
});

await browser.close();
console.log(`  screenshots: ${SHOTS} (${shots} files)`);
process.exit(failed ? 1 : 0);
