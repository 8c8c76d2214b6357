/*
 * test_kernels.c: the numeric kernels against straightforward references.
 *
 * Block dequantization is checked on blocks packed here from known integer
 * values following WHISPER.md §6, f16 conversion on every one of the 65,536
 * bit patterns, and the products, LayerNorm, softmax, GELU and attention
 * against double-precision loops written in this file (attention also over
 * f16 keys and values in both layouts, and with keys and values per query).
 * Every kernel runs with the AVX-512 path and the scalar path, with and
 * without OpenBLAS, and on pools of 1 to 4 threads. Each test prints the
 * worst error it saw.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels.h"
#include "model.h"
#include "pool.h"
#include "quant.h"
#include "testing.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static float rnd_f(void) { return (float)((rnd_u32() & 0xffffff) / 16777216.0 * 2.0 - 1.0); }

/* A float that an f16 holds exactly (so d and m need no rounding). */
static float rnd_f16_value(float scale)
{
    return kern_f16_to_f32(kern_f32_to_f16(scale * (0.25f + 0.75f * fabsf(rnd_f())) * (rnd_u32() & 1 ? 1 : -1)));
}

static void put_f16(uint8_t *p, float v)
{
    uint16_t h = kern_f32_to_f16(v);
    memcpy(p, &h, 2);
}

/* The vector instruction set under test (enum kern_isa): main runs every
 * test once for each one the CPU has. */
static int g_isa;

/* Modes every kernel is run in: SIMD (g_isa) or scalar x BLAS on/off. */
static void set_mode(int mode)
{
    kern_set_simd(mode & 1 ? g_isa : KERN_SCALAR);
    kern_set_blas((mode >> 1) & 1);
}

static const char *mode_name(int mode)
{
    static const char *names[] = {"scalar", "simd", "scalar+blas", "simd+blas"};
    return names[mode];
}

/* --------------------------------------------------------------- f16 */

