/*
 * test_transcribe.c: hark_transcribe end to end with the openai profile on
 * the random-weight models: well-formed segments, the translate task and
 * language detection on multilingual vocabularies, the initial prompt,
 * seeded sampling, cancellation through the progress callback, and two
 * threads sharing one model.
 *
 * The models have random weights, so the text is meaningless; what is
 * checked is the contract: times, prompts, determinism, errors.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "decoder.h"
#include "encoder.h"
#include "harness.h"
#include "hark.h"
#include "logits.h"
#include "mel.h"
#include "model.h"
#include "tokenizer.h"
#include "wav.h"

static float *jfk;
static size_t jfk_n;

static hark_model *load(const char *name, hark_state **st)
{
    char err[256];
    hark_model *m = hark_model_load(t_shared("models", name), NULL, err, sizeof(err));
    CHECKF(m != NULL, "%s: %s", name, err);
    *st = m ? hark_state_new(m, 2, err, sizeof(err)) : NULL;
    CHECKF(!m || *st, "%s: %s", name, err);
    return m;
}

/* Segments: times non-decreasing inside [0, duration], text non-empty,
 * openai's first token a timestamp, fields in range. */
static void check_sane(const hark_model *m, const hark_result *r, const char *what)
{
    struct tok_special sp;
    tok_special_init(&sp, hark_model_hparams(m)->n_vocab);
    double dur = hark_result_duration_s(r), prev = 0.0;
    int n = hark_result_n_segments(r);
    CHECKF(fabs(dur - 11.0) < 1e-9, "%s: duration %.3f", what, dur);
    CHECKF(n > 0, "%s: no segments", what);
    for (int i = 0; i < n; i++) {
        const struct hark_segment *s = hark_result_segment(r, i);
        CHECKF(s->start_s >= prev - 1e-9 && s->start_s <= s->end_s && s->end_s <= dur + 1e-9,
               "%s: segment %d [%.2f, %.2f] after %.2f", what, i, s->start_s, s->end_s, prev);
        prev = s->start_s;
        CHECKF(s->text && s->text[0], "%s: segment %d has empty text", what, i);
        CHECKF(s->n_tokens > 0 && s->tokens[0].id >= sp.beg, "%s: segment %d starts with token %d", what, i,
               s->n_tokens ? s->tokens[0].id : -1);
        CHECKF(s->avg_logprob <= 0.0f && s->temperature >= 0.0f && s->temperature <= 1.0f,
               "%s: segment %d avg_logprob %.3f temperature %.2f", what, i, s->avg_logprob, s->temperature);
        CHECKF(s->no_speech_prob >= 0.0f && s->no_speech_prob <= 1.0f, "%s: no_speech_prob %g", what,
               s->no_speech_prob);
        double tok_prev = s->start_s;
        for (int j = 0; j < s->n_tokens; j++) {
            const struct hark_token *k = &s->tokens[j];
            CHECK(k->text != NULL && k->p >= 0.0f && k->p <= 1.0f);
            if (k->id >= sp.beg) {
                CHECK(k->t0_s >= 0.0 && k->t0_s == k->t1_s);
                continue;
            }
            /* Text tokens carry a span inside their segment, in order. */
            CHECKF(k->t0_s >= tok_prev - 1e-9 && k->t0_s <= k->t1_s && k->t1_s <= s->end_s + 1e-9,
                   "%s: segment %d token %d [%.2f, %.2f] after %.2f in [%.2f, %.2f]", what, i, j,
                   k->t0_s, k->t1_s, tok_prev, s->start_s, s->end_s);
            tok_prev = k->t1_s;
        }
    }
}

static int same_result(const hark_result *a, const hark_result *b)
{
    if (hark_result_n_segments(a) != hark_result_n_segments(b)) return 0;
    for (int i = 0; i < hark_result_n_segments(a); i++) {
        const struct hark_segment *x = hark_result_segment(a, i), *y = hark_result_segment(b, i);
        if (x->n_tokens != y->n_tokens || x->start_s != y->start_s || x->end_s != y->end_s ||
            strcmp(x->text, y->text))
            return 0;
        for (int j = 0; j < x->n_tokens; j++)
            if (x->tokens[j].id != y->tokens[j].id) return 0;
    }
    return 1;
}

