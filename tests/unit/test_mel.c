/*
 * test_mel.c: the log-mel spectrogram on synthetic input, against values
 * derived here independently of mel.c:
 *  - a sine at an exact FFT bin frequency (440 Hz, 1 kHz, 4 kHz) has, under
 *    a periodic Hann window, power only in its bin k and, at a quarter of
 *    it, in k - 1 and k + 1; so each mel value of a frame inside the tone is
 *    known in closed form from the filter bank, and the largest lands in the
 *    mel bin whose filters weigh bins k-1..k+1 most;
 *  - a random signal against a direct O(n^2) DFT of openai-whisper's
 *    zero-extended, reflect-padded frames;
 *  - silence and empty input give the floor; frame counts; bad arguments;
 *    the result does not depend on the thread count.
 * Filter banks (80 and 128 bins) come from the model files.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "hark.h"
#include "mel.h"
#include "model.h"

static void test_frame_counts(void)
{
    CHECK(mel_n_frames(0) == 3000);
    CHECK(mel_n_frames(159) == 3000);
    CHECK(mel_n_frames(160) == 3001);
    CHECK(mel_n_frames(176000) == 4100);
    CHECK(mel_n_frames(480000) == 6000);
    CHECK(mel_n_frames(1200000) == 10500);
}

/* One tone of amplitude 0.5 at freq_hz (a multiple of 40 Hz, i.e. an exact
 * bin of the 400-point FFT) for 1 s. */
static void check_tone(const hark_model *m, double freq_hz)
{
    const int n = 16000, t_mid = 50;
    const int n_mels = m->hp.n_mels;
    const float *f = m->mel_filters; /* (n_mels, 201) */
    float *pcm = malloc(n * sizeof *pcm);
    float *mel = NULL;
    int n_frames = 0;

    CHECK(pcm != NULL);
    if (!pcm)
        return;
    for (int i = 0; i < n; i++)
        pcm[i] = (float)(0.5 * sin(2.0 * M_PI * freq_hz * i / MEL_SAMPLE_RATE));
    int rc = mel_compute(pcm, n, f, n_mels, 2, &mel, &n_frames);
    CHECKF(rc == 0, "mel_compute %d", rc);
    if (rc != 0)
        goto done;

    /* |X[k]| = A N / 4 and |X[k +- 1]| = A N / 8 for the periodic Hann
     * window: power 2500 and 625 for A = 0.5, N = 400. */
    int k = (int)lround(freq_hz / (MEL_SAMPLE_RATE / (double)MEL_N_FFT));
    double e_max = 0;
    int j_max = -1;
    double *e = malloc(n_mels * sizeof *e);
    CHECK(e != NULL);
    if (!e)
        goto done;
    for (int j = 0; j < n_mels; j++) {
        const float *fj = f + (size_t)j * MEL_N_BINS;
        e[j] = 2500.0 * fj[k] + 625.0 * (fj[k - 1] + fj[k + 1]);
        if (e[j] > e_max) {
            e_max = e[j];
            j_max = j;
        }
    }
    double floor_v = (log10(e_max) - 8.0 + 4.0) / 4.0;
    double worst = 0;
    int got_max = 0;
    for (int j = 0; j < n_mels; j++) {
        double v = mel[(size_t)j * n_frames + t_mid];
        double want = (log10(e[j] > 1e-10 ? e[j] : 1e-10) + 4.0) / 4.0;
        if (want < floor_v)
            want = floor_v;
        double d = fabs(v - want);
        if (d > worst)
            worst = d;
        if (v > mel[(size_t)got_max * n_frames + t_mid])
            got_max = j;
    }
    printf("  %d mels, %.0f Hz: FFT bin %d, mel bin %d (got %d), worst |d| %.3g\n", n_mels,
           freq_hz, k, j_max, got_max, worst);
    CHECKF(got_max == j_max, "peak in mel bin %d, expected %d", got_max, j_max);
    CHECKF(worst < 2e-5, "worst |d| %.3g", worst);
    /* Past the tone (and its 200-sample window overhang) only the floor. */
    for (int j = 0; j < n_mels; j++)
        CHECK(fabs(mel[(size_t)j * n_frames + n_frames - 1] - floor_v) < 1e-6);
    free(e);

done:
    free(mel);
    free(pcm);
}

