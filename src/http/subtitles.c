/*
 * subtitles.c: SRT and WebVTT made again from a stored results.json, for
 * GET /results/<id>?format=srt|vtt with cue options of the caller's own
 * (the files written with the job use the defaults).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hark.h"
#include "internal.h"

/* A number member, or -1 when it is missing or not a number. */
static double number(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : -1.0;
}

/* A string member, or "" when it is missing or not a string. */
static const char *string(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

int subtitles_render(const char *json_path, int fmt, const struct hark_cue_options *o, char **out, size_t *len,
                     char *err, size_t errlen)
{
    json_error_t je;
    json_t *doc = json_load_file(json_path, 0, &je);
    json_t *segs = json_object_get(doc, "segments");
    struct hark_segment *seg = NULL;
    struct hark_word *words = NULL;
    size_t n = json_array_size(segs), n_words = 0, i, k;
    int rc = HARK_EINVAL;
    *out = NULL;
    *len = 0;
    if (!doc || !json_is_array(segs)) {
        snprintf(err, errlen, "the stored results cannot be read: %s", doc ? "no segments" : je.text);
        goto done;
    }
    for (i = 0; i < n; i++) n_words += json_array_size(json_object_get(json_array_get(segs, i), "words"));
    seg = calloc(n ? n : 1, sizeof *seg);
    words = calloc(n_words ? n_words : 1, sizeof *words);
    rc = HARK_ENOMEM;
    if (!seg || !words) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    /* Texts are borrowed from doc, which outlives the writing. */
    size_t w = 0;
    for (i = 0; i < n; i++) {
        const json_t *s = json_array_get(segs, i), *list = json_object_get(s, "words");
        seg[i].id = (int)i;
        seg[i].start_s = number(s, "start");
        seg[i].end_s = number(s, "end");
        seg[i].text = string(s, "text");
        seg[i].words = words + w;
        for (k = 0; k < json_array_size(list); k++) {
            const json_t *x = json_array_get(list, k);
            words[w].text = string(x, "word");
            words[w].start_s = number(x, "start");
            words[w].end_s = number(x, "end");
            words[w].p = (float)number(x, "probability");
            w++;
            seg[i].n_words++;
        }
    }
    FILE *f = open_memstream(out, len);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    rc = hark_segments_write_cues(seg, (int)n, (enum hark_format)fmt, o, f);
    if (fclose(f) != 0 && !rc) rc = HARK_ENOMEM;
    if (rc) {
        snprintf(err, errlen, "cannot write the subtitles: %s", hark_strerror(rc));
        free(*out);
        *out = NULL;
        *len = 0;
    }
done:
    free(seg);
    free(words);
    json_decref(doc);
    return rc;
}