static void test_openai_greedy_and_beam(void)
{
    hark_state *st = NULL;
    hark_model *m = load("rt-mini.en-f32.bin", &st);
    if (!st) goto done;
    char err[256];
    struct hark_options o;
    hark_options_init(&o);
    o.beam_size = 1;
    hark_result *r = NULL;
    int rc = hark_transcribe(st, jfk, jfk_n, &o, &r, err, sizeof(err));
    CHECKF(rc == 0, "greedy: %s", err);
    if (r) {
        check_sane(m, r, "openai greedy");
        CHECK(!strcmp(hark_result_language(r), "en") && hark_result_language_prob(r) == 1.0f);
        printf("  openai greedy: %d segments, first [%.2f, %.2f] T=%.1f\n", hark_result_n_segments(r),
               hark_result_segment(r, 0)->start_s, hark_result_segment(r, 0)->end_s,
               hark_result_segment(r, 0)->temperature);
    }
    hark_result_free(r);
    r = NULL;
    hark_options_init(&o); /* beam 5, fallback on */
    rc = hark_transcribe(st, jfk, jfk_n, &o, &r, err, sizeof(err));
    CHECKF(rc == 0, "beam 5: %s", err);
    if (r) {
        check_sane(m, r, "openai beam 5");
        printf("  openai beam 5: %d segments, T=%.1f\n", hark_result_n_segments(r),
               hark_result_segment(r, 0)->temperature);
    }
    hark_result_free(r);
    /* Bad options are refused. */
    hark_options_init(&o);
    o.beam_size = 64;
    r = (hark_result *)&o;
    CHECK(hark_transcribe(st, jfk, jfk_n, &o, &r, err, sizeof(err)) == HARK_EINVAL && r == NULL);
    hark_options_init(&o);
    o.language = "de";
    CHECK(hark_transcribe(st, jfk, jfk_n, &o, &r, err, sizeof(err)) == HARK_EINVAL && r == NULL);
done:
    hark_state_free(st);
    hark_model_free(m);
}

struct prompt_cap {
    int32_t prompt[256];
    int n;
};

static void cap_begin(void *user, int window, int seek, const int32_t *prompt, int n_prompt)
{
    struct prompt_cap *c = user;
    if (window == 0) {
        c->n = n_prompt < 256 ? n_prompt : 256;
        memcpy(c->prompt, prompt, (size_t)c->n * sizeof(int32_t));
    }
}

/* Language detection recomputed from the encoder and decoder directly:
 * the first window as openai pads it (content frames, then zeros), one
 * decoder step on [sot], softmax over the language tokens. */
static int reference_language(hark_model *m, hark_state *st, float *prob)
{
    struct tok_special sp;
    tok_special_init(&sp, m->hp.n_vocab);
    float *mel = NULL, *win = NULL, *logits = NULL;
    int nf = 0, best = -1;
    if (mel_compute(jfk, jfk_n, m->mel_filters, m->hp.n_mels, 1, &mel, &nf) != 0) goto out;
    win = calloc((size_t)m->hp.n_mels * 3000, sizeof(float));
    logits = malloc((size_t)m->hp.n_vocab * sizeof(float));
    if (!win || !logits) goto out;
    int content = nf - 3000;
    for (int b = 0; b < m->hp.n_mels; b++)
        memcpy(win + (size_t)b * 3000, mel + (size_t)b * nf, (size_t)(content < 3000 ? content : 3000) * sizeof(float));
    int32_t sot = sp.sot;
    if (enc_forward(st, win, 3000, 0) != 0 || dec_forward(st, 0, &sot, 1, 0, 0, logits) != 0) goto out;
    double mx = -1e30, sum = 0.0;
    for (int i = 0; i < sp.n_lang; i++)
        if (logits[sp.lang0 + i] > mx) {
            mx = logits[sp.lang0 + i];
            best = i;
        }
    for (int i = 0; i < sp.n_lang; i++) sum += exp(logits[sp.lang0 + i] - mx);
    *prob = (float)(1.0 / sum);
out:
    free(mel);
    free(win);
    free(logits);
    return best;
}

