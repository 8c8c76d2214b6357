/*
 * decode.c: hark_transcribe: the log-mel of the whole audio once, then 30 s
 * windows, each encoded, prompted, decoded token by token (greedy, beam
 * search or best-of sampling, with temperature fallback), cut into segments
 * and used as context for the next window.
 *
 * The rules that need no model live in logits.c, search.c and compress.c;
 * this file drives the encoder and decoder (enc_forward, dec_forward,
 * dec_step, dec_reserve, dec_kv_reorder) and owns the window loop of both
 * profiles:
 * - openai: openai-whisper's transcribe.py (seek by the last timestamp pair,
 *   fallback on compression ratio or average log-probability, silence skip);
 * - whisper.cpp: whisper.cpp 1.9.3's whisper_full as re-stated in
 *   ../shared/reference/README.md §10 (seek_delta bookkeeping, entropy
 *   check, failed windows kept when there is no fallback).
 *
 * The buffers live in the state (struct decode_buf), grown before the first
 * window of a state's first transcription and reused by the next ones; the
 * per-token loop allocates nothing. Segments are built per window.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "align.h"
#include "compress.h"
#include "decode.h"
#include "decoder.h"
#include "encoder.h"
#include "errors.h"
#include "hark.h"
#include "logits.h"
#include "mel.h"
#include "model.h"
#include "result.h"
#include "search.h"
#include "speech.h"
#include "state.h"
#include "tokenizer.h"
#include "words.h"

#define N_FRAMES 3000        /* mel frames per window */
#define CTX_MAX 223          /* previous-text tokens in a prompt */
#define MAX_SUPPRESS 512

struct dctx {
    struct hark_state *st;
    const struct hark_model *m;
    const struct hark_options *opt;
    const struct decode_hooks *hooks;
    struct decode_rules rules;
    int32_t suppress[MAX_SUPPRESS];
    int V, n_mels, n_text_ctx, wcpp, n_max;
    float progress_f;  /* the fraction last reported to the progress callback */
    int start;         /* the first window's seek: opt->start_s in frames */

    float *mel;             /* (n_mels, n_frames) */
    int n_frames;
    float *win;             /* (n_mels, N_FRAMES): openai's zero-padded window (borrowed) */
    int encoded_seek;       /* seek of the window in the encoder, -1 if none */

    /* Borrowed from the state's buffers (struct decode_buf). */
    struct decode_buf *buf;
    float *logits;          /* (STATE_MAX_SEQ, V) */
    float *logprobs;        /* (STATE_MAX_SEQ, V) */
    struct decode_seq *seqs;  /* STATE_MAX_SEQ */
    struct decode_beam *beam;
    /* One generator per sequence slot, kept across windows and fallback
     * temperatures as whisper.cpp keeps one per decoder. */
    struct decode_rng rng[STATE_MAX_SEQ];

    int32_t sot_seq[4];
    int n_sot;
    int32_t context[CTX_MAX];
    int n_context;
    int32_t prompt[CTX_MAX + 8];
    int n_prompt;

    /* Word timestamps. */
    int words;
    struct align_heads heads;
    int lang;               /* the language's index, for whisper.cpp's DTW prompt */
    double last_speech_s;   /* openai's last_speech_timestamp */
    int window;             /* the window being aligned, for the hooks */
};

/* The outcome of decoding one window at one temperature. */
struct window_out {
    struct decode_seq seq;  /* output tokens (openai: without eot) */
    float temperature;
    float avg_logprob;
    float compression_ratio;
    float no_speech_prob;
    int failed;             /* whisper.cpp: failed while decoding or by entropy */
    int failed_decoding;    /* whisper.cpp: failed while decoding */
    int result_len, seek_delta;
    int used_context;       /* the prompt carried previous text */
    int n_context_used;
};

/* The buffers a state keeps for decode_run between transcriptions, grown
 * to the model's sizes on first use (decode_buf_reserve) and freed with the
 * state (decode_buf_free). */
struct decode_buf {
    float *logits;          /* (STATE_MAX_SEQ, n_vocab) */
    float *logprobs;        /* (STATE_MAX_SEQ, n_vocab) */
    size_t row_floats;      /* the capacity of each of the two */
    struct decode_seq *seqs;  /* STATE_MAX_SEQ */
    struct decode_beam *beam;
    float *win;             /* (n_mels, N_FRAMES): openai's zero-padded window */
    size_t win_floats;      /* its capacity */
    char *text;             /* scratch for segment text bytes, grown by token_text */
    size_t text_cap;
};

void decode_buf_free(struct decode_buf *b)
{
    if (!b) return;
    free(b->logits);
    free(b->logprobs);
    free(b->seqs);
    free(b->beam);
    free(b->win);
    free(b->text);
    free(b);
}

/* Grows a buffer of floats to n (its contents are not kept); keeps the old
 * one when it cannot. */
static int grow_floats(float **p, size_t *cap, size_t n)
{
    if (n <= *cap) return 0;
    float *q = malloc(n * sizeof(float));
    if (!q) return HARK_ENOMEM;
    free(*p);
    *p = q;
    *cap = n;
    return 0;
}

/* Makes sure st's decoding buffers hold STATE_MAX_SEQ rows of c->V logits
 * and log-probabilities and, when win_floats > 0, a padded window of that
 * many floats; then lends them to c. Returns 0 or HARK_ENOMEM (what was had
 * is kept, still owned by st). */
static int decode_buf_reserve(struct hark_state *st, struct dctx *c, size_t win_floats)
{
    struct decode_buf *b = st->decode;
    if (!b) {
        b = st->decode = calloc(1, sizeof(*b));
        if (!b) return HARK_ENOMEM;
    }
    size_t rows = (size_t)STATE_MAX_SEQ * (size_t)c->V, lp_cap = b->row_floats;
    if (grow_floats(&b->logprobs, &lp_cap, rows) || grow_floats(&b->logits, &b->row_floats, rows) ||
        grow_floats(&b->win, &b->win_floats, win_floats))
        return HARK_ENOMEM;
    if (!b->seqs && !(b->seqs = malloc(STATE_MAX_SEQ * sizeof(*b->seqs)))) return HARK_ENOMEM;
    if (!b->beam && !(b->beam = malloc(sizeof(*b->beam)))) return HARK_ENOMEM;
    c->buf = b;
    c->logits = b->logits;
    c->logprobs = b->logprobs;
    c->seqs = b->seqs;
    c->beam = b->beam;
    c->win = win_floats ? b->win : NULL;
    return 0;
}

