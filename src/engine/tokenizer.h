/*
 * tokenizer.h: Whisper token ids <-> bytes, special tokens, languages, and
 * text -> ids for prompts by exact rank-based BPE (a token's rank is its id).
 */
#ifndef HARK_TOKENIZER_H
#define HARK_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

struct hark_model;

/* Special token ids, derived from n_vocab (WHISPER.md). */
struct tok_special {
    int32_t eot, sot, translate, transcribe, solm, prev, nosp, notimestamps, beg;
    int32_t lang0;  /* first language token (<|en|>) */
    int n_lang;     /* 99, or 100 for n_vocab >= 51866 */
    int multilingual;
};

/* Fills the special ids for a vocabulary size. */
void tok_special_init(struct tok_special *sp, int32_t n_vocab);

/* Builds the byte-string -> id index used by tok_encode(); called once by
 * the model loader. Returns NULL on allocation failure. */
struct tok_index *tok_index_new(const struct hark_model *model);
void tok_index_free(struct tok_index *ix);

/* The bytes of token id: stored tokens give their raw bytes; special tokens
 * give their name ("<|endoftext|>", "<|en|>", "<|0.00|>", ...), written into
 * buf (at least 32 bytes), which is returned. Ids out of range give "". Sets
 * *len to the byte count. Thread-safe. */
const char *tok_bytes(const struct hark_model *model, int32_t id, char *buf, size_t *len);

/* Encodes UTF-8 text with Whisper's pre-tokenizer regex and rank-based BPE.
 * Writes at most max_ids ids; returns the total count needed (may exceed
 * max_ids), or a negative HARK_E* code. Thread-safe. */
int tok_encode(const struct hark_model *model, const char *text, size_t len,
               int32_t *ids, int max_ids);

#endif
