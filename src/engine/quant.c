/*
 * quant.c: quantized weights times f32 activations, the way ggml does it.
 *
 * ggml never multiplies a quantized weight row by f32 values. It first
 * quantizes every activation row into blocks of 32 int8 values with one f16
 * scale each (q8_0; q8_1 also keeps s = d·Σq), then sums integer block dot
 * products scaled by both blocks' scales:
 *   q4_0, q5_0, q8_0 weights (q8_0 rows):  Σ_b d_w·d_x · Σ_j w_j x_j
 *   q4_1, q5_1 weights (q8_1 rows):        Σ_b d_w·d_x · Σ_j w_j x_j + m_w·s_x
 * Doing the same, rather than dequantizing the weights to f32, is what makes
 * hark's numbers on quantized models whisper.cpp's numbers. The activation
 * rounding follows ggml's x86 build, the one whisper.cpp runs on these CPUs:
 * d = amax / 127 (stored as f16), q = x · (127 / amax) rounded half to even.
 *
 * Three paths, chosen at run time (quant_simd): portable C, AVX2 and
 * AVX-512 VNNI. VNNI's vpdpbusd adds four u8 × s8 products into each of 16
 * int32 lanes, 64 multiply-adds per instruction. Weights go
 * in as unsigned bytes (the 4- or 5-bit code, or an int8 + 128) and the
 * offset comes back out of the integer sum, Σ (u − o)·x = Σ u·x − o·Σx, with
 * −o·Σx computed once per activation block and used as the accumulator's
 * starting value. Integer sums are exact, so the SIMD and portable paths give
 * the same integers; only the order of the f32 additions differs.
 * AVX2 builds the same 4-value lane sums from vpmaddubsw (u8 × s8 pairs into
 * 16 bits) and vpmaddwd (pairs of those into 32): 4- and 5-bit codes go in
 * unsigned with the same offset correction; q8_0's |w| goes in unsigned and
 * x takes w's sign, since 255·127·2 would not fit in 16 bits. Its kernels
 * add in the VNNI kernels' f32 order, so the two give the same floats.
 *  - GEMV (up to KERN_GEMV_MAX_ROWS rows, decoding): weight blocks are read
 *    from the model and unpacked in registers, 32 values per 256-bit lane set.
 *  - GEMM (the encoder, a prompt): each task unpacks a tile of weight rows
 *    into panels of 16 rows whose bytes interleave by 4, so one vpdpbusd
 *    advances 16 outputs by 4 values; the activation's 4 bytes come as a
 *    broadcast operand. A 4 × 32 block of outputs stays in registers.
 */
#include "quant.h"

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "hark.h"
#include "kernels.h"
#include "model.h"
#include "pool.h"
#include "simd.h"
#include "testing.h"

#define TV __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")))
#define INLINE static inline __attribute__((always_inline))

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_have_vnni;

enum { QUANT_PORTABLE, QUANT_AVX2, QUANT_VNNI };

static void quant_init(void)
{
    __builtin_cpu_init();
    g_have_vnni = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512vnni");
}

int quant_simd(void)
{
    pthread_once(&g_once, quant_init);
    int isa = kern_simd();
    return isa == KERN_AVX512 && g_have_vnni ? QUANT_VNNI : isa >= KERN_AVX2 ? QUANT_AVX2 : QUANT_PORTABLE;
}

int quant_is_block_type(int type)
{
    return type == TYPE_Q4_0 || type == TYPE_Q4_1 || type == TYPE_Q5_0 || type == TYPE_Q5_1 ||
           type == TYPE_Q8_0;
}

/* What the unsigned weight code exceeds the signed value by. */
static int weight_offset(int type)
{
    return type == TYPE_Q4_0 ? 8 : type == TYPE_Q5_0 ? 16 : type == TYPE_Q8_0 ? 128 : 0;
}

/* Weight types with a per-block minimum m, multiplied with q8_1 rows. */
static int has_min(int type) { return type == TYPE_Q4_1 || type == TYPE_Q5_1; }

static float f16_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return kern_f16_to_f32(h);
}

/* ------------------------------------------------ activation quantization */

/* One block's scale: d (f32, before rounding to f16) and the multiplier. */
static void block_scale(float amax, float *d, float *id)
{
    *d = amax / 127.0f;
    *id = amax != 0.0f ? 127.0f / amax : 0.0f;
}

/* A rounded product to int8 as ggml's cvtps + saturating packs give it:
 * out-of-range values saturate, NaN becomes -128. */
static int8_t to_i8(float v)
{
    return v >= 127.0f ? 127 : v >= -128.0f ? (int8_t)v : -128;
}

static void q8_block_1(const float *x, int8_t *q, uint16_t *dh, uint16_t *sh)
{
    float amax = 0.0f, d, id;
    for (int j = 0; j < QK; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]);
    block_scale(amax, &d, &id);
    int sum = 0;
    for (int j = 0; j < QK; j++) {
        q[j] = to_i8(rintf(x[j] * id));
        sum += q[j];
    }
    *dh = kern_f32_to_f16(d);
    if (sh) *sh = kern_f32_to_f16(d * (float)sum);
}

