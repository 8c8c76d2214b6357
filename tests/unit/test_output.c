/*
 * test_output.c: the result writers (output.c) byte for byte.
 *
 * Most results are built by hand from static segments and tokens (never
 * freed through hark_result_free) and written in every format to a memory
 * stream; one is built on the heap with result_add_segment and freed.
 * The expected strings below were worked out by hand from the rules in
 * output.c: times rounded once to whole milliseconds with ties to even
 * (0.1875 s -> 188 ms, 36001.0625 s -> 36001062 ms, 59.9996 s -> 60000 ms
 * carrying into the minutes), text trimmed with CR/LF/tab made spaces, "-->"
 * made "->" in cues, and JSON strings escaped with invalid UTF-8 replaced.
 * The JSON is then also parsed with jansson and its fields checked.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "hark.h"
#include "result.h"

/* Segment 0: times that exercise rounding (a tie to even and a plain round
 * up); float fields exactly representable except 0.1f, whose shortest form
 * is "0.1". */
static struct hark_token seg0_tokens[] = {
    {50363, "<|0.00|>", 0.5f, -0.75f, 0.0, 0.0, -1.0},
    {15496, " Hello", 0.25f, -1.5f, 0.0, 1.0, -1.0},
    {11, ",", 1.0f, 0.0f, 1.0, 1.25, -1.0},
    {995, " world.", 0.1f, -2.25f, -1.0, -1.0, -1.0},
};

/* Segment 1: every character JSON must escape, "-->", white space around
 * the text, hours >= 1, and tokens that are invalid or partial UTF-8. */
static struct hark_token seg1_tokens[] = {
    {764, "\xff", 0.5f, -0.5f, 60.0, 61.5, -1.0},
    {12, "\x80" "ab", 0.5f, -0.5f, 61.5, 62.0, -1.0},
    {3, "\"\\", 0.5f, -0.5f, -1.0, -1.0, -1.0},
};

/* Segment 2: ten hours in, a tie that rounds down, valid multi-byte UTF-8
 * text, and a token holding the first two bytes of a three-byte sequence. */
static struct hark_token seg2_tokens[] = {
    {26486, "\xe2\x9c", 0.75f, -0.125f, 36000.0, 36001.0, -1.0},
    {241, "\x93", 0.75f, -0.125f, 36001.0, 36001.0625, -1.0},
};

static struct hark_segment segs[] = {
    {0, 0, 0.1875, 2.3456, " Hello, world.", 4, seg0_tokens, 0.0f, -0.25f, 1.5f, 0.125f, 0, NULL},
    {1, 3000, 59.9996, 3723.25, " He said \"hi\\there\"\r\n\tand\x01\x7f\b\fleft --> now ", 3, seg1_tokens,
     0.2f, -1.0f, 2.5f, 0.0f, 0, NULL},
    {2, 3600000, 36000.0, 36001.0625, "\xe2\x9c\x93 ok", 2, seg2_tokens, 1.0f, -0.5f, 0.75f, 0.5f, 0, NULL},
};

static void make_result(struct hark_result *r, int n_segments)
{
    memset(r, 0, sizeof *r);
    r->segments = segs;
    r->n_segments = n_segments;
    r->cap_segments = n_segments;
    strcpy(r->language, n_segments ? "en" : "");
    r->language_prob = n_segments ? 1.0f : 0.0f;
    r->duration_s = n_segments ? 36002.5 : 0.0;
    r->task = HARK_TASK_TRANSCRIBE;
}

/* Writes r in fmt to a malloc'ed string; *rc gets the writer's return. */
static char *render(const struct hark_result *r, enum hark_format fmt, int *rc, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return NULL;
    *rc = hark_result_write(r, fmt, f);
    fclose(f);
    if (len) *len = n;
    return buf;
}

