/*
 * logits.h: the logit rules of both decoding profiles (logits.c): which ids
 * are suppressed, openai-whisper's decoding.py filters and whisper.cpp
 * 1.9.3's process_logits (../shared/reference/README.md §10.2), and the
 * log-softmax that yields a row's log-probabilities. Pure functions, so
 * that tests can drive them with hand-made logits.
 */
#ifndef HARK_LOGITS_H
#define HARK_LOGITS_H

#include <stdint.h>

#include "tokenizer.h"

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

#endif