static void test_f16(void)
{
    static const struct { uint16_t h; float f; } known[] = {
        {0x3c00, 1.0f}, {0xc000, -2.0f}, {0x7bff, 65504.0f}, {0x0001, 5.9604644775390625e-8f},
        {0x03ff, 6.0975551605224609e-5f}, {0x0400, 6.103515625e-5f}, {0x3555, 0.333251953125f},
        {0x8000, -0.0f}, {0x0000, 0.0f},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        float f = kern_f16_to_f32(known[i].h);
        CHECKF(f == known[i].f && signbit(f) == signbit(known[i].f), "f16 %04x -> %g, expected %g",
               known[i].h, f, known[i].f);
        CHECKF(kern_f32_to_f16(known[i].f) == known[i].h, "%g -> f16 %04x", known[i].f,
               kern_f32_to_f16(known[i].f));
    }
    CHECK(isinf(kern_f16_to_f32(0x7c00)) && kern_f16_to_f32(0x7c00) > 0);
    CHECK(isinf(kern_f16_to_f32(0xfc00)) && kern_f16_to_f32(0xfc00) < 0);
    CHECK(isnan(kern_f16_to_f32(0x7e00)));
    CHECK(kern_f32_to_f16(INFINITY) == 0x7c00);
    CHECK((kern_f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (kern_f32_to_f16(NAN) & 0x3ff) != 0);
    /* Rounding: ties to even, overflow to infinity, underflow to zero. */
    CHECK(kern_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00);
    CHECK(kern_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02);
    CHECK(kern_f32_to_f16(65519.0f) == 0x7bff);
    CHECK(kern_f32_to_f16(65520.0f) == 0x7c00);
    CHECK(kern_f32_to_f16(0x1p-25f) == 0x0000);
    CHECK(kern_f32_to_f16(3 * 0x1p-26f) == 0x0001);
    CHECK(kern_f32_to_f16(-1e-10f) == 0x8000);

    /* Every pattern: value formula, round trip, and the SIMD converter. */
    static uint16_t all[65536];
    static float simd[65536], scal[65536];
    int bad = 0, bad_rt = 0;
    for (int i = 0; i < 65536; i++) {
        all[i] = (uint16_t)i;
        int e = (i >> 10) & 31, m = i & 1023;
        double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
        if (i & 0x8000) v = -v;
        float f = kern_f16_to_f32((uint16_t)i);
        if (!(isnan(v) ? isnan(f) : (double)f == v)) bad++;
        if (e != 31 || m == 0)
            if (kern_f32_to_f16(f) != i) bad_rt++;
    }
    CHECKF(bad == 0, "%d f16 patterns convert wrongly", bad);
    CHECKF(bad_rt == 0, "%d f16 patterns do not round-trip", bad_rt);
    set_mode(0);
    CHECK(kern_dequant_row(TYPE_F16, (const uint8_t *)all, scal, 65536) == 0);
    set_mode(1);
    CHECK(kern_dequant_row(TYPE_F16, (const uint8_t *)all, simd, 65536) == 0);
    int diff = 0;
    for (int i = 0; i < 65536; i++)
        if (memcmp(&simd[i], &scal[i], 4) && !(isnan(simd[i]) && isnan(scal[i]))) diff++;
    CHECKF(diff == 0, "%d f16 patterns differ between the SIMD and scalar converters", diff);
    printf("  f16: 65536 patterns, %d wrong, %d not round-tripping, %d SIMD/scalar differences, simd=%d\n",
           bad, bad_rt, diff, kern_simd());
    set_mode(3);
}

/* ----------------------------------------------------- quantized blocks */

static const int qtypes[] = {TYPE_Q4_0, TYPE_Q4_1, TYPE_Q5_0, TYPE_Q5_1, TYPE_Q8_0};

/* Packs one block from 32 integer values q (in the type's range) and d, m,
 * following WHISPER.md §6, and returns the 32 values it stands for in out. */
static void pack_block(int type, const int *q, float d, float m, uint8_t *blk, double *out)
{
    uint32_t qh = 0;
    put_f16(blk, d);
    for (int j = 0; j < 32; j++) {
        switch (type) {
        case TYPE_Q4_0: out[j] = (double)d * (q[j] - 8); break;
        case TYPE_Q4_1: out[j] = (double)d * q[j] + m; break;
        case TYPE_Q5_0: out[j] = (double)d * (q[j] - 16); break;
        case TYPE_Q5_1: out[j] = (double)d * q[j] + m; break;
        case TYPE_Q8_0: out[j] = (double)d * q[j]; break;
        }
    }
    if (type == TYPE_Q8_0) {
        for (int j = 0; j < 32; j++) blk[2 + j] = (uint8_t)(int8_t)q[j];
        return;
    }
    int off = 2;
    if (type == TYPE_Q4_1 || type == TYPE_Q5_1) {
        put_f16(blk + 2, m);
        off = 4;
    }
    if (type == TYPE_Q5_0 || type == TYPE_Q5_1) {
        for (int j = 0; j < 32; j++)
            if (q[j] & 16) qh |= 1u << j;
        memcpy(blk + off, &qh, 4);
        off += 4;
    }
    for (int j = 0; j < 16; j++) blk[off + j] = (uint8_t)((q[j] & 15) | ((q[j + 16] & 15) << 4));
}

/* Weight codes of the linear tests: random, or all at one end of the
 * type's range (g_q_end 1: the largest, -1: the smallest). */
static int g_q_end;

static void rnd_q(int type, int *q)
{
    int top = type == TYPE_Q4_0 || type == TYPE_Q4_1 ? 15 : type == TYPE_Q5_0 || type == TYPE_Q5_1 ? 31 : 127;
    int bottom = type == TYPE_Q8_0 ? -128 : 0;
    for (int j = 0; j < 32 && g_q_end; j++) q[j] = g_q_end > 0 ? top : bottom;
    for (int j = 0; j < 32 && !g_q_end; j++) {
        switch (type) {
        case TYPE_Q4_0: case TYPE_Q4_1: q[j] = (int)(rnd_u32() % 16); break;
        case TYPE_Q5_0: case TYPE_Q5_1: q[j] = (int)(rnd_u32() % 32); break;
        default: q[j] = (int)(rnd_u32() % 256) - 128; break;
        }
    }
}

static void test_dequant(void)
{
    enum { NB = 5 };
    uint8_t buf[NB * 34 + 1];
    double want[NB * 32];
    float got[NB * 32];
    double worst = 0;
    for (size_t t = 0; t < sizeof qtypes / sizeof qtypes[0]; t++) {
        int type = qtypes[t];
        size_t bb = kern_row_bytes(type, 32);
        CHECK(bb == (type == TYPE_Q4_0 ? 18 : type == TYPE_Q4_1 ? 20 : type == TYPE_Q5_0 ? 22
                     : type == TYPE_Q5_1 ? 24 : 34));
        CHECK(kern_row_bytes(type, 33) == 0);
        for (int b = 0; b < NB; b++) {
            int q[32];
            if (b == 0) {
                /* Extremes first: the lowest and highest value in each half. */
                int hi = type == TYPE_Q8_0 ? 127 : (type == TYPE_Q5_0 || type == TYPE_Q5_1) ? 31 : 15;
                int lo = type == TYPE_Q8_0 ? -128 : 0;
                for (int j = 0; j < 32; j++) q[j] = (j % 3 == 0) ? lo : (j % 3 == 1) ? hi : (j * 5) % (hi + 1);
            } else {
                rnd_q(type, q);
            }
            pack_block(type, q, rnd_f16_value(0.1f), rnd_f16_value(1.0f), buf + 1 + b * bb, want + b * 32);
        }
        for (int mode = 0; mode < 2; mode++) {
            set_mode(mode);
            /* Offset by one byte: weight data is unaligned in the mmap. */
            CHECK(kern_dequant_row(type, buf + 1, got, NB * 32) == 0);
            for (int i = 0; i < NB * 32; i++) {
                double e = fabs(got[i] - want[i]);
                if (e > worst) worst = e;
                CHECKF(e <= 1e-6 * fabs(want[i]) + 1e-7, "%s type %d value %d: %g, expected %g",
                       mode_name(mode), type, i, got[i], want[i]);
            }
        }
        CHECK(kern_dequant_row(type, buf, got, 31) == HARK_EINVAL);
    }
    CHECK(kern_dequant_row(4, buf, got, 32) == HARK_EINVAL);
    printf("  dequant: worst |error| %.3g\n", worst);
    set_mode(3);
}

/* -------------------------------------------------------------- linear */

struct wt {
    struct tensor t;
    uint8_t *raw;    /* allocation behind t.data (offset by one byte) */
    double *ref;     /* (N, K) values the weight stands for */
    int *qi;         /* block types: (N, K) signed integer values (q − offset) */
    double *bd, *bm; /* block types: (N, K/32) scales d and minimums m */
};

static const int all_types[] = {TYPE_F32, TYPE_F16, TYPE_Q4_0, TYPE_Q4_1, TYPE_Q5_0, TYPE_Q5_1, TYPE_Q8_0};

static void make_weight(struct wt *w, int type, int K, int N)
{
    size_t rb = kern_row_bytes(type, K);
    memset(w, 0, sizeof *w);
    w->raw = malloc(rb * (size_t)N + 64);
    w->ref = malloc(sizeof(double) * (size_t)K * N);
    w->qi = malloc(sizeof(int) * (size_t)K * N);
    w->bd = malloc(sizeof(double) * (size_t)(K / 32 + 1) * N);
    w->bm = malloc(sizeof(double) * (size_t)(K / 32 + 1) * N);
    uint8_t *data = type == TYPE_F32 ? w->raw : w->raw + 1;
    for (int j = 0; j < N; j++) {
        uint8_t *row = data + rb * (size_t)j;
        double *ref = w->ref + (size_t)j * K;
        if (type == TYPE_F32 || type == TYPE_F16) {
            for (int k = 0; k < K; k++) {
                float v = rnd_f() / sqrtf((float)K) * 2;
                if (type == TYPE_F16) {
                    put_f16(row + 2 * k, v);
                    ref[k] = kern_f16_to_f32(kern_f32_to_f16(v));
                } else {
                    memcpy(row + 4 * k, &v, 4);
                    ref[k] = v;
                }
            }
        } else {
            size_t bb = kern_row_bytes(type, 32);
            for (int b = 0; b < K / 32; b++) {
                int q[32], o = type == TYPE_Q4_0 ? 8 : type == TYPE_Q5_0 ? 16 : 0;
                float d = rnd_f16_value(0.02f), m = rnd_f16_value(0.1f);
                size_t ib = (size_t)j * (K / 32) + b;
                rnd_q(type, q);
                pack_block(type, q, d, m, row + b * bb, ref + b * 32);
                for (int k = 0; k < 32; k++) w->qi[(size_t)j * K + b * 32 + k] = q[k] - o;
                w->bd[ib] = d;
                w->bm[ib] = (type == TYPE_Q4_1 || type == TYPE_Q5_1) ? m : 0.0;
            }
        }
    }
    w->t.name = "test";
    w->t.type = type;
    w->t.n_dims = 2;
    w->t.ne[0] = K;
    w->t.ne[1] = N;
    w->t.ne[2] = w->t.ne[3] = 1;
    w->t.data = data;
    w->t.n_bytes = rb * (size_t)N;
    w->t.f32 = type == TYPE_F32 ? (const float *)data : NULL;
}

static void free_weight(struct wt *w)
{
    free(w->raw);
    free(w->ref);
    free(w->qi);
    free(w->bd);
    free(w->bm);
}

/* One activation block quantized as ggml's x86 build does it, written out
 * from its description: d = amax / 127 kept as f16, q = x · (127 / amax)
 * rounded half to even, s = d · Σq as f16. */
static void q8_ref(const float *x, int *q, double *d, double *s)
{
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    float df = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        q[j] = (int)nearbyintf(x[j] * id);
        sum += q[j];
    }
    *d = kern_f16_to_f32(kern_f32_to_f16(df));
    *s = kern_f16_to_f32(kern_f32_to_f16(df * (float)sum));
}

