/*
 * align.c: token times by dynamic time warping over the cross-attention of
 * the alignment heads, as openai-whisper's timing.py (find_alignment) and
 * whisper.cpp 1.9.3 (whisper_exp_compute_token_level_timestamps_dtw)
 * compute them.
 *
 * One decoder pass over [sot sequence, <|notimestamps|>, text, <|endoftext|>]
 * with the window's encoder output records, for each alignment head, every
 * token's attention over the window's audio positions (20 ms each). Per
 * head, each audio position is normalised across the tokens (mean 0,
 * standard deviation 1), each token's row is smoothed with a median filter
 * of width 7, the heads are averaged, and the rows of the sot sequence and
 * of <|endoftext|> are dropped. The cheapest monotone path through the
 * negated matrix (DTW) then says where each row begins. The two references
 * differ in small ways that this file follows per decoding profile: which
 * tokens form the sot sequence, whether the softmax runs over the window's
 * positions or all 1500, f16 queries, an epsilon in the normalisation, and
 * float or double costs.
 */
#include "align.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder.h"
#include "errors.h"
#include "kernels.h"
#include "model.h"
#include "pool.h"
#include "state.h"
#include "tokenizer.h"


/* ------------------------------------------------------------------ heads */

/* openai-whisper's alignment heads of the released models, as (text layer,
 * head) pairs (whisper.cpp holds the same table). */
static const int8_t heads_tiny_en[][2] = {{1, 0}, {2, 0}, {2, 5}, {3, 0}, {3, 1}, {3, 2}, {3, 3}, {3, 4}};
static const int8_t heads_tiny[][2] = {{2, 2}, {3, 0}, {3, 2}, {3, 3}, {3, 4}, {3, 5}};
static const int8_t heads_base_en[][2] = {{3, 3}, {4, 7}, {5, 1}, {5, 5}, {5, 7}};
static const int8_t heads_base[][2] = {{3, 1}, {4, 2}, {4, 3}, {4, 7}, {5, 1}, {5, 2}, {5, 4}, {5, 6}};
static const int8_t heads_small_en[][2] = {{6, 6},   {7, 0},   {7, 3},   {7, 8},  {8, 2},   {8, 5},  {8, 7},
                                           {9, 0},   {9, 4},   {9, 8},   {9, 10}, {10, 0},  {10, 1}, {10, 2},
                                           {10, 3},  {10, 6},  {10, 11}, {11, 2}, {11, 4}};
static const int8_t heads_small[][2] = {{5, 3}, {5, 9}, {8, 0}, {8, 4}, {8, 7},
                                        {8, 8}, {9, 0}, {9, 7}, {9, 9}, {10, 5}};
static const int8_t heads_medium_en[][2] = {{11, 4},  {14, 1},  {14, 12}, {14, 14}, {15, 4},  {16, 0},
                                            {16, 4},  {16, 9},  {17, 12}, {17, 14}, {18, 7},  {18, 10},
                                            {18, 15}, {20, 0},  {20, 3},  {20, 9},  {20, 14}, {21, 12}};
static const int8_t heads_medium[][2] = {{13, 15}, {15, 4}, {15, 15}, {16, 1}, {20, 0}, {23, 4}};
static const int8_t heads_large_v2[][2] = {{10, 12}, {13, 17}, {16, 11}, {16, 12}, {16, 13}, {17, 15},
                                           {17, 16}, {18, 4},  {18, 11}, {18, 19}, {19, 11}, {21, 2},
                                           {21, 3},  {22, 3},  {22, 9},  {22, 12}, {23, 5},  {23, 7},
                                           {23, 13}, {25, 5},  {26, 1},  {26, 12}, {27, 15}};
static const int8_t heads_large_v3[][2] = {{7, 0},   {10, 17}, {12, 18}, {13, 12}, {16, 1},
                                           {17, 14}, {19, 11}, {21, 4},  {24, 1},  {25, 6}};
static const int8_t heads_large_v3_turbo[][2] = {{2, 4}, {2, 11}, {3, 3}, {3, 6}, {3, 11}, {3, 14}};

