/*
 * blas.c: loads OpenBLAS's cblas_sgemm with dlopen (blas.h).
 *
 * OpenBLAS reads OPENBLAS_CORETYPE once, when it is loaded, so hark loads
 * its own instance and chooses its kernels from the CPU's features: the
 * AVX-512 ("SkylakeX") ones wherever the CPU has AVX-512 (they are about
 * twice as fast on Zen 5 as the AVX2 ones OpenBLAS would pick by itself),
 * whatever a machine-wide OPENBLAS_CORETYPE says for other programs. The
 * choice can be forced with HARK_OPENBLAS_CORETYPE. An OpenBLAS that cannot
 * be kept single-threaded is not used.
 */
#include "blas.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#include "testing.h"

typedef void (*sgemm_fn)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb, float beta, float *c,
                         int ldc);
typedef void (*set_threads_fn)(int n);

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static sgemm_fn g_sgemm;  /* OpenBLAS, or NULL */
static atomic_int g_blas_on;

static void load(void)
{
    __builtin_cpu_init();
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

void blas_load(void) { pthread_once(&g_once, load); }

int blas_on(void)
{
    pthread_once(&g_once, load);
    return atomic_load_explicit(&g_blas_on, memory_order_relaxed);
}

void blas_sgemm(int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc)
{
    g_sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, trans_b ? CBLAS_TRANS : CBLAS_NO_TRANS, M, N, K, alpha, A, lda, B,
            ldb, beta, C, ldc);
}

int kern_blas(void) { return blas_on(); }

void kern_set_blas(int on)
{
    pthread_once(&g_once, load);
    atomic_store(&g_blas_on, on && g_sgemm != NULL);
}