/* Row j of a block-type weight times activation row x (K values), as ggml
 * computes it: Σ_b d_w·d_x·Σ w·q (+ m_w·s_x); mag gets Σ of |terms|. */
static double qdot_ref(const struct wt *w, int j, const float *x, double *mag)
{
    int K = (int)w->t.ne[0], q[32];
    double sum = 0, d, s;
    *mag = 0;
    for (int b = 0; b < K / 32; b++) {
        size_t ib = (size_t)j * (K / 32) + b;
        q8_ref(x + b * 32, q, &d, &s);
        long isum = 0, iabs = 0;
        for (int k = 0; k < 32; k++) {
            isum += (long)w->qi[(size_t)j * K + b * 32 + k] * q[k];
            iabs += labs((long)w->qi[(size_t)j * K + b * 32 + k] * q[k]);
        }
        sum += w->bd[ib] * d * (double)isum + w->bm[ib] * s;
        *mag += fabs(w->bd[ib] * d) * (double)iabs + fabs(w->bm[ib] * s);
    }
    return sum;
}

static double gelu_ref(double x) { return 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

/* Activations of the linear tests: random, or every value of a row ±1
 * (row 0 g_x_sign, then alternating), which quantizes to ±127. */
static int g_x_sign;

/* Runs kern_linear and returns the worst error relative to the sum of the
 * magnitudes of the terms (|w·x| + |b|, + |y| when accumulating). */
static double check_linear(struct kern_pool *pool, const struct wt *w, int m, int flags, const char *what)
{
    int K = (int)w->t.ne[0], N = (int)w->t.ne[1];
    float *x = malloc(sizeof(float) * (size_t)m * K);
    float *y = malloc(sizeof(float) * (size_t)m * N);
    float *y0 = malloc(sizeof(float) * (size_t)m * N);
    float *bias = malloc(sizeof(float) * (size_t)N);
    for (size_t i = 0; i < (size_t)m * K; i++) x[i] = g_x_sign ? (float)(g_x_sign * (i / K % 2 ? 1 : -1)) : rnd_f();
    for (int j = 0; j < N; j++) bias[j] = rnd_f() * 0.1f;
    for (size_t i = 0; i < (size_t)m * N; i++) y0[i] = y[i] = rnd_f();
    kern_linear(pool, &w->t, bias, x, m, y, flags);
    double worst = 0;
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < N; j++) {
            double s = bias[j], mag = fabs(bias[j]);
            if (w->t.type >= TYPE_Q4_0) {
                double mq;
                s += qdot_ref(w, j, x + (size_t)i * K, &mq);
                mag += mq;
            } else {
                for (int k = 0; k < K; k++) {
                    s += w->ref[(size_t)j * K + k] * x[(size_t)i * K + k];
                    mag += fabs(w->ref[(size_t)j * K + k] * x[(size_t)i * K + k]);
                }
            }
            if (flags & KERN_GELU) s = gelu_ref(s);
            if (flags & KERN_ACCUM) {
                s += y0[(size_t)i * N + j];
                mag += fabs(y0[(size_t)i * N + j]);
            }
            double e = fabs(y[(size_t)i * N + j] - s) / (mag + 1e-3);
            if (!(e <= worst)) worst = e;
        }
    }
    CHECKF(worst < 2e-6, "%s type %d K %d N %d m %d flags %d: relative error %.3g", what, w->t.type, K, N,
           m, flags, worst);
    free(x);
    free(y);
    free(y0);
    free(bias);
    return worst;
}

