/*
 * kernels.c: matrix products, normalisation and activations for the forward
 * pass (attention is in attention.c, the thread pool in pool.c, the OpenBLAS
 * loader in blas.c).
 *
 * Up to three implementations of an inner loop live here: AVX-512 (with
 * F16C and FMA), AVX2 (with F16C and FMA) for the CPUs without AVX-512, and
 * a portable scalar one that the tests compare both against. The best the
 * CPU has is chosen at run time with __builtin_cpu_supports; the vector
 * loops are compiled through __attribute__((target)) because the build uses
 * no -march flag. Loops that take little of a transcription's time have no
 * AVX2 version and run the scalar one there. Dense products with
 * many rows (the encoder, a decoder prompt) convert weight tiles to f32 and
 * call OpenBLAS's cblas_sgemm (blas.h). OpenBLAS runs single-threaded;
 * parallelism comes from the pool, which splits a product's output columns
 * (weight rows) across threads. Products with few rows (decoding one token)
 * are bound by memory bandwidth and read f16 weights directly. Quantized
 * weights go to quant.c, which multiplies them in integers as ggml does; the
 * dequantizing paths here remain for when its buffer cannot be had.
 *
 * Quantized blocks (ggml): 32 values each, `d` and `m` are f16,
 *   q4_0 {d, qs[16]}          x = d·(q − 8)
 *   q4_1 {d, m, qs[16]}       x = d·q + m
 *   q5_0 {d, qh[4], qs[16]}   x = d·(q − 16)
 *   q5_1 {d, m, qh[4], qs[16]} x = d·q + m
 *   q8_0 {d, qs[32] int8}     x = d·q
 * where value j < 16 is the low nibble of qs[j], value j + 16 its high nibble,
 * and bit j of the little-endian 32-bit qh is the fifth bit of value j.
 */
#include "kernels.h"

#include <assert.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "hark.h"
#include "model.h"
#include "pool.h"
#include "quant.h"
#include "simd.h"
#include "testing.h"

/* ------------------------------------------------- run-time configuration */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_best;        /* enum kern_isa: what the CPU has */
static atomic_int g_isa;  /* what the kernels use */

static void simd_init(void)
{
    __builtin_cpu_init();
    /* Every CPU with these AVX-512 subsets, or with AVX2 and FMA, also has
     * F16C (which clang's __builtin_cpu_supports cannot name). */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        g_best = KERN_AVX512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        g_best = KERN_AVX2;
    else
        g_best = KERN_SCALAR;
    atomic_store(&g_isa, g_best);
}

static inline int use_simd(void)
{
    pthread_once(&g_once, simd_init);
    return atomic_load_explicit(&g_isa, memory_order_relaxed);
}

int kern_simd(void) { return use_simd(); }

int kern_simd_best(void)
{
    pthread_once(&g_once, simd_init);
    return g_best;
}

void kern_set_simd(int isa)
{
    pthread_once(&g_once, simd_init);
    atomic_store(&g_isa, isa < 0 ? KERN_SCALAR : isa < g_best ? isa : g_best);
}

/* ----------------------------------------------------------- conversions */

float kern_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (e == 0) {
        if (man == 0) {
            bits = sign;
        } else {
            /* Subnormal: man · 2^-24; normalise the mantissa. */
            e = 113;
            while (!(man & 0x400u)) {
                man <<= 1;
                e--;
            }
            bits = sign | (e << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (e == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((e + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t kern_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0);
    if (ax >= 0x477ff000u) return sign | 0x7c00u; /* rounds to infinity */
    if (ax < 0x38800000u) {
        /* Below 2^-14: a subnormal f16, |f| · 2^24 rounded to nearest even. */
        float af;
        memcpy(&af, &ax, 4);
        return sign | (uint16_t)lrintf(af * 16777216.0f);
    }
    uint32_t h = (((ax >> 23) - 112) << 10) | ((ax & 0x7fffffu) >> 13);
    uint32_t rest = ax & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) h++;
    return sign | (uint16_t)h;
}

static T512 void f32_to_f16_row_512(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) dst[i] = kern_f32_to_f16(src[i]);
}

static T256 void f32_to_f16_row_256(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) dst[i] = kern_f32_to_f16(src[i]);
}

void kern_f32_to_f16_row(const float *src, uint16_t *dst, size_t n)
{
    switch (use_simd()) {
    case KERN_AVX512: f32_to_f16_row_512(src, dst, n); return;
    case KERN_AVX2: f32_to_f16_row_256(src, dst, n); return;
    }
    for (size_t i = 0; i < n; i++) dst[i] = kern_f32_to_f16(src[i]);
}

void kern_f16_to_f32_row(const uint16_t *src, float *dst, size_t n)
{
    kern_dequant_row(TYPE_F16, (const uint8_t *)src, dst, (int64_t)n);
}

static T512 void round_f16_512(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm512_storeu_ps(x + i, _mm512_cvtph_ps(h));
    }
    for (; i < n; i++) x[i] = kern_f16_to_f32(kern_f32_to_f16(x[i]));
}

static T256 void round_f16_256(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++) x[i] = kern_f16_to_f32(kern_f32_to_f16(x[i]));
}

void kern_round_f16(float *x, size_t n)
{
    switch (use_simd()) {
    case KERN_AVX512: round_f16_512(x, n); return;
    case KERN_AVX2: round_f16_256(x, n); return;
    }
    for (size_t i = 0; i < n; i++) x[i] = kern_f16_to_f32(kern_f32_to_f16(x[i]));
}

