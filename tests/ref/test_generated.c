/*
 * test_generated: the random-weight model generator (tools/mkmodel.c),
 * checked through hark's model loader and against the shared rt-* models.
 *
 * The shared rt-mini.en-* files were written by an independent generator and
 * whisper-quantize, so a generated file with the same shape must have the
 * same byte size, header and tensor table (names, types, shapes, bytes) as
 * the shared file of that ftype, and the f16-layout sizes of every preset
 * must equal the released ggml files' sizes (../shared/reference/README.md
 * section 3.3). Weight values are checked against the distributions of
 * README section 5 and, for every ftype, against the f32 file of the same
 * seed after dequantizing with this test's own block decoders.
 *
 * The generator is compiled into this program (its main() left out) so the
 * test does not depend on a separately built binary.
 */
#define MKMODEL_NO_MAIN
#include "../../tools/mkmodel.c"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "hark.h"
#include "model.h"

/* The rt-mini.en shape: 128 state, 2 heads, 3 + 3 layers (README 3.2). */
static void mini_args(struct mk_args *a, const char *ftype, const char *out)
{
    mk_args_init(a);
    a->preset = "tiny.en";
    a->ftype = ftype;
    a->n_state = 128;
    a->n_head = 2;
    a->n_audio_layer = 3;
    a->n_text_layer = 3;
    a->seed = 7;
    a->out = out;
    a->from = strdup(t_shared("models", "rt-tiny.en-f16.bin"));
}

static const char *tmp_path(const char *name)
{
    static char buf[2][1024];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", t_tmpdir(), name);
    return buf[k];
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static hark_model *load(const char *path)
{
    char err[512];
    int code = 0;
    hark_model *m = hark_model_load(path, &code, err, sizeof err);
    CHECKF(m != NULL, "load %s: %s (%d)", path, err, code);
    return m;
}

/* Header fields, file size and the whole tensor table of two models agree. */
static void check_same_layout(const char *gen_path, const char *ref_path)
{
    hark_model *g = load(gen_path), *r = load(ref_path);
    if (!g || !r) goto done;
    CHECKF(file_size(gen_path) == file_size(ref_path), "%s: %lld bytes, %s has %lld", gen_path,
           file_size(gen_path), ref_path, file_size(ref_path));
    CHECK(memcmp(hark_model_hparams(g), hark_model_hparams(r), sizeof(struct hark_hparams)) == 0);
    CHECK(g->qntvr == r->qntvr);
    CHECKF(hark_model_n_tensors(g) == hark_model_n_tensors(r), "%d tensors, reference %d",
           hark_model_n_tensors(g), hark_model_n_tensors(r));
    for (int i = 0; i < hark_model_n_tensors(g) && i < hark_model_n_tensors(r); i++) {
        struct hark_tensor_info a, b;
        CHECK(hark_model_tensor(g, i, &a) == 0 && hark_model_tensor(r, i, &b) == 0);
        CHECKF(!strcmp(a.name, b.name) && a.type == b.type && a.n_dims == b.n_dims && a.n_bytes == b.n_bytes &&
                   !memcmp(a.ne, b.ne, sizeof a.ne),
               "tensor %d: %s type %d bytes %zu, reference %s type %d bytes %zu", i, a.name, a.type, a.n_bytes,
               b.name, b.type, b.n_bytes);
    }
    CHECK(g->n_vocab_stored == r->n_vocab_stored);
    CHECK(memcmp(g->mel_filters, r->mel_filters, sizeof(float) * (size_t)g->hp.n_mels * 201) == 0);
done:
    hark_model_free(g);
    hark_model_free(r);
}

/* Every preset's f16 layout has the released file's size (README 3.3). */
static void test_preset_sizes(void)
{
    static const struct {
        const char *preset;
        uint64_t bytes;
    } want[] = {
        {"tiny.en", 77704715ull},       {"tiny", 77691713ull},         {"base.en", 147964211ull},
        {"base", 147951465ull},         {"small.en", 487614201ull},    {"small", 487601967ull},
        {"medium.en", 1533774781ull},   {"medium", 1533763059ull},     {"large-v1", 3094623691ull},
        {"large-v2", 3094623691ull},    {"large-v3", 3095033483ull},   {"large-v3-turbo", 1624555275ull},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct mk_args a;
        struct mk_report rep;
        char err[512];
        mk_args_init(&a);
        a.preset = want[i].preset;
        a.layout_only = 1;
        CHECKF(mkmodel_generate(&a, &rep, err, sizeof err) == 0, "%s: %s", a.preset, err);
        CHECKF(rep.n_bytes == want[i].bytes, "%s: %llu bytes, released %llu", a.preset,
               (unsigned long long)rep.n_bytes, (unsigned long long)want[i].bytes);
    }
}

/* Generated rt-mini.en shapes in each ftype match the shared files. */
static void test_mini_matches_shared(void)
{
    static const char *ftypes[] = {"f32", "f16", "q8_0", "q5_1", "q5_0", "q4_0"};
    for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++) {
        struct mk_args a;
        struct mk_report rep;
        char err[512], name[64], ref[64];
        snprintf(name, sizeof name, "mini-%s.bin", ftypes[i]);
        snprintf(ref, sizeof ref, "rt-mini.en-%s.bin", ftypes[i]);
        mini_args(&a, ftypes[i], tmp_path(name));
        CHECKF(mkmodel_generate(&a, &rep, err, sizeof err) == 0, "%s: %s", name, err);
        CHECKF((long long)rep.n_bytes == file_size(a.out), "%s: reported %llu bytes", name,
               (unsigned long long)rep.n_bytes);
        check_same_layout(a.out, t_shared("models", ref));
        free((char *)a.from);
    }
}

