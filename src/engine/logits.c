/*
 * logits.c: the logit rules of both decoding profiles, applied to one row of
 * the decoder's logits before a token is chosen: the suppressed ids
 * (openai-whisper's SuppressTokens and non-speech symbols, whisper.cpp's
 * fixed set), SuppressBlank, the timestamp rules (pairs, monotonic
 * timestamps, the initial timestamp bound, timestamps forced by their summed
 * probability) and the log-softmax that turns the filtered row into
 * log-probabilities.
 *
 * These are pure functions: decode.c feeds them the decoder's logits, the
 * unit tests feed them hand-made rows. Nothing here allocates.
 */
#include <math.h>
#include <string.h>

#include "hark.h"
#include "logits.h"

#define NEG_INF (-INFINITY)

static void fill_neg_inf(float *x, int a, int b)
{
    for (int i = a; i < b; i++) x[i] = NEG_INF;
}

/* ----------------------------------------------------------- suppression */

/* openai-whisper tokenizer.py's non_speech_tokens symbols: single
 * characters, then multi-character symbols, then the miscellaneous musical
 * symbols U+2640..U+267F whose first token is suppressed whatever their
 * length. */
static const char *const nonspeech_symbols[] = {
    "\"", "#", "(", ")", "*", "+", "/", ":", ";", "<", "=", ">", "@", "[", "\\", "]", "^", "_",
    "`", "{", "|", "}", "~", "\xe3\x80\x8c", "\xe3\x80\x8d", "\xe3\x80\x8e", "\xe3\x80\x8f",
    "<<", ">>", "<<<", ">>>", "--", "---", "-(", "-[", "('", "(\"", "((", "))", "(((", ")))",
    "[[", "]]", "{{", "}}", "\xe2\x99\xaa\xe2\x99\xaa", "\xe2\x99\xaa\xe2\x99\xaa\xe2\x99\xaa",
    "\xe2\x99\xa9", "\xe2\x99\xaa", "\xe2\x99\xab", "\xe2\x99\xac", "\xe2\x99\xad",
    "\xe2\x99\xae", "\xe2\x99\xaf",
};
static const unsigned char nonspeech_misc[] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1,
};
_Static_assert(sizeof(nonspeech_symbols) / sizeof(nonspeech_symbols[0]) == sizeof(nonspeech_misc),
               "one flag per symbol");

int decode_nonspeech_symbols(const char *const **symbols, const unsigned char **misc)
{
    *symbols = nonspeech_symbols;
    *misc = nonspeech_misc;
    return (int)sizeof(nonspeech_misc);
}

static int add_unique(int32_t *out, int n, int max, int32_t id)
{
    for (int i = 0; i < n; i++)
        if (out[i] == id) return n;
    if (n < max) out[n++] = id;
    return n;
}

int decode_suppress_list(const struct tok_special *sp, int profile, const int32_t *nonspeech,
                         int n_nonspeech, int32_t *out, int max)
{
    int n = 0;
    if (profile == HARK_DECODER_WHISPER_CPP) {
        const int32_t ids[] = {sp->notimestamps, sp->sot, sp->nosp, sp->solm,
                               sp->translate, sp->transcribe, sp->prev};
        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) n = add_unique(out, n, max, ids[i]);
        for (int i = 0; i < sp->n_lang; i++) n = add_unique(out, n, max, sp->lang0 + i);
    } else {
        for (int i = 0; i < n_nonspeech; i++) n = add_unique(out, n, max, nonspeech[i]);
        const int32_t ids[] = {sp->transcribe, sp->translate, sp->sot, sp->prev, sp->solm, sp->nosp};
        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) n = add_unique(out, n, max, ids[i]);
    }
    for (int i = 1; i < n; i++) {
        int32_t v = out[i];
        int j = i - 1;
        while (j >= 0 && out[j] > v) {
            out[j + 1] = out[j];
            j--;
        }
        out[j + 1] = v;
    }
    return n;
}

/* ----------------------------------------------------------- logit rules */

