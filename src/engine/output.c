/*
 * output.c: writes a hark_result as plain text, JSON, SRT, WebVTT or TSV.
 *
 * The line-oriented formats follow openai-whisper's result writers
 * (whisper/utils.py): a segment's text is trimmed of surrounding white space,
 * "-->" becomes "->" in subtitle cues, TSV times are whole milliseconds, and
 * a time is rounded to the nearest millisecond once before it is split into
 * hours, minutes, seconds and milliseconds, ties to even as Python's round()
 * does. Unlike openai-whisper, WebVTT cues
 * always carry the hours field (HH:MM:SS.mmm, which the WebVTT syntax also
 * allows) and line breaks and tabs inside a segment's text become spaces in
 * every line-oriented format, so that a segment can never break a cue, a TSV
 * row or the one-segment-per-line shape of plain text.
 *
 * JSON is shaped like OpenAI's verbose_json with hark's extras (the
 * language probability and per-token details). It is written without a JSON
 * library: every string is made valid UTF-8 first (result_utf8_sanitize) and
 * then escaped, with every control character below U+0020 and U+007F written
 * as an escape. Token texts can be partial UTF-8 sequences, so each token
 * also carries its raw bytes in hex. Numbers are written in the shortest form
 * that reads back to the same float or double; a value that is not finite,
 * and an unknown token time (negative), is written as null.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cues.h"
#include "hark.h"
#include "result.h"

static const struct hark_format_info formats[] = {
    {HARK_FORMAT_JSON, "json", "json", "application/json; charset=utf-8", 1},
    {HARK_FORMAT_SRT, "srt", "srt", "application/x-subrip; charset=utf-8", 1},
    {HARK_FORMAT_VTT, "vtt", "vtt", "text/vtt; charset=utf-8", 1},
    {HARK_FORMAT_TXT, "txt", "txt", "text/plain; charset=utf-8", 1},
    {HARK_FORMAT_TSV, "tsv", "tsv", "text/tab-separated-values; charset=utf-8", 0},
};
#define N_FORMATS (int)(sizeof formats / sizeof formats[0])

const struct hark_format_info *hark_format_at(int i)
{
    return i >= 0 && i < N_FORMATS ? &formats[i] : NULL;
}

const struct hark_format_info *hark_format_find(const char *name)
{
    if (!name) return NULL;
    if (!strcmp(name, "text")) name = "txt";
    for (int i = 0; i < N_FORMATS; i++)
        if (!strcmp(name, formats[i].name)) return &formats[i];
    return NULL;
}

const struct hark_format_info *hark_format_of(enum hark_format fmt)
{
    for (int i = 0; i < N_FORMATS; i++)
        if (formats[i].fmt == fmt) return &formats[i];
    return NULL;
}

int hark_format_parse(const char *name)
{
    const struct hark_format_info *f = name && strcmp(name, "text") ? hark_format_find(name) : NULL;
    return f ? (int)f->fmt : -1;
}

/* ------------------------------------------------------------ plain text */

/* Writes a segment's text trimmed of leading and trailing white space, with
 * CR, LF and tab turned into spaces and, when subtitle is set, every "-->"
 * turned into "->". */
static void put_line_text(FILE *out, const char *text, int subtitle)
{
    size_t a, b = text ? result_trim(text, strlen(text), &a) : (a = 0);
    for (size_t i = a; i < b; i++) {
        char c = text[i];
        if (subtitle && c == '-' && i + 2 < b && text[i + 1] == '-' && text[i + 2] == '>') {
            fputs("->", out);
            i += 2;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            fputc(' ', out);
        } else {
            fputc(c, out);
        }
    }
}

static void write_txt(const hark_result *r, FILE *out)
{
    for (int i = 0; i < r->n_segments; i++) {
        put_line_text(out, r->segments[i].text, 0);
        fputc('\n', out);
    }
}

static void write_tsv(const hark_result *r, FILE *out)
{
    fputs("start\tend\ttext\n", out);
    for (int i = 0; i < r->n_segments; i++) {
        const struct hark_segment *seg = &r->segments[i];
        fprintf(out, "%lld\t%lld\t", cues_ms(seg->start_s), cues_ms(seg->end_s));
        put_line_text(out, seg->text, 0);
        fputc('\n', out);
    }
}

/* ------------------------------------------------------------------ JSON */

/* Writes bytes (valid UTF-8) as a JSON string with quotes. */
static void put_json_escaped(FILE *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        switch (c) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\b': fputs("\\b", out); break;
        case '\f': fputs("\\f", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(out, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
            else
                fputc(c, out);
        }
    }
    fputc('"', out);
}