/* tiny.en at full size, and the multilingual and 128-mel vocabularies. */
static void test_presets_match_shared(void)
{
    struct mk_args a;
    struct mk_report rep;
    char err[512];

    mk_args_init(&a);
    a.preset = "tiny.en";
    a.out = tmp_path("tiny.en-f16.bin");
    CHECKF(mkmodel_generate(&a, &rep, err, sizeof err) == 0, "%s", err);
    check_same_layout(a.out, t_shared("models", "rt-tiny.en-f16.bin"));
    remove(a.out);

    mini_args(&a, "f16", tmp_path("mini-ml.bin"));
    free((char *)a.from);
    a.from = NULL;
    a.preset = "tiny";
    CHECKF(mkmodel_generate(&a, &rep, err, sizeof err) == 0, "%s", err);
    check_same_layout(a.out, t_shared("models", "rt-mini-f16.bin"));
    remove(a.out);

    mini_args(&a, "f16", tmp_path("mini-v3.bin"));
    free((char *)a.from);
    a.from = NULL;
    a.preset = "large-v3-turbo";
    a.n_audio_layer = 4;
    a.n_text_layer = 2;
    CHECKF(mkmodel_generate(&a, &rep, err, sizeof err) == 0, "%s", err);
    check_same_layout(a.out, t_shared("models", "rt-v3-f16.bin"));
    remove(a.out);
}

/* ----------------------------------------------- values, dequantized */

static float half(const uint8_t *p)
{
    uint16_t h = (uint16_t)(p[0] | p[1] << 8);
    int e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : ldexpf((float)(m | 1024), e - 25);
    return (h & 0x8000) ? -v : v;
}

