/*
 * fuzz_vad.c: libFuzzer target for the Silero VAD model loader.
 *
 * The input is written to a file and given to hark_vad_load(), which must
 * either load it or fail cleanly with a known negative code and a one-line
 * reason, never read outside the file nor crash. A model that loads must
 * give a finite probability in [0, 1] for every frame of a short signal.
 * A broken expectation calls abort() so that the fuzzer records the input.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "vad"
#include "fuzz_input.h"
#include "hark.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = input_file(data, size);
    char err[512];
    int code = 1;

    err[0] = 0;
    hark_vad *v = hark_vad_load(path, &code, err, sizeof err);
    if (!v) {
        expect(known_failure(code, err), "a known negative code and a one-line reason on failure");
        return 0;
    }
    expect(code == 0, "code 0 on success");
    float pcm[1100], *p = NULL;
    size_t n = 0;
    for (int i = 0; i < 1100; i++) pcm[i] = 0.5f * sinf(0.07f * (float)i);
    expect(hark_vad_probs(v, pcm, 1100, 1, &p, &n, err, sizeof err) == 0 && n == 3, "three probabilities");
    for (size_t i = 0; i < n; i++) expect(isfinite(p[i]) && p[i] >= 0.0f && p[i] <= 1.0f, "a probability");
    free(p);
    hark_vad_free(v);
    return 0;
}