static void check_multilingual(const char *name)
{
    hark_state *st = NULL;
    hark_model *m = load(name, &st);
    if (!st) goto done;
    char err[256];
    struct tok_special sp;
    tok_special_init(&sp, hark_model_hparams(m)->n_vocab);
    struct hark_options o;
    hark_options_init(&o);
    o.beam_size = 1;
    o.no_fallback = 1;
    o.language = NULL;
    o.task = HARK_TASK_TRANSLATE;
    struct prompt_cap cap = {{0}, 0};
    struct decode_hooks hooks = {.user = &cap, .window_begin = cap_begin};
    hark_result *r = NULL;
    int rc = decode_run(st, jfk, jfk_n, &o, &hooks, &r, err, sizeof(err));
    CHECKF(rc == 0, "%s translate: %s", name, err);
    if (r) {
        const char *lang = hark_result_language(r);
        int li = hark_lang_index(lang);
        float p = hark_result_language_prob(r);
        printf("  %s: detected '%s' p=%.4f, %d segments\n", name, lang, p, hark_result_n_segments(r));
        CHECKF(li >= 0 && li < hark_lang_count(m), "%s: language '%s'", name, lang);
        CHECKF(p > 0.0f && p <= 1.0f, "%s: language probability %g", name, p);
        CHECK(!strcmp(hark_result_task(r), "translate"));
        float ref_p = 0.0f;
        int ref_l = reference_language(m, st, &ref_p);
        CHECKF(ref_l == li && fabsf(ref_p - p) < 1e-5f, "%s: language %d p=%.6f, recomputed %d p=%.6f", name,
               li, p, ref_l, ref_p);
        CHECKF(cap.n == 3 && cap.prompt[0] == sp.sot && cap.prompt[1] == sp.lang0 + li &&
                   cap.prompt[2] == sp.translate,
               "%s: prompt of %d tokens [%d %d %d]", name, cap.n, cap.prompt[0], cap.prompt[1], cap.prompt[2]);
        check_sane(m, r, name);
    }
    hark_result_free(r);
    r = NULL;
    /* An explicit language is used as given; auto detection again. */
    o.language = "fr";
    o.task = HARK_TASK_TRANSCRIBE;
    rc = decode_run(st, jfk, jfk_n, &o, &hooks, &r, err, sizeof(err));
    CHECKF(rc == 0, "%s fr: %s", name, err);
    if (r) {
        CHECK(!strcmp(hark_result_language(r), "fr"));
        CHECK(cap.n == 3 && cap.prompt[1] == sp.lang0 + hark_lang_index("fr") && cap.prompt[2] == sp.transcribe);
    }
    hark_result_free(r);
done:
    hark_state_free(st);
    hark_model_free(m);
}

static void test_multilingual(void)
{
    check_multilingual("rt-mini-f16.bin");
    check_multilingual("rt-v3-f16.bin");
}

static void test_initial_prompt(void)
{
    hark_state *st = NULL;
    hark_model *m = load("rt-mini.en-f16.bin", &st);
    if (!st) goto done;
    char err[256];
    struct tok_special sp;
    tok_special_init(&sp, hark_model_hparams(m)->n_vocab);
    int32_t ids[64];
    const char *text = " Ask not what your country can do for you.";
    int n_ids = tok_encode(m, text, strlen(text), ids, 64);
    CHECK(n_ids > 3 && n_ids < 64);
    struct hark_options o;
    hark_options_init(&o);
    o.beam_size = 1;
    o.no_fallback = 1;
    o.initial_prompt = "  Ask not what your country can do for you.  ";
    struct prompt_cap cap = {{0}, 0};
    struct decode_hooks hooks = {.user = &cap, .window_begin = cap_begin};
    hark_result *r = NULL;
    int rc = decode_run(st, jfk, jfk_n, &o, &hooks, &r, err, sizeof(err));
    CHECKF(rc == 0, "initial prompt: %s", err);
    /* openai: [startofprev] + encode(" " + prompt.strip()) + [sot]. */
    int ok = cap.n == n_ids + 2 && cap.prompt[0] == sp.prev && cap.prompt[cap.n - 1] == sp.sot;
    for (int i = 0; ok && i < n_ids; i++) ok = cap.prompt[1 + i] == ids[i];
    CHECKF(ok, "prompt of %d tokens, expected %d", cap.n, n_ids + 2);
    if (r) check_sane(m, r, "initial prompt");
    hark_result_free(r);
done:
    hark_state_free(st);
    hark_model_free(m);
}

static void test_sampling_determinism(void)
{
    hark_state *st = NULL;
    hark_model *m = load("rt-mini.en-f16.bin", &st);
    if (!st) goto done;
    char err[256];
    struct hark_options o;
    hark_options_init(&o);
    o.temperature = 0.6f;
    o.no_fallback = 1;
    o.best_of = 3;
    o.seed = 1234;
    hark_result *a = NULL, *b = NULL, *c = NULL;
    CHECK(hark_transcribe(st, jfk, jfk_n, &o, &a, err, sizeof(err)) == 0);
    CHECK(hark_transcribe(st, jfk, jfk_n, &o, &b, err, sizeof(err)) == 0);
    o.seed = 99;
    CHECK(hark_transcribe(st, jfk, jfk_n, &o, &c, err, sizeof(err)) == 0);
    if (a && b) {
        CHECKF(same_result(a, b), "two runs with seed 1234 differ");
        check_sane(m, a, "sampled");
        CHECK(hark_result_segment(a, 0)->temperature == 0.6f);
    }
    if (a && c) printf("  seed 99 vs 1234: %s\n", same_result(a, c) ? "same" : "different");
    hark_result_free(a);
    hark_result_free(b);
    hark_result_free(c);
done:
    hark_state_free(st);
    hark_model_free(m);
}