/* Decodes value j (0..31) of a block; *d gets the block's scale. */
static float block_value(int type, const uint8_t *b, int j, float *d)
{
    int q;
    *d = half(b);
    switch (type) {
    case TYPE_Q8_0: return *d * (float)(int8_t)b[2 + j];
    case TYPE_Q4_0:
        q = j < 16 ? b[2 + j] & 15 : b[2 + j - 16] >> 4;
        return *d * (float)(q - 8);
    case TYPE_Q4_1:
        q = j < 16 ? b[4 + j] & 15 : b[4 + j - 16] >> 4;
        return *d * (float)q + half(b + 2);
    case TYPE_Q5_0: {
        uint32_t qh = (uint32_t)b[2] | (uint32_t)b[3] << 8 | (uint32_t)b[4] << 16 | (uint32_t)b[5] << 24;
        q = (j < 16 ? b[6 + j] & 15 : b[6 + j - 16] >> 4) | (int)((qh >> j) & 1) << 4;
        return *d * (float)(q - 16);
    }
    case TYPE_Q5_1: {
        uint32_t qh = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
        q = (j < 16 ? b[8 + j] & 15 : b[8 + j - 16] >> 4) | (int)((qh >> j) & 1) << 4;
        return *d * (float)q + half(b + 2);
    }
    }
    return NAN;
}

static int block_bytes(int type)
{
    return type == TYPE_Q8_0 ? 34 : type == TYPE_Q4_0 ? 18 : type == TYPE_Q4_1 ? 20 : type == TYPE_Q5_0 ? 22 : 24;
}

/* Largest rounding error allowed per value, in units of the block scale d:
 * half a step, plus the f16 rounding of d (and of m) and the clamped top
 * level of the asymmetric q4_0 / q5_0 grids, which can cost a whole step. */
static double step_bound(int type)
{
    return type == TYPE_Q4_0 || type == TYPE_Q5_0 ? 1.05 : 0.6;
}

static double tensor_value(const struct tensor *t, int64_t i)
{
    if (t->type == TYPE_F32) return t->f32[i];
    return half(t->data + 2 * i);
}

/* Values of every ftype agree with the f32 file of the same seed. */
static void test_values_across_ftypes(void)
{
    static const char *ftypes[] = {"f16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0"};
    struct mk_args a;
    struct mk_report rep;
    char err[512];
    hark_model *ref = NULL;

    mini_args(&a, "f32", tmp_path("vals-f32.bin"));
    CHECKF(mkmodel_generate(&a, &rep, err, sizeof err) == 0, "%s", err);
    free((char *)a.from);
    ref = load(a.out);
    if (!ref) return;
    for (size_t f = 0; f < sizeof ftypes / sizeof ftypes[0]; f++) {
        double worst_units = 0, worst_abs = 0, sum_sq_err = 0, sum_sq = 0;
        char name[64];
        hark_model *m;
        snprintf(name, sizeof name, "vals-%s.bin", ftypes[f]);
        mini_args(&a, ftypes[f], tmp_path(name));
        CHECKF(mkmodel_generate(&a, &rep, err, sizeof err) == 0, "%s: %s", name, err);
        free((char *)a.from);
        m = load(a.out);
        if (!m) continue;
        CHECK(m->n_all == ref->n_all);
        for (int i = 0; i < m->n_all && i < ref->n_all; i++) {
            const struct tensor *t = &m->all[i], *r = &ref->all[i];
            int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
            if (t->type == TYPE_F32 || t->type == TYPE_F16) {
                for (int64_t k = 0; k < n; k++) {
                    double e = fabs(tensor_value(t, k) - r->f32[k]);
                    if (e > worst_abs) worst_abs = e;
                }
                continue;
            }
            int bb = block_bytes(t->type);
            for (int64_t blk = 0; blk < n / 32; blk++) {
                for (int j = 0; j < 32; j++) {
                    float d, v = block_value(t->type, t->data + blk * bb, j, &d);
                    double x = r->f32[blk * 32 + j], e = fabs(v - x);
                    double units = e / (fabs(d) + 1e-30);
                    sum_sq_err += e * e;
                    sum_sq += x * x;
                    if (e > 1e-7 && units > worst_units) worst_units = units;
                }
            }
        }
        CHECKF(worst_abs == 0, "%s: unquantized values differ from f32 by %g", ftypes[f], worst_abs);
        int qt = m->tok_emb.type;
        if (qt != TYPE_F16) {
            double rel = sqrt(sum_sq_err / sum_sq);
            CHECKF(worst_units <= step_bound(qt), "%s: error %.3f steps", ftypes[f], worst_units);
            /* 8-bit: 1/127 of the range per step; 4-bit about 1/15. */
            CHECKF(rel < (qt == TYPE_Q8_0 ? 0.01 : qt == TYPE_Q5_0 || qt == TYPE_Q5_1 ? 0.06 : 0.12),
                   "%s: rms rel error %.4f", ftypes[f], rel);
            printf("  %s: worst error %.3f steps, rms rel %.4f\n", ftypes[f], worst_units, rel);
        }
        hark_model_free(m);
        remove(a.out);
    }
    hark_model_free(ref);
}

