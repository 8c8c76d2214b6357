/*
 * test_numerics.c: the forward pass against whisper.cpp's reference data.
 *
 * For every model listed in models/MANIFEST.json: feed the reference log-mel
 * of jfk.wav (first window) to enc_forward and compare the conv stem output
 * and the encoder output with the stored ones; then teacher-force the
 * reference token sequence, one token at a time and as one batch, and
 * compare the stored logits rows and every row's argmax (a flip is allowed
 * only where the reference's top-1/top-2 gap is below the model's lockstep
 * gap). Batched and incremental logits must agree as closely as either
 * must agree with the reference: like whisper.cpp, hark's GELU outputs are
 * f16 values and a quantized model's activations are rounded to 8 bits, so
 * the rounding-level difference between a GEMM and a GEMV can move a value
 * by one f16 or one 8-bit step. Tolerances come from each model's
 * expect.json; the worst differences are printed. Last, two threads with their own states over one model must
 * give exactly what one thread alone gives.
 */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "decoder.h"
#include "encoder.h"
#include "harness.h"
#include "kernels.h"
#include "model.h"
#include "state.h"
#include "testing.h"

/* A path in expect.json is relative to the shared root ("reference/..."). */
static const char *ref_path(const char *rel)
{
    const char *p = strncmp(rel, "reference/", 10) == 0 ? rel + 10 : rel;
    return t_shared("reference", p);
}

static float *read_f32(const char *path, size_t n)
{
    size_t len = 0;
    float *buf = t_read_file(path, &len);
    if (buf && len != n * sizeof(float)) {
        free(buf);
        return NULL;
    }
    return buf;
}

static float *read_f16(const char *path, size_t n)
{
    size_t len = 0;
    uint8_t *raw = t_read_file(path, &len);
    float *out = NULL;
    if (raw && len == n * 2 && (out = malloc(n * sizeof(float)))) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, raw + 2 * i, 2);
            out[i] = kern_f16_to_f32(h);
        }
    }
    free(raw);
    return out;
}

/* rms(a − b) / rms(b) and max |a − b| over n values; b[i·sb] pairs a[i·sa]. */
struct diff {
    double rms_rel, max_abs;
};

static struct diff compare(const float *a, const float *b, size_t n)
{
    double se = 0, sr = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        se += d * d;
        sr += (double)b[i] * b[i];
        if (!(fabs(d) <= mx)) mx = fabs(d);
    }
    struct diff r = {sqrt(se / (double)n) / sqrt(sr / (double)n + 1e-300), mx};
    return r;
}