/* Compares and, on a mismatch, prints the first differing offset. */
static void check_bytes(const char *what, const char *got, size_t got_len, const char *want)
{
    size_t want_len = strlen(want), i = 0;
    if (!got) {
        CHECKF(0, "%s: no output", what);
        return;
    }
    while (i < got_len && i < want_len && got[i] == want[i]) i++;
    CHECKF(got_len == want_len && i == want_len,
           "%s: differs at byte %zu (got %zu bytes, want %zu)\n    got:  %.*s\n    want: %.*s", what, i,
           got_len, want_len, (int)(got_len - i < 60 ? got_len - i : 60), got + i,
           (int)(want_len - i < 60 ? want_len - i : 60), want + i);
}

static void expect_format(const struct hark_result *r, enum hark_format fmt, const char *want)
{
    int rc = -100;
    size_t len = 0;
    char *got = render(r, fmt, &rc, &len);
    CHECKF(rc == 0, "writer returned %d", rc);
    check_bytes(fmt == HARK_FORMAT_TXT    ? "txt"
                : fmt == HARK_FORMAT_JSON ? "json"
                : fmt == HARK_FORMAT_SRT  ? "srt"
                : fmt == HARK_FORMAT_VTT  ? "vtt"
                                          : "tsv",
                got, len, want);
    free(got);
}

static void test_format_parse(void)
{
    CHECK(hark_format_parse("txt") == HARK_FORMAT_TXT);
    CHECK(hark_format_parse("json") == HARK_FORMAT_JSON);
    CHECK(hark_format_parse("srt") == HARK_FORMAT_SRT);
    CHECK(hark_format_parse("vtt") == HARK_FORMAT_VTT);
    CHECK(hark_format_parse("tsv") == HARK_FORMAT_TSV);
    CHECK(hark_format_parse("JSON") == -1);
    CHECK(hark_format_parse("xml") == -1);
    CHECK(hark_format_parse("") == -1);
    CHECK(hark_format_parse(NULL) == -1);
    CHECK(hark_format_parse("text") == -1);
}

/* The format table: one entry per format, found by name and by id; the
 * stored four come first with their content types; "text" names txt. */
static void test_format_table(void)
{
    static const enum hark_format all[] = {HARK_FORMAT_TXT, HARK_FORMAT_JSON, HARK_FORMAT_SRT, HARK_FORMAT_VTT,
                                           HARK_FORMAT_TSV};
    static const char *const stored[] = {"json", "srt", "vtt", "txt"};
    int n = 0;
    while (hark_format_at(n)) n++;
    CHECK(n == 5);
    CHECK(hark_format_at(-1) == NULL);
    for (int i = 0; i < 5; i++) {
        const struct hark_format_info *f = hark_format_of(all[i]);
        CHECK(f && f->fmt == all[i]);
        CHECK(f && hark_format_find(f->name) == f && hark_format_parse(f->name) == (int)all[i]);
        CHECK(f && strstr(f->content_type, "charset=utf-8"));
    }
    for (int i = 0; i < 4; i++) {
        CHECK(hark_format_at(i)->stored && !strcmp(hark_format_at(i)->ext, stored[i]));
    }
    CHECK(!hark_format_at(4)->stored);
    CHECK(hark_format_find("text") == hark_format_of(HARK_FORMAT_TXT));
    CHECK(!strcmp(hark_format_of(HARK_FORMAT_SRT)->content_type, "application/x-subrip; charset=utf-8"));
    CHECK(!strcmp(hark_format_of(HARK_FORMAT_VTT)->content_type, "text/vtt; charset=utf-8"));
    CHECK(hark_format_find("xml") == NULL && hark_format_find(NULL) == NULL);
    CHECK(hark_format_of((enum hark_format)99) == NULL);
}

static void test_txt(void)
{
    struct hark_result r;
    make_result(&r, 3);
    expect_format(&r, HARK_FORMAT_TXT,
                  "Hello, world.\n"
                  "He said \"hi\\there\"   and\x01\x7f\b\fleft --> now\n"
                  "\xe2\x9c\x93 ok\n");
}

static void test_srt(void)
{
    struct hark_result r;
    make_result(&r, 3);
    expect_format(&r, HARK_FORMAT_SRT,
                  "1\n"
                  "00:00:00,188 --> 00:00:02,346\n"
                  "Hello, world.\n"
                  "\n"
                  "2\n"
                  "00:01:00,000 --> 01:02:03,250\n"
                  "He said \"hi\\there\"   and\x01\x7f\b\fleft -> now\n"
                  "\n"
                  "3\n"
                  "10:00:00,000 --> 10:00:01,062\n"
                  "\xe2\x9c\x93 ok\n"
                  "\n");
}

