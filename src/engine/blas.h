/*
 * blas.h: OpenBLAS, loaded at run time (blas.c).
 *
 * hark does not link against OpenBLAS: it loads libopenblas.so.0 with dlopen
 * on first use, so that OPENBLAS_CORETYPE can be chosen before the library
 * initialises, and runs it single-threaded (the kernels' pool supplies the
 * parallelism). Without the library, or with HARK_NO_BLAS set, every product
 * takes the portable path in kernels.c.
 */
#ifndef HARK_BLAS_H
#define HARK_BLAS_H

/* Loads OpenBLAS once (later calls return at once). The first call sets
 * OPENBLAS_CORETYPE in the environment, so it is made before the process
 * starts threads of its own (kern_pool_new calls it). Thread-safe. */
void blas_load(void);

/* 1 if OpenBLAS is loaded and in use (loading it on the first call). */
int blas_on(void);

/* C (M, N) = alpha · A (M, K) · op(B) + beta · C through cblas_sgemm, as
 * kern_sgemm documents; only when blas_on(). */
void blas_sgemm(int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);

#endif
