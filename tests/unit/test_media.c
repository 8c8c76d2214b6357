/*
 * test_media.c: media.c against real files and files written here.
 *
 * The shared jfk recordings (mp4/AAC 44.1 kHz stereo, mp3 16 kHz mono, flac
 * 44.1 kHz stereo) are probed and decoded and compared with wav_read() of
 * jfk.wav: same length to within one codec frame, and after aligning them
 * by the cross-correlation peak, a high correlation and a small RMS
 * difference (the codecs are lossy, so the bounds are loose but far below
 * what unrelated audio gives; the measured values are printed). A 16 kHz
 * 16-bit WAV must decode to exactly wav_read()'s samples.
 *
 * Channel averaging and resampling are checked on WAV files written here: a
 * 440 Hz sine with a different amplitude in each channel (stereo, 5.1, an
 * unnamed 3-channel layout) at 8, 16, 22.05, 44.1 and 48 kHz. The expected
 * amplitude is the mean of the channel amplitudes, worked out by hand (not
 * from the code under test), and is measured with a Goertzel filter; the
 * frequency is measured by counting zero crossings.
 *
 * Faults: text, an empty file and random bytes are HARK_EAUDIO; a video-only
 * MP4 (jfk.mp4's video stream copied out with libavformat, no encoder
 * needed) is HARK_EAUDIO; a file of 101 streams, or a header that states 100
 * channels, 1 MHz or thousands of hours, is HARK_EFORMAT; a missing file and
 * a directory are HARK_EIO; every one of 40+ truncations of each jfk file
 * and files with bytes overwritten in the middle give a clean code or fewer
 * samples, never a crash; a progress callback that asks to stop gives
 * HARK_ECANCELED. Several threads decoding at once must give what one
 * thread gives.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libavformat/avformat.h>

#include "harness.h"
#include "hark.h"
#include "media.h"
#include "wav.h"

#define PI 3.14159265358979323846

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* A path in the test's temporary directory; a static buffer. */
static const char *tmp_path(const char *name)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s", t_tmpdir(), name);
    return buf;
}

static int write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    if (len && fwrite(data, 1, len, f) != len) {
        fclose(f);
        return -1;
    }
    return fclose(f);
}

static void put16(uint8_t *p, unsigned v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, v & 0xffff), put16(p + 2, v >> 16); }

/* Writes a 16-bit PCM WAV of n_frames frames whose channel c holds
 * amp[c] * sin(2 pi hz t). mask != 0 writes WAVE_FORMAT_EXTENSIBLE with that
 * channel mask. The s16 samples written go to *samples when not NULL
 * (n_frames * channels, interleaved; malloc'ed). */
static int write_sine_wav(const char *path, int rate, int channels, const double *amp, double hz, int n_frames,
                          uint32_t mask, int16_t **samples)
{
    size_t fmt_len = mask ? 40 : 16, data_len = (size_t)n_frames * channels * 2;
    size_t total = 12 + 8 + fmt_len + 8 + data_len;
    uint8_t *b = calloc(1, total), *p;
    int rc;
    if (!b) return -1;
    memcpy(b, "RIFF", 4);
    put32(b + 4, (uint32_t)(total - 8));
    memcpy(b + 8, "WAVEfmt ", 8);
    put32(b + 16, (uint32_t)fmt_len);
    p = b + 20;
    put16(p, mask ? 0xFFFE : 1);
    put16(p + 2, (unsigned)channels);
    put32(p + 4, (uint32_t)rate);
    put32(p + 8, (uint32_t)(rate * channels * 2));
    put16(p + 12, (unsigned)(channels * 2));
    put16(p + 14, 16);
    if (mask) {
        static const uint8_t pcm_guid[16] = {1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71};
        put16(p + 16, 22);
        put16(p + 18, 16);
        put32(p + 20, mask);
        memcpy(p + 24, pcm_guid, 16);
    }
    p += fmt_len;
    memcpy(p, "data", 4);
    put32(p + 4, (uint32_t)data_len);
    p += 8;
    if (samples) *samples = malloc(data_len ? data_len : 1);
    for (int i = 0; i < n_frames; i++) {
        for (int c = 0; c < channels; c++) {
            int16_t v = (int16_t)lrint(amp[c] * 32767.0 * sin(2 * PI * hz * i / rate));
            put16(p + ((size_t)i * channels + c) * 2, (uint16_t)v);
            if (samples && *samples) (*samples)[(size_t)i * channels + c] = v;
        }
    }
    rc = write_bytes(path, b, total);
    free(b);
    return rc;
}

/* The amplitude of the hz component of x (n samples at rate), by a Goertzel
 * filter over a whole number of periods. */