static void test_vtt(void)
{
    struct hark_result r;
    make_result(&r, 3);
    expect_format(&r, HARK_FORMAT_VTT,
                  "WEBVTT\n"
                  "\n"
                  "00:00:00.188 --> 00:00:02.346\n"
                  "Hello, world.\n"
                  "\n"
                  "00:01:00.000 --> 01:02:03.250\n"
                  "He said \"hi\\there\"   and\x01\x7f\b\fleft -> now\n"
                  "\n"
                  "10:00:00.000 --> 10:00:01.062\n"
                  "\xe2\x9c\x93 ok\n"
                  "\n");
}

static void test_tsv(void)
{
    struct hark_result r;
    make_result(&r, 3);
    expect_format(&r, HARK_FORMAT_TSV,
                  "start\tend\ttext\n"
                  "188\t2346\tHello, world.\n"
                  "60000\t3723250\tHe said \"hi\\there\"   and\x01\x7f\b\fleft --> now\n"
                  "36000000\t36001062\t\xe2\x9c\x93 ok\n");
}

/* Two segments only: their tokens are each single invalid bytes, which every
 * replacement policy turns into exactly one U+FFFD, so the bytes are fixed.
 * Segment 2 (a truncated sequence) is checked through jansson below. */
static void test_json_bytes(void)
{
    struct hark_result r;
    make_result(&r, 2);
    r.duration_s = 3725.0;
    r.language_prob = 0.75f;
    expect_format(&r, HARK_FORMAT_JSON,
                  "{\"task\":\"transcribe\",\"language\":\"en\",\"language_probability\":0.75,"
                  "\"duration\":3725,"
                  "\"text\":\" Hello, world. He said \\\"hi\\\\there\\\"\\r\\n\\tand\\u0001\\u007f\\b\\fleft --> now \","
                  "\"segments\":["
                  "{\"id\":0,\"seek\":0,\"start\":0.1875,\"end\":2.3456,\"text\":\" Hello, world.\","
                  "\"tokens\":[50363,15496,11,995],\"temperature\":0,\"avg_logprob\":-0.25,"
                  "\"compression_ratio\":1.5,\"no_speech_prob\":0.125,\"token_details\":["
                  "{\"id\":50363,\"text\":\"<|0.00|>\",\"bytes\":\"3c7c302e30307c3e\",\"p\":0.5,\"logprob\":-0.75,"
                  "\"t0\":0,\"t1\":0},"
                  "{\"id\":15496,\"text\":\" Hello\",\"bytes\":\"2048656c6c6f\",\"p\":0.25,\"logprob\":-1.5,"
                  "\"t0\":0,\"t1\":1},"
                  "{\"id\":11,\"text\":\",\",\"bytes\":\"2c\",\"p\":1,\"logprob\":0,\"t0\":1,\"t1\":1.25},"
                  "{\"id\":995,\"text\":\" world.\",\"bytes\":\"20776f726c642e\",\"p\":0.1,\"logprob\":-2.25,"
                  "\"t0\":null,\"t1\":null}]},"
                  "{\"id\":1,\"seek\":3000,\"start\":59.9996,\"end\":3723.25,"
                  "\"text\":\" He said \\\"hi\\\\there\\\"\\r\\n\\tand\\u0001\\u007f\\b\\fleft --> now \","
                  "\"tokens\":[764,12,3],\"temperature\":0.2,\"avg_logprob\":-1,\"compression_ratio\":2.5,"
                  "\"no_speech_prob\":0,\"token_details\":["
                  "{\"id\":764,\"text\":\"\xef\xbf\xbd\",\"bytes\":\"ff\",\"p\":0.5,\"logprob\":-0.5,"
                  "\"t0\":60,\"t1\":61.5},"
                  "{\"id\":12,\"text\":\"\xef\xbf\xbd" "ab\",\"bytes\":\"806162\",\"p\":0.5,\"logprob\":-0.5,"
                  "\"t0\":61.5,\"t1\":62},"
                  "{\"id\":3,\"text\":\"\\\"\\\\\",\"bytes\":\"225c\",\"p\":0.5,\"logprob\":-0.5,"
                  "\"t0\":null,\"t1\":null}]}"
                  "]}\n");
}

