/*
 * decode.h: turning decoder logits into tokens, tokens into windows and
 * segments (decode.c drives the model; search.c holds the pure rules).
 *
 * Two decoding profiles exist (hark.h enum hark_decoder): openai-whisper's
 * decoding.py / transcribe.py rules and whisper.cpp 1.9.3's departures from
 * them (../shared/reference/README.md §10). Everything that needs no model
 * (logit rules, beam bookkeeping, window bookkeeping, compression ratio,
 * entropy, segment building) is a pure function here so that tests can drive
 * it with hand-made logits and scripted token sequences.
 */
#ifndef HARK_DECODE_H
#define HARK_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "hark.h"
#include "tokenizer.h"

/* Most tokens sampled in one window: openai's sample_len (n_text_ctx / 2 =
 * 224) plus room for a closing eot. */
#define DECODE_MAX_SAMPLE 232
/* Most sequences decoded at once (beams or best-of candidates). */
#define DECODE_MAX_SEQ 8
/* Most finished beam hypotheses kept per window. */
#define DECODE_MAX_FINISHED 64

/* ---------------------------------------------------------- logit rules */

/* What the logit rules of one window need; filled once per transcription. */
struct decode_rules {
    int32_t n_vocab;
    struct tok_special sp;
    int profile;            /* enum hark_decoder */
    int timestamps;         /* 0 when <|notimestamps|> is in the prompt */
    int max_initial_ts;     /* timestamp index allowed first: 50 (1.0 s / 0.02 s) */
    const int32_t *suppress; /* ids set to -inf at every step (see decode_suppress_list) */
    int n_suppress;
};

/* Builds the ids suppressed at every step into out (capacity max): for the
 * openai profile openai-whisper's suppress_tokens=-1 set (the non-speech ids
 * given in nonspeech, then transcribe, translate, sot, startofprev,
 * startoflm, nospeech); for the whisper.cpp profile §10.2 rule 2's set
 * (notimestamps, sot, nospeech, startoflm, translate, transcribe,
 * startofprev and every language token). In the openai profile
 * notimestamps is suppressed by the timestamp rules, as openai does.
 * Returns the count (duplicates removed, sorted). */
int decode_suppress_list(const struct tok_special *sp, int profile, const int32_t *nonspeech,
                         int n_nonspeech, int32_t *out, int max);

/* The symbol strings of openai-whisper's tokenizer.py non_speech_tokens: for
 * each, the ids of tok_encode(s) and tok_encode(" " + s) are taken when they
 * are one token long, or their first id for the "miscellaneous" musical
 * symbols; plus the first ids of " -" and " '". *misc says whether the
 * i-th string is one of the miscellaneous ones. Returns the count; strings
 * are static. */
int decode_nonspeech_symbols(const char *const **symbols, const unsigned char **misc);

/* openai-whisper's non_speech_tokens for a model's vocabulary, computed
 * with tok_encode the way tokenizer.py computes them with tiktoken (see
 * decode_nonspeech_symbols). Writes up to max ids (with repeats; the
 * suppress list removes them) and returns the count or a HARK_E* code. */
struct hark_model;
int decode_nonspeech_ids(const struct hark_model *m, int32_t *out, int max);

/* Applies every rule of the profile to one row of logits in place and
 * writes the final log-probabilities (n_vocab). `sampled` holds the
 * n_sampled tokens sampled so far in this window. temperature only matters
 * for the whisper.cpp profile, which divides logits by it first. Rules:
 * openai (decoding.py: SuppressBlank, SuppressTokens, ApplyTimestampRules,
 * then log_softmax of the filtered logits); whisper.cpp (§10.2 rules 1-7,
 * log-probabilities not renormalised after forcing). Returns 1 when
 * timestamps were forced by their summed probability, else 0. */
int decode_apply_rules(const struct decode_rules *r, float temperature, float *logits,
                       const int32_t *sampled, int n_sampled, float *logprobs);

/* log_softmax over n values into out (float, max-shifted; -inf stays
 * -inf). Returns the log-sum-exp. */
float decode_log_softmax(const float *x, int n, float *out);

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
    struct decode_seq live[DECODE_MAX_SEQ];
    struct decode_seq next[DECODE_MAX_SEQ];
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

/* ------------------------------------------------------ window outcome */

/* Entropy (natural log) of the token counts of the last 32 of n tokens,
 * whisper.cpp's repetition check. */
double decode_entropy_last32(const int32_t *tok, int n);

/* Size in bytes of zlib.compress(data) at level 6, estimated by an LZ77
 * parse (32 KiB window, lazy matching) priced with the cheapest of a
 * stored, fixed-Huffman or dynamic-Huffman block plus zlib's 6 bytes of
 * header and checksum. It is an estimate, not zlib's exact output: the unit
 * test bounds its distance from real zlib. */
size_t decode_deflate_size(const unsigned char *data, size_t n);

/* openai's compression ratio: len(text) / len(zlib.compress(text)). */
float decode_compression_ratio(const char *text, size_t n);

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

/* ---------------------------------------------------------- model side */

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

/* hark_transcribe with hooks, on the whole audio (opt->vad is not looked
 * at). Same contract as hark_transcribe. */
int decode_run(struct hark_state *st, const float *pcm, size_t n_samples,
               const struct hark_options *opt, const struct decode_hooks *hooks,
               struct hark_result **out, char *err, size_t errlen);

#endif