struct progress_log {
    float last;
    int calls, monotonic, cancel_at;
};

static int on_progress(void *user, float f)
{
    struct progress_log *p = user;
    if (f < p->last || f < 0.0f || f > 1.0f) p->monotonic = 0;
    p->last = f;
    p->calls++;
    return p->cancel_at > 0 && p->calls >= p->cancel_at;
}

static void test_progress_and_cancel(void)
{
    hark_state *st = NULL;
    hark_model *m = load("rt-mini.en-f16.bin", &st);
    if (!st) goto done;
    char err[256];
    float *pcm = NULL;
    size_t n = 0;
    CHECK(wav_read(t_shared("audio", "hifitts_concat_75s.wav"), &pcm, &n, err, sizeof(err)) == 0);
    struct hark_options o;
    hark_options_init(&o);
    o.beam_size = 1;
    o.no_fallback = 1;
    struct progress_log p = {0.0f, 0, 1, 1};
    o.progress = on_progress;
    o.progress_user = &p;
    hark_result *r = (hark_result *)&o;
    int rc = hark_transcribe(st, pcm, n, &o, &r, err, sizeof(err));
    CHECKF(rc == HARK_ECANCELED && r == NULL, "cancel: rc %d", rc);
    CHECK(p.calls == 1 && p.last >= 0.0f && p.last < 1.0f);
    struct progress_log q = {0.0f, 0, 1, 0};
    o.progress_user = &q;
    rc = hark_transcribe(st, pcm, n, &o, &r, err, sizeof(err));
    CHECKF(rc == 0, "progress: %s", err);
    CHECKF(q.calls >= 3 && q.monotonic && q.last == 1.0f, "%d progress calls, monotonic %d, last %.3f",
           q.calls, q.monotonic, q.last);
    hark_result_free(r);
    free(pcm);
done:
    hark_state_free(st);
    hark_model_free(m);
}

/* What the segment callback saw: copies of each segment's text, times and
 * words, the progress reported when it came, and when to cancel. */
struct segment_log {
    int calls, in_order, cancel_at;
    float progress;       /* the last progress fraction reported */
    float progress_first; /* ... when the first segment came */
    char *text[256];
    double t[256][2];
    int n_words[256];
    double word_end[256]; /* the last word's end */
};

static int log_progress(void *user, float f)
{
    ((struct segment_log *)user)->progress = f;
    return 0;
}

static int log_segment(void *user, const struct hark_segment *s, int index)
{
    struct segment_log *g = user;
    if (index != g->calls) g->in_order = 0;
    if (g->calls == 0) g->progress_first = g->progress;
    if (g->calls < 256) {
        g->text[g->calls] = strdup(s->text ? s->text : "");
        g->t[g->calls][0] = s->start_s;
        g->t[g->calls][1] = s->end_s;
        g->n_words[g->calls] = s->n_words;
        g->word_end[g->calls] = s->n_words ? s->words[s->n_words - 1].end_s : -1.0;
    }
    g->calls++;
    return g->cancel_at > 0 && g->calls >= g->cancel_at;
}

/* The mini model, the VAD model and jfk.wav three times over (33 s, two
 * windows), for the tests of long runs; members NULL where loading failed
 * (reported). */
struct long_run {
    hark_model *m;
    hark_state *st;
    hark_vad *vad;
    float *pcm;
    size_t n;
};

static void long_run_open(struct long_run *lr)
{
    char err[256];
    lr->m = load("rt-mini.en-f16.bin", &lr->st);
    lr->vad = hark_vad_load(t_shared("vad", "ggml-silero-v6.2.0.bin"), NULL, err, sizeof err);
    CHECKF(lr->vad != NULL, "vad: %s", err);
    lr->n = 3 * jfk_n;
    lr->pcm = malloc(lr->n * sizeof(float));
    for (size_t i = 0; lr->pcm && i < lr->n; i++) lr->pcm[i] = jfk[i % jfk_n];
}

static void long_run_close(struct long_run *lr)
{
    free(lr->pcm);
    hark_vad_free(lr->vad);
    hark_state_free(lr->st);
    hark_model_free(lr->m);
}

/* The segment callback gives every segment of the result in order, as the
 * result has it in the end (times, text, words), the first while a window
 * is still left; with speech detection its times are already on the
 * original timeline. A nonzero answer cancels. */
