/*
 * bench.c: `hark bench`, the speed figures of one model.
 *
 * Stages are timed through the engine's timing calls (src/engine/timing.h),
 * so each figure is the stage alone: the model load, the log-mel of 30 s of audio, one encoder
 * window, and decoder steps at batch 1 and at batch 5 (five sequence slots
 * stepped together, as beam search does). Before the stages of each thread
 * count it measures the machine's ceilings (benchhw.c), and prints the
 * encoder's rate against the GEMM its products run on and the decoder's
 * bytes read per token against the read bandwidth. Whole transcriptions of the given
 * audio files go through the public API (hark_transcribe), greedy and with
 * beam 5, and report wall time, the real-time factor (wall / audio length)
 * and tokens per second; greedy again with word timestamps, in both decoding
 * profiles, adds the share of the time that aligning the words took. Every
 * figure is the median of several runs, at each requested thread count. The
 * models benchmarked here have random weights, so the number of tokens a transcription produces is whatever the model
 * emits; transcriptions run without temperature fallback so that each run
 * does the same work.
 *
 * whisper.cpp 1.9.3's figures (2 threads, flash attention on, measured on
 * this machine class with the released .en models) are printed beside ours
 * for the shapes they exist for, with the ratio ours / theirs on the
 * 2-thread rows. Repeats of a measurement stop early once they have taken
 * more than the time budget (--budget), so large models finish in bounded
 * time; the run count used is printed with each figure.
 */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"
#include "cli.h"
#include "hark.h"
#include "timing.h"

#define BENCH_MAX_RUNS 50
#define BENCH_MAX_THREADS 8
#define BENCH_MAX_AUDIO 4
#define BENCH_BATCH 5
#define WINDOW_SAMPLES 480000 /* 30 s at 16 kHz */

/* whisper.cpp 1.9.3 on 2 threads with flash attention: encoder ms per 30 s
 * window and decoder ms per token at batch 1, by shape. */
static const struct {
    int n_state, n_audio_layer;
    const char *name;
    double enc_ms, dec_ms;
} whisper_cpp[] = {
    {384, 4, "tiny.en", 556, 2.54},
    {512, 6, "base.en", 1115, 4.73},
    {768, 12, "small.en", 4252, 12.5},
    {1280, 32, "large-v3", 24613, 55.0},
};

struct bench_opts {
    const char *model;
    int threads[BENCH_MAX_THREADS];
    int n_threads;
    int runs, transcribe_runs;
    double budget_ms;
    int n_tokens;              /* decoder steps timed per run */
    const char *audio[BENCH_MAX_AUDIO];
    int n_audio;
    int beam;                  /* 1: also time beam 5 */
    int words;                 /* 1: also time greedy with word timestamps */
    const char *label;
};

void cli_bench_help(FILE *out)
{
    fputs("usage: hark bench -m MODEL [options]\n"
          "\n"
          "Times one model: load, log-mel of 30 s, encoder per window, decoder per token\n"
          "(batch 1 and 5), and whole transcriptions of the given WAV files (greedy, beam 5,\n"
          "and greedy with word timestamps, with the share of the time aligning words\n"
          "takes), as medians of several runs, at each thread count. Prints the machine's\n"
          "read bandwidth and GEMM rates, the encoder's share of them and the decoder's\n"
          "bytes per token, and whisper.cpp 1.9.3's figures beside ours where the model\n"
          "has a released shape.\n"
          "\n"
          "options:\n"
          "  -m, --model PATH        ggml Whisper model\n"
          "  -t, --threads LIST      thread counts, comma-separated (default: 1,2)\n"
          "  -r, --runs N            runs per stage figure (default: 5)\n"
          "      --transcribe-runs N runs per transcription figure (default: --runs)\n"
          "      --budget S          stop repeating a figure after S seconds (default: 60)\n"
          "      --tokens N          decoder steps timed per run (default: 64)\n"
          "  -a, --audio FILE        a 16 kHz WAV file to transcribe (repeatable, up to 4)\n"
          "      --no-beam           skip the beam-5 transcriptions\n"
          "      --no-words          skip the transcriptions with word timestamps\n"
          "      --label NAME        the name printed for the model (default: its file)\n"
          "  -h, --help              this help\n"
          "\n"
          "hark bench vad ... times speech detection (see `hark bench vad --help`).\n",
          out);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* How many more runs: up to `runs`, at least one, and none once the runs
 * so far have spent the budget. */
static int keep_going(const struct bench_opts *o, int done, int runs, double spent_ms)
{
    if (done >= runs || done >= BENCH_MAX_RUNS) return 0;
    return done == 0 || spent_ms < o->budget_ms;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_maxrss / 1024.0; /* kilobytes on Linux */
}

static int parse_threads(const char *s, struct bench_opts *o)
{
    char buf[128], *save = NULL, *tok;
    snprintf(buf, sizeof buf, "%s", s);
    o->n_threads = 0;
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int t;
        if (o->n_threads == BENCH_MAX_THREADS || cli_parse_int(tok, 1, 256, &t)) return -1;
        o->threads[o->n_threads++] = t;
    }
    return o->n_threads ? 0 : -1;
}