static double goertzel_amp(const float *x, size_t n, double hz, int rate)
{
    size_t periods = (size_t)floor(n * hz / rate), m = (size_t)floor(periods * (double)rate / hz);
    double w = 2 * PI * hz / rate, coeff = 2 * cos(w), s1 = 0, s2 = 0;
    for (size_t i = 0; i < m; i++) {
        double s0 = x[i] + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    double re = s1 - s2 * cos(w), im = s2 * sin(w);
    return 2 * sqrt(re * re + im * im) / (double)m;
}

/* The frequency of x by counting sign changes. */
static double zero_cross_hz(const float *x, size_t n, int rate)
{
    size_t first = 0, last = 0, count = 0;
    for (size_t i = 1; i < n; i++) {
        if ((x[i - 1] < 0) != (x[i] < 0)) {
            if (!count) first = i;
            last = i;
            count++;
        }
    }
    if (count < 2) return 0;
    return (double)(count - 1) / 2.0 / ((double)(last - first) / rate);
}

/* Aligns x to ref by the lag in [-max_lag, max_lag] that maximises their
 * normalised cross-correlation over seconds 1 to 9; returns that peak
 * correlation, the lag (x[i + lag] ~ ref[i]), the least-squares gain g of x
 * against ref over the whole overlap, and the RMS of x - g ref there. */
static double align(const float *ref, size_t n_ref, const float *x, size_t n_x, int max_lag, int *lag_out,
                    double *gain_out, double *rms_out)
{
    size_t w0 = 16000, w1 = n_ref < 16000 * 9 ? n_ref : 16000 * 9;
    double best = -2;
    int best_lag = 0;
    for (int lag = -max_lag; lag <= max_lag; lag++) {
        double sxy = 0, sxx = 0, syy = 0;
        for (size_t i = w0; i < w1; i++) {
            long j = (long)i + lag;
            if (j < 0 || (size_t)j >= n_x) continue;
            sxy += (double)ref[i] * x[j];
            sxx += (double)ref[i] * ref[i];
            syy += (double)x[j] * x[j];
        }
        double c = sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0;
        if (c > best) best = c, best_lag = lag;
    }
    double sxy = 0, sxx = 0, se = 0, g;
    size_t cnt = 0;
    for (size_t i = 0; i < n_ref; i++) {
        long j = (long)i + best_lag;
        if (j < 0 || (size_t)j >= n_x) continue;
        sxy += (double)ref[i] * x[j];
        sxx += (double)ref[i] * ref[i];
    }
    g = sxx > 0 ? sxy / sxx : 0;
    for (size_t i = 0; i < n_ref; i++) {
        long j = (long)i + best_lag;
        if (j < 0 || (size_t)j >= n_x) continue;
        se += (x[j] - g * ref[i]) * (x[j] - g * ref[i]);
        cnt++;
    }
    *lag_out = best_lag;
    *gain_out = g;
    *rms_out = cnt ? sqrt(se / cnt) : 1e9;
    return best;
}

static double rms(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return n ? sqrt(s / n) : 0;
}

static int all_finite(const float *x, size_t n, float bound)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]) || fabsf(x[i]) > bound) return 0;
    return 1;
}

/* ------------------------------------------------------------- probing */

struct probe_case {
    const char *kind, *name, *content_type, *format, *codec;
    int has_video, rate, channels;
};

static const struct probe_case probe_cases[] = {
    {"media", "jfk.mp4", "video/mp4", "mov", "aac", 1, 44100, 2},
    {"media", "jfk.mp3", "audio/mpeg", "mp3", "mp3", 0, 16000, 1},
    {"media", "jfk.flac", "audio/flac", "flac", "flac", 0, 44100, 2},
    {"audio", "jfk.wav", "audio/wav", "wav", "pcm_s16le", 0, 16000, 1},
};

static void test_probe_jfk(void)
{
    char err[512];
    float *ref = NULL;
    size_t n_ref = 0;
    double worst = 0;
    CHECK(wav_read(t_shared("audio", "jfk.wav"), &ref, &n_ref, err, sizeof err) == 0);
    double want = (double)n_ref / MEDIA_SAMPLE_RATE;
    for (size_t k = 0; k < sizeof probe_cases / sizeof *probe_cases; k++) {
        const struct probe_case *pc = &probe_cases[k];
        struct media_info info;
        int rc = media_probe(t_shared(pc->kind, pc->name), &info, err, sizeof err);
        CHECKF(rc == 0, "%s: rc %d: %s", pc->name, rc, err);
        if (rc != 0) continue;
        printf("  %-9s %-10s %-6s %-10s %5d Hz %d ch video %d  %.3f s\n", pc->name, info.content_type,
               info.format, info.audio_codec, info.sample_rate, info.channels, info.has_video, info.duration_s);
        CHECKF(!strcmp(info.content_type, pc->content_type), "%s: content type %s", pc->name, info.content_type);
        CHECKF(!strcmp(info.format, pc->format), "%s: format %s", pc->name, info.format);
        CHECKF(!strcmp(info.audio_codec, pc->codec), "%s: codec %s", pc->name, info.audio_codec);
        CHECKF(info.has_video == pc->has_video, "%s: has_video %d", pc->name, info.has_video);
        CHECKF(info.sample_rate == pc->rate && info.channels == pc->channels, "%s: %d Hz %d ch", pc->name,
               info.sample_rate, info.channels);
        if (fabs(info.duration_s - want) > worst) worst = fabs(info.duration_s - want);
        CHECKF(fabs(info.duration_s - want) <= 0.1, "%s: duration %.3f s, jfk.wav has %.3f s", pc->name,
               info.duration_s, want);
    }
    printf("  worst duration difference from jfk.wav (%.3f s): %.3f s\n", want, worst);
    free(ref);
}

