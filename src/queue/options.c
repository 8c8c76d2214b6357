/*
 * options.c: a job's own settings (speech detection, word timestamps), as
 * requests give them, as the store keeps them (jobs.options) and as a
 * worker applies them.
 *
 * A request says "vad": false (off), true (on with the server's settings)
 * or an object of settings (on, each missing setting the server's), and
 * "word_timestamps": true or false. The store keeps the resolved request
 * as a JSON object, e.g. {"vad": false} or {"vad": {...every setting...},
 * "word_timestamps": true}, so that a job runs the same on any worker
 * whatever its own defaults; what a job did not choose it takes from the
 * worker that runs it ("" when it chose nothing).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "queue.h"

void queue_vad_init(struct queue_vad *v, const struct hark_vad_params *defaults)
{
    memset(v, 0, sizeof *v);
    v->mode = QUEUE_VAD_DEFAULT;
    if (defaults) v->params = *defaults;
    else hark_vad_params_init(&v->params);
}

/* The settings an object may hold: hark's names, and faster-whisper's and
 * speaches' longer ones for the same things. */
enum { F_THRESHOLD, F_MIN_SPEECH, F_MIN_SILENCE, F_MAX_SPEECH, F_PAD };

static const struct {
    const char *name;
    int field;
} keys[] = {
    {"threshold", F_THRESHOLD},
    {"min_speech_ms", F_MIN_SPEECH},
    {"min_speech_duration_ms", F_MIN_SPEECH},
    {"min_silence_ms", F_MIN_SILENCE},
    {"min_silence_duration_ms", F_MIN_SILENCE},
    {"max_speech_s", F_MAX_SPEECH},
    {"max_speech_duration_s", F_MAX_SPEECH},
    {"pad_ms", F_PAD},
    {"speech_pad_ms", F_PAD},
};

/* Sets one field; -1 when a millisecond setting is not a whole number
 * (ranges are hark_vad_params_check's). */
static int set_field(struct hark_vad_params *p, int field, double x)
{
    switch (field) {
    case F_THRESHOLD: p->threshold = (float)x; return 0;
    case F_MAX_SPEECH: p->max_speech_s = (float)x; return 0;
    }
    if (!(x == floor(x)) || fabs(x) > 1e9) return -1;
    if (field == F_MIN_SPEECH) p->min_speech_ms = (int)x;
    else if (field == F_MIN_SILENCE) p->min_silence_ms = (int)x;
    else p->pad_ms = (int)x;
    return 0;
}

/* A client's key as a reason quotes it, into buf: at most cap - 1 bytes,
 * cut at the start of a UTF-8 sequence, with control characters as '?', so
 * that the reason stays one line of valid UTF-8 whatever the key. */
static const char *quoted(const char *key, char *buf, size_t cap)
{
    size_t n = strlen(key), i;
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)key[n] & 0xC0) == 0x80) n--;
    }
    for (i = 0; i < n; i++) buf[i] = (unsigned char)key[i] < 0x20 || key[i] == 0x7f ? '?' : key[i];
    buf[n] = 0;
    return buf;
}

int queue_vad_set(struct queue_vad *v, const char *key, double value, char *err, size_t errlen)
{
    char q[48];
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strcmp(key, keys[i].name)) continue;
        struct hark_vad_params p = v->params;
        char why[160];
        if (set_field(&p, keys[i].field, value) != 0) {
            snprintf(err, errlen, "\"%s\" must be a whole number of milliseconds", key);
            return HARK_EINVAL;
        }
        if (hark_vad_params_check(&p, why, sizeof why) != 0) {
            snprintf(err, errlen, "\"%s\": %s", key, why);
            return HARK_EINVAL;
        }
        v->params = p;
        return 0;
    }
    snprintf(err, errlen,
             "\"%s\" is not a speech-detection setting (threshold, min_speech_ms, min_silence_ms, "
             "max_speech_s, pad_ms)",
             quoted(key, q, sizeof q));
    return HARK_ENOENT;
}

