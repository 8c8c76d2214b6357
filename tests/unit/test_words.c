/*
 * test_words.c: tokens into timed words (words.c), rule by rule on
 * hand-made tokens and alignments, in English, German, Japanese and
 * Chinese. Every expected word and time below is worked out by hand from
 * openai-whisper's rules (tokenizer.py split_to_word_tokens, timing.py
 * merge_punctuations and add_word_timestamps), not produced by the code.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "words.h"

#define MAXT 16

static int make(const char *const *pieces, int n, struct words_token *t)
{
    for (int i = 0; i < n; i++) t[i] = (struct words_token){pieces[i], strlen(pieces[i]), 0, i};
    return n;
}

/* Checks the words' texts (NULL-terminated list; "" for merged ones). */
static int same_words(struct words_word *w, int n, const char *const *want)
{
    int k = 0;
    for (; want[k]; k++)
        if (k >= n || strcmp(w[k].text, want[k])) return 0;
    return k == n;
}

static void show(const char *what, struct words_word *w, int n)
{
    printf("  %s:", what);
    for (int k = 0; k < n; k++) printf(" [%s]", w[k].text);
    printf("\n");
}

static void test_english(void)
{
    static const char *const p[] = {" Hello", ",", " wor", "ld", "!", " It", "'s", " me", "."};
    struct words_token t[MAXT];
    struct words_word *w = NULL;
    int n = words_split(t, make(p, 9, t), 0, &w);
    /* Spaces and punctuation start words; "ld" and "'s" do not... except
     * that "'s" is not punctuation as a whole: it joins " It". */
    static const char *const want[] = {" Hello", ",", " world", "!", " It's", " me", ".", NULL};
    show("split", w, n);
    CHECK(same_words(w, n, want));
    CHECK(n == 7 && w[2].t0 == 2 && w[2].t1 == 4 && w[4].t0 == 5 && w[4].t1 == 7);
    words_merge_punctuation(w, n);
    static const char *const merged[] = {" Hello,", "", " world!", "", " It's", " me.", "", NULL};
    show("merged", w, n);
    CHECK(same_words(w, n, merged));
    CHECK(w[0].t0 == 0 && w[0].t1 == 2 && w[1].t1 == w[1].t0 && w[5].t1 == 9);
    words_free(w, n);

    /* Opening marks after a space join the next word: ' "' then ' yes'. */
    static const char *const q[] = {" \"", "yes", "\"", " (", " no", ")"};
    n = words_split(t, make(q, 6, t), 0, &w);
    show("split", w, n);
    /* '"' is punctuation, so "yes" starts no word of its own: ' "yes'. */
    static const char *const want2[] = {" \"yes", "\"", " (", " no", ")", NULL};
    CHECK(same_words(w, n, want2));
    words_merge_punctuation(w, n);
    show("merged", w, n);
    static const char *const merged2[] = {" \"yes\"", "", "", " ( no)", "", NULL};
    CHECK(same_words(w, n, merged2));
    words_free(w, n);
}

static void test_german(void)
{
    /* "Größe" with ö and ß split across tokens: a token that ends inside a
     * character stays with the next one. */
    static const char *const p[] = {" Gr\xc3", "\xb6\xc3\x9f", "e", " und", " Ma\xc3", "\x9f", "."};
    struct words_token t[MAXT];
    struct words_word *w = NULL;
    int n = words_split(t, make(p, 7, t), 0, &w);
    show("split", w, n);
    static const char *const want[] = {" Gr\xc3\xb6\xc3\x9f" "e", " und", " Ma\xc3\x9f", ".", NULL};
    CHECK(same_words(w, n, want));
    CHECK(n == 4 && w[0].t1 == 3 && w[2].t0 == 4 && w[2].t1 == 6);
    words_free(w, n);
}

