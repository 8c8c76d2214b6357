/*
 * cues.c: SubRip and WebVTT subtitles, cut at words.
 *
 * A segment without word times is one cue, its text on one line. A segment
 * with words is filled into cues word by word, with the words' own times:
 * a word goes on the current line while the line stays within
 * max_line_chars characters, else on a new line while the cue has fewer
 * than max_lines, else it opens the next cue; a word that would make the
 * cue last longer than max_cue_s opens the next cue too. A word longer than
 * a line stands alone on its line, and a word longer than max_cue_s in its
 * cue (the only ways a limit is passed). Cues never overlap: a cue starts
 * no earlier than the one before ended, and lasts at least a millisecond.
 * In WebVTT, word tags (<00:00:01.250>) before every word but a cue's
 * first let players show each word as it is spoken; they stay in order and
 * within their cue. In every cue, CR, LF and tab become spaces and "-->"
 * becomes "->", as in openai-whisper's writers.
 */
#include "cues.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "result.h"

void hark_cue_options_init(struct hark_cue_options *o)
{
    o->max_line_chars = 42;
    o->max_lines = 2;
    o->max_cue_s = 7.0;
    o->word_tags = 0;
}

int hark_cue_options_check(const struct hark_cue_options *o, char *err, size_t errlen)
{
    const char *bad = NULL;
    if (!o) bad = "no options";
    else if (o->max_line_chars < 1 || o->max_line_chars > 1000) bad = "max_line_chars must be from 1 to 1000";
    else if (o->max_lines < 1 || o->max_lines > 20) bad = "max_lines must be from 1 to 20";
    else if (!(o->max_cue_s >= 0.5 && o->max_cue_s <= 3600.0)) bad = "max_cue_seconds must be from 0.5 to 3600";
    if (!bad) return 0;
    if (err && errlen) snprintf(err, errlen, "%s", bad);
    return HARK_EINVAL;
}

long long cues_ms(double s)
{
    if (!(s > 0)) return 0;
    if (s > 1e12) s = 1e12;
    return llrint(s * 1000.0);
}

void cues_format_time(char buf[64], double s, char mark)
{
    long long ms = cues_ms(s);
    long long h = ms / 3600000;
    ms -= h * 3600000;
    long long m = ms / 60000;
    ms -= m * 60000;
    long long sec = ms / 1000;
    ms -= sec * 1000;
    snprintf(buf, 64, "%02lld:%02lld:%02lld%c%03lld", h, m, sec, mark, ms);
}

/* A growing string. */
struct buf {
    char *s;
    size_t len, cap;
    int oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

/* Appends text cleaned for a cue: CR, LF, tab as spaces, "-->" as "->". */
static void put_clean(struct buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '-' && i + 2 < n && s[i + 1] == '-' && s[i + 2] == '>') {
            put(b, "->", 2);
            i += 2;
        } else if (s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
            put(b, " ", 1);
        } else {
            put(b, s + i, 1);
        }
    }
}

/* Characters (code points) in s[0..n). */
static int chars(const char *s, size_t n)
{
    int k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xc0) != 0x80;
    return k;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

void cues_free(struct cue *c, int n)
{
    if (!c) return;
    for (int i = 0; i < n; i++) free(c[i].text);
    free(c);
}

struct builder {
    struct cue *cues;
    int n, cap, oom;
    double last_end;
};

static void add_cue(struct builder *b, double start, double end, struct buf *text)
{
    if (b->oom || text->oom) {
        b->oom = 1;
        free(text->s);
        return;
    }
    /* Trim the cue's outer white space; skip a cue with no text. */
    size_t a = 0, e = text->len;
    while (a < e && is_ws(text->s[a])) a++;
    while (e > a && is_ws(text->s[e - 1])) e--;
    if (a == e) {
        free(text->s);
        return;
    }
    if (b->n == b->cap) {
        int cap = b->cap ? 2 * b->cap : 16;
        struct cue *c = realloc(b->cues, (size_t)cap * sizeof *c);
        if (!c) {
            b->oom = 1;
            free(text->s);
            return;
        }
        b->cues = c;
        b->cap = cap;
    }
    memmove(text->s, text->s + a, e - a);
    text->s[e - a] = 0;
    if (start < b->last_end) start = b->last_end;
    if (!(end > start)) end = start + 0.001;
    b->cues[b->n++] = (struct cue){start, end, text->s};
    b->last_end = end;
}

/* A WebVTT word tag at a word's start, held within its cue: no earlier
 * than the cue's start (moved past the cue before) or the tag before. */
