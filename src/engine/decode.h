/*
 * decode.h: hark_transcribe's window loop (decode.c), which drives the
 * encoder and decoder over 30 s windows and turns their logits into
 * segments.
 *
 * Two decoding profiles exist (hark.h enum hark_decoder): openai-whisper's
 * decoding.py / transcribe.py rules and whisper.cpp 1.9.3's departures from
 * them (../shared/reference/README.md §10). Everything that needs no model
 * is a pure function elsewhere so that tests can drive it with hand-made
 * logits and scripted token sequences: the logit rules (logits.h), token
 * choice, beam and window bookkeeping and segment building (search.h), and
 * the entropy and compression-ratio checks (compress.h).
 */
#ifndef HARK_DECODE_H
#define HARK_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "hark.h"

/* openai-whisper's non_speech_tokens for a model's vocabulary, computed
 * with tok_encode the way tokenizer.py computes them with tiktoken (see
 * decode_nonspeech_symbols). Writes up to max ids (with repeats; the
 * suppress list removes them) and returns the count or a HARK_E* code. */
struct hark_model;
int decode_nonspeech_ids(const struct hark_model *m, int32_t *out, int max);

struct decode_seq;

/* Hooks for tests that drive the window loop (tests/ref/test_lockstep.c).
 * Each may be NULL. */
struct decode_hooks {
    void *user;
    /* Called once a window's prompt is built, before decoding it. */
    void (*window_begin)(void *user, int window, int seek, const int32_t *prompt, int n_prompt);
    /* Greedy steps only: returns the token to take at this step, given the
     * final log-probabilities and the engine's own choice. */
    int32_t (*step)(void *user, int window, int step, const float *logprobs, int n_vocab,
                    int32_t chosen);
    /* Called after a window's bookkeeping: its output tokens and the seek
     * the next window starts at. */
    void (*window_end)(void *user, int window, int seek, const struct decode_seq *s,
                       int result_len, int seek_delta, int next_seek);
    /* With word timestamps, after a window's DTW: its input matrix x
     * (rows, cols), the path's row starts and cost. */
    void (*aligned)(void *user, int window, int seek, const float *x, int rows, int cols, const int *row_start,
                    double cost);
};

/* Checks a transcription's arguments: the state and audio, beam and
 * best-of sizes, temperature, task and profile, the language for the
 * model, and that every sample is finite. Returns 0, HARK_EINVAL or
 * HARK_EAUDIO with a reason in err. */
int decode_check(const struct hark_state *st, const float *pcm, size_t n_samples,
                 const struct hark_options *opt, char *err, size_t errlen);

/* The buffers decode_run keeps in a state (logits, log-probabilities,
 * candidate sequences, the beam, openai's padded window, text scratch),
 * grown on the first transcription and reused by the next ones. Owned by
 * the state; hark_state_free frees them with decode_buf_free (NULL is a
 * no-op). */
struct decode_buf;
void decode_buf_free(struct decode_buf *buf);

/* hark_transcribe with hooks, on the whole audio (opt->vad is not looked
 * at). Same contract as hark_transcribe. */
int decode_run(struct hark_state *st, const float *pcm, size_t n_samples,
               const struct hark_options *opt, const struct decode_hooks *hooks,
               struct hark_result **out, char *err, size_t errlen);

#endif
