/*
 * encoder.c: Whisper's audio encoder (openai-whisper model.py AudioEncoder).
 *
 *   x = GELU(conv1(mel))      k 3, stride 1, pad 1   (2·n_ctx, S)
 *   x = GELU(conv2(x))        k 3, stride 2, pad 1   (n_ctx, S)
 *   x += positional embedding
 *   per block: x += attn(LN(x)); x += mlp(LN(x))
 *   out = LN_post(x)
 * and then, for every decoder layer, the cross-attention keys and values of
 * `out`, which stay fixed while the window is decoded.
 *
 * The convolutions are products: each output frame's 3 input frames of
 * every channel are laid out in a row (im2col) in the order of the weight's
 * (out, in, k) rows, so a conv weight of ne [3, n_in, n_out] is a linear
 * weight of ne [3·n_in, n_out]. Everything else is kern_linear,
 * kern_layernorm and kern_attention over buffers carved at enc_ctx_new.
 */
#include "encoder.h"

#include <stdlib.h>
#include <string.h>

#include "decoder.h"
#include "kernels.h"
#include "model.h"
#include "state.h"
#include "testing.h"

struct enc_ctx {
    int n_ctx;     /* n_audio_ctx: output frames per window */
    int n_state;   /* S = n_audio_state */
    int n_mels;
    float *conv;   /* (n_ctx, S) conv stem output, before the positional embedding */
    float *x;      /* (n_ctx, S) residual stream */
    float *xn;     /* (n_ctx, S) LayerNorm output, then attention output */
    float *qkv;    /* q, k, v (n_ctx, S) each; im2col rows before the blocks,
                    * cross-attention keys and values after them */
    float *h;      /* (n_ctx, 4S) MLP hidden; conv1 output (2·n_ctx, S) before */
    float *out;    /* (n_ctx, S) encoder output */
};

struct enc_ctx *enc_ctx_new(const struct hark_model *model)
{
    const struct hark_hparams *hp = &model->hp;
    struct enc_ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->n_ctx = hp->n_audio_ctx;
    c->n_state = hp->n_audio_state;
    c->n_mels = hp->n_mels;
    size_t cs = (size_t)c->n_ctx * c->n_state;
    /* im2col of conv1 is (2·n_ctx, 3·n_mels), of conv2 (n_ctx, 3·S). */
    size_t qkv = 3 * cs;
    size_t col1 = (size_t)2 * c->n_ctx * 3 * c->n_mels;
    size_t cross = (size_t)2 * c->n_ctx * hp->n_text_state;
    if (col1 > qkv) qkv = col1;
    if (cross > qkv) qkv = cross;
    c->conv = aligned_alloc(64, cs * sizeof(float));
    c->x = aligned_alloc(64, cs * sizeof(float));
    c->xn = aligned_alloc(64, cs * sizeof(float));
    c->out = aligned_alloc(64, cs * sizeof(float));
    c->qkv = aligned_alloc(64, qkv * sizeof(float));
    c->h = aligned_alloc(64, 4 * cs * sizeof(float));
    if (!c->conv || !c->x || !c->xn || !c->out || !c->qkv || !c->h) {
        enc_ctx_free(c);
        return NULL;
    }
    memset(c->conv, 0, cs * sizeof(float));
    memset(c->out, 0, cs * sizeof(float));
    return c;
}

void enc_ctx_free(struct enc_ctx *c)
{
    if (!c) return;
    free(c->conv);
    free(c->x);
    free(c->xn);
    free(c->out);
    free(c->qkv);
    free(c->h);
    free(c);
}

const float *enc_output(const struct hark_state *st) { return st->enc->out; }

const float *enc_conv_output(const struct hark_state *st) { return st->enc->conv; }

/* A conv weight ne [3, n_in, n_out] seen as a linear weight [3·n_in, n_out]. */
static struct tensor conv_as_linear(const struct tensor *w)
{
    struct tensor t = *w;
    t.n_dims = 2;
    t.ne[0] = w->ne[0] * w->ne[1];
    t.ne[1] = w->ne[2];
    t.ne[2] = 1;
    return t;
}

