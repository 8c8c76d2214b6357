/*
 * decoder.c: Whisper's text decoder (openai-whisper model.py TextDecoder)
 * over key/value caches.
 *
 *   x = token_embedding[token] + positional_embedding[position]
 *   per block: x += self_attn(LN(x)) (causal, cached keys/values)
 *              x += cross_attn(LN(x), encoder output)
 *              x += mlp(LN(x))
 *   logits = LN(x) · token_embeddingᵀ
 *
 * Each sequence slot (a beam or a sampled candidate) reads its own
 * self-attention cache through slot_buf[], an indirection to physical
 * buffers, so that beam reordering mostly swaps indices and copies a cache
 * only for a beam that is duplicated. The cross-attention keys and values
 * are shared by all slots and filled by enc_forward() through
 * dec_set_cross(); they are stored as f16, head by head, which halves the
 * memory every decoded token streams through and lets each head's keys be
 * read as one contiguous run (the arithmetic stays f32). All activation
 * buffers are carved at dec_ctx_new for the longest batch (n_text_ctx rows),
 * so dec_forward and dec_step never allocate.
 */
#include "decoder.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model.h"
#include "state.h"
#include "testing.h"

struct dec_ctx {
    int n_ctx;        /* n_text_ctx */
    int n_state;      /* S = n_text_state */
    int n_layer;
    int n_audio_ctx;
    int max_rows;     /* rows of the activation buffers */
    int n_head;
    /* Cross-attention keys then values of each layer, f16, head-major:
     * (n_layer, 2, n_head, n_audio_ctx, S / n_head). */
    uint16_t *cross;
    float *cross32;   /* the same widened to f32 for dec_cross_k/v, or NULL */
    /* Self-attention caches: buf[b] (n_layer, 2, n_ctx, S); slot i uses
     * buf[slot_buf[i]]. Slots 0..n_reserved-1 have one each. */
    float *buf[STATE_MAX_SEQ];
    int slot_buf[STATE_MAX_SEQ];
    int n_reserved;
    float *x, *xn, *q, *att, *kt, *vt; /* (max_rows, S) */
    float *h;                           /* (max_rows, 4S) */
};

static size_t cross_elems(const struct dec_ctx *c)
{
    return (size_t)c->n_layer * 2 * c->n_audio_ctx * c->n_state;
}

static size_t cache_floats(const struct dec_ctx *c)
{
    return (size_t)c->n_layer * 2 * c->n_ctx * c->n_state;
}

struct dec_ctx *dec_ctx_new(const struct hark_model *model)
{
    const struct hark_hparams *hp = &model->hp;
    struct dec_ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->n_ctx = hp->n_text_ctx;
    c->n_state = hp->n_text_state;
    c->n_layer = hp->n_text_layer;
    c->n_head = hp->n_text_head;
    c->n_audio_ctx = hp->n_audio_ctx;
    c->max_rows = c->n_ctx > STATE_MAX_SEQ ? c->n_ctx : STATE_MAX_SEQ;
    size_t rs = (size_t)c->max_rows * c->n_state * sizeof(float);
    c->cross = calloc(cross_elems(c), sizeof(uint16_t));
    c->x = aligned_alloc(64, rs);
    c->xn = aligned_alloc(64, rs);
    c->q = aligned_alloc(64, rs);
    c->att = aligned_alloc(64, rs);
    c->kt = aligned_alloc(64, rs);
    c->vt = aligned_alloc(64, rs);
    c->h = aligned_alloc(64, 4 * rs);
    if (!c->cross || !c->x || !c->xn || !c->q || !c->att || !c->kt || !c->vt || !c->h) {
        dec_ctx_free(c);
        return NULL;
    }
    for (int i = 0; i < STATE_MAX_SEQ; i++) c->slot_buf[i] = i;
    return c;
}

void dec_ctx_free(struct dec_ctx *c)
{
    if (!c) return;
    free(c->cross);
    free(c->cross32);
    for (int i = 0; i < STATE_MAX_SEQ; i++) free(c->buf[i]);
    free(c->x);
    free(c->xn);
    free(c->q);
    free(c->att);
    free(c->kt);
    free(c->vt);
    free(c->h);
    free(c);
}

/* Layer `layer`'s cross-attention keys (which 0) or values (1), f16. */
static uint16_t *cross_kv(struct dec_ctx *c, int layer, int which)
{
    return c->cross + (size_t)(2 * layer + which) * c->n_audio_ctx * c->n_state;
}

