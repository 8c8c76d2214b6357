/*
 * vad.h: the in-memory form of a Silero VAD model (struct hark_vad) and the
 * engine-internal entry points of vad.c.
 *
 * The network is Silero VAD's 16 kHz branch as whisper.cpp 1.9.3 runs it:
 * every 512-sample frame is reflect-padded by 64 samples on each side and
 * transformed on its own (no samples carried over from the frame before),
 * and only the LSTM state links one frame to the next.
 */
#ifndef HARK_VAD_H
#define HARK_VAD_H

#include <stddef.h>
#include <stdint.h>

#include "hark.h"

struct kern_pool;

/* The sizes Silero VAD's 16 kHz branch has; a file that states others is
 * refused. */
#define VAD_WINDOW 512      /* samples per frame */
#define VAD_PAD 64          /* reflect padding on each side */
#define VAD_NFFT 256        /* STFT kernel */
#define VAD_HOP 128         /* STFT stride */
#define VAD_NBIN 129        /* frequency bins (real and imaginary halves of 258) */
#define VAD_T0 4            /* STFT frames per VAD frame */
#define VAD_LAYERS 4
#define VAD_HIDDEN 128      /* LSTM input and hidden size */
#define VAD_KERNEL 3

struct hark_vad {
    char name[48];           /* "silero-v6.2.0" */
    char type[24];           /* "silero-16k" */
    int version[3];
    int n_window, n_context;

    /* Every weight as aligned f32 (the f16 ones widened exactly). */
    float *stft;             /* (258, 256): real rows 0..128, imaginary rows 129..257 */
    int ch_in[VAD_LAYERS], ch_out[VAD_LAYERS];
    float *conv_w[VAD_LAYERS]; /* (ch_out, ch_in · 3), tap fastest */
    float *conv_b[VAD_LAYERS]; /* (ch_out) */
    float *conv3_mid;        /* (128, 64): the middle tap of layer 3, the only
                                one that sees data when its input is 1 frame */
    float *w_ih;             /* (512, 128) */
    float *w_hh_t;           /* (128, 512): W_hh transposed */
    float *b_gates;          /* (512): b_ih + b_hh */
    float *w_out;            /* (128): the final 1x1 convolution */
    float b_out;

    void *mem;               /* one allocation holding every array above */
};

/* Parses a VAD model from a buffer of len bytes into *vad (whose `mem` it
 * allocates; free with vad_deinit). The whole structure (header, every
 * tensor record and its size) is checked before any data is read, so a
 * truncated or inconsistent file costs no more than its headers. `name`
 * prefixes the reason in err. Returns 0, HARK_EFORMAT or HARK_ENOMEM. */
int vad_parse(struct hark_vad *vad, const uint8_t *buf, size_t len, const char *name, char *err,
              size_t errlen);

void vad_deinit(struct hark_vad *vad);

/* The probabilities of n_frames frames of pcm (n_samples; frames past the
 * end are zero-padded) on a pool. `cancel` (may be NULL) is asked between
 * batches of frames; when it returns nonzero the run stops with
 * HARK_ECANCELED. Returns 0, HARK_ENOMEM or HARK_ECANCELED. */
int vad_run(const struct hark_vad *vad, struct kern_pool *pool, const float *pcm, size_t n_samples,
            float *probs, size_t n_frames, int (*cancel)(void *), void *cancel_user);

#endif
