/*
 * segments.c: a job's segments as the store keeps them while it runs
 * (store_job_segment_put), and back. The stored form is a JSON object with
 * everything the results files need, so a run that resumes after a crash
 * writes the same files as one that was never interrupted:
 *
 *   {"seek": 0, "start": 0.0, "end": 2.5, "text": " Hello.",
 *    "temperature": 0.0, "avg_logprob": -0.2, "compression_ratio": 1.1,
 *    "no_speech_prob": 0.01,
 *    "tokens": [[id, "bytes in hex", p, logprob, t0, t1, t_dtw], ...],
 *    "words": [["text", start, end, p, i0, i1], ...],
 *    "decoded_at": "2026-12-07T13:42:50.583Z"}
 *
 * A token's bytes may be part of a character, which a JSON string cannot
 * hold, hence hex. Numbers are written with 17 digits: they read back to
 * the same double, and a float's to the same float.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hark.h"
#include "run.h"

#define REAL_DIGITS JSON_REAL_PRECISION(17)

static json_t *hex_string(const char *bytes)
{
    static const char digits[] = "0123456789abcdef";
    size_t n = bytes ? strlen(bytes) : 0;
    char *hex = malloc(2 * n + 1);
    if (!hex) return NULL;
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[(unsigned char)bytes[i] >> 4];
        hex[2 * i + 1] = digits[(unsigned char)bytes[i] & 15];
    }
    hex[2 * n] = 0;
    json_t *s = json_string(hex);
    free(hex);
    return s;
}

static char *from_hex(const char *hex)
{
    size_t n = strlen(hex);
    if (n % 2) return NULL;
    char *out = malloc(n / 2 + 1);
    if (!out) return NULL;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v = 0;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            free(out);
            return NULL;
        }
        out[i] = (char)v;
    }
    out[n / 2] = 0;
    return out;
}

char *run_segment_encode(const struct hark_segment *seg, const char *decoded_at)
{
    json_t *tokens = json_array(), *words = json_array();
    for (int i = 0; tokens && i < seg->n_tokens; i++) {
        const struct hark_token *t = &seg->tokens[i];
        json_t *row = json_pack("[i o f f f f f]", (int)t->id, hex_string(t->text), (double)t->p,
                                (double)t->logprob, t->t0_s, t->t1_s, t->t_dtw_s);
        if (!row || json_array_append_new(tokens, row) < 0) {
            json_decref(tokens);
            tokens = NULL;
        }
    }
    for (int i = 0; words && i < seg->n_words; i++) {
        const struct hark_word *w = &seg->words[i];
        json_t *row = json_pack("[s f f f i i]", w->text, w->start_s, w->end_s, (double)w->p, w->i0, w->i1);
        if (!row || json_array_append_new(words, row) < 0) {
            json_decref(words);
            words = NULL;
        }
    }
    json_t *o = tokens && words
                    ? json_pack("{s:i s:f s:f s:s s:f s:f s:f s:f s:o s:o}", "seek", seg->seek, "start",
                                seg->start_s, "end", seg->end_s, "text", seg->text ? seg->text : "",
                                "temperature", (double)seg->temperature, "avg_logprob",
                                (double)seg->avg_logprob, "compression_ratio", (double)seg->compression_ratio,
                                "no_speech_prob", (double)seg->no_speech_prob, "tokens", tokens, "words", words)
                    : NULL;
    if (!o) {
        json_decref(tokens);
        json_decref(words);
        return NULL;
    }
    if (decoded_at) json_object_set_new(o, "decoded_at", json_string(decoded_at));
    char *text = json_dumps(o, JSON_COMPACT | REAL_DIGITS);
    json_decref(o);
    return text;
}

void run_segment_free(struct hark_segment *seg)
{
    struct hark_token *tk = (struct hark_token *)seg->tokens;
    struct hark_word *w = (struct hark_word *)seg->words;
    for (int i = 0; tk && i < seg->n_tokens; i++) free((char *)tk[i].text);
    for (int i = 0; w && i < seg->n_words; i++) free((char *)w[i].text);
    free(tk);
    free(w);
    free((char *)seg->text);
    memset(seg, 0, sizeof *seg);
}

int run_segment_decode(const char *data, struct hark_segment *seg)
{
    memset(seg, 0, sizeof *seg);
    json_t *o = json_loads(data, 0, NULL), *tokens = NULL, *words = NULL;
    const char *text = NULL;
    double temperature = 0, avg_logprob = 0, compression_ratio = 0, no_speech_prob = 0;
    if (!o || json_unpack(o, "{s:i s:F s:F s:s s:F s:F s:F s:F s:o s:o}", "seek", &seg->seek, "start",
                          &seg->start_s, "end", &seg->end_s, "text", &text, "temperature", &temperature,
                          "avg_logprob", &avg_logprob, "compression_ratio", &compression_ratio,
                          "no_speech_prob", &no_speech_prob, "tokens", &tokens, "words", &words) != 0 ||
        !json_is_array(tokens) || !json_is_array(words)) {
        json_decref(o);
        return HARK_EFORMAT;
    }
    seg->temperature = (float)temperature;
    seg->avg_logprob = (float)avg_logprob;
    seg->compression_ratio = (float)compression_ratio;
    seg->no_speech_prob = (float)no_speech_prob;
    int rc = (seg->text = strdup(text)) ? 0 : HARK_ENOMEM;
    size_t nt = json_array_size(tokens), nw = json_array_size(words);
    struct hark_token *tk = nt ? calloc(nt, sizeof *tk) : NULL;
    struct hark_word *w = nw ? calloc(nw, sizeof *w) : NULL;
    seg->tokens = tk;
    seg->words = w;
    if ((nt && !tk) || (nw && !w)) rc = HARK_ENOMEM;
    for (size_t i = 0; rc == 0 && i < nt; i++) {
        const char *hex;
        int id;
        double p, logprob;
        if (json_unpack(json_array_get(tokens, i), "[i s F F F F F]", &id, &hex, &p, &logprob, &tk[i].t0_s,
                        &tk[i].t1_s, &tk[i].t_dtw_s) != 0) {
            rc = HARK_EFORMAT;
            break;
        }
        tk[i].id = id;
        tk[i].p = (float)p;
        tk[i].logprob = (float)logprob;
        if (!(tk[i].text = from_hex(hex))) rc = HARK_EFORMAT;
        seg->n_tokens = (int)i + 1;
    }
    for (size_t i = 0; rc == 0 && i < nw; i++) {
        const char *wt;
        double p;
        if (json_unpack(json_array_get(words, i), "[s F F F i i]", &wt, &w[i].start_s, &w[i].end_s, &p, &w[i].i0,
                        &w[i].i1) != 0) {
            rc = HARK_EFORMAT;
            break;
        }
        w[i].p = (float)p;
        if (!(w[i].text = strdup(wt))) rc = HARK_ENOMEM;
        seg->n_words = (int)i + 1;
        if (w[i].i0 < 0 || w[i].i1 < w[i].i0 || w[i].i1 > seg->n_tokens) rc = HARK_EFORMAT;
    }
    json_decref(o);
    if (rc) run_segment_free(seg);
    return rc;
}

json_t *queue_segment_event(const char *data, int seq)
{
    json_t *o = json_loads(data, 0, NULL), *words = json_object_get(o, "words");
    json_t *out = json_pack("{s:i s:O? s:O? s:O?}", "index", seq, "start", json_object_get(o, "start"), "end",
                            json_object_get(o, "end"), "text", json_object_get(o, "text"));
    json_t *at = json_object_get(o, "decoded_at");
    if (out && at) json_object_set(out, "decoded_at", at);
    if (out && json_array_size(words) > 0) {
        json_t *list = json_array();
        size_t i;
        json_t *w;
        json_array_foreach(words, i, w) {
            json_t *row = json_pack("{s:O? s:O? s:O? s:O?}", "word", json_array_get(w, 0), "start",
                                    json_array_get(w, 1), "end", json_array_get(w, 2), "probability",
                                    json_array_get(w, 3));
            if (!row || json_array_append_new(list, row) < 0) break;
        }
        json_object_set_new(out, "words", list);
    }
    json_decref(o);
    return out;
}
