// checks.mjs: what the openai client scripts share: named checks that print
// "PASS name" / "FAIL name: reason" (an APIError shown with its status),
// assert, and the tally.
import OpenAI from 'openai';

export const tally = { passed: 0, failed: 0 };

export async function check(name, fn) {
  try {
    await fn();
    console.log(`PASS ${name}`);
    tally.passed++;
  } catch (e) {
    const why = e instanceof OpenAI.APIError ? `APIError ${e.status}: ${e.message}` : (e && e.message) || String(e);
    console.log(`FAIL ${name}: ${why}`);
    tally.failed++;
  }
}

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}
