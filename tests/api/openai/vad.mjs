// vad.mjs: the official `openai` npm client's chunking_strategy against a
// hark serve that has a VAD model: "auto" and a server_vad object (which
// the client sends as bracketed form fields) turn speech detection on with
// those settings (hark's verbose_json reports them under "vad"); an invalid
// server_vad surfaces as the client's APIError.
//
// Run by tests/api/test_vad.sh with HARK_URL (the server) and HARK_AUDIO
// (the shared audio folder). Prints "PASS name" / "FAIL name: reason".
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { assert, check, tally } from './checks.mjs';

const base = process.env.HARK_URL;
const audio = process.env.HARK_AUDIO;
const client = new OpenAI({ apiKey: 'not-needed', baseURL: `${base}/v1`, maxRetries: 0, timeout: 300_000 });
const jfk = path.join(audio, 'jfk.wav');
for (const [name, cs] of [
  ['openai_vad_auto', 'auto'],
  ['openai_vad_server_vad', { type: 'server_vad', threshold: 0.6, prefix_padding_ms: 40, silence_duration_ms: 300 }],
]) {
  await check(name, async () => {
    const r = await client.audio.transcriptions.create({
      file: fs.createReadStream(jfk),
      model: 'whisper-1',
      response_format: 'verbose_json',
      chunking_strategy: cs,
    });
    const want = cs === 'auto' ? [0.5, 30, 100] : [cs.threshold, cs.prefix_padding_ms, cs.silence_duration_ms];
    const v = r.vad || {};
    assert(r.duration === 11, `duration ${r.duration}`);
    assert(v.threshold === want[0] && v.pad_ms === want[1] && v.min_silence_ms === want[2],
      `vad ${JSON.stringify(v)}, want threshold, pad, silence ${want}`);
  });
}

await check('openai_vad_bad_threshold', async () => {
  try {
    await client.audio.transcriptions.create({
      file: fs.createReadStream(jfk),
      model: 'whisper-1',
      chunking_strategy: { type: 'server_vad', threshold: 3 },
    });
  } catch (e) {
    assert(e instanceof OpenAI.BadRequestError && e.param === 'chunking_strategy' && e.code === 'invalid_value',
      `error ${e.status} ${e.param} ${e.code}`);
    return;
  }
  throw new Error('accepted a threshold of 3');
});
process.exit(tally.failed ? 1 : 0);