static void test_probe_other(void)
{
    char err[512];
    struct media_info info;
    static const char *ogg[] = {"fleurs-de-000.ogg", "fleurs-es-000.ogg", "fleurs-fr-000.ogg"};
    for (int k = 0; k < 3; k++) {
        int rc = media_probe(t_shared("media", ogg[k]), &info, err, sizeof err);
        CHECKF(rc == 0, "%s: %s", ogg[k], err);
        printf("  %s: %s %s %d Hz %d ch %.2f s\n", ogg[k], info.content_type, info.audio_codec,
               info.sample_rate, info.channels, info.duration_s);
        CHECK(!strcmp(info.content_type, "audio/ogg") && !strcmp(info.format, "ogg"));
        CHECK(!strcmp(info.audio_codec, "opus") && info.sample_rate == 48000 && !info.has_video);
        CHECK(info.duration_s > 1 && info.duration_s < 60);
    }
    CHECK(media_probe(t_shared("media", "multilingual.mp3"), &info, err, sizeof err) == 0);
    printf("  multilingual.mp3: %s %.2f s\n", info.content_type, info.duration_s);
    CHECK(!strcmp(info.content_type, "audio/mpeg"));
    CHECKF(fabs(info.duration_s - 60) < 1.5, "multilingual.mp3 duration %.2f s", info.duration_s);
}

/* --------------------------------------------------------- real decoding */

/* Opus in Ogg at 48 kHz and a minute of MP3: as long as the probe says
 * (within 0.1 s), not silent, every sample in [-1, 1]. The recordings'
 * levels differ a lot (fleurs-fr-000 peaks at 0.004 of full scale, RMS
 * 0.0008), so "not silent" is an RMS above 0.0002. */
static void test_decode_other(void)
{
    static const char *names[] = {"fleurs-de-000.ogg", "fleurs-es-000.ogg", "fleurs-fr-000.ogg",
                                  "multilingual.mp3"};
    double worst = 0;
    for (int k = 0; k < 4; k++) {
        char err[512] = "";
        struct media_info info;
        float *x = NULL;
        size_t n = 0;
        const char *path = t_shared("media", names[k]);
        CHECKF(media_probe(path, &info, err, sizeof err) == 0, "%s", err);
        int rc = media_decode(path, &x, &n, NULL, NULL, err, sizeof err);
        CHECKF(rc == 0, "%s: %s", names[k], err);
        if (rc != 0) continue;
        double secs = (double)n / MEDIA_SAMPLE_RATE, level = rms(x, n);
        printf("  %-18s %.3f s decoded, %.3f s probed, RMS %.4f\n", names[k], secs, info.duration_s, level);
        if (fabs(secs - info.duration_s) > worst) worst = fabs(secs - info.duration_s);
        CHECKF(fabs(secs - info.duration_s) <= 0.1, "%s: %.3f s decoded, probe says %.3f s", names[k], secs,
               info.duration_s);
        CHECKF(level > 0.0002 && level < 0.5, "%s: RMS %.4f", names[k], level);
        CHECK(all_finite(x, n, 1.0f));
        free(x);
    }
    printf("  worst decoded-vs-probed duration difference %.3f s\n", worst);
}

static void test_wav_bit_exact(void)
{
    static const char *names[] = {"jfk.wav", "hifitts_concat_75s.wav"};
    for (int k = 0; k < 2; k++) {
        char err[512] = "";
        float *ref = NULL, *got = NULL;
        size_t n_ref = 0, n_got = 0, n_diff = 0;
        const char *path = t_shared("audio", names[k]);
        CHECKF(wav_read(path, &ref, &n_ref, err, sizeof err) == 0, "%s", err);
        double t0 = now_ms();
        int rc = media_decode(path, &got, &n_got, NULL, NULL, err, sizeof err);
        double ms = now_ms() - t0;
        CHECKF(rc == 0, "%s: %s", names[k], err);
        CHECKF(n_got == n_ref, "%s: %zu samples, wav_read gives %zu", names[k], n_got, n_ref);
        for (size_t i = 0; i < n_got && i < n_ref; i++) n_diff += memcmp(&got[i], &ref[i], sizeof(float)) != 0;
        CHECKF(n_diff == 0, "%s: %zu samples differ from wav_read's", names[k], n_diff);
        printf("  %s: %zu samples, %zu differ from wav_read (bit for bit); decoded in %.1f ms\n", names[k],
               n_got, n_diff, ms);
        free(ref);
        free(got);
    }
}

