/*
 * test_decode_rules.c: the model-free half of decoding (logits.c, search.c,
 * compress.c, result.c) on hand-made logits and scripted token sequences:
 * every suppression and timestamp rule of both profiles (each where it fires
 * and where it must not), timestamp forcing by summed probability, greedy
 * choice, sampling, beam bookkeeping on a scripted scorer, whisper.cpp's
 * window bookkeeping, the entropy and compression-ratio checks, segment
 * building, UTF-8 sanitising and the result container.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "compress.h"
#include "harness.h"
#include "hark.h"
#include "logits.h"
#include "result.h"
#include "search.h"
#include "tokenizer.h"

#define V_EN 51864

static float logits[V_EN], logprobs[V_EN];
static struct decode_rules R;
static int32_t supp[512];

/* Rules for an English-only vocabulary in a profile, with a tiny
 * non-speech list (ids 1 and 2) for the openai profile. */
static void setup(int profile)
{
    static const int32_t ns[2] = {1, 2};
    memset(&R, 0, sizeof(R));
    R.n_vocab = V_EN;
    tok_special_init(&R.sp, V_EN);
    R.profile = profile;
    R.timestamps = 1;
    R.max_initial_ts = 50;
    R.n_suppress = decode_suppress_list(&R.sp, profile, ns, 2, supp, 512);
    R.suppress = supp;
    /* Text tokens likely, timestamps unlikely even in total, so that no
     * timestamp is forced unless a test wants it. */
    for (int i = 0; i < V_EN; i++) logits[i] = i < R.sp.beg ? 0.0f : -20.0f;
}

static int is_ninf(float x)
{
    return isinf(x) && x < 0;
}

static void test_suppress_list(void)
{
    struct tok_special sp;
    tok_special_init(&sp, 51865);
    int32_t out[512];
    const int32_t ns[3] = {7, 3, 7};
    int n = decode_suppress_list(&sp, HARK_DECODER_WHISPER_CPP, ns, 3, out, 512);
    CHECKF(n == 7 + 99, "whisper.cpp list has %d ids, expected 106", n);
    int has_lang = 0, has_not = 0, has_eot = 0, has_ns = 0;
    for (int i = 0; i < n; i++) {
        has_lang += out[i] == sp.lang0 + 5;
        has_not += out[i] == sp.notimestamps;
        has_eot += out[i] == sp.eot;
        has_ns += out[i] == 7;
        if (i) CHECK(out[i - 1] < out[i]);
    }
    CHECK(has_lang == 1 && has_not == 1 && has_eot == 0 && has_ns == 0);
    n = decode_suppress_list(&sp, HARK_DECODER_OPENAI, ns, 3, out, 512);
    CHECKF(n == 2 + 6, "openai list has %d ids, expected 8 (duplicates removed)", n);
    has_lang = has_not = has_ns = 0;
    int has_prev = 0;
    for (int i = 0; i < n; i++) {
        has_lang += out[i] == sp.lang0;
        has_not += out[i] == sp.notimestamps;
        has_ns += out[i] == 7 || out[i] == 3;
        has_prev += out[i] == sp.prev || out[i] == sp.nosp || out[i] == sp.solm;
    }
    CHECK(has_lang == 0 && has_not == 0 && has_ns == 2 && has_prev == 3);

    const char *const *sym;
    const unsigned char *misc;
    int ns_n = decode_nonspeech_symbols(&sym, &misc);
    CHECKF(ns_n == 54, "%d non-speech symbols, expected 54", ns_n);
    CHECK(!strcmp(sym[0], "\"") && misc[0] == 0 && misc[ns_n - 1] == 1);
}