static TV void q8_block_512(const float *x, int8_t *q, uint16_t *dh, uint16_t *sh)
{
    __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1))), d, id;
    block_scale(amax, &d, &id);
    __m512 mul = _mm512_set1_ps(id);
    /* The rounding mode is a macro, not a const int: clang takes only an
     * integer constant expression here. */
#define RN (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
    __m512i i0 = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v0, mul), RN));
    __m512i i1 = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v1, mul), RN));
#undef RN
    _mm_storeu_si128((__m128i *)q, _mm512_cvtsepi32_epi8(i0));
    _mm_storeu_si128((__m128i *)(q + 16), _mm512_cvtsepi32_epi8(i1));
    *dh = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    if (sh) {
        /* The sum of the saturated bytes, as ggml sums its packed values. */
        __m512i s = _mm512_add_epi32(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)q)),
                                     _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(q + 16))));
        *sh = _cvtss_sh(d * (float)_mm512_reduce_add_epi32(s), _MM_FROUND_TO_NEAREST_INT);
    }
}

/* Sums of each group of 4 bytes of q, as 8 int32 lanes. */
static inline T256 __m256i group_sums_256(__m256i q)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1));
}

static inline T256 int32_t lane_sum_256(__m256i v)
{
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
    return _mm_cvtsi128_si32(h);
}

/* q8_block_512 in 8-float vectors; the saturating packs interleave the
 * 128-bit halves, and the permutation puts the bytes back in order. */
static T256 void q8_block_256(const float *x, int8_t *q, uint16_t *dh, uint16_t *sh)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4], m = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
    }
    float d, id;
    block_scale(hmax_256(m), &d, &id);
    __m256i i[4];
    for (int k = 0; k < 4; k++)
        i[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], _mm256_set1_ps(id)),
                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, b);
    *dh = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    if (sh) *sh = _cvtss_sh(d * (float)lane_sum_256(group_sums_256(b)), _MM_FROUND_TO_NEAREST_INT);
}

void quant_row_q8(const float *x, int64_t n, int8_t *q, uint16_t *d, uint16_t *s)
{
    int path = quant_simd();
    for (int64_t b = 0; b < n / QK; b++) {
        if (path == QUANT_VNNI) q8_block_512(x + b * QK, q + b * QK, d + b, s ? s + b : NULL);
        else if (path == QUANT_AVX2) q8_block_256(x + b * QK, q + b * QK, d + b, s ? s + b : NULL);
        else q8_block_1(x + b * QK, q + b * QK, d + b, s ? s + b : NULL);
    }
}

/* --------------------------------------------------- quantized activations */

/* The rows of x quantized, with what the kernels need beside the values. */
struct qact {
    int8_t *q;     /* (m, K) */
    float *d;      /* (m, nb) block scales */
    float *s;      /* (m, nb) d·Σq of each block (q8_1) */
    int32_t *c1;   /* (m, nb) −o·Σq, o the weight type's offset */
    int32_t *c8;   /* (m, nb, 8) −o·Σ of each group of 4 values */
};

struct qlin {
    struct kern_pool *pool;
    const struct tensor *w;
    const float *bias;
    const float *x;
    float *y;
    int m, K, N, nb;
    int type, offset, flags;
    int rows_per_task;   /* quantization */
    int chunk;           /* weight rows per product task */
    size_t row_bytes;
    struct qact act;
};

/* One block of activations with what the kernels keep beside it. */
static void act_block_1(const struct qlin *a, size_t ib)
{
    int8_t *q = a->act.q + ib * QK;
    uint16_t dh, sh = 0;
    q8_block_1(a->x + ib * QK, q, &dh, has_min(a->type) ? &sh : NULL);
    a->act.d[ib] = kern_f16_to_f32(dh);
    a->act.s[ib] = kern_f16_to_f32(sh);
    int32_t total = 0;
    for (int g = 0; g < 8; g++) {
        int32_t gs = q[4 * g] + q[4 * g + 1] + q[4 * g + 2] + q[4 * g + 3];
        a->act.c8[ib * 8 + g] = -a->offset * gs;
        total += gs;
    }
    a->act.c1[ib] = -a->offset * total;
}

static TV void act_block_512(const struct qlin *a, size_t ib)
{
    int8_t *q = a->act.q + ib * QK;
    uint16_t dh, sh = 0;
    q8_block_512(a->x + ib * QK, q, &dh, has_min(a->type) ? &sh : NULL);
    a->act.d[ib] = _cvtsh_ss(dh);
    a->act.s[ib] = _cvtsh_ss(sh);
    /* Sums of each group of 4 values: 1·q through vpdpbusd. */
    __m256i gs = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1),
                                     _mm256_loadu_si256((const __m256i *)q));
    __m256i c8 = _mm256_mullo_epi32(gs, _mm256_set1_epi32(-a->offset));
    _mm256_storeu_si256((__m256i *)(a->act.c8 + ib * 8), c8);
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(c8), _mm256_extracti128_si256(c8, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
    a->act.c1[ib] = _mm_cvtsi128_si32(h);
}

