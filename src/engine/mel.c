/*
 * mel.c: Whisper's log-mel spectrogram (see mel.h for the definition).
 *
 * Each frame is 400 windowed samples whose real DFT is computed in double
 * precision as one complex FFT of 200 points (even samples as the real part,
 * odd samples as the imaginary part) followed by the usual split into the
 * spectra of the two halves. The 200-point FFT is a recursive
 * decimation-in-time transform over the factors 4, 5, 5, 2 with hand-written
 * radix-2, -4 and -5 butterflies and twiddles from one table, so it is exact
 * to double rounding and costs about 3,000 flops per frame. The power
 * spectrum (201 bins) is multiplied by each mel filter over only the bins
 * where the filter is non-zero (a triangle of a few bins), in double.
 *
 * Frames are split into contiguous ranges, one per thread. Frames whose 400
 * samples all lie in the 30 s of zero padding are not transformed: their mel
 * is exactly log10(1e-10) = -10, as whisper.cpp also writes them.
 *
 * Padding follows openai-whisper: the audio is first extended with zeros,
 * then reflect-padded by 200 samples at each end, so frame t covers samples
 * 160 t - 200 ... 160 t + 199 of the extended audio e, where e[-i] = e[i].
 * whisper.cpp does the same for audio longer than 200 samples; for shorter
 * audio it reads past its input, while here the reflection reaches into the
 * zero extension.
 */
#include "mel.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "hark.h"

#define HALF (MEL_N_FFT / 2) /* 200: points of the complex FFT */

struct cpx {
    double re, im;
};

/* Tables shared by every call, built once. */
static double hann[MEL_N_FFT];        /* periodic Hann window */
static struct cpx tw_half[HALF];      /* exp(-2 pi i k / 200) */
static struct cpx tw_full[MEL_N_BINS]; /* exp(-2 pi i k / 400) */
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

/* The radices of the 200-point FFT, outermost first; their product is 200. */
static const int fft_factors[] = {4, 5, 5, 2};

static void tables_init(void)
{
    for (int i = 0; i < MEL_N_FFT; i++)
        hann[i] = 0.5 * (1.0 - cos(2.0 * M_PI * i / MEL_N_FFT));
    for (int k = 0; k < HALF; k++) {
        tw_half[k].re = cos(2.0 * M_PI * k / HALF);
        tw_half[k].im = -sin(2.0 * M_PI * k / HALF);
    }
    for (int k = 0; k < MEL_N_BINS; k++) {
        tw_full[k].re = cos(2.0 * M_PI * k / MEL_N_FFT);
        tw_full[k].im = -sin(2.0 * M_PI * k / MEL_N_FFT);
    }
}