static void test_linear(void)
{
    static const int shapes[][2] = {{64, 1}, {96, 7}, {384, 33}, {160, 100}, {37, 19}, {1, 5}};
    static const int rows[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 40};
    double worst[4] = {0};
    int n_runs = 0;
    for (int mode = 0; mode < 4; mode++) {
        set_mode(mode);
        for (int nt = 1; nt <= 3; nt += 2) {
            struct kern_pool *pool = kern_pool_new(nt);
            CHECK(pool != NULL);
            if (!pool) return;
            for (size_t ti = 0; ti < sizeof all_types / sizeof all_types[0]; ti++) {
                for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
                    int type = all_types[ti], K = shapes[si][0], N = shapes[si][1];
                    if (type >= TYPE_Q4_0 && K % 32) continue;
                    struct wt w;
                    make_weight(&w, type, K, N);
                    for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
                        int flags = (int)(ri % 3); /* none, accumulate, gelu */
                        double e = check_linear(pool, &w, rows[ri], flags, mode_name(mode));
                        if (e > worst[mode]) worst[mode] = e;
                        n_runs++;
                    }
                    free_weight(&w);
                }
            }
            kern_pool_free(pool);
        }
    }
    /* The encoder's shape: 1500 rows, every weight type. */
    struct kern_pool *pool = kern_pool_new(2);
    for (int mode = 1; mode < 4; mode += 2) {
        set_mode(mode);
        for (size_t ti = 0; ti < sizeof all_types / sizeof all_types[0]; ti++) {
            struct wt w;
            make_weight(&w, all_types[ti], 64, 48);
            double e = check_linear(pool, &w, 1500, ti % 2 ? KERN_GELU : 0, mode_name(mode));
            if (e > worst[mode]) worst[mode] = e;
            free_weight(&w);
            n_runs++;
        }
    }
    kern_pool_free(pool);
    printf("  linear: %d runs; worst relative error scalar %.3g, simd %.3g, scalar+blas %.3g, simd+blas %.3g\n",
           n_runs, worst[0], worst[1], worst[2], worst[3]);
    set_mode(3);
}

/* The integer kernels' limits: weight codes all at one end of their range
 * times activations all at ±127 make the largest byte-pair sums (q8_0:
 * 2·128·127, close to the 16-bit limit) and the largest sums kept in 16 bits
 * across several groups (4- and 5-bit codes). Row counts take the GEMV and
 * the GEMM paths. */
static void test_linear_extremes(void)
{
    static const int rows[] = {1, 5, 9, 23};
    struct kern_pool *pool = kern_pool_new(2);
    double worst = 0;
    int n_runs = 0;
    for (int mode = 0; mode < 2; mode++) {
        set_mode(mode);
        for (size_t ti = 0; ti < sizeof qtypes / sizeof qtypes[0]; ti++) {
            for (g_q_end = -1; g_q_end <= 1; g_q_end += 2) {
                struct wt w;
                make_weight(&w, qtypes[ti], 256, 40);
                for (g_x_sign = -1; g_x_sign <= 1; g_x_sign += 2) {
                    for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
                        double e = check_linear(pool, &w, rows[ri], (int)(ri % 2), mode_name(mode));
                        if (e > worst) worst = e;
                        n_runs++;
                    }
                }
                free_weight(&w);
            }
        }
    }
    g_q_end = g_x_sign = 0;
    printf("  linear at the code limits: %d runs, worst relative error %.3g\n", n_runs, worst);
    kern_pool_free(pool);
    set_mode(3);
}

/* SIMD against scalar GEMV on one weight of every type: the two paths add
 * in different orders, so they agree to rounding. */
static void test_gemv_simd_vs_scalar(void)
{
    struct kern_pool *pool = kern_pool_new(2);
    double worst = 0;
    for (size_t ti = 0; ti < sizeof all_types / sizeof all_types[0]; ti++) {
        struct wt w;
        make_weight(&w, all_types[ti], 256, 77);
        float x[3 * 256], ya[3 * 77], yb[3 * 77];
        for (int i = 0; i < 3 * 256; i++) x[i] = rnd_f();
        set_mode(1);
        kern_linear(pool, &w.t, NULL, x, 3, ya, 0);
        set_mode(0);
        kern_linear(pool, &w.t, NULL, x, 3, yb, 0);
        for (int i = 0; i < 3 * 77; i++) {
            double e = fabs(ya[i] - yb[i]);
            if (!(e <= worst)) worst = e;
        }
        free_weight(&w);
    }
    CHECKF(worst < 1e-5, "SIMD and scalar GEMV differ by %.3g", worst);
    printf("  gemv simd vs scalar: worst |difference| %.3g\n", worst);
    kern_pool_free(pool);
    set_mode(3);
}

/* Activation quantization (quant_row_q8) on blocks worked out by hand:
 * ties round half to even, an all-zero block has scale 0 and no NaN, ±amax
 * map to ±127; SIMD and portable give the same bytes. */
static void test_q8_rows(void)
{
    float x[96] = {0};
    int8_t want[96] = {0};
    /* Block 0: amax 127, so d = 1 and every value is rounded on its own. */
    const float v0[] = {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -127.0f, 3.49f, -2.5f, 100.0f};
    const int8_t q0[] = {127, 0, 2, 2, 0, -2, -127, 3, -2, 100};
    for (int j = 0; j < 10; j++) {
        x[j] = v0[j];
        want[j] = q0[j];
    }
    /* Block 1: all zeros. Block 2: amax 254 (negative), so d = 2 and the
     * multiplier is 0.5: 127 -> 63.5 -> 64, 1 -> 0.5 -> 0, 3 -> 1.5 -> 2. */
    x[64] = 127.0f;
    x[65] = 1.0f;
    x[66] = 3.0f;
    x[69] = -254.0f;
    want[64] = 64;
    want[66] = 2;
    want[69] = -127;
    const uint16_t want_d[3] = {0x3c00, 0, 0x4000}; /* 1, 0, 2 in f16 */
    int sums[3] = {0};
    for (int i = 0; i < 96; i++) sums[i / 32] += want[i];
    for (int mode = 0; mode < 2; mode++) {
        set_mode(mode);
        int8_t q[96];
        uint16_t d[3], sv[3];
        quant_row_q8(x, 96, q, d, sv);
        for (int i = 0; i < 96; i++)
            CHECKF(q[i] == want[i], "%s: value %d (%g) quantized to %d, expected %d", mode_name(mode), i, x[i], q[i],
                   want[i]);
        for (int b = 0; b < 3; b++) {
            float s = kern_f16_to_f32(sv[b]);
            CHECKF(d[b] == want_d[b], "%s: block %d scale 0x%04x, expected 0x%04x", mode_name(mode), b, d[b],
                   want_d[b]);
            CHECKF(s == kern_f16_to_f32(want_d[b]) * (float)sums[b] && s == s, "%s: block %d sum %g, expected %g",
                   mode_name(mode), b, s, kern_f16_to_f32(want_d[b]) * (float)sums[b]);
        }
    }
    set_mode(3);
}

