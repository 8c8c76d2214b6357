/*
 * kernels.h: the numeric building blocks of the forward pass.
 *
 * Matrix products (dense GEMM through OpenBLAS or a portable blocked kernel,
 * GEMV straight from f16 / quantized weights), LayerNorm, softmax, GELU,
 * attention, f16 conversion and block dequantization. kernels.c and
 * attention.c are the only files that know about SIMD, and with blas.c the
 * only ones that know about BLAS: callers pass plain f32 activations and
 * model tensors. Every kernel that takes a kern_pool runs on it (pool.h).
 */
#ifndef HARK_KERNELS_H
#define HARK_KERNELS_H

#include <stddef.h>
#include <stdint.h>

struct tensor;
struct kern_pool;

/* ----------------------------------------------------------- conversions */

float kern_f16_to_f32(uint16_t h);
uint16_t kern_f32_to_f16(float f); /* round to nearest even */

/* n values from f32 to f16 (round to nearest even) and back. */
void kern_f32_to_f16_row(const float *src, uint16_t *dst, size_t n);
void kern_f16_to_f32_row(const uint16_t *src, float *dst, size_t n);

/* Bytes of a row of n values of ggml type `type`; 0 if the type is unknown
 * or n is not a multiple of the type's block size. */
size_t kern_row_bytes(int type, int64_t n);

/* Dequantizes n values of `type` (f32, f16 or a quantized block type; n a
 * multiple of 32 for the block types) from possibly unaligned src into dst.
 * Returns 0, or HARK_EINVAL for an unknown type or a bad n. */
int kern_dequant_row(int type, const uint8_t *src, float *dst, int64_t n);

/* Rounds n floats in place to the nearest f16 value (ties to even), as
 * ggml does to a convolution's input when its kernel is f16. */
void kern_round_f16(float *x, size_t n);

/* ----------------------------------------------------------- linear maps */

enum {
    KERN_ACCUM = 1, /* y += x·Wᵀ + b instead of y = x·Wᵀ + b */
    KERN_GELU = 2,  /* y = gelu(x·Wᵀ + b) (not with KERN_ACCUM) */
};

/* y (m, N) = x (m, K) · Wᵀ + bias, with W a weight tensor of ne [K, N] (N
 * rows of K values; any weight type) and bias N floats or NULL. x and y are
 * contiguous row-major and do not overlap. Up to KERN_GEMV_MAX_ROWS rows
 * read the weights directly (GEMV); more rows convert tiles of the weights
 * to f32 and multiply them with sgemm. Quantized weights are multiplied as
 * ggml does, in integers with 8-bit activations (quant.h). Runs on the pool. */
#define KERN_GEMV_MAX_ROWS 8
void kern_linear(struct kern_pool *pool, const struct tensor *w, const float *bias,
                 const float *x, int m, float *y, int flags);

/* C (M, N) = alpha · A (M, K) · op(B) + beta · C on the calling thread;
 * op(B) = Bᵀ with B (N, K) when trans_b, else B (K, N). Row-major with
 * leading dimensions lda, ldb, ldc. OpenBLAS when loaded and enabled,
 * else the portable kernel. */
void kern_sgemm(int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);

/* ----------------------------------------------------------- activations */

/* y (m, n) = LayerNorm(x (m, n)) · w + b over each row, eps 1e-5. x and y
 * may be the same buffer. Runs on the pool. */
void kern_layernorm(struct kern_pool *pool, const float *x, int m, int n, const float *w,
                    const float *b, float *y);

/* Softmax of n floats in place (max-subtracted, f32). */
void kern_softmax(float *x, int n);

/* y[j] = the median of x[j-3..j+3] for each of n values, x reflected
 * about its ends (x[-i] = x[i]); n <= 3 copies x. x and y must not
 * overlap. */
void kern_median7(const float *x, float *y, int n);

/* GELU, tanh approximation, in place over n floats. */
void kern_gelu(float *x, size_t n);

/* Multi-head attention (attention.c). For each head h (columns h·head_dim ..), query row
 * i of q (n_q rows, stride ldq) attends to key/value rows of k and v (n_kv
 * rows, stride ldkv):
 *   out_i = softmax(q_i · Kᵀ / sqrt(head_dim)) · V, out (n_q rows, stride ldo).
 * With `causal`, query i sees keys 0 .. n_kv - n_q + i only (the queries
 * are the last n_q positions). Runs heads and blocks of queries on the pool. */
void kern_attention(struct kern_pool *pool, int n_head, int head_dim, const float *q, int ldq,
                    int n_q, const float *k, const float *v, int ldkv, int n_kv, int causal,
                    float *out, int ldo);

/* kern_attention without a mask over keys and values stored as f16: head
 * h's key j is the head_dim values at k + h·head_stride + j·ldkv (elements),
 * and likewise for v. head_stride = head_dim, ldkv = n_head·head_dim is the
 * usual row-major layout; head_stride = n_kv·head_dim, ldkv = head_dim is
 * head-major, which streams each head's keys contiguously. f32 arithmetic. */
void kern_attention_kv16(struct kern_pool *pool, int n_head, int head_dim, const float *q, int ldq,
                         int n_q, const uint16_t *k, const uint16_t *v, int ldkv, size_t head_stride,
                         int n_kv, float *out, int ldo);

/* Attention for n_q queries that each have their own keys and values (one
 * decoding step of several sequences): query row i of q attends, without a
 * mask, to the n_kv rows of k[i] and v[i] (stride ldkv), head by head as in
 * kern_attention. Runs heads and queries on the pool. */
void kern_attention_rows(struct kern_pool *pool, int n_head, int head_dim, const float *q, int ldq,
                         int n_q, const float *const *k, const float *const *v, int ldkv, int n_kv,
                         float *out, int ldo);

/* One step of an LSTM cell of hidden size H (a multiple of 16), gates in
 * PyTorch's order (input, forget, cell, output):
 *   z = pre + W_hh · h,  i = σ(z₀), f = σ(z₁), g = tanh(z₂), o = σ(z₃),
 *   c = f·c + i·g,  h = o·tanh(c).
 * pre (4H) holds W_ih · x + both biases; w_hh_t is W_hh transposed, (H, 4H)
 * row-major; h and c (H) are updated in place; z (4H) is scratch. On the
 * calling thread. */
void kern_lstm_step(int H, const float *w_hh_t, const float *pre, float *h, float *c, float *z);

/* ------------------------------------------------------- implementations */

/* The instruction sets the kernels use, chosen at run time: the best the
 * CPU has unless a lower one is asked for (kern_set_simd). */
enum kern_isa {
    KERN_SCALAR = 0, /* portable C */
    KERN_AVX2 = 1,   /* AVX2, FMA and F16C: 8 floats a vector */
    KERN_AVX512 = 2, /* AVX-512 F/BW/VL/DQ, FMA and F16C: 16 floats */
};

/* The instruction set the kernels use now. */
int kern_simd(void);

#endif