static inline struct cpx cmul(struct cpx a, struct cpx b)
{
    struct cpx r = {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
    return r;
}

/* out[0..n) = DFT of the n values in[0], in[s], in[2s], ... The twiddle
 * exp(-2 pi i j / n) is tw_half[j * tstride] (n * tstride = 200). */
static void fft_rec(struct cpx *out, const struct cpx *in, size_t s, const int *fac, int n,
                    int tstride)
{
    int p = fac[0];
    int m = n / p;

    if (m == 1) {
        for (int q = 0; q < p; q++)
            out[q] = in[q * s];
    } else {
        for (int q = 0; q < p; q++)
            fft_rec(out + q * m, in + q * s, s * p, fac + 1, m, tstride * p);
    }

    /* Butterflies: X[k + v m] = sum_u W_n^(u k) W_p^(u v) Y_u[k]. */
    for (int k = 0; k < m; k++) {
        struct cpx a[5];
        a[0] = out[k];
        for (int u = 1; u < p; u++)
            a[u] = cmul(out[u * m + k], tw_half[u * k * tstride]);
        if (p == 2) {
            out[k].re = a[0].re + a[1].re;
            out[k].im = a[0].im + a[1].im;
            out[m + k].re = a[0].re - a[1].re;
            out[m + k].im = a[0].im - a[1].im;
        } else if (p == 4) {
            double s02r = a[0].re + a[2].re, s02i = a[0].im + a[2].im;
            double d02r = a[0].re - a[2].re, d02i = a[0].im - a[2].im;
            double s13r = a[1].re + a[3].re, s13i = a[1].im + a[3].im;
            double d13r = a[1].re - a[3].re, d13i = a[1].im - a[3].im;
            out[k].re = s02r + s13r;
            out[k].im = s02i + s13i;
            out[2 * m + k].re = s02r - s13r;
            out[2 * m + k].im = s02i - s13i;
            /* -i (a1 - a3) = (d13i, -d13r) */
            out[m + k].re = d02r + d13i;
            out[m + k].im = d02i - d13r;
            out[3 * m + k].re = d02r - d13i;
            out[3 * m + k].im = d02i + d13r;
        } else {
            /* Radix 5 with c1 = cos(2 pi / 5), c2 = cos(4 pi / 5),
             * s1 = sin(2 pi / 5), s2 = sin(4 pi / 5). */
            const double c1 = 0.30901699437494742410, c2 = -0.80901699437494742410;
            const double s1 = 0.95105651629515357212, s2 = 0.58778525229247312917;
            double t1r = a[1].re + a[4].re, t1i = a[1].im + a[4].im;
            double t2r = a[2].re + a[3].re, t2i = a[2].im + a[3].im;
            double t3r = a[1].re - a[4].re, t3i = a[1].im - a[4].im;
            double t4r = a[2].re - a[3].re, t4i = a[2].im - a[3].im;
            double b1r = a[0].re + c1 * t1r + c2 * t2r, b1i = a[0].im + c1 * t1i + c2 * t2i;
            double b2r = a[0].re + c2 * t1r + c1 * t2r, b2i = a[0].im + c2 * t1i + c1 * t2i;
            double d1r = s1 * t3r + s2 * t4r, d1i = s1 * t3i + s2 * t4i;
            double d2r = s2 * t3r - s1 * t4r, d2i = s2 * t3i - s1 * t4i;
            out[k].re = a[0].re + t1r + t2r;
            out[k].im = a[0].im + t1i + t2i;
            out[m + k].re = b1r + d1i;
            out[m + k].im = b1i - d1r;
            out[4 * m + k].re = b1r - d1i;
            out[4 * m + k].im = b1i + d1r;
            out[2 * m + k].re = b2r + d2i;
            out[2 * m + k].im = b2i - d2r;
            out[3 * m + k].re = b2r - d2i;
            out[3 * m + k].im = b2i + d2r;
        }
    }
}

/* Sample i of the reflect-padded, zero-extended audio (i may be negative). */
static inline double sample_at(const float *pcm, size_t n, long long i)
{
    if (i < 0)
        i = -i;
    return (size_t)i < n ? (double)pcm[i] : 0.0;
}

/* power[0..201) = |DFT(hann * frame t)|^2. */
static void frame_power(const float *pcm, size_t n, long long t, double *power)
{
    struct cpx z[HALF], Z[HALF];
    long long base = t * MEL_HOP - MEL_N_FFT / 2;

    if (base >= 0 && (size_t)base + MEL_N_FFT <= n) {
        const float *x = pcm + base;
        for (int j = 0; j < HALF; j++) {
            z[j].re = hann[2 * j] * x[2 * j];
            z[j].im = hann[2 * j + 1] * x[2 * j + 1];
        }
    } else {
        for (int j = 0; j < HALF; j++) {
            z[j].re = hann[2 * j] * sample_at(pcm, n, base + 2 * j);
            z[j].im = hann[2 * j + 1] * sample_at(pcm, n, base + 2 * j + 1);
        }
    }
    fft_rec(Z, z, 1, fft_factors, HALF, 1);

    /* X[k] = E[k] + W_400^k O[k] with E = (Z[k] + conj Z[-k]) / 2 the DFT of
     * the even samples and O = (Z[k] - conj Z[-k]) / 2i that of the odd. */
    for (int k = 0; k < MEL_N_BINS; k++) {
        struct cpx a = Z[k % HALF];
        struct cpx b = Z[(HALF - k) % HALF];
        struct cpx e = {0.5 * (a.re + b.re), 0.5 * (a.im - b.im)};
        struct cpx o = {0.5 * (a.im + b.im), -0.5 * (a.re - b.re)};
        struct cpx wo = cmul(tw_full[k], o);
        double xr = e.re + wo.re, xi = e.im + wo.im;
        power[k] = xr * xr + xi * xi;
    }
}

struct mel_job {
    const float *pcm;
    size_t n_samples;
    const float *filters; /* (n_mels, MEL_N_BINS) */
    const int *range;     /* (n_mels, 2): first and last non-zero bin */
    int n_mels;
    float *mel;           /* (n_mels, n_frames) */
    int n_frames;
    int t0, t1;           /* frames of this job */
    float max;            /* largest value written */
};

static void *mel_job_run(void *arg)
{
    struct mel_job *job = arg;
    double power[MEL_N_BINS];
    float mx = -INFINITY;

    for (int t = job->t0; t < job->t1; t++) {
        frame_power(job->pcm, job->n_samples, t, power);
        for (int j = 0; j < job->n_mels; j++) {
            const float *f = job->filters + (size_t)j * MEL_N_BINS;
            double sum = 0.0;
            for (int k = job->range[2 * j]; k <= job->range[2 * j + 1]; k++)
                sum += (double)f[k] * power[k];
            float v = (float)log10(sum > 1e-10 ? sum : 1e-10);
            job->mel[(size_t)j * job->n_frames + t] = v;
            if (v > mx)
                mx = v;
        }
    }
    job->max = mx;
    return NULL;
}

size_t mel_n_frames(size_t n_samples)
{
    if (n_samples > SIZE_MAX - MEL_PAD_SAMPLES)
        return SIZE_MAX / MEL_HOP;
    return (n_samples + MEL_PAD_SAMPLES) / MEL_HOP;
}

int mel_compute_into(const float *pcm, size_t n_samples, const float *filters, int n_mels,
                     int n_threads, float *mel, int n_frames)
{
    enum { MAX_THREADS = 64, MIN_FRAMES_PER_THREAD = 64 };
    struct mel_job jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    int *range = NULL;
    int rc = 0;

    if ((!pcm && n_samples > 0) || !filters || n_mels <= 0 || !mel)
        return HARK_EINVAL;
    if (mel_n_frames(n_samples) > INT_MAX)
        return HARK_ERANGE;
    if ((size_t)n_frames != mel_n_frames(n_samples))
        return HARK_EINVAL;
    pthread_once(&tables_once, tables_init);

    /* (n_mels, 2): the bins where each filter is non-zero; an empty range
     * (first > last) for a filter that is zero everywhere. */
    range = malloc((size_t)n_mels * 2 * sizeof *range);
    if (!range) {
        rc = HARK_ENOMEM;
        goto fail;
    }
    for (int j = 0; j < n_mels; j++) {
        const float *f = filters + (size_t)j * MEL_N_BINS;
        int lo = 0, hi = MEL_N_BINS - 1;
        while (lo < MEL_N_BINS && f[lo] == 0.0f)
            lo++;
        while (hi >= lo && f[hi] == 0.0f)
            hi--;
        range[2 * j] = lo;
        range[2 * j + 1] = hi;
    }

    /* Frames from n_audio on see only zeros: their first sample,
     * 160 t - 200, is at or past the end of the audio. Frame 0 is always
     * transformed (its reflection reads samples 1..200). */
    size_t n_audio = (n_samples + MEL_N_FFT / 2 + MEL_HOP - 1) / MEL_HOP;
    if (n_audio < 1)
        n_audio = 1;
    if (n_audio > (size_t)n_frames)
        n_audio = (size_t)n_frames;

    int nt = n_threads < 1 ? 1 : n_threads > MAX_THREADS ? MAX_THREADS : n_threads;
    if ((size_t)nt > n_audio / MIN_FRAMES_PER_THREAD)
        nt = (int)(n_audio / MIN_FRAMES_PER_THREAD);
    if (nt < 1)
        nt = 1;
    for (int i = 0; i < nt; i++) {
        jobs[i] = (struct mel_job){
            .pcm = pcm, .n_samples = n_samples, .filters = filters, .range = range,
            .n_mels = n_mels, .mel = mel, .n_frames = n_frames,
            .t0 = (int)(n_audio * i / nt), .t1 = (int)(n_audio * (i + 1) / nt),
        };
    }
    /* Job 0 runs on the calling thread; a job whose thread cannot be started
     * runs there too. */
    for (int i = 1; i < nt; i++)
        started[i] = pthread_create(&tids[i], NULL, mel_job_run, &jobs[i]) == 0;
    mel_job_run(&jobs[0]);
    for (int i = 1; i < nt; i++) {
        if (started[i])
            pthread_join(tids[i], NULL);
        else
            mel_job_run(&jobs[i]);
    }

    float mx = -10.0f; /* the value of the all-zero frames; at least one exists */
    for (int i = 0; i < nt; i++)
        if (jobs[i].max > mx)
            mx = jobs[i].max;
    for (int j = 0; j < n_mels; j++) {
        float *row = mel + (size_t)j * n_frames;
        for (int t = (int)n_audio; t < n_frames; t++)
            row[t] = -10.0f;
    }

    /* Clamp at max - 8 and rescale, in double as whisper.cpp does. */
    double floor_v = (double)mx - 8.0;
    size_t total = (size_t)n_mels * n_frames;
    for (size_t i = 0; i < total; i++) {
        float v = mel[i] < floor_v ? (float)floor_v : mel[i];
        mel[i] = (float)(((double)v + 4.0) / 4.0);
    }

fail:
    free(range);
    return rc;
}

int mel_compute(const float *pcm, size_t n_samples, const float *filters, int n_mels,
                int n_threads, float **mel, int *n_frames)
{
    float *out = NULL;
    int rc;

    if (!mel || !n_frames)
        return HARK_EINVAL;
    *mel = NULL;
    *n_frames = 0;
    if (n_mels <= 0)
        return HARK_EINVAL;
    size_t nf = mel_n_frames(n_samples);
    if (nf > INT_MAX)
        return HARK_ERANGE;
    if (nf > SIZE_MAX / sizeof(float) / (size_t)n_mels)
        return HARK_ENOMEM;
    out = malloc((size_t)n_mels * nf * sizeof *out);
    if (!out)
        return HARK_ENOMEM;
    rc = mel_compute_into(pcm, n_samples, filters, n_mels, n_threads, out, (int)nf);
    if (rc < 0)
        goto fail;
    *mel = out;
    *n_frames = (int)nf;
    return 0;

fail:
    free(out);
    return rc;
}