static void test_sgemm(void)
{
    static const int dims[][3] = {{1, 5, 7}, {5, 33, 64}, {16, 16, 16}, {37, 50, 70}, {200, 96, 64}};
    double worst = 0;
    for (int mode = 0; mode < 4; mode++) {
        set_mode(mode);
        for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
            for (int tb = 0; tb < 2; tb++) {
                int M = dims[d][0], N = dims[d][1], K = dims[d][2];
                int lda = K + 3, ldb = (tb ? K : N) + 2, ldc = N + 1;
                float beta = tb ? 0.5f : 0.0f, alpha = 0.75f;
                float *A = malloc(sizeof(float) * (size_t)M * lda);
                float *B = malloc(sizeof(float) * (size_t)(tb ? N : K) * ldb);
                float *C = malloc(sizeof(float) * (size_t)M * ldc);
                float *C0 = malloc(sizeof(float) * (size_t)M * ldc);
                for (size_t i = 0; i < (size_t)M * lda; i++) A[i] = rnd_f();
                for (size_t i = 0; i < (size_t)(tb ? N : K) * ldb; i++) B[i] = rnd_f();
                for (size_t i = 0; i < (size_t)M * ldc; i++) C0[i] = C[i] = beta ? rnd_f() : NAN;
                kern_sgemm(tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
                for (int i = 0; i < M; i++) {
                    for (int j = 0; j < N; j++) {
                        double s = 0;
                        for (int k = 0; k < K; k++)
                            s += (double)A[(size_t)i * lda + k] *
                                 (tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
                        s = alpha * s + (beta ? beta * C0[(size_t)i * ldc + j] : 0);
                        double e = fabs(C[(size_t)i * ldc + j] - s);
                        if (!(e <= worst)) worst = e;
                    }
                    /* The padding column is not touched. */
                    float pad = C[(size_t)i * ldc + N], pad0 = C0[(size_t)i * ldc + N];
                    CHECK(memcmp(&pad, &pad0, 4) == 0);
                }
                free(A);
                free(B);
                free(C);
                free(C0);
            }
        }
    }
    CHECKF(worst < 1e-4, "sgemm worst |error| %.3g", worst);
    printf("  sgemm: worst |error| %.3g (blas available: %d)\n", worst, (kern_set_blas(1), kern_blas()));
    set_mode(3);
}

/* ------------------------------------------------- norms and activations */

static void test_layernorm(void)
{
    enum { M = 7 };
    static const int ns[] = {1, 15, 16, 17, 384, 1283};
    double worst = 0;
    struct kern_pool *pool = kern_pool_new(2);
    for (int mode = 0; mode < 2; mode++) {
        set_mode(mode);
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            int n = ns[ni];
            float *x = malloc(sizeof(float) * M * n), *y = malloc(sizeof(float) * M * n);
            float *w = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
            for (int i = 0; i < M * n; i++) x[i] = rnd_f() * 3 + 5; /* a large mean */
            for (int i = 0; i < n; i++) {
                w[i] = 1 + rnd_f() * 0.1f;
                b[i] = rnd_f() * 0.1f;
            }
            kern_layernorm(pool, x, M, n, w, b, y);
            for (int r = 0; r < M; r++) {
                double mean = 0, var = 0;
                for (int i = 0; i < n; i++) mean += x[r * n + i];
                mean /= n;
                for (int i = 0; i < n; i++) var += (x[r * n + i] - mean) * (x[r * n + i] - mean);
                var /= n;
                for (int i = 0; i < n; i++) {
                    double want = (x[r * n + i] - mean) / sqrt(var + 1e-5) * w[i] + b[i];
                    double e = fabs(y[r * n + i] - want);
                    if (!(e <= worst)) worst = e;
                }
            }
            /* In place gives the same result. */
            kern_layernorm(pool, x, M, n, w, b, x);
            CHECK(memcmp(x, y, sizeof(float) * M * n) == 0);
            free(x);
            free(y);
            free(w);
            free(b);
        }
    }
    kern_pool_free(pool);
    CHECKF(worst < 2e-5, "layernorm worst |error| %.3g", worst);
    printf("  layernorm: worst |error| %.3g\n", worst);
    set_mode(3);
}

static void test_softmax_gelu(void)
{
    double worst_sm = 0, worst_gelu = 0, worst_pair = 0;
    for (int mode = 0; mode < 2; mode++) {
        set_mode(mode);
        for (int n = 1; n <= 100; n += 3) {
            float x[100];
            double want[100], mx = -1e30, sum = 0;
            for (int i = 0; i < n; i++) {
                x[i] = rnd_f() * 40 + (i == n / 2 ? 1000 : 0); /* large values need the max subtracted */
                if (i == 2) x[i] = -INFINITY;                    /* a masked score */
                mx = x[i] > mx ? x[i] : mx;
            }
            for (int i = 0; i < n; i++) sum += (want[i] = exp((double)x[i] - mx));
            kern_softmax(x, n);
            for (int i = 0; i < n; i++) {
                double e = fabs(x[i] - want[i] / sum);
                if (!(e <= worst_sm)) worst_sm = e;
            }
        }
        enum { NG = 4001 };
        static float g[NG + 4];
        for (int i = 0; i < NG; i++) g[i] = -10.0f + 20.0f * (float)i / (NG - 1);
        g[NG] = -100.0f;
        g[NG + 1] = 100.0f;
        g[NG + 2] = 0.0f;
        g[NG + 3] = -5e-8f;
        static float in[NG + 4];
        memcpy(in, g, sizeof g);
        kern_gelu(g, NG + 4);
        for (int i = 0; i < NG + 4; i++) {
            double e = fabs(g[i] - gelu_ref(in[i])) / (1 + fabs(in[i]));
            if (!(e <= worst_gelu)) worst_gelu = e;
        }
    }
    /* SIMD against scalar softmax on a long row. */
    static float a[1500], b[1500];
    for (int i = 0; i < 1500; i++) a[i] = b[i] = rnd_f() * 20;
    set_mode(1);
    kern_softmax(a, 1500);
    set_mode(0);
    kern_softmax(b, 1500);
    for (int i = 0; i < 1500; i++) worst_pair = fmax(worst_pair, fabs(a[i] - b[i]) / (b[i] + 1e-30));
    CHECKF(worst_sm < 1e-6, "softmax worst |error| %.3g", worst_sm);
    CHECKF(worst_gelu < 1e-6, "gelu worst relative error %.3g", worst_gelu);
    CHECKF(worst_pair < 1e-5, "softmax simd vs scalar %.3g", worst_pair);
    printf("  softmax worst |error| %.3g, gelu worst rel %.3g, softmax simd/scalar rel %.3g\n", worst_sm,
           worst_gelu, worst_pair);
    set_mode(3);
}

