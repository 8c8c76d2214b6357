/*
 * quant.h: products of quantized weights with f32 activations, computed as
 * ggml computes them: the activations quantized to 8-bit blocks first, then
 * integer dot products block by block (see quant.c).
 */
#ifndef HARK_QUANT_H
#define HARK_QUANT_H

#include <stddef.h>
#include <stdint.h>

struct kern_pool;
struct tensor;

/* 1 if `type` (TYPE_*) is one of the quantized block types. */
int quant_is_block_type(int type);

/* 1 if the integer kernels use AVX-512 VNNI: the CPU has it and the SIMD
 * kernels are on (kern_set_simd); 0 for the portable path. */
int quant_simd(void);

/* Quantizes n values of x (n a multiple of 32) into n / 32 blocks of 32 as
 * ggml's x86 build does (q8_0 and q8_1): per block, amax = max |x|, the
 * scale d = amax / 127 stored as f16 in d[b], and q = x · (127 / amax)
 * rounded half to even (0 for an all-zero block). When s is not NULL, s[b]
 * is the f16 of d · Σq (q8_1). Uses the SIMD path when quant_simd(). */
void quant_row_q8(const float *x, int64_t n, int8_t *q, uint16_t *d, uint16_t *s);

/* y (m, N) = x (m, K) · Wᵀ + bias for a quantized W of ne [K, N], with
 * kern_linear's flags (KERN_ACCUM, KERN_GELU): x's rows quantized to q8_0
 * (q8_1 for q4_1 and q5_1 weights) and multiplied block by block in
 * integers. Runs on the pool. Returns 0, or HARK_ENOMEM when the pool's
 * shared buffer cannot hold the quantized activations (y is untouched). */
int quant_linear(struct kern_pool *pool, const struct tensor *w, const float *bias, const float *x,
                 int m, float *y, int flags);

#endif