static void test_json_parsed(void)
{
    struct hark_result r;
    int rc = -100;
    size_t len = 0;
    json_error_t jerr;
    json_t *root = NULL, *segments, *seg, *details, *tok;
    char *got;

    make_result(&r, 3);
    got = render(&r, HARK_FORMAT_JSON, &rc, &len);
    CHECKF(rc == 0, "writer returned %d", rc);
    if (!got) return;
    root = json_loadb(got, len, 0, &jerr);
    CHECKF(root != NULL, "jansson: %s at line %d column %d", jerr.text, jerr.line, jerr.column);
    if (!root) goto done;
    CHECK(!strcmp(json_string_value(json_object_get(root, "task")), "transcribe"));
    CHECK(!strcmp(json_string_value(json_object_get(root, "language")), "en"));
    CHECK(json_real_value(json_object_get(root, "duration")) == 36002.5);
    CHECK(json_number_value(json_object_get(root, "language_probability")) == 1.0);
    CHECK(!strcmp(json_string_value(json_object_get(root, "text")),
                  " Hello, world. He said \"hi\\there\"\r\n\tand\x01\x7f\b\fleft --> now \xe2\x9c\x93 ok"));
    segments = json_object_get(root, "segments");
    CHECK(json_is_array(segments) && json_array_size(segments) == 3);
    for (int i = 0; i < 3 && json_is_array(segments) && i < (int)json_array_size(segments); i++) {
        seg = json_array_get(segments, (size_t)i);
        CHECK(json_integer_value(json_object_get(seg, "id")) == segs[i].id);
        CHECK(json_integer_value(json_object_get(seg, "seek")) == segs[i].seek);
        CHECK(json_number_value(json_object_get(seg, "start")) == segs[i].start_s);
        CHECK(json_number_value(json_object_get(seg, "end")) == segs[i].end_s);
        CHECK(!strcmp(json_string_value(json_object_get(seg, "text")), segs[i].text));
        CHECK((float)json_number_value(json_object_get(seg, "temperature")) == segs[i].temperature);
        CHECK((float)json_number_value(json_object_get(seg, "avg_logprob")) == segs[i].avg_logprob);
        details = json_object_get(seg, "token_details");
        CHECK(json_array_size(json_object_get(seg, "tokens")) == (size_t)segs[i].n_tokens);
        CHECK(json_array_size(details) == (size_t)segs[i].n_tokens);
        for (int k = 0; k < segs[i].n_tokens && k < (int)json_array_size(details); k++) {
            const struct hark_token *t = &segs[i].tokens[k];
            char hex[64] = "";
            for (size_t b = 0; t->text[b]; b++) sprintf(hex + 2 * b, "%02x", (unsigned char)t->text[b]);
            tok = json_array_get(details, (size_t)k);
            CHECK(json_integer_value(json_array_get(json_object_get(seg, "tokens"), (size_t)k)) == t->id);
            CHECK(json_integer_value(json_object_get(tok, "id")) == t->id);
            CHECKF(!strcmp(json_string_value(json_object_get(tok, "bytes")), hex), "token %d bytes", t->id);
            CHECK((float)json_number_value(json_object_get(tok, "p")) == t->p);
            CHECK((float)json_number_value(json_object_get(tok, "logprob")) == t->logprob);
            if (t->t0_s < 0)
                CHECK(json_is_null(json_object_get(tok, "t0")));
            else
                CHECK(json_number_value(json_object_get(tok, "t0")) == t->t0_s);
        }
    }
    /* The partial sequence "\xe2\x9c" must come out as valid UTF-8 holding at
     * least one U+FFFD (jansson rejects invalid UTF-8 outright). */
    seg = json_array_get(segments, 2);
    tok = json_array_get(json_object_get(seg, "token_details"), 0);
    CHECK(tok && strstr(json_string_value(json_object_get(tok, "text")), "\xef\xbf\xbd") != NULL);
done:
    json_decref(root);
    free(got);
}

