/*
 * model.h: the in-memory form of a loaded ggml Whisper model.
 *
 * Everything here is immutable once hark_model_load() returns, and shared by
 * every state and thread. Weight data of f16 and quantized tensors point into
 * the read-only mmap of the file and may be unaligned: read them through
 * memcpy or unaligned SIMD loads, never through a cast pointer. Every f32
 * tensor, and every bias, norm and positional embedding whatever its stored
 * type, is copied at load time into 64-byte aligned f32 memory (`f32`), so
 * code may index it as a float array.
 */
#ifndef HARK_MODEL_H
#define HARK_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "hark.h"

/* ggml tensor type ids as stored in the file. */
enum {
    TYPE_F32 = 0,
    TYPE_F16 = 1,
    TYPE_Q4_0 = 2,
    TYPE_Q4_1 = 3,
    TYPE_Q5_0 = 6,
    TYPE_Q5_1 = 7,
    TYPE_Q8_0 = 8,
};

/* Bytes per block of 32 values (QK) for the quantized types. */
#define QK 32
#define Q4_0_BYTES 18 /* f16 d; u8 qs[16] */
#define Q4_1_BYTES 20 /* f16 d, m; u8 qs[16] */
#define Q5_0_BYTES 22 /* f16 d; u8 qh[4]; u8 qs[16] */
#define Q5_1_BYTES 24 /* f16 d, m; u8 qh[4]; u8 qs[16] */
#define Q8_0_BYTES 34 /* f16 d; i8 qs[32] */

struct tensor {
    const char *name;     /* borrowed from the model */
    int type;             /* TYPE_* */
    int n_dims;
    int64_t ne[4];        /* ggml order: ne[0] fastest; unused dims are 1 */
    const uint8_t *data;  /* raw bytes (mmap), possibly unaligned */
    size_t n_bytes;
    const float *f32;     /* aligned f32 copy: set for every f32 tensor and for every
                             bias, norm and positional embedding (converted from f16
                             if stored so); NULL otherwise */
};

/* Linear weights are (out, in) in PyTorch terms: ne = [in, out], each of the
 * `out` rows holds `in` consecutive values. */
struct enc_layer {
    struct tensor attn_ln_w, attn_ln_b;  /* (S) */
    struct tensor q_w, q_b;              /* (S, S), (S) */
    struct tensor k_w;                   /* (S, S), no bias */
    struct tensor v_w, v_b;
    struct tensor o_w, o_b;
    struct tensor mlp_ln_w, mlp_ln_b;    /* (S) */
    struct tensor mlp0_w, mlp0_b;        /* (4S, S), (4S) */
    struct tensor mlp2_w, mlp2_b;        /* (S, 4S), (S) */
};

struct dec_layer {
    struct tensor attn_ln_w, attn_ln_b;
    struct tensor q_w, q_b, k_w, v_w, v_b, o_w, o_b;          /* self-attention */
    struct tensor cross_ln_w, cross_ln_b;
    struct tensor cq_w, cq_b, ck_w, cv_w, cv_b, co_w, co_b;   /* cross-attention */
    struct tensor mlp_ln_w, mlp_ln_b;
    struct tensor mlp0_w, mlp0_b, mlp2_w, mlp2_b;
};

struct tok_index; /* tokenizer.c: byte-string -> id lookup for BPE */

struct hark_model {
    char *path;
    struct hark_hparams hp;
    int qntvr;                 /* quantization version: header ftype / 1000 */

    void *map;                 /* whole file, read-only */
    size_t map_bytes;

    const float *mel_filters;  /* (n_mels, n_fft_bins) aligned copy */
    int n_fft_bins;            /* 201 */

    /* Stored vocabulary: token i has vocab_len[i] bytes at vocab_bytes[i]
     * (inside the mmap, not NUL-terminated). Ids from n_vocab_stored to
     * n_vocab - 1 are special tokens (tokenizer.h). */
    int n_vocab_stored;
    const uint8_t **vocab_bytes;
    uint32_t *vocab_len;
    struct tok_index *tok;     /* built at load by tok_index_new() */

    /* Encoder: conv1 ne [3, n_mels, S], conv2 ne [3, S, S] (f16 or f32);
     * biases ne [1, S]; positional embedding ne [S, n_audio_ctx]. */
    struct tensor conv1_w, conv1_b, conv2_w, conv2_b, enc_pe;
    struct enc_layer *enc;     /* n_audio_layer */
    struct tensor ln_post_w, ln_post_b;

    /* Decoder: token embedding ne [S, n_vocab] (also the output projection),
     * positional embedding ne [S, n_text_ctx]. */
    struct tensor tok_emb, dec_pe;
    struct dec_layer *dec;     /* n_text_layer */
    struct tensor ln_w, ln_b;

    /* Every tensor record in file order (for `hark models info`). */
    struct tensor *all;
    int n_all;
    char *names;               /* storage of every tensor's name */
};

/* Bytes taken by n values of a type (n a multiple of 32 for quantized
 * types); 0 if the type is unknown or n is not a whole number of blocks. */
size_t model_type_bytes(int type, int64_t n);

#endif
