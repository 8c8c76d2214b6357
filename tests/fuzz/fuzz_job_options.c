/*
 * fuzz_job_options.c: libFuzzer target for the JSON body of POST /model as
 * far as it becomes a job's options: its "vad" and "word_timestamps"
 * members, read by queue_vad_parse and queue_words_parse
 * (src/queue/options.c), encoded for the store by queue_options_encode and
 * read back by a worker with queue_options_decode.
 *
 * The input is the body, parsed with jansson as the route does. A member
 * that is refused must come with HARK_EINVAL and a reason that is one line
 * of valid UTF-8 without control characters (an error body quotes it).
 * Taken, the speech-detection settings must pass hark_vad_params_check, the
 * options must fit the 512 bytes the route keeps for them, and decoding
 * them over the defaults must give back the same mode, settings and word
 * timestamps, bit for bit. A broken expectation calls abort() so that the
 * fuzzer records the input.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#define FUZZ_NAME "job_options"
#include "fuzz_expect.h"
#include "hark.h"
#include "queue.h"
#include "store.h"

/* The room a job's encoded options have (the store's field, which POST
 * /model's buffer is sized by). */
#define OPTIONS_CAP sizeof(((struct store_job *)0)->options)

/* A reason an error body can carry: one line, no control characters, valid
 * UTF-8 (jansson refuses to put anything else in a JSON string). */
static int one_line(const char *s)
{
    json_t *j;
    int ok = s[0] != 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) ok = 0;
    j = json_string(s);
    if (!j) ok = 0;
    json_decref(j);
    return ok;
}

static int same_params(const struct hark_vad_params *a, const struct hark_vad_params *b)
{
    return !memcmp(&a->threshold, &b->threshold, sizeof a->threshold) &&
           a->min_speech_ms == b->min_speech_ms && a->min_silence_ms == b->min_silence_ms &&
           !memcmp(&a->max_speech_s, &b->max_speech_s, sizeof a->max_speech_s) && a->pad_ms == b->pad_ms;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hark_vad_params defaults;
    struct queue_options o, back;
    char err[256], why[160], encoded[OPTIONS_CAP];
    json_error_t jerr;
    json_t *body = json_loadb((const char *)data, size, 0, &jerr);
    int rc;

    if (!body) return 0;
    if (!json_is_object(body)) goto out;
    hark_vad_params_init(&defaults);
    queue_options_init(&o, &defaults);
    err[0] = 0;
    rc = queue_vad_parse(json_object_get(body, "vad"), &o.vad, err, sizeof err);
    if (rc != 0) {
        expect(rc == HARK_EINVAL && one_line(err), "a refused \"vad\" gives HARK_EINVAL and a reason");
        goto out;
    }
    rc = queue_words_parse(json_object_get(body, "word_timestamps"), &o, err, sizeof err);
    if (rc != 0) {
        expect(rc == HARK_EINVAL && one_line(err), "a refused \"word_timestamps\" gives HARK_EINVAL and a reason");
        goto out;
    }
    expect(o.vad.mode == QUEUE_VAD_DEFAULT || o.vad.mode == QUEUE_VAD_ON || o.vad.mode == QUEUE_VAD_OFF,
           "a known speech-detection mode");
    expect(o.words >= -1 && o.words <= 1, "word timestamps -1, 0 or 1");
    expect(hark_vad_params_check(&o.vad.params, why, sizeof why) == 0, "settings taken are in range");
    expect(queue_options_encode(&o, encoded, sizeof encoded) == 0, "the options fit the route's buffer");
    queue_options_init(&back, &defaults);
    err[0] = 0;
    rc = queue_options_decode(encoded, &back, err, sizeof err);
    if (rc != 0) fprintf(stderr, "fuzz_job_options: %s: %s\n", encoded, err);
    expect(rc == 0, "the stored options read back");
    expect(back.vad.mode == o.vad.mode && back.words == o.words, "the same mode and word timestamps");
    expect(o.vad.mode != QUEUE_VAD_ON || same_params(&back.vad.params, &o.vad.params), "the same settings");
out:
    json_decref(body);
    return 0;
}
