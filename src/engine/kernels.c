/*
 * kernels.c: matrix products, normalisation, activations and attention for
 * the forward pass, and the thread pool they run on.
 *
 * Two implementations of every inner loop live here: AVX-512 (with F16C and
 * FMA), chosen at run time with __builtin_cpu_supports and compiled through
 * __attribute__((target)) because the build uses no -march flag, and a
 * portable scalar one that the tests compare against it. Dense products with
 * many rows (the encoder, a decoder prompt) convert weight tiles to f32 and
 * call OpenBLAS's cblas_sgemm, which is loaded with dlopen so that
 * OPENBLAS_CORETYPE can be set before it initialises (its AVX-512 kernels are
 * about twice as fast on Zen 5 as the AVX2 ones it would pick by itself).
 * OpenBLAS runs single-threaded; parallelism comes from this file's pool,
 * which splits a product's output columns (weight rows) across threads.
 * Products with few rows (decoding one token) are bound by memory bandwidth
 * and read f16 weights directly. Quantized weights go to quant.c, which
 * multiplies them in integers as ggml does; the dequantizing paths here
 * remain for when its buffer cannot be had.
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
#include <dlfcn.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "hark.h"
#include "model.h"
#include "quant.h"

#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,f16c,fma")))

/* ------------------------------------------------- run-time configuration */

typedef void (*sgemm_fn)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb, float beta, float *c,
                         int ldc);
typedef void (*set_threads_fn)(int n);

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_have_simd;   /* the CPU has what the AVX-512 kernels use */
static sgemm_fn g_sgemm;  /* OpenBLAS, or NULL */
static atomic_int g_simd_on;
static atomic_int g_blas_on;

static void kern_init(void)
{
    __builtin_cpu_init();
    /* Every CPU with these AVX-512 subsets also has F16C and FMA (which
     * clang's __builtin_cpu_supports cannot name). */
    g_have_simd = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    atomic_store(&g_simd_on, g_have_simd);

    /* OpenBLAS reads OPENBLAS_CORETYPE once, when it is loaded. hark loads
     * its own instance and chooses its kernels from the CPU's features: the
     * AVX-512 ("SkylakeX") ones wherever the CPU has AVX-512, whatever a
     * machine-wide OPENBLAS_CORETYPE says for other programs. The choice can
     * be forced with HARK_OPENBLAS_CORETYPE. */
    const char *coretype = getenv("HARK_OPENBLAS_CORETYPE");
    if (coretype && *coretype)
        setenv("OPENBLAS_CORETYPE", coretype, 1);
    else if (__builtin_cpu_supports("avx512f"))
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    const char *no_blas = getenv("HARK_NO_BLAS");
    void *lib = (no_blas && *no_blas && *no_blas != '0') ? NULL
                                                          : dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (lib) {
        set_threads_fn set_threads = NULL;
        *(void **)&g_sgemm = dlsym(lib, "cblas_sgemm");
        *(void **)&set_threads = dlsym(lib, "openblas_set_num_threads");
        if (set_threads) set_threads(1);
        else g_sgemm = NULL; /* an OpenBLAS we cannot keep single-threaded */
    }
    atomic_store(&g_blas_on, g_sgemm != NULL);
}

static inline int use_simd(void)
{
    pthread_once(&g_once, kern_init);
    return atomic_load_explicit(&g_simd_on, memory_order_relaxed);
}

static inline int use_blas(void)
{
    pthread_once(&g_once, kern_init);
    return atomic_load_explicit(&g_blas_on, memory_order_relaxed);
}

int kern_simd(void) { return use_simd(); }
int kern_blas(void) { return use_blas(); }

void kern_set_simd(int on)
{
    pthread_once(&g_once, kern_init);
    atomic_store(&g_simd_on, on && g_have_simd);
}