static double tol(json_t *expect, const char *key)
{
    return json_number_value(json_object_get(json_object_get(expect, "tolerances"), key));
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static void check_model(const char *name)
{
    char rel[512];
    json_error_t jerr;
    snprintf(rel, sizeof rel, "%s/expect.json", name);
    json_t *expect = json_load_file(ref_path(rel), 0, &jerr);
    hark_model *model = NULL;
    hark_state *st = NULL;
    float *mel = NULL, *conv_ref = NULL, *enc_ref = NULL, *tf_ref = NULL, *one = NULL, *batch = NULL;
    int32_t *tokens = NULL;
    char err[512];
    int code = 0;

    CHECKF(expect != NULL, "%s: cannot read expect.json: %s", name, jerr.text);
    if (!expect) return;
    snprintf(rel, sizeof rel, "%s.bin", name);
    model = hark_model_load(t_shared("models", rel), &code, err, sizeof err);
    CHECKF(model != NULL, "%s: %s", name, err);
    if (!model) goto done;
    st = hark_state_new(model, 2, err, sizeof err);
    CHECKF(st != NULL, "%s: %s", name, err);
    if (!st) goto done;

    const struct hark_hparams *hp = hark_model_hparams(model);
    const int S = hp->n_audio_state, n_ctx = hp->n_audio_ctx, nv = hp->n_vocab;
    json_t *files = json_object_get(expect, "files");
    json_t *mel_j = json_object_get(files, "mel_jfk");
    int n_frames = (int)json_integer_value(json_array_get(json_object_get(mel_j, "shape"), 1));
    mel = read_f32(ref_path(json_string_value(json_object_get(mel_j, "path"))), (size_t)hp->n_mels * n_frames);
    conv_ref = read_f16(ref_path(json_string_value(json_object_get(json_object_get(files, "conv_jfk"), "path"))),
                        (size_t)S * n_ctx);
    enc_ref = read_f16(ref_path(json_string_value(json_object_get(json_object_get(files, "encoder_jfk"), "path"))),
                       (size_t)S * n_ctx);
    tf_ref = read_f32(ref_path(json_string_value(json_object_get(json_object_get(files, "logits_tf_rows"), "path"))),
                      (size_t)2 * nv);
    CHECKF(mel && conv_ref && enc_ref && tf_ref, "%s: reference files missing or of the wrong size", name);
    if (!mel || !conv_ref || !enc_ref || !tf_ref) goto done;

    /* Encoder. */
    CHECK(enc_forward(st, mel, n_frames, 0) == 0);
    const float *conv = enc_conv_output(st), *enc = enc_output(st);
    float *conv_t = malloc(sizeof(float) * (size_t)S * n_ctx); /* ours transposed to [S][n_ctx] */
    for (int t = 0; t < n_ctx; t++)
        for (int s = 0; s < S; s++) conv_t[(size_t)s * n_ctx + t] = conv[(size_t)t * S + s];
    struct diff dc = compare(conv_t, conv_ref, (size_t)S * n_ctx);
    free(conv_t);
    struct diff de = compare(enc, enc_ref, (size_t)S * n_ctx);
    CHECKF(dc.rms_rel <= tol(expect, "conv_rms_rel") && dc.max_abs <= tol(expect, "conv_max_abs"),
           "%s: conv rms rel %.3g max abs %.3g", name, dc.rms_rel, dc.max_abs);
    CHECKF(de.rms_rel <= tol(expect, "encoder_rms_rel") && de.max_abs <= tol(expect, "encoder_max_abs"),
           "%s: encoder rms rel %.3g max abs %.3g", name, de.rms_rel, de.max_abs);

    /* Teacher forcing, one token at a time and as one batch. */
    json_t *tf = json_object_get(expect, "teacher_forcing");
    json_t *tok_j = json_object_get(tf, "tokens");
    int n = (int)json_array_size(tok_j);
    tokens = malloc(sizeof(int32_t) * (size_t)n);
    one = malloc(sizeof(float) * (size_t)n * nv);
    batch = malloc(sizeof(float) * (size_t)n * nv);
    for (int i = 0; i < n; i++) tokens[i] = (int32_t)json_integer_value(json_array_get(tok_j, i));
    for (int i = 0; i < n; i++) CHECK(dec_forward(st, 0, tokens + i, 1, i, 0, one + (size_t)i * nv) == 0);
    CHECK(dec_forward(st, 0, tokens, n, 0, 0, batch) == 0);

    double worst_rms = 0, worst_max = 0, gap_tol = tol(expect, "lockstep_gap");
    for (int r = 0; r < 2; r++) {
        int row = (int)json_integer_value(json_array_get(json_object_get(tf, "rows_stored"), r));
        for (int pass = 0; pass < 2; pass++) {
            struct diff dl = compare((pass ? batch : one) + (size_t)row * nv, tf_ref + (size_t)r * nv, (size_t)nv);
            worst_rms = fmax(worst_rms, dl.rms_rel);
            worst_max = fmax(worst_max, dl.max_abs);
        }
    }
    CHECKF(worst_rms <= tol(expect, "logits_rms_rel") && worst_max <= tol(expect, "logits_max_abs"),
           "%s: logits rms rel %.3g max abs %.3g", name, worst_rms, worst_max);
    int flips = 0, tolerated = 0;
    for (int i = 0; i < n; i++) {
        int want = (int)json_integer_value(json_array_get(json_object_get(tf, "argmax"), i));
        double gap = json_number_value(json_array_get(json_object_get(tf, "top1_top2_gap"), i));
        for (int pass = 0; pass < 2; pass++) {
            int got = argmax((pass ? batch : one) + (size_t)i * nv, nv);
            if (got == want) continue;
            if (gap < gap_tol) tolerated++;
            else flips++;
            CHECKF(gap < gap_tol, "%s: row %d argmax %d, reference %d (gap %.3g)", name, i, got, want, gap);
        }
    }
    struct diff db = compare(batch, one, (size_t)n * nv);
    CHECKF(db.rms_rel <= tol(expect, "logits_rms_rel") && db.max_abs <= tol(expect, "logits_max_abs"),
           "%s: batched and incremental logits differ by rms rel %.3g, max abs %.3g", name, db.rms_rel,
           db.max_abs);
    printf("  %-16s conv %.2e/%.2e  enc %.2e/%.2e  logits %.2e/%.3f  argmax flips %d (tolerated %d)  batch-vs-one %.2e\n",
           name, dc.rms_rel, dc.max_abs, de.rms_rel, de.max_abs, worst_rms, worst_max, flips, tolerated, db.max_abs);

done:
    free(mel);
    free(conv_ref);
    free(enc_ref);
    free(tf_ref);
    free(one);
    free(batch);
    free(tokens);
    hark_state_free(st);
    hark_model_free(model);
    json_decref(expect);
}

static void test_models(void)
{
    json_error_t jerr;
    json_t *man = json_load_file(t_shared("models", "MANIFEST.json"), 0, &jerr);
    CHECKF(man != NULL, "cannot read MANIFEST.json: %s", jerr.text);
    if (!man) return;
    size_t n = json_array_size(man);
    CHECK(n >= 9);
    for (size_t i = 0; i < n; i++) {
        const char *file = json_string_value(json_object_get(json_array_get(man, i), "file"));
        if (!file) continue;
        const char *base = strrchr(file, '/');
        char name[256];
        snprintf(name, sizeof name, "%s", base ? base + 1 : file);
        char *dot = strstr(name, ".bin");
        if (dot) *dot = 0;
        check_model(name);
    }
    json_decref(man);
}

/* ------------------------------------------------- concurrent states */

struct job {
    const hark_model *model;
    const float *mel;
    int n_frames;
    float *enc;    /* (n_audio_ctx, S) */
    float *logits; /* (n_tokens, n_vocab) */
    int rc;
};

static const int32_t tf_tokens[] = {50257, 50363, 843, 523, 616, 5891, 3399, 11, 1265, 407};
#define N_TF ((int)(sizeof tf_tokens / sizeof tf_tokens[0]))

static void *run_job(void *arg)
{
    struct job *j = arg;
    char err[256];
    const struct hark_hparams *hp = hark_model_hparams(j->model);
    hark_state *st = hark_state_new(j->model, 1, err, sizeof err);
    j->rc = -1;
    if (!st) return NULL;
    for (int rep = 0; rep < 2; rep++) {
        if (enc_forward(st, j->mel, j->n_frames, 0) != 0) goto out;
        for (int i = 0; i < N_TF; i++)
            if (dec_forward(st, 0, tf_tokens + i, 1, i, 0, j->logits + (size_t)i * hp->n_vocab) != 0) goto out;
    }
    memcpy(j->enc, enc_output(st), sizeof(float) * (size_t)hp->n_audio_ctx * hp->n_audio_state);
    j->rc = 0;
out:
    hark_state_free(st);
    return NULL;
}

static void test_concurrent_states(void)
{
    hark_model *model = t_load_model("rt-tiny.en-f16.bin");
    if (!model) return;
    const struct hark_hparams *hp = hark_model_hparams(model);
    size_t n_mel = (size_t)hp->n_mels * 4100;
    float *mel = read_f32(t_shared("reference", "_mel/mel_jfk_80.f32"), n_mel);
    CHECK(mel != NULL);
    struct job jobs[3];
    size_t ne = (size_t)hp->n_audio_ctx * hp->n_audio_state, nl = (size_t)N_TF * hp->n_vocab;
    for (int i = 0; i < 3; i++) {
        jobs[i] = (struct job){.model = model, .mel = mel, .n_frames = 4100};
        jobs[i].enc = malloc(ne * sizeof(float));
        jobs[i].logits = malloc(nl * sizeof(float));
    }
    if (mel) {
        run_job(&jobs[0]); /* alone */
        pthread_t th[2];
        for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, run_job, &jobs[1 + i]);
        for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
        for (int i = 0; i < 3; i++) CHECK(jobs[i].rc == 0);
        for (int i = 1; i < 3; i++) {
            CHECKF(memcmp(jobs[i].enc, jobs[0].enc, ne * sizeof(float)) == 0,
                   "thread %d: encoder output differs from a lone run", i);
            CHECKF(memcmp(jobs[i].logits, jobs[0].logits, nl * sizeof(float)) == 0,
                   "thread %d: logits differ from a lone run", i);
        }
        printf("  two concurrent states: encoder and %d logits rows identical to a lone run: %s\n", N_TF,
               t_failed_now() ? "no" : "yes");
    }
    for (int i = 0; i < 3; i++) {
        free(jobs[i].enc);
        free(jobs[i].logits);
    }
    free(mel);
    hark_model_free(model);
}