static T256 void act_block_256(const struct qlin *a, size_t ib)
{
    uint16_t dh, sh = 0;
    q8_block_256(a->x + ib * QK, a->act.q + ib * QK, &dh, has_min(a->type) ? &sh : NULL);
    __m256i q = _mm256_loadu_si256((const __m256i *)(a->act.q + ib * QK));
    a->act.d[ib] = _cvtsh_ss(dh);
    a->act.s[ib] = _cvtsh_ss(sh);
    __m256i c8 = _mm256_mullo_epi32(group_sums_256(q), _mm256_set1_epi32(-a->offset));
    _mm256_storeu_si256((__m256i *)(a->act.c8 + ib * 8), c8);
    a->act.c1[ib] = lane_sum_256(c8);
}

static void quantize_task(void *arg, int task, int thread)
{
    struct qlin *a = arg;
    int i0 = task * a->rows_per_task, i1 = i0 + a->rows_per_task < a->m ? i0 + a->rows_per_task : a->m;
    int path = quant_simd();
    for (size_t ib = (size_t)i0 * a->nb; ib < (size_t)i1 * a->nb; ib++) {
        if (path == QUANT_VNNI) act_block_512(a, ib);
        else if (path == QUANT_AVX2) act_block_256(a, ib);
        else act_block_1(a, ib);
    }
}

/* GELU over columns j0 .. j0+n-1 of every row of y. */
static void gelu_cols(const struct qlin *a, int j0, int n)
{
    if (a->flags & KERN_GELU)
        for (int i = 0; i < a->m; i++) kern_gelu(a->y + (size_t)i * a->N + j0, (size_t)n);
}

/* One output: the product plus the bias, then plus y's old value when
 * accumulating, in ggml's order. */
static void put(const struct qlin *a, int i, int j, float v)
{
    float *y = a->y + (size_t)i * a->N + j;
    if (a->bias) v += a->bias[j];
    *y = (a->flags & KERN_ACCUM) ? *y + v : v;
}

/* ------------------------------------------------------------- portable */

/* The signed integer values of one weight block (the m of q4_1/q5_1 apart). */
static void block_ints(int type, const uint8_t *b, int *w)
{
    uint32_t qh = 0;
    const uint8_t *qs;
    if (type == TYPE_Q8_0) {
        for (int j = 0; j < QK; j++) w[j] = (int8_t)b[2 + j];
        return;
    }
    qs = b + (type == TYPE_Q4_0 ? 2 : type == TYPE_Q4_1 ? 4 : type == TYPE_Q5_0 ? 6 : 8);
    if (type == TYPE_Q5_0 || type == TYPE_Q5_1) memcpy(&qh, b + (type == TYPE_Q5_0 ? 2 : 4), 4);
    for (int j = 0; j < 16; j++) {
        w[j] = (qs[j] & 15) | (int)(((qh >> j) & 1u) << 4);
        w[j + 16] = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
    }
    int o = weight_offset(type);
    for (int j = 0; j < QK; j++) w[j] -= o;
}

static int block_dot_1(const int8_t *w, const int8_t *x)
{
    int isum = 0;
    for (int k = 0; k < QK; k++) isum += w[k] * x[k];
    return isum;
}

/* Each weight row is unpacked once into signed bytes (the thread's
 * scratch), then its integer block sums with every activation row. */
static void portable_task(void *arg, int task, int thread)
{
    struct qlin *a = arg;
    int j0 = task * a->chunk, j1 = j0 + a->chunk < a->N ? j0 + a->chunk : a->N;
    size_t bb = kern_row_bytes(a->type, QK);
    int8_t *w8 = (int8_t *)kern_pool_scratch(a->pool, thread); /* (K) */
    int w[QK];
    for (int j = j0; j < j1; j++) {
        const uint8_t *row = a->w->data + (size_t)j * a->row_bytes;
        for (int b = 0; b < a->nb; b++) {
            block_ints(a->type, row + b * bb, w);
            for (int k = 0; k < QK; k++) w8[b * QK + k] = (int8_t)w[k];
        }
        for (int i = 0; i < a->m; i++) {
            float sum = 0.0f, summ = 0.0f;
            for (int b = 0; b < a->nb; b++) {
                const uint8_t *blk = row + b * bb;
                size_t ib = (size_t)i * a->nb + b;
                int isum = block_dot_1(w8 + b * QK, a->act.q + ib * QK);
                sum += f16_at(blk) * a->act.d[ib] * (float)isum;
                if (has_min(a->type)) summ += f16_at(blk + 2) * a->act.s[ib];
            }
            put(a, i, j, sum + summ);
        }
    }
    gelu_cols(a, j0, j1 - j0);
}

/* ----------------------------------------------------------------- GEMV */

/* The switches from the run-time row count and weight type to the
 * constants a GEMV group function is compiled for (rows M, weight rows per
 * group G), for one instruction set: defines NAME(a, j0, j1). */