/* Widens the head-major f16 `src` (n_head, n_audio_ctx, hd) to the
 * row-major f32 `dst` (n_audio_ctx, S). */
static void cross_widen(const struct dec_ctx *c, const uint16_t *src, float *dst)
{
    int hd = c->n_state / c->n_head;
    for (int j = 0; j < c->n_audio_ctx; j++)
        for (int h = 0; h < c->n_head; h++)
            kern_f16_to_f32_row(src + ((size_t)h * c->n_audio_ctx + j) * hd, dst + (size_t)j * c->n_state + h * hd,
                                (size_t)hd);
}

void dec_set_cross(struct hark_state *st, int layer, const float *k, const float *v)
{
    struct dec_ctx *c = st->dec;
    size_t n = (size_t)c->n_audio_ctx * c->n_state;
    int hd = c->n_state / c->n_head;
    for (int which = 0; which < 2; which++) {
        const float *src = which ? v : k;
        uint16_t *dst = cross_kv(c, layer, which);
        for (int j = 0; j < c->n_audio_ctx; j++)
            for (int h = 0; h < c->n_head; h++)
                kern_f32_to_f16_row(src + (size_t)j * c->n_state + h * hd,
                                    dst + ((size_t)h * c->n_audio_ctx + j) * hd, (size_t)hd);
        if (c->cross32) cross_widen(c, dst, c->cross32 + (size_t)(2 * layer + which) * n);
    }
}

/* The f32 copy, made on first use and kept up to date by dec_set_cross. */
static float *cross32(struct hark_state *st, int layer, int which)
{
    struct dec_ctx *c = st->dec;
    size_t n = (size_t)c->n_audio_ctx * c->n_state;
    if (!c->cross32) {
        c->cross32 = malloc(cross_elems(c) * sizeof(float));
        if (!c->cross32) return NULL;
        for (int lw = 0; lw < 2 * c->n_layer; lw++) cross_widen(c, c->cross + lw * n, c->cross32 + lw * n);
    }
    return c->cross32 + (size_t)(2 * layer + which) * n;
}

float *dec_cross_k(struct hark_state *st, int layer) { return cross32(st, layer, 0); }

float *dec_cross_v(struct hark_state *st, int layer) { return cross32(st, layer, 1); }

/* Self-attention keys (which 0) or values (1) of a slot's layer: (n_ctx, S). */
static float *self_kv(struct dec_ctx *c, int slot, int layer, int which)
{
    return c->buf[c->slot_buf[slot]] + (size_t)(2 * layer + which) * c->n_ctx * c->n_state;
}

int dec_reserve(struct hark_state *st, int n_seq)
{
    struct dec_ctx *c = st->dec;
    if (n_seq < 1 || n_seq > STATE_MAX_SEQ) return HARK_EINVAL;
    /* Slots below n_reserved map to buffers below n_reserved (a
     * permutation), so a new slot takes the buffer of its own index. */
    for (int i = c->n_reserved; i < n_seq; i++) {
        c->buf[i] = aligned_alloc(64, cache_floats(c) * sizeof(float));
        if (!c->buf[i]) return HARK_ENOMEM;
        c->slot_buf[i] = i;
        c->n_reserved = i + 1;
    }
    return 0;
}

void dec_kv_reorder(struct hark_state *st, int n_seq, const int *src, int n)
{
    struct dec_ctx *c = st->dec;
    int taken[STATE_MAX_SEQ] = {0}, new_buf[STATE_MAX_SEQ], free_buf[STATE_MAX_SEQ], n_free = 0;
    assert(n_seq >= 0 && n_seq <= c->n_reserved && n >= 0 && n <= c->n_ctx);
    /* The first slot that takes a source keeps its buffer as it is. */
    for (int i = 0; i < n_seq; i++) {
        assert(src[i] >= 0 && src[i] < n_seq);
        if (!taken[src[i]]) {
            taken[src[i]] = 1;
            new_buf[i] = c->slot_buf[src[i]];
        } else {
            new_buf[i] = -1;
        }
    }
    /* Buffers of slots nobody copies from are free to overwrite. */
    for (int s = 0; s < n_seq; s++)
        if (!taken[s]) free_buf[n_free++] = c->slot_buf[s];
    size_t row = (size_t)c->n_state;
    for (int i = 0, f = 0; i < n_seq; i++) {
        if (new_buf[i] >= 0) continue;
        assert(f < n_free);
        int b = free_buf[f++];
        const float *from = c->buf[c->slot_buf[src[i]]];
        for (int lw = 0; lw < 2 * c->n_layer; lw++) {
            size_t off = (size_t)lw * c->n_ctx * row;
            memcpy(c->buf[b] + off, from + off, (size_t)n * row * sizeof(float));
        }
        new_buf[i] = b;
    }
    for (int i = 0; i < n_seq; i++) c->slot_buf[i] = new_buf[i];
}