static void test_tones(void)
{
    const char *models[2] = {"rt-mini.en-f32.bin", "rt-v3-f16.bin"};
    const int want_mels[2] = {80, 128};
    for (int i = 0; i < 2; i++) {
        hark_model *m = t_load_model(models[i]);
        if (!m)
            continue;
        CHECK(m->hp.n_mels == want_mels[i]);
        check_tone(m, 440.0);
        check_tone(m, 1000.0);
        check_tone(m, 4000.0);
        hark_model_free(m);
    }
}

/* A random signal against a direct DFT of openai-whisper's padded frames. */
static void test_direct_dft(void)
{
    hark_model *m = t_load_model("rt-mini.en-f32.bin");
    const int n = 3001, n_mels = 80;
    float *pcm = malloc(n * sizeof *pcm);
    float *mel = NULL;
    double *ref = NULL;
    int n_frames = 0;

    if (!m || !pcm)
        goto done;
    srand(7);
    for (int i = 0; i < n; i++)
        pcm[i] = (float)(rand() / (double)RAND_MAX - 0.5);
    CHECK(mel_compute(pcm, n, m->mel_filters, n_mels, 1, &mel, &n_frames) == 0);
    CHECK(n_frames == (n + 480000) / 160);
    if (!mel)
        goto done;
    ref = malloc((size_t)n_mels * n_frames * sizeof *ref);
    if (!ref)
        goto done;

    /* The zero-extended audio e, reflect-padded by 200: padded[j] = e[200 - j]
     * for j < 200, e[j - 200] after. */
    double mx = -1e30;
    for (int t = 0; t < n_frames; t++) {
        double power[MEL_N_BINS];
        double x[MEL_N_FFT];
        int any = 0;
        for (int j = 0; j < MEL_N_FFT; j++) {
            long idx = (long)t * 160 + j - 200;
            if (idx < 0)
                idx = -idx;
            x[j] = idx < n ? pcm[idx] : 0.0;
            x[j] *= 0.5 - 0.5 * cos(2.0 * M_PI * j / MEL_N_FFT);
            any |= x[j] != 0.0;
        }
        for (int k = 0; k < MEL_N_BINS; k++) {
            double re = 0, im = 0;
            for (int j = 0; any && j < MEL_N_FFT; j++) {
                double a = 2.0 * M_PI * (double)((long)j * k % MEL_N_FFT) / MEL_N_FFT;
                re += x[j] * cos(a);
                im -= x[j] * sin(a);
            }
            power[k] = re * re + im * im;
        }
        for (int b = 0; b < n_mels; b++) {
            double s = 0;
            for (int k = 0; k < MEL_N_BINS; k++)
                s += m->mel_filters[b * MEL_N_BINS + k] * power[k];
            double v = log10(s > 1e-10 ? s : 1e-10);
            ref[(size_t)b * n_frames + t] = v;
            if (v > mx)
                mx = v;
        }
    }
    double worst = 0;
    for (size_t i = 0; i < (size_t)n_mels * n_frames; i++) {
        double v = ref[i] < mx - 8.0 ? mx - 8.0 : ref[i];
        double d = fabs((v + 4.0) / 4.0 - mel[i]);
        if (d > worst)
            worst = d;
    }
    printf("  random signal vs direct DFT: worst |d| %.3g\n", worst);
    CHECKF(worst < 1e-6, "worst |d| %.3g", worst);

done:
    free(ref);
    free(mel);
    free(pcm);
    hark_model_free(m);
}

static void check_all_equal(const float *mel, size_t n, float want)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += mel[i] != want;
    CHECKF(bad == 0, "%zu of %zu values differ from %g", bad, n, want);
}

