/*
 * state.c: hark_state_new / hark_state_free.
 *
 * A state is everything one transcription needs besides the model: the
 * thread pool, the encoder's buffers, the decoder's activations and
 * key/value caches. Slot 0's self-attention cache is reserved here so that
 * a state can decode right away; dec_reserve() adds slots for beams.
 */
#include <stdlib.h>

#include "decode.h"
#include "decoder.h"
#include "encoder.h"
#include "errors.h"
#include "model.h"
#include "pool.h"
#include "state.h"

#define STATE_MAX_THREADS 256

hark_state *hark_state_new(const hark_model *model, int n_threads, char *err, size_t errlen)
{
    hark_state *st = NULL;
    if (!model) {
        err_set(err, errlen, "no model");
        return NULL;
    }
    if (n_threads < 1 || n_threads > STATE_MAX_THREADS) {
        err_set(err, errlen, "thread count %d out of range 1..%d", n_threads, STATE_MAX_THREADS);
        return NULL;
    }
    st = calloc(1, sizeof *st);
    if (!st) goto nomem;
    st->model = model;
    st->n_threads = n_threads;
    st->pool = kern_pool_new(n_threads);
    if (!st->pool) {
        err_set(err, errlen, "cannot start a pool of %d threads", n_threads);
        goto fail;
    }
    st->enc = enc_ctx_new(model);
    st->dec = dec_ctx_new(model);
    if (!st->enc || !st->dec || dec_reserve(st, 1) != 0) goto nomem;
    return st;
nomem:
    err_set(err, errlen, "out of memory for the buffers of a state over '%s'",
            model->path ? model->path : "model");
fail:
    hark_state_free(st);
    return NULL;
}

void hark_state_free(hark_state *st)
{
    if (!st) return;
    decode_buf_free(st->decode);
    dec_ctx_free(st->dec);
    enc_ctx_free(st->enc);
    kern_pool_free(st->pool);
    free(st);
}