static double mean_of(const struct tensor *t, double *std)
{
    int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    double s = 0, s2 = 0;
    for (int64_t k = 0; k < n; k++) {
        double v = t->f32[k];
        s += v;
        s2 += v * v;
    }
    *std = sqrt(s2 / (double)n - (s / (double)n) * (s / (double)n));
    return s / (double)n;
}

/* The f32 file's weights follow README section 5's distributions. */
static void test_distributions(void)
{
    hark_model *m;
    double sd, mean;
    if (file_size(tmp_path("vals-f32.bin")) < 0) {
        struct mk_args a;
        struct mk_report rep;
        char err[512];
        mini_args(&a, "f32", tmp_path("vals-f32.bin"));
        CHECKF(mkmodel_generate(&a, &rep, err, sizeof err) == 0, "%s", err);
        free((char *)a.from);
    }
    m = load(tmp_path("vals-f32.bin"));
    if (!m) return;
    static const struct {
        const char *what;
        double mean, std;
    } want[] = {
        {"q", 0, 2 / 11.3137},  {"k", 0, 2 / 11.3137},   {"v", 0, 1 / 11.3137},
        {"mlp0", 0, 1 / 11.3137}, {"mlp2", 0, 1 / 22.6274}, {"emb", 0, 10 / 11.3137},
        {"ln", 1, 0.05},         {"bias", 0, 0.02},       {"final", 0, 1},
        {"conv1", 0, 2 / sqrt(240.0)}, {"dec_pe", 0, 10 / 11.3137},
    };
    const struct tensor *ts[] = {&m->enc[0].q_w, &m->dec[1].ck_w,   &m->enc[2].v_w, &m->dec[0].mlp0_w,
                                 &m->enc[1].mlp2_w, &m->tok_emb,     &m->enc[0].mlp_ln_w, &m->dec[2].co_b,
                                 &m->ln_w,       &m->conv1_w,       &m->dec_pe};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        mean = mean_of(ts[i], &sd);
        /* The smallest tensors hold 128 values: allow 4 standard errors. */
        int64_t n = ts[i]->ne[0] * ts[i]->ne[1] * ts[i]->ne[2];
        double tol = 4 * want[i].std / sqrt((double)n);
        CHECKF(fabs(mean - want[i].mean) < tol + 1e-6, "%s: mean %.5f, want %.5f", want[i].what, mean, want[i].mean);
        CHECKF(fabs(sd / want[i].std - 1) < 0.05 + 4 / sqrt((double)n), "%s: std %.5f, want %.5f", want[i].what,
               sd, want[i].std);
    }
    /* Sinusoids: row t holds sin(t f_c) then cos(t f_c), f_c =
     * 10000^(-c / 63) for 128 channels. */
    double worst = 0;
    for (int t = 0; t < 1500; t += 37)
        for (int c = 0; c < 64; c++) {
            double f = exp(-log(10000.0) * c / 63.0);
            double es = fabs(m->enc_pe.f32[t * 128 + c] - sin(t * f));
            double ec = fabs(m->enc_pe.f32[t * 128 + 64 + c] - cos(t * f));
            if (es > worst) worst = es;
            if (ec > worst) worst = ec;
        }
    CHECKF(worst < 1e-4, "sinusoid error %g", worst);
    printf("  sinusoid worst error %.2e\n", worst);
    hark_model_free(m);
}

