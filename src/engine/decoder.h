/*
 * decoder.h: Whisper's text decoder over a key/value cache.
 *
 * The state holds self-attention caches for STATE_MAX_SEQ sequences (slots
 * 0..STATE_MAX_SEQ-1); cross-attention keys/values come from the last
 * enc_forward(). All functions return 0 or a negative HARK_E* code.
 */
#ifndef HARK_DECODER_H
#define HARK_DECODER_H

#include <stdint.h>

struct hark_state;
struct hark_model;
struct dec_ctx;

struct dec_ctx *dec_ctx_new(const struct hark_model *model);
void dec_ctx_free(struct dec_ctx *ctx);

/* Decodes n tokens of sequence slot `seq` at positions n_past .. n_past+n-1
 * (n_past + n <= n_text_ctx), storing their keys/values in the slot. Writes
 * the logits of rows first_row .. n-1 into `logits`, row-major
 * (n - first_row, n_vocab); first_row == n writes none. */
int dec_forward(struct hark_state *st, int seq, const int32_t *tokens, int n, int n_past,
                int first_row, float *logits);

/* Cross-attention scores to capture during a dec_forward_capture: for
 * each of n heads (layer[k], head[k]), the scaled dot products
 * q·kᵀ / sqrt(head_dim) of every row with every audio position, before the
 * softmax, into out + k·(rows·n_audio_ctx), row-major (rows, n_audio_ctx).
 * With round_q the queries are rounded to f16 first (ggml does so when it
 * multiplies them with f16 keys). scratch holds n_audio_ctx·head_dim +
 * rows·head_dim floats. */
struct dec_capture {
    int n;
    const int *layer, *head;
    int round_q;
    float *out;
    float *scratch;
};

/* dec_forward, also capturing cross-attention scores (cap may be NULL).
 * Without logits (first_row == n) the layers after the last captured one
 * are skipped, and their caches are left as they were. */
int dec_forward_capture(struct hark_state *st, int seq, const int32_t *tokens, int n, int n_past, int first_row,
                        float *logits, const struct dec_capture *cap);

/* One step for n_seq sequences at once: token tokens[i] goes to slot
 * seqs[i] at position n_past (the same for all). Writes logits row-major
 * (n_seq, n_vocab). */
int dec_step(struct hark_state *st, int n_seq, const int *seqs, const int32_t *tokens,
             int n_past, float *logits);

/* Makes sure slots 0..n_seq-1 have caches (n_seq <= STATE_MAX_SEQ);
 * allocates what is missing. Called before a window's decoding loop, never
 * inside it. Returns 0 or HARK_ENOMEM. */
int dec_reserve(struct hark_state *st, int n_seq);

/* Beam reordering: afterwards slot i (i < n_seq) holds what slot src[i]
 * held before, for positions 0..n-1. src may repeat and permute slots. */
void dec_kv_reorder(struct hark_state *st, int n_seq, const int *src, int n);

/* Stores decoder layer `layer`'s cross-attention keys k and values v
 * (n_audio_ctx, n_text_state) each; enc_forward() calls it for every layer.
 * The decoder keeps them as f16. */
void dec_set_cross(struct hark_state *st, int layer, const float *k, const float *v);

#endif