static void test_suppress_blank_and_tokens(void)
{
    for (int prof = 0; prof < 2; prof++) {
        setup(prof);
        int32_t seq[4] = {100, 200, 0, 0};
        decode_apply_rules(&R, 0.0f, logits, seq, 0, logprobs);
        CHECKF(is_ninf(logits[220]) && is_ninf(logits[R.sp.eot]), "profile %d: blank at step 0", prof);
        CHECK(is_ninf(logits[R.sp.sot]) && is_ninf(logits[R.sp.prev]) && is_ninf(logits[R.sp.nosp]));
        setup(prof);
        decode_apply_rules(&R, 0.0f, logits, seq, 2, logprobs);
        CHECKF(!is_ninf(logits[220]) && !is_ninf(logits[R.sp.eot]), "profile %d: blank allowed later", prof);
        CHECK(is_ninf(logits[R.sp.sot]) && is_ninf(logits[R.sp.transcribe]));
        CHECK(is_ninf(logits[R.sp.notimestamps]));
        /* Language tokens: whisper.cpp suppresses them, openai does not. */
        CHECK(prof == HARK_DECODER_WHISPER_CPP ? is_ninf(logits[R.sp.lang0 + 3]) : !is_ninf(logits[R.sp.lang0 + 3]));
        /* The non-speech ids only in the openai profile. */
        CHECK(prof == HARK_DECODER_OPENAI ? is_ninf(logits[1]) : !is_ninf(logits[1]));
        CHECK(!is_ninf(logits[3]));
    }
}

static void test_pairs(void)
{
    for (int prof = 0; prof < 2; prof++) {
        const int beg = 50363;
        /* After text + timestamp: only eot or a timestamp. */
        setup(prof);
        int32_t a[2] = {100, beg + 10};
        decode_apply_rules(&R, 0.0f, logits, a, 2, logprobs);
        CHECKF(is_ninf(logits[100]) && is_ninf(logits[0]), "profile %d: text after a single timestamp", prof);
        CHECK(!is_ninf(logits[R.sp.eot]) && !is_ninf(logits[beg + 20]));
        /* After two timestamps: no timestamp. */
        setup(prof);
        int32_t b[3] = {100, beg + 10, beg + 12};
        decode_apply_rules(&R, 0.0f, logits, b, 3, logprobs);
        CHECK(is_ninf(logits[beg + 20]) && is_ninf(logits[V_EN - 1]));
        CHECK(!is_ninf(logits[100]));
        /* A timestamp as the only token counts as a pair start (penultimate
         * "is a timestamp" when missing). */
        setup(prof);
        int32_t c[1] = {beg + 3};
        decode_apply_rules(&R, 0.0f, logits, c, 1, logprobs);
        CHECK(is_ninf(logits[beg + 20]) && !is_ninf(logits[100]));
        /* After text: the pair rule does not fire. */
        setup(prof);
        int32_t d[1] = {100};
        decode_apply_rules(&R, 0.0f, logits, d, 1, logprobs);
        CHECK(!is_ninf(logits[100]) && !is_ninf(logits[beg + 20]));
    }
}

static void test_monotonic(void)
{
    const int beg = 50363;
    /* whisper.cpp: ids in [beg, last_ts) with last_ts the last token > beg. */
    setup(HARK_DECODER_WHISPER_CPP);
    int32_t a[2] = {beg + 10, 100};
    decode_apply_rules(&R, 0.0f, logits, a, 2, logprobs);
    CHECK(is_ninf(logits[beg]) && is_ninf(logits[beg + 9]) && !is_ninf(logits[beg + 10]));
    setup(HARK_DECODER_WHISPER_CPP);
    int32_t b[2] = {beg, 100}; /* <|0.00|> is not > beg: no restriction */
    decode_apply_rules(&R, 0.0f, logits, b, 2, logprobs);
    CHECK(!is_ninf(logits[beg]));
    /* openai: after text, strictly later than the last timestamp. */
    setup(HARK_DECODER_OPENAI);
    decode_apply_rules(&R, 0.0f, logits, a, 2, logprobs);
    CHECK(is_ninf(logits[beg + 10]) && !is_ninf(logits[beg + 11]));
    setup(HARK_DECODER_OPENAI);
    decode_apply_rules(&R, 0.0f, logits, b, 2, logprobs);
    CHECK(is_ninf(logits[beg]) && !is_ninf(logits[beg + 1]));
    /* openai: closing a pair may repeat the time. */
    setup(HARK_DECODER_OPENAI);
    int32_t c[3] = {beg + 4, 100, beg + 10};
    decode_apply_rules(&R, 0.0f, logits, c, 3, logprobs);
    CHECK(is_ninf(logits[beg + 9]) && !is_ninf(logits[beg + 10]));
    /* No timestamp sampled yet: no restriction. */
    setup(HARK_DECODER_OPENAI);
    int32_t d[1] = {100};
    decode_apply_rules(&R, 0.0f, logits, d, 1, logprobs);
    CHECK(!is_ninf(logits[beg]));
}