static inline float rd_f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return kern_f16_to_f32(h);
}

static size_t block_bytes(int type)
{
    switch (type) {
    case TYPE_Q4_0: return Q4_0_BYTES;
    case TYPE_Q4_1: return Q4_1_BYTES;
    case TYPE_Q5_0: return Q5_0_BYTES;
    case TYPE_Q5_1: return Q5_1_BYTES;
    case TYPE_Q8_0: return Q8_0_BYTES;
    default: return 0;
    }
}

size_t kern_row_bytes(int type, int64_t n)
{
    if (n < 0) return 0;
    if (type == TYPE_F32) return (size_t)n * 4;
    if (type == TYPE_F16) return (size_t)n * 2;
    size_t bb = block_bytes(type);
    if (!bb || n % QK) return 0;
    return (size_t)(n / QK) * bb;
}

/* One block of 32 values, scalar. */
static void deq_block(int type, const uint8_t *b, float *y)
{
    float d = rd_f16(b), m = 0.0f;
    uint32_t qh = 0;
    const uint8_t *qs;
    switch (type) {
    case TYPE_Q4_0:
        qs = b + 2;
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((qs[j] & 15) - 8);
            y[j + 16] = d * (float)((qs[j] >> 4) - 8);
        }
        break;
    case TYPE_Q4_1:
        m = rd_f16(b + 2);
        qs = b + 4;
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)(qs[j] & 15) + m;
            y[j + 16] = d * (float)(qs[j] >> 4) + m;
        }
        break;
    case TYPE_Q5_0:
        memcpy(&qh, b + 2, 4);
        qs = b + 6;
        for (int j = 0; j < 16; j++) {
            int lo = (qs[j] & 15) | (int)(((qh >> j) & 1u) << 4);
            int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
            y[j] = d * (float)(lo - 16);
            y[j + 16] = d * (float)(hi - 16);
        }
        break;
    case TYPE_Q5_1:
        m = rd_f16(b + 2);
        memcpy(&qh, b + 4, 4);
        qs = b + 8;
        for (int j = 0; j < 16; j++) {
            int lo = (qs[j] & 15) | (int)(((qh >> j) & 1u) << 4);
            int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
            y[j] = d * (float)lo + m;
            y[j + 16] = d * (float)hi + m;
        }
        break;
    case TYPE_Q8_0:
        for (int j = 0; j < 32; j++) y[j] = d * (float)(int8_t)b[2 + j];
        break;
    }
}

/* ------------------------------------------------------ AVX-512 helpers */

static inline T512 __m512 ld_f16x16(const uint8_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

static inline T512 float rd_f16_512(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* One block of 32 values into two vectors (values 0..15, 16..31). `type`
 * is a constant at every call site, so the switch folds away. */
static inline __attribute__((always_inline)) T512 void deq_block_512(int type, const uint8_t *b,
                                                                      __m512 *w0, __m512 *w1)
{
    const __m128i low4 = _mm_set1_epi8(0x0f);
    __m128i qs, lo, hi;
    __m512i il, ih;
    __m512 d = _mm512_set1_ps(rd_f16_512(b));
    uint32_t qh;
    switch (type) {
    case TYPE_Q8_0:
        il = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)));
        ih = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18)));
        *w0 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(il));
        *w1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(ih));
        return;
    case TYPE_Q4_0:
    case TYPE_Q4_1:
        qs = _mm_loadu_si128((const __m128i *)(b + (type == TYPE_Q4_0 ? 2 : 4)));
        break;
    case TYPE_Q5_0:
        qs = _mm_loadu_si128((const __m128i *)(b + 6));
        break;
    default: /* TYPE_Q5_1 */
        qs = _mm_loadu_si128((const __m128i *)(b + 8));
        break;
    }
    lo = _mm_and_si128(qs, low4);
    hi = _mm_and_si128(_mm_srli_epi16(qs, 4), low4);
    il = _mm512_cvtepu8_epi32(lo);
    ih = _mm512_cvtepu8_epi32(hi);
    if (type == TYPE_Q5_0 || type == TYPE_Q5_1) {
        memcpy(&qh, b + (type == TYPE_Q5_0 ? 2 : 4), 4);
        const __m512i five = _mm512_set1_epi32(16);
        il = _mm512_or_si512(il, _mm512_maskz_mov_epi32((__mmask16)(qh & 0xffffu), five));
        ih = _mm512_or_si512(ih, _mm512_maskz_mov_epi32((__mmask16)(qh >> 16), five));
    }
    if (type == TYPE_Q4_0 || type == TYPE_Q5_0) {
        const __m512i off = _mm512_set1_epi32(type == TYPE_Q4_0 ? 8 : 16);
        *w0 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(il, off)));
        *w1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(ih, off)));
    } else {
        __m512 m = _mm512_set1_ps(rd_f16_512(b + 2));
        *w0 = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(il), m);
        *w1 = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(ih), m);
    }
}

static T512 void dequant_row_512(int type, const uint8_t *src, float *dst, int64_t n)
{
    int64_t i = 0;
    if (type == TYPE_F16) {
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, ld_f16x16(src + 2 * i));
        for (; i < n; i++) dst[i] = rd_f16_512(src + 2 * i);
        return;
    }
    size_t bb = block_bytes(type);
    for (int64_t b = 0; b < n / QK; b++) {
        __m512 w0, w1;
        switch (type) {
        case TYPE_Q4_0: deq_block_512(TYPE_Q4_0, src + b * bb, &w0, &w1); break;
        case TYPE_Q4_1: deq_block_512(TYPE_Q4_1, src + b * bb, &w0, &w1); break;
        case TYPE_Q5_0: deq_block_512(TYPE_Q5_0, src + b * bb, &w0, &w1); break;
        case TYPE_Q5_1: deq_block_512(TYPE_Q5_1, src + b * bb, &w0, &w1); break;
        default: deq_block_512(TYPE_Q8_0, src + b * bb, &w0, &w1); break;
        }
        _mm512_storeu_ps(dst + b * QK, w0);
        _mm512_storeu_ps(dst + b * QK + 16, w1);
    }
}