static void test_segment_callback(void)
{
    struct long_run lr;
    long_run_open(&lr);
    hark_state *st = lr.st;
    hark_vad *vad = lr.vad;
    float *pcm = lr.pcm;
    size_t n = lr.n;
    char err[256];
    if (!st || !vad || !pcm) goto done;
    static const struct { int wcpp, words, vad; } runs[] = {{0, 0, 0}, {0, 1, 1}, {1, 0, 1}};
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        struct hark_options o;
        hark_options_init(&o);
        o.beam_size = 1;
        o.no_fallback = 1;
        o.decoder = runs[k].wcpp ? HARK_DECODER_WHISPER_CPP : HARK_DECODER_OPENAI;
        o.word_timestamps = runs[k].words;
        o.vad = runs[k].vad ? vad : NULL;
        struct segment_log g = {.in_order = 1};
        o.progress = log_progress;
        o.progress_user = &g;
        o.on_segment = log_segment;
        o.segment_user = &g;
        hark_result *r = NULL;
        int rc = hark_transcribe(st, pcm, n, &o, &r, err, sizeof(err));
        CHECKF(rc == 0, "run %zu: %s", k, err);
        int ns = r ? hark_result_n_segments(r) : 0;
        CHECKF(ns > 0 && g.calls == ns && g.in_order, "run %zu: %d calls in order %d, %d segments", k, g.calls,
               g.in_order, ns);
        /* Without speech detection the two windows stay two. */
        CHECKF(runs[k].vad || (ns > 1 && g.progress_first < 0.9f), "run %zu: %d segments, the first at progress %.2f",
               k, ns, g.progress_first);
        for (int i = 0; i < ns && i < g.calls && i < 256; i++) {
            const struct hark_segment *s = hark_result_segment(r, i);
            double we = s->n_words ? s->words[s->n_words - 1].end_s : -1.0;
            CHECKF(!strcmp(s->text, g.text[i]) && s->start_s == g.t[i][0] && s->end_s == g.t[i][1] &&
                       s->n_words == g.n_words[i] && we == g.word_end[i],
                   "run %zu segment %d: [%.2f %.2f] \"%s\" %d words, called with [%.2f %.2f] \"%s\" %d words", k,
                   i, s->start_s, s->end_s, s->text, s->n_words, g.t[i][0], g.t[i][1], g.text[i], g.n_words[i]);
            CHECKF(!runs[k].words || s->n_words > 0, "run %zu segment %d: no words", k, i);
        }
        for (int i = 0; i < g.calls && i < 256; i++) free(g.text[i]);
        hark_result_free(r);
        if (k > 0) continue;
        /* Canceled from the second segment on. */
        struct segment_log c = {.in_order = 1, .cancel_at = 2};
        o.progress_user = &c;
        o.segment_user = &c;
        r = (hark_result *)&o;
        rc = hark_transcribe(st, pcm, n, &o, &r, err, sizeof(err));
        CHECKF(rc == HARK_ECANCELED && r == NULL && c.calls == 2, "run %zu cancel: rc %d, %d calls", k, rc,
               c.calls);
        CHECKF(strstr(err, "canceled") != NULL, "cancel: %s", err);
        for (int i = 0; i < c.calls && i < 256; i++) free(c.text[i]);
    }
done:
    long_run_close(&lr);
}

/* What the window callback said: where each next window begins and how
 * many segments were final then. */
struct window_log {
    int n;
    double next_s[64];
    int n_segments[64];
};

static int log_window(void *user, double next_s, int n_segments)
{
    struct window_log *g = user;
    if (g->n < 64) {
        g->next_s[g->n] = next_s;
        g->n_segments[g->n] = n_segments;
    }
    g->n++;
    return 0;
}

/* The window calls: in order, their counts growing to the result's. */
static void check_windows(const struct window_log *g, const hark_result *r, const char *what)
{
    int n = hark_result_n_segments(r);
    CHECKF(g->n > 0 && g->n <= 64 && g->n_segments[g->n - 1] == n, "%s: %d window calls, the last with %d of %d", what,
           g->n, g->n ? g->n_segments[g->n - 1] : -1, n);
    for (int i = 1; i < g->n && i < 64; i++)
        CHECKF(g->next_s[i] > g->next_s[i - 1] && g->n_segments[i] >= g->n_segments[i - 1],
               "%s: window %d at %.2f s after %.2f s", what, i, g->next_s[i], g->next_s[i - 1]);
    for (int i = 0; i < g->n && i < 64; i++) {
        int k = g->n_segments[i];
        /* Each segment final by then began before that window. */
        CHECKF(k == 0 || hark_result_segment(r, k - 1)->start_s < g->next_s[i] + 1e-9, "%s: window %d", what, i);
    }
}

/* A run begun where the window callback said a full run's next window
 * begins (start_s), without conditioning on earlier text, gives the full
 * run's segments from that window on, tokens and words included;
 * hark_result_prepend joins the earlier ones back into the full result.
 * With speech detection nothing before start_s is transcribed and the
 * speech found is still all listed. */