/* ------------------------------------------------------------- prompts */

static void context_append(struct dctx *c, const int32_t *tok, int n)
{
    for (int i = 0; i < n; i++) {
        if (c->n_context == CTX_MAX) {
            memmove(c->context, c->context + 1, (CTX_MAX - 1) * sizeof(int32_t));
            c->n_context--;
        }
        c->context[c->n_context++] = tok[i];
    }
}

static void build_prompt(struct dctx *c, int use_context, struct window_out *wo)
{
    c->n_prompt = 0;
    wo->used_context = 0;
    wo->n_context_used = 0;
    if (use_context && c->n_context > 0) {
        c->prompt[c->n_prompt++] = c->rules.sp.prev;
        memcpy(c->prompt + c->n_prompt, c->context, (size_t)c->n_context * sizeof(int32_t));
        c->n_prompt += c->n_context;
        wo->used_context = 1;
        wo->n_context_used = c->n_context;
    }
    memcpy(c->prompt + c->n_prompt, c->sot_seq, (size_t)c->n_sot * sizeof(int32_t));
    c->n_prompt += c->n_sot;
}

int decode_nonspeech_ids(const struct hark_model *m, int32_t *out, int max)
{
    const char *const *sym;
    const unsigned char *misc;
    int n_sym = decode_nonspeech_symbols(&sym, &misc), n = 0;
    int32_t ids[16];
    char buf[32];
    const char *lead[2] = {" -", " '"};
    for (int i = 0; i < 2; i++) {
        int k = tok_encode(m, lead[i], 2, ids, 16);
        if (k < 0) return k;
        if (k > 0 && n < max) out[n++] = ids[0];
    }
    for (int s = 0; s < n_sym; s++) {
        for (int sp = 0; sp < 2; sp++) {
            int len = snprintf(buf, sizeof(buf), "%s%s", sp ? " " : "", sym[s]);
            int k = tok_encode(m, buf, (size_t)len, ids, 16);
            if (k < 0) return k;
            if ((k == 1 || (k > 1 && misc[s])) && n < max) out[n++] = ids[0];
        }
    }
    return n;
}

/* ------------------------------------------------------------- windows */

static int encode_window(struct dctx *c, int seek, int segment_size)
{
    if (c->encoded_seek == seek) return 0;
    int rc;
    if (c->wcpp) {
        rc = enc_forward(c->st, c->mel, c->n_frames, seek);
    } else {
        /* openai pads the window's content with zeros (pad_or_trim), not
         * with the log-mel of silence. */
        for (int b = 0; b < c->n_mels; b++) {
            float *dst = c->win + (size_t)b * N_FRAMES;
            const float *src = c->mel + (size_t)b * c->n_frames + seek;
            int k = segment_size < N_FRAMES ? segment_size : N_FRAMES;
            if (seek + k > c->n_frames) k = c->n_frames - seek;
            if (k < 0) k = 0;
            memcpy(dst, src, (size_t)k * sizeof(float));
            memset(dst + k, 0, (size_t)(N_FRAMES - k) * sizeof(float));
        }
        rc = enc_forward(c->st, c->win, N_FRAMES, 0);
    }
    c->encoded_seek = rc == 0 ? seek : -1;
    return rc;
}

static float prob_of(const float *row, int V, int id, float *scratch)
{
    decode_log_softmax(row, V, scratch);
    return expf(scratch[id]);
}

/* Greedy (n_seq 1 at temperature 0) or best-of sampling over n_seq
 * sequences. Row a of c->logits holds the logits of active sequence a. */
/* Asks the progress callback, every 16 decoder steps, whether to go on (at
 * the fraction last reported), so that a cancel takes effect within a few
 * tokens rather than at the end of a 30 s window. */
static int poll_cancel(const struct dctx *c, int step)
{
    if (!c->opt->progress || (step & 15)) return 0;
    return c->opt->progress(c->opt->progress_user, c->progress_f) ? HARK_ECANCELED : 0;
}

static int run_sampling(struct dctx *c, int n_seq, float t, const struct decode_wcpp *w0, int window)
{
    const struct tok_special *sp = &c->rules.sp;
    const int V = c->V;
    int act[STATE_MAX_SEQ];
    int32_t last[STATE_MAX_SEQ];
    for (int s = 0; s < n_seq; s++) {
        c->seqs[s].n = 0;
        c->seqs[s].sum_lp = 0.0;
        c->seqs[s].done = 0;
        if (w0) c->seqs[s].w = *w0;
        act[s] = s;
        if (s > 0) memcpy(c->logits + (size_t)s * V, c->logits, (size_t)V * sizeof(float));
    }
    int n_act = n_seq;
    for (int i = 0; i < c->n_max; i++) {
        int rc = poll_cancel(c, i);
        if (rc) return rc;
        for (int a = 0; a < n_act; a++) {
            struct decode_seq *s = &c->seqs[act[a]];
            float *row = c->logits + (size_t)a * V, *lp = c->logprobs + (size_t)a * V;
            decode_apply_rules(&c->rules, t, row, s->tok, s->n, lp);
            int32_t tok = t > 0.0f ? decode_sample(&c->rules, t, row, lp, &c->rng[act[a]])
                                   : decode_argmax(&c->rules, row, lp);
            if (n_seq == 1 && t == 0.0f && c->hooks && c->hooks->step) {
                tok = c->hooks->step(c->hooks->user, window, i, lp, V, tok);
                if (tok < 0 || tok >= V) return HARK_EINVAL;
            }
            int32_t tid = decode_best_timestamp(&c->rules, lp);
            decode_seq_push(s, tok, tid, expf(lp[tok]), lp[tok]);
            s->sum_lp += lp[tok];
            if (c->wcpp) {
                if (decode_wcpp_token(&s->w, sp, tok, i)) s->done = 1;
            } else if (tok == sp->eot) {
                s->done = 1;
            }
        }
        int m = 0;
        for (int a = 0; a < n_act; a++) {
            if (!c->seqs[act[a]].done) {
                last[m] = c->seqs[act[a]].tok[c->seqs[act[a]].n - 1];
                act[m++] = act[a];
            }
        }
        n_act = m;
        if (n_act == 0 || i == c->n_max - 1 || c->n_prompt + i >= c->n_text_ctx) break;
        rc = dec_step(c->st, n_act, act, last, c->n_prompt + i, c->logits);
        if (rc) return rc;
    }
    return 0;
}

/* Ranks the sampled sequences: openai by sum_logprob / length (tokens
 * before eot), whisper.cpp by its sequence score over result_len among the
 * sequences that did not fail. */