#define DEFINE_GEMV(NAME, TARGET, GROUP)                                              \
    INLINE TARGET void NAME##_m(const int type, const int M, const struct qlin *a, int j0, int j1) \
    {                                                                                 \
        const int G = M <= 2 ? 4 : M <= 4 ? 2 : 1;                                    \
        int j = j0;                                                                   \
        for (; j + G <= j1; j += G) GROUP(type, M, G, a, j);                          \
        for (; j < j1; j++) GROUP(type, M, 1, a, j);                                  \
    }                                                                                 \
    INLINE TARGET void NAME##_t(const int type, const struct qlin *a, int j0, int j1) \
    {                                                                                 \
        switch (a->m) {                                                               \
        case 1: NAME##_m(type, 1, a, j0, j1); break;                                  \
        case 2: NAME##_m(type, 2, a, j0, j1); break;                                  \
        case 3: NAME##_m(type, 3, a, j0, j1); break;                                  \
        case 4: NAME##_m(type, 4, a, j0, j1); break;                                  \
        case 5: NAME##_m(type, 5, a, j0, j1); break;                                  \
        case 6: NAME##_m(type, 6, a, j0, j1); break;                                  \
        case 7: NAME##_m(type, 7, a, j0, j1); break;                                  \
        default: NAME##_m(type, 8, a, j0, j1); break;                                 \
        }                                                                             \
    }                                                                                 \
    static TARGET void NAME(const struct qlin *a, int j0, int j1)                     \
    {                                                                                 \
        switch (a->type) {                                                            \
        case TYPE_Q4_0: NAME##_t(TYPE_Q4_0, a, j0, j1); break;                        \
        case TYPE_Q4_1: NAME##_t(TYPE_Q4_1, a, j0, j1); break;                        \
        case TYPE_Q5_0: NAME##_t(TYPE_Q5_0, a, j0, j1); break;                        \
        case TYPE_Q5_1: NAME##_t(TYPE_Q5_1, a, j0, j1); break;                        \
        default: NAME##_t(TYPE_Q8_0, a, j0, j1); break;                               \
        }                                                                             \
    }


/* One weight block as 32 unsigned codes in value order: value j < 16 is the
 * low nibble of qs[j], value j + 16 its high nibble, bit j of qh the fifth
 * bit of value j; q8_0's int8 values are offset by 128. */
INLINE TV __m256i unpack_256(const int type, const uint8_t *b)
{
    __m128i qs;
    switch (type) {
    case TYPE_Q8_0:
        return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(b + 2)), _mm256_set1_epi8((char)0x80));
    case TYPE_Q4_0: qs = _mm_loadu_si128((const __m128i *)(b + 2)); break;
    case TYPE_Q4_1: qs = _mm_loadu_si128((const __m128i *)(b + 4)); break;
    case TYPE_Q5_0: qs = _mm_loadu_si128((const __m128i *)(b + 6)); break;
    default: qs = _mm_loadu_si128((const __m128i *)(b + 8)); break;
    }
    __m256i u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), _mm256_set1_epi8(0x0f));
    if (type == TYPE_Q5_0 || type == TYPE_Q5_1) {
        uint32_t qh;
        memcpy(&qh, b + (type == TYPE_Q5_0 ? 2 : 4), 4);
        u = _mm256_mask_add_epi8(u, (__mmask32)qh, u, _mm256_set1_epi8(16));
    }
    return u;
}

INLINE TV float f16_v(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

#define GEMV_PREFETCH_BYTES 4096

/* G consecutive weight rows from j against the M activation rows. */
INLINE TV void gemv_group(const int type, const int M, const int G, const struct qlin *a, int j)
{
    const size_t bb = kern_row_bytes(type, QK);
    const int nb = a->nb, off = weight_offset(type), mins = has_min(type);
    __m256 acc[4][KERN_GEMV_MAX_ROWS];
    float summ[4][KERN_GEMV_MAX_ROWS];
#pragma GCC unroll 4
    for (int g = 0; g < G; g++)
#pragma GCC unroll 8
        for (int r = 0; r < M; r++) {
            acc[g][r] = _mm256_setzero_ps();
            summ[g][r] = 0.0f;
        }
    const uint8_t *w0 = a->w->data + (size_t)j * a->row_bytes;
    for (int b = 0; b < nb; b++) {
#pragma GCC unroll 4
        for (int g = 0; g < G; g++) {
            const uint8_t *blk = w0 + (size_t)g * a->row_bytes + (size_t)b * bb;
            _mm_prefetch((const char *)blk + GEMV_PREFETCH_BYTES, _MM_HINT_T0);
            __m256i u = unpack_256(type, blk);
            float dw = f16_v(blk);
            float mw = mins ? f16_v(blk + 2) : 0.0f;
#pragma GCC unroll 8
            for (int r = 0; r < M; r++) {
                size_t ib = (size_t)r * nb + b;
                __m256i start = off ? _mm256_loadu_si256((const __m256i *)(a->act.c8 + ib * 8))
                                    : _mm256_setzero_si256();
                __m256i lanes = _mm256_dpbusd_epi32(start, u,
                                                    _mm256_loadu_si256((const __m256i *)(a->act.q + ib * QK)));
                acc[g][r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * a->act.d[ib]), _mm256_cvtepi32_ps(lanes),
                                            acc[g][r]);
                if (mins) summ[g][r] += mw * a->act.s[ib];
            }
        }
    }
#pragma GCC unroll 4
    for (int g = 0; g < G; g++)
#pragma GCC unroll 8
        for (int r = 0; r < M; r++) put(a, r, j + g, hsum_256(acc[g][r]) + summ[g][r]);
}

DEFINE_GEMV(gemv_vnni, TV, gemv_group)

/* ------------------------------------------------------------ AVX2 GEMV */