int queue_vad_parse(struct json_t *value, struct queue_vad *v, char *err, size_t errlen)
{
    const char *key;
    json_t *x;
    if (!value || json_is_null(value)) return 0;
    if (json_is_boolean(value)) {
        v->mode = json_is_true(value) ? QUEUE_VAD_ON : QUEUE_VAD_OFF;
        return 0;
    }
    if (!json_is_object(value)) {
        snprintf(err, errlen, "\"vad\" must be true, false or an object of settings");
        return HARK_EINVAL;
    }
    v->mode = QUEUE_VAD_ON;
    json_object_foreach(value, key, x) {
        double d;
        if (json_is_number(x)) {
            d = json_number_value(x);
        } else if (json_is_null(x) && (!strcmp(key, "max_speech_s") || !strcmp(key, "max_speech_duration_s"))) {
            d = INFINITY; /* no limit, as the JSON of a result writes it */
        } else {
            char q[48];
            snprintf(err, errlen, "\"%s\" must be a number", quoted(key, q, sizeof q));
            return HARK_EINVAL;
        }
        int rc = queue_vad_set(v, key, d, err, errlen);
        if (rc) return rc == HARK_ENOENT ? HARK_EINVAL : rc;
    }
    return 0;
}

/* The fewest digits that read back as the same float (0.6f is "0.6"). */
static void float_str(char *buf, size_t cap, float x)
{
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, cap, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x) break;
    }
    if (strchr(buf, 'e') && fabsf(x) < 1e9f) /* 20, not 2e+01 */
        for (int dec = 0; dec <= 9; dec++) {
            snprintf(buf, cap, "%.*f", dec, (double)x);
            if (strtof(buf, NULL) == x) break;
        }
}

void queue_options_init(struct queue_options *o, const struct hark_vad_params *vad_defaults)
{
    queue_vad_init(&o->vad, vad_defaults);
    o->words = -1;
}

int queue_words_parse(struct json_t *value, struct queue_options *o, char *err, size_t errlen)
{
    if (!value || json_is_null(value)) return 0;
    if (!json_is_boolean(value)) {
        snprintf(err, errlen, "\"word_timestamps\" must be true or false");
        return HARK_EINVAL;
    }
    o->words = json_is_true(value);
    return 0;
}

int queue_options_encode(const struct queue_options *o, char *buf, size_t cap)
{
    const struct queue_vad *v = &o->vad;
    const struct hark_vad_params *p = &v->params;
    char vad[400] = "", words[40] = "";
    if (v->mode == QUEUE_VAD_OFF) snprintf(vad, sizeof vad, "\"vad\":false");
    else if (v->mode == QUEUE_VAD_ON) {
        char max[32], thr[32];
        if (isinf(p->max_speech_s)) snprintf(max, sizeof max, "null");
        else float_str(max, sizeof max, p->max_speech_s);
        float_str(thr, sizeof thr, p->threshold);
        snprintf(vad, sizeof vad,
                 "\"vad\":{\"threshold\":%s,\"min_speech_ms\":%d,\"min_silence_ms\":%d,"
                 "\"max_speech_s\":%s,\"pad_ms\":%d}",
                 thr, p->min_speech_ms, p->min_silence_ms, max, p->pad_ms);
    }
    if (o->words >= 0) snprintf(words, sizeof words, "\"word_timestamps\":%s", o->words ? "true" : "false");
    int n = !vad[0] && !words[0] ? snprintf(buf, cap, "%s", "")
                                 : snprintf(buf, cap, "{%s%s%s}", vad, vad[0] && words[0] ? "," : "", words);
    return n < 0 || (size_t)n >= cap ? HARK_ERANGE : 0;
}

int queue_options_decode(const char *s, struct queue_options *opts, char *err, size_t errlen)
{
    if (!s || !*s) return 0;
    json_error_t je;
    json_t *o = json_loads(s, 0, &je);
    if (!o || !json_is_object(o)) {
        snprintf(err, errlen, "the job's options are not a JSON object: %s", o ? "another value" : je.text);
        json_decref(o);
        return HARK_EINVAL;
    }
    int rc = queue_vad_parse(json_object_get(o, "vad"), &opts->vad, err, errlen);
    if (!rc) rc = queue_words_parse(json_object_get(o, "word_timestamps"), opts, err, errlen);
    json_decref(o);
    return rc;
}