/* ------------------------------------------------------------ attention */

/* The reference for one head of one query: out (hd) = softmax(q·Kᵀ/√hd)·V
 * in double, key j of the head at element j·ld of k (likewise v), f16 or
 * f32 by `f16`; p is scratch for n scores. */
static void att_ref(int hd, const float *q, const void *k, const void *v, size_t ld, int n, int f16,
                    double *p, double *out)
{
    double mx = -1e300, sum = 0;
    for (int j = 0; j < n; j++) {
        double s = 0;
        for (int d = 0; d < hd; d++) {
            size_t at = (size_t)j * ld + d;
            s += (double)q[d] * (f16 ? kern_f16_to_f32(((const uint16_t *)k)[at]) : ((const float *)k)[at]);
        }
        p[j] = s / sqrt((double)hd);
        mx = p[j] > mx ? p[j] : mx;
    }
    for (int j = 0; j < n; j++) sum += (p[j] = exp(p[j] - mx));
    for (int d = 0; d < hd; d++) {
        double s = 0;
        for (int j = 0; j < n; j++) {
            size_t at = (size_t)j * ld + d;
            s += p[j] / sum * (f16 ? kern_f16_to_f32(((const uint16_t *)v)[at]) : ((const float *)v)[at]);
        }
        out[d] = s;
    }
}

static void test_attention(void)
{
    static const int cases[][5] = {
        /* n_head, head_dim, n_q, n_kv, causal */
        {3, 64, 1, 7, 1}, {3, 64, 5, 5, 1}, {2, 24, 6, 300, 1}, {4, 64, 1, 1500, 0},
        {2, 64, 130, 130, 0}, {2, 64, 300, 300, 1}, {1, 16, 8, 40, 0}, {2, 64, 20, 50, 1},
        {2, 64, 13, 1500, 0}, {3, 40, 3, 33, 0}, {2, 128, 7, 70, 1},
    };
    double worst = 0;
    for (int mode = 0; mode < 4; mode++) {
        set_mode(mode);
        for (int nt = 1; nt <= 4; nt += 3) {
            struct kern_pool *pool = kern_pool_new(nt);
            for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
                int H = cases[c][0], hd = cases[c][1], nq = cases[c][2], nkv = cases[c][3], causal = cases[c][4];
                int S = H * hd, ldq = S + 5, ldkv = S + 3, ldo = S + 1;
                float *q = malloc(sizeof(float) * (size_t)nq * ldq);
                float *k = malloc(sizeof(float) * (size_t)nkv * ldkv);
                float *v = malloc(sizeof(float) * (size_t)nkv * ldkv);
                float *o = malloc(sizeof(float) * (size_t)nq * ldo);
                double *p = malloc(sizeof(double) * (size_t)nkv), ref[128];
                for (size_t i = 0; i < (size_t)nq * ldq; i++) q[i] = rnd_f() * 2;
                for (size_t i = 0; i < (size_t)nkv * ldkv; i++) k[i] = rnd_f() * 2;
                for (size_t i = 0; i < (size_t)nkv * ldkv; i++) v[i] = rnd_f();
                kern_attention(pool, H, hd, q, ldq, nq, k, v, ldkv, nkv, causal, o, ldo);
                for (int h = 0; h < H; h++) {
                    for (int i = 0; i < nq; i++) {
                        int len = causal ? nkv - nq + i + 1 : nkv;
                        att_ref(hd, q + (size_t)i * ldq + h * hd, k + h * hd, v + h * hd, (size_t)ldkv, len, 0, p,
                                ref);
                        for (int d = 0; d < hd; d++) {
                            double e = fabs(o[(size_t)i * ldo + h * hd + d] - ref[d]);
                            if (!(e <= worst)) worst = e;
                        }
                    }
                }
                free(q);
                free(k);
                free(v);
                free(o);
                free(p);
            }
            kern_pool_free(pool);
        }
    }
    CHECKF(worst < 2e-5, "attention worst |error| %.3g", worst);
    printf("  attention: worst |error| %.3g\n", worst);
    set_mode(3);
}

/* ----------------------------------------------------------------- pool */

struct pool_probe {
    atomic_int *hits;
    atomic_int bad_thread;
    int n_threads;
};

/* f16 keys and values, row-major and head-major. */
static void test_attention_kv16(void)
{
    static const int cases[][4] = {
        /* n_head, head_dim, n_q, n_kv */
        {6, 64, 1, 1500}, {4, 64, 5, 300}, {2, 64, 9, 37}, {3, 24, 2, 50}, {2, 16, 1, 1}, {1, 128, 3, 100},
    };
    double worst = 0;
    for (int mode = 0; mode < 2; mode++) {
        set_mode(mode);
        for (int nt = 1; nt <= 4; nt += 3) {
            struct kern_pool *pool = kern_pool_new(nt);
            for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
                int H = cases[c][0], hd = cases[c][1], nq = cases[c][2], nkv = cases[c][3];
                for (int head_major = 0; head_major < 2; head_major++) {
                    int S = H * hd, ldq = S + 5, ldo = S + 1;
                    int ldkv = head_major ? hd : S + 3;
                    size_t hs = head_major ? (size_t)nkv * hd : (size_t)hd;
                    size_t nel = head_major ? (size_t)H * nkv * hd : (size_t)nkv * ldkv;
                    float *q = malloc(sizeof(float) * (size_t)nq * ldq);
                    uint16_t *k = malloc(sizeof(uint16_t) * nel), *v = malloc(sizeof(uint16_t) * nel);
                    float *o = malloc(sizeof(float) * (size_t)nq * ldo);
                    double *p = malloc(sizeof(double) * (size_t)nkv), ref[128];
                    for (size_t i = 0; i < (size_t)nq * ldq; i++) q[i] = rnd_f() * 2;
                    for (size_t i = 0; i < nel; i++) k[i] = kern_f32_to_f16(rnd_f() * 2);
                    for (size_t i = 0; i < nel; i++) v[i] = kern_f32_to_f16(rnd_f());
                    kern_attention_kv16(pool, H, hd, q, ldq, nq, k, v, ldkv, hs, nkv, o, ldo);
                    for (int h = 0; h < H; h++) {
                        for (int i = 0; i < nq; i++) {
                            att_ref(hd, q + (size_t)i * ldq + h * hd, k + h * hs, v + h * hs, (size_t)ldkv, nkv, 1,
                                    p, ref);
                            for (int d = 0; d < hd; d++) {
                                double e = fabs(o[(size_t)i * ldo + h * hd + d] - ref[d]);
                                if (!(e <= worst)) worst = e;
                            }
                        }
                    }
                    free(q);
                    free(k);
                    free(v);
                    free(o);
                    free(p);
                }
            }
            kern_pool_free(pool);
        }
    }
    set_mode(3);
    CHECKF(worst < 2e-5, "f16 attention worst |error| %.3g", worst);
    printf("  f16 keys/values: worst |error| %.3g\n", worst);
}

