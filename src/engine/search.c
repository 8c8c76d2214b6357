/*
 * search.c: choosing tokens and keeping sequences within one window, as pure
 * functions over hand-made inputs: greedy choice, sampling with a
 * Mersenne Twister (so that whisper.cpp's draws are reproduced), beam
 * bookkeeping of both profiles, whisper.cpp's window bookkeeping, and the
 * segments a window's tokens are cut into.
 *
 * decode.c feeds these with the log-probabilities logits.c produces; the
 * unit tests feed them with scripted rows and token sequences. Nothing here
 * allocates.
 */
#include <math.h>
#include <string.h>

#include "compress.h"
#include "hark.h"
#include "search.h"

#define NEG_INF (-INFINITY)

static float row_max(const float *x, int n)
{
    float mx = NEG_INF;
    for (int i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    return mx;
}

/* ------------------------------------------------ greedy choice, sampling */

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
    float mx = row_max(logits, V);
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
    if (beam_size > STATE_MAX_SEQ) beam_size = STATE_MAX_SEQ;
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

/* The k best ids of a row (k <= STATE_MAX_SEQ + 1), best first; ties go to
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
    struct cand c[STATE_MAX_SEQ * (STATE_MAX_SEQ + 1)];
    int slots[STATE_MAX_SEQ];
    int32_t ids[STATE_MAX_SEQ + 1];
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
        int order[STATE_MAX_SEQ];
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