static void test_initial(void)
{
    const int beg = 50363;
    for (int prof = 0; prof < 2; prof++) {
        setup(prof);
        decode_apply_rules(&R, 0.0f, logits, NULL, 0, logprobs);
        CHECKF(!is_ninf(logits[beg + 50]) && is_ninf(logits[beg + 51]), "profile %d: max_initial_ts", prof);
        /* openai forces a timestamp first; whisper.cpp does not. */
        CHECK(prof == HARK_DECODER_OPENAI ? is_ninf(logits[100]) : !is_ninf(logits[100]));
        setup(prof);
        int32_t a[1] = {100};
        decode_apply_rules(&R, 0.0f, logits, a, 1, logprobs);
        CHECK(!is_ninf(logits[beg + 51]) && !is_ninf(logits[100]));
    }
    /* Without timestamps every timestamp is suppressed. */
    setup(HARK_DECODER_OPENAI);
    R.timestamps = 0;
    decode_apply_rules(&R, 0.0f, logits, NULL, 0, logprobs);
    CHECK(is_ninf(logits[beg]) && !is_ninf(logits[100]));
}

static void test_forcing(void)
{
    const int beg = 50363;
    for (int prof = 0; prof < 2; prof++) {
        /* One text token at 5; every timestamp at 2: no single timestamp
         * beats the text token, their total does. */
        setup(prof);
        for (int i = 0; i < V_EN; i++) logits[i] = i < beg ? -30.0f : 2.0f;
        logits[100] = 5.0f;
        int32_t a[1] = {100};
        int forced = decode_apply_rules(&R, 0.0f, logits, a, 1, logprobs);
        CHECKF(forced == 1, "profile %d: timestamps not forced", prof);
        CHECK(is_ninf(logits[100]) && is_ninf(logprobs[100]));
        int32_t pick = decode_argmax(&R, logits, logprobs);
        CHECKF(pick >= beg, "profile %d: argmax %d is not a timestamp", prof, pick);
        double sum = 0.0;
        for (int i = 0; i < V_EN; i++) sum += exp((double)logprobs[i]);
        /* openai renormalises after forcing; whisper.cpp keeps the
         * log-probabilities computed before it. */
        if (prof == HARK_DECODER_OPENAI)
            CHECKF(fabs(sum - 1.0) < 1e-3, "openai sum of probabilities %.6f", sum);
        else
            CHECKF(sum < 0.99 && sum > 0.9, "whisper.cpp sum of probabilities %.6f", sum);
        /* Timestamps at -10: no forcing. */
        setup(prof);
        for (int i = 0; i < V_EN; i++) logits[i] = i < beg ? -30.0f : -10.0f;
        logits[100] = 5.0f;
        forced = decode_apply_rules(&R, 0.0f, logits, a, 1, logprobs);
        CHECK(forced == 0 && decode_argmax(&R, logits, logprobs) == 100);
    }
}

static void test_temperature_and_choice(void)
{
    setup(HARK_DECODER_WHISPER_CPP);
    for (int i = 0; i < V_EN; i++) logits[i] = -20.0f;
    logits[300] = 1.0f;
    logits[301] = 0.0f;
    int32_t a[1] = {5};
    decode_apply_rules(&R, 0.5f, logits, a, 1, logprobs);
    /* Divided by 0.5 first: the difference doubles. */
    CHECKF(fabsf((logprobs[300] - logprobs[301]) - 2.0f) < 1e-5f, "tempered gap %.6f",
           logprobs[300] - logprobs[301]);
    /* Ties go to the first index in both profiles. */
    for (int prof = 0; prof < 2; prof++) {
        setup(prof);
        for (int i = 0; i < V_EN; i++) logits[i] = -20.0f;
        logits[400] = logits[401] = 3.0f;
        decode_apply_rules(&R, 0.0f, logits, a, 1, logprobs);
        CHECK(decode_argmax(&R, logits, logprobs) == 400);
    }
    /* tid: the most likely timestamp; 0 when none is possible. */
    setup(HARK_DECODER_WHISPER_CPP);
    for (int i = 0; i < V_EN; i++) logits[i] = -20.0f;
    logits[50363 + 7] = -1.0f;
    logits[50363 + 9] = -2.0f;
    decode_apply_rules(&R, 0.0f, logits, a, 1, logprobs);
    CHECK(decode_best_timestamp(&R, logprobs) == 50363 + 7);
    for (int i = 50363; i < V_EN; i++) logprobs[i] = -INFINITY;
    CHECK(decode_best_timestamp(&R, logprobs) == 0);
}

