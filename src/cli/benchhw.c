/*
 * benchhw.c: what this machine can do, so that `hark bench` can say how
 * close each stage comes to it.
 *
 * Three ceilings, each measured here rather than taken from a data sheet
 * (a shared virtual machine rarely gets its data sheet's figures):
 *   - read bandwidth: threads summing disjoint slices of a buffer far larger
 *     than the caches, the limit of a decoder step that streams its weights;
 *   - f32 GEMM: the engine's own linear layer (timing_linear_rate) on an f32
 *     weight of the large-v3 MLP shape (1500 x 1280 x 5120), the path f16 and
 *     f32 encoders take, with the register-bound FMA rate beside it;
 *   - int8 GEMM: the same shape with q8_0 weights (the quantized encoder's
 *     path), with the register-bound vpdpbusd rate beside it where the CPU
 *     has AVX-512 VNNI.
 * Each figure is the best of a few runs: a ceiling, not a typical run.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "kernels.h"
#include "timing.h"

#define BW_BYTES ((size_t)1 << 30)  /* 1 GiB: far past any cache */
#define BW_RUNS 3
#define LOOP_ITERS 20000000L

struct bw_slice {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
};

/* Eight independent sums, so that loads and not the adds set the pace. */
static void *bw_read(void *arg)
{
    struct bw_slice *s = arg;
    uint64_t a[8] = {0};
    size_t i;
    for (i = 0; i + 8 <= s->n; i += 8)
        for (int k = 0; k < 8; k++) a[k] += s->p[i + k];
    for (; i < s->n; i++) a[0] += s->p[i];
    s->sum = a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
    return NULL;
}

static double read_bandwidth(int threads)
{
    uint64_t *buf = malloc(BW_BYTES);
    struct bw_slice sl[BENCH_MAX_THREADS_HW];
    pthread_t tid[BENCH_MAX_THREADS_HW];
    size_t n = BW_BYTES / sizeof(uint64_t), per;
    double best = 0;

    if (!buf) return 0;
    if (threads > BENCH_MAX_THREADS_HW) threads = BENCH_MAX_THREADS_HW;
    for (size_t i = 0; i < n; i++) buf[i] = i * 0x9E3779B97F4A7C15ull;
    per = n / (size_t)threads;
    for (int r = 0; r < BW_RUNS; r++) {
        int started = 0;
        double t0 = timing_now_ms();
        for (int t = 0; t < threads; t++) {
            sl[t] = (struct bw_slice){buf + per * (size_t)t, per, 0};
            if (t > 0 && pthread_create(&tid[t], NULL, bw_read, &sl[t]) == 0) started |= 1 << t;
        }
        bw_read(&sl[0]);
        for (int t = 1; t < threads; t++) {
            if (started & (1 << t)) pthread_join(tid[t], NULL);
            else bw_read(&sl[t]);
        }
        double ms = timing_now_ms() - t0;
        double gbs = (double)(per * (size_t)threads * sizeof(uint64_t)) / (ms * 1e6);
        if (gbs > best) best = gbs;
    }
    /* The sums are used, so that the reads are not optimized away. */
    if (sl[0].sum == 42) best += 1e-9;
    free(buf);
    return best;
}

#if defined(__x86_64__)
#include <immintrin.h>

/* Twelve independent accumulator chains in named registers (an array would
 * live in memory), enough to cover the latency of FMA and vpdpbusd on
 * current cores; the rates are per thread. */
#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

/* A function that runs LOOP_ITERS rounds of STEP_<name> (on twelve
 * accumulators of type V, DECL_<name>, with operands b and c made by make
 * from bv and cv), sums the accumulators into an S (SUM_<name>) and returns
 * G(FL)OP/s for ops operations per step. */
#define PEAK_LOOP(name, isa, V, S, make, bv, cv, ops)                    \
    __attribute__((target(isa))) static double name(void)               \
    {                                                                   \
        V b = make(bv), c = make(cv);                                   \
        CHAINS(DECL_##name)                                             \
        double t0 = timing_now_ms();                                     \
        for (long i = 0; i < LOOP_ITERS; i++) {                         \
            CHAINS(STEP_##name)                                         \
        }                                                               \
        double ms = timing_now_ms() - t0;                                \
        S s = 0;                                                        \
        CHAINS(SUM_##name)                                              \
        if (s == (S)42) ms += 1e-9;                                     \
        return LOOP_ITERS * 12.0 * (ops) / (ms * 1e6);                  \
    }

#define DECL_fma_loop(k) __m512 a##k = _mm512_set1_ps((float)k);
#define STEP_fma_loop(k) a##k = _mm512_fmadd_ps(a##k, b, c);
#define SUM_fma_loop(k) s += _mm512_reduce_add_ps(a##k);
#define DECL_vnni_loop(k) __m512i a##k = _mm512_set1_epi32(k);
#define STEP_vnni_loop(k) a##k = _mm512_dpbusd_epi32(a##k, b, c);
#define SUM_vnni_loop(k) s += _mm512_reduce_add_epi32(a##k);

/* 16 lanes x (multiply + add) per FMA; 64 byte products and their sums per
 * vpdpbusd. */
PEAK_LOOP(fma_loop, "avx512f", __m512, float, _mm512_set1_ps, 0.999f, 1e-3f, 16 * 2)
PEAK_LOOP(vnni_loop, "avx512f,avx512vnni", __m512i, int, _mm512_set1_epi8, 3, -2, 64 * 2)

static double best_of(double (*fn)(void))
{
    double best = 0;
    for (int k = 0; k < 3; k++) {
        double v = fn();
        if (v > best) best = v;
    }
    return best;
}
#endif

void bench_machine(int threads, struct bench_machine *m)
{
    memset(m, 0, sizeof *m);
    m->threads = threads;
    m->read_gbs = read_bandwidth(threads);
    m->f32_gemm = timing_linear_rate(threads, 0);
    m->i8_gemm = timing_linear_rate(threads, 1);
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) m->fma_peak = best_of(fma_loop) * threads;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni"))
        m->vnni_peak = best_of(vnni_loop) * threads;
#endif
}

void bench_machine_print(const struct bench_machine *m)
{
    static const char *isa[] = {"scalar", "AVX2", "AVX-512"};
    printf(" this machine at %d thread%s (best of several runs)\n", m->threads, m->threads == 1 ? "" : "s");
    printf("  %-28s %10s\n", "kernels", isa[kern_simd()]);
    printf("  %-28s %10.1f GB/s\n", "read bandwidth", m->read_gbs);
    printf("  %-28s %10.1f GFLOP/s", "f32 GEMM 1500x1280x5120", m->f32_gemm);
    if (m->fma_peak > 0)
        printf("   (AVX-512 FMA loop %.0f: %.0f%%)", m->fma_peak, 100.0 * m->f32_gemm / m->fma_peak);
    printf("\n  %-28s %10.1f GOP/s", "q8_0 GEMM 1500x1280x5120", m->i8_gemm);
    if (m->vnni_peak > 0)
        printf("   (vpdpbusd loop %.0f: %.0f%%)", m->vnni_peak, 100.0 * m->i8_gemm / m->vnni_peak);
    printf("\n");
}
