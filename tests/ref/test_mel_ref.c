/*
 * test_mel_ref.c: hark's log-mel against whisper.cpp 1.9.3's
 * (reference/_mel): jfk.wav at 80 and 128 mel bins element by element, and
 * the 75 s clip through its per-frame means. Tolerances are the reference's
 * (TOLERANCES.json): max |d| 1.5e-4, mean |d| 4e-7. The filter banks come
 * from model files (rt-mini.en-f32 for 80 bins, rt-v3-f16 for 128).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "hark.h"
#include "mel.h"
#include "model.h"
#include "wav.h"

#define MEL_MAX_ABS 1.5e-4
#define MEL_MEAN_ABS 4e-7

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static float *read_pcm(const char *name, size_t *n)
{
    char err[256];
    float *pcm = NULL;
    int rc = wav_read(t_shared("audio", name), &pcm, n, err, sizeof err);
    CHECKF(rc == 0, "wav_read %s: %s", name, err);
    return rc == 0 ? pcm : NULL;
}

static void check_jfk(const char *model_name, int n_mels, const char *ref_name)
{
    hark_model *m = t_load_model(model_name);
    size_t n = 0, ref_len = 0;
    float *pcm = read_pcm("jfk.wav", &n);
    float *ref = t_read_file(t_shared("reference", ref_name), &ref_len);
    float *mel = NULL;
    int n_frames = 0;

    CHECKF(ref != NULL, "cannot read %s", ref_name);
    if (!m || !pcm || !ref)
        goto done;
    CHECK(m->hp.n_mels == n_mels);
    CHECK(n == 176000);
    CHECK(ref_len == (size_t)n_mels * 4100 * sizeof(float));

    int rc = mel_compute(pcm, n, m->mel_filters, n_mels, 2, &mel, &n_frames);
    CHECKF(rc == 0, "mel_compute: %d", rc);
    if (rc != 0)
        goto done;
    CHECK(n_frames == 4100);
    if (n_frames != 4100 || ref_len != (size_t)n_mels * 4100 * sizeof(float))
        goto done;

    double max_d = 0, sum_d = 0;
    int worst = 0;
    for (int i = 0; i < n_mels * 4100; i++) {
        double d = fabs((double)mel[i] - ref[i]);
        sum_d += d;
        if (d > max_d) {
            max_d = d;
            worst = i;
        }
    }
    double mean_d = sum_d / (n_mels * 4100.0);
    printf("  jfk %d mels: max|d| %.3g at (mel %d, frame %d: %.7g vs %.7g), mean|d| %.3g\n",
           n_mels, max_d, worst / 4100, worst % 4100, mel[worst], ref[worst], mean_d);
    CHECKF(max_d <= MEL_MAX_ABS, "max|d| %.3g > %.3g", max_d, MEL_MAX_ABS);
    CHECKF(mean_d <= MEL_MEAN_ABS, "mean|d| %.3g > %.3g", mean_d, MEL_MEAN_ABS);

    /* The same with one thread and into a caller's buffer: bit-identical. */
    float *mel1 = malloc((size_t)n_mels * 4100 * sizeof *mel1);
    CHECK(mel1 != NULL);
    if (mel1) {
        CHECK(mel_compute_into(pcm, n, m->mel_filters, n_mels, 1, mel1, 4100) == 0);
        CHECK(memcmp(mel1, mel, (size_t)n_mels * 4100 * sizeof *mel1) == 0);
        CHECK(mel_compute_into(pcm, n, m->mel_filters, n_mels, 1, mel1, 4099) == HARK_EINVAL);
    }
    free(mel1);

done:
    free(mel);
    free(ref);
    free(pcm);
    hark_model_free(m);
}

static void test_jfk_80(void) { check_jfk("rt-mini.en-f32.bin", 80, "_mel/mel_jfk_80.f32"); }
static void test_jfk_128(void) { check_jfk("rt-v3-f16.bin", 128, "_mel/mel_jfk_128.f32"); }

static void check_75s(const char *model_name, int n_mels, const char *ref_name)
{
    hark_model *m = t_load_model(model_name);
    size_t n = 0, ref_len = 0;
    float *pcm = read_pcm("hifitts_concat_75s.wav", &n);
    float *ref = t_read_file(t_shared("reference", ref_name), &ref_len);
    float *mel = NULL;
    int n_frames = 0;

    CHECKF(ref != NULL, "cannot read %s", ref_name);
    if (!m || !pcm || !ref)
        goto done;
    CHECK(n == 1200000);
    int rc = mel_compute(pcm, n, m->mel_filters, n_mels, 2, &mel, &n_frames);
    CHECKF(rc == 0, "mel_compute: %d", rc);
    CHECK(n_frames == 10500);
    CHECK(ref_len == 10500 * sizeof(float));
    if (rc != 0 || n_frames != 10500 || ref_len != 10500 * sizeof(float))
        goto done;

    double max_d = 0, sum_d = 0;
    int worst = 0;
    for (int t = 0; t < n_frames; t++) {
        double s = 0;
        for (int j = 0; j < n_mels; j++)
            s += mel[(size_t)j * n_frames + t];
        double d = fabs(s / n_mels - ref[t]);
        sum_d += d;
        if (d > max_d) {
            max_d = d;
            worst = t;
        }
    }
    printf("  75 s %d mels, frame means: max|d| %.3g at frame %d, mean|d| %.3g\n", n_mels, max_d,
           worst, sum_d / n_frames);
    CHECKF(max_d <= MEL_MAX_ABS, "max|d| %.3g", max_d);
    CHECKF(sum_d / n_frames <= MEL_MEAN_ABS, "mean|d| %.3g", sum_d / n_frames);

    /* Timings (informational; speed goals live in the benchmark). */
    for (int threads = 1; threads <= 2; threads++) {
        size_t lens[2] = {480000, n};
        for (int k = 0; k < 2; k++) {
            float *out = NULL;
            int nf = 0;
            double best = 1e30;
            for (int rep = 0; rep < 3; rep++) {
                double t0 = now_ms();
                rc = mel_compute(pcm, lens[k], m->mel_filters, n_mels, threads, &out, &nf);
                double dt = now_ms() - t0;
                free(out);
                out = NULL;
                CHECK(rc == 0);
                if (dt < best)
                    best = dt;
            }
            printf("  time: %d mels, %.0f s audio, %d thread%s: %.1f ms\n", n_mels,
                   lens[k] / 16000.0, threads, threads > 1 ? "s" : "", best);
        }
    }

done:
    free(mel);
    free(ref);
    free(pcm);
    hark_model_free(m);
}

static void test_75s_80(void)
{
    check_75s("rt-mini.en-f32.bin", 80, "_mel/mel_hifitts_concat_75s_80_framemean.f32");
}

static void test_75s_128(void)
{
    check_75s("rt-v3-f16.bin", 128, "_mel/mel_hifitts_concat_75s_128_framemean.f32");
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("mel_ref_jfk_80", test_jfk_80);
    t_run("mel_ref_jfk_128", test_jfk_128);
    t_run("mel_ref_75s_80", test_75s_80);
    t_run("mel_ref_75s_128", test_75s_128);
    return t_summary();
}