/* Speech detection: the settings and the speech come after the duration;
 * an unlimited max_speech_s is null; times are to the millisecond. */
static void test_json_vad(void)
{
    struct hark_result r;
    make_result(&r, 0);
    r.duration_s = 71.0;
    r.vad_used = 1;
    hark_vad_params_init(&r.vad_params);
    strcpy(r.vad_name, "silero-v6.2.0");
    struct hark_speech speech[2] = {{2.31, 4.29}, {4441 * 0.01, 59.01}};
    r.speech = speech;
    r.n_speech = 2;
    int rc = -1;
    char *json = render(&r, HARK_FORMAT_JSON, &rc, NULL);
    static const char want[] =
        "{\"task\":\"transcribe\",\"language\":\"\",\"language_probability\":0,\"duration\":71,"
        "\"vad\":{\"model\":\"silero-v6.2.0\",\"threshold\":0.5,\"min_speech_ms\":250,\"min_silence_ms\":100,"
        "\"max_speech_s\":null,\"pad_ms\":30,\"overlap_s\":0.1,\"speech\":[{\"start\":2.31,\"end\":4.29},"
        "{\"start\":44.41,\"end\":59.01}],\"speech_duration\":16.58},\"text\":\"\",\"segments\":[]}\n";
    CHECK(rc == 0 && json != NULL);
    CHECKF(json && !strcmp(json, want), "got %s", json ? json : "(null)");
    free(json);
    /* Without detection there is no "vad" key. */
    r.vad_used = 0;
    json = render(&r, HARK_FORMAT_JSON, &rc, NULL);
    CHECK(json && !strstr(json, "\"vad\""));
    free(json);
}

static void test_empty(void)
{
    struct hark_result r;
    make_result(&r, 0);
    r.segments = NULL;
    expect_format(&r, HARK_FORMAT_TXT, "");
    expect_format(&r, HARK_FORMAT_SRT, "");
    expect_format(&r, HARK_FORMAT_VTT, "WEBVTT\n\n");
    expect_format(&r, HARK_FORMAT_TSV, "start\tend\ttext\n");
    expect_format(&r, HARK_FORMAT_JSON,
                  "{\"task\":\"transcribe\",\"language\":\"\",\"language_probability\":0,\"duration\":0,"
                  "\"text\":\"\",\"segments\":[]}\n");
}

/* Translate task, a non-finite number, a negative time, and numbers whose
 * shortest form needs an exponent (below 1e-4, from 1e16). */
static void test_edge_values(void)
{
    static struct hark_token tok = {7, "a", 1e-5f, -1234.5f, 60.0, 1e20, -1.0};
    static struct hark_segment seg = {0, 0, -0.5, 1.0 / 3.0, "  x  ", 1, &tok, 0.0f, -1.0f, 0.0f, 0.0f, 0, NULL};
    struct hark_result r;
    make_result(&r, 1);
    r.segments = &seg;
    r.task = HARK_TASK_TRANSLATE;
    r.duration_s = HUGE_VAL;
    seg.avg_logprob = NAN;
    expect_format(&r, HARK_FORMAT_SRT, "1\n00:00:00,000 --> 00:00:00,333\nx\n\n");
    expect_format(&r, HARK_FORMAT_TSV, "start\tend\ttext\n0\t333\tx\n");
    expect_format(&r, HARK_FORMAT_JSON,
                  "{\"task\":\"translate\",\"language\":\"en\",\"language_probability\":1,\"duration\":null,"
                  "\"text\":\"  x  \",\"segments\":[{\"id\":0,\"seek\":0,\"start\":-0.5,"
                  "\"end\":0.3333333333333333,\"text\":\"  x  \",\"tokens\":[7],\"temperature\":0,"
                  "\"avg_logprob\":null,\"compression_ratio\":0,\"no_speech_prob\":0,\"token_details\":["
                  "{\"id\":7,\"text\":\"a\",\"bytes\":\"61\",\"p\":1e-05,\"logprob\":-1234.5,\"t0\":60,"
                  "\"t1\":1e+20}]}]}\n");
}

