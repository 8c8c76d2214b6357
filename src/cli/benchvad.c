/*
 * benchvad.c: `hark bench vad`, the speed figures of speech detection.
 *
 * 1. Frame probabilities over an hour of real recordings (the given WAV
 *    files repeated until they last an hour), as seconds per hour of audio
 *    at each thread count, and over jfk.wav alone, beside whisper.cpp
 *    1.9.3's figures for the same work (measured on this machine class:
 *    whisper_vad_detect_speech with the same model, one thread).
 * 2. What speech detection saves: the transcription of a file with long
 *    silences (speech_gaps_71s.wav: 25 s of speech in 71 s) with a Whisper
 *    model, greedy without fallback, with detection on and off.
 * Every figure is the median of several runs.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "cli.h"
#include "hark.h"
#include "timing.h"

#define MAX_RUNS 20
#define HOUR_SAMPLES (3600 * 16000)

/* whisper.cpp 1.9.3 (Release, native), whisper_vad_detect_speech's own
 * timing, 1 thread (its fastest; 2 threads take longer), medians of 3 runs
 * on a 2-core Zen 5: jfk.wav, and an hour made of jfk, hifitts_concat_75s
 * and speech_gaps_71s repeated, as here. */
#define WCPP_JFK_MS 27.6
#define WCPP_HOUR_S 10.3

void cli_bench_vad_help(FILE *out)
{
    fputs("usage: hark bench vad --vad-model PATH -a FILE... [-m MODEL] [--gaps FILE] [options]\n"
          "\n"
          "Times speech detection: frame probabilities over an hour made of the WAV\n"
          "files given with -a (repeated), and over the first of them alone, beside\n"
          "whisper.cpp 1.9.3's figures; with -m, the transcription of --gaps (a file with\n"
          "long silences) with detection on and off.\n"
          "\n"
          "options:\n"
          "  -t, --threads LIST      thread counts, comma-separated (default: 1,2)\n"
          "  -r, --runs N            runs per figure (default: 5)\n"
          "  -h, --help              this help\n",
          out);
}

static double time_probs(const hark_vad *vad, const float *pcm, size_t n, int threads, int runs, int *done)
{
    double t[MAX_RUNS];
    char err[256];
    int k = 0;
    for (; k < runs && k < MAX_RUNS; k++) {
        float *p = NULL;
        size_t np = 0;
        double t0 = timing_now_ms();
        if (hark_vad_probs(vad, pcm, n, threads, &p, &np, err, sizeof err) != 0) {
            cli_error("%s", err);
            return -1;
        }
        t[k] = timing_now_ms() - t0;
        free(p);
    }
    *done = k;
    return bench_median(t, k);
}

static double time_transcribe(hark_state *st, const float *pcm, size_t n, const hark_vad *vad, int runs,
                              int *segments)
{
    double t[MAX_RUNS];
    char err[256];
    int k = 0;
    for (; k < runs && k < MAX_RUNS; k++) {
        struct hark_options o;
        hark_result *r = NULL;
        hark_options_init(&o);
        o.beam_size = 1;
        o.no_fallback = 1;
        o.vad = vad;
        double t0 = timing_now_ms();
        if (hark_transcribe(st, pcm, n, &o, &r, err, sizeof err) != 0) {
            cli_error("%s", err);
            return -1;
        }
        t[k] = timing_now_ms() - t0;
        *segments = hark_result_n_segments(r);
        hark_result_free(r);
    }
    return bench_median(t, k);
}

