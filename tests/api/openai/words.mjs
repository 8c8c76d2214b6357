// words.mjs: the official `openai` npm client's timestamp_granularities
// against a hark serve run with --no-word-timestamps: asking for words (the
// client sends timestamp_granularities[] fields) times every word, in
// order, within the audio, their text the segments' text; asking for
// segments only gives no words.
//
// Run by tests/api/test_words.sh with HARK_URL (the server) and HARK_AUDIO
// (the shared audio folder). Prints "PASS name" / "FAIL name: reason".
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { assert, check, tally } from './checks.mjs';

const client = new OpenAI({
  apiKey: 'not-needed', baseURL: `${process.env.HARK_URL}/v1`, maxRetries: 0, timeout: 300_000,
});
const jfk = path.join(process.env.HARK_AUDIO, 'jfk.wav');
const transcribe = (granularities) => client.audio.transcriptions.create({
  file: fs.createReadStream(jfk),
  model: 'whisper-1',
  response_format: 'verbose_json',
  timestamp_granularities: granularities,
});
const squeeze = (s) => s.replace(/ /g, '');

await check('openai_words_timed', async () => {
  const r = await transcribe(['word', 'segment']);
  assert(Array.isArray(r.words) && r.words.length > 0, `words ${JSON.stringify(r.words)}`);
  let prev = 0;
  for (const w of r.words) {
    assert(typeof w.word === 'string' && w.word.length > 0 && !w.word.startsWith(' '), `word ${JSON.stringify(w)}`);
    assert(w.start <= w.end && w.start >= prev - 0.001 && w.end <= r.duration,
      `word ${JSON.stringify(w)} after ${prev}`);
    prev = w.end;
  }
  const said = squeeze(r.segments.map((s) => s.text).join(''));
  assert(squeeze(r.words.map((w) => w.word).join('')) === said, 'the words are not the segments\' text');
});

await check('openai_words_segments_only', async () => {
  const r = await transcribe(['segment']);
  assert(r.words === undefined && r.segments.length > 0, `words ${JSON.stringify(r.words)}`);
});
process.exit(tally.failed ? 1 : 0);
