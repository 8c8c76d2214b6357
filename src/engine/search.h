/*
 * search.h: choosing tokens and keeping candidate sequences within one
 * window (search.c): greedy choice, sampling, beam search of both profiles,
 * whisper.cpp's per-window bookkeeping, and cutting a window's tokens into
 * segments. Pure functions over the log-probabilities logits.h produces, so
 * that tests can drive them with scripted rows and token sequences.
 */
#ifndef HARK_SEARCH_H
#define HARK_SEARCH_H

#include <stdint.h>

#include "logits.h"
#include "state.h" /* STATE_MAX_SEQ: the most sequences decoded at once */
#include "tokenizer.h"

/* Most tokens sampled in one window: openai's sample_len (n_text_ctx / 2 =
 * 224) plus room for a closing eot. */
#define DECODE_MAX_SAMPLE 232
/* Most finished beam hypotheses kept per window. */
#define DECODE_MAX_FINISHED 64

/* Greedy choice: the first index of the largest value (whisper.cpp compares
 * expf(logprob), openai the logit; both are given). */
int32_t decode_argmax(const struct decode_rules *r, const float *logits, const float *logprobs);

/* whisper.cpp's tid: the timestamp id with the largest probability
 * (first one on ties), 0 when every timestamp has probability 0. */
int32_t decode_best_timestamp(const struct decode_rules *r, const float *logprobs);

/* Deterministic random numbers for sampling: the Mersenne Twister
 * mt19937 (as C++'s std::mt19937), so that the whisper.cpp profile draws
 * what whisper.cpp's std::discrete_distribution draws from the same seed. */
struct decode_rng {
    uint32_t mt[624];
    int idx;
};
void decode_rng_seed(struct decode_rng *g, uint32_t seed);
uint32_t decode_rng_next(struct decode_rng *g);
/* A double in [0, 1) from two draws, as libstdc++'s
 * generate_canonical<double, 53> over mt19937. */
double decode_rng_uniform(struct decode_rng *g);

/* Samples a token: openai draws from softmax(logits / temperature),
 * whisper.cpp from the weights expf(logprobs). */
int32_t decode_sample(const struct decode_rules *r, float temperature, const float *logits,
                      const float *logprobs, struct decode_rng *g);

/* ------------------------------------------------------------ sequences */

/* whisper.cpp's per-window bookkeeping of README §10.1. */
struct decode_wcpp {
    int seek, seek_end;     /* mel frames */
    int seek_delta;         /* starts at 3000 */
    int has_ts;
    int result_len;
    int completed, failed;
    int n_max;              /* 220 */
    int no_timestamps;
};

void decode_wcpp_init(struct decode_wcpp *w, int seek, int seek_end, int n_max, int no_timestamps);

/* Feeds the token t sampled at step i (already appended to the sequence).
 * Returns 1 when the window stops here (completed or failed). */
int decode_wcpp_token(struct decode_wcpp *w, const struct tok_special *sp, int32_t t, int i);

/* One candidate sequence of a window. */
struct decode_seq {
    int32_t tok[DECODE_MAX_SAMPLE];
    int32_t tid[DECODE_MAX_SAMPLE];
    float p[DECODE_MAX_SAMPLE];
    float lp[DECODE_MAX_SAMPLE];
    int n;
    double sum_lp;          /* openai: sum over tokens until eot; whisper.cpp: all tokens */
    int done;               /* openai: ended with eot; whisper.cpp: completed or failed */
    struct decode_wcpp w;
};

/* Appends a token with its probability data. */
void decode_seq_push(struct decode_seq *s, int32_t t, int32_t tid, float p, float lp);

/* Beam search bookkeeping over a window (both profiles). */
struct decode_beam {
    int profile;
    int beam_size;
    int max_candidates;     /* openai: round(beam_size * patience) */
    int32_t eot;
    struct decode_seq live[STATE_MAX_SEQ];
    struct decode_seq next[STATE_MAX_SEQ];
    struct decode_seq fin[DECODE_MAX_FINISHED]; /* openai's finished hypotheses */
    int n_fin;
};

/* Starts a beam from one common prefix-free state (every live sequence
 * empty; whisper.cpp windows carry `w` for each). */
void decode_beam_init(struct decode_beam *b, int profile, int beam_size, int32_t eot,
                      const struct decode_wcpp *w);

/* One beam step. logprobs holds one row (n_vocab) per live sequence i that
 * is not done, in order of i (rows of done sequences are skipped, see
 * decode_beam_active). Writes, for each live slot i, the slot whose cache
 * it must take (src[i]). step is the index of the token being chosen.
 * openai takes each beam's beam_size + 1 most likely tokens as candidates;
 * whisper.cpp 1.9.3 draws beam_size candidates per decoder from its
 * probabilities with that decoder's generator rngs[slot] (its
 * whisper_sample_token_topk samples with std::discrete_distribution);
 * rngs may be NULL for openai. Returns 1 when the window's search is
 * complete. */
int decode_beam_step(struct decode_beam *b, const struct tok_special *sp, const float *logprobs,
                     int n_vocab, int step, struct decode_rng *rngs, int *src);

/* The live slots that still need logits, in order; returns their count. */
int decode_beam_active(const struct decode_beam *b, int *slots);

/* Picks the result: openai ranks finished hypotheses (padded with live
 * ones + eot) by sum_logprob / length; whisper.cpp ranks the sequences that
 * did not fail by sum_logprob(result_len) / result_len (sequence 0 when all
 * failed). Returns a pointer into b. */
const struct decode_seq *decode_beam_best(struct decode_beam *b, const struct tok_special *sp);

/* ------------------------------------------------------------- segments */

/* A segment in token and time terms: tokens [i0, i1), times in 10 ms frames. */
struct decode_seg {
    int i0, i1;
    int t0, t1;
};

/* openai's transcribe.py segmentation of one window's tokens (without eot):
 * consecutive timestamp pairs split segments, a single timestamp ending
 * consumes the whole window. segment_size is the window's content frames.
 * Writes up to max segments and the next seek; returns the count. */
int decode_segments_openai(const struct tok_special *sp, const int32_t *tok, int n, int seek,
                           int segment_size, struct decode_seg *segs, int max, int *next_seek);

/* whisper.cpp's segmentation (README §10.1): has_text[i] says whether token
 * i contributes bytes to the text (a text token whose C string is not
 * empty). Returns the count. */
int decode_segments_wcpp(const struct tok_special *sp, const int32_t *tok, const int32_t *tid,
                         const unsigned char *has_text, int n, int seek, int seek_delta,
                         struct decode_seg *segs, int max);

#endif
