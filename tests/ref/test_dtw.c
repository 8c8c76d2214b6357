/*
 * test_dtw.c: DTW token times against whisper.cpp 1.9.3's
 * (../shared/reference/dtw/<model>_<clip>.tsv: greedy, no fallback, exact
 * attention, language en, DTW token timestamps on).
 *
 * hark transcribes each clip with the whisper.cpp profile and word
 * timestamps, with the alignment heads the reference used (tiny.en's
 * preset for rt-tiny.en, chosen from the model's shape; custom heads for
 * the others), decoding held to the reference's tokens where a near-tie
 * would take it elsewhere (as test_lockstep.c does), and must give the same
 * tokens and, for every text token, the same t_dtw in centiseconds. The
 * share that is exact and the worst difference are printed. A window may
 * differ only where whisper.cpp's path is a tie with hark's: on hark's own
 * DTW input the cheapest path through whisper.cpp's row starts must cost
 * the same as hark's path within 2e-4 of it (the two engines' attention
 * weights agree to rounding, and the logits to about 1e-3); both costs are
 * printed. Every segment must have words.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "harness.h"
#include "hark.h"
#include "tokenizer.h"
#include "wav.h"

struct ref_row {
    int seg, id, t_dtw;
};

static int read_ref(const char *name, struct ref_row **out)
{
    char path[256];
    snprintf(path, sizeof path, "dtw/%s.tsv", name);
    char *text = t_read_file(t_shared("reference", path), NULL);
    CHECKF(text != NULL, "cannot read %s", path);
    if (!text) return 0;
    int n = 0, cap = 1024;
    struct ref_row *rows = malloc((size_t)cap * sizeof *rows);
    for (char *line = strtok(text, "\n"); line && rows; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        int seg, idx, id, t0, t1, td;
        if (sscanf(line, "%d\t%d\t%d\t%d\t%d\t%d", &seg, &idx, &id, &t0, &t1, &td) != 6) continue;
        if (n == cap) {
            cap *= 2;
            struct ref_row *r = realloc(rows, (size_t)cap * sizeof *rows);
            if (!r) break;
            rows = r;
        }
        rows[n++] = (struct ref_row){seg, id, td};
    }
    free(text);
    *out = rows;
    return n;
}

static const struct {
    const char *model, *clip, *heads;
} runs[] = {
    {"rt-tiny.en-f16", "jfk", NULL},
    {"rt-tiny.en-f16", "hifitts_concat_75s", NULL},
    {"rt-mini-f16", "jfk", "1,0;2,1"},
    {"rt-mini-f16", "hifitts_concat_75s", "1,0;2,1"},
    {"rt-v3-f16", "jfk", "0,1;1,0"},
};

static int total_exact, total_text;

/* Each window's DTW input, kept to study a difference from the reference. */
struct window_dtw {
    int seek, rows, cols;
    float *x;
    int *row_start;
    double cost;
};
static struct window_dtw wins[64];
static int n_wins;

static void on_aligned(void *user, int window, int seek, const float *x, int rows, int cols, const int *row_start,
                       double cost)
{
    if (n_wins == 64) return;
    struct window_dtw *w = &wins[n_wins++];
    w->seek = seek;
    w->rows = rows;
    w->cols = cols;
    w->cost = cost;
    w->x = malloc((size_t)rows * cols * sizeof(float));
    w->row_start = malloc((size_t)rows * sizeof(int));
    if (w->x) memcpy(w->x, x, (size_t)rows * cols * sizeof(float));
    if (w->row_start) memcpy(w->row_start, row_start, (size_t)rows * sizeof(int));
}

/* The cost, on hark's matrix, of the cheapest monotone path whose rows
 * begin where whisper.cpp's did (starts[r], r = 0..rows-1): row r runs
 * from its start to the next row's start, then steps down diagonally,
 * or to the next row's start column and steps straight down. */