static void test_japanese_chinese(void)
{
    CHECK(words_by_char("ja") && words_by_char("zh") && words_by_char("yue") && !words_by_char("en") &&
          !words_by_char("de") && !words_by_char(NULL));
    /* こんにちは: "こ", "ん" + half of "に", the rest of "に", "ちは". By
     * character: every complete piece is a word. */
    static const char *const p[] = {"\xe3\x81\x93", "\xe3\x82\x93\xe3\x81", "\xab", "\xe3\x81\xa1\xe3\x81\xaf", "\xe3\x80\x82"};
    struct words_token t[MAXT];
    struct words_word *w = NULL;
    int n = words_split(t, make(p, 5, t), 1, &w);
    show("split", w, n);
    static const char *const want[] = {"\xe3\x81\x93", "\xe3\x82\x93\xe3\x81\xab", "\xe3\x81\xa1\xe3\x81\xaf",
                                       "\xe3\x80\x82", NULL};
    CHECK(same_words(w, n, want));
    words_merge_punctuation(w, n);
    /* 。 closes the word before it. */
    static const char *const merged[] = {"\xe3\x81\x93", "\xe3\x82\x93\xe3\x81\xab",
                                         "\xe3\x81\xa1\xe3\x81\xaf\xe3\x80\x82", "", NULL};
    CHECK(same_words(w, n, merged));
    words_free(w, n);
    /* 你好，世界 in Chinese: four characters, the comma joins 好. */
    static const char *const c[] = {"\xe4\xbd\xa0", "\xe5\xa5\xbd", "\xef\xbc\x8c", "\xe4\xb8\x96\xe7\x95\x8c"};
    n = words_split(t, make(c, 4, t), 1, &w);
    words_merge_punctuation(w, n);
    show("chinese", w, n);
    static const char *const want2[] = {"\xe4\xbd\xa0", "\xe5\xa5\xbd\xef\xbc\x8c", "", "\xe4\xb8\x96\xe7\x95\x8c",
                                        NULL};
    CHECK(same_words(w, n, want2));
    words_free(w, n);
}

/* Times: word k runs from the row of its first token to the row after its
 * last (20 ms frames), plus the window's offset; a word at a sentence end
 * is cut to twice the median duration. */
static void test_align_times(void)
{
    static const char *const p[] = {" One", " two", " three", "."};
    struct words_token t[MAXT];
    /* Rows 0..4 start at frames 0, 10, 20, 30, 80: durations 0.2 s, 0.2,
     * 0.2 and the "." row 1.0 s. Median of the nonzero durations
     * (0.2, 0.2, 0.2, 1.0) = 0.2, max 0.4: "." becomes [0.6, 1.0] + offset. */
    const int rows[] = {0, 10, 20, 30, 80};
    const float prob[] = {0.5f, 1.0f, 0.25f, 0.75f};
    struct words_word *w = NULL;
    double median = -1;
    int n = words_align(t, make(p, 4, t), 0, rows, prob, 10.0, &w, &median);
    CHECKF(n == 4 && fabs(median - 0.2) < 1e-12, "%d words, median %g", n, median);
    /* "." then merges into " three": its text and end. */
    CHECK(n == 4 && !strcmp(w[2].text, " three.") && !strcmp(w[3].text, ""));
    if (n == 4) {
        CHECKF(fabs(w[0].start - 10.0) < 1e-9 && fabs(w[0].end - 10.2) < 1e-9, "[%g, %g]", w[0].start, w[0].end);
        CHECKF(fabs(w[2].start - 10.4) < 1e-9 && fabs(w[2].end - 10.6) < 1e-9, "three [%g, %g]", w[2].start, w[2].end);
        CHECKF(fabs(w[3].start - 10.6) < 1e-9 && fabs(w[3].end - 11.0) < 1e-9, ". [%g, %g]", w[3].start, w[3].end);
        /* A merge keeps the probability the word had (timing.py merges
         * only words and tokens). */
        CHECK(fabsf(w[0].p - 0.5f) < 1e-6f && fabsf(w[2].p - 0.25f) < 1e-6f);
    }
    words_free(w, n);

    /* The word after a sentence end is cut at its start instead. */
    static const char *const q[] = {" Yes", ".", " Well", " then"};
    const int rows2[] = {0, 10, 12, 62, 72};
    n = words_align(t, make(q, 4, t), 0, rows2, prob, 0.0, &w, &median);
    /* Durations 0.2, 0.04, 1.0, 0.2: median (0.04, 0.2, 0.2, 1.0) = 0.2,
     * max 0.4; " Well" follows "." and becomes [1.24 − 0.4 + ..] = [0.84, 1.24]. */
    CHECK(n == 4 && fabs(median - 0.2) < 1e-12);
    if (n == 4) CHECKF(fabs(w[2].start - 0.84) < 1e-9 && fabs(w[2].end - 1.24) < 1e-9, "Well [%g, %g]", w[2].start, w[2].end);
    words_free(w, n);
}