/* Bit j of `bits` as byte j of a vector: 0xff where it is set. */
INLINE T256 __m256i bits_to_bytes(uint32_t bits)
{
    const __m256i spread = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), spread);
    v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(v, _mm256_set1_epi8(-1));
}

/* unpack_256 with AVX2, except that q8_0's values stay signed. */
INLINE T256 __m256i codes_avx2(const int type, const uint8_t *b)
{
    __m128i qs;
    switch (type) {
    case TYPE_Q8_0: return _mm256_loadu_si256((const __m256i *)(b + 2));
    case TYPE_Q4_0: qs = _mm_loadu_si128((const __m128i *)(b + 2)); break;
    case TYPE_Q4_1: qs = _mm_loadu_si128((const __m128i *)(b + 4)); break;
    case TYPE_Q5_0: qs = _mm_loadu_si128((const __m128i *)(b + 6)); break;
    default: qs = _mm_loadu_si128((const __m128i *)(b + 8)); break;
    }
    __m256i u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), _mm256_set1_epi8(0x0f));
    if (type == TYPE_Q5_0 || type == TYPE_Q5_1) {
        uint32_t qh;
        memcpy(&qh, b + (type == TYPE_Q5_0 ? 2 : 4), 4);
        u = _mm256_or_si256(u, _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(16)));
    }
    return u;
}

/* Byte pairs of w times x summed into 16 bits: w unsigned codes, or for
 * q8_0 signed values whose sign moves to x. */
INLINE T256 __m256i pair_sums(const int type, __m256i w, __m256i x)
{
    if (type == TYPE_Q8_0) return _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
    return _mm256_maddubs_epi16(w, x);
}

INLINE T256 float f16_v2(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* gemv_group's lanes and f32 steps, so its results are the VNNI GEMV's. */
INLINE T256 void gemv2_group(const int type, const int M, const int G, const struct qlin *a, int j)
{
    const size_t bb = kern_row_bytes(type, QK);
    const int nb = a->nb, mins = has_min(type), offset = type != TYPE_Q8_0 && a->offset;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4][KERN_GEMV_MAX_ROWS];
    float summ[4][KERN_GEMV_MAX_ROWS];
#pragma GCC unroll 4
    for (int g = 0; g < G; g++)
#pragma GCC unroll 8
        for (int r = 0; r < M; r++) {
            acc[g][r] = _mm256_setzero_ps();
            summ[g][r] = 0.0f;
        }
    const uint8_t *w0 = a->w->data + (size_t)j * a->row_bytes;
    for (int b = 0; b < nb; b++) {
#pragma GCC unroll 4
        for (int g = 0; g < G; g++) {
            const uint8_t *blk = w0 + (size_t)g * a->row_bytes + (size_t)b * bb;
            _mm_prefetch((const char *)blk + GEMV_PREFETCH_BYTES, _MM_HINT_T0);
            __m256i u = codes_avx2(type, blk);
            float dw = f16_v2(blk);
            float mw = mins ? f16_v2(blk + 2) : 0.0f;
#pragma GCC unroll 8
            for (int r = 0; r < M; r++) {
                size_t ib = (size_t)r * nb + b;
                __m256i x = _mm256_loadu_si256((const __m256i *)(a->act.q + ib * QK));
                __m256i lanes = _mm256_madd_epi16(pair_sums(type, u, x), ones);
                if (offset) lanes = _mm256_add_epi32(lanes, _mm256_loadu_si256((const __m256i *)(a->act.c8 + ib * 8)));
                acc[g][r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * a->act.d[ib]), _mm256_cvtepi32_ps(lanes),
                                            acc[g][r]);
                if (mins) summ[g][r] += mw * a->act.s[ib];
            }
        }
    }
#pragma GCC unroll 4
    for (int g = 0; g < G; g++)
#pragma GCC unroll 8
        for (int r = 0; r < M; r++) put(a, r, j + g, hsum_256(acc[g][r]) + summ[g][r]);
}

DEFINE_GEMV(gemv_avx2, T256, gemv2_group)

static void gemv_task(void *arg, int task, int thread)
{
    struct qlin *a = arg;
    int j0 = task * a->chunk, j1 = j0 + a->chunk < a->N ? j0 + a->chunk : a->N;
    if (quant_simd() == QUANT_VNNI) gemv_vnni(a, j0, j1);
    else gemv_avx2(a, j0, j1);
    gelu_cols(a, j0, j1 - j0);
}

/* ----------------------------------------------------------------- GEMM */

/* A panel holds 16 weight rows; per block of 32 values: the codes (8 groups
 * of 4 values × 16 rows, 512 bytes), the 16 scales d and the 16 minimums m
 * as f32. Rows past the tile's end are zero. */
#define PANEL_ROWS 16
#define GEMM_ROWS 4 /* rows of x per register block */
#define PANEL_BLOCK_BYTES (512 + 64 + 64)

