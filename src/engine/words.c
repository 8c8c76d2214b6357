/*
 * words.c: words from tokens and their DTW alignment, following
 * openai-whisper: tokenizer.py's split_to_word_tokens (characters first,
 * then words at spaces and punctuation, or every character for languages
 * written without spaces) and timing.py's add_word_timestamps (times from
 * where the aligned rows begin, the median-duration corrections at
 * sentence ends and segment edges, punctuation merged into neighbours).
 * Python's string tests are reproduced on UTF-8 bytes: "x in s" for
 * strings is a substring test (so the empty string is in every set), and
 * strip() removes white space.
 */
#include "words.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hark.h"

/* Python's string.punctuation, and timing.py's default sets. */
static const char PUNCTUATION[] = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
static const char PREPENDED[] = "\"'\xe2\x80\x9c\xc2\xbf([{-";
static const char APPENDED[] = "\"'.\xe3\x80\x82,\xef\xbc\x8c!\xef\xbc\x81?\xef\xbc\x9f:\xef\xbc\x9a\xe2\x80\x9d)]}\xe3\x80\x81";
static const char SENTENCE_END[] = ".\xe3\x80\x82!\xef\xbc\x81?\xef\xbc\x9f";

int words_by_char(const char *language)
{
    static const char *const langs[] = {"zh", "ja", "th", "lo", "my", "yue"};
    for (size_t i = 0; language && i < sizeof langs / sizeof langs[0]; i++)
        if (!strcmp(language, langs[i])) return 1;
    return 0;
}

void words_free(struct words_word *w, int n)
{
    if (!w) return;
    for (int i = 0; i < n; i++) free(w[i].text);
    free(w);
}

/* How many continuation bytes the last character of s still needs, when
 * its lead byte is valid; 0 otherwise. */
static int tail_needed(const unsigned char *s, size_t n)
{
    size_t i = n;
    int cont = 0;
    while (i > 0 && (s[i - 1] & 0xc0) == 0x80 && cont < 3) i--, cont++;
    if (i == 0) return 0;
    unsigned c = s[i - 1];
    int want = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    return want && cont + 1 < want ? want - cont - 1 : 0;
}

/* Python's "needle in hay" on UTF-8 bytes (a substring test). */
static int contains(const char *hay, const char *needle, size_t len)
{
    if (len == 0) return 1;
    for (const char *p = hay; *p; p++)
        if (strlen(p) >= len && !memcmp(p, needle, len)) return 1;
    return 0;
}