/* A segment's edges. */
static void test_fix_segment(void)
{
    struct words_word w[2];
    char a[] = " Hello", b[] = " there";
    double last, s0, s1;
    /* After a pause (last speech at 0, the word ends at 5 > 4 · median
     * 0.2), a first word 3 s long is cut to twice the median: [4.6, 5.0]. */
    w[0] = (struct words_word){a, 0, 1, 2.0, 5.0, 1.0f};
    w[1] = (struct words_word){b, 1, 2, 5.0, 5.2, 1.0f};
    last = 0.0, s0 = 2.0, s1 = 5.2;
    words_fix_segment(w, 2, 0.2, &last, &s0, &s1, 1);
    CHECKF(fabs(w[0].start - 4.6) < 1e-9 && fabs(w[0].end - 5.0) < 1e-9, "[%g, %g]", w[0].start, w[0].end);
    /* The segment takes its words' edges, and the last speech its end. */
    CHECKF(fabs(s0 - 4.6) < 1e-9 && fabs(s1 - 5.2) < 1e-9 && fabs(last - 5.2) < 1e-9, "%g %g %g", s0, s1, last);
    /* A first word starting more than 0.5 s before the segment is cut to
     * it: max(0, min(end − median, start)). */
    w[0] = (struct words_word){a, 0, 1, 1.0, 2.2, 1.0f};
    w[1] = (struct words_word){b, 1, 2, 2.2, 2.4, 1.0f};
    last = 1.9, s0 = 2.0, s1 = 2.4;
    words_fix_segment(w, 2, 0.2, &last, &s0, &s1, 1);
    CHECKF(fabs(w[0].start - 2.0) < 1e-9 && fabs(s0 - 2.0) < 1e-9, "[%g] seg %g", w[0].start, s0);
    /* A last word running more than 0.5 s past the segment's end is cut:
     * max(start + median, end). */
    w[1] = (struct words_word){b, 1, 2, 2.2, 3.5, 1.0f};
    s0 = 2.0, s1 = 2.4, last = 1.9;
    words_fix_segment(w, 2, 0.2, &last, &s0, &s1, 1);
    CHECKF(fabs(w[1].end - 2.4) < 1e-9 && fabs(s1 - 2.4) < 1e-9, "[%g] seg %g", w[1].end, s1);
    /* Without adjust_segment the segment keeps its times. */
    w[0] = (struct words_word){a, 0, 1, 2.1, 2.2, 1.0f};
    w[1] = (struct words_word){b, 1, 2, 2.2, 2.3, 1.0f};
    s0 = 2.0, s1 = 2.4, last = 1.9;
    words_fix_segment(w, 2, 0.2, &last, &s0, &s1, 0);
    CHECK(s0 == 2.0 && s1 == 2.4);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("english", test_english);
    t_run("german", test_german);
    t_run("japanese_chinese", test_japanese_chinese);
    t_run("align_times", test_align_times);
    t_run("fix_segment", test_fix_segment);
    return t_summary();
}
