/*
 * align.h: when each token is spoken: dynamic time warping over the
 * cross-attention weights of a model's alignment heads (openai-whisper's
 * timing.py find_alignment, whisper.cpp's DTW token timestamps).
 */
#ifndef HARK_ALIGN_H
#define HARK_ALIGN_H

#include <stdint.h>

#include "hark.h"

#define ALIGN_MAX_HEADS 256

/* (text layer, head) pairs. */
struct align_heads {
    int n;
    int layer[ALIGN_MAX_HEADS];
    int head[ALIGN_MAX_HEADS];
    char name[32];          /* the preset's name, "top-N", or "custom" */
};

/* The alignment heads of a released model, chosen from its shape and
 * vocabulary (openai-whisper's per-model table; large-v1 and large-v2
 * share a shape, and large-v2's heads are taken). Another shape gets
 * openai-whisper's default for custom models: every head of the upper half
 * of the text layers. */
void align_heads_default(const struct hark_model *m, struct align_heads *out);

/* Parses "L,H;L,H;..." or "top-N" (every head of the N top text layers)
 * for a model. Returns 0, or HARK_EINVAL with a reason in err. */
int align_heads_parse(const char *spec, const struct hark_model *m, struct align_heads *out, char *err,
                      size_t errlen);

/* What DTW found for one window's text tokens. */
struct align_out {
    int n_text;
    /* row_start[r] (r = 0..n_text): the first audio frame (20 ms units,
     * from the window's start) of DTW row r, row 0 being <|notimestamps|>
     * and row r ≥ 1 the input text token r − 1 (which predicts token r). */
    int *row_start;

    /* With keep_matrix: the DTW's input (n_text + 1, cols) and the cost of
     * the path found, for tests that study a difference. */
    float *x;
    int cols;
    double cost;
};

/* Aligns n_text text tokens of the window whose encoder output is in the
 * state's cross-attention keys. sot_seq (n_sot ids) starts the decoder
 * input: openai-whisper's [sot, language, task] in the openai profile,
 * whisper.cpp's [sot, language] in its profile; <|notimestamps|>, the
 * text and <|endoftext|> follow. n_frames is the window's audio in mel
 * frames (10 ms); the first n_frames / 2 positions take part. The profile
 * decides the arithmetic: openai-whisper softmaxes over those positions
 * and runs DTW in double precision; whisper.cpp softmaxes over all of them,
 * rounds the queries to f16 and runs DTW in single precision. Uses
 * sequence slot 0's cache (as far as the last alignment layer). out's arrays are malloc'ed (align_out_free).
 * Returns 0 or a HARK_E* code. */
int align_window(struct hark_state *st, int profile, const struct align_heads *heads, const int32_t *sot_seq,
                 int n_sot, const int32_t *text, int n_text, int n_frames, int keep_matrix, struct align_out *out);

void align_out_free(struct align_out *out);

/* The DTW of openai-whisper's timing.py over a cost matrix x (n, m):
 * writes, for each row, the first column its path enters (row_start, n
 * entries), and the path's cost in *cost (may be NULL). Ties go as in
 * timing.py (diagonal only when strictly smallest, then up, else left).
 * With dbl the costs are accumulated in double, else in float
 * (whisper.cpp). Returns 0 or HARK_ENOMEM. */
int align_dtw(const float *x, int n, int m, int dbl, int *row_start, double *cost);

#endif
