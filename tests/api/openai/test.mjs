// test.mjs: the official `openai` npm client (the exact version pinned in
// package.json) against hark serve's OpenAI-compatible routes under /v1:
// models.list, audio.transcriptions.create in every response_format and
// streaming,
// audio.translations.create, and errors surfacing as the client's APIError
// with the status, type, param and code the server sent.
//
// Run by tests/api/test_api.sh with the environment: HARK_URL (a server
// without an API key), HARK_KEY_URL and HARK_KEY (a server started with
// --api-key), HARK_MEDIA (the shared media folder) and HARK_TMP (a scratch
// folder). Prints "PASS name" / "FAIL name: reason" per check and exits 1
// if any failed.
import fs from 'node:fs';
import path from 'node:path';
import OpenAI, { toFile } from 'openai';
import { assert, check, tally } from './checks.mjs';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

const base = env('HARK_URL');
const keyBase = process.env.HARK_KEY_URL || '';
const key = process.env.HARK_KEY || '';
const media = env('HARK_MEDIA');
const tmp = env('HARK_TMP');
const mp4 = path.join(media, 'jfk.mp4');
const mp3 = path.join(media, 'jfk.mp3');

// No retries: a retried request would hide the first answer.
const client = new OpenAI({ apiKey: 'not-needed', baseURL: `${base}/v1`, maxRetries: 0, timeout: 300_000 });

const show = (v) => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s === undefined ? String(v) : s.slice(0, 200);
};

const srtTime = /^\d{2}:\d{2}:\d{2},\d{3} --> \d{2}:\d{2}:\d{2},\d{3}$/m;
const vttTime = /^(\d{2}:)?\d{2}:\d{2}\.\d{3} --> (\d{2}:)?\d{2}:\d{2}\.\d{3}/m;

function transcribe(format, extra = {}) {
  return client.audio.transcriptions.create({
    file: fs.createReadStream(mp4),
    model: 'whisper-1',
    response_format: format,
    ...extra,
  });
}

// expectError(promise, status, fields): the call fails with an APIError of
// that status whose type/param/code equal the given fields.
async function expectError(promise, status, fields) {
  let err = null;
  try {
    const r = await promise;
    throw new Error(`no error; got ${show(r)}`);
  } catch (e) {
    err = e;
  }
  if (!(err instanceof OpenAI.APIError)) throw err;
  assert(err.status === status, `status ${err.status}, expected ${status} (${err.message})`);
  assert(err.error && typeof err.error.message === 'string' && err.error.message.length > 0,
    `error.message missing: ${show(err.error)}`);
  for (const [k, v] of Object.entries(fields)) {
    assert(err[k] === v, `error.${k} is ${show(err[k])}, expected ${show(v)}`);
  }
  return err;
}

await check('openai_models_list', async () => {
  const page = await client.models.list();
  const ids = page.data.map((m) => m.id);
  assert(ids.includes('whisper-1'), `no whisper-1 in ${show(ids)}`);
  assert(ids.includes('rt-mini.en-f16'), `no rt-mini.en-f16 in ${show(ids)}`);
  const w = page.data.find((m) => m.id === 'whisper-1');
  assert(w.object === 'model' && w.owned_by === 'hark' && typeof w.created === 'number', `whisper-1: ${show(w)}`);
});

await check('openai_transcribe_json', async () => {
  const r = await transcribe('json');
  assert(r && typeof r === 'object' && typeof r.text === 'string', `got ${show(r)}`);
  assert(r.text.trim().length > 0, 'empty text');
});

await check('openai_transcribe_default_format', async () => {
  const r = await client.audio.transcriptions.create({ file: fs.createReadStream(mp4), model: 'whisper-1' });
  assert(r && typeof r.text === 'string', `got ${show(r)}`);
});

await check('openai_transcribe_text', async () => {
  const r = await transcribe('text');
  assert(typeof r === 'string' && r.trim().length > 0, `got ${show(r)}`);
  assert(!r.trimStart().startsWith('{') && !r.includes('-->'), `not plain text: ${show(r)}`);
});

await check('openai_transcribe_srt', async () => {
  const r = await transcribe('srt');
  assert(typeof r === 'string', `got ${show(r)}`);
  assert(r.trimStart().startsWith('1\n') || r.trimStart().startsWith('1\r\n'), `SRT does not start with cue 1: ${show(r)}`);
  assert(srtTime.test(r), `no SRT time line: ${show(r)}`);
});

await check('openai_transcribe_vtt', async () => {
  const r = await transcribe('vtt');
  assert(typeof r === 'string' && r.startsWith('WEBVTT'), `got ${show(r)}`);
  assert(vttTime.test(r), `no WebVTT time line: ${show(r)}`);
});