static void test_sampling(void)
{
    setup(HARK_DECODER_OPENAI);
    for (int i = 0; i < V_EN; i++) logits[i] = -INFINITY;
    logits[10] = logf(0.5f);
    logits[11] = logf(0.3f);
    logits[12] = logf(0.2f);
    decode_log_softmax(logits, V_EN, logprobs);
    struct decode_rng g1, g2;
    decode_rng_seed(&g1, 42);
    decode_rng_seed(&g2, 42);
    int cnt[3] = {0, 0, 0}, same = 1;
    for (int k = 0; k < 20000; k++) {
        int32_t x = decode_sample(&R, 1.0f, logits, logprobs, &g1);
        int32_t y = decode_sample(&R, 1.0f, logits, logprobs, &g2);
        same &= x == y;
        CHECK(x >= 10 && x <= 12);
        if (x >= 10 && x <= 12) cnt[x - 10]++;
    }
    CHECK(same);
    /* mt19937 as the C++ standard defines it: the 10000th draw from the
     * default seed 5489 is 4123659995. */
    struct decode_rng mt;
    decode_rng_seed(&mt, 5489u);
    uint32_t v = 0;
    for (int k = 0; k < 10000; k++) v = decode_rng_next(&mt);
    CHECKF(v == 4123659995u, "mt19937 10000th draw %u", v);
    double worst = 0.0, want[3] = {0.5, 0.3, 0.2};
    for (int i = 0; i < 3; i++) worst = fmax(worst, fabs(cnt[i] / 20000.0 - want[i]));
    printf("  sampling: worst frequency error %.4f\n", worst);
    CHECK(worst < 0.02);
    /* A low temperature sharpens the distribution. */
    int top = 0;
    for (int k = 0; k < 2000; k++) top += decode_sample(&R, 0.05f, logits, logprobs, &g1) == 10;
    CHECKF(top > 1990, "temperature 0.05 chose the top token %d of 2000 times", top);
}

/* Scripted scorer over ids A, B, C and eot: log-probabilities by prefix. */
#define TA 10
#define TB 11
#define TC 12
static void script_row(const int32_t *p, int n, int32_t eot, float *row)
{
    for (int i = 0; i < V_EN; i++) row[i] = -1e9f;
    if (n == 0) {
        row[TA] = logf(0.6f);
        row[TB] = logf(0.4f);
    } else if (p[0] == TB) {
        row[eot] = logf(0.9f);
        row[TC] = logf(0.1f);
    } else if (n == 1) {
        row[TA] = row[TB] = row[TC] = logf(0.3f);
        row[eot] = logf(0.1f);
    } else {
        row[eot] = logf(0.5f);
        row[TA] = row[TB] = logf(0.2f);
        row[TC] = logf(0.1f);
    }
}

static float beam_rows[STATE_MAX_SEQ * V_EN];

static void test_beam_openai(void)
{
    static struct decode_beam b;
    struct tok_special sp;
    tok_special_init(&sp, V_EN);
    decode_beam_init(&b, HARK_DECODER_OPENAI, 2, sp.eot, NULL);
    int act[STATE_MAX_SEQ], src[STATE_MAX_SEQ], done = 0, steps = 0;
    for (int i = 0; i < 20 && !done; i++) {
        int na = decode_beam_active(&b, act);
        for (int a = 0; a < na; a++) script_row(b.live[act[a]].tok, b.live[act[a]].n, sp.eot, beam_rows + (size_t)a * V_EN);
        done = decode_beam_step(&b, &sp, beam_rows, V_EN, i, NULL, src);
        steps++;
        if (i == 0) {
            /* Identical beams are merged: A and B, not A twice. */
            CHECKF(b.live[0].tok[0] == TA && b.live[1].tok[0] == TB, "step 0 beams %d %d",
                   b.live[0].tok[0], b.live[1].tok[0]);
        }
        if (i == 1) {
            /* [B, eot] finished; both live beams continue A, from slot 0. */
            CHECK(b.n_fin == 1 && b.fin[0].tok[0] == TB && b.fin[0].tok[1] == sp.eot);
            CHECK(src[0] == 0 && src[1] == 0);
            CHECK(b.live[0].tok[1] == TA && b.live[1].tok[1] == TB);
        }
    }
    CHECKF(done && steps == 3, "done %d after %d steps", done, steps);
    const struct decode_seq *best = decode_beam_best(&b, &sp);
    CHECKF(best->n == 2 && best->tok[0] == TB && best->tok[1] == sp.eot, "best starts %d, length %d",
           best->tok[0], best->n);
    CHECKF(fabs(best->sum_lp - (log(0.4) + log(0.9))) < 1e-5, "best sum_logprob %.6f", best->sum_lp);
    /* Greedy would take A first and end with [A, A, eot] (score -1.20 per
     * token); beam search found [B, eot] (-1.02). */
}