/* Writes any bytes as a JSON string, replacing invalid UTF-8 with U+FFFD.
 * Returns 0 or HARK_ENOMEM. */
static int put_json_string(FILE *out, const char *s)
{
    char *clean;
    if (!s) s = "";
    clean = result_utf8_sanitize(s, strlen(s));
    if (!clean) return HARK_ENOMEM;
    put_json_escaped(out, clean);
    free(clean);
    return 0;
}

/* The bytes of s as lowercase hex, in quotes. */
static void put_json_hex(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++)
        fprintf(out, "%02x", *p);
    fputc('"', out);
}

/* The shortest form of a double that reads back to the same value: the
 * fewest significant digits, written without an exponent from 1e-4 up to
 * 1e16 as Python's repr() does ("60", not "6e+01"). */
static void put_json_double(FILE *out, double v)
{
    char buf[40];
    if (!isfinite(v)) {
        fputs("null", out);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (strchr(buf, 'e') && fabs(v) >= 1e-4 && fabs(v) < 1e16) {
        for (int dec = 0; dec <= 20; dec++) {
            snprintf(buf, sizeof buf, "%.*f", dec, v);
            if (strtod(buf, NULL) == v) break;
        }
    }
    fputs(buf, out);
}

/* The same for a float: the fewest digits that read back to the same
 * float, so 0.1f is "0.1". */
static void put_json_float(FILE *out, float v)
{
    char buf[40];
    if (!isfinite(v)) {
        fputs("null", out);
        return;
    }
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    if (strchr(buf, 'e') && fabsf(v) >= 1e-4f && fabsf(v) < 1e16f) {
        for (int dec = 0; dec <= 20; dec++) {
            snprintf(buf, sizeof buf, "%.*f", dec, (double)v);
            if (strtof(buf, NULL) == v) break;
        }
    }
    fputs(buf, out);
}

/* A time in seconds, to the millisecond (the engine's times are whole
 * centiseconds, which in binary carry a tail: 44.41 is 44.410000000000004
 * when computed as 4441 · 0.01); null when unknown (negative). */
static void put_json_time(FILE *out, double t)
{
    if (t < 0)
        fputs("null", out);
    else
        put_json_double(out, t < 1e9 ? round(t * 1000.0) / 1000.0 : t);
}

static int write_json_segment(const struct hark_segment *seg, int dtw, FILE *out)
{
    int rc;
    fprintf(out, "{\"id\":%d,\"seek\":%d,\"start\":", seg->id, seg->seek);
    put_json_double(out, seg->start_s);
    fputs(",\"end\":", out);
    put_json_double(out, seg->end_s);
    fputs(",\"text\":", out);
    if ((rc = put_json_string(out, seg->text)) != 0) return rc;
    fputs(",\"tokens\":[", out);
    for (int k = 0; k < seg->n_tokens; k++)
        fprintf(out, "%s%d", k ? "," : "", (int)seg->tokens[k].id);
    fputs("],\"temperature\":", out);
    put_json_float(out, seg->temperature);
    fputs(",\"avg_logprob\":", out);
    put_json_float(out, seg->avg_logprob);
    fputs(",\"compression_ratio\":", out);
    put_json_float(out, seg->compression_ratio);
    fputs(",\"no_speech_prob\":", out);
    put_json_float(out, seg->no_speech_prob);
    if (dtw) {
        /* openai-whisper's words: word, start, end, probability. */
        fputs(",\"words\":[", out);
        for (int k = 0; k < seg->n_words; k++) {
            const struct hark_word *w = &seg->words[k];
            fputs(k ? ",{\"word\":" : "{\"word\":", out);
            if ((rc = put_json_string(out, w->text)) != 0) return rc;
            fputs(",\"start\":", out);
            put_json_time(out, w->start_s);
            fputs(",\"end\":", out);
            put_json_time(out, w->end_s);
            fputs(",\"probability\":", out);
            put_json_float(out, w->p);
            fputc('}', out);
        }
        fputc(']', out);
    }
    fputs(",\"token_details\":[", out);
    for (int k = 0; k < seg->n_tokens; k++) {
        const struct hark_token *t = &seg->tokens[k];
        fprintf(out, "%s{\"id\":%d,\"text\":", k ? "," : "", (int)t->id);
        if ((rc = put_json_string(out, t->text)) != 0) return rc;
        fputs(",\"bytes\":", out);
        put_json_hex(out, t->text);
        fputs(",\"p\":", out);
        put_json_float(out, t->p);
        fputs(",\"logprob\":", out);
        put_json_float(out, t->logprob);
        fputs(",\"t0\":", out);
        put_json_time(out, t->t0_s);
        fputs(",\"t1\":", out);
        put_json_time(out, t->t1_s);
        if (dtw) {
            fputs(",\"t_dtw\":", out);
            put_json_time(out, t->t_dtw_s);
        }
        fputc('}', out);
    }
    fputs("]}", out);
    return 0;
}

/* The whole text: the segment texts joined as they are, the way
 * openai-whisper decodes every segment's tokens at once. */
static char *joined_text(const hark_result *r)
{
    size_t n = 1, at = 0;
    char *s;
    for (int i = 0; i < r->n_segments; i++)
        n += r->segments[i].text ? strlen(r->segments[i].text) : 0;
    s = malloc(n);
    if (!s) return NULL;
    for (int i = 0; i < r->n_segments; i++) {
        const char *t = r->segments[i].text;
        size_t len = t ? strlen(t) : 0;
        memcpy(s + at, t ? t : "", len);
        at += len;
    }
    s[at] = 0;
    return s;
}

/* Speech detection: the model and settings used, the speech transcribed
 * and how long it lasts. */
static void write_json_vad(const hark_result *r, FILE *out)
{
    const struct hark_vad_params *p = &r->vad_params;
    double total = 0.0;
    fputs(",\"vad\":{\"model\":", out);
    put_json_escaped(out, r->vad_name);
    fputs(",\"threshold\":", out);
    put_json_float(out, p->threshold);
    fprintf(out, ",\"min_speech_ms\":%d,\"min_silence_ms\":%d,\"max_speech_s\":", p->min_speech_ms,
            p->min_silence_ms);
    put_json_float(out, p->max_speech_s);
    fprintf(out, ",\"pad_ms\":%d,\"overlap_s\":", p->pad_ms);
    put_json_float(out, p->overlap_s);
    fputs(",\"speech\":[", out);
    for (int i = 0; i < r->n_speech; i++) {
        fputs(i ? ",{\"start\":" : "{\"start\":", out);
        put_json_time(out, r->speech[i].start_s);
        fputs(",\"end\":", out);
        put_json_time(out, r->speech[i].end_s);
        fputc('}', out);
        total += r->speech[i].end_s - r->speech[i].start_s;
    }
    fputs("],\"speech_duration\":", out);
    put_json_time(out, total);
    fputc('}', out);
}

static int write_json(const hark_result *r, FILE *out)
{
    int rc;
    char *text = joined_text(r);
    if (!text) return HARK_ENOMEM;
    fputs("{\"task\":", out);
    put_json_escaped(out, r->task == HARK_TASK_TRANSLATE ? "translate" : "transcribe");
    fputs(",\"language\":", out);
    if ((rc = put_json_string(out, r->language)) != 0) goto fail;
    fputs(",\"language_probability\":", out);
    put_json_float(out, r->language_prob);
    fputs(",\"duration\":", out);
    put_json_double(out, r->duration_s);
    if (r->vad_used) write_json_vad(r, out);
    fputs(",\"text\":", out);
    if ((rc = put_json_string(out, text)) != 0) goto fail;
    fputs(",\"segments\":[", out);
    for (int i = 0; i < r->n_segments; i++) {
        if (i) fputc(',', out);
        if ((rc = write_json_segment(&r->segments[i], r->word_timestamps, out)) != 0) goto fail;
    }
    fputs("]}\n", out);
    free(text);
    return 0;
fail:
    free(text);
    return rc;
}

/* ----------------------------------------------------------------- entry */

int hark_result_write(const hark_result *r, enum hark_format fmt, FILE *out)
{
    int rc = 0;
    if (!r || !out) return HARK_EINVAL;
    switch (fmt) {
    case HARK_FORMAT_TXT: write_txt(r, out); break;
    case HARK_FORMAT_JSON: rc = write_json(r, out); break;
    case HARK_FORMAT_SRT:
    case HARK_FORMAT_VTT: rc = hark_result_write_cues(r, fmt, NULL, out); break;
    case HARK_FORMAT_TSV: write_tsv(r, out); break;
    default: return HARK_EINVAL;
    }
    if (rc) return rc;
    if (fflush(out) != 0 || ferror(out)) return HARK_EIO;
    return 0;
}