static int pick_sampled(const struct dctx *c, int n_seq)
{
    int best = 0;
    double best_score = -INFINITY;
    for (int s = 0; s < n_seq; s++) {
        const struct decode_seq *q = &c->seqs[s];
        double score;
        if (c->wcpp) {
            int len = q->w.result_len;
            if (q->w.failed || len == 0) continue;
            if (len > 32 && decode_entropy_last32(q->tok, len) < 2.4) continue;
            double sum = 0.0;
            for (int k = 0; k < len; k++) sum += q->lp[k];
            score = sum / len;
        } else {
            int len = q->n;
            if (len > 0 && q->tok[len - 1] == c->rules.sp.eot) len--;
            score = q->sum_lp / (len > 0 ? len : 1);
        }
        if (score > best_score) {
            best_score = score;
            best = s;
        }
    }
    return best;
}

static int run_beam(struct dctx *c, int K, const struct decode_wcpp *w0)
{
    const struct tok_special *sp = &c->rules.sp;
    const int V = c->V;
    int act[STATE_MAX_SEQ], src[STATE_MAX_SEQ];
    int32_t last[STATE_MAX_SEQ];
    decode_beam_init(c->beam, c->rules.profile, K, sp->eot, w0);
    for (int i = 0; i < c->n_max; i++) {
        int rc = poll_cancel(c, i);
        if (rc) return rc;
        int n_act = decode_beam_active(c->beam, act);
        if (i == 0) {
            decode_apply_rules(&c->rules, 0.0f, c->logits, NULL, 0, c->logprobs);
            for (int a = 1; a < n_act; a++)
                memcpy(c->logprobs + (size_t)a * V, c->logprobs, (size_t)V * sizeof(float));
        } else {
            for (int a = 0; a < n_act; a++) {
                const struct decode_seq *s = &c->beam->live[act[a]];
                decode_apply_rules(&c->rules, 0.0f, c->logits + (size_t)a * V, s->tok, s->n,
                                   c->logprobs + (size_t)a * V);
            }
        }
        int done = decode_beam_step(c->beam, sp, c->logprobs, V, i, c->rng, src);
        dec_kv_reorder(c->st, K, src, c->n_prompt + i);
        if (done || i == c->n_max - 1 || c->n_prompt + i >= c->n_text_ctx) break;
        n_act = decode_beam_active(c->beam, act);
        if (n_act == 0) break;
        for (int a = 0; a < n_act; a++) {
            const struct decode_seq *s = &c->beam->live[act[a]];
            last[a] = s->tok[s->n - 1];
        }
        rc = dec_step(c->st, n_act, act, last, c->n_prompt + i, c->logits);
        if (rc) return rc;
    }
    return 0;
}

/* The text of tokens [i0, i1) that are below eot, as raw bytes into
 * c->buf->text; whisper.cpp takes each token as a C string (a 0x00 byte ends
 * it). Returns the byte count or HARK_ENOMEM. */
static long token_text(struct dctx *c, const int32_t *tok, int i0, int i1)
{
    size_t n = 0;
    char buf[64];
    for (int i = i0; i < i1; i++) {
        if (tok[i] >= c->rules.sp.eot) continue;
        size_t len;
        const char *b = tok_bytes(c->m, tok[i], buf, &len);
        if (c->wcpp) len = strnlen(b, len);
        if (n + len + 1 > c->buf->text_cap) {
            size_t cap = 2 * (n + len + 1) + 256;
            char *t = realloc(c->buf->text, cap);
            if (!t) return HARK_ENOMEM;
            c->buf->text = t;
            c->buf->text_cap = cap;
        }
        memcpy(c->buf->text + n, b, len);
        n += len;
    }
    return (long)n;
}

/* The outcome of the window's chosen sequence wo->seq: whisper.cpp's failure
 * flags (while decoding, or by the entropy of its last tokens), its result
 * length and seek delta; the average log-probability and the compression
 * ratio of its text in both profiles. Trims wo->seq to the tokens kept.
 * Returns 0 or HARK_ENOMEM. */
static int judge_window(struct dctx *c, struct window_out *wo)
{
    const struct tok_special *sp = &c->rules.sp;
    struct decode_seq *s = &wo->seq;
    if (c->wcpp) {
        wo->failed_decoding = s->w.failed;
        wo->failed = s->w.failed;
        wo->result_len = s->w.result_len;
        wo->seek_delta = s->w.seek_delta;
        if (!wo->failed) {
            s->n = s->w.result_len;
            if (s->n > 32 && decode_entropy_last32(s->tok, s->n) < 2.4) wo->failed = 1;
        }
        double sum = 0.0;
        int len = wo->result_len > 0 ? wo->result_len : s->n;
        if (len > s->n) len = s->n;
        for (int k = 0; k < len; k++) sum += s->lp[k];
        wo->avg_logprob = len > 0 ? (float)(sum / len) : 0.0f;
    } else {
        double sum = 0.0;
        int n = 0;
        while (n < s->n && s->tok[n] != sp->eot) n++;
        for (int k = 0; k < s->n && k <= n; k++) sum += s->lp[k];
        s->n = n;
        wo->avg_logprob = (float)(sum / (n + 1));
    }
    {
        /* The compression ratio is reported in both profiles; only openai's
         * fallback uses it (whisper.cpp's uses the entropy above). */
        long nb = token_text(c, s->tok, 0, s->n);
        if (nb < 0) return (int)nb;
        char *txt = result_utf8_sanitize(c->buf->text, (size_t)nb);
        if (!txt) return HARK_ENOMEM;
        size_t a, b = result_trim(txt, strlen(txt), &a);
        wo->compression_ratio = decode_compression_ratio(txt + a, b - a);
        free(txt);
    }
    return 0;
}

/* Decodes one window at temperature t into *wo. */
static int decode_window(struct dctx *c, int window, int seek, int seek_end, float t,
                         struct window_out *wo)
{
    const struct hark_options *opt = c->opt;
    const struct tok_special *sp = &c->rules.sp;
    const int V = c->V;
    int use_context = c->wcpp ? t < 0.5f : 1;
    build_prompt(c, use_context, wo);
    if (c->hooks && c->hooks->window_begin)
        c->hooks->window_begin(c->hooks->user, window, seek, c->prompt, c->n_prompt);