static int parse_args(int argc, char **argv, struct bench_opts *o)
{
    enum { OPT_TRUNS = 256, OPT_BUDGET, OPT_TOKENS, OPT_NOBEAM, OPT_NOWORDS, OPT_LABEL };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},  {"threads", required_argument, NULL, 't'},
        {"runs", required_argument, NULL, 'r'},   {"transcribe-runs", required_argument, NULL, OPT_TRUNS},
        {"budget", required_argument, NULL, OPT_BUDGET}, {"tokens", required_argument, NULL, OPT_TOKENS},
        {"audio", required_argument, NULL, 'a'},  {"no-beam", no_argument, NULL, OPT_NOBEAM},
        {"no-words", no_argument, NULL, OPT_NOWORDS}, {"label", required_argument, NULL, OPT_LABEL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, v;

    memset(o, 0, sizeof *o);
    o->threads[0] = 1;
    o->threads[1] = 2;
    o->n_threads = 2;
    o->runs = 5;
    o->transcribe_runs = -1;
    o->budget_ms = 60e3;
    o->n_tokens = 64;
    o->beam = 1;
    o->words = 1;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:t:r:a:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 't':
            if (parse_threads(optarg, o)) {
                cli_error("bad --threads '%s' (a comma-separated list of counts)", optarg);
                return CLI_EXIT_USAGE;
            }
            break;
        case 'r':
        case OPT_TRUNS:
            if (cli_parse_int(optarg, 1, BENCH_MAX_RUNS, &v)) {
                cli_error("bad run count '%s' (1..%d)", optarg, BENCH_MAX_RUNS);
                return CLI_EXIT_USAGE;
            }
            if (c == 'r') o->runs = v;
            else o->transcribe_runs = v;
            break;
        case OPT_BUDGET:
            if (cli_parse_int(optarg, 1, 100000, &v)) {
                cli_error("bad --budget '%s' (seconds)", optarg);
                return CLI_EXIT_USAGE;
            }
            o->budget_ms = v * 1e3;
            break;
        case OPT_TOKENS:
            if (cli_parse_int(optarg, 1, 400, &v)) {
                cli_error("bad --tokens '%s' (1..400)", optarg);
                return CLI_EXIT_USAGE;
            }
            o->n_tokens = v;
            break;
        case 'a':
            if (o->n_audio == BENCH_MAX_AUDIO) {
                cli_error("at most %d --audio files", BENCH_MAX_AUDIO);
                return CLI_EXIT_USAGE;
            }
            o->audio[o->n_audio++] = optarg;
            break;
        case OPT_NOBEAM: o->beam = 0; break;
        case OPT_NOWORDS: o->words = 0; break;
        case OPT_LABEL: o->label = optarg; break;
        case 'h': cli_bench_help(stdout); return -1;
        case ':':
            cli_error("option '%s' needs a value", cli_bad_option(argc, argv));
            return CLI_EXIT_USAGE;
        default:
            cli_error("unknown option '%s' (see `hark bench --help`)", cli_bad_option(argc, argv));
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("unexpected argument '%s'", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    if (!o->model) {
        cli_error("no model (-m PATH)");
        return CLI_EXIT_USAGE;
    }
    if (o->transcribe_runs < 0) o->transcribe_runs = o->runs;
    if (!o->label) o->label = o->model;
    return 0;
}

/* 30 s of deterministic test signal: a few tones and low-level noise. The
 * mel's cost does not depend on the content. */
static void synth_audio(float *pcm, size_t n)
{
    uint32_t r = 12345;
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / TIMING_SAMPLE_RATE;
        r = r * 1664525u + 1013904223u;
        pcm[i] = (float)(0.1 * sin(2 * M_PI * 220 * t) + 0.05 * sin(2 * M_PI * 1375 * t) +
                         0.01 * ((double)(r >> 8) / 16777216.0 - 0.5));
    }
}