static void test_resume(void)
{
    struct long_run lr;
    long_run_open(&lr);
    hark_state *st = lr.st;
    hark_vad *vad = lr.vad;
    float *pcm = lr.pcm;
    size_t n = lr.n;
    char err[256];
    if (!st || !vad || !pcm) goto done;
    static const struct { int wcpp, words; } runs[] = {{0, 0}, {0, 1}, {1, 1}};
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        struct hark_options o;
        hark_options_init(&o);
        o.beam_size = 1;
        o.no_fallback = 1;
        o.condition_on_previous = 0;
        o.decoder = runs[k].wcpp ? HARK_DECODER_WHISPER_CPP : HARK_DECODER_OPENAI;
        o.word_timestamps = runs[k].words;
        hark_result *full = NULL, *part = NULL;
        struct window_log wl = {0};
        o.on_window = log_window;
        o.window_user = &wl;
        int rc = hark_transcribe(st, pcm, n, &o, &full, err, sizeof(err));
        CHECKF(rc == 0, "run %zu: %s", k, err);
        if (full) check_windows(&wl, full, runs[k].wcpp ? "whisper.cpp" : "openai");
        o.on_window = NULL;
        int nf = full ? hark_result_n_segments(full) : 0, k0 = wl.n_segments[0];
        CHECKF(wl.n > 1 && k0 > 0 && k0 < nf, "run %zu: %d segments, %d in the first of %d windows", k, nf, k0,
               wl.n);
        if (wl.n < 2 || k0 == 0 || k0 >= nf) {
            hark_result_free(full);
            continue;
        }
        CHECK(hark_result_segment(full, k0)->seek == (int)(wl.next_s[0] * 100.0 + 0.5));
        o.start_s = wl.next_s[0];
        rc = hark_transcribe(st, pcm, n, &o, &part, err, sizeof(err));
        CHECKF(rc == 0, "run %zu from %.2f s: %s", k, o.start_s, err);
        int np = part ? hark_result_n_segments(part) : 0;
        CHECKF(np == nf - k0, "run %zu from %.2f s: %d segments, want %d", k, o.start_s, np, nf - k0);
        CHECK(part == NULL || hark_result_duration_s(part) == hark_result_duration_s(full));
        for (int i = 0; i < np && k0 + i < nf; i++) {
            const struct hark_segment *a = hark_result_segment(full, k0 + i), *b = hark_result_segment(part, i);
            int same = a->start_s == b->start_s && a->end_s == b->end_s && !strcmp(a->text, b->text) &&
                       a->n_tokens == b->n_tokens && a->n_words == b->n_words && a->seek == b->seek;
            for (int j = 0; same && j < a->n_tokens; j++)
                same = a->tokens[j].id == b->tokens[j].id && a->tokens[j].t_dtw_s == b->tokens[j].t_dtw_s;
            for (int j = 0; same && j < a->n_words; j++)
                same = a->words[j].start_s == b->words[j].start_s && a->words[j].end_s == b->words[j].end_s &&
                       !strcmp(a->words[j].text, b->words[j].text);
            CHECKF(same, "run %zu segment %d: [%.2f %.2f] \"%s\" resumed as [%.2f %.2f] \"%s\"", k, k0 + i,
                   a->start_s, a->end_s, a->text, b->start_s, b->end_s, b->text);
        }
        /* The earlier segments joined in front give the full result. */
        struct hark_segment *early = calloc((size_t)k0, sizeof *early);
        for (int i = 0; early && i < k0; i++) early[i] = *hark_result_segment(full, i);
        CHECK(early && hark_result_prepend(part, early, k0) == 0);
        free(early);
        CHECKF(part && same_result(full, part), "run %zu: joined result differs", k);
        for (int i = 0; part && i < hark_result_n_segments(part); i++)
            CHECK(hark_result_segment(part, i)->id == i &&
                  hark_result_segment(part, i)->language == hark_result_language(part));
        if (part && runs[k].words) {
            const struct hark_segment *a = hark_result_segment(full, 0), *b = hark_result_segment(part, 0);
            CHECK(a->n_words == b->n_words && a->words != b->words && a->n_words > 0 &&
                  !strcmp(a->words[0].text, b->words[0].text));
        }
        hark_result_free(part);
        hark_result_free(full);
    }
    /* Speech detection: nothing before start_s, all the speech listed. */
    struct hark_options o;
    hark_options_init(&o);
    o.beam_size = 1;
    o.no_fallback = 1;
    o.vad = vad;
    hark_result *full = NULL, *part = NULL;
    struct window_log wl = {0};
    o.on_window = log_window;
    o.window_user = &wl;
    int rc = hark_transcribe(st, pcm, n, &o, &full, err, sizeof(err));
    CHECKF(rc == 0, "vad: %s", err);
    if (full) check_windows(&wl, full, "vad");
    o.on_window = NULL;
    o.start_s = 12.5;
    rc = hark_transcribe(st, pcm, n, &o, &part, err, sizeof(err));
    CHECKF(rc == 0, "vad from 12.5 s: %s", err);
    int np = part ? hark_result_n_segments(part) : 0;
    CHECKF(np > 0 && full && np < hark_result_n_segments(full), "vad from 12.5 s: %d segments of %d", np,
           full ? hark_result_n_segments(full) : 0);
    for (int i = 0; i < np; i++)
        CHECKF(hark_result_segment(part, i)->start_s >= 12.5, "vad from 12.5 s: segment %d at %.2f", i,
               hark_result_segment(part, i)->start_s);
    CHECK(full && part && hark_result_n_speech(part) == hark_result_n_speech(full));
    hark_result_free(part);
    part = NULL;
    o.start_s = 40.0;
    rc = hark_transcribe(st, pcm, n, &o, &part, err, sizeof(err));
    CHECKF(rc == 0 && part && hark_result_n_segments(part) == 0, "vad past the end: rc %d", rc);
    hark_result_free(part);
    hark_result_free(full);
    /* A start that is no time is refused. */
    static const double bad[] = {-1.0, NAN};
    for (int i = 0; i < 2; i++) {
        o.start_s = bad[i];
        part = (hark_result *)&o;
        rc = hark_transcribe(st, pcm, n, &o, &part, err, sizeof(err));
        CHECKF(rc == HARK_EINVAL && part == NULL && strstr(err, "start_s"), "start_s %g: rc %d %s", bad[i], rc,
               err);
    }
    CHECK(hark_result_prepend(NULL, NULL, 0) == HARK_EINVAL);