/* One query per sequence, each with its own keys and values. */
static void test_attention_rows(void)
{
    enum { H = 3, HD = 64, S = H * HD, NQ = 5, NKV = 41, LD = S + 7 };
    double worst = 0;
    float *k[NQ], *v[NQ];
    static float q[NQ * S], o[NQ * S];
    double p[NKV], ref[HD];
    for (int i = 0; i < NQ; i++) {
        k[i] = malloc(sizeof(float) * NKV * LD);
        v[i] = malloc(sizeof(float) * NKV * LD);
        for (int j = 0; j < NKV * LD; j++) {
            k[i][j] = rnd_f() * 2;
            v[i][j] = rnd_f();
        }
    }
    for (int i = 0; i < NQ * S; i++) q[i] = rnd_f() * 2;
    for (int mode = 0; mode < 4; mode++) {
        set_mode(mode);
        for (int nt = 1; nt <= 4; nt += 3) {
            struct kern_pool *pool = kern_pool_new(nt);
            for (int n_q = 1; n_q <= NQ; n_q += NQ - 1) {
                for (int n_kv = 1; n_kv <= NKV; n_kv += NKV - 1) {
                    memset(o, 0, sizeof o);
                    kern_attention_rows(pool, H, HD, q, S, n_q, (const float *const *)k, (const float *const *)v,
                                        LD, n_kv, o, S);
                    for (int i = 0; i < n_q; i++) {
                        for (int h = 0; h < H; h++) {
                            att_ref(HD, q + i * S + h * HD, k[i] + h * HD, v[i] + h * HD, LD, n_kv, 0, p, ref);
                            for (int d = 0; d < HD; d++) {
                                double e = fabs(o[i * S + h * HD + d] - ref[d]);
                                if (!(e <= worst)) worst = e;
                            }
                        }
                    }
                }
            }
            kern_pool_free(pool);
        }
    }
    set_mode(3);
    for (int i = 0; i < NQ; i++) {
        free(k[i]);
        free(v[i]);
    }
    CHECKF(worst < 2e-5, "per-row attention worst |error| %.3g", worst);
    printf("  per-row keys/values: worst |error| %.3g\n", worst);
}

/* Row conversions against the scalar converters checked in test_f16. */
/* The LSTM step against a double-precision reference, for the scalar and
 * the SIMD kernels, over several steps with the state carried; and the f16
 * rounding against the scalar conversion. */
static void test_lstm_round(void)
{
    enum { H = 128, G = 4 * H };
    static float w_t[H * G], pre[G], z[G];
    double worst = 0, worst_round = 0;
    for (int i = 0; i < H * G; i++) w_t[i] = rnd_f() * 0.15f;
    for (int mode = 0; mode < 2; mode++) {
        set_mode(mode);
        float h[H] = {0}, c[H] = {0};
        double hd[H] = {0}, cd[H] = {0};
        for (int step = 0; step < 6; step++) {
            for (int j = 0; j < G; j++) pre[j] = rnd_f() * 3.0f + (step == 3 && j == 5 ? 90.0f : 0.0f);
            double zd[G];
            for (int j = 0; j < G; j++) {
                zd[j] = pre[j];
                for (int k = 0; k < H; k++) zd[j] += hd[k] * w_t[k * G + j];
            }
            for (int j = 0; j < H; j++) {
                double ig = 1 / (1 + exp(-zd[j])), fg = 1 / (1 + exp(-zd[H + j])), gg = tanh(zd[2 * H + j]);
                double og = 1 / (1 + exp(-zd[3 * H + j]));
                cd[j] = fg * cd[j] + ig * gg;
                hd[j] = og * tanh(cd[j]);
            }
            kern_lstm_step(H, w_t, pre, h, c, z);
            for (int j = 0; j < H; j++) {
                double e = fmax(fabs(h[j] - hd[j]), fabs(c[j] - cd[j]));
                if (!(e <= worst)) worst = e;
            }
        }
        float x[1000], y[1000];
        for (int i = 0; i < 1000; i++) x[i] = y[i] = rnd_f() * (i % 7 == 0 ? 70000.0f : 3.0f);
        kern_round_f16(x, 1000);
        for (int i = 0; i < 1000; i++) {
            float want = kern_f16_to_f32(kern_f32_to_f16(y[i]));
            double e = fabs((double)x[i] - want);
            if (!(e <= worst_round) && !(isinf(x[i]) && isinf(want))) worst_round = e;
        }
    }
    printf("  lstm step: worst |error| %.2e over 6 steps; f16 rounding: worst difference %.2e\n", worst, worst_round);
    CHECK(worst < 2e-5);
    CHECK(worst_round == 0);
}