/* The figure's whisper.cpp row for this model's shape, or -1. */
static int whisper_cpp_row(const struct hark_hparams *hp)
{
    for (size_t i = 0; i < sizeof whisper_cpp / sizeof whisper_cpp[0]; i++)
        if (hp->n_audio_state == whisper_cpp[i].n_state && hp->n_audio_layer == whisper_cpp[i].n_audio_layer &&
            hp->n_text_layer == whisper_cpp[i].n_audio_layer)
            return (int)i;
    return -1;
}

static void print_figure(const char *what, double ms, int n_runs, double ref_ms, int threads)
{
    printf("  %-28s %10.2f ms   (median of %d)", what, ms, n_runs);
    if (ref_ms > 0 && threads == 2) printf("   whisper.cpp %9.2f ms   ratio %.2f", ref_ms, ms / ref_ms);
    printf("\n");
}

/* Times the stages at one thread count. */
static int bench_stages(const struct bench_opts *o, const hark_model *model, hark_state *st, int threads,
                        const float *pcm30, int ref, const struct bench_machine *hw)
{
    const struct hark_hparams *hp = hark_model_hparams(model);
    double t[BENCH_MAX_RUNS], spent, t0;
    float *mel = NULL, *logits = NULL;
    int n_frames = 0, n, rc, ret = CLI_EXIT_FAIL;
    int32_t prompt[4], toks[BENCH_BATCH];
    int seqs[BENCH_BATCH], n_prompt = timing_prompt(model, prompt);
    double ref_enc = ref >= 0 ? whisper_cpp[ref].enc_ms : 0, ref_dec = ref >= 0 ? whisper_cpp[ref].dec_ms : 0;

    logits = malloc(sizeof(float) * (size_t)hp->n_vocab * BENCH_BATCH);
    if (!logits) {
        cli_error("out of memory");
        goto done;
    }
    for (n = 0, spent = 0; keep_going(o, n, o->runs, spent); n++) {
        free(mel);
        mel = NULL;
        t0 = timing_now_ms();
        rc = timing_mel(model, pcm30, WINDOW_SAMPLES, threads, &mel, &n_frames);
        t[n] = timing_now_ms() - t0;
        spent += t[n];
        if (rc) {
            cli_error("mel: %s", hark_strerror(rc));
            goto done;
        }
    }
    print_figure("mel (30 s of audio)", bench_median(t, n), n, 0, threads);

    for (n = 0, spent = 0; keep_going(o, n, o->runs, spent); n++) {
        t0 = timing_now_ms();
        rc = timing_encode(st, mel, n_frames);
        t[n] = timing_now_ms() - t0;
        spent += t[n];
        if (rc) {
            cli_error("encoder: %s", hark_strerror(rc));
            goto done;
        }
    }
    double enc_ms = bench_median(t, n);
    print_figure("encoder / 30 s window", enc_ms, n, ref_enc, threads);
    {
        /* Against the GEMM the encoder's products run on: int8 for block
         * types, f32 otherwise. */
        int quant = timing_encoder_quantized(model);
        double rate = timing_encoder_flops(model) / (enc_ms * 1e6), ceil = quant ? hw->i8_gemm : hw->f32_gemm;
        printf("  %-28s %10.1f G%sOP/s   (%.0f%% of the %s GEMM above)\n", "  = encoder rate", rate,
               quant ? "" : "FL", ceil > 0 ? 100.0 * rate / ceil : 0.0, quant ? "q8_0" : "f32");
    }

    rc = timing_dec_reserve(st, BENCH_BATCH);
    if (rc) {
        cli_error("decoder caches: %s", hark_strerror(rc));
        goto done;
    }
    for (int i = 0; i < BENCH_BATCH; i++) seqs[i] = i;
    /* Batch 1: slot 0 after the prompt, n_tokens single steps. */
    for (n = 0, spent = 0; keep_going(o, n, o->runs, spent); n++) {
        rc = timing_dec_prompt(st, 0, prompt, n_prompt, logits);
        t0 = timing_now_ms();
        for (int i = 0; !rc && i < o->n_tokens; i++) {
            toks[0] = 440 + (i * 7919) % 40000;
            rc = timing_dec_step(st, 1, seqs, toks, n_prompt + i, logits);
        }
        t[n] = (timing_now_ms() - t0) / o->n_tokens;
        spent += t[n] * o->n_tokens;
        if (rc) {
            cli_error("decoder: %s", hark_strerror(rc));
            goto done;
        }
    }
    double dec_ms = bench_median(t, n);
    print_figure("decoder / token, batch 1", dec_ms, n, ref_dec, threads);
    {
        double bytes = timing_decoder_bytes(model, n_prompt + o->n_tokens / 2), gbs = bytes / (dec_ms * 1e6);
        printf("  %-28s %10.1f MB/token   %.1f GB/s   (%.0f%% of the read bandwidth above)\n",
               "  = bytes read", bytes / 1e6, gbs, hw->read_gbs > 0 ? 100.0 * gbs / hw->read_gbs : 0.0);
    }

    /* Batch 5: every slot after the prompt, n_tokens steps of all five. */
    for (n = 0, spent = 0; keep_going(o, n, o->runs, spent); n++) {
        rc = 0;
        for (int s = 0; !rc && s < BENCH_BATCH; s++) rc = timing_dec_prompt(st, s, prompt, n_prompt, logits);
        t0 = timing_now_ms();
        for (int i = 0; !rc && i < o->n_tokens; i++) {
            for (int s = 0; s < BENCH_BATCH; s++) toks[s] = 440 + (i * 7919 + s * 104729) % 40000;
            rc = timing_dec_step(st, BENCH_BATCH, seqs, toks, n_prompt + i, logits);
        }
        t[n] = (timing_now_ms() - t0) / o->n_tokens;
        spent += t[n] * o->n_tokens;
        if (rc) {
            cli_error("decoder: %s", hark_strerror(rc));
            goto done;
        }
    }
    double step = bench_median(t, n);
    print_figure("decoder / step, batch 5", step, n, 0, threads);
    printf("  %-28s %10.2f ms\n", "  = per token at batch 5", step / BENCH_BATCH);
    ret = CLI_EXIT_OK;
done:
    free(mel);
    free(logits);
    return ret;
}