/* dec_step over several slots and dec_kv_reorder, against a second state
 * that decodes each sequence alone with dec_forward. */
static void test_step_and_reorder(void)
{
    hark_model *model = t_load_model("rt-tiny.en-f16.bin");
    if (!model) return;
    const struct hark_hparams *hp = hark_model_hparams(model);
    const int nv = hp->n_vocab;
    float *mel = read_f32(t_shared("reference", "_mel/mel_jfk_80.f32"), (size_t)hp->n_mels * 4100);
    char err[256];
    hark_state *st = hark_state_new(model, 2, err, sizeof err);
    hark_state *ref = hark_state_new(model, 2, err, sizeof err);
    float *got = malloc(sizeof(float) * 3 * nv), *want = malloc(sizeof(float) * nv);
    CHECK(mel && st && ref && got && want);
    if (!mel || !st || !ref || !got || !want) goto done;
    CHECK(enc_forward(st, mel, 4100, 0) == 0);
    CHECK(enc_forward(ref, mel, 4100, 0) == 0);
    CHECK(dec_reserve(st, 3) == 0);
    CHECK(dec_reserve(st, STATE_MAX_SEQ + 1) == HARK_EINVAL);

    /* A shared prefix in slot 0, copied to slots 1 and 2. */
    const int np = 5;
    CHECK(dec_forward(st, 0, tf_tokens, np, 0, np, NULL) == 0);
    dec_kv_reorder(st, 3, (const int[]){0, 0, 0}, np);
    const int seqs[3] = {0, 1, 2};
    const int32_t step1[3] = {843, 523, 616}, step2[3] = {5891, 3399, 11};
    double worst = 0;
    CHECK(dec_step(st, 3, seqs, step1, np, got) == 0);
    for (int i = 0; i < 3; i++) {
        int32_t seq[7];
        memcpy(seq, tf_tokens, sizeof(int32_t) * np);
        seq[np] = step1[i];
        CHECK(dec_forward(ref, 0, seq, np + 1, 0, np, want) == 0);
        worst = fmax(worst, compare(got + (size_t)i * nv, want, (size_t)nv).max_abs);
    }
    /* Slot 0 continues sequence 2, slots 1 and 2 continue sequence 0. */
    const int src[3] = {2, 0, 0};
    dec_kv_reorder(st, 3, src, np + 1);
    CHECK(dec_step(st, 3, seqs, step2, np + 1, got) == 0);
    for (int i = 0; i < 3; i++) {
        int32_t seq[7];
        memcpy(seq, tf_tokens, sizeof(int32_t) * np);
        seq[np] = step1[src[i]];
        seq[np + 1] = step2[i];
        CHECK(dec_forward(ref, 0, seq, np + 2, 0, np + 1, want) == 0);
        worst = fmax(worst, compare(got + (size_t)i * nv, want, (size_t)nv).max_abs);
    }
    CHECKF(worst <= 1e-3, "dec_step vs dec_forward: max |difference| %.3g", worst);
    printf("  dec_step + dec_kv_reorder vs dec_forward: max |difference| %.3g\n", worst);

    /* Bad arguments are refused. */
    CHECK(dec_step(st, 2, (const int[]){1, 1}, step1, np, got) == HARK_EINVAL);
    CHECK(dec_step(st, 1, (const int[]){5}, step1, np, got) == HARK_EINVAL);
    CHECK(dec_forward(st, 0, (const int32_t[]){nv}, 1, 0, 0, got) == HARK_EINVAL);
    CHECK(dec_forward(st, 0, step1, 1, hp->n_text_ctx, 0, got) == HARK_ERANGE);
    CHECK(enc_forward(st, mel, 4100, -1) == HARK_EINVAL);
done:
    free(got);
    free(want);
    free(mel);
    hark_state_free(st);
    hark_state_free(ref);
    hark_model_free(model);
}