static void test_decode_jfk_variants(void)
{
    /* Bounds. Length: one codec frame at 16 kHz (AAC's 1024 samples at
     * 44.1 kHz are 372; MP3 at 16 kHz has 576-sample frames; FLAC is
     * lossless and must come out at jfk.wav's length to a few samples).
     * Gain: the MP4's two channels each hold the speech at -3 dB (0.707),
     * which is what FFmpeg writes when it spreads mono over stereo, so their
     * mean does too; the others are at full level. Residual: the RMS of
     * x - gain * ref relative to the reference's RMS after alignment
     * (unrelated speech gives about 1.4); measured 0.057 (AAC), 0.009 (MP3),
     * 0.0001 (FLAC). */
    static const struct {
        const char *name;
        long max_len_diff;
        double gain, min_corr, max_resid;
    } cases[] = {
        {"jfk.mp4", 372, 0.7071, 0.995, 0.10},
        {"jfk.mp3", 576, 1.0, 0.999, 0.03},
        {"jfk.flac", 4, 1.0, 0.99999, 0.002},
    };
    char err[512] = "";
    float *ref = NULL;
    size_t n_ref = 0;
    CHECK(wav_read(t_shared("audio", "jfk.wav"), &ref, &n_ref, err, sizeof err) == 0);
    double ref_rms = rms(ref, n_ref);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        float *x = NULL;
        size_t n = 0;
        int lag = 0;
        double gain = 0, resid = 0;
        double t0 = now_ms();
        int rc = media_decode(t_shared("media", cases[k].name), &x, &n, NULL, NULL, err, sizeof err);
        double ms = now_ms() - t0;
        CHECKF(rc == 0, "%s: %s", cases[k].name, err);
        if (rc != 0) continue;
        double corr = align(ref, n_ref, x, n, 1600, &lag, &gain, &resid);
        long len_diff = (long)n - (long)n_ref;
        double rel = resid / (gain * ref_rms);
        printf("  %-8s %zu samples (%+ld), lag %+d, correlation peak %.6f, gain %.4f, RMS diff after gain "
               "%.5f (%.4f of the signal); %.1f ms\n",
               cases[k].name, n, len_diff, lag, corr, gain, resid, rel, ms);
        CHECKF(labs(len_diff) <= cases[k].max_len_diff, "%s: length differs by %ld", cases[k].name, len_diff);
        CHECKF(abs(lag) <= 16, "%s: shifted by %d samples", cases[k].name, lag);
        CHECKF(corr >= cases[k].min_corr, "%s: correlation %.6f", cases[k].name, corr);
        CHECKF(fabs(gain - cases[k].gain) <= 0.02, "%s: gain %.4f, want %.4f", cases[k].name, gain, cases[k].gain);
        CHECKF(rel <= cases[k].max_resid, "%s: relative RMS difference %.4f", cases[k].name, rel);
        CHECKF(all_finite(x, n, 1.0f), "%s: samples out of [-1, 1]", cases[k].name);
        free(x);
    }
    free(ref);
}

struct thread_job {
    const char *path;
    float *pcm;
    size_t n;
    int rc;
};

static void *decode_thread(void *arg)
{
    struct thread_job *job = arg;
    char err[512];
    job->rc = media_decode(job->path, &job->pcm, &job->n, NULL, NULL, err, sizeof err);
    return NULL;
}

static void test_threads(void)
{
    enum { N_THREADS = 6 };
    char *paths[3];
    float *one[3] = {0};
    size_t n_one[3] = {0};
    struct thread_job jobs[N_THREADS];
    pthread_t tid[N_THREADS];
    char err[512];
    paths[0] = dup_str(t_shared("media", "jfk.mp3"));
    paths[1] = dup_str(t_shared("media", "jfk.flac"));
    paths[2] = dup_str(t_shared("media", "jfk.mp4"));
    for (int k = 0; k < 3; k++) CHECK(media_decode(paths[k], &one[k], &n_one[k], NULL, NULL, err, sizeof err) == 0);
    for (int i = 0; i < N_THREADS; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].path = paths[i % 3];
        CHECK(pthread_create(&tid[i], NULL, decode_thread, &jobs[i]) == 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(tid[i], NULL);
        int k = i % 3;
        CHECKF(jobs[i].rc == 0 && jobs[i].n == n_one[k] && !memcmp(jobs[i].pcm, one[k], n_one[k] * sizeof(float)),
               "thread %d (%s) differs from a lone decode", i, paths[k]);
        free(jobs[i].pcm);
    }
    for (int k = 0; k < 3; k++) free(one[k]), free(paths[k]);
}

/* ------------------------------------------------ channels and resampling */

struct sine_case {
    const char *name;
    int rate, channels;
    uint32_t mask;
    double amp[6];
    double want_amp; /* the mean of amp[], by hand */
};