/* The rows of one forward call. With `seqs` NULL (a batch), row r is
 * position n_past + r of slot `slot`, and the rows attend causally to each
 * other; otherwise row r is one query at position n_past of slot seqs[r]. */
struct rows {
    int n, slot, n_past;
    const int *seqs;
};

static inline int row_slot(const struct rows *rw, int r) { return rw->seqs ? rw->seqs[r] : rw->slot; }
static inline int row_pos(const struct rows *rw, int r) { return rw->seqs ? rw->n_past : rw->n_past + r; }

/* The forward pass for the rows `rw` with tokens tok[]. Logits of rows
 * first_row .. n-1 go to `logits` (n - first_row, n_vocab). */
/* The captured heads of layer l: scaled scores of the n rows of q. */
static void capture_scores(struct dec_ctx *c, const struct dec_capture *cap, int l, const float *q, int n, int hd)
{
    const int A = c->n_audio_ctx, S = c->n_state;
    const float scale = 1.0f / sqrtf((float)hd);
    float *kt = cap->scratch, *qh = cap->scratch + (size_t)A * hd;
    for (int k = 0; k < cap->n; k++) {
        if (cap->layer[k] != l) continue;
        const int h = cap->head[k];
        kern_f16_to_f32_row(cross_kv(c, l, 0) + (size_t)h * A * hd, kt, (size_t)A * hd);
        for (int r = 0; r < n; r++) memcpy(qh + (size_t)r * hd, q + (size_t)r * S + (size_t)h * hd, hd * sizeof(float));
        if (cap->round_q) kern_round_f16(qh, (size_t)n * hd);
        kern_sgemm(1, n, A, hd, scale, qh, hd, kt, hd, 0.0f, cap->out + (size_t)k * n * A, A);
    }
}