float decode_log_softmax(const float *x, int n, float *out)
{
    float mx = NEG_INF;
    for (int i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    if (mx == NEG_INF) {
        for (int i = 0; i < n; i++) out[i] = NEG_INF;
        return NEG_INF;
    }
    float sum = 0.0f;
    for (int i = 0; i < n; i++)
        if (x[i] > NEG_INF) sum += expf(x[i] - mx);
    float lse = logf(sum) + mx;
    for (int i = 0; i < n; i++) out[i] = x[i] > NEG_INF ? x[i] - lse : NEG_INF;
    return lse;
}

/* log-sum-exp of x[a:b] in float; -inf when all are -inf. */
static float range_logsumexp(const float *x, int a, int b)
{
    float mx = NEG_INF;
    for (int i = a; i < b; i++)
        if (x[i] > mx) mx = x[i];
    if (mx == NEG_INF) return NEG_INF;
    float sum = 0.0f;
    for (int i = a; i < b; i++)
        if (x[i] > NEG_INF) sum += expf(x[i] - mx);
    return logf(sum) + mx;
}

static float range_max(const float *x, int a, int b)
{
    float mx = NEG_INF;
    for (int i = a; i < b; i++)
        if (x[i] > mx) mx = x[i];
    return mx;
}

/* Timestamp forcing, in both profiles: logprobs becomes the log-softmax of
 * logits, and when the timestamps' total probability (tokens from beg on)
 * beats the likeliest text token, every text token's logit is -inf.
 * Returns 1 when it forced. */
static int timestamps_win(float *logits, float *logprobs, int V, int beg)
{
    decode_log_softmax(logits, V, logprobs);
    if (!(range_logsumexp(logprobs, beg, V) > range_max(logprobs, 0, beg))) return 0;
    fill_neg_inf(logits, 0, beg);
    return 1;
}

/* whisper.cpp 1.9.3's process_logits at temperature t (README §10.2). */
static int rules_wcpp(const struct decode_rules *r, float t, float *logits, const int32_t *sampled,
                      int n, float *logprobs)
{
    const struct tok_special *sp = &r->sp;
    const int V = r->n_vocab, beg = sp->beg;
    int forced = 0;
    if (t > 0.0f)
        for (int i = 0; i < V; i++) logits[i] /= t;
    /* Rule 1: suppress_blank at the first step (eot and " "). */
    if (n == 0) {
        logits[sp->eot] = NEG_INF;
        if (220 < V) logits[220] = NEG_INF;
    }
    /* Rule 2: special and language tokens. */
    for (int i = 0; i < r->n_suppress; i++) logits[r->suppress[i]] = NEG_INF;
    if (!r->timestamps) {
        fill_neg_inf(logits, beg, V);
        decode_log_softmax(logits, V, logprobs);
        return 0;
    }
    /* Rule 3: timestamps come in pairs. */
    if (n > 0 && sampled[n - 1] >= beg) {
        if (n < 2 || sampled[n - 2] >= beg)
            fill_neg_inf(logits, beg, V);
        else
            fill_neg_inf(logits, 0, sp->eot);
    }
    /* Rule 4: max_initial_ts. */
    if (n == 0) fill_neg_inf(logits, beg + r->max_initial_ts + 1, V);
    /* Rule 5: timestamps never decrease (below the last one > beg). */
    for (int k = n - 1; k >= 0; k--) {
        if (sampled[k] > beg) {
            fill_neg_inf(logits, beg, sampled[k]);
            break;
        }
    }
    /* Rule 6: log-softmax; rule 7: timestamp forcing by total probability. */
    if (timestamps_win(logits, logprobs, V, beg)) {
        forced = 1;
        fill_neg_inf(logprobs, 0, beg);
    }
    return forced;
}

/* openai-whisper decoding.py: SuppressBlank, SuppressTokens,
 * ApplyTimestampRules, in that order; then log_softmax of the result. */
static int rules_openai(const struct decode_rules *r, float *logits, const int32_t *sampled, int n,
                        float *logprobs)
{
    const struct tok_special *sp = &r->sp;
    const int V = r->n_vocab, beg = sp->beg;
    int forced = 0;
    if (n == 0) {
        if (220 < V) logits[220] = NEG_INF;
        logits[sp->eot] = NEG_INF;
    }
    for (int i = 0; i < r->n_suppress; i++) logits[r->suppress[i]] = NEG_INF;
    if (!r->timestamps) {
        /* openai leaves timestamps to the model here; hark suppresses them,
         * since a window without timestamps has no use for them. */
        fill_neg_inf(logits, beg, V);
        decode_log_softmax(logits, V, logprobs);
        return 0;
    }
    logits[sp->notimestamps] = NEG_INF;
    int last_ts = n >= 1 && sampled[n - 1] >= beg;
    int pen_ts = n < 2 || sampled[n - 2] >= beg;
    if (last_ts) {
        if (pen_ts)
            fill_neg_inf(logits, beg, V);
        else
            fill_neg_inf(logits, 0, sp->eot);
    }
    for (int k = n - 1; k >= 0; k--) {
        if (sampled[k] >= beg) {
            /* Timestamps never decrease, and a segment has nonzero length. */
            int last = (last_ts && !pen_ts) ? sampled[k] : sampled[k] + 1;
            fill_neg_inf(logits, beg, last < V ? last : V);
            break;
        }
    }
    if (n == 0) {
        fill_neg_inf(logits, 0, beg);
        fill_neg_inf(logits, beg + r->max_initial_ts + 1, V);
    }
    forced = timestamps_win(logits, logprobs, V, beg);
    decode_log_softmax(logits, V, logprobs);
    return forced;
}

int decode_apply_rules(const struct decode_rules *r, float temperature, float *logits,
                       const int32_t *sampled, int n_sampled, float *logprobs)
{
    if (r->profile == HARK_DECODER_WHISPER_CPP)
        return rules_wcpp(r, temperature, logits, sampled, n_sampled, logprobs);
    return rules_openai(r, logits, sampled, n_sampled, logprobs);
}
