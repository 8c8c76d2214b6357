/*
 * fuzz_tokenizer.c: libFuzzer target for the prompt tokenizer.
 *
 * The input, taken as text (any bytes: invalid UTF-8 and NULs included), is
 * split by the pre-tokenizer and encoded with the vocabulary of the shared
 * multilingual model rt-mini-f16.bin, loaded once per process from
 * $HARK_TEST_MODELS, else $HARK_SHARED/models, else ../shared/models (the
 * test harness's rule, rewritten here because the libFuzzer build does not
 * link the harness). Whisper's vocabulary holds every single byte, so every
 * input must encode, and the bytes of the ids, concatenated, must give back
 * the input exactly. Also: the pre-tokenizer's pieces must tile the input,
 * a count-only call must agree with the full one, and every id must be an
 * ordinary token (no special). A broken expectation calls abort() so that
 * the fuzzer records the input.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hark.h"
#include "testing.h"
#include "tokenizer.h"

#define MODEL_FILE "rt-mini-f16.bin"

static const char *model_path(void)
{
    static char path[4096];
    const char *dir = getenv("HARK_TEST_MODELS");
    if (dir && *dir) {
        snprintf(path, sizeof path, "%s/%s", dir, MODEL_FILE);
    } else {
        const char *root = getenv("HARK_SHARED");
        if (!root || !*root) root = "../shared";
        snprintf(path, sizeof path, "%s/models/%s", root, MODEL_FILE);
    }
    return path;
}

static void expect(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_tokenizer: broken expectation: %s\n", what);
        abort();
    }
}

/* The model is loaded on first use and kept for the life of the process;
 * without it there is nothing to test, so its absence aborts. */
static const hark_model *model(void)
{
    static hark_model *m;
    if (!m) {
        char err[512];
        m = hark_model_load(model_path(), NULL, err, sizeof err);
        if (!m) {
            fprintf(stderr, "fuzz_tokenizer: %s\n", err);
            abort();
        }
    }
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const hark_model *m = model();
    const char *text = (const char *)data;
    struct tok_special sp;
    int32_t *ids;
    size_t i, j, len, out_len = 0;
    char buf[64];
    int k, n;

    if (size >= INT_MAX / 4) return 0; /* beyond tok_encode's documented range */
    tok_special_init(&sp, hark_model_hparams(m)->n_vocab);
    for (i = 0; i < size; i = j) {
        j = tok_split(text, size, i);
        expect(j > i && j <= size, "each pre-tokenizer piece is non-empty and inside the text");
    }

    /* Every id stands for at least one byte, so size ids always suffice. */
    ids = malloc((size + 1) * sizeof *ids);
    expect(ids != NULL, "memory for the ids");
    n = tok_encode(m, text, size, ids, (int)size);
    expect(n >= 0, "every text encodes (the vocabulary holds every byte)");
    expect((size_t)n <= size, "no more ids than bytes");
    expect(tok_encode(m, text, size, NULL, 0) == n, "a count-only call gives the same count");
    for (k = 0; k < n; k++) {
        const char *b;
        expect(ids[k] >= 0 && ids[k] < sp.eot, "encoded ids are ordinary tokens");
        b = tok_bytes(m, ids[k], buf, &len);
        expect(len > 0 && out_len + len <= size, "the ids' bytes fit the input");
        expect(!memcmp(b, text + out_len, len), "the ids' bytes are the input's");
        out_len += len;
    }
    expect(out_len == size, "the ids' bytes cover the whole input");
    free(ids);
    return 0;
}