await check('openai_transcribe_verbose_json', async () => {
  const r = await transcribe('verbose_json');
  assert(r.task === 'transcribe', `task ${show(r.task)}`);
  assert(r.language === 'english', `language ${show(r.language)}`);
  assert(typeof r.duration === 'number' && r.duration > 10.5 && r.duration < 12.5, `duration ${show(r.duration)}`);
  assert(typeof r.text === 'string', `text ${show(r.text)}`);
  assert(Array.isArray(r.segments) && r.segments.length > 0, `segments ${show(r.segments)}`);
  for (const s of r.segments) {
    assert(typeof s.start === 'number' && typeof s.end === 'number' && s.start <= s.end, `segment ${show(s)}`);
    assert(typeof s.text === 'string' && typeof s.id === 'number', `segment ${show(s)}`);
  }
});

await check('openai_transcribe_words', async () => {
  const r = await transcribe('verbose_json', { timestamp_granularities: ['word', 'segment'] });
  assert(Array.isArray(r.words) && r.words.length > 0, `words ${show(r.words)}`);
  for (const w of r.words) {
    assert(typeof w.word === 'string' && typeof w.start === 'number' && typeof w.end === 'number' && w.start <= w.end,
      `word ${show(w)}`);
  }
  assert(Array.isArray(r.segments), 'segments missing');
});

await check('openai_transcribe_buffer_upload', async () => {
  // The client's own file helper, from bytes in memory, with options.
  const file = await toFile(fs.readFileSync(mp3), 'jfk.mp3', { type: 'audio/mpeg' });
  const r = await client.audio.transcriptions.create({
    file, model: 'rt-mini.en-f16', language: 'en', temperature: 0, prompt: 'President Kennedy.',
  });
  assert(typeof r.text === 'string', `got ${show(r)}`);
});

await check('openai_translation', async () => {
  // An English-only model cannot translate; the multilingual one can.
  const r = await client.audio.translations.create({ file: fs.createReadStream(mp3), model: 'rt-mini-f16' });
  assert(r && typeof r.text === 'string', `got ${show(r)}`);
});

await check('openai_error_not_media', async () => {
  const bad = path.join(tmp, 'openai-notes.txt');
  fs.writeFileSync(bad, 'this is a plain text file, not audio\n'.repeat(50));
  await expectError(client.audio.transcriptions.create({ file: fs.createReadStream(bad), model: 'whisper-1' }),
    415, { type: 'invalid_request_error', param: 'file', code: 'unsupported_media' });
});

await check('openai_error_translate_english_only', async () => {
  const err = await expectError(
    client.audio.translations.create({ file: fs.createReadStream(mp3), model: 'rt-mini.en-f16' }),
    400, { type: 'invalid_request_error', param: 'task', code: 'invalid_request' });
  assert(err instanceof OpenAI.BadRequestError, `not a BadRequestError: ${err.constructor.name}`);
  assert(/English-only/.test(err.message) && !/hark_/.test(err.message), `message: ${err.message}`);
});

await check('openai_error_unknown_model', async () => {
  const err = await expectError(
    client.audio.transcriptions.create({ file: fs.createReadStream(mp3), model: 'no-such-model' }),
    404, { type: 'invalid_request_error', code: 'model_not_found' });
  assert(err instanceof OpenAI.NotFoundError, `not a NotFoundError: ${err.constructor.name}`);
});

if (keyBase) {
  const wrong = new OpenAI({ apiKey: 'wrong-key', baseURL: `${keyBase}/v1`, maxRetries: 0 });
  await check('openai_error_wrong_key', async () => {
    const err = await expectError(wrong.models.list(), 401, { type: 'invalid_request_error', code: 'invalid_api_key' });
    assert(err instanceof OpenAI.AuthenticationError, `not an AuthenticationError: ${err.constructor.name}`);
  });

  // The same with a multipart body in flight: the 401 must reach the client.
  await check('openai_error_wrong_key_upload', async () => {
    const err2 = await expectError(
      wrong.audio.transcriptions.create({ file: fs.createReadStream(mp3), model: 'whisper-1' }),
      401, { code: 'invalid_api_key' });
    assert(err2 instanceof OpenAI.AuthenticationError, `not an AuthenticationError: ${err2.constructor.name}`);
  });

  await check('openai_right_key', async () => {
    const right = new OpenAI({ apiKey: key, baseURL: `${keyBase}/v1`, maxRetries: 0 });
    const page = await right.models.list();
    assert(page.data.some((m) => m.id === 'whisper-1'), `models ${show(page.data)}`);
  });
} else {
  console.log('FAIL openai_error_wrong_key: HARK_KEY_URL is not set');
  tally.failed++;
}

