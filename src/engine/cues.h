/*
 * cues.h: subtitles cut at words (cues.c), shared with the result writers
 * (output.c) and tests.
 */
#ifndef HARK_CUES_H
#define HARK_CUES_H

#include "hark.h"

/* One subtitle cue: its times and its text (lines joined by '\n',
 * malloc'ed). */
struct cue {
    double start, end;
    char *text;
};

/* The cues of n segments (see cues.c for the rules); vtt with
 * o->word_tags adds WebVTT word tags. Returns 0 with a malloc'ed array
 * (cues_free) or HARK_ENOMEM. */
int cues_build(const struct hark_segment *segs, int n, const struct hark_cue_options *o, int vtt, struct cue **out,
               int *n_out);
void cues_free(struct cue *c, int n);

/* Whole milliseconds (ties to even; negative and non-finite give 0). */
long long cues_ms(double s);

/* HH:MM:SS<mark>mmm into buf. */
void cues_format_time(char buf[64], double s, char mark);

#endif