#define PRESET(name, tab) name, tab, (int)(sizeof tab / sizeof tab[0])

static void set_preset(struct align_heads *out, const char *name, const int8_t (*tab)[2], int n)
{
    out->n = n;
    for (int i = 0; i < n; i++) {
        out->layer[i] = tab[i][0];
        out->head[i] = tab[i][1];
    }
    snprintf(out->name, sizeof out->name, "%s", name);
}

static void set_top(struct align_heads *out, const struct hark_hparams *hp, int n_top, const char *name)
{
    out->n = 0;
    for (int l = hp->n_text_layer - n_top; l < hp->n_text_layer; l++)
        for (int h = 0; h < hp->n_text_head && out->n < ALIGN_MAX_HEADS; h++) {
            out->layer[out->n] = l;
            out->head[out->n++] = h;
        }
    snprintf(out->name, sizeof out->name, "%s", name);
}

void align_heads_default(const struct hark_model *m, struct align_heads *out)
{
    const struct hark_hparams *hp = &m->hp;
    const int en = hp->n_vocab < 51865, S = hp->n_text_state, L = hp->n_text_layer, H = hp->n_text_head;
    static const struct {
        int state, layers, heads, en, mels; /* en, mels: -1 either */
        const char *name;
        const int8_t (*tab)[2];
        int n;
    } presets[] = {
        {384, 4, 6, 1, 80, PRESET("tiny.en", heads_tiny_en)},
        {384, 4, 6, 0, 80, PRESET("tiny", heads_tiny)},
        {512, 6, 8, 1, 80, PRESET("base.en", heads_base_en)},
        {512, 6, 8, 0, 80, PRESET("base", heads_base)},
        {768, 12, 12, 1, 80, PRESET("small.en", heads_small_en)},
        {768, 12, 12, 0, 80, PRESET("small", heads_small)},
        {1024, 24, 16, 1, 80, PRESET("medium.en", heads_medium_en)},
        {1024, 24, 16, 0, 80, PRESET("medium", heads_medium)},
        {1280, 32, 20, 0, 80, PRESET("large-v2", heads_large_v2)},
        {1280, 32, 20, 0, 128, PRESET("large-v3", heads_large_v3)},
        {1280, 4, 20, 0, 128, PRESET("large-v3-turbo", heads_large_v3_turbo)},
    };
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (presets[i].state == S && presets[i].layers == L && presets[i].heads == H && presets[i].en == en &&
            presets[i].mels == hp->n_mels) {
            set_preset(out, presets[i].name, presets[i].tab, presets[i].n);
            return;
        }
    char name[32];
    snprintf(name, sizeof name, "top-%d", L - L / 2);
    set_top(out, hp, L - L / 2, name);
}

int align_heads_parse(const char *spec, const struct hark_model *m, struct align_heads *out, char *err,
                      size_t errlen)
{
    const struct hark_hparams *hp = &m->hp;
    char *end;
    if (!spec || !*spec) goto bad;
    if (!strncmp(spec, "top-", 4)) {
        long n = strtol(spec + 4, &end, 10);
        if (end == spec + 4 || *end || n < 1 || n > hp->n_text_layer) {
            err_set(err, errlen, "alignment heads '%s': top-N needs N from 1 to %d", spec, hp->n_text_layer);
            return HARK_EINVAL;
        }
        set_top(out, hp, (int)n, spec);
        return 0;
    }
    out->n = 0;
    for (const char *p = spec; *p;) {
        long l = strtol(p, &end, 10);
        if (end == p || *end != ',') goto bad;
        p = end + 1;
        long h = strtol(p, &end, 10);
        if (end == p || (*end && *end != ';')) goto bad;
        if (l < 0 || l >= hp->n_text_layer || h < 0 || h >= hp->n_text_head) {
            err_set(err, errlen, "alignment head %ld,%ld: this model has text layers 0-%d and heads 0-%d", l, h,
                    hp->n_text_layer - 1, hp->n_text_head - 1);
            return HARK_EINVAL;
        }
        if (out->n == ALIGN_MAX_HEADS) goto bad;
        out->layer[out->n] = (int)l;
        out->head[out->n++] = (int)h;
        p = *end ? end + 1 : end;
    }
    snprintf(out->name, sizeof out->name, "custom");
    return 0;
bad:
    err_set(err, errlen, "alignment heads '%s': use \"LAYER,HEAD;LAYER,HEAD;...\" or \"top-N\"",
            spec ? spec : "");
    return HARK_EINVAL;
}