static void test_beam_wcpp(void)
{
    static struct decode_beam b;
    struct decode_rng rngs[STATE_MAX_SEQ];
    struct tok_special sp;
    tok_special_init(&sp, V_EN);
    for (int j = 0; j < STATE_MAX_SEQ; j++) decode_rng_seed(&rngs[j], (uint32_t)j);
    struct decode_wcpp w;
    decode_wcpp_init(&w, 0, 100000, 220, 0);
    decode_beam_init(&b, HARK_DECODER_WHISPER_CPP, 4, sp.eot, &w);
    int act[STATE_MAX_SEQ], src[STATE_MAX_SEQ];
    /* Step 0: A 0.9, B 0.1; 16 draws. */
    int na = decode_beam_active(&b, act);
    for (int a = 0; a < na; a++) {
        float *row = beam_rows + (size_t)a * V_EN;
        for (int i = 0; i < V_EN; i++) row[i] = -INFINITY;
        row[TA] = logf(0.9f);
        row[TB] = logf(0.1f);
    }
    decode_beam_step(&b, &sp, beam_rows, V_EN, 0, rngs, src);
    /* whisper.cpp does not merge equal candidates at the first step: every
     * decoder takes the best one. */
    for (int j = 0; j < 4; j++) CHECKF(b.live[j].tok[0] == TA && b.live[j].n == 1, "decoder %d took %d", j, b.live[j].tok[0]);
    CHECKF(fabs(b.live[0].sum_lp - log(0.9)) < 1e-6, "sum_logprob %.6f", b.live[0].sum_lp);
    /* Step 1: A 0.5, B 0.3, C 0.2 for every decoder; equal sequences are
     * skipped, so the decoders hold different ones, best first. */
    na = decode_beam_active(&b, act);
    for (int a = 0; a < na; a++) {
        float *row = beam_rows + (size_t)a * V_EN;
        for (int i = 0; i < V_EN; i++) row[i] = -INFINITY;
        row[TA] = logf(0.5f);
        row[TB] = logf(0.3f);
        row[TC] = logf(0.2f);
    }
    decode_beam_step(&b, &sp, beam_rows, V_EN, 1, rngs, src);
    CHECKF(b.live[0].tok[1] != b.live[1].tok[1], "second tokens %d %d", b.live[0].tok[1], b.live[1].tok[1]);
    CHECK(b.live[0].sum_lp >= b.live[1].sum_lp);
    for (int j = 0; j < 4; j++) CHECK(src[j] >= 0 && src[j] < 4 && b.live[j].n == 2 && !b.live[j].done);
    /* Completion: a decoder that samples eot is done and stays. */
    const struct decode_seq *best = decode_beam_best(&b, &sp);
    CHECK(best >= &b.live[0] && best < &b.live[4]);
}

