/*
 * testing.h: engine functions that only the tests call (tests/unit,
 * tests/ref, tests/fuzz): switches between kernel implementations and views
 * into a state's intermediate results that the reference tests compare.
 *
 * They are kept out of the headers the engine and the service include so
 * that production code does not come to depend on them. Besides the tests,
 * only the files that define these functions include this header, so that
 * the compiler checks each definition against its declaration.
 */
#ifndef HARK_TESTING_H
#define HARK_TESTING_H

#include <stddef.h>
#include <stdint.h>

struct hark_state;

/* ---------------------------------------------------------------- kernels */

/* 1 if OpenBLAS was loaded and is in use (blas.c). */
int kern_blas(void);

/* The instruction set of the kernels (kernels.c, attention.c): at most
 * `isa` (enum kern_isa), as far as the CPU has it. Call only while no
 * kernel runs. */
void kern_set_simd(int isa);
/* The best instruction set this CPU has for the kernels. */
int kern_simd_best(void);
/* Turn OpenBLAS (blas.c) off (0) or back on (1, where available). */
void kern_set_blas(int on);

/* Quantizes n values of x (n a multiple of 32) into n / 32 blocks of 32 as
 * ggml's x86 build does (q8_0 and q8_1): per block, amax = max |x|, the
 * scale d = amax / 127 stored as f16 in d[b], and q = x · (127 / amax)
 * rounded half to even (0 for an all-zero block). When s is not NULL, s[b]
 * is the f16 of d · Σq (q8_1). Uses the SIMD path when quant_simd()
 * (quant.c). */
void quant_row_q8(const float *x, int64_t n, int8_t *q, uint16_t *d, uint16_t *s);

/* ------------------------------------------------------------- the model */

/* The last window's encoder output (n_audio_ctx, n_audio_state), and the
 * conv stem output before the positional embedding (n_audio_ctx,
 * n_audio_state); borrowed from the state until the next enc_forward
 * (encoder.c). */
const float *enc_output(const struct hark_state *st);
const float *enc_conv_output(const struct hark_state *st);

/* The cross-attention keys / values of decoder layer `layer`, (n_audio_ctx,
 * n_text_state) each, as the decoder uses them (rounded to f16) widened to
 * f32: a copy owned by the state, made on the first call and refreshed by
 * every enc_forward(); writing to it does not change the decoder's. NULL if
 * the copy cannot be allocated (decoder.c). */
float *dec_cross_k(struct hark_state *st, int layer);
float *dec_cross_v(struct hark_state *st, int layer);

/* The pre-tokenizer: the end of the piece of text[0..len) that starts at
 * byte i (< len), i.e. of the match of Whisper's regex
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * there. Bytes that are not well-formed UTF-8 count as one character each,
 * of neither class. Thread-safe (tokenizer.c). */
size_t tok_split(const char *text, size_t len, size_t i);

#endif