static void test_silence_and_empty(void)
{
    hark_model *m = t_load_model("rt-v3-f16.bin");
    float *pcm = calloc(16000, sizeof *pcm);
    float *mel = NULL;
    int n_frames = 0;

    if (!m || !pcm)
        goto done;
    /* All power 0 -> log10(1e-10) = -10 everywhere, the max; (-10 + 4) / 4. */
    CHECK(mel_compute(pcm, 16000, m->mel_filters, 128, 2, &mel, &n_frames) == 0);
    CHECK(n_frames == 3100);
    if (mel)
        check_all_equal(mel, (size_t)128 * n_frames, -1.5f);
    free(mel);
    mel = NULL;

    CHECK(mel_compute(NULL, 0, m->mel_filters, 128, 2, &mel, &n_frames) == 0);
    CHECK(n_frames == 3000);
    if (mel)
        check_all_equal(mel, (size_t)128 * n_frames, -1.5f);
    free(mel);
    mel = NULL;

    /* Shorter than the 200-sample reflection: finite, and the tone's frame
     * 0 is above the floor. */
    for (int i = 0; i < 100; i++)
        pcm[i] = (float)sin(i * 0.3);
    CHECK(mel_compute(pcm, 100, m->mel_filters, 128, 2, &mel, &n_frames) == 0);
    CHECK(n_frames == 3000);
    if (mel) {
        int finite = 1;
        for (size_t i = 0; i < (size_t)128 * n_frames; i++)
            finite &= isfinite(mel[i]) != 0;
        CHECK(finite);
        float top = -100;
        for (int j = 0; j < 128; j++)
            if (mel[(size_t)j * n_frames] > top)
                top = mel[(size_t)j * n_frames];
        CHECK(top > mel[(size_t)128 * n_frames - 1]);
    }

done:
    free(mel);
    free(pcm);
    hark_model_free(m);
}

static void test_threads_identical(void)
{
    hark_model *m = t_load_model("rt-mini.en-f32.bin");
    const size_t n = 50000;
    float *pcm = malloc(n * sizeof *pcm);
    float *a = NULL, *b = NULL;
    int na = 0, nb = 0;

    if (!m || !pcm)
        goto done;
    srand(3);
    for (size_t i = 0; i < n; i++)
        pcm[i] = (float)(rand() / (double)RAND_MAX - 0.5) * (float)(i % 977) / 977.0f;
    CHECK(mel_compute(pcm, n, m->mel_filters, 80, 1, &a, &na) == 0);
    const int threads[] = {0, 2, 3, 7, 1000};
    for (size_t i = 0; i < sizeof threads / sizeof threads[0]; i++) {
        CHECK(mel_compute(pcm, n, m->mel_filters, 80, threads[i], &b, &nb) == 0);
        CHECK(a && b && na == nb && !memcmp(a, b, (size_t)80 * na * sizeof *a));
        free(b);
        b = NULL;
    }

done:
    free(a);
    free(pcm);
    hark_model_free(m);
}

static void test_bad_args(void)
{
    float filters[2 * MEL_N_BINS] = {0};
    float pcm[10] = {0};
    float *mel = (float *)1;
    int nf = 5;

    CHECK(mel_compute(NULL, 10, filters, 2, 1, &mel, &nf) == HARK_EINVAL);
    CHECK(mel == NULL && nf == 0);
    CHECK(mel_compute(pcm, 10, NULL, 2, 1, &mel, &nf) == HARK_EINVAL);
    CHECK(mel_compute(pcm, 10, filters, 0, 1, &mel, &nf) == HARK_EINVAL);
    CHECK(mel_compute(pcm, 10, filters, 2, 1, NULL, &nf) == HARK_EINVAL);
    CHECK(mel_compute_into(pcm, 10, filters, 2, 1, NULL, 3000) == HARK_EINVAL);
    /* A filter bank that is zero everywhere gives the floor. */
    float *out = malloc(2 * 3000 * sizeof *out);
    CHECK(out != NULL);
    if (out) {
        CHECK(mel_compute_into(pcm, 10, filters, 2, 1, out, 3000) == 0);
        check_all_equal(out, 2 * 3000, -1.5f);
    }
    free(out);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("mel_frame_counts", test_frame_counts);
    t_run("mel_tones", test_tones);
    t_run("mel_direct_dft", test_direct_dft);
    t_run("mel_silence_and_empty", test_silence_and_empty);
    t_run("mel_threads_identical", test_threads_identical);
    t_run("mel_bad_args", test_bad_args);
    return t_summary();
}