/* A window past the end of the mel is zeros: an offset beyond n_frames
 * gives the same encoder output as an all-zero mel. */
static void test_window_padding(void)
{
    hark_model *model = t_load_model("rt-mini.en-f32.bin");
    if (!model) return;
    const struct hark_hparams *hp = hark_model_hparams(model);
    size_t ne = (size_t)hp->n_audio_ctx * hp->n_audio_state;
    float *mel = read_f32(t_shared("reference", "_mel/mel_jfk_80.f32"), (size_t)hp->n_mels * 4100);
    float *zeros = calloc((size_t)hp->n_mels * 3000, sizeof(float));
    float *a = malloc(ne * sizeof(float));
    char err[256];
    hark_state *st = hark_state_new(model, 2, err, sizeof err);
    CHECK(mel && zeros && a && st);
    if (mel && zeros && a && st) {
        CHECK(enc_forward(st, zeros, 3000, 0) == 0);
        memcpy(a, enc_output(st), ne * sizeof(float));
        CHECK(enc_forward(st, mel, 4100, 4100) == 0);
        CHECK(memcmp(a, enc_output(st), ne * sizeof(float)) == 0);
        /* A window running past the end: mel frames 100..1199 and then zeros. */
        float *pad = calloc((size_t)hp->n_mels * 3000, sizeof(float));
        for (int c = 0; c < hp->n_mels; c++) {
            memcpy(pad + (size_t)c * 3000, mel + (size_t)c * 4100 + 100, 1100 * sizeof(float));
        }
        CHECK(enc_forward(st, pad, 3000, 0) == 0);
        memcpy(a, enc_output(st), ne * sizeof(float));
        /* The same 1100 frames, now at offset 100 of a mel cut to 1200 frames. */
        float *cut2 = malloc(sizeof(float) * hp->n_mels * 1200);
        for (int c = 0; c < hp->n_mels; c++) memcpy(cut2 + (size_t)c * 1200, mel + (size_t)c * 4100, 1200 * sizeof(float));
        CHECK(enc_forward(st, cut2, 1200, 100) == 0);
        CHECK(memcmp(a, enc_output(st), ne * sizeof(float)) == 0);
        free(cut2);
        free(pad);
    }
    free(mel);
    free(zeros);
    free(a);
    hark_state_free(st);
    hark_model_free(model);
}

