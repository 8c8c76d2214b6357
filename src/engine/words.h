/*
 * words.h: tokens into timed words, as openai-whisper's timing.py
 * (add_word_timestamps) and tokenizer.py (split_to_word_tokens) make them.
 * Pure functions over plain arrays, so that every rule can be tested on
 * hand-made alignments.
 */
#ifndef HARK_WORDS_H
#define HARK_WORDS_H

#include <stddef.h>
#include <stdint.h>

/* One text token of a window. */
struct words_token {
    const char *bytes;      /* its bytes (not NUL-terminated) */
    size_t len;
    int seg;                /* the window's segment it belongs to (0-based, non-decreasing) */
    int index;              /* its index among that segment's tokens */
};

/* A word: text (malloc'ed, NUL-terminated; "" for one merged into a
 * neighbour), its tokens [t0, t1) among the window's text tokens, times in
 * seconds and the mean probability of its tokens. */
struct words_word {
    char *text;
    int t0, t1;
    double start, end;
    float p;
};

/* Splits n tokens into words: at every complete character for languages
 * written without spaces (by_char: zh, ja, th, lo, my, yue), else at a
 * token that starts with a space, at punctuation, and at every complete
 * character boundary that is one of those. A word's bytes are its
 * tokens' bytes; a token that ends inside a character stays with the next
 * one. Returns the number of words (a malloc'ed array in *out, words_free)
 * or HARK_ENOMEM. */
int words_split(const struct words_token *tok, int n, int by_char, struct words_word **out);

/* openai-whisper's merge_punctuations: a word that is only an opening
 * mark (after a space) joins the next word, a closing mark joins the word
 * before it; the merged word becomes "" and keeps no tokens. */
void words_merge_punctuation(struct words_word *w, int n);

/* The window's alignment into words with times: row_start (n + 1 rows, in
 * 20 ms frames from the window's start, see align.h) gives word k the time
 * of the row of its first token to the row after its last, p the tokens'
 * probabilities. Then openai-whisper's corrections in order: words at
 * sentence ends no longer than twice the median word duration (at most
 * 0.7 s), punctuation merged, times offset by the window's start and
 * rounded to 10 ms. A word's probability is the mean of its tokens' p
 * (hark passes the probability each token had when it was decoded).
 * *median_s receives the median duration. Returns the
 * word count (*out as words_split) or HARK_ENOMEM. */
int words_align(const struct words_token *tok, int n, int by_char, const int *row_start, const float *p,
                double offset_s, struct words_word **out, double *median_s);

/* openai-whisper's corrections at a segment's edges, for the non-empty
 * words w[0..n) of one segment: after a pause (since last_speech_s) a first
 * word (or two) longer than allowed is shortened; the segment's start and
 * end take the words' unless a word is over 0.5 s longer than the segment
 * (then the word is cut to it). *seg_start and *seg_end are updated only
 * with adjust_segment; *last_speech_s becomes the segment's end. */
void words_fix_segment(struct words_word *w, int n, double median_s, double *last_speech_s, double *seg_start,
                       double *seg_end, int adjust_segment);

void words_free(struct words_word *w, int n);

/* 1 for the languages openai-whisper splits by character. */
int words_by_char(const char *language);

#endif