/* The conv stem: mel frames [offset, offset + 2·n_ctx) -> c->conv. */
static void conv_stem(struct hark_state *st, const float *mel, int n_frames, int offset)
{
    const struct hark_model *m = st->model;
    struct enc_ctx *c = st->enc;
    const int T = 2 * c->n_ctx, S = c->n_state, nm = c->n_mels;
    float *col = c->qkv;
    float *c1 = c->h; /* (T, S) */

    /* conv1 im2col: col (T, 3·n_mels), col[t][ch·3 + k] = mel[ch][offset + t + k − 1],
     * zero outside the window (padding) and past the end of the mel. */
    for (int t = 0; t < T; t++) {
        float *row = col + (size_t)t * 3 * nm;
        for (int k = 0; k < 3; k++) {
            int tw = t + k - 1;            /* frame within the window */
            long f = (long)offset + tw;    /* frame within the mel */
            int ok = tw >= 0 && tw < T && f < n_frames;
            for (int ch = 0; ch < nm; ch++) row[ch * 3 + k] = ok ? mel[(size_t)ch * n_frames + f] : 0.0f;
        }
    }
    struct tensor w1 = conv_as_linear(&m->conv1_w);
    kern_linear(st->pool, &w1, m->conv1_b.f32, col, T, c1, KERN_GELU);

    /* conv2 im2col (stride 2): col (n_ctx, 3·S), col[t][ch·3 + k] = c1[2t + k − 1][ch]. */
    for (int t = 0; t < c->n_ctx; t++) {
        float *row = col + (size_t)t * 3 * S;
        for (int k = 0; k < 3; k++) {
            int src = 2 * t + k - 1;
            if (src < 0 || src >= T) {
                for (int ch = 0; ch < S; ch++) row[ch * 3 + k] = 0.0f;
            } else {
                const float *in = c1 + (size_t)src * S;
                for (int ch = 0; ch < S; ch++) row[ch * 3 + k] = in[ch];
            }
        }
    }
    struct tensor w2 = conv_as_linear(&m->conv2_w);
    kern_linear(st->pool, &w2, m->conv2_b.f32, col, c->n_ctx, c->conv, KERN_GELU);
}

int enc_forward(struct hark_state *st, const float *mel, int n_frames, int offset)
{
    if (!st || !mel || n_frames < 0 || offset < 0) return HARK_EINVAL;
    const struct hark_model *m = st->model;
    const struct hark_hparams *hp = &m->hp;
    struct enc_ctx *c = st->enc;
    struct kern_pool *pool = st->pool;
    const int n = c->n_ctx, S = c->n_state, H = hp->n_audio_head;
    const size_t cs = (size_t)n * S;
    float *q = c->qkv, *k = c->qkv + cs, *v = c->qkv + 2 * cs;

    conv_stem(st, mel, n_frames, offset);

    /* x = conv + positional embedding (n_ctx, S). */
    const float *pe = m->enc_pe.f32;
    for (size_t i = 0; i < cs; i++) c->x[i] = c->conv[i] + pe[i];

    for (int l = 0; l < hp->n_audio_layer; l++) {
        const struct enc_layer *L = &m->enc[l];
        kern_layernorm(pool, c->x, n, S, L->attn_ln_w.f32, L->attn_ln_b.f32, c->xn);
        kern_linear(pool, &L->q_w, L->q_b.f32, c->xn, n, q, 0);
        kern_linear(pool, &L->k_w, NULL, c->xn, n, k, 0);
        kern_linear(pool, &L->v_w, L->v_b.f32, c->xn, n, v, 0);
        kern_attention(pool, H, S / H, q, S, n, k, v, S, n, 0, c->xn, S);
        kern_linear(pool, &L->o_w, L->o_b.f32, c->xn, n, c->x, KERN_ACCUM);

        kern_layernorm(pool, c->x, n, S, L->mlp_ln_w.f32, L->mlp_ln_b.f32, c->xn);
        kern_linear(pool, &L->mlp0_w, L->mlp0_b.f32, c->xn, n, c->h, KERN_GELU);
        kern_linear(pool, &L->mlp2_w, L->mlp2_b.f32, c->h, n, c->x, KERN_ACCUM);
    }
    kern_layernorm(pool, c->x, n, S, m->ln_post_w.f32, m->ln_post_b.f32, c->out);

    /* Cross-attention keys and values of every decoder layer, (n_ctx,
     * n_text_state) each, computed in the qkv buffer and handed over. */
    float *ck = c->qkv, *cv = c->qkv + (size_t)n * hp->n_text_state;
    for (int l = 0; l < hp->n_text_layer; l++) {
        const struct dec_layer *L = &m->dec[l];
        kern_linear(pool, &L->ck_w, NULL, c->out, n, ck, 0);
        kern_linear(pool, &L->cv_w, L->cv_b.f32, c->out, n, cv, 0);
        dec_set_cross(st, l, ck, cv);
    }
    return 0;
}