    int beam = t == 0.0f && opt->beam_size > 1;
    int n_seq = beam ? opt->beam_size : (t > 0.0f ? opt->best_of : 1);
    if (n_seq < 1) n_seq = 1;
    if (n_seq > STATE_MAX_SEQ) n_seq = STATE_MAX_SEQ;
    int rc = dec_reserve(c->st, n_seq);
    if (rc) return rc;

    /* The prompt in one batch; rows from sot to the last token. */
    int sot_row = c->n_prompt - c->n_sot;
    rc = dec_forward(c->st, 0, c->prompt, c->n_prompt, 0, sot_row, c->logits);
    if (rc) return rc;
    int n_rows = c->n_prompt - sot_row;
    /* openai reads no_speech_prob at the sot row; whisper.cpp means the row
     * the first token is sampled from (README §12.5 "intended"). */
    int ns_row = c->wcpp ? n_rows - 1 : 0;
    wo->no_speech_prob = prob_of(c->logits + (size_t)ns_row * V, V, sp->nosp, c->logprobs);
    if (n_rows > 1)
        memmove(c->logits, c->logits + (size_t)(n_rows - 1) * V, (size_t)V * sizeof(float));
    if (n_seq > 1) {
        int src[STATE_MAX_SEQ] = {0};
        dec_kv_reorder(c->st, n_seq, src, c->n_prompt);
    }

    struct decode_wcpp w0;
    decode_wcpp_init(&w0, seek, seek_end, c->n_max, opt->no_timestamps);

    const struct decode_seq *best;
    if (beam) {
        rc = run_beam(c, n_seq, &w0);
        if (rc) return rc;
        best = decode_beam_best(c->beam, sp);
    } else {
        rc = run_sampling(c, n_seq, t, &w0, window);
        if (rc) return rc;
        best = &c->seqs[pick_sampled(c, n_seq)];
    }
    wo->seq = *best;
    wo->temperature = t;
    wo->failed = 0;
    wo->failed_decoding = 0;
    wo->compression_ratio = 0.0f;

    return judge_window(c, wo);
}

/* Decodes a window with temperature fallback. */
static int decode_with_fallback(struct dctx *c, int window, int seek, int seek_end,
                                struct window_out *wo)
{
    const struct hark_options *opt = c->opt;
    float t = opt->temperature;
    for (;;) {
        int rc = decode_window(c, window, seek, seek_end, t, wo);
        if (rc) return rc;
        float next = t + opt->temperature_inc;
        if (opt->no_fallback || opt->temperature_inc <= 0.0f || next > 1.0f + 1e-6f) return 0;
        int retry;
        if (c->wcpp) {
            retry = wo->failed || wo->avg_logprob < opt->logprob_threshold;
        } else {
            retry = wo->compression_ratio > opt->compression_ratio_threshold ||
                    wo->avg_logprob < opt->logprob_threshold;
            if (wo->no_speech_prob > opt->no_speech_threshold &&
                wo->avg_logprob < opt->logprob_threshold)
                retry = 0;
        }
        if (!retry) return 0;
        t = next;
    }
}

/* ------------------------------------------------------------ segments */

static int add_segment(struct dctx *c, struct hark_result *r, const struct window_out *wo,
                       int seek, int i0, int i1, double start_s, double end_s)
{
    const struct decode_seq *s = &wo->seq;
    const struct tok_special *sp = &c->rules.sp;
    struct hark_segment seg;
    memset(&seg, 0, sizeof(seg));
    long nb = token_text(c, s->tok, i0, i1);
    if (nb < 0) return (int)nb;
    char *text = result_utf8_sanitize(c->buf->text, (size_t)nb);
    if (!text) return HARK_ENOMEM;
    if (!c->wcpp) {
        size_t a, b = result_trim(text, strlen(text), &a);
        if (a == b || start_s == end_s) {
            /* transcribe.py clears instantaneous or empty segments; hark
             * leaves them out. */
            free(text);
            return 0;
        }
    }
    struct hark_token *toks = calloc((size_t)(i1 - i0 > 0 ? i1 - i0 : 1), sizeof(*toks));
    if (!toks) {
        free(text);
        return HARK_ENOMEM;
    }
    seg.text = text;
    seg.tokens = toks;
    seg.n_tokens = 0;
    char buf[64];
    /* Token times: a timestamp token is its own time; a text token runs
     * from the end of the token before it to the time of the most probable
     * timestamp at the step it was sampled (whisper.cpp's `tid`), kept
     * inside its segment and never decreasing; where the rules allowed no
     * timestamp at that step, it takes no time. Without timestamps a text
     * token's time is unknown (-1). */
    double prev_s = start_s;
    for (int i = i0; i < i1; i++) {
        size_t len;
        const char *b = tok_bytes(c->m, s->tok[i], buf, &len);
        char *tt = malloc(len + 1);
        if (!tt) {
            seg.n_tokens = i - i0;
            int rc = result_add_segment(r, &seg);
            (void)rc;
            return HARK_ENOMEM;
        }
        memcpy(tt, b, len);
        tt[len] = '\0';
        struct hark_token *k = &toks[i - i0];
        k->id = s->tok[i];
        k->text = tt;
        k->p = s->p[i];
        k->logprob = s->lp[i];
        k->t_dtw_s = -1.0;
        if (s->tok[i] >= sp->beg) {
            /* A timestamp past the end of the audio (the last window is
             * padded with silence) is placed at the end. */
            k->t0_s = k->t1_s = fmin((seek + 2 * (s->tok[i] - sp->beg)) / 100.0, r->duration_s);
            if (k->t1_s > prev_s) prev_s = k->t1_s < end_s ? k->t1_s : end_s;
        } else if (!c->opt->no_timestamps) {
            double t = s->tid[i] >= sp->beg ? (seek + 2 * (s->tid[i] - sp->beg)) / 100.0 : prev_s;
            k->t0_s = prev_s;
            k->t1_s = t < prev_s ? prev_s : t > end_s ? end_s : t;
            prev_s = k->t1_s;
        } else {
            k->t0_s = k->t1_s = -1.0;
        }
        seg.n_tokens = i - i0 + 1;
    }
    seg.seek = seek;
    seg.language = r->language;
    seg.start_s = start_s;
    seg.end_s = end_s;
    seg.temperature = wo->temperature;
    seg.avg_logprob = wo->avg_logprob;
    seg.compression_ratio = wo->compression_ratio;
    seg.no_speech_prob = wo->no_speech_prob;
    return result_add_segment(r, &seg);
}

/* Gives each segment [first, r->n_segments) the words whose tokens it holds,
 * by count, from the nw words w of the window's n text tokens wt, fixing the
 * segments' times with words_fix_segment (median: the words' median
 * duration). Returns 0 or HARK_ENOMEM (the words made so far stay in r). */