static void test_channels_and_rates(void)
{
    static const struct sine_case cases[] = {
        {"mono 16 kHz", 16000, 1, 0, {0.5}, 0.5},
        {"stereo 16 kHz", 16000, 2, 0, {0.6, 0.2}, 0.4},
        {"mono 44.1 kHz", 44100, 1, 0, {0.5}, 0.5},
        {"stereo 44.1 kHz", 44100, 2, 0, {0.6, 0.2}, 0.4},
        {"stereo 48 kHz", 48000, 2, 0, {0.9, 0.9}, 0.9},
        {"5.1 48 kHz", 48000, 6, 0x3F, {0.05, 0.10, 0.15, 0.20, 0.25, 0.30}, 0.175},
        {"5.1 16 kHz", 16000, 6, 0x3F, {0.05, 0.10, 0.15, 0.20, 0.25, 0.30}, 0.175},
        {"3 ch 22.05 kHz", 22050, 3, 0, {0.3, 0.0, 0.6}, 0.3},
        {"mono 8 kHz", 8000, 1, 0, {0.5}, 0.5},
    };
    double worst_amp = 0, worst_hz = 0;
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const struct sine_case *sc = &cases[k];
        char err[512] = "";
        float *x = NULL;
        int16_t *s16 = NULL;
        size_t n = 0;
        int n_frames = sc->rate * 2; /* 2 s */
        const char *path = tmp_path("sine.wav");
        CHECK(write_sine_wav(path, sc->rate, sc->channels, sc->amp, 440.0, n_frames, sc->mask, &s16) == 0);
        int rc = media_decode(path, &x, &n, NULL, NULL, err, sizeof err);
        CHECKF(rc == 0, "%s: %s", sc->name, err);
        if (rc != 0) {
            free(s16);
            continue;
        }
        /* Skip the first and last 0.1 s (the resampler's edges). */
        size_t m0 = 1600, m1 = n > 3200 ? n - 1600 : n;
        double amp = goertzel_amp(x + m0, m1 - m0, 440.0, MEDIA_SAMPLE_RATE);
        double hz = zero_cross_hz(x + m0, m1 - m0, MEDIA_SAMPLE_RATE);
        long want_n = lround((double)n_frames * MEDIA_SAMPLE_RATE / sc->rate);
        printf("  %-16s %zu samples (want %ld), amplitude %.5f (want %.5f), %.3f Hz\n", sc->name, n, want_n, amp,
               sc->want_amp, hz);
        CHECKF(labs((long)n - want_n) <= 2, "%s: %zu samples, want %ld", sc->name, n, want_n);
        if (fabs(amp - sc->want_amp) > worst_amp) worst_amp = fabs(amp - sc->want_amp);
        if (fabs(hz - 440) > worst_hz) worst_hz = fabs(hz - 440);
        CHECKF(fabs(amp - sc->want_amp) <= 0.002, "%s: amplitude %.5f, want %.5f", sc->name, amp, sc->want_amp);
        CHECKF(fabs(hz - 440) <= 0.5, "%s: %.3f Hz", sc->name, hz);
        /* At 16 kHz no resampler runs: each sample is the float mean of the
         * channels' s16 / 32768, exactly as wav.c computes it. */
        if (sc->rate == MEDIA_SAMPLE_RATE && n == (size_t)n_frames) {
            size_t bad = 0;
            for (int i = 0; i < n_frames; i++) {
                float acc = 0;
                for (int c = 0; c < sc->channels; c++) acc += (float)s16[(size_t)i * sc->channels + c] / 32768.0f;
                if (x[i] != acc / (float)sc->channels) bad++;
            }
            CHECKF(bad == 0, "%s: %zu samples are not the exact channel mean", sc->name, bad);
        }
        free(s16);
        free(x);
    }
    printf("  worst amplitude error %.5f, worst frequency error %.3f Hz\n", worst_amp, worst_hz);
}

/* Channels in opposite phase cancel in a mean (a default downmix would too,
 * so this checks the sign); a resampled silence stays silent. */
static void test_cancelling_channels(void)
{
    static const double amp[2] = {0.5, -0.5};
    char err[512];
    float *x = NULL;
    size_t n = 0;
    const char *path = tmp_path("cancel.wav");
    CHECK(write_sine_wav(path, 44100, 2, amp, 1000.0, 44100, 0, NULL) == 0);
    CHECK(media_decode(path, &x, &n, NULL, NULL, err, sizeof err) == 0);
    double r = rms(x, n);
    printf("  opposite-phase stereo at 44.1 kHz: RMS %.2e\n", r);
    CHECKF(r < 1e-6, "RMS %.3g", r);
    free(x);
}

/* --------------------------------------------------------------- faults */

static void expect_fail(const char *path, int want, const char *what)
{
    char err[512] = "";
    struct media_info info;
    float *x = (float *)&info;
    size_t n = 99;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    int rc = media_probe(path, &info, err, sizeof err);
    CHECKF(rc == want, "%s: probe gives %d (%s), want %d", what, rc, err, want);
    CHECKF(strstr(err, base) != NULL, "%s: probe error does not name the file: %s", what, err);
    err[0] = 0;
    rc = media_decode(path, &x, &n, NULL, NULL, err, sizeof err);
    CHECKF(rc == want, "%s: decode gives %d (%s), want %d", what, rc, err, want);
    CHECKF(x == NULL && n == 0, "%s: output not cleared", what);
    CHECKF(strstr(err, base) != NULL && !strchr(err, '\n'), "%s: decode error: %s", what, err);
    printf("  %-13s %s\n", what, err);
}

static void test_not_media(void)
{
    uint8_t buf[65536];
    uint32_t s = 12345;
    const char *text = "This is a plain text file.\nIt is not audio at all.\n";
    CHECK(write_bytes(tmp_path("notes.txt"), text, strlen(text)) == 0);
    expect_fail(tmp_path("notes.txt"), HARK_EAUDIO, "text");
    CHECK(write_bytes(tmp_path("empty.mp3"), "", 0) == 0);
    expect_fail(tmp_path("empty.mp3"), HARK_EAUDIO, "empty");
    for (size_t i = 0; i < sizeof buf; i++) {
        s = s * 1664525u + 1013904223u;
        buf[i] = (uint8_t)(s >> 24);
    }
    CHECK(write_bytes(tmp_path("noise.bin"), buf, sizeof buf) == 0);
    expect_fail(tmp_path("noise.bin"), HARK_EAUDIO, "random bytes");
    expect_fail(tmp_path("no-such-file.mp4"), HARK_EIO, "missing");
    /* A WAV header and no samples: probing succeeds, decoding finds nothing. */
    {
        static const double amp[1] = {0.5};
        char err[512] = "";
        struct media_info info;
        float *x = NULL;
        size_t n = 9;
        char *path = dup_str(tmp_path("header-only.wav"));
        CHECK(write_sine_wav(path, 16000, 1, amp, 440.0, 0, 0, NULL) == 0);
        CHECKF(media_probe(path, &info, err, sizeof err) == 0, "%s", err);
        int rc = media_decode(path, &x, &n, NULL, NULL, err, sizeof err);
        CHECKF(rc == HARK_EFORMAT && x == NULL && n == 0 && strstr(err, "header-only.wav"), "rc %d: %s", rc, err);
        printf("  %-13s %s\n", "no samples", err);
        free(path);
    }
    expect_fail(t_tmpdir(), HARK_EIO, "directory");
}

