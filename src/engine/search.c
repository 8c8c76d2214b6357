/*
 * search.c: the model-free half of decoding, as pure functions over
 * hand-made inputs: the logit rules of both profiles, greedy choice and
 * sampling, beam bookkeeping, whisper.cpp's window bookkeeping, the
 * repetition checks (entropy, compression ratio) and segment building.
 *
 * decode.c feeds these with the decoder's logits; the unit tests feed them
 * with scripted rows and token sequences. Nothing here allocates.
 */
#include <math.h>
#include <string.h>

#include "decode.h"

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
    decode_log_softmax(logits, V, logprobs);
    float ts_lp = range_logsumexp(logprobs, beg, V);
    float text_max = range_max(logprobs, 0, beg);
    if (ts_lp > text_max) {
        forced = 1;
        fill_neg_inf(logits, 0, beg);
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
    decode_log_softmax(logits, V, logprobs);
    float ts_lp = range_logsumexp(logprobs, beg, V);
    float text_max = range_max(logprobs, 0, beg);
    if (ts_lp > text_max) {
        forced = 1;
        fill_neg_inf(logits, 0, beg);
    }
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

int32_t decode_argmax(const struct decode_rules *r, const float *logits, const float *logprobs)
{
    int32_t best = 0;
    if (r->profile == HARK_DECODER_WHISPER_CPP) {
        float bp = 0.0f;
        for (int i = 0; i < r->n_vocab; i++) {
            float p = expf(logprobs[i]);
            if (bp < p) {
                bp = p;
                best = i;
            }
        }
        return best;
    }
    float bl = NEG_INF;
    for (int i = 0; i < r->n_vocab; i++) {
        if (logits[i] > bl) {
            bl = logits[i];
            best = i;
        }
    }
    return best;
}

int32_t decode_best_timestamp(const struct decode_rules *r, const float *logprobs)
{
    int32_t tid = 0;
    float mx = 0.0f;
    for (int i = r->sp.beg; i < r->n_vocab; i++) {
        float p = expf(logprobs[i]);
        if (mx < p) {
            mx = p;
            tid = i;
        }
    }
    return tid;
}

void decode_rng_seed(struct decode_rng *g, uint32_t seed)
{
    g->mt[0] = seed;
    for (int i = 1; i < 624; i++) g->mt[i] = 1812433253u * (g->mt[i - 1] ^ (g->mt[i - 1] >> 30)) + (uint32_t)i;
    g->idx = 624;
}

uint32_t decode_rng_next(struct decode_rng *g)
{
    if (g->idx >= 624) {
        for (int i = 0; i < 624; i++) {
            uint32_t y = (g->mt[i] & 0x80000000u) | (g->mt[(i + 1) % 624] & 0x7fffffffu);
            g->mt[i] = g->mt[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        g->idx = 0;
    }
    uint32_t y = g->mt[g->idx++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

double decode_rng_uniform(struct decode_rng *g)
{
    double lo = (double)decode_rng_next(g);
    double hi = (double)decode_rng_next(g);
    double u = (lo + hi * 4294967296.0) / 18446744073709551616.0;
    return u >= 1.0 ? nextafter(1.0, 0.0) : u;
}

/* whisper.cpp's draw from one row of log-probabilities: libstdc++'s
 * std::discrete_distribution over the float probabilities expf(lp),
 * normalised cumulative sums in double, the first index reaching the draw. */
static int32_t decode_sample_row(const float *lp, int n, struct decode_rng *g)
{
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)expf(lp[i]);
    double u = decode_rng_uniform(g), c = 0.0;
    if (!(sum > 0.0)) return 0;
    for (int i = 0; i < n - 1; i++) {
        c += (double)expf(lp[i]) / sum;
        if (c >= u) return i;
    }
    return n - 1;
}

int32_t decode_sample(const struct decode_rules *r, float temperature, const float *logits,
                      const float *logprobs, struct decode_rng *g)
{
    const int V = r->n_vocab;
    /* whisper.cpp: probabilities expf(logprob) in float, 0 where suppressed. */
    if (r->profile == HARK_DECODER_WHISPER_CPP) return decode_sample_row(logprobs, V, g);
    float mx = range_max(logits, 0, V);
    double total = 0.0;
    for (int i = 0; i < V; i++)
        if (logits[i] > NEG_INF) total += exp((double)(logits[i] - mx) / temperature);
    double u = decode_rng_uniform(g) * total;
    int32_t last = 0;
    for (int i = 0; i < V; i++) {
        if (!(logits[i] > NEG_INF)) continue;
        double w = exp((double)(logits[i] - mx) / temperature);
        last = i;
        if (u < w) return i;
        u -= w;
    }
    return last;
}

/* ------------------------------------------------- whisper.cpp windows */

void decode_wcpp_init(struct decode_wcpp *w, int seek, int seek_end, int n_max, int no_timestamps)
{
    memset(w, 0, sizeof(*w));
    w->seek = seek;
    w->seek_end = seek_end;
    w->seek_delta = 3000;
    w->n_max = n_max;
    w->no_timestamps = no_timestamps;
}

int decode_wcpp_token(struct decode_wcpp *w, const struct tok_special *sp, int32_t t, int i)
{
    if (t > sp->beg) {
        int nd = 2 * (t - sp->beg);
        if (w->has_ts && w->seek_delta > nd && w->result_len < i) {
            w->failed = 1;
            return 1;
        }
        w->seek_delta = nd;
        w->result_len = i + 1;
        w->has_ts = 1;
    }
    if (t == sp->eot || (w->has_ts && w->seek + w->seek_delta + 10 >= w->seek_end)) {
        if (w->result_len == 0 && !w->no_timestamps) {
            if (w->seek + w->seek_delta + 10 >= w->seek_end) {
                w->result_len = i + 1;
            } else {
                w->failed = 1;
                return 1;
            }
        }
        if (w->no_timestamps) {
            w->result_len = i + 1;
            w->seek_delta = 3000;
        }
        w->completed = 1;
        return 1;
    }
    /* whisper.cpp's repetition-loop rule at the last step. */
    if (i == w->n_max - 1 && (w->result_len == 0 || w->seek_delta < 1500)) {
        w->failed = 1;
        return 1;
    }
    return 0;
}

void decode_seq_push(struct decode_seq *s, int32_t t, int32_t tid, float p, float lp)
{
    if (s->n >= DECODE_MAX_SAMPLE) return;
    s->tok[s->n] = t;
    s->tid[s->n] = tid;
    s->p[s->n] = p;
    s->lp[s->n] = lp;
    s->n++;
}

/* ------------------------------------------------------------ beam search */

struct cand {
    double score;
    int src;
    int32_t tok;
    int32_t tid;
    float lp;
};

void decode_beam_init(struct decode_beam *b, int profile, int beam_size, int32_t eot,
                      const struct decode_wcpp *w)
{
    if (beam_size > DECODE_MAX_SEQ) beam_size = DECODE_MAX_SEQ;
    b->profile = profile;
    b->beam_size = beam_size;
    b->max_candidates = beam_size; /* patience 1 */
    b->eot = eot;
    b->n_fin = 0;
    for (int i = 0; i < beam_size; i++) {
        b->live[i].n = 0;
        b->live[i].sum_lp = 0.0;
        b->live[i].done = 0;
        if (w) b->live[i].w = *w;
    }
}

int decode_beam_active(const struct decode_beam *b, int *slots)
{
    int n = 0;
    for (int i = 0; i < b->beam_size; i++)
        if (!b->live[i].done) slots[n++] = i;
    return n;
}

/* The k best ids of a row (k <= DECODE_MAX_SEQ + 1), best first; ties go to
 * the lower id. */
static int row_topk(const float *row, int n, int k, int32_t *ids)
{
    int m = 0;
    for (int i = 0; i < n; i++) {
        float v = row[i];
        if (m == k && !(v > row[ids[m - 1]])) continue;
        int j = m < k ? m++ : m - 1;
        while (j > 0 && v > row[ids[j - 1]]) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = i;
    }
    return m;
}

/* Stable sort of candidates by descending score. */
static void sort_cands(struct cand *c, int n)
{
    for (int i = 1; i < n; i++) {
        struct cand v = c[i];
        int j = i - 1;
        while (j >= 0 && c[j].score < v.score) {
            c[j + 1] = c[j];
            j--;
        }
        c[j + 1] = v;
    }
}

static int same_prefix(const struct decode_seq *a, const struct decode_seq *b)
{
    return a->n == b->n && memcmp(a->tok, b->tok, (size_t)a->n * sizeof(a->tok[0])) == 0;
}

static void seq_extend(struct decode_seq *dst, const struct decode_seq *src, const struct cand *c)
{
    *dst = *src;
    decode_seq_push(dst, c->tok, c->tid, expf(c->lp), c->lp);
    dst->sum_lp = c->score;
}

int decode_beam_step(struct decode_beam *b, const struct tok_special *sp, const float *logprobs,
                     int n_vocab, int step, struct decode_rng *rngs, int *src)
{
    struct cand c[DECODE_MAX_SEQ * (DECODE_MAX_SEQ + 1)];
    int slots[DECODE_MAX_SEQ];
    int32_t ids[DECODE_MAX_SEQ + 1];
    const int K = b->beam_size;
    const int wcpp = b->profile == HARK_DECODER_WHISPER_CPP;
    int n_act = decode_beam_active(b, slots), nc = 0;

    for (int i = 0; i < K; i++) src[i] = i;
    for (int a = 0; a < n_act; a++) {
        const float *row = logprobs + (size_t)a * n_vocab;
        const struct decode_seq *s = &b->live[slots[a]];
        int32_t tid = sp->beg;
        float mx = 0.0f;
        int k;
        if (wcpp) {
            for (int i = sp->beg; i < n_vocab; i++) {
                float p = expf(row[i]);
                if (mx < p) {
                    mx = p;
                    tid = i;
                }
            }
            /* whisper.cpp draws its beam_size candidates (with
             * replacement) from the probabilities. */
            for (k = 0; k < K; k++) ids[k] = decode_sample_row(row, n_vocab, &rngs[slots[a]]);
        } else {
            k = row_topk(row, n_vocab, K + 1, ids);
        }
        for (int j = 0; j < k; j++) {
            struct cand cj = {s->sum_lp + row[ids[j]], slots[a], ids[j],
                              ids[j] >= sp->beg ? ids[j] : tid, row[ids[j]]};
            int dup = -1;
            /* openai keys candidates by their whole sequence (a dict): an
             * identical sequence from another beam replaces the score and
             * source but keeps the first one's place. */
            for (int q = 0; !wcpp && q < nc; q++) {
                if (c[q].tok == cj.tok && same_prefix(&b->live[c[q].src], s)) {
                    dup = q;
                    break;
                }
            }
            if (dup >= 0)
                c[dup] = cj;
            else
                c[nc++] = cj;
        }
    }
    sort_cands(c, nc);

    if (!wcpp) {
        int saved = 0;
        for (int q = 0; q < nc && saved < K; q++) {
            if (c[q].tok == b->eot) {
                if (b->n_fin < b->max_candidates && b->n_fin < DECODE_MAX_FINISHED) {
                    seq_extend(&b->fin[b->n_fin], &b->live[c[q].src], &c[q]);
                    b->fin[b->n_fin].done = 1;
                    b->n_fin++;
                }
                continue;
            }
            seq_extend(&b->next[saved], &b->live[c[q].src], &c[q]);
            src[saved] = c[q].src;
            saved++;
        }
        for (int i = 0; i < saved; i++) b->live[i] = b->next[i];
        for (int i = saved; i < K; i++) b->live[i].done = 1;
        return b->n_fin >= b->max_candidates || saved == 0;
    }

    /* whisper.cpp: the active decoders take the best candidates in order,
     * skipping a candidate equal to the one just taken (except at the first
     * step, where every decoder still holds the same empty sequence). */
    int cur = 0, assigned = 0;
    for (int a = 0; a < n_act && nc > 0; a++) {
        if (cur >= nc) cur = 0;
        const struct cand *cc = &c[cur++];
        while (cur < nc && step > 0 && c[cur].tok == cc->tok &&
               same_prefix(&b->live[c[cur].src], &b->live[cc->src]))
            cur++;
        seq_extend(&b->next[slots[a]], &b->live[cc->src], cc);
        src[slots[a]] = cc->src;
        assigned = a + 1;
    }
    for (int a = assigned; a < n_act; a++) {
        /* Fewer candidates than decoders (a vocabulary mostly at -inf):
         * the decoder stops as failed. */
        b->next[slots[a]] = b->live[slots[a]];
        b->next[slots[a]].w.failed = 1;
    }
    int all_done = 1;
    for (int a = 0; a < n_act; a++) {
        struct decode_seq *s = &b->next[slots[a]];
        if (a >= assigned || decode_wcpp_token(&s->w, sp, s->tok[s->n - 1], step)) s->done = 1;
        b->live[slots[a]] = *s;
    }
    for (int i = 0; i < K; i++)
        if (!b->live[i].done) all_done = 0;
    return all_done;
}

const struct decode_seq *decode_beam_best(struct decode_beam *b, const struct tok_special *sp)
{
    if (b->profile != HARK_DECODER_WHISPER_CPP) {
        /* openai's finalize: too few finished hypotheses are padded with
         * the live ones, best first, each closed with eot. */
        int order[DECODE_MAX_SEQ];
        int n_live = 0;
        for (int i = 0; i < b->beam_size; i++)
            if (!b->live[i].done) order[n_live++] = i;
        for (int i = 1; i < n_live; i++) {
            int v = order[i], j = i - 1;
            while (j >= 0 && b->live[order[j]].sum_lp < b->live[v].sum_lp) {
                order[j + 1] = order[j];
                j--;
            }
            order[j + 1] = v;
        }
        for (int i = 0; i < n_live && b->n_fin < b->beam_size && b->n_fin < DECODE_MAX_FINISHED; i++) {
            b->fin[b->n_fin] = b->live[order[i]];
            b->fin[b->n_fin].done = 0;
            b->n_fin++;
        }
        int best = 0;
        double best_score = -INFINITY;
        for (int i = 0; i < b->n_fin; i++) {
            int len = b->fin[i].n - (b->fin[i].done ? 1 : 0);
            double score = b->fin[i].sum_lp / (len > 0 ? len : 1);
            if (score > best_score) {
                best_score = score;
                best = i;
            }
        }
        return &b->fin[best];
    }
    int best = 0;
    double best_score = -INFINITY;
    for (int i = 0; i < b->beam_size; i++) {
        const struct decode_seq *s = &b->live[i];
        if (s->w.failed || s->w.result_len == 0) continue;
        int len = s->w.result_len;
        if (len > 32 && decode_entropy_last32(s->tok, len) < 2.4) continue;
        double sum = 0.0;
        for (int k = 0; k < len; k++) sum += s->lp[k];
        double score = sum / len;
        if (best_score < score) {
            best_score = score;
            best = i;
        }
    }
    return &b->live[best];
}

/* ------------------------------------------------------ window outcome */

double decode_entropy_last32(const int32_t *tok, int n)
{
    int32_t ids[32];
    int cnt[32], m = 0;
    int a = n > 32 ? n - 32 : 0;
    for (int i = a; i < n; i++) {
        int k = 0;
        while (k < m && ids[k] != tok[i]) k++;
        if (k == m) {
            ids[m] = tok[i];
            cnt[m++] = 0;
        }
        cnt[k]++;
    }
    double h = 0.0, total = n - a;
    for (int k = 0; k < m; k++) {
        double p = cnt[k] / total;
        h -= p * log(p);
    }
    return h;
}

/* DEFLATE length and distance code tables (RFC 1951 §3.2.5). */
static const int len_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const int len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                  2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const int dist_base[30] = {1,    2,    3,    4,    5,    7,     9,     13,    17,  25,
                                  33,   49,   65,   97,   129,  193,   257,   385,   513, 769,
                                  1025, 1537, 2049, 3073, 4097, 6145,  8193,  12289, 16385, 24577};
static const int dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                   6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static int len_code(int len)
{
    int c = 28;
    while (len_base[c] > len) c--;
    return c;
}

static int dist_code(int d)
{
    int c = 29;
    while (dist_base[c] > d) c--;
    return c;
}

/* Huffman code lengths for freq[0..n) (n <= 286), limited to max_bits by
 * the classic rescaling retry; returns the total bits sum(freq * length). */
static long huffman_bits(const long *freq, int n, int max_bits, int *lens)
{
    long f[286];
    int parent[2 * 286], node_of[286];
    long w[2 * 286];
    for (int i = 0; i < n; i++) f[i] = freq[i];
    for (;;) {
        int m = 0;
        for (int i = 0; i < n; i++) {
            lens[i] = 0;
            if (f[i] > 0) {
                w[m] = f[i];
                node_of[i] = m++;
            } else {
                node_of[i] = -1;
            }
        }
        if (m == 0) return 0;
        if (m == 1) {
            for (int i = 0; i < n; i++)
                if (node_of[i] >= 0) lens[i] = 1;
            break;
        }
        /* O(m^2) pairing of the two lightest live nodes: m is at most 286. */
        unsigned char alive[2 * 286];
        memset(alive, 0, sizeof(alive));
        for (int i = 0; i < m; i++) alive[i] = 1;
        int total = m;
        for (int round = 0; round < m - 1; round++) {
            int a = -1, b = -1;
            for (int i = 0; i < total; i++) {
                if (!alive[i]) continue;
                if (a < 0 || w[i] < w[a]) {
                    b = a;
                    a = i;
                } else if (b < 0 || w[i] < w[b]) {
                    b = i;
                }
            }
            w[total] = w[a] + w[b];
            alive[a] = alive[b] = 0;
            alive[total] = 1;
            parent[a] = parent[b] = total;
            total++;
        }
        int too_long = 0;
        for (int i = 0; i < n; i++) {
            if (node_of[i] < 0) continue;
            int d = 0;
            for (int x = node_of[i]; x != total - 1; x = parent[x]) d++;
            lens[i] = d;
            if (d > max_bits) too_long = 1;
        }
        if (!too_long) break;
        for (int i = 0; i < n; i++)
            if (f[i] > 0) f[i] = (f[i] + 1) / 2;
    }
    long bits = 0;
    for (int i = 0; i < n; i++) bits += freq[i] * lens[i];
    return bits;
}

/* Bits to transmit the code lengths of a dynamic block (HLIT, HDIST,
 * HCLEN and the run-length coded lengths). */
static long dyn_header_bits(const int *ll_lens, int n_ll, const int *d_lens, int n_d)
{
    int all[286 + 30], n = 0;
    for (int i = 0; i < n_ll; i++) all[n++] = ll_lens[i];
    for (int i = 0; i < n_d; i++) all[n++] = d_lens[i];
    long cl_freq[19] = {0};
    long extra = 0;
    for (int i = 0; i < n;) {
        int v = all[i], run = 1;
        while (i + run < n && all[i + run] == v) run++;
        int left = run;
        if (v == 0) {
            while (left >= 11) {
                int r = left > 138 ? 138 : left;
                cl_freq[18]++;
                extra += 7;
                left -= r;
            }
            if (left >= 3) {
                cl_freq[17]++;
                extra += 3;
                left = 0;
            }
        } else {
            cl_freq[v]++;
            left--;
            while (left >= 3) {
                int r = left > 6 ? 6 : left;
                cl_freq[16]++;
                extra += 2;
                left -= r;
            }
        }
        cl_freq[v] += left;
        i += run;
    }
    int cl_lens[19];
    long bits = huffman_bits(cl_freq, 19, 7, cl_lens);
    static const int order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    int hclen = 19;
    while (hclen > 4 && cl_lens[order[hclen - 1]] == 0) hclen--;
    return 5 + 5 + 4 + 3L * hclen + bits + extra;
}

size_t decode_deflate_size(const unsigned char *data, size_t n)
{
    long ll_freq[286] = {0}, d_freq[30] = {0};
    long extra_bits = 0;
    size_t i = 0;
    /* LZ77 with a full search of the 32 KiB window (texts here are short)
     * and one step of lazy matching, as zlib's levels 4-9 do. */
    while (i < n) {
        int best_len = 0, best_dist = 0;
        size_t lo = i > 32768 ? i - 32768 : 0;
        for (size_t j = i; j-- > lo;) {
            int l = 0;
            while (l < 258 && i + l < n && data[j + l] == data[i + l]) l++;
            if (l > best_len) {
                best_len = l;
                best_dist = (int)(i - j);
                if (l == 258) break;
            }
        }
        if (best_len >= 3 && best_len < 32 && i + 1 < n) {
            int next_len = 0;
            size_t lo2 = i + 1 > 32768 ? i + 1 - 32768 : 0;
            for (size_t j = i + 1; j-- > lo2;) {
                int l = 0;
                while (l < 258 && i + 1 + l < n && data[j + l] == data[i + 1 + l]) l++;
                if (l > next_len) next_len = l;
            }
            if (next_len > best_len) best_len = 0;
        }
        if (best_len >= 3 && !(best_len == 3 && best_dist > 4096)) {
            int lc = len_code(best_len), dc = dist_code(best_dist);
            ll_freq[257 + lc]++;
            d_freq[dc]++;
            extra_bits += len_extra[lc] + dist_extra[dc];
            i += (size_t)best_len;
        } else {
            ll_freq[data[i]]++;
            i++;
        }
    }
    ll_freq[256]++;

    long fixed = extra_bits;
    for (int s = 0; s < 286; s++) {
        int fl = s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8;
        fixed += ll_freq[s] * fl;
    }
    for (int s = 0; s < 30; s++) fixed += d_freq[s] * 5;

    int ll_lens[286], d_lens[30];
    long dyn = huffman_bits(ll_freq, 286, 15, ll_lens) + huffman_bits(d_freq, 30, 15, d_lens) +
               extra_bits;
    int n_ll = 286, n_d = 30;
    while (n_ll > 257 && ll_lens[n_ll - 1] == 0) n_ll--;
    while (n_d > 1 && d_lens[n_d - 1] == 0) n_d--;
    dyn += dyn_header_bits(ll_lens, n_ll, d_lens, n_d);

    long bits = 3 + (fixed < dyn ? fixed : dyn);
    size_t bytes = (size_t)((bits + 7) / 8);
    size_t stored = n + 5 * (n / 65535 + 1);
    if (stored < bytes) bytes = stored;
    return bytes + 6;
}

float decode_compression_ratio(const char *text, size_t n)
{
    if (n == 0) return 0.0f;
    return (float)((double)n / (double)decode_deflate_size((const unsigned char *)text, n));
}

/* ------------------------------------------------------------- segments */

int decode_segments_openai(const struct tok_special *sp, const int32_t *tok, int n, int seek,
                           int segment_size, struct decode_seg *segs, int max, int *next_seek)
{
    const int beg = sp->beg;
    int count = 0, last = 0, any_pair = 0;
    int single_ending = n >= 2 && tok[n - 1] >= beg && tok[n - 2] < beg;
    for (int k = 0; k + 1 < n; k++) {
        if (tok[k] >= beg && tok[k + 1] >= beg) {
            int cut = k + 1;
            any_pair = 1;
            if (count < max) {
                segs[count++] = (struct decode_seg){last, cut, seek + 2 * (tok[last] - beg),
                                                    seek + 2 * (tok[cut - 1] - beg)};
            }
            last = cut;
        }
    }
    if (any_pair) {
        if (single_ending) {
            if (count < max)
                segs[count++] = (struct decode_seg){last, n, seek + 2 * (tok[last] - beg),
                                                    seek + 2 * (tok[n - 1] - beg)};
            *next_seek = seek + segment_size;
        } else {
            *next_seek = seek + 2 * (tok[last - 1] - beg);
        }
    } else {
        int dur = segment_size;
        for (int k = n - 1; k >= 0; k--) {
            if (tok[k] >= beg) {
                if (tok[k] != beg) dur = 2 * (tok[k] - beg);
                break;
            }
        }
        if (count < max) segs[count++] = (struct decode_seg){0, n, seek, seek + dur};
        *next_seek = seek + segment_size;
    }
    /* openai would loop forever on a window that does not advance; hark
     * moves on by the whole window instead. */
    if (*next_seek <= seek) *next_seek = seek + segment_size;
    return count;
}

int decode_segments_wcpp(const struct tok_special *sp, const int32_t *tok, const int32_t *tid,
                         const unsigned char *has_text, int n, int seek, int seek_delta,
                         struct decode_seg *segs, int max)
{
    const int beg = sp->beg;
    int count = 0;
    if (n == 0) return 0;
    /* whisper.cpp starts at the first token's most likely timestamp; when no
     * timestamp was possible at all (tid 0, e.g. without timestamps) hark
     * starts at the window instead of a negative time. */
    int t0 = tid[0] >= beg ? seek + 2 * (tid[0] - beg) : seek, i0 = 0, text = 0;
    for (int i = 0; i < n; i++) {
        if (has_text[i]) text = 1;
        if (tok[i] > beg) {
            if (text && count < max)
                segs[count++] = (struct decode_seg){i0, i + 1, t0, seek + 2 * (tid[i] - beg)};
            text = 0;
            /* A run of timestamps: the next segment starts at the last. */
            while (i < n && tok[i] > beg) i++;
            i--;
            t0 = seek + 2 * (tid[i] - beg);
            i0 = i + 1;
        }
    }
    if (text && count < max) segs[count++] = (struct decode_seg){i0, n, t0, seek + seek_delta};
    return count;
}