static int attach_words(struct dctx *c, struct hark_result *r, int first, const struct words_token *wt,
                        const struct words_word *w, int nw, double median)
{
    const struct tok_special *sp = &c->rules.sp;
    int wi = 0;
    for (int i = first; i < r->n_segments; i++) {
        struct hark_segment *seg = &r->segments[i];
        int seg_text = 0, saved = 0, k0 = wi;
        for (int j = 0; j < seg->n_tokens; j++) seg_text += seg->tokens[j].id < sp->eot;
        while (wi < nw && saved < seg_text) {
            saved += w[wi].t1 - w[wi].t0;
            wi++;
        }
        int n_words = 0;
        for (int k = k0; k < wi; k++) n_words += w[k].text[0] != 0;
        struct hark_word *hw = n_words ? calloc((size_t)n_words, sizeof *hw) : NULL;
        struct words_word *list = n_words ? malloc((size_t)n_words * sizeof *list) : NULL;
        if (n_words && (!hw || !list)) {
            free(hw);
            free(list);
            return HARK_ENOMEM;
        }
        int m = 0;
        for (int k = k0; k < wi; k++)
            if (w[k].text[0]) list[m++] = w[k];
        words_fix_segment(list, n_words, median, &c->last_speech_s, &seg->start_s, &seg->end_s, !c->wcpp);
        for (int k = 0; k < n_words; k++) {
            /* Token indices within the segment (a word may begin in the
             * segment before). */
            int t0 = list[k].t0, t1 = list[k].t1 - 1;
            hw[k].i0 = wt[t0].seg == i - first ? wt[t0].index : 0;
            hw[k].i1 = wt[t1].seg == i - first ? wt[t1].index + 1 : seg->n_tokens;
            hw[k].start_s = list[k].start;
            hw[k].end_s = list[k].end;
            hw[k].p = list[k].p;
            hw[k].text = result_utf8_sanitize(list[k].text, strlen(list[k].text));
            if (!hw[k].text) {
                seg->words = hw;
                seg->n_words = k;
                free(list);
                return HARK_ENOMEM;
            }
        }
        free(list);
        seg->words = hw;
        seg->n_words = n_words;
    }
    return 0;
}

/* Word timestamps for the segments [first, r->n_segments) that one window
 * (starting at seek, n_frames of audio) produced: DTW token times, and the
 * words of each segment. In the openai profile the words also correct the
 * segments' times, as openai-whisper's add_word_timestamps does. */
static int align_segments_run(struct dctx *c, struct hark_result *r, int first, int seek, int n_frames)
{
    const struct tok_special *sp = &c->rules.sp;
    int n = 0, rc = 0;
    for (int i = first; i < r->n_segments; i++)
        for (int j = 0; j < r->segments[i].n_tokens; j++) n += r->segments[i].tokens[j].id < sp->eot;
    if (n == 0) return 0;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    float *probs = malloc((size_t)n * sizeof *probs);
    struct words_token *wt = malloc((size_t)n * sizeof *wt);
    char (*bytes)[64] = malloc((size_t)n * sizeof *bytes);
    struct words_word *w = NULL;
    struct align_out al = {0};
    int nw = 0;
    if (!ids || !wt || !bytes || !probs) {
        rc = HARK_ENOMEM;
        goto done;
    }
    n = 0;
    for (int i = first; i < r->n_segments; i++)
        for (int j = 0; j < r->segments[i].n_tokens; j++) {
            int32_t id = r->segments[i].tokens[j].id;
            if (id >= sp->eot) continue;
            size_t len;
            const char *b = tok_bytes(c->m, id, bytes[n], &len);
            if (b != bytes[n]) memcpy(bytes[n], b, len < sizeof bytes[n] ? len : sizeof bytes[n]);
            ids[n] = id;
            probs[n] = r->segments[i].tokens[j].p;
            wt[n] = (struct words_token){bytes[n], len < sizeof bytes[n] ? len : sizeof bytes[n], i - first, j};
            n++;
        }
    /* The prompt of the alignment pass: openai's sot sequence (without
     * <|notimestamps|>), whisper.cpp's sot and language. */
    int32_t sot[4];
    int n_sot = 0;
    if (c->wcpp) {
        sot[n_sot++] = sp->sot;
        if (sp->multilingual) sot[n_sot++] = sp->lang0 + c->lang;
    } else {
        for (int i = 0; i < c->n_sot; i++)
            if (c->sot_seq[i] != sp->notimestamps) sot[n_sot++] = c->sot_seq[i];
    }
    int keep = c->hooks && c->hooks->aligned;
    rc = align_window(c->st, c->wcpp ? HARK_DECODER_WHISPER_CPP : HARK_DECODER_OPENAI, &c->heads, sot, n_sot, ids,
                      n, n_frames, keep, &al);
    if (rc) goto done;
    if (keep) c->hooks->aligned(c->hooks->user, c->window, seek, al.x, n + 1, al.cols, al.row_start, al.cost);
    for (int k = 0; k < n; k++) {
        struct hark_token *t = (struct hark_token *)&r->segments[first + wt[k].seg].tokens[wt[k].index];
        t->t_dtw_s = (seek + 2 * al.row_start[k + 1]) / 100.0;
    }
    double median;
    nw = words_align(wt, n, words_by_char(r->language), al.row_start, probs, seek / 100.0, &w, &median);
    if (nw < 0) {
        rc = nw;
        nw = 0;
        goto done;
    }
    rc = attach_words(c, r, first, wt, w, nw, median);
done:
    words_free(w, nw);
    align_out_free(&al);
    free(ids);
    free(probs);
    free(wt);
    free(bytes);
    return rc;
}

/* align_segments_run, its time added to the state's align_ms. */
static int align_segments(struct dctx *c, struct hark_result *r, int first, int seek, int n_frames)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = align_segments_run(c, r, first, seek, n_frames);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    c->st->align_ms += (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    return rc;
}

/* Hands segments first .. r->n_segments - 1, now final, to the segment
 * callback; a nonzero answer cancels. */
static int emit_segments(struct dctx *c, const struct hark_result *r, int first)
{
    if (!c->opt->on_segment) return 0;
    for (int i = first; i < r->n_segments; i++)
        if (c->opt->on_segment(c->opt->segment_user, &r->segments[i], i)) return HARK_ECANCELED;
    return 0;
}

/* Tells the window callback that every segment so far is final and where
 * the next window begins; a nonzero answer cancels. */
