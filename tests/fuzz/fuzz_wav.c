/*
 * fuzz_wav.c: libFuzzer target for the WAV reader.
 *
 * The input is written to a file and read with wav_read(), which must either
 * return samples or fail cleanly. On success every one of the n samples is
 * read (so AddressSanitizer sees an array shorter than claimed) and must be
 * a finite value in [-1, 1], the range of 16-bit PCM scaled by 1/32768 and
 * averaged over channels. On failure the code must be negative, the output
 * empty and the reason one non-empty line. A broken expectation calls
 * abort() so that the fuzzer records the input.
 */
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_NAME "wav"
#include "fuzz_input.h"
#include "hark.h"
#include "wav.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = input_file(data, size);
    float *pcm = (float *)&size; /* any non-NULL value, to see that failure clears it */
    size_t n = (size_t)-1, i;
    char err[512];
    int rc;

    err[0] = 0;
    rc = wav_read(path, &pcm, &n, err, sizeof err);
    if (rc == 0) {
        expect(pcm != NULL, "samples on success");
        expect(n <= size / 2, "no more samples than 16-bit values in the file");
        for (i = 0; i < n; i++)
            expect(isfinite(pcm[i]) && pcm[i] >= -1.0f && pcm[i] <= 1.0f, "samples in [-1, 1]");
        free(pcm);
    } else {
        expect(known_failure(rc, err), "a known negative code and a one-line reason on failure");
        expect(pcm == NULL && n == 0, "no samples on failure");
    }
    return 0;
}