/* -------------------------------------------------------------------- dtw */

int align_dtw(const float *x, int n, int m, int dbl, int *row_start, double *total)
{
    const size_t W = (size_t)m + 1;
    double *cost = malloc((size_t)(n + 1) * W * sizeof(double));
    signed char *trace = malloc((size_t)(n + 1) * W);
    if (!cost || !trace) {
        free(cost);
        free(trace);
        return HARK_ENOMEM;
    }
    for (size_t k = 0; k < (size_t)(n + 1) * W; k++) cost[k] = INFINITY;
    cost[0] = 0.0;
    for (int j = 1; j <= m; j++) {
        for (int i = 1; i <= n; i++) {
            double c0 = cost[(size_t)(i - 1) * W + j - 1], c1 = cost[(size_t)(i - 1) * W + j],
                   c2 = cost[(size_t)i * W + j - 1], c;
            signed char t;
            if (c0 < c1 && c0 < c2) c = c0, t = 0;
            else if (c1 < c0 && c1 < c2) c = c1, t = 1;
            else c = c2, t = 2;
            float xv = x[(size_t)(i - 1) * m + j - 1];
            /* whisper.cpp keeps its costs in float. */
            cost[(size_t)i * W + j] = dbl ? (double)xv + c : (double)(xv + (float)c);
            trace[(size_t)i * W + j] = t;
        }
    }
    if (total) *total = cost[(size_t)n * W + m];
    for (int j = 0; j <= m; j++) trace[j] = 2;
    for (int i = 0; i <= n; i++) trace[(size_t)i * W] = 1;
    for (int r = 0; r < n; r++) row_start[r] = -1;
    /* Backtrace from the end; the first column a row's path enters is the
     * last one seen going back. */
    int i = n, j = m;
    while (i > 0 || j > 0) {
        if (i > 0 && j > 0) row_start[i - 1] = j - 1;
        signed char t = trace[(size_t)i * W + j];
        if (t == 0) i--, j--;
        else if (t == 1) i--;
        else j--;
    }
    free(cost);
    free(trace);
    return 0;
}

/* ------------------------------------------------------------------ window */

void align_out_free(struct align_out *out)
{
    free(out->row_start);
    free(out->x);
    out->row_start = NULL;
    out->x = NULL;
}

/* One head's part of a window: softmax of its scores over the positions
 * (in place, the first F of each row kept), each position normalised across
 * the tokens, then the median filter along each token's row into out. */
struct head_job {
    float *scores;   /* heads x N x A */
    float *out;      /* heads x N x F */
    int N, A, F, wcpp;
    int failed;
};

static void head_task(void *arg, int k, int thread)
{
    struct head_job *a = arg;
    const int N = a->N, A = a->A, F = a->F;
    float *s = a->scores + (size_t)k * N * A, *dst = a->out + (size_t)k * N * F;
    double *mean = calloc(2 * (size_t)F, sizeof(double)), *var = mean + F;
    (void)thread;
    if (!mean) {
        a->failed = 1;
        return;
    }
    /* Softmax over the window's positions (openai) or all (whisper.cpp). */
    const int n_soft = a->wcpp ? A : F;
    for (int r = 0; r < N; r++) {
        float *row = s + (size_t)r * A;
        float mx = -INFINITY;
        for (int j = 0; j < n_soft; j++) mx = row[j] > mx ? row[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < n_soft; j++) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        const float inv = (float)(1.0 / sum);
        for (int j = 0; j < F; j++) row[j] *= inv;
    }
    /* Normalise each position across the tokens. */
    for (int r = 0; r < N; r++)
        for (int j = 0; j < F; j++) mean[j] += s[(size_t)r * A + j];
    for (int j = 0; j < F; j++) mean[j] /= N;
    for (int r = 0; r < N; r++)
        for (int j = 0; j < F; j++) {
            double d = s[(size_t)r * A + j] - mean[j];
            var[j] += d * d;
        }
    for (int j = 0; j < F; j++) var[j] = 1.0 / sqrt(var[j] / N + (a->wcpp ? 1e-9 : 0.0));
    for (int r = 0; r < N; r++)
        for (int j = 0; j < F; j++) s[(size_t)r * A + j] = (float)((s[(size_t)r * A + j] - mean[j]) * var[j]);
    free(mean);
    /* Median filter along each row, reflected at the ends. */
    for (int r = 0; r < N; r++) kern_median7(s + (size_t)r * A, dst + (size_t)r * F, F);
}