/* Copies the streams of src of the types asked for into an MP4 at dst,
 * packet for packet, with libavformat (no encoder needed); faststart puts
 * the index (moov) before the media data. Returns 0 or a negative AVERROR. */
static int remux_mp4(const char *src, const char *dst, int audio, int video, int faststart)
{
    AVFormatContext *ic = NULL, *oc = NULL;
    AVPacket *pkt = av_packet_alloc();
    AVDictionary *opts = NULL;
    int map[16], ret = pkt ? 0 : AVERROR(ENOMEM), n_out = 0;
    if (ret == 0) ret = avformat_open_input(&ic, src, NULL, NULL);
    if (ret == 0) ret = avformat_find_stream_info(ic, NULL);
    if (ret >= 0) ret = avformat_alloc_output_context2(&oc, NULL, "mp4", dst);
    for (unsigned i = 0; ret >= 0 && i < ic->nb_streams && i < 16; i++) {
        enum AVMediaType type = ic->streams[i]->codecpar->codec_type;
        map[i] = -1;
        if (!((type == AVMEDIA_TYPE_AUDIO && audio) || (type == AVMEDIA_TYPE_VIDEO && video))) continue;
        AVStream *os = avformat_new_stream(oc, NULL);
        ret = os ? avcodec_parameters_copy(os->codecpar, ic->streams[i]->codecpar) : AVERROR(ENOMEM);
        if (ret < 0) break;
        os->codecpar->codec_tag = 0;
        os->time_base = ic->streams[i]->time_base;
        map[i] = n_out++;
    }
    if (ret >= 0) ret = avio_open(&oc->pb, dst, AVIO_FLAG_WRITE);
    if (ret >= 0 && faststart) ret = av_dict_set(&opts, "movflags", "faststart", 0);
    if (ret >= 0) ret = avformat_write_header(oc, &opts);
    while (ret >= 0) {
        if (av_read_frame(ic, pkt) < 0) break;
        if (pkt->stream_index < 16 && map[pkt->stream_index] >= 0) {
            AVStream *is = ic->streams[pkt->stream_index];
            pkt->stream_index = map[pkt->stream_index];
            av_packet_rescale_ts(pkt, is->time_base, oc->streams[pkt->stream_index]->time_base);
            pkt->pos = -1;
            ret = av_interleaved_write_frame(oc, pkt);
        }
        av_packet_unref(pkt);
    }
    if (ret >= 0) ret = av_write_trailer(oc);
    if (oc) avio_closep(&oc->pb);
    av_dict_free(&opts);
    avformat_free_context(oc);
    avformat_close_input(&ic);
    av_packet_free(&pkt);
    return ret < 0 ? ret : 0;
}

/* Writes a NUT file of n_streams mono 8 kHz PCM streams, one packet each,
 * with libavformat (no encoder needed). Returns 0 or an AVERROR. */
static int write_streams(const char *path, int n_streams)
{
    AVFormatContext *oc = NULL;
    AVPacket *pkt = av_packet_alloc();
    int ret = pkt ? avformat_alloc_output_context2(&oc, NULL, "nut", path) : AVERROR(ENOMEM);
    for (int i = 0; ret >= 0 && i < n_streams; i++) {
        AVStream *st = avformat_new_stream(oc, NULL);
        if (!st) {
            ret = AVERROR(ENOMEM);
            break;
        }
        st->codecpar->codec_type = AVMEDIA_TYPE_AUDIO;
        st->codecpar->codec_id = AV_CODEC_ID_PCM_S16LE;
        st->codecpar->sample_rate = 8000;
        av_channel_layout_default(&st->codecpar->ch_layout, 1);
        st->time_base = (AVRational){1, 8000};
    }
    if (ret >= 0) ret = avio_open(&oc->pb, path, AVIO_FLAG_WRITE);
    if (ret >= 0) ret = avformat_write_header(oc, NULL);
    for (int i = 0; ret >= 0 && i < n_streams; i++) {
        ret = av_new_packet(pkt, 16);
        if (ret < 0) break;
        memset(pkt->data, 0, 16);
        pkt->stream_index = i;
        pkt->pts = pkt->dts = 0;
        ret = av_interleaved_write_frame(oc, pkt);
    }
    if (ret >= 0) ret = av_write_trailer(oc);
    if (oc) avio_closep(&oc->pb);
    avformat_free_context(oc);
    av_packet_free(&pkt);
    return ret < 0 ? ret : 0;
}

/* Files that state what no real recording has are refused before any
 * decoding (media.h's limits): 101 streams (which FFmpeg's demuxers report
 * as ENOMEM, not to be taken for memory running out), 100 channels, 1 MHz,
 * and a FLAC stream whose STREAMINFO states 2^36 - 1 samples at 8 kHz
 * (about 2,386 hours). */