static int report_window(struct dctx *c, const struct hark_result *r, int next)
{
    if (!c->opt->on_window) return 0;
    return c->opt->on_window(c->opt->window_user, next / 100.0, r->n_segments) ? HARK_ECANCELED : 0;
}

static int report_progress(struct dctx *c, int seek, int total)
{
    if (!c->opt->progress) return 0;
    float f = total > 0 ? (float)seek / (float)total : 1.0f;
    if (f > 1.0f) f = 1.0f;
    if (f < 0.0f) f = 0.0f;
    c->progress_f = f;
    return c->opt->progress(c->opt->progress_user, f) ? HARK_ECANCELED : 0;
}

/* whisper.cpp 1.9.3's window loop (README §10.1). */
static int loop_wcpp(struct dctx *c, struct hark_result *r, int seek_end)
{
    const struct tok_special *sp = &c->rules.sp;
    struct window_out *wo = malloc(sizeof(*wo));
    struct decode_seg *segs = malloc(DECODE_MAX_SAMPLE * sizeof(*segs));
    unsigned char has_text[DECODE_MAX_SAMPLE];
    int rc = 0, seek = c->start, window = 0;
    if (!wo || !segs) {
        rc = HARK_ENOMEM;
        goto fail;
    }
    while (seek + 10 < seek_end) {
        if (seek > 0 && seek + 500 >= seek_end) c->n_context = 0;
        if (!c->opt->condition_on_previous) c->n_context = 0;
        rc = encode_window(c, seek, N_FRAMES);
        if (rc) goto fail;
        rc = decode_with_fallback(c, window, seek, seek_end, wo);
        if (rc) goto fail;
        struct decode_seq *s = &wo->seq;
        int is_no_speech = wo->no_speech_prob > c->opt->no_speech_threshold &&
                           wo->avg_logprob < c->opt->logprob_threshold;
        int before = r->n_segments;
        if (!is_no_speech) {
            char buf[64];
            for (int i = 0; i < s->n; i++) {
                size_t len;
                const char *b = tok_bytes(c->m, s->tok[i], buf, &len);
                has_text[i] = s->tok[i] < sp->eot && strnlen(b, len) > 0;
            }
            int n_seg = decode_segments_wcpp(sp, s->tok, s->tid, has_text, s->n, seek,
                                             wo->seek_delta, segs, DECODE_MAX_SAMPLE);
            for (int k = 0; k < n_seg; k++) {
                rc = add_segment(c, r, wo, seek, segs[k].i0, segs[k].i1, segs[k].t0 / 100.0,
                                 segs[k].t1 / 100.0);
                if (rc) goto fail;
            }
        }
        if (c->words && r->n_segments > before) {
            /* whisper.cpp aligns the window's audio up to seek_delta as
             * decoding left it. */
            int nf = wo->seek_delta < N_FRAMES ? wo->seek_delta : N_FRAMES;
            if (seek_end - seek < nf) nf = seek_end - seek;
            c->window = window;
            rc = align_segments(c, r, before, seek, nf);
            if (rc) goto fail;
        }
        /* The context: what this prompt carried, then the kept tokens. */
        if (!wo->used_context) c->n_context = 0;
        if (!is_no_speech) context_append(c, s->tok, wo->result_len < s->n ? wo->result_len : s->n);
        if (s->n >= 2 && s->tok[s->n - 1] > sp->beg && s->tok[s->n - 2] < sp->beg) {
            int d = seek_end - seek;
            wo->seek_delta = d < N_FRAMES ? d : N_FRAMES;
        }
        rc = emit_segments(c, r, before);
        if (rc) goto fail;
        int next = seek + wo->seek_delta;
        if (c->hooks && c->hooks->window_end)
            c->hooks->window_end(c->hooks->user, window, seek, s, wo->result_len, wo->seek_delta, next);
        seek = next;
        window++;
        rc = report_window(c, r, seek);
        if (rc) goto fail;
        rc = report_progress(c, seek, seek_end);
        if (rc) goto fail;
    }
fail:
    free(wo);
    free(segs);
    return rc;
}

/* openai-whisper's transcribe.py window loop. */
static int loop_openai(struct dctx *c, struct hark_result *r, int content, double duration_s)
{
    const struct tok_special *sp = &c->rules.sp;
    const struct hark_options *opt = c->opt;
    struct window_out *wo = malloc(sizeof(*wo));
    struct decode_seg *segs = malloc(DECODE_MAX_SAMPLE * sizeof(*segs));
    int rc = 0, seek = c->start, window = 0;
    if (!wo || !segs) {
        rc = HARK_ENOMEM;
        goto fail;
    }
    while (seek < content) {
        int segment_size = content - seek < N_FRAMES ? content - seek : N_FRAMES;
        rc = encode_window(c, seek, segment_size);
        if (rc) goto fail;
        rc = decode_with_fallback(c, window, seek, content, wo);
        if (rc) goto fail;
        struct decode_seq *s = &wo->seq;
        int skip = wo->no_speech_prob > opt->no_speech_threshold &&
                   !(wo->avg_logprob > opt->logprob_threshold);
        int next = seek + segment_size, first_new = r->n_segments;
        if (!skip) {
            int n_seg = decode_segments_openai(sp, s->tok, s->n, seek, segment_size, segs,
                                               DECODE_MAX_SAMPLE, &next);
            for (int k = 0; k < n_seg; k++) {
                /* hark keeps segment times inside the audio. */
                double t0 = segs[k].t0 / 100.0, t1 = segs[k].t1 / 100.0;
                if (t1 > duration_s) t1 = duration_s;
                if (t0 > t1) t0 = t1;
                int before = r->n_segments;
                rc = add_segment(c, r, wo, seek, segs[k].i0, segs[k].i1, t0, t1);
                if (rc) goto fail;
                if (r->n_segments > before) context_append(c, s->tok + segs[k].i0, segs[k].i1 - segs[k].i0);
            }
            if (!opt->condition_on_previous || wo->temperature > 0.5f) c->n_context = 0;
        }
        if (c->words && r->n_segments > first_new) {
            c->window = window;
            rc = align_segments(c, r, first_new, seek, segment_size);
            if (rc) goto fail;
            /* transcribe.py: unless the window ended on a single
             * timestamp, the next one starts where the last word ended. */
            int single = s->n >= 2 && s->tok[s->n - 2] < sp->beg && s->tok[s->n - 1] >= sp->beg;
            const struct hark_segment *last = &r->segments[r->n_segments - 1];
            double last_end = last->n_words ? last->words[last->n_words - 1].end_s : last->end_s;
            if (!single && last_end > seek / 100.0) next = (int)nearbyint(last_end * 100.0);
        }
        rc = emit_segments(c, r, first_new);
        if (rc) goto fail;
        if (c->hooks && c->hooks->window_end)
            c->hooks->window_end(c->hooks->user, window, seek, s, s->n, next - seek, next);
        seek = next;
        window++;
        rc = report_window(c, r, seek);
        if (rc) goto fail;
        rc = report_progress(c, seek, content);
        if (rc) goto fail;
    }
fail:
    free(wo);
    free(segs);
    return rc;
}