// jfk.wav three times over (33 s: two windows), written to the scratch
// folder: the samples of its data chunk repeated under a new header.
function threeTimes(wav, out) {
  const b = fs.readFileSync(wav);
  let off = 12;
  while (off + 8 <= b.length && b.toString('latin1', off, off + 4) !== 'data') off += 8 + b.readUInt32LE(off + 4);
  assert(off + 8 <= b.length, `${wav}: no data chunk`);
  const data = b.subarray(off + 8, off + 8 + b.readUInt32LE(off + 4));
  const head = Buffer.from(b.subarray(0, off + 8));
  head.writeUInt32LE(head.length - 8 + 3 * data.length, 4);
  head.writeUInt32LE(3 * data.length, off + 4);
  fs.writeFileSync(out, Buffer.concat([head, data, data, data]));
  return { file: out, samples: (3 * data.length) / 2 };
}

// stream=true: the client's own streaming call reads the events as they
// come. One delta per segment with text, joined they are the text of
// transcript.text.done, which is the text the same request gives without
// streaming; the usage counts the audio at one token per 20 ms.
await check('openai_stream', async () => {
  const wav = process.env.HARK_WAV;
  assert(wav, 'HARK_WAV is not set');
  const { file: long, samples } = threeTimes(wav, path.join(tmp, 'jfk3.wav'));
  const stream = await client.audio.transcriptions.create({
    file: fs.createReadStream(long), model: 'whisper-1', stream: true,
  });
  const deltas = [];
  let done = null;
  let afterDone = 0;
  for await (const ev of stream) {
    if (done) afterDone++;
    if (ev.type === 'transcript.text.delta') deltas.push(ev.delta);
    else if (ev.type === 'transcript.text.done') done = ev;
    else throw new Error(`unexpected event ${show(ev)}`);
  }
  assert(done && afterDone === 0, `done ${show(done)}, ${afterDone} events after it`);
  const plain = await client.audio.transcriptions.create({
    file: fs.createReadStream(long), model: 'whisper-1', response_format: 'verbose_json',
  });
  const withText = plain.segments.filter((s) => s.text.trim().length > 0).length;
  assert(plain.segments.length > 1 && deltas.length === withText,
    `${deltas.length} deltas for ${plain.segments.length} segments (${withText} with text)`);
  assert(deltas.every((d) => typeof d === 'string' && d.length > 0), `deltas ${show(deltas)}`);
  assert(deltas.join('').trim() === done.text, `deltas joined ${show(deltas.join(''))} vs ${show(done.text)}`);
  assert(done.text === plain.text, `streamed ${show(done.text)} vs plain ${show(plain.text)}`);
  const u = done.usage;
  assert(u && u.type === 'tokens' && u.input_tokens === Math.ceil(samples / 320) && u.output_tokens > 0 &&
    u.total_tokens === u.input_tokens + u.output_tokens, `usage ${show(u)}`);
});

await check('openai_stream_wire', async () => {
  const form = new FormData();
  form.append('file', new Blob([fs.readFileSync(mp3)]), 'jfk.mp3');
  form.append('model', 'whisper-1');
  form.append('stream', 'true');
  form.append('response_format', 'text');
  const res = await fetch(`${base}/v1/audio/transcriptions`, { method: 'POST', body: form });
  assert(res.status === 200, `status ${res.status}`);
  assert((res.headers.get('content-type') || '').startsWith('text/event-stream'),
    `content-type ${res.headers.get('content-type')}`);
  const body = await res.text();
  const events = body.split('\n\n').filter((b) => b.trim() && !b.startsWith(':'));
  assert(events.length >= 2 && events.every((e) => e.startsWith('data: ')), `body ${show(body)}`);
  const last = JSON.parse(events[events.length - 1].slice(6));
  assert(last.type === 'transcript.text.done' && last.text.length > 0, `last event ${show(last)}`);
});

await check('openai_stream_bad_format', async () => {
  await expectError(client.audio.transcriptions.create({
    file: fs.createReadStream(mp4), model: 'whisper-1', stream: true, response_format: 'srt',
  }), 400, { param: 'stream', code: 'invalid_value' });
});

// Nothing the /v1 routes did went into the history.
await check('openai_not_stored', async () => {
  const before = await (await fetch(`${base}/uploads?limit=1000`)).json();
  await transcribe('json');
  const after = await (await fetch(`${base}/uploads?limit=1000`)).json();
  assert(before.total === after.total, `uploads total ${before.total} -> ${after.total}`);
  assert(!after.uploads.some((u) => u.filename === 'openai-notes.txt'), 'a rejected file is in the history');
});

console.log(`openai client: ${tally.passed} passed, ${tally.failed} failed`);
process.exit(tally.failed ? 1 : 0);
