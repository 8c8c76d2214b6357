/*
 * search.c: the search index's figures for `make bench` (run by
 * tests/bench/search.sh): N transcripts (default 10,000) of 20 segments of
 * 12 words each are indexed through the store's interface, then queries of
 * five kinds run BENCH_SEARCH_QUERIES times each (a page of 20 hits): a
 * common word, a rare word, two words, a two-word phrase, and a 3-letter
 * prefix. Prints the indexing rate and, per kind, the median and 99th
 * percentile latency and the hits found. The words come from a fixed
 * vocabulary of made-up words drawn with a Zipf-like law (a few words are
 * everywhere, most are rare), some with diacritics; the same seed gives
 * the same transcripts on every backend.
 *
 * usage: search_bench LOCATION [N]   (an SQLite path or a postgres:// URI)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"

#define VOCAB 20000
#define SEGS 20
#define WORDS 12

static char vocab[VOCAB][16];
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Word rank r (0 the most common) with probability ~ 1/(r+1). */
static int zipf(void)
{
    double u = (next() + 0.5) / 4294967296.0;
    int r = (int)floor(exp(u * log((double)VOCAB + 1))) - 1;
    return r < 0 ? 0 : r >= VOCAB ? VOCAB - 1 : r;
}

static void make_vocab(void)
{
    static const char *const syll[] = {"ka", "lo", "mi", "ter", "san", "vo", "ri", "del", "pa", "nu", "es", "tro",
                                       "bé", "gan", "ul", "fé", "do", "ris", "me", "zo"};
    for (int i = 0; i < VOCAB; i++) {
        char *w = vocab[i];
        int n = 2 + (int)(next() % 3), len = 0;
        w[0] = 0;
        for (int k = 0; k < n; k++) len += snprintf(w + len, sizeof vocab[i] - (size_t)len, "%s", syll[next() % 20]);
        /* Unique: the rank's digits in letters at the end. */
        for (int v = i; v > 0 && len < 15; v /= 20) w[len++] = (char)('a' + v % 20);
        w[len] = 0;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char texts[SEGS][WORDS * 16 + 16];

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: search_bench LOCATION [N]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 10000;
    int queries = getenv("BENCH_SEARCH_QUERIES") ? atoi(getenv("BENCH_SEARCH_QUERIES")) : 200;
    if (queries < 1) queries = 1;
    struct store *s;
    char err[512];
    if (store_open(argv[1], &s, err, sizeof err) != 0) {
        fprintf(stderr, "search_bench: %s\n", err);
        return 1;
    }
    make_vocab();
    /* The transcripts, and a phrase remembered from some of them. */
    static char phrases[64][40];
    int n_phrases = 0;
    double t0 = now_ms();
    for (int i = 0; i < n; i++) {
        struct store_upload u;
        memset(&u, 0, sizeof u);
        snprintf(u.id, sizeof u.id, "%08x-0000-4000-8000-%012x", i, i);
        snprintf(u.filename, sizeof u.filename, "talk-%05d.mp4", i);
        snprintf(u.sha256, sizeof u.sha256, "%056x%08x", 0, i);
        store_now(u.upload_date);
        if (store_upload_insert(s, &u, NULL) < 0) {
            fprintf(stderr, "search_bench: upload %d: %s\n", i, store_error(s));
            return 1;
        }
        struct store_segment segs[SEGS];
        for (int k = 0; k < SEGS; k++) {
            int len = 0, prev = -1;
            for (int w = 0; w < WORDS; w++) {
                int r = zipf();
                len += snprintf(texts[k] + len, sizeof texts[k] - (size_t)len, " %s", vocab[r]);
                if (w == 5 && n_phrases < 64 && next() % 97 == 0)
                    snprintf(phrases[n_phrases++], sizeof phrases[0], "\"%s %s\"", vocab[prev], vocab[r]);
                prev = r;
            }
            segs[k] = (struct store_segment){k, k * 5.0, k * 5.0 + 5.0, texts[k]};
        }
        if (store_index_set(s, u.id, segs, SEGS) < 0) {
            fprintf(stderr, "search_bench: index %d: %s\n", i, store_error(s));
            return 1;
        }
    }
    double build = (now_ms() - t0) / 1e3;
    printf("  indexed %d transcripts (%d segments, %d words) in %.1f s: %.0f segments/s\n", n, n * SEGS,
           n * SEGS * WORDS, build, n * SEGS / build);

    static const char *const kinds[] = {"common word", "rare word", "two words", "phrase", "prefix*"};
    double *ms = malloc(sizeof(double) * (size_t)queries);
    for (int kind = 0; kind < 5; kind++) {
        int64_t hits_total = 0;
        for (int q = 0; q < queries; q++) {
            char query[128];
            switch (kind) {
            case 0: snprintf(query, sizeof query, "%s", vocab[next() % 20]); break;
            case 1: snprintf(query, sizeof query, "%s", vocab[VOCAB / 2 + (int)(next() % (VOCAB / 2))]); break;
            case 2: snprintf(query, sizeof query, "%s %s", vocab[next() % 200], vocab[next() % 2000]); break;
            case 3: snprintf(query, sizeof query, "%s", n_phrases ? phrases[next() % (uint32_t)n_phrases] : vocab[0]); break;
            default: snprintf(query, sizeof query, "%.3s*", vocab[next() % VOCAB]); break;
            }
            struct store_hit *h = NULL;
            int got = 0;
            int64_t total = 0;
            double a = now_ms();
            if (store_search(s, query, NULL, 20, 0, &h, &got, &total) < 0) {
                fprintf(stderr, "search_bench: '%s': %s\n", query, store_error(s));
                return 1;
            }
            ms[q] = now_ms() - a;
            hits_total += total;
            store_hits_free(h, got);
        }
        qsort(ms, (size_t)queries, sizeof *ms, cmp_double);
        int p99 = (int)ceil(0.99 * queries) - 1;
        printf("  %-12s p50 %7.2f ms  p99 %7.2f ms  (%d queries, %.0f hits each on average)\n", kinds[kind],
               ms[queries / 2], ms[p99 < 0 ? 0 : p99], queries, (double)hits_total / queries);
    }
    free(ms);
    store_close(s);
    return 0;
}