INLINE T256 void pack_panel(const int type, const struct qlin *a, int j, int rows, uint8_t *dst)
{
    const size_t bb = kern_row_bytes(type, QK);
    /* vpdpbusd takes q8_0's values unsigned, offset by 128 (unpack_256). */
    const __m256i flip = _mm256_set1_epi8(type == TYPE_Q8_0 && quant_simd() == QUANT_VNNI ? (char)0x80 : 0);
    for (int b = 0; b < a->nb; b++) {
        uint8_t *o = dst + (size_t)b * PANEL_BLOCK_BYTES;
        uint32_t codes[PANEL_ROWS][8];
        float *dw = (float *)(o + 512), *mw = (float *)(o + 576);
        for (int c = 0; c < PANEL_ROWS; c++) {
            if (c < rows) {
                const uint8_t *blk = a->w->data + (size_t)(j + c) * a->row_bytes + (size_t)b * bb;
                _mm256_storeu_si256((__m256i *)codes[c], _mm256_xor_si256(codes_avx2(type, blk), flip));
                dw[c] = f16_v2(blk);
                mw[c] = has_min(type) ? f16_v2(blk + 2) : 0.0f;
            } else {
                memset(codes[c], 0, sizeof codes[c]);
                dw[c] = mw[c] = 0.0f;
            }
        }
        uint32_t *out = (uint32_t *)o;
        for (int g = 0; g < 8; g++)
            for (int c = 0; c < PANEL_ROWS; c++) out[g * PANEL_ROWS + c] = codes[c][g];
    }
}

/* Rows i0 .. i0+R-1 of x against panels p0 .. p0+P-1 of the tile that
 * starts at weight row j0 (n rows), over all of K: R·P outputs of 16
 * columns in registers, each block's integer sums scaled and added to them. */
INLINE TV void gemm_micro(const int type, const int R, const int P, const struct qlin *a,
                          const uint8_t *panels, size_t panel_bytes, int i0, int p0, int j0, int n)
{
    const int nb = a->nb, K = a->K, off = weight_offset(type), mins = has_min(type);
    __m512 acc[GEMM_ROWS][2];
#pragma GCC unroll 2
    for (int p = 0; p < P; p++)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) acc[r][p] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m512i s[GEMM_ROWS][2];
        const uint8_t *wb[2];
#pragma GCC unroll 2
        for (int p = 0; p < P; p++) wb[p] = panels + (size_t)(p0 + p) * panel_bytes + (size_t)b * PANEL_BLOCK_BYTES;
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512i c = off ? _mm512_set1_epi32(a->act.c1[(size_t)(i0 + r) * nb + b]) : _mm512_setzero_si512();
#pragma GCC unroll 2
            for (int p = 0; p < P; p++) s[r][p] = c;
        }
        const int8_t *xq = a->act.q + (size_t)i0 * K + (size_t)b * QK;
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            __m512i w[2];
#pragma GCC unroll 2
            for (int p = 0; p < P; p++) w[p] = _mm512_load_si512((const void *)(wb[p] + 64 * g));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                int32_t x4;
                memcpy(&x4, xq + (size_t)r * K + 4 * g, 4);
                __m512i xv = _mm512_set1_epi32(x4);
#pragma GCC unroll 2
                for (int p = 0; p < P; p++) s[r][p] = _mm512_dpbusd_epi32(s[r][p], w[p], xv);
            }
        }
#pragma GCC unroll 2
        for (int p = 0; p < P; p++) {
            __m512 dw = _mm512_load_ps((const float *)(wb[p] + 512));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                size_t ib = (size_t)(i0 + r) * nb + b;
                acc[r][p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r][p]),
                                            _mm512_mul_ps(dw, _mm512_set1_ps(a->act.d[ib])), acc[r][p]);
            }
            if (mins) {
                __m512 mw = _mm512_load_ps((const float *)(wb[p] + 576));
#pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    acc[r][p] = _mm512_fmadd_ps(mw, _mm512_set1_ps(a->act.s[(size_t)(i0 + r) * nb + b]),
                                                acc[r][p]);
            }
        }
    }
    /* Then the bias and the old value, in ggml's order: (x·W + b) + y. */
#pragma GCC unroll 2
    for (int p = 0; p < P; p++) {
        int col = j0 + (p0 + p) * PANEL_ROWS, cnt = j0 + n - col < PANEL_ROWS ? j0 + n - col : PANEL_ROWS;
        __mmask16 km = (__mmask16)((1u << cnt) - 1);
        __m512 bias = a->bias ? _mm512_maskz_loadu_ps(km, a->bias + col) : _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            float *y = a->y + (size_t)(i0 + r) * a->N + col;
            __m512 v = a->bias ? _mm512_add_ps(acc[r][p], bias) : acc[r][p];
            if (a->flags & KERN_ACCUM) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(km, y));
            _mm512_mask_storeu_ps(y, km, v);
        }
    }
}

INLINE TV void gemm_rows(const int type, const int P, const struct qlin *a, const uint8_t *panels,
                         size_t panel_bytes, int p0, int j0, int n)
{
    int i = 0;
    for (; i + GEMM_ROWS <= a->m; i += GEMM_ROWS) gemm_micro(type, GEMM_ROWS, P, a, panels, panel_bytes, i, p0, j0, n);
    switch (a->m - i) {
    case 3: gemm_micro(type, 3, P, a, panels, panel_bytes, i, p0, j0, n); break;
    case 2: gemm_micro(type, 2, P, a, panels, panel_bytes, i, p0, j0, n); break;
    case 1: gemm_micro(type, 1, P, a, panels, panel_bytes, i, p0, j0, n); break;
    default: break;
    }
}