/* The cross-attention keys and values an enc_forward leaves for the
 * decoder are the encoder output times the layer's weights (plus the bias
 * for values), rounded to f16; a later window replaces them. */
static void test_cross_kv(void)
{
    hark_model *model = t_load_model("rt-mini.en-f32.bin");
    if (!model) return;
    const struct hark_hparams *hp = hark_model_hparams(model);
    const int n = hp->n_audio_ctx, S = hp->n_text_state;
    float *mel = read_f32(t_shared("reference", "_mel/mel_jfk_80.f32"), (size_t)hp->n_mels * 4100);
    char err[256];
    hark_state *st = hark_state_new(model, 2, err, sizeof err);
    CHECK(mel && st);
    double worst = 0;
    int not_f16 = 0;
    for (int pass = 0; pass < 2 && mel && st; pass++) {
        /* The second window starts 1000 frames later. */
        CHECK(enc_forward(st, mel, 4100, pass * 1000) == 0);
        const float *out = enc_output(st);
        for (int l = 0; l < hp->n_text_layer; l += hp->n_text_layer - 1) {
            const struct dec_layer *L = &model->dec[l];
            const float *got[2] = {dec_cross_k(st, l), dec_cross_v(st, l)};
            const struct tensor *w[2] = {&L->ck_w, &L->cv_w};
            CHECK(got[0] && got[1] && w[0]->f32 && w[1]->f32);
            if (!got[0] || !got[1] || !w[0]->f32 || !w[1]->f32) break;
            for (int which = 0; which < 2; which++) {
                for (int j = 0; j < n; j += 97) {
                    for (int o = 0; o < S; o += 5) {
                        double e = which ? L->cv_b.f32[o] : 0;
                        for (int i = 0; i < hp->n_audio_state; i++)
                            e += (double)out[(size_t)j * hp->n_audio_state + i] *
                                 w[which]->f32[(size_t)o * hp->n_audio_state + i];
                        float g = got[which][(size_t)j * S + o];
                        worst = fmax(worst, fabs(g - e) / (fabs(e) + 1e-2));
                        if (kern_f16_to_f32(kern_f32_to_f16(g)) != g) not_f16++;
                    }
                }
            }
        }
    }
    CHECKF(worst <= 2e-3, "cross keys/values differ from the encoder output's product by %.3g (relative)", worst);
    CHECKF(not_f16 == 0, "%d cross key/value entries are not f16 values", not_f16);
    printf("  cross keys/values vs encoder output · weights: worst relative difference %.3g\n", worst);
    free(mel);
    hark_state_free(st);
    hark_model_free(model);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    printf("kernels: simd %d, blas %d\n", kern_simd(), kern_blas());
    t_run("reference_models", test_models);
    t_run("concurrent_states", test_concurrent_states);
    t_run("step_and_reorder", test_step_and_reorder);
    t_run("window_padding", test_window_padding);
    t_run("cross_kv", test_cross_kv);
    return t_summary();
}