int align_window(struct hark_state *st, int profile, const struct align_heads *heads, const int32_t *sot_seq,
                 int n_sot, const int32_t *text, int n_text, int n_frames, int keep_matrix, struct align_out *out)
{
    const struct hark_model *m = st->model;
    const struct hark_hparams *hp = &m->hp;
    const int A = hp->n_audio_ctx, hd = hp->n_text_state / hp->n_text_head;
    const int wcpp = profile == HARK_DECODER_WHISPER_CPP;
    struct tok_special sp;
    tok_special_init(&sp, hp->n_vocab);
    memset(out, 0, sizeof *out);
    out->n_text = n_text;
    const int N = n_sot + n_text + 2, F = n_frames / 2 < A ? n_frames / 2 : A, R = n_text + 1;
    if (n_text < 1 || heads->n < 1 || N > hp->n_text_ctx || F < 1) return HARK_EINVAL;

    int32_t *tok = malloc((size_t)N * sizeof *tok);
    float *scores = malloc((size_t)heads->n * N * A * sizeof(float));
    float *scratch = malloc(((size_t)A * hd + (size_t)N * hd) * sizeof(float));
    float *mat = calloc((size_t)N * F, sizeof(float)), *x = malloc((size_t)R * F * sizeof(float));
    out->row_start = malloc((size_t)R * sizeof(int));
    int rc = HARK_ENOMEM;
    if (!tok || !scores || !scratch || !mat || !x || !out->row_start) goto done;
    memcpy(tok, sot_seq, (size_t)n_sot * sizeof *tok);
    tok[n_sot] = sp.notimestamps;
    memcpy(tok + n_sot + 1, text, (size_t)n_text * sizeof *tok);
    tok[N - 1] = sp.eot;

    struct dec_capture cap = {heads->n, heads->layer, heads->head, wcpp, scores, scratch};
    if ((rc = dec_reserve(st, 1)) != 0) goto done;
    if ((rc = dec_forward_capture(st, 0, tok, N, 0, N, NULL, &cap)) != 0) goto done;

    float *per_head = malloc((size_t)heads->n * N * F * sizeof(float));
    if (!per_head) {
        rc = HARK_ENOMEM;
        goto done;
    }
    struct head_job job = {scores, per_head, N, A, F, wcpp, 0};
    kern_pool_run(st->pool, head_task, &job, heads->n);
    if (job.failed) {
        free(per_head);
        rc = HARK_ENOMEM;
        goto done;
    }
    /* The heads summed in their order, whatever thread filtered each. */
    for (int k = 0; k < heads->n; k++) {
        const float *h = per_head + (size_t)k * N * F;
        for (size_t i = 0; i < (size_t)N * F; i++) mat[i] += h[i];
    }
    free(per_head);
    /* The mean, negated, without the sot sequence's rows and eot's. */
    for (int r = 0; r < R; r++)
        for (int j = 0; j < F; j++) x[(size_t)r * F + j] = -(mat[(size_t)(n_sot + r) * F + j] / (float)heads->n);
    rc = align_dtw(x, R, F, !wcpp, out->row_start, &out->cost);
    if (!rc && keep_matrix) {
        out->x = x;
        out->cols = F;
        x = NULL;
    }
done:
    free(tok);
    free(scores);
    free(scratch);
    free(mat);
    free(x);
    if (rc) align_out_free(out);
    return rc;
}