static int is_ws(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* The bytes of s[0..n) without surrounding white space (str.strip). */
static const char *strip(const char *s, size_t n, size_t *len)
{
    while (n && is_ws((unsigned char)s[0])) s++, n--;
    while (n && is_ws((unsigned char)s[n - 1])) n--;
    *len = n;
    return s;
}

static char *join(const struct words_token *tok, int t0, int t1)
{
    size_t len = 0;
    for (int i = t0; i < t1; i++) len += tok[i].len;
    char *s = malloc(len + 1);
    if (!s) return NULL;
    size_t o = 0;
    for (int i = t0; i < t1; i++) {
        memcpy(s + o, tok[i].bytes, tok[i].len);
        o += tok[i].len;
    }
    s[o] = 0;
    return s;
}

int words_split(const struct words_token *tok, int n, int by_char, struct words_word **out)
{
    struct words_word *w = calloc((size_t)(n > 0 ? n : 1), sizeof *w);
    int nw = 0, start = 0;
    *out = NULL;
    if (!w) return HARK_ENOMEM;
    for (int i = 0; i < n; i++) {
        /* A piece ends where the bytes so far end a character, unless the
         * next tokens complete a character this one began. */
        char buf[64];
        size_t blen = 0;
        for (int k = start; k <= i && blen < sizeof buf; k++)
            for (size_t b = 0; b < tok[k].len && blen < sizeof buf; b++) buf[blen++] = tok[k].bytes[b];
        int need = tail_needed((const unsigned char *)buf, blen);
        if (need && i + 1 < n) {
            int completes = 1;
            for (int k = i + 1, got = 0; got < need; k++) {
                if (k >= n) {
                    completes = 0;
                    break;
                }
                for (size_t b = 0; b < tok[k].len && got < need; b++, got++)
                    if (((unsigned char)tok[k].bytes[b] & 0xc0) != 0x80) completes = 0;
            }
            if (completes) continue;
        }
        /* The piece [start, i]: a word of its own, or the end of the last. */
        size_t plen = 0;
        for (int k = start; k <= i; k++) plen += tok[k].len;
        char *piece = join(tok, start, i + 1);
        if (!piece) goto oom;
        size_t slen;
        const char *st = strip(piece, plen, &slen);
        int new_word = by_char || nw == 0 || piece[0] == ' ' || contains(PUNCTUATION, st, slen);
        if (new_word) {
            w[nw].text = piece;
            w[nw].t0 = start;
            w[nw++].t1 = i + 1;
        } else {
            char *t = join(tok, w[nw - 1].t0, i + 1);
            free(piece);
            if (!t) goto oom;
            free(w[nw - 1].text);
            w[nw - 1].text = t;
            w[nw - 1].t1 = i + 1;
        }
        start = i + 1;
    }
    *out = w;
    return nw;
oom:
    words_free(w, nw);
    return HARK_ENOMEM;
}

/* The word a merged into b's place: text and tokens joined; a emptied. */
static int merge(struct words_word *into, struct words_word *from, int from_first)
{
    size_t a = strlen(into->text), b = strlen(from->text);
    char *t = malloc(a + b + 1);
    if (!t) return -1;
    if (from_first) {
        memcpy(t, from->text, b);
        memcpy(t + b, into->text, a + 1);
        into->t0 = from->t0;
    } else {
        memcpy(t, into->text, a);
        memcpy(t + a, from->text, b + 1);
        into->t1 = from->t1;
    }
    free(into->text);
    into->text = t;
    from->text[0] = 0;
    from->t1 = from->t0; /* no tokens */
    return 0;
}

void words_merge_punctuation(struct words_word *w, int n)
{
    /* Opening marks (after a space) join the following word. */
    for (int i = n - 2, j = n - 1; i >= 0; i--) {
        size_t len = strlen(w[i].text), sl;
        const char *s = strip(w[i].text, len, &sl);
        if (w[i].text[0] == ' ' && contains(PREPENDED, s, sl)) {
            if (merge(&w[j], &w[i], 1)) return;
        } else {
            j = i;
        }
    }
    /* Closing marks join the word before, unless it ends with a space. */
    for (int i = 0, j = 1; j < n; j++) {
        size_t len = strlen(w[i].text);
        if (!(len && w[i].text[len - 1] == ' ') && contains(APPENDED, w[j].text, strlen(w[j].text))) {
            if (merge(&w[i], &w[j], 0)) return;
        } else {
            i = j;
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Python's round(x, 2) for the times here (half to even at the exact
 * halves a float can hold). */
static double round2(double x) { return nearbyint(x * 100.0) / 100.0; }

int words_align(const struct words_token *tok, int n, int by_char, const int *row_start, const float *p,
                double offset_s, struct words_word **out, double *median_s)
{
    struct words_word *w = NULL;
    int nw = words_split(tok, n, by_char, &w);
    *out = NULL;
    *median_s = 0.0;
    if (nw < 0) return nw;
    double *dur = malloc((size_t)(nw > 0 ? nw : 1) * sizeof *dur);
    if (!dur) {
        words_free(w, nw);
        return HARK_ENOMEM;
    }
    int nd = 0;
    for (int k = 0; k < nw; k++) {
        w[k].start = row_start[w[k].t0] / 50.0;
        w[k].end = row_start[w[k].t1] / 50.0;
        double sum = 0.0;
        for (int t = w[k].t0; t < w[k].t1; t++) sum += p[t];
        w[k].p = w[k].t1 > w[k].t0 ? (float)(sum / (w[k].t1 - w[k].t0)) : 0.0f;
        if (w[k].end - w[k].start != 0.0) dur[nd++] = w[k].end - w[k].start;
    }
    double median = 0.0;
    if (nd) {
        qsort(dur, (size_t)nd, sizeof *dur, cmp_double);
        median = nd % 2 ? dur[nd / 2] : 0.5 * (dur[nd / 2 - 1] + dur[nd / 2]);
    }
    free(dur);
    median = median < 0.7 ? median : 0.7;
    const double max_dur = median * 2;
    /* Words at sentence boundaries no longer than twice the median. */
    if (nd)
        for (int k = 1; k < nw; k++) {
            if (w[k].end - w[k].start <= max_dur) continue;
            if (contains(SENTENCE_END, w[k].text, strlen(w[k].text))) w[k].end = w[k].start + max_dur;
            else if (contains(SENTENCE_END, w[k - 1].text, strlen(w[k - 1].text))) w[k].start = w[k].end - max_dur;
        }
    words_merge_punctuation(w, nw);
    for (int k = 0; k < nw; k++) {
        w[k].start = round2(offset_s + w[k].start);
        w[k].end = round2(offset_s + w[k].end);
    }
    *out = w;
    *median_s = median;
    return nw;
}

void words_fix_segment(struct words_word *w, int n, double median, double *last_speech_s, double *seg_start,
                       double *seg_end, int adjust_segment)
{
    if (n <= 0) return;
    const double max_dur = median * 2;
    double s0 = *seg_start, s1 = *seg_end;
    /* The first word (or two) after a pause no longer than allowed. */
    if (w[0].end - *last_speech_s > median * 4 &&
        (w[0].end - w[0].start > max_dur || (n > 1 && w[1].end - w[0].start > max_dur * 2))) {
        if (n > 1 && w[1].end - w[1].start > max_dur) {
            double b = fmax(w[1].end / 2, w[1].end - max_dur);
            w[0].end = w[1].start = b;
        }
        w[0].start = fmax(0.0, w[0].end - max_dur);
    }
    /* The segment's start unless the first word runs past it by far. */
    if (s0 < w[0].end && s0 - 0.5 > w[0].start) w[0].start = fmax(0.0, fmin(w[0].end - median, s0));
    else s0 = w[0].start;
    if (s1 > w[n - 1].start && s1 + 0.5 < w[n - 1].end) w[n - 1].end = fmax(w[n - 1].start + median, s1);
    else s1 = w[n - 1].end;
    if (adjust_segment) {
        *seg_start = s0;
        *seg_end = s1;
    }
    *last_speech_s = adjust_segment ? s1 : *seg_end;
}