/* Language detection: one decoder step on [sot] over the first window,
 * softmax over the language tokens (openai-whisper's detect_language). */
static int detect_language(struct dctx *c, int *lang, float *prob)
{
    const struct tok_special *sp = &c->rules.sp;
    /* It listens where the transcription begins. */
    int content = c->wcpp ? c->n_frames : c->n_frames - N_FRAMES;
    int at = c->start < content ? c->start : 0;
    int rc = encode_window(c, at, c->wcpp ? N_FRAMES : content - at);
    if (rc) return rc;
    int32_t sot = sp->sot;
    rc = dec_forward(c->st, 0, &sot, 1, 0, 0, c->logits);
    if (rc) return rc;
    const float *row = c->logits + sp->lang0;
    float mx = -INFINITY;
    int best = 0;
    for (int i = 0; i < sp->n_lang; i++) {
        if (row[i] > mx) {
            mx = row[i];
            best = i;
        }
    }
    double sum = 0.0;
    for (int i = 0; i < sp->n_lang; i++) sum += exp((double)(row[i] - mx));
    *lang = best;
    *prob = (float)(1.0 / sum);
    return 0;
}

int decode_check(const struct hark_state *st, const float *pcm, size_t n_samples,
                 const struct hark_options *opt, char *err, size_t errlen)
{
    if (!st || (!pcm && n_samples > 0)) {
        err_set(err, errlen, "missing state, output or audio");
        return HARK_EINVAL;
    }
    if (opt->beam_size > STATE_MAX_SEQ || opt->best_of > STATE_MAX_SEQ) {
        err_set(err, errlen, "beam_size and best_of must be at most 8");
        return HARK_EINVAL;
    }
    if (!(opt->temperature >= 0.0f) || opt->temperature > 1.0f + 1e-6f) {
        err_set(err, errlen, "temperature must be in [0, 1]");
        return HARK_EINVAL;
    }
    if (!(opt->start_s >= 0.0) || opt->start_s > 1e7) {
        err_set(err, errlen, "start_s must be a time within the audio, in seconds");
        return HARK_EINVAL;
    }
    if ((opt->task != HARK_TASK_TRANSCRIBE && opt->task != HARK_TASK_TRANSLATE) ||
        (opt->decoder != HARK_DECODER_OPENAI && opt->decoder != HARK_DECODER_WHISPER_CPP)) {
        err_set(err, errlen, "unknown task or decoder profile");
        return HARK_EINVAL;
    }
    int multilingual = st->model->hp.n_vocab >= 51865;
    if (opt->task == HARK_TASK_TRANSLATE && !multilingual) {
        err_set(err, errlen, "translation needs a multilingual model; this one is English-only");
        return HARK_EINVAL;
    }
    if (opt->language && opt->language[0] && strcmp(opt->language, "auto") != 0) {
        int lang = hark_lang_index(opt->language);
        if (lang >= 0 && !multilingual && lang != 0) {
            err_set(err, errlen, "language '%s' on an English-only model", opt->language);
            return HARK_EINVAL;
        }
        if (lang < 0 || lang >= hark_lang_count(st->model)) {
            err_set(err, errlen, "unknown language '%s'", opt->language);
            return HARK_EINVAL;
        }
    }
    if (opt->word_timestamps && opt->alignment_heads && opt->alignment_heads[0]) {
        struct align_heads h;
        int rc = align_heads_parse(opt->alignment_heads, st->model, &h, err, errlen);
        if (rc) return rc;
    }
    for (size_t i = 0; i < n_samples; i++) {
        if (!isfinite(pcm[i])) {
            err_set(err, errlen, "audio sample %zu is not a finite number", i);
            return HARK_EAUDIO;
        }
    }
    return 0;
}

/* Fills c for one transcription with options opt: sizes, the profile, each
 * slot's generator and the logit rules with their suppressed ids. */
static int setup_rules(struct dctx *c, struct hark_state *st, const struct hark_options *opt,
                       const struct decode_hooks *hooks, char *err, size_t errlen)
{
    int32_t nonspeech[256];
    const struct hark_model *m = st->model;
    const struct hark_hparams *hp = &m->hp;
    c->st = st;
    c->m = m;
    c->opt = opt;
    c->hooks = hooks;
    c->V = hp->n_vocab;
    c->n_mels = hp->n_mels;
    c->n_text_ctx = hp->n_text_ctx;
    c->wcpp = opt->decoder == HARK_DECODER_WHISPER_CPP;
    c->n_max = c->wcpp ? hp->n_text_ctx / 2 - 4 : hp->n_text_ctx / 2;
    if (c->n_max > DECODE_MAX_SAMPLE) c->n_max = DECODE_MAX_SAMPLE;
    c->encoded_seek = -1;
    /* Slot j's generator is seeded with seed + j, which with the default
     * seed 0 gives the std::mt19937(j) of whisper.cpp's decoder j (the
     * choice that reproduces most of the reference's beam-5 runs). */
    for (int j = 0; j < STATE_MAX_SEQ; j++) decode_rng_seed(&c->rng[j], (uint32_t)(opt->seed + (uint64_t)j));
    tok_special_init(&c->rules.sp, hp->n_vocab);
    c->rules.n_vocab = hp->n_vocab;
    c->rules.profile = c->wcpp ? HARK_DECODER_WHISPER_CPP : HARK_DECODER_OPENAI;
    c->rules.timestamps = !opt->no_timestamps;
    c->rules.max_initial_ts = 50;

    int n_ns = 0;
    if (!c->wcpp) {
        n_ns = decode_nonspeech_ids(m, nonspeech, 256);
        if (n_ns < 0) {
            err_set(err, errlen, "tokenizer failed on the non-speech symbols");
            return n_ns;
        }
    }
    c->rules.n_suppress =
        decode_suppress_list(&c->rules.sp, c->rules.profile, nonspeech, n_ns, c->suppress, MAX_SUPPRESS);
    c->rules.suppress = c->suppress;
    return 0;
}