INLINE TV void gemm_t(const int type, const struct qlin *a, uint8_t *panels, int j0, int n)
{
    size_t panel_bytes = (size_t)a->nb * PANEL_BLOCK_BYTES;
    int n_panels = (n + PANEL_ROWS - 1) / PANEL_ROWS;
    for (int p = 0; p < n_panels; p++) {
        int rows = n - p * PANEL_ROWS < PANEL_ROWS ? n - p * PANEL_ROWS : PANEL_ROWS;
        pack_panel(type, a, j0 + p * PANEL_ROWS, rows, panels + (size_t)p * panel_bytes);
    }
    int p = 0;
    for (; p + 2 <= n_panels; p += 2) gemm_rows(type, 2, a, panels, panel_bytes, p, j0, n);
    if (p < n_panels) gemm_rows(type, 1, a, panels, panel_bytes, p, j0, n);
}

static TV void gemm_vnni(const struct qlin *a, uint8_t *panels, int j0, int n)
{
    switch (a->type) {
    case TYPE_Q4_0: gemm_t(TYPE_Q4_0, a, panels, j0, n); break;
    case TYPE_Q4_1: gemm_t(TYPE_Q4_1, a, panels, j0, n); break;
    case TYPE_Q5_0: gemm_t(TYPE_Q5_0, a, panels, j0, n); break;
    case TYPE_Q5_1: gemm_t(TYPE_Q5_1, a, panels, j0, n); break;
    default: gemm_t(TYPE_Q8_0, a, panels, j0, n); break;
    }
}

/* The AVX2 GEMM on the same panels: a panel's 16 rows are two vectors of
 * 8 int32 lanes (rows 0-7, 8-15), each lane 4 values of one row. Rows
 * i0 .. i0+R-1 of x against half h of the panel: R × 8 outputs. The byte-pair
 * sums of 4 groups of 4- or 5-bit codes stay within 16 bits (4 · 2·31·127)
 * and go to 32 bits together; q8_0's go at once. */
#define GEMM2_ROWS 4

INLINE T256 void gemm2_micro(const int type, const int R, const struct qlin *a, const uint8_t *panel, int i0,
                             int h, int col, int cnt)
{
    const int nb = a->nb, K = a->K, mins = has_min(type), offset = type != TYPE_Q8_0 && a->offset;
    const int span = type == TYPE_Q8_0 ? 1 : 4;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[GEMM2_ROWS];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *wb = panel + (size_t)b * PANEL_BLOCK_BYTES + 32 * h;
        const int8_t *xq = a->act.q + (size_t)i0 * K + (size_t)b * QK;
        __m256i s[GEMM2_ROWS];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            s[r] = offset ? _mm256_set1_epi32(a->act.c1[(size_t)(i0 + r) * nb + b]) : _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int g0 = 0; g0 < 8; g0 += span) {
            __m256i t[GEMM2_ROWS];
#pragma GCC unroll 8
            for (int g = g0; g < g0 + span; g++) {
                __m256i w = _mm256_load_si256((const __m256i *)(wb + 64 * g));
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    int32_t x4;
                    memcpy(&x4, xq + (size_t)r * K + 4 * g, 4);
                    __m256i p = pair_sums(type, w, _mm256_set1_epi32(x4));
                    t[r] = g == g0 ? p : _mm256_add_epi16(t[r], p);
                }
            }
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) s[r] = _mm256_add_epi32(s[r], _mm256_madd_epi16(t[r], ones));
        }
        __m256 dw = _mm256_load_ps((const float *)(wb + 512));
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            size_t ib = (size_t)(i0 + r) * nb + b;
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[r]), _mm256_mul_ps(dw, _mm256_set1_ps(a->act.d[ib])),
                                     acc[r]);
        }
        if (mins) {
            __m256 mw = _mm256_load_ps((const float *)(wb + 576));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                acc[r] = _mm256_fmadd_ps(mw, _mm256_set1_ps(a->act.s[(size_t)(i0 + r) * nb + b]), acc[r]);
        }
    }
    /* Then the bias and the old value, as gemm_micro does. */
    const __m256i km = _mm256_cmpgt_epi32(_mm256_set1_epi32(cnt), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 bias = a->bias ? _mm256_maskload_ps(a->bias + col, km) : _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        float *y = a->y + (size_t)(i0 + r) * a->N + col;
        __m256 v = a->bias ? _mm256_add_ps(acc[r], bias) : acc[r];
        if (a->flags & KERN_ACCUM) v = _mm256_add_ps(v, _mm256_maskload_ps(y, km));
        _mm256_maskstore_ps(y, km, v);
    }
}

