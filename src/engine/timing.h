/*
 * timing.h: what `hark bench` needs from inside the engine (timing.c).
 *
 * Whole transcriptions are timed through the public API (hark.h); the
 * figures of single stages need calls the public API does not make on their
 * own. This header is the one place the benchmark reaches past hark.h: the
 * stages to time (log-mel of a buffer, one encoder window, decoder reserve,
 * prompt and step), the facts it prints beside them (weight type, encoder
 * FLOPs, decoder bytes per token), the GEMM rate of the engine's own linear
 * layer, the state's word-alignment time, WAV reading and a monotonic
 * clock. Nothing else in the engine uses it.
 *
 * Every function takes a loaded model or a state made for it, as hark.h
 * does; a state is used by one thread at a time.
 */
#ifndef HARK_TIMING_H
#define HARK_TIMING_H

#include <stddef.h>
#include <stdint.h>

#include "hark.h"

/* The sample rate hark_transcribe and the stages take (mel.h's
 * MEL_SAMPLE_RATE). */
#define TIMING_SAMPLE_RATE 16000

/* Monotonic milliseconds. */
double timing_now_ms(void);

/* ------------------------------------------------------------------ stages */

/* Log-mel of n_samples of audio with the model's filters on n_threads
 * threads: *mel (n_mels, *n_frames) is malloc'd and the caller's to free.
 * Returns 0 or a HARK_E* code. */
int timing_mel(const hark_model *model, const float *pcm, size_t n_samples, int n_threads, float **mel,
               int *n_frames);

/* One encoder window, frames [0, 2 * n_audio_ctx) of mel (n_mels,
 * n_frames); leaves the cross-attention keys/values in the state. Returns 0
 * or a HARK_E* code. */
int timing_encode(hark_state *st, const float *mel, int n_frames);

/* Makes sure decoder slots 0..n_seq-1 have caches (n_seq at most 8).
 * Returns 0 or a HARK_E* code. */
int timing_dec_reserve(hark_state *st, int n_seq);

/* Runs the n_prompt tokens of prompt through the decoder in slot `slot`
 * from position 0 and writes the last token's logits (n_vocab). Returns 0
 * or a HARK_E* code. */
int timing_dec_prompt(hark_state *st, int slot, const int32_t *prompt, int n_prompt, float *logits);

/* One decoding step of n_seq slots at position pos: tokens[i] is fed to
 * slot slots[i], and row i of logits (n_seq, n_vocab) gets its logits.
 * Returns 0 or a HARK_E* code. */
int timing_dec_step(hark_state *st, int n_seq, const int *slots, const int32_t *tokens, int pos, float *logits);

/* The decoder's start: [sot] for English-only models, [sot, <|en|>,
 * <|transcribe|>] for multilingual ones, into prompt (room for 4). Returns
 * its length. */
int timing_prompt(const hark_model *model, int32_t *prompt);

/* ------------------------------------------------------------------- facts */

/* The type name of the model's weights (its token embedding's: "f16",
 * "q8_0", ...); borrowed, static. */
const char *timing_weight_type(const hark_model *model);

/* 1 if the encoder's linear weights are a quantized block type (multiplied
 * in integers), 0 for f16 / f32. */
int timing_encoder_quantized(const hark_model *model);

/* Multiply-adds x 2 of one encoder window. */
double timing_encoder_flops(const hark_model *model);

/* Bytes a decoder step at batch 1 reads at position pos. */
double timing_decoder_bytes(const hark_model *model, int pos);

/* The milliseconds the state has spent on word timestamps, summed over its
 * transcriptions since the last reset, and the reset. */
double timing_align_ms(const hark_state *st);
void timing_align_reset(hark_state *st);

/* ---------------------------------------------------------------- machine */

/* The engine's linear layer, y = x W^T, on a made-up weight of the
 * large-v3 MLP shape (1500 x 1280 x 5120), f32 or (quantized) q8_0, on a
 * pool of n_threads: the best rate of a few runs in G multiply-adds x 2 per
 * second, 0 when its buffers cannot be had. */
double timing_linear_rate(int n_threads, int quantized);

/* ------------------------------------------------------------------- audio */

/* Reads a 16-bit PCM WAV file at 16 kHz into *pcm (mono float, malloc'd,
 * the caller's to free). Returns 0 or a HARK_E* code with a reason in err. */
int timing_wav_read(const char *path, float **pcm, size_t *n_samples, char *err, size_t errlen);

#endif