static void test_wcpp_window(void)
{
    struct tok_special sp;
    tok_special_init(&sp, V_EN);
    const int beg = sp.beg;
    struct decode_wcpp w;
    /* Text, timestamp, eot: completes at eot. */
    decode_wcpp_init(&w, 0, 7499, 220, 0);
    CHECK(decode_wcpp_token(&w, &sp, 100, 0) == 0);
    CHECK(decode_wcpp_token(&w, &sp, beg + 100, 1) == 0);
    CHECK(w.seek_delta == 200 && w.result_len == 2 && w.has_ts);
    CHECK(decode_wcpp_token(&w, &sp, sp.eot, 2) == 1 && w.completed && !w.failed && w.result_len == 2);
    /* A timestamp going back after text: fails. */
    decode_wcpp_init(&w, 0, 7499, 220, 0);
    decode_wcpp_token(&w, &sp, beg + 300, 0);
    decode_wcpp_token(&w, &sp, 100, 1);
    CHECK(decode_wcpp_token(&w, &sp, beg + 200, 2) == 1 && w.failed);
    /* ... but not right after the timestamp (result_len == i). */
    decode_wcpp_init(&w, 0, 7499, 220, 0);
    decode_wcpp_token(&w, &sp, beg + 300, 0);
    CHECK(decode_wcpp_token(&w, &sp, beg + 200, 1) == 0 && !w.failed && w.seek_delta == 400);
    /* End of audio reached by a timestamp. */
    decode_wcpp_init(&w, 0, 1099, 220, 0);
    decode_wcpp_token(&w, &sp, 100, 0);
    CHECK(decode_wcpp_token(&w, &sp, beg + 545, 1) == 1 && w.completed && w.seek_delta == 1090);
    decode_wcpp_init(&w, 0, 1099, 220, 0);
    CHECK(decode_wcpp_token(&w, &sp, beg + 540, 0) == 0);
    /* eot before any timestamp: fails mid-audio, completes at its end. */
    decode_wcpp_init(&w, 0, 7499, 220, 0);
    decode_wcpp_token(&w, &sp, 100, 0);
    CHECK(decode_wcpp_token(&w, &sp, sp.eot, 1) == 1 && w.failed);
    decode_wcpp_init(&w, 4542, 7499, 220, 0);
    decode_wcpp_token(&w, &sp, 100, 0);
    CHECK(decode_wcpp_token(&w, &sp, sp.eot, 1) == 1 && w.completed && w.result_len == 2);
    /* The last step: fails below half a window, not at or above it. */
    decode_wcpp_init(&w, 0, 100000, 220, 0);
    decode_wcpp_token(&w, &sp, beg + 700, 0);
    CHECK(decode_wcpp_token(&w, &sp, 100, 219) == 1 && w.failed);
    decode_wcpp_init(&w, 0, 100000, 220, 0);
    decode_wcpp_token(&w, &sp, beg + 750, 0);
    CHECK(decode_wcpp_token(&w, &sp, 100, 219) == 0 && !w.failed && w.result_len == 1);
    decode_wcpp_init(&w, 0, 100000, 220, 0);
    CHECK(decode_wcpp_token(&w, &sp, 100, 219) == 1 && w.failed);
}

static void test_entropy_and_compression(void)
{
    int32_t t[40];
    for (int i = 0; i < 40; i++) t[i] = 7;
    CHECK(decode_entropy_last32(t, 40) == 0.0);
    for (int i = 0; i < 40; i++) t[i] = i;
    CHECKF(fabs(decode_entropy_last32(t, 40) - log(32.0)) < 1e-12, "entropy %.6f", decode_entropy_last32(t, 40));
    for (int i = 0; i < 40; i++) t[i] = i % 4; /* four tokens, equal counts: ln 4 < 2.4 */
    CHECK(fabs(decode_entropy_last32(t, 40) - log(4.0)) < 1e-12 && decode_entropy_last32(t, 40) < 2.4);

    static const char *texts[] = {
        "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.",
        "the the the the the the the the the the the the the the the the the the the the the the the the the the the",
        "I'm going to go to the store. I'm going to go to the store. I'm going to go to the store. I'm going to go.",
        "Grosse Freude: les enfants jouent dans le jardin pendant que la pluie tombe doucement sur les toits gris.",
        "a",
        "",
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore "
        "magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea "
        "commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat.",
    };
    double worst = 0.0;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        size_t n = strlen(texts[i]);
        unsigned char buf[4096];
        uLongf zn = sizeof(buf);
        CHECK(compress2(buf, &zn, (const unsigned char *)texts[i], n, 6) == Z_OK);
        size_t est = decode_deflate_size((const unsigned char *)texts[i], n);
        double rel = fabs((double)est - (double)zn) / (double)zn;
        if (rel > worst) worst = rel;
        CHECKF(rel < 0.12, "text %zu: estimated %zu bytes, zlib %lu", i, est, (unsigned long)zn);
        if (n > 0) {
            double zr = (double)n / zn, er = decode_compression_ratio(texts[i], n);
            /* The fallback decision agrees with zlib away from the threshold. */
            if (fabs(zr - 2.4) > 0.3) CHECKF((zr > 2.4) == (er > 2.4), "text %zu: ratio %.3f vs zlib %.3f", i, er, zr);
        }
    }
    /* Pseudo-random bytes: stored block bound. */
    unsigned char rnd[1000], zb[2000];
    uint32_t x = 12345;
    for (int i = 0; i < 1000; i++) {
        x = x * 1664525u + 1013904223u;
        rnd[i] = (unsigned char)(x >> 24);
    }
    uLongf zn = sizeof(zb);
    compress2(zb, &zn, rnd, 1000, 6);
    size_t est = decode_deflate_size(rnd, 1000);
    double rel = fabs((double)est - (double)zn) / (double)zn;
    if (rel > worst) worst = rel;
    CHECKF(rel < 0.12, "random bytes: estimated %zu, zlib %lu", est, (unsigned long)zn);
    CHECK(decode_compression_ratio("", 0) == 0.0f);
    printf("  compressed size vs zlib level 6: worst relative difference %.4f\n", worst);
}