int cli_bench_vad(int argc, char **argv)
{
    static const struct option opts[] = {
        {"vad-model", required_argument, 0, 'V'}, {"model", required_argument, 0, 'm'},
        {"audio", required_argument, 0, 'a'},     {"gaps", required_argument, 0, 'g'},
        {"threads", required_argument, 0, 't'},   {"runs", required_argument, 0, 'r'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0},
    };
    const char *vad_path = NULL, *model_path = NULL, *gaps = NULL, *audio[8];
    char threads_arg[64] = "1,2", err[512];
    int n_audio = 0, runs = 5, c, status = CLI_EXIT_FAIL;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:a:t:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 'V': vad_path = optarg; break;
        case 'm': model_path = optarg; break;
        case 'g': gaps = optarg; break;
        case 'a':
            if (n_audio == 8) {
                cli_error("at most 8 audio files");
                return CLI_EXIT_USAGE;
            }
            audio[n_audio++] = optarg;
            break;
        case 't': snprintf(threads_arg, sizeof threads_arg, "%s", optarg); break;
        case 'r':
            if (cli_parse_int(optarg, 1, MAX_RUNS, &runs)) {
                cli_error("--runs wants a whole number from 1 to %d", MAX_RUNS);
                return CLI_EXIT_USAGE;
            }
            break;
        case 'h': cli_bench_vad_help(stdout); return CLI_EXIT_OK;
        default:
            cli_error("unknown option or missing value '%s' (see `hark bench vad --help`)", cli_bad_option(argc, argv));
            return CLI_EXIT_USAGE;
        }
    }
    if (!vad_path || n_audio == 0) {
        cli_error("bench vad needs --vad-model and at least one -a FILE");
        return CLI_EXIT_USAGE;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int code = 0;
    hark_vad *vad = hark_vad_load(vad_path, &code, err, sizeof err);
    float *hour = NULL, *pcm[8] = {0};
    size_t n_pcm[8] = {0};
    hark_model *model = NULL;
    hark_state *st = NULL;
    if (!vad) {
        cli_error("%s", err);
        return CLI_EXIT_FAIL;
    }
    size_t total = 0;
    for (int i = 0; i < n_audio; i++) {
        if (timing_wav_read(audio[i], &pcm[i], &n_pcm[i], err, sizeof err) != 0) {
            cli_error("%s", err);
            goto done;
        }
        total += n_pcm[i];
    }
    hour = malloc(sizeof(float) * HOUR_SAMPLES);
    if (!hour || total == 0) {
        cli_error("out of memory, or no audio");
        goto done;
    }
    for (size_t at = 0, i = 0; at < HOUR_SAMPLES; i = (i + 1) % (size_t)n_audio) {
        size_t k = n_pcm[i] < HOUR_SAMPLES - at ? n_pcm[i] : HOUR_SAMPLES - at;
        memcpy(hour + at, pcm[i], k * sizeof(float));
        at += k;
    }
    printf("speech detection (%s), frame probabilities, medians of %d runs:\n", hark_vad_name(vad), runs);
    char *save = NULL;
    for (char *tok = strtok_r(threads_arg, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int th, done = 0;
        if (cli_parse_int(tok, 1, 64, &th)) {
            cli_error("bad thread count '%s'", tok);
            goto done;
        }
        double ms = time_probs(vad, hour, HOUR_SAMPLES, th, runs, &done);
        double jfk = time_probs(vad, pcm[0], n_pcm[0], th, runs, &done);
        if (ms < 0 || jfk < 0) goto done;
        printf("  %d thread%s: %6.2f s per hour of audio (whisper.cpp, 1 thread: %.1f s; ratio %.2f)   "
               "%s: %.1f ms (whisper.cpp: %.1f ms; ratio %.2f)\n",
               th, th == 1 ? " " : "s", ms / 1000.0, WCPP_HOUR_S, ms / 1000.0 / WCPP_HOUR_S, audio[0], jfk,
               WCPP_JFK_MS, jfk / WCPP_JFK_MS);
    }
    if (model_path && gaps) {
        float *g = NULL;
        size_t ng = 0;
        model = hark_model_load(model_path, &code, err, sizeof err);
        st = model ? hark_state_new(model, 2, err, sizeof err) : NULL;
        if (!st || timing_wav_read(gaps, &g, &ng, err, sizeof err) != 0) {
            cli_error("%s", err);
            free(g);
            goto done;
        }
        int seg_on = 0, seg_off = 0, tr = runs < 3 ? runs : 3;
        double off = time_transcribe(st, g, ng, NULL, tr, &seg_off);
        double on = time_transcribe(st, g, ng, vad, tr, &seg_on);
        free(g);
        if (on < 0 || off < 0) goto done;
        printf("transcription of %s (%.0f s) with %s, greedy, 2 threads, medians of %d runs:\n", gaps,
               (double)ng / 16000, model_path, tr);
        printf("  without speech detection %8.0f ms (%d segments)\n", off, seg_off);
        printf("  with speech detection    %8.0f ms (%d segments): %.0f ms saved (%.0f%%)\n", on, seg_on, off - on,
               100.0 * (off - on) / off);
    }
    status = CLI_EXIT_OK;
done:
    for (int i = 0; i < n_audio; i++) free(pcm[i]);
    free(hour);
    hark_state_free(st);
    hark_model_free(model);
    hark_vad_free(vad);
    return status;
}