/* A result built the way decode.c builds one: on the heap with
 * result_add_segment (which numbers the segments and takes ownership of
 * every string), written, then freed with hark_result_free. Under the
 * sanitizers this also proves the writers read only what they own. */
static void test_owned_result(void)
{
    struct hark_result *r = calloc(1, sizeof *r);
    int rc = -100;
    size_t len = 0;
    char *got;
    CHECK(r != NULL);
    if (!r) return;
    strcpy(r->language, "de");
    r->task = HARK_TASK_TRANSLATE;
    r->duration_s = 7.5;
    r->language_prob = 0.5f;
    for (int i = 0; i < 20; i++) {
        struct hark_segment seg = {0};
        struct hark_token *toks = calloc(2, sizeof *toks);
        char text[32];
        CHECK(toks != NULL);
        if (!toks) break;
        snprintf(text, sizeof text, " part %d", i);
        toks[0] = (struct hark_token){100 + i, strdup(" part"), 0.5f, -0.5f, i * 0.25, i * 0.25 + 0.125, -1.0};
        toks[1] = (struct hark_token){200 + i, strdup("\xe2"), 0.25f, -1.0f, -1.0, -1.0, -1.0};
        seg.seek = 0;
        seg.start_s = i * 0.25;
        seg.end_s = i * 0.25 + 0.25;
        seg.text = strdup(text);
        seg.tokens = toks;
        seg.n_tokens = 2;
        CHECK(result_add_segment(r, &seg) == 0);
    }
    CHECK(r->n_segments == 20 && r->segments[19].id == 19);
    got = render(r, HARK_FORMAT_TSV, &rc, &len);
    CHECK(rc == 0);
    CHECK(got && strstr(got, "\n4750\t5000\tpart 19\n") != NULL);
    free(got);
    got = render(r, HARK_FORMAT_JSON, &rc, &len);
    CHECK(rc == 0);
    CHECK(got && !strncmp(got, "{\"task\":\"translate\",\"language\":\"de\",\"language_probability\":0.5,"
                               "\"duration\":7.5,\"text\":\" part 0 part 1 part 2", 99));
    CHECK(got && strstr(got, "{\"id\":219,\"text\":\"\xef\xbf\xbd\",\"bytes\":\"e2\",\"p\":0.25,"
                             "\"logprob\":-1,\"t0\":null,\"t1\":null}]}]}\n") != NULL);
    free(got);
    hark_result_free(r);
}

/* A stream that cannot take the bytes gives HARK_EIO, as does a bad format
 * id give HARK_EINVAL. */
static void test_errors(void)
{
    struct hark_result r;
    FILE *f;
    make_result(&r, 3);
    CHECK(hark_result_write(&r, (enum hark_format)99, stdout) == HARK_EINVAL);
    CHECK(hark_result_write(NULL, HARK_FORMAT_TXT, stdout) == HARK_EINVAL);
    f = fopen("/dev/full", "w");
    if (!f) return;
    for (int fmt = HARK_FORMAT_TXT; fmt <= HARK_FORMAT_TSV; fmt++) {
        int rc = hark_result_write(&r, (enum hark_format)fmt, f);
        CHECKF(rc == HARK_EIO, "format %d on /dev/full returned %d", fmt, rc);
        clearerr(f);
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("format_parse", test_format_parse);
    t_run("format_table", test_format_table);
    t_run("txt", test_txt);
    t_run("srt", test_srt);
    t_run("vtt", test_vtt);
    t_run("tsv", test_tsv);
    t_run("json_bytes", test_json_bytes);
    t_run("json_parsed", test_json_parsed);
    t_run("json_vad", test_json_vad);
    t_run("empty", test_empty);
    t_run("edge_values", test_edge_values);
    t_run("owned_result", test_owned_result);
    t_run("write_errors", test_errors);
    return t_summary();
}