static void test_absurd_headers(void)
{
    static const uint8_t flac[42] = {
        'f', 'L', 'a', 'C', 0x80, 0, 0, 34, /* the last metadata block: STREAMINFO, 34 bytes */
        0x10, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, /* block sizes 4096, frame sizes unknown */
        /* 8000 Hz (20 bits), 1 channel (3 bits: 0), 16 bits (5 bits: 15), 2^36 - 1 samples (36 bits) */
        0x01, 0xF4, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    double amp[100];
    for (int c = 0; c < 100; c++) amp[c] = 0.005;
    CHECK(write_sine_wav(tmp_path("channels.wav"), 16000, 100, amp, 440.0, 64, 0, NULL) == 0);
    expect_fail(tmp_path("channels.wav"), HARK_EFORMAT, "100 channels");
    CHECK(write_sine_wav(tmp_path("rate.wav"), 1000000, 1, amp, 440.0, 64, 0, NULL) == 0);
    expect_fail(tmp_path("rate.wav"), HARK_EFORMAT, "1 MHz");
    CHECK(write_bytes(tmp_path("hours.flac"), flac, sizeof flac) == 0);
    expect_fail(tmp_path("hours.flac"), HARK_EFORMAT, "2,386 hours");
    CHECK(write_streams(tmp_path("streams.nut"), MEDIA_MAX_STREAMS + 1) == 0);
    expect_fail(tmp_path("streams.nut"), HARK_EFORMAT, "101 streams");
}

static void test_no_audio_stream(void)
{
    char err[512] = "";
    struct media_info info;
    const char *dst = tmp_path("video-only.mp4");
    char *path = dup_str(dst);
    int ret = remux_mp4(t_shared("media", "jfk.mp4"), path, 0, 1, 0);
    CHECKF(ret == 0, "could not write a video-only MP4 (AVERROR %d)", ret);
    if (ret == 0) {
        expect_fail(path, HARK_EAUDIO, "video only");
        media_probe(path, &info, err, sizeof err);
        CHECKF(strstr(err, "no audio stream") != NULL, "message: %s", err);
    }
    free(path);
}

/* Decodes path (a cut or damaged copy of the real file whose decode gave
 * n_full samples); the outcome must be a clean code or from n_min to about
 * the full length of samples in [-1, 1]. Counts outcomes in counts[0] (decoded), [1]
 * (EAUDIO), [2] (EFORMAT). */
static void damaged_outcome(const char *path, const char *what, size_t n_full, size_t n_min, int counts[3])
{
    char err[512] = "";
    float *x = NULL;
    size_t n = 0;
    struct media_info info;
    int prc = media_probe(path, &info, err, sizeof err);
    CHECKF(prc == 0 || prc == HARK_EAUDIO, "%s: probe gives %d: %s", what, prc, err);
    err[0] = 0;
    int rc = media_decode(path, &x, &n, NULL, NULL, err, sizeof err);
    if (rc == 0) {
        counts[0]++;
        CHECKF(n > 0 && n <= n_full + 2048, "%s: %zu samples from a damaged file (full: %zu)", what, n, n_full);
        CHECKF(n >= n_min, "%s: only %zu samples, want at least %zu", what, n, n_min);
        CHECKF(all_finite(x, n, 1.0f), "%s: samples not finite or out of [-1, 1]", what);
    } else {
        counts[rc == HARK_EAUDIO ? 1 : 2]++;
        CHECKF(rc == HARK_EAUDIO || rc == HARK_EFORMAT, "%s: rc %d: %s", what, rc, err);
        CHECKF(err[0] && strstr(err, "cut") != NULL, "%s: error does not name the file: %s", what, err);
        CHECKF(x == NULL && n == 0, "%s: output not cleared", what);
    }
    free(x);
}

/* jfk.mp4 keeps its index (moov) at the end, so every cut of it loses the
 * index and cannot be opened; a copy with the index first (written here)
 * shows cuts that decode what is left. */
static void test_truncated(void)
{
    char *names[4];
    names[0] = dup_str(t_shared("media", "jfk.mp4"));
    names[1] = dup_str(t_shared("media", "jfk.mp3"));
    names[2] = dup_str(t_shared("media", "jfk.flac"));
    names[3] = dup_str(tmp_path("faststart.mp4"));
    int ret = remux_mp4(names[0], names[3], 1, 1, 1);
    CHECKF(ret == 0, "could not write a faststart MP4 (AVERROR %d)", ret);
    for (int k = 0; k < (ret == 0 ? 4 : 3); k++) {
        char err[512] = "", what[64];
        size_t len = 0, n_full = 0;
        float *full = NULL;
        const char *base = strrchr(names[k], '/') + 1;
        uint8_t *data = t_read_file(names[k], &len);
        CHECK(data != NULL);
        if (!data) continue;
        CHECK(media_decode(names[k], &full, &n_full, NULL, NULL, err, sizeof err) == 0);
        free(full);
        int counts[3] = {0, 0, 0};
        /* 40 evenly spaced cuts plus 12 inside the first 4 KiB (the header). */
        static const size_t small[] = {0, 1, 4, 8, 12, 16, 32, 100, 200, 500, 1000, 4000};
        for (int c = 0; c < 52; c++) {
            size_t cut = c < 40 ? len * (size_t)c / 40 : small[c - 40];
            const char *ext = strrchr(base, '.');
            snprintf(what, sizeof what, "cut%d%s", c, ext);
            char *path = dup_str(tmp_path(what));
            CHECK(write_bytes(path, data, cut) == 0);
            snprintf(what, sizeof what, "%s cut at %zu", base, cut);
            /* What lies before the cut decodes, give or take 10% of the whole. */
            double kept = (double)cut / (double)len - 0.1;
            damaged_outcome(path, what, n_full, kept > 0 ? (size_t)(kept * (double)n_full) : 0, counts);
            remove(path);
            free(path);
        }
        printf("  %-13s 52 cuts: %d decoded, %d HARK_EAUDIO, %d HARK_EFORMAT\n", base, counts[0], counts[1],
               counts[2]);
        if (k == 3) CHECKF(counts[0] >= 30, "only %d cuts of the faststart MP4 decoded", counts[0]);
        free(data);
    }
    for (int k = 0; k < 4; k++) free(names[k]);
}

static void test_corrupt(void)
{
    static const char *names[] = {"jfk.mp4", "jfk.mp3", "jfk.flac"};
    uint32_t s = 777;
    for (int k = 0; k < 3; k++) {
        char err[512] = "", what[64];
        size_t len = 0, n_full = 0;
        float *full = NULL;
        uint8_t *data = t_read_file(t_shared("media", names[k]), &len);
        CHECK(data != NULL);
        if (!data) continue;
        CHECK(media_decode(t_shared("media", names[k]), &full, &n_full, NULL, NULL, err, sizeof err) == 0);
        free(full);
        int counts[3] = {0, 0, 0};
        for (int v = 0; v < 12; v++) {
            uint8_t *copy = malloc(len);
            memcpy(copy, data, len);
            /* v < 6: 64 scattered bytes in the middle; else a 2 KiB run. */
            if (v < 6) {
                for (int b = 0; b < 64; b++) {
                    s = s * 1664525u + 1013904223u;
                    size_t at = len / 4 + (size_t)(s >> 8) % (len / 2);
                    copy[at] ^= (uint8_t)(1 + (s & 0xfe));
                }
            } else {
                s = s * 1664525u + 1013904223u;
                size_t at = len / 4 + (size_t)(s >> 8) % (len / 2 - 2048);
                for (int b = 0; b < 2048; b++) copy[at + b] = (uint8_t)(s >> (b & 15));
            }
            const char *ext = strrchr(names[k], '.');
            snprintf(what, sizeof what, "cut-corrupt%d%s", v, ext);
            char *path = dup_str(tmp_path(what));
            CHECK(write_bytes(path, copy, len) == 0);
            snprintf(what, sizeof what, "%s corrupted (%d)", names[k], v);
            damaged_outcome(path, what, n_full + 16000, 0, counts);
            remove(path);
            free(path);
            free(copy);
        }
        printf("  %-8s 12 corruptions: %d decoded, %d HARK_EAUDIO, %d HARK_EFORMAT\n", names[k], counts[0],
               counts[1], counts[2]);
        free(data);
    }
}

struct progress_log {
    int calls, stop_after;
    float first, last, prev;
    int monotonic;
};

static int progress_cb(void *user, float fraction)
{
    struct progress_log *p = user;
    if (p->calls == 0) p->first = fraction;
    if (fraction < p->prev) p->monotonic = 0;
    p->prev = p->last = fraction;
    p->calls++;
    return p->stop_after > 0 && p->calls >= p->stop_after;
}

static void test_progress_and_cancel(void)
{
    static const char *names[] = {"jfk.mp4", "jfk.flac"};
    for (int k = 0; k < 2; k++) {
        char err[512] = "";
        float *x = NULL;
        size_t n = 0;
        struct progress_log p = {0, 0, -1, -1, 0, 1};
        CHECK(media_decode(t_shared("media", names[k]), &x, &n, progress_cb, &p, err, sizeof err) == 0);
        printf("  %s: %d progress calls, first %.3f, last %.3f\n", names[k], p.calls, p.first, p.last);
        CHECKF(p.calls >= 10 && p.calls <= 103, "%s: %d progress calls", names[k], p.calls);
        CHECK(p.first == 0.0f && p.last == 1.0f && p.monotonic);
        free(x);
        x = NULL;
        n = 0;
        struct progress_log stop = {0, 3, -1, -1, 0, 1};
        int rc = media_decode(t_shared("media", names[k]), &x, &n, progress_cb, &stop, err, sizeof err);
        CHECKF(rc == HARK_ECANCELED, "%s: rc %d after cancel", names[k], rc);
        CHECK(x == NULL && n == 0 && stop.calls == 3);
        CHECKF(strstr(err, names[k]) && strstr(err, "cancel"), "message: %s", err);
    }
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    /* The remuxing helpers here call FFmpeg before media.c has silenced it. */
    av_log_set_level(AV_LOG_QUIET);
    t_run("probe_jfk", test_probe_jfk);
    t_run("probe_other", test_probe_other);
    t_run("wav_bit_exact", test_wav_bit_exact);
    t_run("decode_jfk_variants", test_decode_jfk_variants);
    t_run("decode_other", test_decode_other);
    t_run("threads", test_threads);
    t_run("channels_and_rates", test_channels_and_rates);
    t_run("cancelling_channels", test_cancelling_channels);
    t_run("not_media", test_not_media);
    t_run("absurd_headers", test_absurd_headers);
    t_run("no_audio_stream", test_no_audio_stream);
    t_run("truncated", test_truncated);
    t_run("corrupt", test_corrupt);
    t_run("progress_and_cancel", test_progress_and_cancel);
    return t_summary();
}