/* The language (given, or detected on the first window), the alignment
 * heads for word timestamps, and the sot sequence that starts every
 * prompt; records the language in r. */
static int setup_language(struct dctx *c, struct hark_result *r, char *err, size_t errlen)
{
    const struct hark_options *opt = c->opt;
    const struct tok_special *sp = &c->rules.sp;
    int lang = 0, rc;
    float lang_prob = 1.0f;
    if (sp->multilingual) {
        if (!opt->language || !strcmp(opt->language, "auto") || !opt->language[0]) {
            rc = detect_language(c, &lang, &lang_prob);
            if (rc) {
                err_set(err, errlen, "language detection failed");
                return rc;
            }
        } else {
            lang = hark_lang_index(opt->language); /* checked by decode_check */
        }
    }
    c->lang = lang;
    if (opt->word_timestamps) {
        c->words = 1;
        r->word_timestamps = 1;
        if (opt->alignment_heads && opt->alignment_heads[0]) {
            rc = align_heads_parse(opt->alignment_heads, c->m, &c->heads, err, errlen);
            if (rc) return rc;
        } else {
            align_heads_default(c->m, &c->heads);
        }
    }
    snprintf(r->language, sizeof(r->language), "%s", hark_lang_code(lang) ? hark_lang_code(lang) : "en");
    r->language_prob = lang_prob;

    c->sot_seq[c->n_sot++] = sp->sot;
    if (sp->multilingual) {
        c->sot_seq[c->n_sot++] = sp->lang0 + lang;
        c->sot_seq[c->n_sot++] = opt->task == HARK_TASK_TRANSLATE ? sp->translate : sp->transcribe;
    }
    if (opt->no_timestamps) c->sot_seq[c->n_sot++] = sp->notimestamps;
    return 0;
}

/* The initial prompt goes first into the context: openai encodes " " + the
 * stripped prompt, whisper.cpp the prompt as given. */
static int add_initial_prompt(struct dctx *c, const char *prompt, char *err, size_t errlen)
{
    size_t len = strlen(prompt);
    char *txt = malloc(len + 2);
    int32_t *ids = malloc((len + 2) * sizeof(int32_t));
    if (!txt || !ids) {
        free(txt);
        free(ids);
        return HARK_ENOMEM;
    }
    size_t n_txt;
    if (c->wcpp) {
        memcpy(txt, prompt, len);
        n_txt = len;
    } else {
        size_t a, b = result_trim(prompt, len, &a);
        txt[0] = ' ';
        memcpy(txt + 1, prompt + a, b - a);
        n_txt = b - a + 1;
    }
    int k = tok_encode(c->m, txt, n_txt, ids, (int)(len + 2));
    if (k > 0) context_append(c, ids, k < (int)(len + 2) ? k : (int)(len + 2));
    free(txt);
    free(ids);
    if (k < 0) err_set(err, errlen, "cannot tokenize the initial prompt");
    return k < 0 ? k : 0;
}

/* The window loop of the profile over the whole audio, then the final
 * progress report; a cancel or a failure is named in err. */
static int run_windows(struct dctx *c, struct hark_result *r, size_t n_samples, char *err, size_t errlen)
{
    const struct hark_options *opt = c->opt;
    int rc;
    if (c->wcpp) {
        int n_len_org = 1 + ((int)n_samples + 200 - 400) / 160;
        rc = loop_wcpp(c, r, n_len_org);
    } else {
        rc = loop_openai(c, r, c->n_frames - N_FRAMES, r->duration_s);
    }
    if (!rc && opt->progress && opt->progress(opt->progress_user, 1.0f)) rc = HARK_ECANCELED;
    if (rc == HARK_ECANCELED)
        err_set(err, errlen, "canceled by a callback");
    else if (rc)
        err_set(err, errlen, "decoding failed: %s", hark_strerror(rc));
    return rc;
}

int decode_run(struct hark_state *st, const float *pcm, size_t n_samples,
               const struct hark_options *opt_in, const struct decode_hooks *hooks,
               struct hark_result **out, char *err, size_t errlen)
{
    struct hark_options opt;
    struct dctx c;
    struct hark_result *r = NULL;
    int rc = 0;
    memset(&c, 0, sizeof(c));
    if (out) *out = NULL;
    if (!out) {
        err_set(err, errlen, "missing state, output or audio");
        return HARK_EINVAL;
    }
    if (opt_in) {
        opt = *opt_in;
    } else {
        hark_options_init(&opt);
    }
    if (opt.beam_size < 1) opt.beam_size = 1;
    if (opt.best_of < 1) opt.best_of = 1;
    rc = decode_check(st, pcm, n_samples, &opt, err, errlen);
    if (!rc) rc = setup_rules(&c, st, &opt, hooks, err, errlen);
    if (rc) return rc;

    r = calloc(1, sizeof(*r));
    if (!r || decode_buf_reserve(st, &c, c.wcpp ? 0 : (size_t)c.n_mels * N_FRAMES)) {
        rc = HARK_ENOMEM;
        err_set(err, errlen, "out of memory for decoding buffers");
        goto fail;
    }
    r->task = opt.task;
    r->duration_s = (double)n_samples / MEL_SAMPLE_RATE;

    rc = mel_compute(pcm, n_samples, st->model->mel_filters, c.n_mels, st->n_threads, &c.mel, &c.n_frames);
    if (rc) {
        err_set(err, errlen, "log-mel computation failed");
        goto fail;
    }
    /* Whole frames: a window that begins at start_s begins where the
     * uninterrupted run's window at that time began. */
    c.start = (int)fmin(opt.start_s * 100.0 + 0.5, (double)c.n_frames);
    rc = setup_language(&c, r, err, errlen);
    if (!rc && opt.initial_prompt && opt.initial_prompt[0])
        rc = add_initial_prompt(&c, opt.initial_prompt, err, errlen);
    if (!rc) rc = run_windows(&c, r, n_samples, err, errlen);
    if (rc) goto fail;
    *out = r;
    r = NULL;
fail:
    hark_result_free(r);
    free(c.mel);
    return rc;
}

int hark_transcribe(hark_state *state, const float *pcm, size_t n_samples,
                    const struct hark_options *opt, hark_result **out, char *err, size_t errlen)
{
    if (opt && opt->vad) return speech_transcribe(state, pcm, n_samples, opt, NULL, out, err, errlen);
    return decode_run(state, pcm, n_samples, opt, NULL, out, err, errlen);
}