/* f16 to f32 eight at a time; returns how many were converted. */
static T256 int64_t f16_row_256(const uint8_t *src, float *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, ld_f16x8(src + 2 * i));
    return i;
}

int kern_dequant_row(int type, const uint8_t *src, float *dst, int64_t n)
{
    if (n < 0 || (type != TYPE_F32 && type != TYPE_F16 && (!block_bytes(type) || n % QK)))
        return HARK_EINVAL;
    if (type == TYPE_F32) {
        memcpy(dst, src, (size_t)n * 4);
        return 0;
    }
    if (use_simd() == KERN_AVX512) {
        dequant_row_512(type, src, dst, n);
        return 0;
    }
    if (type == TYPE_F16) {
        int64_t i = 0;
        if (use_simd() == KERN_AVX2) i = f16_row_256(src, dst, n);
        for (; i < n; i++) dst[i] = rd_f16(src + 2 * i);
        return 0;
    }
    size_t bb = block_bytes(type);
    for (int64_t b = 0; b < n / QK; b++) deq_block(type, src + b * bb, dst + b * QK);
    return 0;
}

/* GELU (tanh form): 0.5·x·(1 + tanh(u)) = x / (1 + e^(−2u)),
 * u = sqrt(2/π)·(x + 0.044715·x³). */
static inline T512 __m512 gelu_512(__m512 x)
{
    __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    __m512 u = _mm512_fmadd_ps(x3, _mm512_set1_ps(0.044715f), x);
    __m512 e = exp_512(_mm512_mul_ps(u, _mm512_set1_ps(-2.0f * 0.7978845608028654f)));
    return _mm512_div_ps(x, _mm512_add_ps(e, _mm512_set1_ps(1.0f)));
}

static T512 void gelu_row_512(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, gelu_512(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, k, gelu_512(_mm512_maskz_loadu_ps(k, x + i)));
    }
}

static T512 void softmax_512(float *x, int n)
{
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + i));
    float mx = _mm512_reduce_max_ps(vmax);
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    __m512 vm = _mm512_set1_ps(mx), vsum = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 e = exp_512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
        _mm512_storeu_ps(x + i, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp_512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm));
        e = _mm512_maskz_mov_ps(k, e);
        _mm512_mask_storeu_ps(x + i, k, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), inv));
    }
}

static T512 float dot_512(const float *a, const float *b, int n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

/* y += a · x over n floats. */
static T512 void axpy_512(float a, const float *x, float *y, int n)
{
    __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, k,
                              _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(k, x + i), _mm512_maskz_loadu_ps(k, y + i)));
    }
}

/* LayerNorm of one row of n floats. */
static T512 void layernorm_512(const float *x, int n, const float *w, const float *b, float *y)
{
    __m512 s = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) s = _mm512_add_ps(s, _mm512_loadu_ps(x + i));
    float sum = _mm512_reduce_add_ps(s);
    for (; i < n; i++) sum += x[i];
    float mean = sum / (float)n;
    __m512 vm = _mm512_set1_ps(mean);
    s = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 dv = _mm512_sub_ps(_mm512_loadu_ps(x + i), vm);
        s = _mm512_fmadd_ps(dv, dv, s);
    }
    float var = _mm512_reduce_add_ps(s);
    for (; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    float rstd = 1.0f / sqrtf(var / (float)n + 1e-5f);
    __m512 vr = _mm512_set1_ps(rstd);
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm), vr);
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(v, _mm512_loadu_ps(w + i), _mm512_loadu_ps(b + i)));
    }
    for (; i < n; i++) y[i] = (x[i] - mean) * rstd * w[i] + b[i];
}

/* ------------------------------------------------------- AVX2 versions */

/* Tails shorter than a vector go to the scalar loops. */

static inline T256 __m256 gelu_256(__m256 x)
{
    __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    __m256 u = _mm256_fmadd_ps(x3, _mm256_set1_ps(0.044715f), x);
    __m256 e = exp_256(_mm256_mul_ps(u, _mm256_set1_ps(-2.0f * 0.7978845608028654f)));
    return _mm256_div_ps(x, _mm256_add_ps(e, _mm256_set1_ps(1.0f)));
}

static T256 size_t gelu_row_256(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, gelu_256(_mm256_loadu_ps(x + i)));
    return i;
}

static T256 void softmax_256(float *x, int n)
{
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    float mx = hmax_256(vmax);
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    float sum = exp_sum_256(x, n, mx);
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= 1.0f / sum;
}

static T256 float dot_256(const float *a, const float *b, int n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum_256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static T256 void axpy_256(float a, const float *x, float *y, int n)
{
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

static T256 void layernorm_256(const float *x, int n, const float *w, const float *b, float *y)
{
    __m256 s = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(x + i));
    float sum = hsum_256(s);
    for (; i < n; i++) sum += x[i];
    float mean = sum / (float)n;
    __m256 vm = _mm256_set1_ps(mean);
    s = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 dv = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
        s = _mm256_fmadd_ps(dv, dv, s);
    }
    float var = hsum_256(s);
    for (; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    float rstd = 1.0f / sqrtf(var / (float)n + 1e-5f);
    __m256 vr = _mm256_set1_ps(rstd);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vr);
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(v, _mm256_loadu_ps(w + i), _mm256_loadu_ps(b + i)));
    }
    for (; i < n; i++) y[i] = (x[i] - mean) * rstd * w[i] + b[i];
}