/* The same seed gives the same bytes; another seed other weights. */
static void test_deterministic(void)
{
    struct mk_args a;
    struct mk_report rep;
    char err[512];
    size_t n1 = 0, n2 = 0, n3 = 0;

    mini_args(&a, "q5_1", tmp_path("det-1.bin"));
    CHECK(mkmodel_generate(&a, &rep, err, sizeof err) == 0);
    a.out = tmp_path("det-2.bin");
    CHECK(mkmodel_generate(&a, &rep, err, sizeof err) == 0);
    a.seed = 8;
    a.out = tmp_path("det-3.bin");
    CHECK(mkmodel_generate(&a, &rep, err, sizeof err) == 0);
    free((char *)a.from);
    uint8_t *b1 = t_read_file(tmp_path("det-1.bin"), &n1), *b2 = t_read_file(tmp_path("det-2.bin"), &n2),
            *b3 = t_read_file(tmp_path("det-3.bin"), &n3);
    CHECK(b1 && b2 && b3);
    if (b1 && b2 && b3) {
        CHECK(n1 == n2 && n1 == n3);
        CHECK(memcmp(b1, b2, n1) == 0);
        CHECK(memcmp(b1, b3, n1) != 0);
    }
    free(b1);
    free(b2);
    free(b3);
    remove(tmp_path("det-1.bin"));
    remove(tmp_path("det-2.bin"));
    remove(tmp_path("det-3.bin"));
}

/* Bad requests fail with a reason and leave no file behind. */
static void test_bad_requests(void)
{
    struct mk_args a;
    struct mk_report rep;
    char err[512];

    mini_args(&a, "q3_0", tmp_path("bad.bin"));
    CHECK(mkmodel_generate(&a, &rep, err, sizeof err) != 0 && strstr(err, "q3_0"));
    a.ftype = "f16";
    a.preset = "huge";
    CHECK(mkmodel_generate(&a, &rep, err, sizeof err) != 0 && strstr(err, "huge"));
    a.preset = "tiny"; /* multilingual, but --from has the English vocabulary */
    CHECK(mkmodel_generate(&a, &rep, err, sizeof err) != 0 && strstr(err, "n_vocab"));
    free((char *)a.from);
    a.preset = "tiny.en";
    a.from = "/nonexistent/model.bin";
    CHECK(mkmodel_generate(&a, &rep, err, sizeof err) != 0 && strstr(err, "/nonexistent/model.bin"));
    a.from = NULL;
    a.n_state = 100; /* not a multiple of 32 */
    CHECK(mkmodel_generate(&a, &rep, err, sizeof err) != 0);
    a.n_state = 128;
    a.out = "/nonexistent/dir/out.bin";
    CHECK(mkmodel_generate(&a, &rep, err, sizeof err) != 0);
    CHECK(file_size(tmp_path("bad.bin")) < 0);

    /* The command line: the usage text it prints goes to /dev/null. */
    char *argv_bad[] = {"mkmodel", "--preset", "tiny.en", "--seed", "x", "-o", "y", NULL};
    char *argv_noout[] = {"mkmodel", "--preset", "tiny.en", NULL};
    int saved = dup(2);
    FILE *null = fopen("/dev/null", "w");
    if (null) dup2(fileno(null), 2);
    int rc_bad = mkmodel_main(7, argv_bad), rc_noout = mkmodel_main(3, argv_noout);
    if (saved >= 0) {
        dup2(saved, 2);
        close(saved);
    }
    if (null) fclose(null);
    CHECK(rc_bad == 1);
    CHECK(rc_noout == 1);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("preset_sizes", test_preset_sizes);
    t_run("mini_matches_shared", test_mini_matches_shared);
    t_run("presets_match_shared", test_presets_match_shared);
    t_run("values_across_ftypes", test_values_across_ftypes);
    t_run("distributions", test_distributions);
    t_run("deterministic", test_deterministic);
    t_run("bad_requests", test_bad_requests);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t_tmpdir());
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", t_tmpdir());
    return t_summary();
}
