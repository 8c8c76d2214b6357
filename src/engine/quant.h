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

/* Which integer kernels run: 2 AVX-512 VNNI (the CPU has it and the SIMD
 * kernels are AVX-512, kern_set_simd), 1 AVX2 (any other SIMD setting),
 * 0 the portable path. */
int quant_simd(void);

/* y (m, N) = x (m, K) · Wᵀ + bias for a quantized W of ne [K, N], with
 * kern_linear's flags (KERN_ACCUM, KERN_GELU): x's rows quantized to q8_0
 * (q8_1 for q4_1 and q5_1 weights) and multiplied block by block in
 * integers. Runs on the pool. Returns 0, or HARK_ENOMEM when the pool's
 * shared buffer cannot hold the quantized activations (y is untouched). */
int quant_linear(struct kern_pool *pool, const struct tensor *w, const float *bias, const float *x,
                 int m, float *y, int flags);

#endif
