/*
 * state.h: the per-transcription state (struct hark_state).
 *
 * A state owns every buffer one transcription needs: the thread pool, the
 * encoder's activations and output, the cross-attention keys/values computed
 * once per window, and the decoder's self-attention key/value caches for up
 * to STATE_MAX_SEQ sequences (beams or best-of candidates). It is carved at
 * hark_state_new() so that nothing is allocated inside the per-token loop;
 * the decoding loop's own buffers are added by the first transcription and
 * kept for the next.
 */
#ifndef HARK_STATE_H
#define HARK_STATE_H

#include "hark.h"

/* The most sequences decoded at once (beams or best-of candidates): the
 * largest beam_size / best_of accepted, the decoder's cache slots and the
 * beam search's width. */
#define STATE_MAX_SEQ 8

struct kern_pool;
struct enc_ctx;
struct dec_ctx;
struct decode_buf;

struct hark_state {
    const struct hark_model *model;
    int n_threads;
    struct kern_pool *pool;
    struct enc_ctx *enc;
    struct dec_ctx *dec;
    struct decode_buf *decode; /* decode_run's buffers, made on its first call (decode.h) */
    double align_ms; /* time spent on word timestamps, summed over transcriptions */
};

#endif