static int forward(struct hark_state *st, const struct rows *rw, const int32_t *tok, int first_row,
                   float *logits, const struct dec_capture *cap)
{
    const struct hark_model *m = st->model;
    const struct hark_hparams *hp = &m->hp;
    struct dec_ctx *c = st->dec;
    struct kern_pool *pool = st->pool;
    const int n = rw->n, S = c->n_state, H = hp->n_text_head, hd = S / H;
    const size_t rs = (size_t)S;
    size_t emb_row = kern_row_bytes(m->tok_emb.type, S);

    if (n < 1 || n > c->max_rows || rw->n_past < 0 || first_row < 0 || first_row > n) return HARK_EINVAL;
    if (first_row < n && !logits) return HARK_EINVAL;
    if (row_pos(rw, n - 1) >= c->n_ctx) return HARK_ERANGE;
    for (int r = 0; r < n; r++) {
        if (tok[r] < 0 || tok[r] >= hp->n_vocab) return HARK_EINVAL;
        if (row_slot(rw, r) < 0 || row_slot(rw, r) >= c->n_reserved) return HARK_EINVAL;
    }

    /* x (n, S) = token embedding + positional embedding. */
    for (int r = 0; r < n; r++) {
        float *x = c->x + r * rs;
        kern_dequant_row(m->tok_emb.type, m->tok_emb.data + (size_t)tok[r] * emb_row, x, S);
        const float *pe = m->dec_pe.f32 + (size_t)row_pos(rw, r) * rs;
        for (int i = 0; i < S; i++) x[i] += pe[i];
    }

    /* Capturing attention without logits needs no layer past the last
     * captured one. */
    int n_layer = c->n_layer;
    if (cap && first_row >= n) {
        n_layer = 0;
        for (int k = 0; k < cap->n; k++) n_layer = cap->layer[k] + 1 > n_layer ? cap->layer[k] + 1 : n_layer;
    }
    for (int l = 0; l < n_layer; l++) {
        const struct dec_layer *L = &m->dec[l];

        /* Self-attention; this step's keys and values go into the cache. */
        kern_layernorm(pool, c->x, n, S, L->attn_ln_w.f32, L->attn_ln_b.f32, c->xn);
        kern_linear(pool, &L->q_w, L->q_b.f32, c->xn, n, c->q, 0);
        kern_linear(pool, &L->k_w, NULL, c->xn, n, c->kt, 0);
        kern_linear(pool, &L->v_w, L->v_b.f32, c->xn, n, c->vt, 0);
        for (int r = 0; r < n; r++) {
            size_t at = (size_t)row_pos(rw, r) * rs;
            memcpy(self_kv(c, row_slot(rw, r), l, 0) + at, c->kt + r * rs, rs * sizeof(float));
            memcpy(self_kv(c, row_slot(rw, r), l, 1) + at, c->vt + r * rs, rs * sizeof(float));
        }
        if (!rw->seqs) {
            kern_attention(pool, H, hd, c->q, S, n, self_kv(c, rw->slot, l, 0), self_kv(c, rw->slot, l, 1), S,
                           rw->n_past + n, 1, c->att, S);
        } else {
            const float *ks[STATE_MAX_SEQ], *vs[STATE_MAX_SEQ];
            for (int r = 0; r < n; r++) {
                ks[r] = self_kv(c, rw->seqs[r], l, 0);
                vs[r] = self_kv(c, rw->seqs[r], l, 1);
            }
            kern_attention_rows(pool, H, hd, c->q, S, n, ks, vs, S, rw->n_past + 1, c->att, S);
        }
        kern_linear(pool, &L->o_w, L->o_b.f32, c->att, n, c->x, KERN_ACCUM);

        /* Cross-attention over the encoder output. */
        kern_layernorm(pool, c->x, n, S, L->cross_ln_w.f32, L->cross_ln_b.f32, c->xn);
        kern_linear(pool, &L->cq_w, L->cq_b.f32, c->xn, n, c->q, 0);
        if (cap) capture_scores(c, cap, l, c->q, n, hd);
        kern_attention_kv16(pool, H, hd, c->q, S, n, cross_kv(c, l, 0), cross_kv(c, l, 1), hd,
                            (size_t)c->n_audio_ctx * hd, c->n_audio_ctx, c->att, S);
        kern_linear(pool, &L->co_w, L->co_b.f32, c->att, n, c->x, KERN_ACCUM);

        /* MLP. */
        kern_layernorm(pool, c->x, n, S, L->mlp_ln_w.f32, L->mlp_ln_b.f32, c->xn);
        kern_linear(pool, &L->mlp0_w, L->mlp0_b.f32, c->xn, n, c->h, KERN_GELU);
        kern_linear(pool, &L->mlp2_w, L->mlp2_b.f32, c->h, n, c->x, KERN_ACCUM);
    }

    if (first_row >= n) return 0;
    int nl = n - first_row;
    kern_layernorm(pool, c->x + (size_t)first_row * rs, nl, S, m->ln_w.f32, m->ln_b.f32, c->xn);
    kern_linear(pool, &m->tok_emb, NULL, c->xn, nl, logits, 0);
    return 0;
}

int dec_forward(struct hark_state *st, int seq, const int32_t *tokens, int n, int n_past,
                int first_row, float *logits)
{
    return dec_forward_capture(st, seq, tokens, n, n_past, first_row, logits, NULL);
}

int dec_forward_capture(struct hark_state *st, int seq, const int32_t *tokens, int n, int n_past, int first_row,
                        float *logits, const struct dec_capture *cap)
{
    if (!st || !tokens) return HARK_EINVAL;
    if (cap) {
        const struct hark_hparams *hp = &st->model->hp;
        for (int k = 0; k < cap->n; k++)
            if (cap->layer[k] < 0 || cap->layer[k] >= hp->n_text_layer || cap->head[k] < 0 ||
                cap->head[k] >= hp->n_text_head)
                return HARK_EINVAL;
    }
    struct rows rw = {.n = n, .slot = seq, .n_past = n_past, .seqs = NULL};
    return forward(st, &rw, tokens, first_row, logits, cap);
}

int dec_step(struct hark_state *st, int n_seq, const int *seqs, const int32_t *tokens, int n_past,
             float *logits)
{
    if (!st || !seqs || !tokens || n_seq < 1 || n_seq > STATE_MAX_SEQ) return HARK_EINVAL;
    /* Two rows writing one slot's cache would race for one position. */
    for (int i = 0; i < n_seq; i++)
        for (int j = 0; j < i; j++)
            if (seqs[i] == seqs[j]) return HARK_EINVAL;
    struct rows rw = {.n = n_seq, .slot = -1, .n_past = n_past, .seqs = seqs};
    return forward(st, &rw, tokens, 0, logits, NULL);
}