/* ------------------------------------------------------ scalar versions */

static float gelu_1(float x)
{
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

static float dot_1(const float *a, const float *b, int n)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static void layernorm_1(const float *x, int n, const float *w, const float *b, float *y)
{
    float sum = 0;
    for (int i = 0; i < n; i++) sum += x[i];
    float mean = sum / (float)n, var = 0;
    for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    float rstd = 1.0f / sqrtf(var / (float)n + 1e-5f);
    for (int i = 0; i < n; i++) y[i] = (x[i] - mean) * rstd * w[i] + b[i];
}

void kern_gelu(float *x, size_t n)
{
    size_t i = 0;
    switch (use_simd()) {
    case KERN_AVX512: gelu_row_512(x, n); return;
    case KERN_AVX2: i = gelu_row_256(x, n); break;
    }
    for (; i < n; i++) x[i] = gelu_1(x[i]);
}

void kern_softmax(float *x, int n)
{
    if (n <= 0) return;
    switch (use_simd()) {
    case KERN_AVX512: softmax_512(x, n); return;
    case KERN_AVX2: softmax_256(x, n); return;
    }
    float mx = x[0], sum = 0;
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

/* ------------------------------------------------------------ median of 7 */

/* The comparators of a 7-input sorting network that decide the middle
 * value (Knuth's 16-comparator network without the two last ones that do
 * not touch it). */
static const unsigned char med7_net[14][2] = {{0, 6}, {2, 3}, {4, 5}, {0, 2}, {1, 4}, {3, 6}, {0, 1},
                                             {2, 5}, {3, 4}, {1, 2}, {4, 6}, {2, 3}, {4, 5}, {3, 4}};

static float median7_1(float *v)
{
    for (int k = 0; k < 14; k++) {
        float a = v[med7_net[k][0]], b = v[med7_net[k][1]];
        v[med7_net[k][0]] = a < b ? a : b;
        v[med7_net[k][1]] = a < b ? b : a;
    }
    return v[3];
}

/* Sixteen medians at once: y[j..j+15] from x[j-3..j+18]. */
static T512 void median7_512(const float *x, float *y, int j0, int j1)
{
    int j = j0;
    for (; j + 16 <= j1; j += 16) {
        __m512 v[7];
        for (int t = 0; t < 7; t++) v[t] = _mm512_loadu_ps(x + j - 3 + t);
        for (int k = 0; k < 14; k++) {
            __m512 a = v[med7_net[k][0]], b = v[med7_net[k][1]];
            v[med7_net[k][0]] = _mm512_min_ps(a, b);
            v[med7_net[k][1]] = _mm512_max_ps(a, b);
        }
        _mm512_storeu_ps(y + j, v[3]);
    }
    for (; j < j1; j++) {
        float w[7];
        memcpy(w, x + j - 3, sizeof w);
        y[j] = median7_1(w);
    }
}

/* Eight medians at once, from j0 while eight fit before j1; returns where
 * it stopped. */
static T256 int median7_256(const float *x, float *y, int j0, int j1)
{
    int j = j0;
    for (; j + 8 <= j1; j += 8) {
        __m256 v[7];
        for (int t = 0; t < 7; t++) v[t] = _mm256_loadu_ps(x + j - 3 + t);
        for (int k = 0; k < 14; k++) {
            __m256 a = v[med7_net[k][0]], b = v[med7_net[k][1]];
            v[med7_net[k][0]] = _mm256_min_ps(a, b);
            v[med7_net[k][1]] = _mm256_max_ps(a, b);
        }
        _mm256_storeu_ps(y + j, v[3]);
    }
    return j;
}

void kern_median7(const float *x, float *y, int n)
{
    if (n <= 3) {
        memmove(y, x, (size_t)(n > 0 ? n : 0) * sizeof *y);
        return;
    }
    /* The three values at each end see the row reflected about its ends. */
    for (int j = 0; j < n; j = j == 2 && n > 6 ? n - 3 : j + 1) {
        float w[7];
        for (int t = -3; t <= 3; t++) {
            int i = j + t;
            if (i < 0) i = -i;
            else if (i >= n) i = 2 * (n - 1) - i;
            w[t + 3] = x[i];
        }
        y[j] = median7_1(w);
    }
    if (n <= 6) return;
    int j0 = 3;
    switch (use_simd()) {
    case KERN_AVX512: median7_512(x, y, 3, n - 3); return;
    case KERN_AVX2: j0 = median7_256(x, y, 3, n - 3); break;
    }
    for (int j = j0; j < n - 3; j++) {
        float w[7];
        memcpy(w, x + j - 3, sizeof w);
        y[j] = median7_1(w);
    }
}

static float dot(const float *a, const float *b, int n)
{
    switch (use_simd()) {
    case KERN_AVX512: return dot_512(a, b, n);
    case KERN_AVX2: return dot_256(a, b, n);
    default: return dot_1(a, b, n);
    }
}

static void axpy(float a, const float *x, float *y, int n)
{
    switch (use_simd()) {
    case KERN_AVX512: axpy_512(a, x, y, n); return;
    case KERN_AVX2: axpy_256(a, x, y, n); return;
    }
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* ------------------------------------------------------------------ lstm */

/* σ(x) = 1 / (1 + e^−x); tanh(x) = 2σ(2x) − 1. */
static inline T512 __m512 sigmoid_512(__m512 x)
{
    __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, exp_512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

static inline T512 __m512 tanh_512(__m512 x)
{
    __m512 s = sigmoid_512(_mm512_add_ps(x, x));
    return _mm512_fmsub_ps(_mm512_set1_ps(2.0f), s, _mm512_set1_ps(1.0f));
}

/* z = pre + W_hh·h as H axpys over rows of W_hhᵀ, 128 outputs (8
 * registers) at a time so that no horizontal sum is needed. */
static T512 void lstm_step_512(int H, const float *w_hh_t, const float *pre, float *h, float *c, float *z)
{
    const int G = 4 * H;
    for (int j0 = 0; j0 < G; j0 += 128) {
        int nv = (G - j0) / 16 < 8 ? (G - j0) / 16 : 8;
        __m512 acc[8];
        for (int v = 0; v < nv; v++) acc[v] = _mm512_loadu_ps(pre + j0 + 16 * v);
        for (int k = 0; k < H; k++) {
            __m512 hk = _mm512_set1_ps(h[k]);
            const float *w = w_hh_t + (size_t)k * G + j0;
            for (int v = 0; v < nv; v++) acc[v] = _mm512_fmadd_ps(hk, _mm512_loadu_ps(w + 16 * v), acc[v]);
        }
        for (int v = 0; v < nv; v++) _mm512_storeu_ps(z + j0 + 16 * v, acc[v]);
    }
    for (int j = 0; j < H; j += 16) {
        __m512 i = sigmoid_512(_mm512_loadu_ps(z + j));
        __m512 f = sigmoid_512(_mm512_loadu_ps(z + H + j));
        __m512 g = tanh_512(_mm512_loadu_ps(z + 2 * H + j));
        __m512 o = sigmoid_512(_mm512_loadu_ps(z + 3 * H + j));
        __m512 cn = _mm512_fmadd_ps(f, _mm512_loadu_ps(c + j), _mm512_mul_ps(i, g));
        _mm512_storeu_ps(c + j, cn);
        _mm512_storeu_ps(h + j, _mm512_mul_ps(o, tanh_512(cn)));
    }
}

static inline T256 __m256 sigmoid_256(__m256 x)
{
    __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, exp_256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

static inline T256 __m256 tanh_256(__m256 x)
{
    __m256 s = sigmoid_256(_mm256_add_ps(x, x));
    return _mm256_fmsub_ps(_mm256_set1_ps(2.0f), s, _mm256_set1_ps(1.0f));
}

/* lstm_step_512 with 64 outputs (8 registers) at a time. */
static T256 void lstm_step_256(int H, const float *w_hh_t, const float *pre, float *h, float *c, float *z)
{
    const int G = 4 * H;
    for (int j0 = 0; j0 < G; j0 += 64) {
        int nv = (G - j0) / 8 < 8 ? (G - j0) / 8 : 8;
        __m256 acc[8];
        for (int v = 0; v < nv; v++) acc[v] = _mm256_loadu_ps(pre + j0 + 8 * v);
        for (int k = 0; k < H; k++) {
            __m256 hk = _mm256_set1_ps(h[k]);
            const float *w = w_hh_t + (size_t)k * G + j0;
            for (int v = 0; v < nv; v++) acc[v] = _mm256_fmadd_ps(hk, _mm256_loadu_ps(w + 8 * v), acc[v]);
        }
        for (int v = 0; v < nv; v++) _mm256_storeu_ps(z + j0 + 8 * v, acc[v]);
    }
    for (int j = 0; j < H; j += 8) {
        __m256 i = sigmoid_256(_mm256_loadu_ps(z + j));
        __m256 f = sigmoid_256(_mm256_loadu_ps(z + H + j));
        __m256 g = tanh_256(_mm256_loadu_ps(z + 2 * H + j));
        __m256 o = sigmoid_256(_mm256_loadu_ps(z + 3 * H + j));
        __m256 cn = _mm256_fmadd_ps(f, _mm256_loadu_ps(c + j), _mm256_mul_ps(i, g));
        _mm256_storeu_ps(c + j, cn);
        _mm256_storeu_ps(h + j, _mm256_mul_ps(o, tanh_256(cn)));
    }
}

static float sigmoid_1(float x) { return 1.0f / (1.0f + expf(-x)); }

void kern_lstm_step(int H, const float *w_hh_t, const float *pre, float *h, float *c, float *z)
{
    assert(H > 0 && H % 16 == 0);
    switch (use_simd()) {
    case KERN_AVX512: lstm_step_512(H, w_hh_t, pre, h, c, z); return;
    case KERN_AVX2: lstm_step_256(H, w_hh_t, pre, h, c, z); return;
    }
    const int G = 4 * H;
    memcpy(z, pre, (size_t)G * sizeof(float));
    for (int k = 0; k < H; k++) axpy(h[k], w_hh_t + (size_t)k * G, z, G);
    for (int j = 0; j < H; j++) {
        float i = sigmoid_1(z[j]), f = sigmoid_1(z[H + j]), g = tanhf(z[2 * H + j]);
        float o = sigmoid_1(z[3 * H + j]);
        c[j] = f * c[j] + i * g;
        h[j] = o * tanhf(c[j]);
    }
}

/* ------------------------------------------------------------------ GEMM */

/* Portable product: C = alpha·A·op(B) + beta·C. */
static void sgemm_portable(int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                           const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f) memset(c, 0, (size_t)N * sizeof *c);
        else if (beta != 1.0f)
            for (int j = 0; j < N; j++) c[j] *= beta;
        const float *a = A + (size_t)i * lda;
        if (trans_b) {
            for (int j = 0; j < N; j++) c[j] += alpha * dot(a, B + (size_t)j * ldb, K);
        } else {
            for (int k = 0; k < K; k++) axpy(alpha * a[k], B + (size_t)k * ldb, c, N);
        }
    }
}

/* Below this many rows the portable kernel beats a library call. */
#define BLAS_MIN_ROWS 16

void kern_sgemm(int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        sgemm_portable(trans_b, M, N, 0, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (M >= BLAS_MIN_ROWS && blas_on()) {
        blas_sgemm(trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    sgemm_portable(trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* --------------------------------------------------------------- linear */

struct lin_args {
    struct kern_pool *pool;
    const struct tensor *w;
    const float *bias;
    const float *x;
    float *y;
    int m, K, N;
    int chunk;   /* weight rows per task */
    int flags;
    size_t row_bytes;
};

/* Bias and activation for a finished tile: columns j0 .. j0+n-1 of every
 * row of y (m, N) hold x·Wᵀ (plus y's old value when accumulating). */
static void finish_tile(const struct lin_args *a, int j0, int n)
{
    for (int i = 0; i < a->m; i++) {
        float *y = a->y + (size_t)i * a->N + j0;
        if (a->bias)
            for (int j = 0; j < n; j++) y[j] += a->bias[j0 + j];
        if (a->flags & KERN_GELU) kern_gelu(y, (size_t)n);
    }
}

/* The GEMV prefetches weights this many bytes ahead of the ones it reads:
 * the hardware prefetchers alone leave it at about half the bandwidth the
 * caches and memory can give. */
#define GEMV_PREFETCH_BYTES 8192

/* GEMV, AVX-512: G consecutive weight rows from j against M activation
 * rows; M and G are constants at every call site so the G·M accumulators
 * live in registers, and G·M >= 4 independent FMA chains hide latency. */
static inline __attribute__((always_inline)) T512 void gemv_group_512(const int type, const int M, const int G,
                                                                       const struct lin_args *a, int j)
{
    const int K = a->K;
    __m512 acc[8][KERN_GEMV_MAX_ROWS];
#pragma GCC unroll 8
    for (int g = 0; g < G; g++)
#pragma GCC unroll 8
        for (int r = 0; r < M; r++) acc[g][r] = _mm512_setzero_ps();
    const uint8_t *w0p = a->w->data + (size_t)j * a->row_bytes;
    if (type == TYPE_F32 || type == TYPE_F16) {
        int k = 0;
        for (; k + 16 <= K; k += 16) {
#pragma GCC unroll 8
            for (int g = 0; g < G; g++) {
                const uint8_t *wr = w0p + (size_t)g * a->row_bytes;
                _mm_prefetch((const char *)wr + GEMV_PREFETCH_BYTES + (type == TYPE_F32 ? 4 : 2) * k, _MM_HINT_T0);
                __m512 w = type == TYPE_F32 ? _mm512_loadu_ps((const float *)wr + k) : ld_f16x16(wr + 2 * k);
#pragma GCC unroll 8
                for (int r = 0; r < M; r++)
                    acc[g][r] = _mm512_fmadd_ps(w, _mm512_loadu_ps(a->x + (size_t)r * K + k), acc[g][r]);
            }
        }
        if (k < K) {
            __mmask16 km = (__mmask16)((1u << (K - k)) - 1);
#pragma GCC unroll 8
            for (int g = 0; g < G; g++) {
                const uint8_t *wr = w0p + (size_t)g * a->row_bytes;
                __m512 w = type == TYPE_F32 ? _mm512_maskz_loadu_ps(km, (const float *)wr + k)
                                            : _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(km, wr + 2 * k));
#pragma GCC unroll 8
                for (int r = 0; r < M; r++)
                    acc[g][r] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(km, a->x + (size_t)r * K + k), acc[g][r]);
            }
        }
    } else {
        const size_t bb = type == TYPE_Q4_0   ? Q4_0_BYTES
                          : type == TYPE_Q4_1 ? Q4_1_BYTES
                          : type == TYPE_Q5_0 ? Q5_0_BYTES
                          : type == TYPE_Q5_1 ? Q5_1_BYTES
                                              : Q8_0_BYTES;
        for (int b = 0; b < K / QK; b++) {
#pragma GCC unroll 8
            for (int g = 0; g < G; g++) {
                __m512 w0, w1;
                _mm_prefetch((const char *)w0p + (size_t)g * a->row_bytes + b * bb + GEMV_PREFETCH_BYTES, _MM_HINT_T0);
                deq_block_512(type, w0p + (size_t)g * a->row_bytes + b * bb, &w0, &w1);
#pragma GCC unroll 8
                for (int r = 0; r < M; r++) {
                    const float *xr = a->x + (size_t)r * K + b * QK;
                    acc[g][r] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xr), acc[g][r]);
                    acc[g][r] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xr + 16), acc[g][r]);
                }
            }
        }
    }
#pragma GCC unroll 8
    for (int g = 0; g < G; g++) {
#pragma GCC unroll 8
        for (int r = 0; r < M; r++) {
            float *y = a->y + (size_t)r * a->N + j + g;
            float v = _mm512_reduce_add_ps(acc[g][r]);
            *y = (a->flags & KERN_ACCUM) ? *y + v : v;
        }
    }
}

/* Rows j0..j1 for M activation rows: groups of G = 8/M weight rows (at
 * least 1), then single rows. */
static inline __attribute__((always_inline)) T512 void gemv_m_512(const int type, const int M,
                                                                   const struct lin_args *a, int j0, int j1)
{
    const int G = M <= 2 ? 4 : M <= 4 ? 3 : 2;
    int j = j0;
    for (; j + G <= j1; j += G) gemv_group_512(type, M, G, a, j);
    for (; j < j1; j++) gemv_group_512(type, M, 1, a, j);
}

static inline __attribute__((always_inline)) T512 void gemv_t_512(const int type, const struct lin_args *a,
                                                                   int j0, int j1)
{
    switch (a->m) {
    case 1: gemv_m_512(type, 1, a, j0, j1); break;
    case 2: gemv_m_512(type, 2, a, j0, j1); break;
    case 3: gemv_m_512(type, 3, a, j0, j1); break;
    case 4: gemv_m_512(type, 4, a, j0, j1); break;
    case 5: gemv_m_512(type, 5, a, j0, j1); break;
    case 6: gemv_m_512(type, 6, a, j0, j1); break;
    case 7: gemv_m_512(type, 7, a, j0, j1); break;
    default: gemv_m_512(type, 8, a, j0, j1); break;
    }
}

static T512 void gemv_512(const struct lin_args *a, int j0, int j1)
{
    switch (a->w->type) {
    case TYPE_F32: gemv_t_512(TYPE_F32, a, j0, j1); break;
    case TYPE_F16: gemv_t_512(TYPE_F16, a, j0, j1); break;
    case TYPE_Q4_0: gemv_t_512(TYPE_Q4_0, a, j0, j1); break;
    case TYPE_Q4_1: gemv_t_512(TYPE_Q4_1, a, j0, j1); break;
    case TYPE_Q5_0: gemv_t_512(TYPE_Q5_0, a, j0, j1); break;
    case TYPE_Q5_1: gemv_t_512(TYPE_Q5_1, a, j0, j1); break;
    default: gemv_t_512(TYPE_Q8_0, a, j0, j1); break;
    }
}

/* GEMV, AVX2, f32 or f16 weights: as gemv_group_512, 8 floats a vector,
 * with at most 8 accumulators (G·M) of the 16 registers. */
static inline __attribute__((always_inline)) T256 void gemv_group_256(const int f16, const int M, const int G,
                                                                       const struct lin_args *a, int j)
{
    const int K = a->K;
    __m256 acc[4][KERN_GEMV_MAX_ROWS];
#pragma GCC unroll 4
    for (int g = 0; g < G; g++)
#pragma GCC unroll 8
        for (int r = 0; r < M; r++) acc[g][r] = _mm256_setzero_ps();
    const uint8_t *w0p = a->w->data + (size_t)j * a->row_bytes;
    int k = 0;
    for (; k + 8 <= K; k += 8) {
#pragma GCC unroll 4
        for (int g = 0; g < G; g++) {
            const uint8_t *wr = w0p + (size_t)g * a->row_bytes;
            _mm_prefetch((const char *)wr + GEMV_PREFETCH_BYTES + (f16 ? 2 : 4) * k, _MM_HINT_T0);
            __m256 w = f16 ? ld_f16x8(wr + 2 * k) : _mm256_loadu_ps((const float *)wr + k);
#pragma GCC unroll 8
            for (int r = 0; r < M; r++)
                acc[g][r] = _mm256_fmadd_ps(w, _mm256_loadu_ps(a->x + (size_t)r * K + k), acc[g][r]);
        }
    }
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
        const uint8_t *wr = w0p + (size_t)g * a->row_bytes;
#pragma GCC unroll 8
        for (int r = 0; r < M; r++) {
            float *y = a->y + (size_t)r * a->N + j + g;
            float v = hsum_256(acc[g][r]);
            for (int t = k; t < K; t++)
                v += (f16 ? rd_f16(wr + 2 * t) : ((const float *)wr)[t]) * a->x[(size_t)r * K + t];
            *y = (a->flags & KERN_ACCUM) ? *y + v : v;
        }
    }
}

static inline __attribute__((always_inline)) T256 void gemv_m_256(const int f16, const int M,
                                                                   const struct lin_args *a, int j0, int j1)
{
    const int G = M <= 2 ? 4 : M <= 4 ? 2 : 1;
    int j = j0;
    for (; j + G <= j1; j += G) gemv_group_256(f16, M, G, a, j);
    for (; j < j1; j++) gemv_group_256(f16, M, 1, a, j);
}

static T256 void gemv_256(const int f16, const struct lin_args *a, int j0, int j1)
{
    switch (a->m) {
    case 1: gemv_m_256(f16, 1, a, j0, j1); break;
    case 2: gemv_m_256(f16, 2, a, j0, j1); break;
    case 3: gemv_m_256(f16, 3, a, j0, j1); break;
    case 4: gemv_m_256(f16, 4, a, j0, j1); break;
    case 5: gemv_m_256(f16, 5, a, j0, j1); break;
    case 6: gemv_m_256(f16, 6, a, j0, j1); break;
    case 7: gemv_m_256(f16, 7, a, j0, j1); break;
    default: gemv_m_256(f16, 8, a, j0, j1); break;
    }
}

static void gemv_task(void *arg, int task, int thread)
{
    struct lin_args *a = arg;
    int j0 = task * a->chunk, j1 = j0 + a->chunk < a->N ? j0 + a->chunk : a->N;
    int isa = use_simd(), type = a->w->type;
    if (isa == KERN_AVX512) {
        gemv_512(a, j0, j1);
    } else if (isa == KERN_AVX2 && (type == TYPE_F16 || type == TYPE_F32)) {
        if (type == TYPE_F16) gemv_256(1, a, j0, j1);
        else gemv_256(0, a, j0, j1);
    } else {
        float *wrow = kern_pool_scratch(a->pool, thread); /* (K) */
        for (int j = j0; j < j1; j++) {
            kern_dequant_row(a->w->type, a->w->data + (size_t)j * a->row_bytes, wrow, a->K);
            for (int r = 0; r < a->m; r++) {
                float *y = a->y + (size_t)r * a->N + j;
                float v = dot(wrow, a->x + (size_t)r * a->K, a->K);
                *y = (a->flags & KERN_ACCUM) ? *y + v : v;
            }
        }
    }
    finish_tile(a, j0, j1 - j0);
}

/* GEMM: weight rows j0 .. j0+chunk-1 converted to f32 in the thread's
 * scratch (chunk, K), then y[:, j0..] (+)= x · tileᵀ. */
static void gemm_task(void *arg, int task, int thread)
{
    struct lin_args *a = arg;
    int j0 = task * a->chunk, n = j0 + a->chunk < a->N ? a->chunk : a->N - j0;
    const float *tile;
    if (a->w->type == TYPE_F32) {
        tile = a->w->f32 + (size_t)j0 * a->K;
    } else {
        float *s = kern_pool_scratch(a->pool, thread);
        for (int j = 0; j < n; j++)
            kern_dequant_row(a->w->type, a->w->data + (size_t)(j0 + j) * a->row_bytes,
                             s + (size_t)j * a->K, a->K);
        tile = s;
    }
    kern_sgemm(1, a->m, n, a->K, 1.0f, a->x, a->K, tile, a->K, (a->flags & KERN_ACCUM) ? 1.0f : 0.0f,
               a->y + j0, a->N);
    finish_tile(a, j0, n);
}

void kern_linear(struct kern_pool *pool, const struct tensor *w, const float *bias, const float *x,
                 int m, float *y, int flags)
{
    struct lin_args a = {
        .pool = pool, .w = w, .bias = bias, .x = x, .y = y, .m = m,
        .K = (int)w->ne[0], .N = (int)w->ne[1], .flags = flags,
        .row_bytes = kern_row_bytes(w->type, w->ne[0]),
    };
    int nt = kern_pool_threads(pool);
    if (m <= 0 || a.N <= 0) return;
    /* Quantized weights as ggml multiplies them; dequantized to f32 only
     * when the activations' buffer cannot be had. */
    if (quant_is_block_type(w->type) && quant_linear(pool, w, bias, x, m, y, flags) == 0) return;
    if (m <= KERN_GEMV_MAX_ROWS) {
        /* Enough tasks to balance threads that other work slows down. */
        int chunk = nt == 1 ? a.N : (a.N + nt * 8 - 1) / (nt * 8);
        a.chunk = chunk < 8 ? 8 : chunk;
        kern_pool_run(pool, gemv_task, &a, (a.N + a.chunk - 1) / a.chunk);
        return;
    }
    /* Tiles: one per thread, or the same number for every thread when a
     * thread's share does not fit the scratch. Every sgemm call packs all
     * of x again, so more, smaller tiles cost more than the balancing they
     * buy. */
    int cap = w->type == TYPE_F32 ? a.N : (int)(KERN_SCRATCH_FLOATS / (unsigned)(a.K > 0 ? a.K : 1));
    if (cap < 1) cap = 1;
    int share = (a.N + nt - 1) / nt;
    int rounds = (share + cap - 1) / cap;
    int per = (a.N + nt * rounds - 1) / (nt * rounds);
    per = (per + 15) / 16 * 16;
    if (per > cap) per = cap;
    a.chunk = per;
    kern_pool_run(pool, gemm_task, &a, (a.N + per - 1) / per);
}

/* ------------------------------------------------------------ layernorm */

struct ln_args {
    const float *x, *w, *b;
    float *y;
    int m, n, rows_per_task;
};

static void ln_task(void *arg, int task, int thread)
{
    struct ln_args *a = arg;
    int i0 = task * a->rows_per_task, i1 = i0 + a->rows_per_task < a->m ? i0 + a->rows_per_task : a->m;
    int isa = use_simd();
    for (int i = i0; i < i1; i++) {
        const float *x = a->x + (size_t)i * a->n;
        float *y = a->y + (size_t)i * a->n;
        if (isa == KERN_AVX512) layernorm_512(x, a->n, a->w, a->b, y);
        else if (isa == KERN_AVX2) layernorm_256(x, a->n, a->w, a->b, y);
        else layernorm_1(x, a->n, a->w, a->b, y);
    }
}

void kern_layernorm(struct kern_pool *pool, const float *x, int m, int n, const float *w,
                    const float *b, float *y)
{
    struct ln_args a = {.x = x, .w = w, .b = b, .y = y, .m = m, .n = n};
    int nt = kern_pool_threads(pool);
    a.rows_per_task = m < 64 ? m : (m + 4 * nt - 1) / (4 * nt);
    if (a.rows_per_task < 1) a.rows_per_task = 1;
    kern_pool_run(pool, ln_task, &a, (m + a.rows_per_task - 1) / a.rows_per_task);
}