static int count_tokens(const hark_result *r)
{
    int n = 0;
    for (int i = 0; i < hark_result_n_segments(r); i++) n += hark_result_segment(r, i)->n_tokens;
    return n;
}

/* Times whole transcriptions of one file at one thread count. */
static int bench_transcribe(const struct bench_opts *o, hark_state *st, int threads, const char *name,
                            const float *pcm, size_t n_samples)
{
    double t[BENCH_MAX_RUNS], spent;
    double audio_s = (double)n_samples / TIMING_SAMPLE_RATE;
    char err[512];

    /* Greedy, beam 5, then greedy with word timestamps in each decoding
     * profile, where the share of the time spent aligning words is the
     * state's own count of it. */
    static const struct {
        int beam, words, profile;
        const char *what;
    } rows[] = {
        {1, 0, HARK_DECODER_OPENAI, "greedy"},
        {5, 0, HARK_DECODER_OPENAI, "beam 5"},
        {1, 1, HARK_DECODER_OPENAI, "greedy+words"},
        {1, 1, HARK_DECODER_WHISPER_CPP, "greedy+words wcpp"},
    };
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        struct hark_options opt;
        double share[BENCH_MAX_RUNS];
        int n, n_tok = 0, rc;
        if (rows[k].beam > 1 && !o->beam) continue;
        if (rows[k].words && !o->words) continue;
        hark_options_init(&opt);
        opt.language = "en";
        opt.beam_size = rows[k].beam;
        opt.no_fallback = 1;
        opt.word_timestamps = rows[k].words;
        opt.decoder = rows[k].profile;
        for (n = 0, spent = 0; keep_going(o, n, o->transcribe_runs, spent); n++) {
            hark_result *res = NULL;
            timing_align_reset(st);
            double t0 = timing_now_ms();
            rc = hark_transcribe(st, pcm, n_samples, &opt, &res, err, sizeof err);
            t[n] = timing_now_ms() - t0;
            share[n] = 100.0 * timing_align_ms(st) / t[n];
            spent += t[n];
            if (rc) {
                cli_error("transcribe %s: %s", name, err);
                return CLI_EXIT_FAIL;
            }
            n_tok = count_tokens(res);
            hark_result_free(res);
        }
        double wall = bench_median(t, n);
        char what[96];
        snprintf(what, sizeof what, "%.12s %s", name, rows[k].what);
        printf("  %-28s %10.2f ms   (median of %d)   RTF %.3f   %d tokens   %.1f tokens/s", what, wall, n,
               wall / 1e3 / audio_s, n_tok, n_tok / (wall / 1e3));
        if (rows[k].words) printf("   words %.1f%% of it", bench_median(share, n));
        printf("\n");
    }
    return CLI_EXIT_OK;
}

