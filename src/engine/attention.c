/*
 * attention.c: multi-head attention for the encoder and decoder
 * (kern_attention, kern_attention_kv16 and kern_attention_rows in kernels.h).
 *
 * Three kernels, chosen per call by its shape (see attention()): query tiles
 * against packed keys for many queries with head dimension 64 (the encoder,
 * a decoder prompt); a fused streaming kernel, scores, softmax and the
 * weighted sum in one pass, for few queries (a decoding step), f16 keys and
 * values, or keys per query; and two sgemm calls per block of queries
 * otherwise. Each has an AVX-512 version and a portable one as kernels.c's
 * loops do, the fused kernel an AVX2 one too (without AVX-512 the tiles'
 * shapes go to sgemm); all run heads and blocks of queries on the pool.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "blas.h"
#include "kernels.h"
#include "pool.h"
#include "simd.h"

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

/* One row of hd keys or values, f32 or f16, eight floats from c. */
static inline __attribute__((always_inline)) T256 __m256 ld_kv_256(const int f16, const void *p, size_t off)
{
    if (f16) return ld_f16x8((const uint16_t *)p + off);
    return _mm256_loadu_ps((const float *)p + off);
}

/* att_block_1 with AVX2, for head dimensions that are a multiple of 8:
 * a query's scores are dot products with the key rows, their softmax
 * (exp_256), then the weighted sum of the value rows, 64 output floats in
 * registers at a time. */
static inline __attribute__((always_inline)) T256 void att_block_t_256(const int f16, int hd, int nq,
                                                                        const float *q, size_t ldq,
                                                                        const void *k, const void *v, size_t ld,
                                                                        int n, int causal, float scale, float *s,
                                                                        float *out, size_t ldo)
{
    for (int i = 0; i < nq; i++) {
        const float *qi = q + (size_t)i * ldq;
        float *oi = out + (size_t)i * ldo;
        int len = causal ? n - nq + 1 + i : n;
        __m256 vmax = _mm256_set1_ps(-INFINITY);
        int j = 0;
        for (; j + 8 <= len; j += 8) {
            __m256 acc[8];
#pragma GCC unroll 8
            for (int t = 0; t < 8; t++) acc[t] = _mm256_setzero_ps();
            for (int c = 0; c < hd; c += 8) {
                __m256 qv = _mm256_loadu_ps(qi + c);
#pragma GCC unroll 8
                for (int t = 0; t < 8; t++)
                    acc[t] = _mm256_fmadd_ps(qv, ld_kv_256(f16, k, (size_t)(j + t) * ld + c), acc[t]);
            }
            /* Eight horizontal sums at once: lane t is key j+t's score. */
            __m256 h01 = _mm256_hadd_ps(acc[0], acc[1]), h23 = _mm256_hadd_ps(acc[2], acc[3]);
            __m256 h45 = _mm256_hadd_ps(acc[4], acc[5]), h67 = _mm256_hadd_ps(acc[6], acc[7]);
            __m256 h0 = _mm256_hadd_ps(h01, h23), h1 = _mm256_hadd_ps(h45, h67);
            __m256 sc = _mm256_add_ps(_mm256_permute2f128_ps(h0, h1, 0x20), _mm256_permute2f128_ps(h0, h1, 0x31));
            sc = _mm256_mul_ps(sc, _mm256_set1_ps(scale));
            _mm256_storeu_ps(s + j, sc);
            vmax = _mm256_max_ps(vmax, sc);
        }
        float mx = hmax_256(vmax);
        for (; j < len; j++) {
            __m256 acc = _mm256_setzero_ps();
            for (int c = 0; c < hd; c += 8)
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(qi + c), ld_kv_256(f16, k, (size_t)j * ld + c), acc);
            s[j] = hsum_256(acc) * scale;
            mx = s[j] > mx ? s[j] : mx;
        }
        float sum = exp_sum_256(s, len, mx);
        __m256 inv = _mm256_set1_ps(1.0f / sum);
        for (int c0 = 0; c0 < hd; c0 += 64) {
            int nv = (hd - c0) / 8 < 8 ? (hd - c0) / 8 : 8;
            __m256 acc[8];
            for (int t = 0; t < nv; t++) acc[t] = _mm256_setzero_ps();
            for (j = 0; j < len; j++) {
                __m256 pj = _mm256_set1_ps(s[j]);
                for (int t = 0; t < nv; t++)
                    acc[t] = _mm256_fmadd_ps(pj, ld_kv_256(f16, v, (size_t)j * ld + c0 + 8 * t), acc[t]);
            }
            for (int t = 0; t < nv; t++) _mm256_storeu_ps(oi + c0 + 8 * t, _mm256_mul_ps(acc[t], inv));
        }
    }
}

static T256 void att_block_256(int f16, int hd, int nq, const float *q, size_t ldq, const void *k, const void *v,
                               size_t ld, int n, int causal, float scale, float *s, float *out, size_t ldo)
{
    if (f16) att_block_t_256(1, hd, nq, q, ldq, k, v, ld, n, causal, scale, s, out, ldo);
    else att_block_t_256(0, hd, nq, q, ldq, k, v, ld, n, causal, scale, s, out, ldo);
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
    int isa = kern_simd();
    if (isa == KERN_AVX512 && a->head_dim <= ATT_MAX_HD)
        att_block_any_512(a->f16, a->head_dim, nq, q, (size_t)a->ldq, k, v, (size_t)a->ldkv, n, a->causal,
                          a->scale, s, out, (size_t)a->ldo);
    else if (isa == KERN_AVX2 && a->head_dim % 8 == 0)
        att_block_256(a->f16, a->head_dim, nq, q, (size_t)a->ldq, k, v, (size_t)a->ldkv, n, a->causal, a->scale,
                      s, out, (size_t)a->ldo);
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
    if (!a->f16 && !a->ks && a->n_q > ATT_FUSED_MAX_Q && kern_simd() == KERN_AVX512 && a->head_dim == ATT_TILE_HD &&
        ls * (ATT_TILE_HD + ATT_TILE_Q) <= KERN_SCRATCH_FLOATS) {
        /* Each task packs its head's keys once: few, large tasks, at
         * least 4 per thread for balance. */
        int per_head = (4 * nt + n_head - 1) / n_head;
        a->qb = (a->n_q + per_head - 1) / per_head;
        a->n_qb = (a->n_q + a->qb - 1) / a->qb;
        kern_pool_run(pool, att_tile_task, a, n_head * a->n_qb);
        return;
    }
    if (a->f16 || a->ks || a->n_q <= ATT_FUSED_MAX_Q || !blas_on()) {
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