static void put_tag(struct buf *text, double *tag_at, double t)
{
    char ts[64];
    if (t > *tag_at) *tag_at = t;
    cues_format_time(ts, *tag_at, '.');
    put(text, "<", 1);
    put(text, ts, strlen(ts));
    put(text, ">", 1);
}

/* One segment's words into cues. */
static void cut_words(struct builder *b, const struct hark_segment *seg, const struct hark_cue_options *o, int tags)
{
    struct buf text = {0};
    int lines = 0, line_chars = 0, words_in_cue = 0;
    double start = 0, end = 0, tag_at = 0;
    for (int k = 0; k < seg->n_words; k++) {
        const struct hark_word *w = &seg->words[k];
        const char *t = w->text ? w->text : "";
        size_t n = strlen(t), lead = 0;
        while (lead < n && is_ws(t[lead])) lead++;
        if (lead == n) continue; /* nothing to show */
        int wc = chars(t + lead, n - lead);
        int fits_line = words_in_cue && line_chars + chars(t, n) <= o->max_line_chars;
        int new_line = words_in_cue && !fits_line && lines < o->max_lines;
        int too_long = words_in_cue && w->end_s - start > o->max_cue_s;
        if (words_in_cue && (too_long || (!fits_line && !new_line))) {
            add_cue(b, start, fmax(end, tag_at), &text);
            memset(&text, 0, sizeof text);
            words_in_cue = 0;
        }
        if (!words_in_cue) {
            start = w->start_s;
            tag_at = fmax(start, b->last_end);
            lines = 1;
            line_chars = wc;
            put_clean(&text, t + lead, n - lead);
        } else if (!fits_line) {
            put(&text, "\n", 1);
            lines++;
            line_chars = wc;
            if (tags) put_tag(&text, &tag_at, w->start_s);
            put_clean(&text, t + lead, n - lead);
        } else {
            line_chars += chars(t, n);
            put_clean(&text, t, lead);
            if (tags) put_tag(&text, &tag_at, w->start_s);
            put_clean(&text, t + lead, n - lead);
        }
        end = w->end_s;
        words_in_cue++;
    }
    if (words_in_cue) add_cue(b, start, fmax(end, tag_at), &text);
    else free(text.s);
}

int cues_build(const struct hark_segment *segs, int n, const struct hark_cue_options *o, int vtt, struct cue **out,
               int *n_out)
{
    struct builder b = {0};
    *out = NULL;
    *n_out = 0;
    for (int i = 0; i < n; i++) {
        const struct hark_segment *seg = &segs[i];
        if (seg->n_words > 0 && seg->words) {
            cut_words(&b, seg, o, vtt && o->word_tags);
        } else {
            struct buf text = {0};
            const char *t = seg->text ? seg->text : "";
            put_clean(&text, t, strlen(t));
            if (!text.s && !text.oom) put(&text, "", 0);
            add_cue(&b, seg->start_s, seg->end_s, &text);
        }
        if (b.oom) break;
    }
    if (b.oom) {
        cues_free(b.cues, b.n);
        return HARK_ENOMEM;
    }
    *out = b.cues;
    *n_out = b.n;
    return 0;
}

int hark_segments_write_cues(const struct hark_segment *segs, int n, enum hark_format fmt,
                             const struct hark_cue_options *opt, FILE *out)
{
    struct hark_cue_options o;
    struct cue *c = NULL;
    int nc = 0, vtt = fmt == HARK_FORMAT_VTT;
    if ((fmt != HARK_FORMAT_SRT && !vtt) || !out || (n > 0 && !segs)) return HARK_EINVAL;
    if (opt) o = *opt;
    else hark_cue_options_init(&o);
    if (hark_cue_options_check(&o, NULL, 0)) return HARK_EINVAL;
    int rc = cues_build(segs, n, &o, vtt, &c, &nc);
    if (rc) return rc;
    if (vtt) fputs("WEBVTT\n\n", out);
    for (int i = 0; i < nc; i++) {
        char t0[64], t1[64];
        cues_format_time(t0, c[i].start, vtt ? '.' : ',');
        cues_format_time(t1, c[i].end, vtt ? '.' : ',');
        if (!vtt) fprintf(out, "%d\n", i + 1);
        fprintf(out, "%s --> %s\n%s\n\n", t0, t1, c[i].text);
    }
    cues_free(c, nc);
    if (fflush(out) != 0 || ferror(out)) return HARK_EIO;
    return 0;
}

int hark_result_write_cues(const hark_result *r, enum hark_format fmt, const struct hark_cue_options *o, FILE *out)
{
    if (!r) return HARK_EINVAL;
    return hark_segments_write_cues(r->segments, r->n_segments, fmt, o, out);
}