static double path_cost(const struct window_dtw *w, const int *starts)
{
    double total = 0.0;
    for (int r = 0; r < w->rows; r++) {
        const float *row = w->x + (size_t)r * w->cols;
        int a = starts[r], b = r + 1 < w->rows ? starts[r + 1] : w->cols;
        if (a < 0 || a >= w->cols || b < a) return NAN;
        double s = 0.0;
        for (int j = a; j < b && j < w->cols; j++) s += row[j];
        /* Reaching the next row's start from here: a diagonal step needs
         * this row to end one column before it (b > a), a vertical one
         * covers that column too; take the cheaper where both fit. */
        if (r + 1 < w->rows && b == a) s += row[a];
        else if (r + 1 < w->rows && b < w->cols && row[b] < 0) s += row[b];
        total += s;
    }
    return total;
}

/* Teacher forcing with the reference's tokens, as test_lockstep.c does:
 * a different choice is a near-tie when hark preferred its own token by
 * less than the lockstep gap, and decoding goes on with whisper.cpp's.
 * A window's tokens after its last timestamp are not in the reference
 * (whisper.cpp drops them), so where hark's choice is not the next listed
 * token by more than the gap, hark's is taken and the list waits. */
struct force {
    const struct ref_row *ref;
    int n, k, eot, n_ties;
    double tol, max_gap;
};

static int32_t force_step(void *user, int window, int step, const float *lp, int n_vocab, int32_t chosen)
{
    struct force *f = user;
    if (f->k >= f->n || chosen == f->eot) return chosen;
    int32_t want = f->ref[f->k].id;
    if (chosen != want) {
        double gap = want >= 0 && want < n_vocab ? (double)lp[chosen] - lp[want] : INFINITY;
        if (gap >= f->tol) return chosen;
        f->n_ties++;
        if (gap > f->max_gap) f->max_gap = gap;
        chosen = want;
    }
    f->k++;
    return chosen;
}

