/*
 * fuzz_model.c: libFuzzer target for the model loader.
 *
 * The input is written to a file and given to hark_model_load(), which must
 * either load it or fail cleanly, never read outside the file's mapping nor
 * crash. On failure the code must be negative and the reason one non-empty
 * line; on success the accessors must work on whatever was loaded: every
 * tensor record is listed, every token's bytes are fetched, and a short text
 * is encoded with the file's own vocabulary, which must give back its bytes
 * when it succeeds. A broken expectation calls abort() so that the fuzzer
 * records the input.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_NAME "model"
#include "fuzz_input.h"
#include "hark.h"
#include "tokenizer.h"

/* Every token byte is added here, so that the reads cannot be optimized out. */
static volatile unsigned token_byte_sum;

/* Exercises a model that loaded. */
static void use_model(const hark_model *m)
{
    static const char text[] = "hello world, 123!";
    const struct hark_hparams *hp = hark_model_hparams(m);
    struct hark_tensor_info info;
    struct tok_special sp;
    int32_t ids[sizeof text];
    char buf[64], out[sizeof text];
    size_t len, k, out_len = 0;
    int i, n, n_tensors = hark_model_n_tensors(m);

    expect(hp != NULL, "hparams of a loaded model");
    expect(n_tensors > 0, "a loaded model lists its tensors");
    for (i = 0; i < n_tensors; i++) {
        expect(hark_model_tensor(m, i, &info) == 0, "tensor record in range");
        expect(info.name && info.name[0] && info.n_bytes > 0 && info.n_dims >= 1 && info.n_dims <= 4,
               "a tensor record has a name, bytes and 1 to 4 dimensions");
    }
    expect(hark_model_tensor(m, n_tensors, &info) == HARK_ERANGE, "tensor record past the end");
    tok_special_init(&sp, hp->n_vocab);
    for (i = -1; i <= hp->n_vocab; i++) {
        const char *b = tok_bytes(m, i, buf, &len);
        expect(b != NULL, "tok_bytes never gives NULL");
        for (k = 0; k < len; k++) token_byte_sum += (unsigned char)b[k];
    }
    n = tok_encode(m, text, sizeof text - 1, ids, (int)(sizeof ids / sizeof ids[0]));
    if (n < 0) return; /* a vocabulary without every byte cannot encode all text */
    expect(n <= (int)(sizeof ids / sizeof ids[0]), "no more ids than bytes");
    for (i = 0; i < n; i++) {
        const char *b = tok_bytes(m, ids[i], buf, &len);
        expect(ids[i] >= 0 && ids[i] < sp.eot, "encoded ids are ordinary tokens");
        expect(out_len + len <= sizeof text - 1, "the ids' bytes fit the text");
        memcpy(out + out_len, b, len);
        out_len += len;
    }
    expect(out_len == sizeof text - 1 && !memcmp(out, text, out_len), "the ids' bytes are the text");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = input_file(data, size);
    char err[512];
    int code = 1;
    hark_model *m;

    err[0] = 0;
    m = hark_model_load(path, &code, err, sizeof err);
    if (m) {
        expect(code == 0, "code 0 on success");
        use_model(m);
        hark_model_free(m);
    } else {
        expect(known_failure(code, err), "a known negative code and a one-line reason on failure");
    }
    return 0;
}