done:
    long_run_close(&lr);
}

/* Bad arguments and bad audio give a code and a reason, never a result. */
static void test_bad_input(void)
{
    hark_state *st = NULL;
    hark_model *m = load("rt-mini.en-f16.bin", &st);
    if (!st) goto done;
    float pcm[1600] = {0};
    static const struct {
        const char *what, *want;
        int code;
    } cases[] = {
        {"nan sample", "sample 17 is not a finite number", HARK_EAUDIO},
        {"translate on .en", "needs a multilingual model", HARK_EINVAL},
        {"unknown language", "unknown language 'xx'", HARK_EINVAL},
        {"german on .en", "English-only", HARK_EINVAL},
        {"temperature", "temperature", HARK_EINVAL},
        {"beam too wide", "at most 8", HARK_EINVAL},
        {"bad task", "unknown task", HARK_EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct hark_options o;
        char err[256] = "";
        hark_result *r = (hark_result *)&o;
        hark_options_init(&o);
        pcm[17] = i == 0 ? NAN : 0.0f;
        if (i == 1) o.task = HARK_TASK_TRANSLATE;
        if (i == 2) o.language = "xx";
        if (i == 3) o.language = "de";
        if (i == 4) o.temperature = -0.5f;
        if (i == 5) o.beam_size = 9;
        if (i == 6) o.task = (enum hark_task)7;
        int rc = hark_transcribe(st, pcm, 1600, &o, &r, err, sizeof err);
        CHECKF(rc == cases[i].code && r == NULL && strstr(err, cases[i].want),
               "%s: rc %d, result %p, '%s'", cases[i].what, rc, (void *)r, err);
    }
done:
    hark_state_free(st);
    hark_model_free(m);
}

struct job {
    hark_model *m;
    hark_result *r;
    int rc;
};

static void *worker(void *arg)
{
    struct job *j = arg;
    char err[256];
    hark_state *st = hark_state_new(j->m, 1, err, sizeof(err));
    j->rc = HARK_ENOMEM;
    if (!st) return NULL;
    struct hark_options o;
    hark_options_init(&o);
    o.beam_size = 2;
    o.no_fallback = 1;
    j->rc = hark_transcribe(st, jfk, jfk_n, &o, &j->r, err, sizeof(err));
    hark_state_free(st);
    return NULL;
}

static void test_threads(void)
{
    char err[256];
    hark_model *m = hark_model_load(t_shared("models", "rt-mini.en-f16.bin"), NULL, err, sizeof(err));
    CHECKF(m != NULL, "%s", err);
    if (!m) return;
    struct job solo = {m, NULL, 0}, j[2] = {{m, NULL, 0}, {m, NULL, 0}};
    worker(&solo);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&th[i], NULL, worker, &j[i]) == 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    CHECK(solo.rc == 0 && j[0].rc == 0 && j[1].rc == 0);
    if (solo.r && j[0].r && j[1].r) {
        CHECKF(same_result(solo.r, j[0].r) && same_result(solo.r, j[1].r),
               "threaded results differ from the single-threaded one");
    }
    hark_result_free(solo.r);
    hark_result_free(j[0].r);
    hark_result_free(j[1].r);
    hark_model_free(m);
}