INLINE T256 void gemm2_t(const int type, const struct qlin *a, uint8_t *panels, int j0, int n)
{
    size_t panel_bytes = (size_t)a->nb * PANEL_BLOCK_BYTES;
    int n_panels = (n + PANEL_ROWS - 1) / PANEL_ROWS;
    for (int p = 0; p < n_panels; p++) {
        int rows = n - p * PANEL_ROWS < PANEL_ROWS ? n - p * PANEL_ROWS : PANEL_ROWS;
        pack_panel(type, a, j0 + p * PANEL_ROWS, rows, panels + (size_t)p * panel_bytes);
    }
    for (int p = 0; p < n_panels; p++) {
        for (int h = 0; h < 2; h++) {
            int col = j0 + p * PANEL_ROWS + 8 * h, cnt = j0 + n - col < 8 ? j0 + n - col : 8;
            if (cnt <= 0) break;
            const uint8_t *panel = panels + (size_t)p * panel_bytes;
            int i = 0;
            for (; i + GEMM2_ROWS <= a->m; i += GEMM2_ROWS) gemm2_micro(type, GEMM2_ROWS, a, panel, i, h, col, cnt);
            switch (a->m - i) {
            case 3: gemm2_micro(type, 3, a, panel, i, h, col, cnt); break;
            case 2: gemm2_micro(type, 2, a, panel, i, h, col, cnt); break;
            case 1: gemm2_micro(type, 1, a, panel, i, h, col, cnt); break;
            default: break;
            }
        }
    }
}

static T256 void gemm_avx2(const struct qlin *a, uint8_t *panels, int j0, int n)
{
    switch (a->type) {
    case TYPE_Q4_0: gemm2_t(TYPE_Q4_0, a, panels, j0, n); break;
    case TYPE_Q4_1: gemm2_t(TYPE_Q4_1, a, panels, j0, n); break;
    case TYPE_Q5_0: gemm2_t(TYPE_Q5_0, a, panels, j0, n); break;
    case TYPE_Q5_1: gemm2_t(TYPE_Q5_1, a, panels, j0, n); break;
    default: gemm2_t(TYPE_Q8_0, a, panels, j0, n); break;
    }
}

static void gemm_task(void *arg, int task, int thread)
{
    struct qlin *a = arg;
    int j0 = task * a->chunk, n = j0 + a->chunk < a->N ? a->chunk : a->N - j0;
    uint8_t *panels = (uint8_t *)kern_pool_scratch(a->pool, thread);
    if (quant_simd() == QUANT_VNNI) gemm_vnni(a, panels, j0, n);
    else gemm_avx2(a, panels, j0, n);
    gelu_cols(a, j0, n);
}

/* --------------------------------------------------------------- linear */

int quant_linear(struct kern_pool *pool, const struct tensor *w, const float *bias, const float *x,
                 int m, float *y, int flags)
{
    struct qlin a = {
        .pool = pool, .w = w, .bias = bias, .x = x, .y = y, .m = m,
        .K = (int)w->ne[0], .N = (int)w->ne[1], .nb = (int)(w->ne[0] / QK),
        .type = w->type, .offset = weight_offset(w->type), .flags = flags,
        .row_bytes = kern_row_bytes(w->type, w->ne[0]),
    };
    if (m <= 0 || a.N <= 0) return 0;
    size_t nblk = (size_t)m * a.nb;
    size_t bytes = nblk * QK + nblk * 3 * sizeof(float) + nblk * 8 * sizeof(int32_t) + 256;
    uint8_t *buf = kern_pool_shared(pool, bytes);
    if (!buf) return HARK_ENOMEM;
    a.act.c8 = (int32_t *)buf;
    a.act.c1 = a.act.c8 + nblk * 8;
    a.act.d = (float *)(a.act.c1 + nblk);
    a.act.s = a.act.d + nblk;
    a.act.q = (int8_t *)(a.act.s + nblk);

    int nt = kern_pool_threads(pool);
    a.rows_per_task = m < 16 ? m : (m + 4 * nt - 1) / (4 * nt);
    kern_pool_run(pool, quantize_task, &a, (m + a.rows_per_task - 1) / a.rows_per_task);

    if (!quant_simd()) {
        int chunk = (a.N + nt * 8 - 1) / (nt * 8);
        a.chunk = chunk < 8 ? 8 : chunk;
        kern_pool_run(pool, portable_task, &a, (a.N + a.chunk - 1) / a.chunk);
        return 0;
    }
    if (m <= KERN_GEMV_MAX_ROWS) {
        int chunk = nt == 1 ? a.N : (a.N + nt * 8 - 1) / (nt * 8);
        a.chunk = chunk < 8 ? 8 : chunk;
        kern_pool_run(pool, gemv_task, &a, (a.N + a.chunk - 1) / a.chunk);
        return 0;
    }
    /* Tiles of whole panels: one per thread, or the same number for every
     * thread when a thread's share does not fit its scratch. */
    size_t panel_bytes = (size_t)a.nb * PANEL_BLOCK_BYTES;
    int cap = (int)((size_t)KERN_SCRATCH_FLOATS * sizeof(float) / panel_bytes) * PANEL_ROWS;
    if (cap < PANEL_ROWS) return HARK_ENOMEM;
    int share = (a.N + nt - 1) / nt;
    int rounds = (share + cap - 1) / cap;
    int per = (a.N + nt * rounds - 1) / (nt * rounds);
    per = (per + PANEL_ROWS - 1) / PANEL_ROWS * PANEL_ROWS;
    if (per > cap) per = cap;
    a.chunk = per;
    kern_pool_run(pool, gemm_task, &a, (a.N + per - 1) / per);
    return 0;
}