static void test_segments_wcpp(void)
{
    struct tok_special sp;
    tok_special_init(&sp, V_EN);
    const int beg = sp.beg;
    /* t t ts10 ts20 t t ts30 t: two closed segments and trailing text. */
    int32_t tok[8] = {100, 101, beg + 10, beg + 20, 102, 103, beg + 30, 104};
    int32_t tid[8] = {beg + 2, beg + 5, beg + 10, beg + 20, beg + 3, beg + 4, beg + 30, beg + 9};
    unsigned char has[8] = {1, 1, 0, 0, 1, 1, 0, 1};
    struct decode_seg s[8];
    int n = decode_segments_wcpp(&sp, tok, tid, has, 8, 1000, 70, s, 8);
    CHECKF(n == 3, "%d segments", n);
    CHECK(s[0].i0 == 0 && s[0].i1 == 3 && s[0].t0 == 1004 && s[0].t1 == 1020);
    CHECK(s[1].i0 == 4 && s[1].i1 == 7 && s[1].t0 == 1040 && s[1].t1 == 1060);
    CHECK(s[2].i0 == 7 && s[2].i1 == 8 && s[2].t0 == 1060 && s[2].t1 == 1070);
    /* A token with no text bytes (whisper.cpp's C string of 0x00) makes no
     * segment. */
    unsigned char none[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    CHECK(decode_segments_wcpp(&sp, tok, tid, none, 8, 0, 70, s, 8) == 0);
    /* No timestamp possible (tid 0): the segment starts at the window. */
    int32_t nt[2] = {100, 101}, nt_tid[2] = {0, 0};
    n = decode_segments_wcpp(&sp, nt, nt_tid, has, 2, 500, 3000, s, 8);
    CHECK(n == 1 && s[0].t0 == 500 && s[0].t1 == 3500 && s[0].i1 == 2);
}

static void test_segments_openai(void)
{
    struct tok_special sp;
    tok_special_init(&sp, V_EN);
    const int beg = sp.beg;
    struct decode_seg s[8];
    int next;
    /* ts0 t ts10 ts10 t ts20: pair split + single timestamp ending. */
    int32_t a[6] = {beg, 100, beg + 10, beg + 10, 101, beg + 20};
    int n = decode_segments_openai(&sp, a, 6, 500, 3000, s, 8, &next);
    CHECK(n == 2 && s[0].i0 == 0 && s[0].i1 == 3 && s[0].t0 == 500 && s[0].t1 == 520);
    CHECK(s[1].i0 == 3 && s[1].i1 == 6 && s[1].t0 == 520 && s[1].t1 == 540 && next == 3500);
    /* Ending in a pair: seek to the last timestamp of the last full segment. */
    int32_t b[7] = {beg, 100, beg + 10, beg + 12, 101, beg + 20, beg + 25};
    n = decode_segments_openai(&sp, b, 7, 0, 3000, s, 8, &next);
    CHECK(n == 2 && s[1].i1 == 6 && s[1].t1 == 40 && next == 40);
    /* No pair: one segment; its end is the last timestamp unless <|0.00|>. */
    int32_t c[3] = {beg, 100, 101};
    n = decode_segments_openai(&sp, c, 3, 100, 1100, s, 8, &next);
    CHECK(n == 1 && s[0].t0 == 100 && s[0].t1 == 1200 && next == 1200);
    int32_t d[3] = {beg, 100, beg + 5};
    n = decode_segments_openai(&sp, d, 3, 100, 1100, s, 8, &next);
    CHECK(n == 1 && s[0].t1 == 110 && next == 1200);
    /* A window that would not advance moves on by its length. */
    int32_t e[3] = {beg, beg, 100};
    n = decode_segments_openai(&sp, e, 3, 0, 3000, s, 8, &next);
    CHECK(next == 3000);
}

static void test_utf8(void)
{
    /* A character split across two tokens survives when the bytes are
     * joined before sanitising. */
    const char joined[] = "a\xe2\x99" "\xaa" "b";
    char *s = result_utf8_sanitize(joined, strlen(joined));
    CHECK(s && !strcmp(s, "a\xe2\x99\xaa" "b"));
    free(s);
    s = result_utf8_sanitize("a\xe2\x99", 3);
    CHECK(s && !strcmp(s, "a\xef\xbf\xbd\xef\xbf\xbd"));
    free(s);
    s = result_utf8_sanitize("\xc0\xaf", 2); /* overlong */
    CHECK(s && !strcmp(s, "\xef\xbf\xbd\xef\xbf\xbd"));
    free(s);
    s = result_utf8_sanitize("\xed\xa0\x80", 3); /* surrogate */
    CHECK(s && !strcmp(s, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));
    free(s);
    s = result_utf8_sanitize("\xf0\x9f\x98\x80 ok", 7);
    CHECK(s && !strcmp(s, "\xf0\x9f\x98\x80 ok"));
    free(s);
    s = result_utf8_sanitize("x\0y", 3); /* NUL is valid UTF-8 but ends the C string */
    CHECK(s && !strcmp(s, "x"));
    free(s);
}

static void test_result(void)
{
    struct hark_options o;
    hark_options_init(&o);
    CHECK(o.beam_size == 5 && o.best_of == 5 && o.temperature == 0.0f && o.decoder == HARK_DECODER_OPENAI);
    CHECK(fabsf(o.temperature_inc - 0.2f) < 1e-7f && o.condition_on_previous == 1);
    CHECK(fabsf(o.compression_ratio_threshold - 2.4f) < 1e-7f && o.logprob_threshold == -1.0f);
    CHECK(fabsf(o.no_speech_threshold - 0.6f) < 1e-7f);

    struct hark_result *r = calloc(1, sizeof(*r));
    CHECK(r != NULL);
    if (!r) return;
    for (int i = 0; i < 40; i++) {
        struct hark_segment seg;
        memset(&seg, 0, sizeof(seg));
        seg.text = strdup("hi");
        struct hark_token *t = calloc(1, sizeof(*t));
        t->text = strdup("hi");
        seg.tokens = t;
        seg.n_tokens = 1;
        seg.start_s = i;
        CHECK(result_add_segment(r, &seg) == 0);
    }
    CHECK(hark_result_n_segments(r) == 40);
    CHECK(hark_result_segment(r, 39)->id == 39 && hark_result_segment(r, 39)->start_s == 39.0);
    CHECK(hark_result_segment(r, 40) == NULL && hark_result_segment(r, -1) == NULL);
    CHECK(!strcmp(hark_result_task(r), "transcribe"));
    hark_result_free(r);
    hark_result_free(NULL);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("suppress_list", test_suppress_list);
    t_run("suppress_blank_and_tokens", test_suppress_blank_and_tokens);
    t_run("timestamp_pairs", test_pairs);
    t_run("timestamp_monotonic", test_monotonic);
    t_run("initial_timestamp", test_initial);
    t_run("timestamp_forcing", test_forcing);
    t_run("temperature_and_choice", test_temperature_and_choice);
    t_run("sampling", test_sampling);
    t_run("beam_openai", test_beam_openai);
    t_run("beam_whisper_cpp", test_beam_wcpp);
    t_run("wcpp_window_bookkeeping", test_wcpp_window);
    t_run("entropy_and_compression", test_entropy_and_compression);
    t_run("segments_whisper_cpp", test_segments_wcpp);
    t_run("segments_openai", test_segments_openai);
    t_run("utf8_sanitize", test_utf8);
    t_run("result", test_result);
    return t_summary();
}