/* The suppress_tokens=-1 list of openai-whisper for English-only models as
 * published in the Hugging Face generation_config.json of tiny.en
 * (non-speech tokens, then sot, translate, transcribe, startoflm,
 * startofprev, nospeech). */
static const int32_t hf_suppress_en[] = {
    1,     2,     7,     8,     9,     10,    14,    25,    26,    27,    28,    29,    31,    58,
    59,    60,    61,    62,    63,    90,    91,    92,    93,    357,   366,   438,   532,   685,
    705,   796,   930,   1058,  1220,  1267,  1279,  1303,  1343,  1377,  1391,  1635,  1782,  1875,
    2162,  2361,  2488,  3467,  4008,  4211,  4600,  4808,  5299,  5855,  6329,  7203,  9609,  9959,
    10563, 10786, 11420, 11709, 11907, 13163, 13697, 13700, 14808, 15306, 16410, 16791, 17992, 19203,
    19510, 20724, 22305, 22935, 27007, 30109, 30420, 33409, 34949, 40283, 40493, 40549, 47282, 49146,
    50257, 50357, 50358, 50359, 50360, 50361,
};

/* The same for multilingual models (generation_config.json of tiny). */
static const int32_t hf_suppress_ml[] = {
    1,     2,     7,     8,     9,     10,    14,    25,    26,    27,    28,    29,    31,    58,
    59,    60,    61,    62,    63,    90,    91,    92,    93,    359,   503,   522,   542,   873,
    893,   902,   918,   922,   931,   1350,  1853,  1982,  2460,  2627,  3246,  3253,  3268,  3536,
    3846,  3961,  4183,  4667,  6585,  6647,  7273,  9061,  9383,  10428, 10929, 11938, 12033, 12331,
    12562, 13793, 14157, 14635, 15265, 15618, 16553, 16604, 18362, 18956, 20075, 21675, 22520, 26130,
    26161, 26435, 28279, 29464, 31650, 32302, 32470, 36865, 42863, 47425, 49870, 50254, 50258, 50358,
    50359, 50360, 50361, 50362,
};

static void check_suppress(const char *name, const int32_t *want, int n_want)
{
    char err[256];
    hark_model *m = hark_model_load(t_shared("models", name), NULL, err, sizeof(err));
    CHECKF(m != NULL, "%s", err);
    if (!m) return;
    struct tok_special sp;
    tok_special_init(&sp, m->hp.n_vocab);
    int32_t ns[256], list[512];
    int n_ns = decode_nonspeech_ids(m, ns, 256);
    CHECK(n_ns > 0);
    int n = decode_suppress_list(&sp, HARK_DECODER_OPENAI, ns, n_ns, list, 512);
    int diff = n != n_want;
    for (int i = 0; !diff && i < n; i++) diff = list[i] != want[i];
    CHECKF(!diff, "%s: suppress list of %d ids differs from openai-whisper's %d", name, n, n_want);
    if (diff) {
        for (int i = 0; i < n; i++) printf("%d ", list[i]);
        printf("\n");
    }
    hark_model_free(m);
}

static void test_suppress_tokens(void)
{
    check_suppress("rt-mini.en-f16.bin", hf_suppress_en, (int)(sizeof(hf_suppress_en) / sizeof(hf_suppress_en[0])));
    check_suppress("rt-mini-f16.bin", hf_suppress_ml, (int)(sizeof(hf_suppress_ml) / sizeof(hf_suppress_ml[0])));
}

int main(int argc, char **argv)
{
    char err[256];
    t_init(argc, argv);
    if (wav_read(t_shared("audio", "jfk.wav"), &jfk, &jfk_n, err, sizeof(err)) != 0) {
        printf("cannot read jfk.wav: %s\n", err);
        t_skip("transcribe", "jfk.wav missing");
        return t_summary();
    }
    t_run("suppress_tokens_openai", test_suppress_tokens);
    t_run("openai_greedy_and_beam", test_openai_greedy_and_beam);
    t_run("multilingual_translate_detect", test_multilingual);
    t_run("initial_prompt", test_initial_prompt);
    t_run("sampling_determinism", test_sampling_determinism);
    t_run("progress_and_cancel", test_progress_and_cancel);
    t_run("segment_callback", test_segment_callback);
    t_run("resume", test_resume);
    t_run("bad_input", test_bad_input);
    t_run("threads_share_model", test_threads);
    free(jfk);
    return t_summary();
}