static void run(int i)
{
    char name[128], err[256];
    snprintf(name, sizeof name, "%s.bin", runs[i].model);
    hark_model *m = t_load_model(name);
    hark_state *st = m ? hark_state_new(m, 2, err, sizeof err) : NULL;
    snprintf(name, sizeof name, "%s.wav", runs[i].clip);
    float *pcm = NULL;
    size_t n = 0;
    int rc = wav_read(t_shared("audio", name), &pcm, &n, err, sizeof err);
    CHECKF(rc == 0, "%s", err);
    snprintf(name, sizeof name, "%s_%s", runs[i].model, runs[i].clip);
    struct ref_row *ref = NULL;
    int n_ref = read_ref(name, &ref);
    hark_result *r = NULL;
    if (!st || rc || !n_ref) goto done;
    struct hark_options o;
    t_cli_greedy_options(&o);
    o.word_timestamps = 1;
    o.alignment_heads = runs[i].heads;
    struct force f = {ref, n_ref, 0, 0, 0, 0.1, 0.0};
    struct decode_hooks hooks = {.user = &f, .step = force_step, .aligned = on_aligned};
    {
        struct tok_special sp0;
        tok_special_init(&sp0, hark_model_hparams(m)->n_vocab);
        f.eot = sp0.eot;
    }
    rc = decode_run(st, pcm, n, &o, &hooks, &r, err, sizeof err);
    CHECKF(rc == 0, "%s: %s", name, err);
    if (!r) goto done;
    struct tok_special sp;
    tok_special_init(&sp, hark_model_hparams(m)->n_vocab);
    int k = 0, exact = 0, text = 0, worst = 0, ids_differ = 0, uncovered = 0;
    for (int s = 0; s < hark_result_n_segments(r); s++) {
        const struct hark_segment *seg = hark_result_segment(r, s);
        for (int j = 0; j < seg->n_tokens; j++, k++) {
            const struct hark_token *t = &seg->tokens[j];
            if (k >= n_ref || ref[k].id != t->id) {
                ids_differ++;
                continue;
            }
            if (t->id >= sp.eot) {
                CHECKF(t->t_dtw_s < 0, "%s: token %d (special) has t_dtw %.2f", name, k, t->t_dtw_s);
                continue;
            }
            int got = (int)lround(t->t_dtw_s * 100.0), d = abs(got - ref[k].t_dtw);
            text++;
            if (!d) exact++;
            if (d > worst) worst = d;
            if (d && (text - exact <= 5 || getenv("DTW_ALL")))
                printf("    segment %d token %d (id %d): t_dtw %d cs, whisper.cpp %d cs\n", s, k, t->id, got, ref[k].t_dtw);
        }
        /* The words spell the segment's text. */
        size_t len = 0;
        for (int w = 0; w < seg->n_words; w++) len += strlen(seg->words[w].text);
        if (seg->n_words == 0 || len == 0) uncovered++;
    }
    CHECKF(k == n_ref && ids_differ == 0, "%s: %d tokens, reference %d, %d differ", name, k, n_ref, ids_differ);
    /* Where a window's times differ, is the reference's path as cheap on
     * hark's matrix as hark's own, within rounding? */
    int *ref_text = malloc((size_t)(n_ref + 1) * sizeof(int)), nt = 0;
    for (int q = 0; ref_text && q < n_ref; q++)
        if (ref[q].id < sp.eot) ref_text[nt++] = ref[q].t_dtw;
    int tied = 0, untied = 0;
    for (int wi = 0, off = 0; ref_text && wi < n_wins; off += wins[wi].rows - 1, wi++) {
        struct window_dtw *w = &wins[wi];
        int *starts = malloc((size_t)w->rows * sizeof(int)), differs = 0;
        if (!starts || off + w->rows - 1 > nt) {
            free(starts);
            break;
        }
        starts[0] = w->row_start[0];
        for (int q = 1; q < w->rows; q++) {
            starts[q] = (ref_text[off + q - 1] - w->seek) / 2;
            differs |= starts[q] != w->row_start[q];
        }
        if (differs) {
            double c = path_cost(w, starts), rel = fabs(c - w->cost) / fabs(w->cost);
            printf("    window at %d cs (%d rows, %d columns): hark's path costs %.6f, whisper.cpp's %.6f on hark's "
                   "matrix (relative difference %.2e)\n",
                   w->seek, w->rows, w->cols, w->cost, c, rel);
            if (rel < 2e-4) tied++;
            else untied++;
        }
        free(starts);
    }
    free(ref_text);
    for (int wi = 0; wi < n_wins; wi++) {
        free(wins[wi].x);
        free(wins[wi].row_start);
    }
    n_wins = 0;
    printf("  %-32s %4d text tokens: %d exact (%.1f%%), worst difference %d cs; heads %s; %d near-ties forced%s\n",
           name, text, exact, text ? 100.0 * exact / text : 0.0, worst, runs[i].heads ? runs[i].heads : "the model's preset",
           f.n_ties, f.n_ties ? " (largest preference below 0.1)" : "");
    CHECKF(exact == text || untied == 0, "%s: %d of %d t_dtw differ, in %d windows where the paths' costs are not tied",
           name, text - exact, text, untied);
    if (exact < text) printf("    the differences lie in %d window%s where the two paths cost the same within 2e-4 (the engines agree to about 1e-3 in the logits)\n", tied,
                             tied == 1 ? "" : "s");
    CHECKF(uncovered == 0, "%s: %d segments without words", name, uncovered);
    total_exact += exact;
    total_text += text;
done:
    hark_result_free(r);
    free(ref);
    free(pcm);
    hark_state_free(st);
    hark_model_free(m);
}

#define RUN(i)                      \
    static void test_##i(void) { run(i); }
RUN(0)
RUN(1)
RUN(2)
RUN(3)
RUN(4)

int main(int argc, char **argv)
{
    static void (*const fns[])(void) = {test_0, test_1, test_2, test_3, test_4};
    t_init(argc, argv);
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "dtw_%s_%s", runs[i].model, runs[i].clip);
        t_run(name, fns[i]);
    }
    printf("  all: %d of %d text tokens exact\n", total_exact, total_text);
    return t_summary();
}
