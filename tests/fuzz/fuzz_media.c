/*
 * fuzz_media.c: libFuzzer target for the media probe and decoder
 * (src/media/media.c on FFmpeg) on hostile files.
 *
 * The input is written to a file, probed with media_probe() and, when the
 * probe takes it, decoded with media_decode(). Inputs above
 * MAX_INPUT_BYTES are skipped, which bounds what a decode can produce. Each call must fail
 * with a known negative code and a one-line reason, or succeed with sane
 * outputs: a probe's duration, sample rate and channels inside media.h's
 * limits and its names terminated and non-empty; a decode's samples
 * present, finite and in [-1, 1]. A broken expectation calls abort() so
 * that the fuzzer records the input.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "media"
#include "fuzz_input.h"
#include "hark.h"
#include "media.h"

#define MAX_INPUT_BYTES (64 * 1024)

static int terminated(const char *s, size_t cap)
{
    return strnlen(s, cap) < cap;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path;
    struct media_info info;
    char err[512];
    float *pcm = NULL;
    size_t n = 0, i;
    int rc;

    if (size > MAX_INPUT_BYTES) return 0;
    path = input_file(data, size);
    err[0] = 0;
    rc = media_probe(path, &info, err, sizeof err);
    if (rc != 0) {
        expect(known_failure(rc, err), "a failed probe gives a known code and a one-line reason");
        expect(rc == HARK_EAUDIO || rc == HARK_EFORMAT || rc == HARK_ENOMEM || rc == HARK_EIO,
               "a probe fails with HARK_EAUDIO, HARK_EFORMAT, HARK_ENOMEM or HARK_EIO");
        return 0;
    }
    expect(isfinite(info.duration_s) && info.duration_s >= 0 && info.duration_s <= MEDIA_MAX_DURATION_S,
           "a duration within the limit");
    expect(info.sample_rate >= 0 && info.sample_rate <= MEDIA_MAX_RATE, "a sample rate within the limit");
    expect(info.channels >= 0 && info.channels <= MEDIA_MAX_CHANNELS, "channels within the limit");
    expect(terminated(info.format, sizeof info.format) && info.format[0], "a container name");
    expect(terminated(info.content_type, sizeof info.content_type) && strchr(info.content_type, '/'),
           "a content type");
    expect(terminated(info.audio_codec, sizeof info.audio_codec) && info.audio_codec[0], "a codec name");
    expect(info.has_video == 0 || info.has_video == 1, "has_video 0 or 1");

    err[0] = 0;
    rc = media_decode(path, &pcm, &n, NULL, NULL, err, sizeof err);
    if (rc != 0) {
        expect(known_failure(rc, err), "a failed decode gives a known code and a one-line reason");
        expect(pcm == NULL && n == 0, "no samples from a failed decode");
        return 0;
    }
    expect(pcm != NULL && n > 0, "samples from a decode");
    for (i = 0; i < n; i++) expect(isfinite(pcm[i]) && pcm[i] >= -1.0f && pcm[i] <= 1.0f, "samples in [-1, 1]");
    free(pcm);
    return 0;
}