int cli_bench(int argc, char **argv)
{
    struct bench_opts o;
    hark_model *model = NULL;
    hark_state *st = NULL;
    float *audio[BENCH_MAX_AUDIO] = {0}, *pcm30 = NULL;
    size_t n_audio_samples[BENCH_MAX_AUDIO] = {0};
    double t[BENCH_MAX_RUNS], spent, t0;
    char err[512];
    int n, ret = CLI_EXIT_FAIL, code = 0;

    if (argc > 1 && !strcmp(argv[1], "vad")) return cli_bench_vad(argc - 1, argv + 1);
    n = parse_args(argc, argv, &o);
    if (n) return n < 0 ? CLI_EXIT_OK : n;
    /* Line by line, so that output cut short by a time limit is complete. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    for (int i = 0; i < o.n_audio; i++) {
        int rc = timing_wav_read(o.audio[i], &audio[i], &n_audio_samples[i], err, sizeof err);
        if (rc) {
            cli_error("%s", err);
            goto done;
        }
    }
    pcm30 = malloc(sizeof(float) * WINDOW_SAMPLES);
    if (!pcm30) {
        cli_error("out of memory");
        goto done;
    }
    synth_audio(pcm30, WINDOW_SAMPLES);

    /* Load: every run but the last frees the model again. */
    for (n = 0, spent = 0; keep_going(&o, n, o.runs, spent); n++) {
        hark_model_free(model);
        t0 = timing_now_ms();
        model = hark_model_load(o.model, &code, err, sizeof err);
        t[n] = timing_now_ms() - t0;
        spent += t[n];
        if (!model) {
            cli_error("%s", err);
            goto done;
        }
    }
    const struct hark_hparams *hp = hark_model_hparams(model);
    int ref = whisper_cpp_row(hp);
    printf("== %s: n_state %d, heads %d, layers %d+%d, n_mels %d, n_vocab %d, %s\n", o.label, hp->n_audio_state,
           hp->n_audio_head, hp->n_audio_layer, hp->n_text_layer, hp->n_mels, hp->n_vocab,
           timing_weight_type(model));
    if (ref >= 0)
        printf("   whisper.cpp 1.9.3 figures are for %s (2 threads, flash attention on)\n", whisper_cpp[ref].name);
    print_figure("load", bench_median(t, n), n, 0, 0);

    /* Stages at every thread count first, then the (longer) transcriptions,
     * so that a run cut short by a time limit has printed the stage figures. */
    for (int pass = 0; pass < 2; pass++) {
        for (int ti = 0; ti < o.n_threads && (pass == 0 || o.n_audio > 0); ti++) {
            int threads = o.threads[ti];
            st = hark_state_new(model, threads, err, sizeof err);
            if (!st) {
                cli_error("%s", err);
                goto done;
            }
            printf(" threads %d%s\n", threads, pass ? ", transcription (no fallback)" : "");
            if (pass == 0) {
                struct bench_machine hw;
                bench_machine(threads, &hw);
                bench_machine_print(&hw);
                if (bench_stages(&o, model, st, threads, pcm30, ref, &hw)) goto done;
            }
            for (int i = 0; pass == 1 && i < o.n_audio; i++) {
                const char *base = strrchr(o.audio[i], '/');
                base = base ? base + 1 : o.audio[i];
                if (bench_transcribe(&o, st, threads, base, audio[i], n_audio_samples[i])) goto done;
            }
            hark_state_free(st);
            st = NULL;
        }
    }
    printf("  %-28s %10.1f MB\n", "peak RSS", peak_rss_mb());
    ret = CLI_EXIT_OK;
done:
    fflush(stdout);
    hark_state_free(st);
    hark_model_free(model);
    for (int i = 0; i < BENCH_MAX_AUDIO; i++) free(audio[i]);
    free(pcm30);
    return ret;
}