void kern_set_blas(int on)
{
    pthread_once(&g_once, kern_init);
    atomic_store(&g_blas_on, on && g_sgemm != NULL);
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

void kern_f32_to_f16_row(const float *src, uint16_t *dst, size_t n)
{
    if (use_simd()) {
        f32_to_f16_row_512(src, dst, n);
        return;
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

void kern_round_f16(float *x, size_t n)
{
    if (use_simd()) {
        round_f16_512(x, n);
        return;
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

int kern_dequant_row(int type, const uint8_t *src, float *dst, int64_t n)
{
    if (n < 0 || (type != TYPE_F32 && type != TYPE_F16 && (!block_bytes(type) || n % QK)))
        return HARK_EINVAL;
    if (type == TYPE_F32) {
        memcpy(dst, src, (size_t)n * 4);
        return 0;
    }
    if (use_simd()) {
        dequant_row_512(type, src, dst, n);
        return 0;
    }
    if (type == TYPE_F16) {
        for (int64_t i = 0; i < n; i++) dst[i] = rd_f16(src + 2 * i);
        return 0;
    }
    size_t bb = block_bytes(type);
    for (int64_t b = 0; b < n / QK; b++) deq_block(type, src + b * bb, dst + b * QK);
    return 0;
}

/* e^x for a vector: x = n·ln2 + r, a degree-6 polynomial for e^r on
 * |r| <= ln2/2 (Cephes' expf coefficients), scaled by 2^n. Relative error
 * about 2 ulp; inputs below -104 give 0. */
static inline T512 __m512 exp_512(__m512 x)
{
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.72f)), _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
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
    if (use_simd()) {
        gelu_row_512(x, n);
        return;
    }
    for (size_t i = 0; i < n; i++) x[i] = gelu_1(x[i]);
}

void kern_softmax(float *x, int n)
{
    if (n <= 0) return;
    if (use_simd()) {
        softmax_512(x, n);
        return;
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
    if (use_simd()) {
        median7_512(x, y, 3, n - 3);
        return;
    }
    for (int j = 3; j < n - 3; j++) {
        float w[7];
        memcpy(w, x + j - 3, sizeof w);
        y[j] = median7_1(w);
    }
}

static float dot(const float *a, const float *b, int n)
{
    return use_simd() ? dot_512(a, b, n) : dot_1(a, b, n);
}

static void axpy(float a, const float *x, float *y, int n)
{
    if (use_simd()) {
        axpy_512(a, x, y, n);
        return;
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

static float sigmoid_1(float x) { return 1.0f / (1.0f + expf(-x)); }

void kern_lstm_step(int H, const float *w_hh_t, const float *pre, float *h, float *c, float *z)
{
    assert(H > 0 && H % 16 == 0);
    if (use_simd()) {
        lstm_step_512(H, w_hh_t, pre, h, c, z);
        return;
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

/* ------------------------------------------------------------------ pool */

struct kern_pool {
    int n_threads;
    pthread_t *threads;
    float **scratch;          /* n_threads buffers of KERN_SCRATCH_FLOATS */
    void *shared;             /* kern_pool_shared's buffer */
    size_t shared_bytes;
    int n_started;

    /* The current job. `ticket` packs the job's generation, its task count
     * and the next unclaimed task index (TICKET_* below) into one word, so
     * that a thread claims a task of one particular job with a single
     * compare-and-swap that also checks the count: a thread still holding a
     * previous job's ticket can neither claim a task of the new job nor
     * judge the old one by the new one's count. */
    _Atomic uint64_t ticket;
    _Atomic(kern_task_fn) fn;
    _Atomic(void *) arg;
    atomic_int done;          /* tasks of the current job finished */
    uint32_t gen;             /* the caller's generation counter */

    pthread_mutex_t mu;
    pthread_cond_t cv_work;
    atomic_int n_sleeping;    /* workers blocked in cv_work */
    atomic_int quit;
};

struct worker_arg {
    struct kern_pool *pool;
    int id;
};

/* Spin this many pause instructions before sleeping: decoding issues a job
 * every few microseconds, faster than a futex wake-up. */
#define POOL_SPIN 20000

/* ticket = generation (24 bits) | task count (20 bits) | next index (20). */
#define TICKET_BITS 20
#define TICKET_MASK ((1u << TICKET_BITS) - 1)
#define TICKET_GEN_MASK 0xffffffu
#define TICKET_GEN(v) ((uint32_t)((v) >> (2 * TICKET_BITS)))
#define TICKET_COUNT(v) ((uint32_t)((v) >> TICKET_BITS) & TICKET_MASK)
#define TICKET_INDEX(v) ((uint32_t)(v) & TICKET_MASK)

/* Claims and runs tasks of job generation g until none is left. */
static void run_tasks(struct kern_pool *p, uint32_t g, int thread)
{
    uint64_t v = atomic_load(&p->ticket);
    for (;;) {
        if (TICKET_GEN(v) != g) return;
        uint32_t idx = TICKET_INDEX(v);
        if (idx >= TICKET_COUNT(v)) return;
        if (!atomic_compare_exchange_weak(&p->ticket, &v, v + 1)) continue;
        /* The job cannot finish before this task does, so fn and arg are
         * still this job's. */
        kern_task_fn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
        fn(atomic_load_explicit(&p->arg, memory_order_relaxed), (int)idx, thread);
        atomic_fetch_add(&p->done, 1);
        v = atomic_load(&p->ticket);
    }
}

static void *worker_main(void *v)
{
    struct kern_pool *p = ((struct worker_arg *)v)->pool;
    int id = ((struct worker_arg *)v)->id;
    free(v);
    uint32_t seen = 0;
    for (;;) {
        uint32_t g = TICKET_GEN(atomic_load(&p->ticket));
        for (int spin = 0; g == seen && spin < POOL_SPIN; spin++) {
            __builtin_ia32_pause();
            g = TICKET_GEN(atomic_load(&p->ticket));
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->n_sleeping, 1);
            while ((g = TICKET_GEN(atomic_load(&p->ticket))) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->cv_work, &p->mu);
            atomic_fetch_sub(&p->n_sleeping, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) break;
        seen = g;
        run_tasks(p, g, id);
    }
    return NULL;
}

struct kern_pool *kern_pool_new(int n_threads)
{
    if (n_threads < 1) return NULL;
    pthread_once(&g_once, kern_init);
    struct kern_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    p->scratch = calloc((size_t)n_threads, sizeof *p->scratch);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->scratch || !p->threads) goto fail;
    for (int i = 0; i < n_threads; i++) {
        p->scratch[i] = aligned_alloc(64, (size_t)KERN_SCRATCH_FLOATS * sizeof(float));
        if (!p->scratch[i]) goto fail;
    }
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *wa = malloc(sizeof *wa);
        if (!wa) goto fail;
        wa->pool = p;
        wa->id = i;
        if (pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            goto fail;
        }
        p->n_started++;
    }
    return p;
fail:
    kern_pool_free(p);
    return NULL;
}

void kern_pool_free(struct kern_pool *p)
{
    if (!p) return;
    if (p->n_started > 0) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->quit, 1);
        pthread_cond_broadcast(&p->cv_work);
        pthread_mutex_unlock(&p->mu);
        for (int i = 1; i <= p->n_started; i++) pthread_join(p->threads[i], NULL);
    }
    if (p->scratch)
        for (int i = 0; i < p->n_threads; i++) free(p->scratch[i]);
    free(p->scratch);
    free(p->shared);
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    free(p);
}

int kern_pool_threads(const struct kern_pool *p) { return p->n_threads; }

float *kern_pool_scratch(struct kern_pool *p, int thread) { return p->scratch[thread]; }

void *kern_pool_shared(struct kern_pool *p, size_t bytes)
{
    if (bytes <= p->shared_bytes) return p->shared;
    size_t want = bytes + bytes / 4;
    want = (want + 63) / 64 * 64;
    void *b = aligned_alloc(64, want);
    if (!b) return NULL;
    free(p->shared);
    p->shared = b;
    p->shared_bytes = want;
    return b;
}

/* The caller publishes the job, runs tasks itself, and waits only for tasks
 * other threads have claimed: a worker that the OS has not scheduled (the
 * machine may be busy) never holds the job up. */
void kern_pool_run(struct kern_pool *p, kern_task_fn fn, void *arg, int n_tasks)
{
    if (n_tasks <= 0) return;
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    assert((uint32_t)n_tasks <= TICKET_MASK);
    uint32_t g = ++p->gen & TICKET_GEN_MASK;
    if (g == 0) g = ++p->gen & TICKET_GEN_MASK; /* workers start having "seen" generation 0 */
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store(&p->ticket, (uint64_t)g << (2 * TICKET_BITS) | (uint64_t)n_tasks << TICKET_BITS);
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv_work);
        pthread_mutex_unlock(&p->mu);
    }
    run_tasks(p, g, 0);
    for (int spin = 0; atomic_load(&p->done) < n_tasks; spin++) {
        __builtin_ia32_pause();
        if (spin > POOL_SPIN) sched_yield();
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
    if (M >= BLAS_MIN_ROWS && use_blas()) {
        g_sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, trans_b ? CBLAS_TRANS : CBLAS_NO_TRANS, M, N, K,
                alpha, A, lda, B, ldb, beta, C, ldc);
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

static void gemv_task(void *arg, int task, int thread)
{
    struct lin_args *a = arg;
    int j0 = task * a->chunk, j1 = j0 + a->chunk < a->N ? j0 + a->chunk : a->N;
    if (use_simd()) {
        gemv_512(a, j0, j1);
    } else {
        float *wrow = kern_pool_scratch(a->pool, thread); /* (K) */
        for (int j = j0; j < j1; j++) {
            kern_dequant_row(a->w->type, a->w->data + (size_t)j * a->row_bytes, wrow, a->K);
            for (int r = 0; r < a->m; r++) {
                float *y = a->y + (size_t)r * a->N + j;
                float v = dot_1(wrow, a->x + (size_t)r * a->K, a->K);
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
    int simd = use_simd();
    for (int i = i0; i < i1; i++) {
        const float *x = a->x + (size_t)i * a->n;
        float *y = a->y + (size_t)i * a->n;
        if (simd) layernorm_512(x, a->n, a->w, a->b, y);
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

/* ------------------------------------------------------------ attention */

/* Sums of 16 vectors: lane t of the result is the sum of the lanes of v[t]. */
static inline __attribute__((always_inline)) T512 __m512 hsum16_512(const __m512 *v)
{
    __m512 t[8], u[4];
#pragma GCC unroll 16
    for (int i = 0; i < 8; i++)
        t[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                             _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    /* t[i]: per 128-bit lane, partial sums of v[2i], v[2i+1], v[2i], v[2i+1]. */
#pragma GCC unroll 16
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[2 * i]), b = _mm512_castps_pd(t[2 * i + 1]);
        u[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    /* u[i]: per 128-bit lane, partial sums of v[4i .. 4i+3]. */
    __m512 x0 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x88), _mm512_shuffle_f32x4(u[0], u[1], 0xdd));
    __m512 x1 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x88), _mm512_shuffle_f32x4(u[2], u[3], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(x0, x1, 0x88), _mm512_shuffle_f32x4(x0, x1, 0xdd));
}

/* One 16-float load of a key or value row chunk, f32 or f16. */
static inline __attribute__((always_inline)) T512 __m512 ld_kv_512(const int f16, const void *p, size_t off,
                                                                    __mmask16 m)
{
    if (f16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + off));
    return _mm512_maskz_loadu_ps(m, (const float *)p + off);
}

/* Scores of nq queries against keys j0 .. j0+nb−1 (nb = 16 when `full`):
 * s[i·ls + j] = scale · q_i · k_j, 16 keys per vector; the key rows are read
 * from memory by the first query and from L1 by the others. */
static inline __attribute__((always_inline)) T512 void att_scores_512(const int f16, const int NC, const int CT,
                                                                       const int full,
                                                                       __mmask16 last, int nq, const float *q,
                                                                       size_t ldq, const void *k, size_t ld,
                                                                       int j0, int nb, float scale, float *s,
                                                                       size_t ls)
{
    __mmask16 km = full ? 0xffff : (__mmask16)((1u << nb) - 1);
    if (CT) ld = 16 * NC;
    for (int i = 0; i < nq; i++) {
        const float *qi = q + (size_t)i * ldq;
        __m512 qv[8], acc[16];
#pragma GCC unroll 8
        for (int c = 0; c < NC; c++) qv[c] = _mm512_maskz_loadu_ps(c == NC - 1 ? last : 0xffff, qi + 16 * c);
#pragma GCC unroll 16
        for (int t = 0; t < 16; t++) {
            size_t row = (size_t)(j0 + (full || t < nb ? t : 0)) * ld;
            __m512 x = _mm512_mul_ps(qv[0], ld_kv_512(f16, k, row, NC == 1 ? last : 0xffff));
#pragma GCC unroll 8
            for (int c = 1; c < NC; c++)
                x = _mm512_fmadd_ps(qv[c], ld_kv_512(f16, k, row + 16 * c, c == NC - 1 ? last : 0xffff), x);
            acc[t] = x;
        }
        _mm512_store_ps(s + i * ls + j0,
                        _mm512_maskz_mov_ps(km, _mm512_mul_ps(hsum16_512(acc), _mm512_set1_ps(scale))));
    }
}

/* out_i (stride ldo) = inv[i] · Σ_j s[i·ls + j] · v_j for G queries (a
 * constant). With one query, keys alternate between two sets of
 * accumulators to keep more FMA chains in flight. */
static inline __attribute__((always_inline)) T512 void att_values_512(const int f16, const int NC, const int CT,
                                                                       const int G,
                                                                       __mmask16 last, const void *v, size_t ld,
                                                                       int n, const float *s, size_t ls,
                                                                       const float *inv, float *out, size_t ldo)
{
    __m512 o[8][8], o2[8];
    if (CT) ld = 16 * NC;
#pragma GCC unroll 8
    for (int c = 0; c < NC; c++) o2[c] = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < G; i++)
#pragma GCC unroll 8
        for (int c = 0; c < NC; c++) o[i][c] = _mm512_setzero_ps();
    int j = 0;
    if (G == 1) {
        for (; j + 2 <= n; j += 2) {
            size_t row = (size_t)j * ld;
            __m512 p0 = _mm512_set1_ps(s[j]), p1 = _mm512_set1_ps(s[j + 1]);
#pragma GCC unroll 8
            for (int c = 0; c < NC; c++) {
                __mmask16 m = c == NC - 1 ? last : 0xffff;
                o[0][c] = _mm512_fmadd_ps(p0, ld_kv_512(f16, v, row + 16 * c, m), o[0][c]);
                o2[c] = _mm512_fmadd_ps(p1, ld_kv_512(f16, v, row + ld + 16 * c, m), o2[c]);
            }
        }
    }
    for (; j < n; j++) {
        __m512 vv[8];
        size_t row = (size_t)j * ld;
#pragma GCC unroll 8
        for (int c = 0; c < NC; c++) vv[c] = ld_kv_512(f16, v, row + 16 * c, c == NC - 1 ? last : 0xffff);
#pragma GCC unroll 8
        for (int i = 0; i < G; i++) {
            __m512 p = _mm512_set1_ps(s[i * ls + j]);
#pragma GCC unroll 8
            for (int c = 0; c < NC; c++) o[i][c] = _mm512_fmadd_ps(p, vv[c], o[i][c]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < G; i++) {
        __m512 sc = _mm512_set1_ps(inv[i]);
#pragma GCC unroll 8
        for (int c = 0; c < NC; c++) {
            __m512 r = G == 1 ? _mm512_add_ps(o[0][c], o2[c]) : o[i][c];
            _mm512_mask_storeu_ps(out + (size_t)i * ldo + 16 * c, c == NC - 1 ? last : 0xffff,
                                  _mm512_mul_ps(r, sc));
        }
    }
}

/* Row r of s (stride ls) keeps len0 + r scores (n_row when not causal):
 * they become exp(score − max), the rest up to n zero; inv[r] = 1 / sum. */
static T512 void att_softmax_rows_512(float *s, size_t ls, int R, int n, int causal, int len0, float *inv)
{
    for (int r = 0; r < R; r++) {
        float *sr = s + (size_t)r * ls;
        int len = causal ? len0 + r : n;
        __m512 vmax = _mm512_set1_ps(-INFINITY), vsum = _mm512_setzero_ps();
        for (int j0 = 0; j0 < len; j0 += 16) {
            __mmask16 km = len - j0 >= 16 ? 0xffff : (__mmask16)((1u << (len - j0)) - 1);
            vmax = _mm512_mask_max_ps(vmax, km, vmax, _mm512_load_ps(sr + j0));
        }
        __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
        for (int j0 = 0; j0 < n; j0 += 16) {
            int rem = len - j0;
            __mmask16 km = rem >= 16 ? 0xffff : rem <= 0 ? 0 : (__mmask16)((1u << rem) - 1);
            __m512 e = _mm512_maskz_mov_ps(km, exp_512(_mm512_sub_ps(_mm512_load_ps(sr + j0), mx)));
            vsum = _mm512_add_ps(vsum, e);
            _mm512_store_ps(sr + j0, e);
        }
        inv[r] = 1.0f / _mm512_reduce_add_ps(vsum);
    }
}

/* Fused attention of nq queries (rows of q, stride ldq) over n shared keys
 * and values (rows of stride ld elements, f32 or f16 by `f16`), AVX-512.
 * Query i sees keys 0 .. n − nq + i when `causal`, else all n. For each
 * query: the scores (att_scores_512) into s (nq rows of n rounded up to 16,
 * 64-byte aligned), then the max-subtracted exponentials, then out (stride
 * ldo) = Σ eⱼ·vⱼ / Σ eⱼ (att_values_512). Every key and value row is read
 * from memory once for all the queries. NC = ceil(hd / 16) chunks of 16
 * dimensions, the last one masked by `last`; NC and f16 are constants at
 * every call site so that the loops unroll and the accumulators stay in
 * registers. With CT (contiguous: ld = hd = 16·NC, the head-major layout)
 * every row address is a constant offset from the block's first. Whisper's
 * head dimension is 64 (NC = 4); there up to 6 queries share a pass over
 * the values, elsewhere 1. */
static inline __attribute__((always_inline)) T512 void att_block_512(const int f16, const int NC, const int CT,
                                                                      __mmask16 last,
                                                                      int nq, const float *q, size_t ldq,
                                                                      const void *k, const void *v, size_t ld,
                                                                      int n, int causal, float scale, float *s,
                                                                      float *out, size_t ldo)
{
    const size_t ls = ((size_t)n + 15) & ~(size_t)15;
    int j0 = 0;
    for (; j0 + 16 <= n; j0 += 16) att_scores_512(f16, NC, CT, 1, last, nq, q, ldq, k, ld, j0, 16, scale, s, ls);
    if (j0 < n) att_scores_512(f16, NC, CT, 0, last, nq, q, ldq, k, ld, j0, n - j0, scale, s, ls);

    /* Exponentials in place, zero past each query's keys; 1 / their sum. */
    float inv[64];
    att_softmax_rows_512(s, ls, nq, n, causal, n - nq + 1, inv);

    for (int i0 = 0; i0 < nq;) {
        int g = nq - i0;
        const float *si = s + i0 * ls;
        float *oi = out + (size_t)i0 * ldo;
        if (NC != 4) g = 1;
        else if (g > 6) g = 6;
        switch (g) {
        case 1: att_values_512(f16, NC, CT, 1, last, v, ld, n, si, ls, inv + i0, oi, ldo); break;
        case 2: att_values_512(f16, NC, CT, 2, last, v, ld, n, si, ls, inv + i0, oi, ldo); break;
        case 3: att_values_512(f16, NC, CT, 3, last, v, ld, n, si, ls, inv + i0, oi, ldo); break;
        case 4: att_values_512(f16, NC, CT, 4, last, v, ld, n, si, ls, inv + i0, oi, ldo); break;
        case 5: att_values_512(f16, NC, CT, 5, last, v, ld, n, si, ls, inv + i0, oi, ldo); break;
        default: att_values_512(f16, NC, CT, 6, last, v, ld, n, si, ls, inv + i0, oi, ldo); break;
        }
        i0 += g;
    }
}

static inline __attribute__((always_inline)) T512 void att_block_t_512(const int f16, const int CT, int hd, int nq,
                                                                        const float *q, size_t ldq, const void *k,
                                                                        const void *v, size_t ld, int n,
                                                                        int causal, float scale, float *s,
                                                                        float *out, size_t ldo)
{
    __mmask16 last = hd % 16 ? (__mmask16)((1u << (hd % 16)) - 1) : 0xffff;
    switch ((hd + 15) / 16) {
    case 1: att_block_512(f16, 1, CT, last, nq, q, ldq, k, v, ld, n, causal, scale, s, out, ldo); break;
    case 2: att_block_512(f16, 2, CT, last, nq, q, ldq, k, v, ld, n, causal, scale, s, out, ldo); break;
    case 3: att_block_512(f16, 3, CT, last, nq, q, ldq, k, v, ld, n, causal, scale, s, out, ldo); break;
    case 4: att_block_512(f16, 4, CT, last, nq, q, ldq, k, v, ld, n, causal, scale, s, out, ldo); break;
    case 5: att_block_512(f16, 5, CT, last, nq, q, ldq, k, v, ld, n, causal, scale, s, out, ldo); break;
    case 6: att_block_512(f16, 6, CT, last, nq, q, ldq, k, v, ld, n, causal, scale, s, out, ldo); break;
    case 7: att_block_512(f16, 7, CT, last, nq, q, ldq, k, v, ld, n, causal, scale, s, out, ldo); break;
    default: att_block_512(f16, 8, CT, last, nq, q, ldq, k, v, ld, n, causal, scale, s, out, ldo); break;
    }
}

static T512 void att_block_any_512(int f16, int hd, int nq, const float *q, size_t ldq, const void *k,
                                   const void *v, size_t ld, int n, int causal, float scale, float *s,
                                   float *out, size_t ldo)
{
    if (ld == (size_t)hd && hd % 16 == 0) {
        if (f16) att_block_t_512(1, 1, hd, nq, q, ldq, k, v, ld, n, causal, scale, s, out, ldo);
        else att_block_t_512(0, 1, hd, nq, q, ldq, k, v, ld, n, causal, scale, s, out, ldo);
    } else {
        if (f16) att_block_t_512(1, 0, hd, nq, q, ldq, k, v, ld, n, causal, scale, s, out, ldo);
        else att_block_t_512(0, 0, hd, nq, q, ldq, k, v, ld, n, causal, scale, s, out, ldo);
    }
}

/* Portable version of att_block_512, one query at a time. */
static void att_block_1(int f16, int hd, int nq, const float *q, size_t ldq, const void *k, const void *v,
                        size_t ld, int n, int causal, float scale, float *s, float *out, size_t ldo)
{
    for (int i = 0; i < nq; i++) {
        const float *qi = q + (size_t)i * ldq;
        float *oi = out + (size_t)i * ldo;
        int len = causal ? n - nq + 1 + i : n;
        float mx = -INFINITY, sum = 0.0f;
        for (int j = 0; j < len; j++) {
            size_t row = (size_t)j * ld;
            float d = 0.0f;
            for (int c = 0; c < hd; c++)
                d += qi[c] * (f16 ? kern_f16_to_f32(((const uint16_t *)k)[row + c]) : ((const float *)k)[row + c]);
            s[j] = d * scale;
            mx = s[j] > mx ? s[j] : mx;
        }
        for (int j = 0; j < len; j++) sum += (s[j] = expf(s[j] - mx));
        for (int c = 0; c < hd; c++) oi[c] = 0.0f;
        for (int j = 0; j < len; j++) {
            size_t row = (size_t)j * ld;
            float p = s[j] / sum;
            for (int c = 0; c < hd; c++)
                oi[c] += p * (f16 ? kern_f16_to_f32(((const uint16_t *)v)[row + c]) : ((const float *)v)[row + c]);
        }
    }
}

/* The AVX-512 fused kernel handles head dimensions up to this. */
#define ATT_MAX_HD 128

struct att_args {
    struct kern_pool *pool;
    const float *q;
    const void *k, *v;                /* shared keys / values, or NULL */
    const void *const *ks, *const *vs; /* per-query keys / values, or NULL */
    float *out;
    int f16;                           /* keys and values are f16, else f32 */
    int ldq, ldkv, ldo;
    size_t head_stride;                /* key / value elements from a head to the next */
    int n_q, n_kv, head_dim, causal;
    int qb, n_qb;                      /* query rows per task, tasks per head */
    float scale;
};

/* Fused attention: each task is one head and a block of queries that share
 * their keys (or one query with its own). */
static void att_fused_task(void *arg, int task, int thread)
{
    struct att_args *a = arg;
    int h = task / a->n_qb, i0 = (task % a->n_qb) * a->qb;
    int nq = i0 + a->qb < a->n_q ? a->qb : a->n_q - i0;
    /* Keys the last of these queries sees. */
    int n = a->causal ? a->n_kv - a->n_q + i0 + nq : a->n_kv;
    float *s = kern_pool_scratch(a->pool, thread); /* (nq, n rounded up to 16) */
    size_t ho = (size_t)h * a->head_dim, esz = a->f16 ? 2 : 4;
    const void *k = a->ks ? a->ks[i0] : a->k, *v = a->vs ? a->vs[i0] : a->v;
    const float *q = a->q + (size_t)i0 * a->ldq + ho;
    float *out = a->out + (size_t)i0 * a->ldo + ho;
    k = (const char *)k + h * a->head_stride * esz;
    v = (const char *)v + h * a->head_stride * esz;
    if (use_simd() && a->head_dim <= ATT_MAX_HD)
        att_block_any_512(a->f16, a->head_dim, nq, q, (size_t)a->ldq, k, v, (size_t)a->ldkv, n, a->causal,
                          a->scale, s, out, (size_t)a->ldo);
    else
        att_block_1(a->f16, a->head_dim, nq, q, (size_t)a->ldq, k, v, (size_t)a->ldkv, n, a->causal, a->scale,
                    s, out, (size_t)a->ldo);
}

/* ---- Many queries, head dimension 64: tiles of queries against packed keys.
 *
 * A task takes one head and a range of queries. It packs the head's keys
 * transposed, Kᵀ in blocks of 16 keys (for each dimension d the 16 keys'
 * values form one vector), then goes through its queries ATT_TILE_Q at a
 * time: scores for the tile's rows against every key (a register-blocked
 * product, 2 key blocks × up to 12 rows of accumulators), the softmax of
 * each row in place, and the weighted sum of the value rows (up to 6 rows ×
 * 4 vectors of accumulators). Scores never leave the L2 cache. */
#define ATT_TILE_Q 12
#define ATT_TILE_HD 64

/* kt (ceil(n/16), 64, 16) = Kᵀ of the n key rows k (stride ld), zero past n. */
static T512 void att_pack_kt_512(const float *k, size_t ld, int n, float *kt)
{
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i idx = _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)ld));
    for (int j0 = 0; j0 < n; j0 += 16) {
        float *dst = kt + (size_t)j0 * ATT_TILE_HD;
        __mmask16 km = n - j0 >= 16 ? 0xffff : (__mmask16)((1u << (n - j0)) - 1);
        const float *src = k + (size_t)j0 * ld;
        for (int d = 0; d < ATT_TILE_HD; d++)
            _mm512_store_ps(dst + d * 16, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), km, idx, src + d, 4));
    }
}

/* s (R rows, stride ls) = scale · q (R rows, stride ldq) · keys of KB packed
 * blocks at kt; R and KB are constants at every call site. */
static inline __attribute__((always_inline)) T512 void att_qk_tile_512(const int R, const int KB, const float *q,
                                                                        size_t ldq, const float *kt, float scale,
                                                                        float *s, size_t ls)
{
    __m512 acc[ATT_TILE_Q][2];
#pragma GCC unroll 12
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int d = 0; d < ATT_TILE_HD; d++) {
        __m512 k0 = _mm512_load_ps(kt + d * 16);
        __m512 k1 = KB > 1 ? _mm512_load_ps(kt + (ATT_TILE_HD + d) * 16) : k0;
#pragma GCC unroll 12
        for (int r = 0; r < R; r++) {
            __m512 qb = _mm512_set1_ps(q[(size_t)r * ldq + d]);
            acc[r][0] = _mm512_fmadd_ps(qb, k0, acc[r][0]);
            if (KB > 1) acc[r][1] = _mm512_fmadd_ps(qb, k1, acc[r][1]);
        }
    }
    __m512 sc = _mm512_set1_ps(scale);
#pragma GCC unroll 12
    for (int r = 0; r < R; r++) {
        _mm512_store_ps(s + (size_t)r * ls, _mm512_mul_ps(acc[r][0], sc));
        if (KB > 1) _mm512_store_ps(s + (size_t)r * ls + 16, _mm512_mul_ps(acc[r][1], sc));
    }
}

static T512 void att_qk_rows_512(int R, const float *q, size_t ldq, const float *kt, int nkb, float scale, float *s,
                                 size_t ls)
{
    for (int b = 0; b < nkb; b += 2) {
        const float *kb = kt + (size_t)b * 16 * ATT_TILE_HD;
        float *sb = s + (size_t)b * 16;
        int two = b + 1 < nkb;
        switch (R * 2 + two) {
#define ATT_QK_CASE(r)                                                                                             \
    case 2 * r: att_qk_tile_512(r, 1, q, ldq, kb, scale, sb, ls); break;                                           \
    case 2 * r + 1: att_qk_tile_512(r, 2, q, ldq, kb, scale, sb, ls); break;
            ATT_QK_CASE(1) ATT_QK_CASE(2) ATT_QK_CASE(3) ATT_QK_CASE(4) ATT_QK_CASE(5) ATT_QK_CASE(6)
            ATT_QK_CASE(7) ATT_QK_CASE(8) ATT_QK_CASE(9) ATT_QK_CASE(10) ATT_QK_CASE(11) ATT_QK_CASE(12)
#undef ATT_QK_CASE
        default: break;
        }
    }
}

/* out (R rows, stride ldo) = inv[r] · Σ_j p[r·ls + j] · v_j over n value
 * rows v (stride ld), 64 wide; R is a constant at every call site. */
static inline __attribute__((always_inline)) T512 void att_pv_tile_512(const int R, const float *p, size_t ls,
                                                                        const float *v, size_t ld, int n,
                                                                        const float *inv, float *out, size_t ldo)
{
    __m512 acc[6][4];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_ps();
    for (int j = 0; j < n; j++) {
        const float *vr = v + (size_t)j * ld;
        __m512 v0 = _mm512_loadu_ps(vr), v1 = _mm512_loadu_ps(vr + 16), v2 = _mm512_loadu_ps(vr + 32),
               v3 = _mm512_loadu_ps(vr + 48);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            __m512 pb = _mm512_set1_ps(p[(size_t)r * ls + j]);
            acc[r][0] = _mm512_fmadd_ps(pb, v0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(pb, v1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(pb, v2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(pb, v3, acc[r][3]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        __m512 sc = _mm512_set1_ps(inv[r]);
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) _mm512_storeu_ps(out + (size_t)r * ldo + 16 * c, _mm512_mul_ps(acc[r][c], sc));
    }
}

static T512 void att_pv_rows_512(int R, const float *p, size_t ls, const float *v, size_t ld, int n,
                                 const float *inv, float *out, size_t ldo)
{
    switch (R) {
    case 1: att_pv_tile_512(1, p, ls, v, ld, n, inv, out, ldo); break;
    case 2: att_pv_tile_512(2, p, ls, v, ld, n, inv, out, ldo); break;
    case 3: att_pv_tile_512(3, p, ls, v, ld, n, inv, out, ldo); break;
    case 4: att_pv_tile_512(4, p, ls, v, ld, n, inv, out, ldo); break;
    case 5: att_pv_tile_512(5, p, ls, v, ld, n, inv, out, ldo); break;
    default: att_pv_tile_512(6, p, ls, v, ld, n, inv, out, ldo); break;
    }
}

static T512 void att_tile_task_512(struct att_args *a, int h, int i0, int i1, float *scratch)
{
    const float *k = (const float *)a->k + (size_t)h * ATT_TILE_HD;
    const float *v = (const float *)a->v + (size_t)h * ATT_TILE_HD;
    int off = a->n_kv - a->n_q; /* query i sees keys 0 .. off + i when causal */
    int n = a->causal ? off + i1 : a->n_kv;
    size_t ls = ((size_t)n + 15) & ~(size_t)15;
    float *kt = scratch;       /* (ls / 16, 64, 16) */
    float *s = kt + ls * ATT_TILE_HD; /* (ATT_TILE_Q, ls) */
    float inv[ATT_TILE_Q];
    att_pack_kt_512(k, (size_t)a->ldkv, n, kt);
    for (int r0 = i0; r0 < i1; r0 += ATT_TILE_Q) {
        int R = i1 - r0 < ATT_TILE_Q ? i1 - r0 : ATT_TILE_Q;
        int nr = a->causal ? off + r0 + R : a->n_kv; /* keys the tile's last row sees */
        const float *q = a->q + (size_t)r0 * a->ldq + (size_t)h * ATT_TILE_HD;
        att_qk_rows_512(R, q, (size_t)a->ldq, kt, (nr + 15) / 16, a->scale, s, ls);
        att_softmax_rows_512(s, ls, R, nr, a->causal, off + r0 + 1, inv);
        for (int r = 0; r < R; r += 6) {
            int R2 = R - r < 6 ? R - r : 6;
            att_pv_rows_512(R2, s + (size_t)r * ls, ls, v, (size_t)a->ldkv, nr, inv + r,
                            a->out + (size_t)(r0 + r) * a->ldo + (size_t)h * ATT_TILE_HD, (size_t)a->ldo);
        }
    }
}

static void att_tile_task(void *arg, int task, int thread)
{
    struct att_args *a = arg;
    int h = task / a->n_qb, i0 = (task % a->n_qb) * a->qb;
    int i1 = i0 + a->qb < a->n_q ? i0 + a->qb : a->n_q;
    att_tile_task_512(a, h, i0, i1, kern_pool_scratch(a->pool, thread));
}

/* Many queries with f32 keys and BLAS: two sgemm calls per task. */
static void att_gemm_task(void *arg, int task, int thread)
{
    struct att_args *a = arg;
    int h = task / a->n_qb, i0 = (task % a->n_qb) * a->qb;
    int nq = i0 + a->qb < a->n_q ? a->qb : a->n_q - i0;
    /* Keys any of these queries may see. */
    int n_keys = a->causal ? a->n_kv - a->n_q + i0 + nq : a->n_kv;
    float *s = kern_pool_scratch(a->pool, thread); /* (nq, n_keys) */
    const float *qh = a->q + (size_t)i0 * a->ldq + (size_t)h * a->head_dim;
    const float *k = a->k, *v = a->v;
    kern_sgemm(1, nq, n_keys, a->head_dim, a->scale, qh, a->ldq, k + (size_t)h * a->head_dim,
               a->ldkv, 0.0f, s, n_keys);
    for (int i = 0; i < nq; i++) {
        float *row = s + (size_t)i * n_keys;
        int len = a->causal ? a->n_kv - a->n_q + i0 + i + 1 : n_keys;
        kern_softmax(row, len);
        for (int j = len; j < n_keys; j++) row[j] = 0.0f;
    }
    kern_sgemm(0, nq, a->head_dim, n_keys, 1.0f, s, n_keys, v + (size_t)h * a->head_dim, a->ldkv,
               0.0f, a->out + (size_t)i0 * a->ldo + (size_t)h * a->head_dim, a->ldo);
}

/* Up to this many queries sharing f32 keys use the fused kernel. */
#define ATT_FUSED_MAX_Q 32

/* Chooses the kernel: query tiles against packed keys for many queries
 * (the encoder, a decoder prompt) with AVX-512 and head dimension 64; the
 * fused streaming kernel for few queries (a decoding step), f16 keys, keys
 * per query, or no BLAS; otherwise two sgemm calls per block of queries.
 * The scratch holds one head's scores for a block of queries (n_kv up to
 * about KERN_SCRATCH_FLOATS / 76 keys for the tiles). */
static void attention(struct att_args *a, int n_head)
{
    if (a->n_q <= 0 || a->n_kv <= 0 || n_head <= 0) return;
    struct kern_pool *pool = a->pool;
    int nt = kern_pool_threads(pool);
    size_t ls = ((size_t)a->n_kv + 15) & ~(size_t)15;
    a->scale = 1.0f / sqrtf((float)a->head_dim);
    if (!a->f16 && !a->ks && a->n_q > ATT_FUSED_MAX_Q && use_simd() && a->head_dim == ATT_TILE_HD &&
        ls * (ATT_TILE_HD + ATT_TILE_Q) <= KERN_SCRATCH_FLOATS) {
        /* Each task packs its head's keys once: few, large tasks, at
         * least 4 per thread for balance. */
        int per_head = (4 * nt + n_head - 1) / n_head;
        a->qb = (a->n_q + per_head - 1) / per_head;
        a->n_qb = (a->n_q + a->qb - 1) / a->qb;
        kern_pool_run(pool, att_tile_task, a, n_head * a->n_qb);
        return;
    }
    if (a->f16 || a->ks || a->n_q <= ATT_FUSED_MAX_Q || !use_blas()) {
        /* One task per head and block of queries: enough blocks to keep
         * every thread busy, each at most what the scratch holds. */
        int qb = 1;
        if (!a->ks) {
            int per_head = (2 * nt + n_head - 1) / n_head;
            qb = (a->n_q + per_head - 1) / per_head;
            if (qb > 64) qb = 64;
            if ((size_t)qb * ls > KERN_SCRATCH_FLOATS) qb = (int)(KERN_SCRATCH_FLOATS / ls);
            if (qb < 1) qb = 1;
        }
        a->qb = qb;
        a->n_qb = (a->n_q + qb - 1) / qb;
        kern_pool_run(pool, att_fused_task, a, n_head * a->n_qb);
        return;
    }
    int qb = 128;
    if ((size_t)qb * (size_t)a->n_kv > KERN_SCRATCH_FLOATS) qb = (int)(KERN_SCRATCH_FLOATS / (size_t)a->n_kv);
    if (qb < 1) qb = 1;
    a->qb = qb;
    a->n_qb = (a->n_q + qb - 1) / qb;
    kern_pool_run(pool, att_gemm_task, a, n_head * a->n_qb);
}

void kern_attention(struct kern_pool *pool, int n_head, int head_dim, const float *q, int ldq,
                    int n_q, const float *k, const float *v, int ldkv, int n_kv, int causal,
                    float *out, int ldo)
{
    struct att_args a = {
        .pool = pool, .q = q, .k = k, .v = v, .out = out, .ldq = ldq, .ldkv = ldkv, .ldo = ldo,
        .n_q = n_q, .n_kv = n_kv, .head_dim = head_dim, .causal = causal, .head_stride = (size_t)head_dim,
    };
    attention(&a, n_head);
}

void kern_attention_kv16(struct kern_pool *pool, int n_head, int head_dim, const float *q, int ldq,
                         int n_q, const uint16_t *k, const uint16_t *v, int ldkv, size_t head_stride,
                         int n_kv, float *out, int ldo)
{
    struct att_args a = {
        .pool = pool, .q = q, .k = k, .v = v, .f16 = 1, .out = out, .ldq = ldq, .ldkv = ldkv, .ldo = ldo,
        .n_q = n_q, .n_kv = n_kv, .head_dim = head_dim, .head_stride = head_stride,
    };
    attention(&a, n_head);
}

void kern_attention_rows(struct kern_pool *pool, int n_head, int head_dim, const float *q, int ldq,
                         int n_q, const float *const *k, const float *const *v, int ldkv, int n_kv,
                         float *out, int ldo)
{
    struct att_args a = {
        .pool = pool, .q = q, .ks = (const void *const *)k, .vs = (const void *const *)v, .out = out,
        .ldq = ldq, .ldkv = ldkv, .ldo = ldo, .n_q = n_q, .n_kv = n_kv, .head_dim = head_dim,
        .head_stride = (size_t)head_dim,
    };
    attention(&a, n_head);
}