static void test_f16_rows(void)
{
    enum { N = 4099 };
    static float src[N], back[N];
    static uint16_t h[N];
    for (int i = 0; i < N; i++) src[i] = rnd_f() * (float)(1 << (i % 20)) * 0x1p-10f;
    src[0] = 1.0f + 0x1p-11f; /* a tie */
    src[1] = 65520.0f;        /* overflows */
    src[2] = 3 * 0x1p-26f;    /* subnormal */
    src[3] = -0.0f;
    int bad = 0, bad_back = 0;
    for (int mode = 0; mode < 2; mode++) {
        set_mode(mode);
        for (int n = N; n >= N - 20; n -= 7) {
            kern_f32_to_f16_row(src, h, (size_t)n);
            kern_f16_to_f32_row(h, back, (size_t)n);
            for (int i = 0; i < n; i++) {
                if (h[i] != kern_f32_to_f16(src[i])) bad++;
                if (memcmp(&back[i], &(float){kern_f16_to_f32(h[i])}, 4) != 0) bad_back++;
            }
        }
    }
    set_mode(3);
    CHECKF(bad == 0 && bad_back == 0, "row conversions: %d f32->f16 and %d f16->f32 mismatches", bad, bad_back);
    printf("  row conversions: %d mismatches\n", bad + bad_back);
}

static void probe_task(void *arg, int task, int thread)
{
    struct pool_probe *p = arg;
    atomic_fetch_add(&p->hits[task], 1);
    if (thread < 0 || thread >= p->n_threads) atomic_store(&p->bad_thread, 1);
}

/* --------------------------------------------------------- median of 7 */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Against sorting each reflected window, for every length from 1 to 70 and
 * a window's worth, values with many ties, in both modes. */
static void test_median7(void)
{
    for (int mode = 0; mode < 2; mode++) {
        set_mode(mode);
        int bad = 0;
        for (int n = 1; n <= 1500; n = n < 70 ? n + 1 : n + 715) {
            float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
            for (int i = 0; i < n; i++) x[i] = (rnd_u32() & 3) ? rnd_f() : (float)(rnd_u32() % 3);
            kern_median7(x, y, n);
            for (int j = 0; j < n; j++) {
                float w[7], want;
                if (n <= 3) {
                    want = x[j];
                } else {
                    for (int t = -3; t <= 3; t++) {
                        int i = j + t;
                        if (i < 0) i = -i;
                        else if (i >= n) i = 2 * (n - 1) - i;
                        w[t + 3] = x[i];
                    }
                    qsort(w, 7, sizeof *w, cmp_float);
                    want = w[3];
                }
                if (y[j] != want && bad++ < 5)
                    fprintf(stderr, "    %s n %d j %d: %g, not %g\n", mode_name(mode), n, j, y[j], want);
            }
            free(x);
            free(y);
        }
        CHECKF(bad == 0, "%s: %d medians differ", mode_name(mode), bad);
    }
    set_mode(3);
}

static void test_pool(void)
{
    enum { NT = 5000 };
    static atomic_int hits[NT];
    for (int n = 1; n <= 4; n++) {
        struct kern_pool *pool = kern_pool_new(n);
        CHECK(pool && kern_pool_threads(pool) == n);
        if (!pool) continue;
        struct pool_probe pr = {.hits = hits, .n_threads = n};
        atomic_store(&pr.bad_thread, 0);
        int wrong = 0;
        /* Many small jobs in a row (decoder-like), then one big one. A
         * thread still holding a finished job's ticket while the next job is
         * published must not claim or count anything of it: with that race
         * a few tasks in 20000 jobs ran twice or not at all. */
        for (int rep = 0; rep < 20000; rep++) {
            int nt = 1 + rep % 7;
            for (int i = 0; i < nt; i++) atomic_store(&hits[i], 0);
            kern_pool_run(pool, probe_task, &pr, nt);
            for (int i = 0; i < nt; i++) wrong += atomic_load(&hits[i]) != 1;
        }
        for (int i = 0; i < NT; i++) atomic_store(&hits[i], 0);
        kern_pool_run(pool, probe_task, &pr, NT);
        for (int i = 0; i < NT; i++) wrong += atomic_load(&hits[i]) != 1;
        kern_pool_run(pool, probe_task, &pr, 0);
        CHECKF(wrong == 0, "threads %d: %d tasks not run exactly once", n, wrong);
        CHECK(atomic_load(&pr.bad_thread) == 0);
        for (int t = 0; t < n; t++) {
            float *s = kern_pool_scratch(pool, t);
            CHECK(s != NULL && ((uintptr_t)s & 63) == 0);
            if (s) s[KERN_SCRATCH_FLOATS - 1] = 1.0f;
        }
        kern_pool_free(pool);
    }
    CHECK(kern_pool_new(0) == NULL);
    kern_pool_free(NULL);
}

int main(int argc, char **argv)
{
    static const struct { const char *name; void (*fn)(void); } tests[] = {
        {"f16", test_f16},
        {"dequant", test_dequant},
        {"linear", test_linear},
        {"linear_extremes", test_linear_extremes},
        {"gemv_simd_vs_scalar", test_gemv_simd_vs_scalar},
        {"q8_rows", test_q8_rows},
        {"sgemm", test_sgemm},
        {"layernorm", test_layernorm},
        {"softmax_gelu", test_softmax_gelu},
        {"attention", test_attention},
        {"attention_kv16", test_attention_kv16},
        {"attention_rows", test_attention_rows},
        {"lstm_round", test_lstm_round},
        {"f16_rows", test_f16_rows},
        {"median7", test_median7},
    };
    static const char *isa_names[] = {"scalar", "avx2", "avx512"};
    t_init(argc, argv);
    int best = kern_simd_best();
    printf("kernels: best %s, blas %d\n", isa_names[best], kern_blas());
    /* Each vector instruction set against the scalar kernels: AVX-512 and
     * AVX2 on a CPU with both. */
    for (g_isa = best; g_isa >= (best > KERN_SCALAR ? KERN_AVX2 : KERN_SCALAR); g_isa--) {
        for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
            char name[64];
            snprintf(name, sizeof name, "%s_%s", isa_names[g_isa], tests[i].name);
            t_run(name, tests[i].fn);
        }
    }
    g_isa = best;
    set_mode(3);
    t_run("pool", test_pool);
    return t_summary();
}
