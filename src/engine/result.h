/*
 * result.h: the layout behind the opaque hark_result. decode.c builds it,
 * output.c writes it, result.c frees it and answers the accessors.
 *
 * Ownership: the result owns `segments`; each segment owns `text`, its
 * `tokens` array (each token owns its `text`) and its `words` array (each
 * word owns its `text`); the result owns `speech`.
 * All of it is freed by hark_result_free().
 */
#ifndef HARK_RESULT_H
#define HARK_RESULT_H

#include "hark.h"

struct hark_result {
    struct hark_segment *segments;  /* n_segments, owned */
    int n_segments;
    int cap_segments;
    char language[16];              /* code, e.g. "en" */
    float language_prob;
    double duration_s;
    int task;                       /* enum hark_task */
    int word_timestamps;            /* tokens have t_dtw_s, segments words */
    /* Speech detection (speech.c): whether it chose what was transcribed,
     * with what settings and model, and the speech found (owned). */
    int vad_used;
    struct hark_vad_params vad_params;
    char vad_name[48];
    struct hark_speech *speech;
    int n_speech;
};

/* Appends a segment (taking ownership of seg->text and seg->tokens, whose
 * token texts it also owns). Returns 0 or HARK_ENOMEM (ownership is then
 * still transferred and freed). */
int result_add_segment(struct hark_result *r, struct hark_segment *seg);

/* Turns bytes into valid UTF-8 (invalid sequences become U+FFFD); returns a
 * malloc'ed NUL-terminated string or NULL on allocation failure. */
char *result_utf8_sanitize(const char *bytes, size_t len);

/* The span of bytes [*start, return value) of s (len bytes) without
 * leading and trailing ASCII white space. */
size_t result_trim(const char *s, size_t len, size_t *start);

#endif
