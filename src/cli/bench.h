/*
 * bench.h: `hark bench`, timings of one model's stages (load, mel, encoder,
 * decoder steps) and of whole transcriptions, with whisper.cpp 1.9.3's
 * figures beside ours for the shapes they were measured on.
 */
#ifndef HARK_CLI_BENCH_H
#define HARK_CLI_BENCH_H

#include <stdio.h>

/* `hark bench ...`: argv[0] is "bench". Prints figures on stdout and
 * returns CLI_EXIT_OK, CLI_EXIT_FAIL (the model or an audio file cannot be
 * read, a stage fails) or CLI_EXIT_USAGE. */
int cli_bench(int argc, char **argv);

/* Prints the subcommand's help. */
void cli_bench_help(FILE *out);

/* The median of n values (sorted in place). */
double bench_median(double *v, int n);

/* The machine's ceilings at a thread count (benchhw.c): read bandwidth in
 * GB/s, the engine's f32 and q8_0 GEMM in G(FL)OP/s on the large-v3 MLP
 * shape, and register-bound AVX-512 FMA and vpdpbusd rates (0 where the CPU
 * lacks them). */
#define BENCH_MAX_THREADS_HW 64
struct bench_machine {
    int threads;
    double read_gbs;
    double f32_gemm, i8_gemm;
    double fma_peak, vnni_peak;
};
void bench_machine(int threads, struct bench_machine *m);
void bench_machine_print(const struct bench_machine *m);

/* `hark bench vad ...` (benchvad.c): speech detection's figures; argv[0]
 * is "vad". */
int cli_bench_vad(int argc, char **argv);
void cli_bench_vad_help(FILE *out);

#endif
