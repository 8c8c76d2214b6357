/*
 * transcribe.c: `hark transcribe`, the command-line front of hark_transcribe.
 *
 * The model is loaded once and one state is made for all inputs, which are
 * transcribed in order. Where the output goes:
 *   no -o            stdout, one result after another (JSON: one object per
 *                    line);
 *   -o DIR           (an existing directory) DIR/<input file name>.<format>
 *                    for each input;
 *   -o FILE          FILE, holding every result one after another.
 * Inputs are any audio or video files FFmpeg's libraries can read; the first
 * audio stream is decoded to 16 kHz mono (media.h). A failed input is
 * reported on one line and the others still run; the exit status is then 1.
 * While stderr is a terminal a progress bar is drawn there; Ctrl-C cancels
 * the running transcription through the progress callback.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "hark.h"
#include "media.h"

#define DEFAULT_MODEL "models/ggml-base.en.bin"

void cli_transcribe_help(FILE *out)
{
    fprintf(out,
            "usage: hark transcribe [options] FILE...\n"
            "\n"
            "Transcribes (or translates to English) audio or video files FFmpeg can read\n"
            "(wav, mp3, m4a, mp4, mov, flac, ogg, opus, webm, mkv, ...). The first audio\n"
            "stream is used, its channels averaged and resampled to 16 kHz.\n"
            "\n"
            "options:\n"
            "  -m, --model PATH        ggml Whisper model (default: $HARK_MODEL, else\n"
            "                          ./" DEFAULT_MODEL ")\n"
            "  -l, --language LANG     spoken language: a code (en, de, ...), a name (german),\n"
            "                          or auto to detect it (default: auto; English-only\n"
            "                          models always use en)\n"
            "      --translate         translate into English instead of transcribing\n"
            "  -f, --format FMT        txt, json, srt, vtt or tsv (default: txt)\n"
            "  -o, --output PATH       write to PATH instead of stdout; if PATH is an existing\n"
            "                          directory, write PATH/<input name>.<FMT> per input;\n"
            "                          otherwise every result goes into the one file PATH\n"
            "  -t, --threads N         worker threads (default: online CPUs, at most 8; here %d)\n"
            "      --beam N            beam size; 1 decodes greedily (default: 5)\n"
            "      --best-of N         candidates sampled at a temperature above 0 (default: 5)\n"
            "      --temperature T     first decoding temperature (default: 0)\n"
            "      --no-fallback       decode once at T; never retry at higher temperatures\n"
            "      --no-timestamps     decode without timestamp tokens\n"
            "      --prompt TEXT       text that conditions the first window\n"
            "      --decoder NAME      openai (default): openai-whisper's decoding rules;\n"
            "                          whisper.cpp: whisper.cpp 1.9.3's departures from them\n"
            "      --word-timestamps   time every word (DTW over the alignment heads): words in\n"
            "                          JSON, subtitles cut at words\n"
            "      --alignment-heads H the heads: \"LAYER,HEAD;LAYER,HEAD...\" or top-N (default:\n"
            "                          the released model's, by its shape)\n"
            "      --max-line-chars N  subtitles: characters per line (default 42)\n"
            "      --max-lines N       subtitles: lines per cue (default 2)\n"
            "      --max-cue-seconds S subtitles: longest cue (default 7); with word timestamps\n"
            "                          long segments are cut into cues at words\n"
            "      --vtt-word-tags     WebVTT: a timestamp tag before every word (karaoke)\n"
            "  -h, --help              this help\n"
            "\n",
            cli_default_threads());
    cli_vad_help(out);
    fputs("  The VAD model is looked for in $HARK_MODELS (else ./models) and beside the\n"
          "  Whisper model. Only the speech is transcribed; every time stays on the\n"
          "  original recording's timeline.\n"
          "\n"
          "Without -o the results go to stdout one after another (JSON: one object per line).\n"
          "A progress bar is drawn on stderr when it is a terminal; Ctrl-C cancels.\n"
          "\n"
          "example:\n"
          "  hark transcribe -m models/ggml-base.en.bin -f srt -o out/ talk.mp4 interview.mp3\n",
          out);
}

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct progress {
    const char *name;
    int draw;     /* 1 when stderr is a terminal */
    int last_pct; /* last percentage drawn, -1 before the first */
};

/* The progress callback: draws a bar when asked to and cancels after Ctrl-C. */
static int progress_cb(void *user, float fraction)
{
    struct progress *pg = user;
    int pct, filled;
    char bar[31];
    if (interrupted) return 1;
    if (!pg->draw) return 0;
    if (!(fraction >= 0)) fraction = 0;
    if (fraction > 1) fraction = 1;
    pct = (int)(fraction * 100.0f);
    if (pct == pg->last_pct) return 0;
    pg->last_pct = pct;
    filled = pct * 30 / 100;
    memset(bar, '#', (size_t)filled);
    memset(bar + filled, '.', (size_t)(30 - filled));
    bar[30] = 0;
    fprintf(stderr, "\r%s [%s] %3d%%", pg->name, bar, pct);
    fflush(stderr);
    return 0;
}

/* The decoding callback: draws nothing (decoding is quick) but cancels
 * after Ctrl-C. */
static int decode_progress_cb(void *user, float fraction)
{
    (void)user, (void)fraction;
    return interrupted != 0;
}

static void progress_end(struct progress *pg)
{
    if (pg->draw && pg->last_pct >= 0) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

enum {
    OPT_TRANSLATE = 256,
    OPT_BEAM,
    OPT_BEST_OF,
    OPT_TEMPERATURE,
    OPT_NO_FALLBACK,
    OPT_NO_TIMESTAMPS,
    OPT_PROMPT,
    OPT_DECODER,
    OPT_WORDS,
    OPT_HEADS,
    OPT_LINE_CHARS,
    OPT_LINES,
    OPT_CUE_SECONDS,
    OPT_WORD_TAGS,
};

static const struct option long_options[] = {
    {"model", required_argument, NULL, 'm'},
    {"language", required_argument, NULL, 'l'},
    {"translate", no_argument, NULL, OPT_TRANSLATE},
    {"format", required_argument, NULL, 'f'},
    {"output", required_argument, NULL, 'o'},
    {"threads", required_argument, NULL, 't'},
    {"beam", required_argument, NULL, OPT_BEAM},
    {"best-of", required_argument, NULL, OPT_BEST_OF},
    {"temperature", required_argument, NULL, OPT_TEMPERATURE},
    {"no-fallback", no_argument, NULL, OPT_NO_FALLBACK},
    {"no-timestamps", no_argument, NULL, OPT_NO_TIMESTAMPS},
    {"prompt", required_argument, NULL, OPT_PROMPT},
    {"decoder", required_argument, NULL, OPT_DECODER},
    {"word-timestamps", no_argument, NULL, OPT_WORDS},
    {"alignment-heads", required_argument, NULL, OPT_HEADS},
    {"max-line-chars", required_argument, NULL, OPT_LINE_CHARS},
    {"max-lines", required_argument, NULL, OPT_LINES},
    {"max-cue-seconds", required_argument, NULL, OPT_CUE_SECONDS},
    {"vtt-word-tags", no_argument, NULL, OPT_WORD_TAGS},
    {"help", no_argument, NULL, 'h'},
    CLI_VAD_OPTIONS,
    {NULL, 0, NULL, 0},
};

struct settings {
    const char *model_path;
    int model_from_default; /* 1 when neither -m nor $HARK_MODEL named it */
    const char *output;
    int fmt;
    int n_threads;
    struct hark_options opt;
    struct cli_vad vad;
    struct hark_cue_options cues;
};

/* Parses the command line into s; returns -1 (after printing why) for a usage
 * error, 1 when help was printed, else 0 with optind at the first input. */
static int parse_args(int argc, char **argv, struct settings *s)
{
    int c;
    const char *env = getenv("HARK_MODEL");

    memset(s, 0, sizeof *s);
    hark_options_init(&s->opt);
    s->model_path = env && *env ? env : DEFAULT_MODEL;
    s->model_from_default = !(env && *env);
    s->fmt = HARK_FORMAT_TXT;
    s->n_threads = cli_default_threads();
    cli_vad_init(&s->vad);
    if (cli_vad_from_env(&s->vad) < 0) return -1;
    hark_cue_options_init(&s->cues);

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:l:f:o:t:h", long_options, NULL)) != -1) {
        int r = cli_vad_option(&s->vad, c, optarg);
        if (r < 0) return -1;
        if (r > 0) continue;
        switch (c) {
        case 'm':
            s->model_path = optarg;
            s->model_from_default = 0;
            break;
        case 'l':
            if (!strcmp(optarg, "auto")) {
                s->opt.language = "auto";
            } else {
                int li = hark_lang_index(optarg);
                if (li < 0) {
                    cli_error("unknown language '%s'", optarg);
                    return -1;
                }
                s->opt.language = hark_lang_code(li);
            }
            break;
        case OPT_TRANSLATE:
            s->opt.task = HARK_TASK_TRANSLATE;
            break;
        case 'f':
            s->fmt = hark_format_parse(optarg);
            if (s->fmt < 0) {
                cli_error("unknown format '%s' (txt, json, srt, vtt or tsv)", optarg);
                return -1;
            }
            break;
        case 'o':
            s->output = optarg;
            break;
        case 't':
            if (cli_parse_int(optarg, 1, 256, &s->n_threads) != 0) {
                cli_error("--threads wants a whole number from 1 to 256, not '%s'", optarg);
                return -1;
            }
            break;
        case OPT_BEAM:
            if (cli_parse_int(optarg, 1, 64, &s->opt.beam_size) != 0) {
                cli_error("--beam wants a whole number from 1 to 64, not '%s'", optarg);
                return -1;
            }
            break;
        case OPT_BEST_OF:
            if (cli_parse_int(optarg, 1, 64, &s->opt.best_of) != 0) {
                cli_error("--best-of wants a whole number from 1 to 64, not '%s'", optarg);
                return -1;
            }
            break;
        case OPT_TEMPERATURE: {
            char *end;
            double t;
            errno = 0;
            t = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(t >= 0 && t <= 10)) {
                cli_error("--temperature wants a number from 0 to 10, not '%s'", optarg);
                return -1;
            }
            s->opt.temperature = (float)t;
            break;
        }
        case OPT_NO_FALLBACK:
            s->opt.no_fallback = 1;
            break;
        case OPT_NO_TIMESTAMPS:
            s->opt.no_timestamps = 1;
            break;
        case OPT_PROMPT:
            s->opt.initial_prompt = optarg;
            break;
        case OPT_DECODER:
            if (!strcmp(optarg, "openai")) {
                s->opt.decoder = HARK_DECODER_OPENAI;
            } else if (!strcmp(optarg, "whisper.cpp")) {
                s->opt.decoder = HARK_DECODER_WHISPER_CPP;
            } else {
                cli_error("unknown decoder '%s' (openai or whisper.cpp)", optarg);
                return -1;
            }
            break;
        case OPT_WORDS:
            s->opt.word_timestamps = 1;
            break;
        case OPT_LINE_CHARS:
        case OPT_LINES:
            if (cli_parse_int(optarg, 1, c == OPT_LINES ? 20 : 1000,
                              c == OPT_LINES ? &s->cues.max_lines : &s->cues.max_line_chars)) {
                cli_error("%s wants a whole number from 1 to %d, not '%s'",
                          c == OPT_LINES ? "--max-lines" : "--max-line-chars",
                          c == OPT_LINES ? 20 : 1000, optarg);
                return -1;
            }
            break;
        case OPT_CUE_SECONDS: {
            char *end;
            errno = 0;
            double v = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(v >= 0.5 && v <= 3600)) {
                cli_error("--max-cue-seconds wants seconds from 0.5 to 3600, not '%s'", optarg);
                return -1;
            }
            s->cues.max_cue_s = v;
            break;
        }
        case OPT_WORD_TAGS:
            s->cues.word_tags = 1;
            break;
        case OPT_HEADS:
            s->opt.alignment_heads = optarg;
            s->opt.word_timestamps = 1;
            break;
        case 'h':
            cli_transcribe_help(stdout);
            return 1;
        case ':':
            cli_error("option '%s' needs a value", cli_bad_option(argc, argv));
            return -1;
        default:
            cli_error("unknown option '%s' (see `hark transcribe --help`)", cli_bad_option(argc, argv));
            return -1;
        }
    }
    if (optind >= argc) {
        cli_error("no input files (see `hark transcribe --help`)");
        return -1;
    }
    char err[256];
    if (hark_vad_params_check(&s->vad.params, err, sizeof err) != 0) {
        cli_error("%s", err);
        return -1;
    }
    s->opt.vad_params = s->vad.params;
    return 0;
}

/* Transcribes one file with a loaded state and writes its result. Returns 0,
 * or -1 after printing the reason. *shared_out is the open -o FILE (opened
 * here on first use) when every result goes into one file. */
static int transcribe_one(hark_state *state, const struct settings *s, const char *input,
                          FILE **shared_out)
{
    char err[512] = "";
    float *pcm = NULL;
    size_t n_samples = 0;
    hark_result *result = NULL;
    struct hark_options opt = s->opt;
    struct progress pg = {base_name(input), isatty(STDERR_FILENO), -1};
    FILE *out = stdout;
    char *path = NULL;
    int rc;

    rc = media_decode(input, &pcm, &n_samples, decode_progress_cb, NULL, err, sizeof err);
    if (rc != 0) {
        cli_error("%s", err[0] ? err : hark_strerror(rc));
        goto fail;
    }
    opt.progress = progress_cb;
    opt.progress_user = &pg;
    rc = hark_transcribe(state, pcm, n_samples, &opt, &result, err, sizeof err);
    progress_end(&pg);
    if (rc != 0) {
        cli_error("%s: %s", input, err[0] ? err : hark_strerror(rc));
        goto fail;
    }

    if (s->output && is_directory(s->output)) {
        const char *ext = hark_format_of((enum hark_format)s->fmt)->ext;
        size_t n = strlen(s->output) + strlen(base_name(input)) + 8;
        path = malloc(n);
        if (!path) {
            cli_error("out of memory");
            goto fail;
        }
        snprintf(path, n, "%s/%s.%s", s->output, base_name(input), ext);
        out = fopen(path, "w");
        if (!out) {
            cli_error("cannot write '%s': %s", path, strerror(errno));
            goto fail;
        }
    } else if (s->output) {
        if (!*shared_out) {
            *shared_out = fopen(s->output, "w");
            if (!*shared_out) {
                cli_error("cannot write '%s': %s", s->output, strerror(errno));
                goto fail;
            }
        }
        out = *shared_out;
    }

    if (s->fmt == HARK_FORMAT_SRT || s->fmt == HARK_FORMAT_VTT)
        rc = hark_result_write_cues(result, (enum hark_format)s->fmt, &s->cues, out);
    else
        rc = hark_result_write(result, (enum hark_format)s->fmt, out);
    if (out != stdout && out != *shared_out && fclose(out) != 0 && rc == 0) rc = HARK_EIO;
    out = stdout;
    if (rc != 0) {
        cli_error("cannot write the result of '%s' to '%s': %s", input,
                  path ? path : s->output ? s->output : "stdout", hark_strerror(rc));
        goto fail;
    }
    free(path);
    hark_result_free(result);
    free(pcm);
    return 0;
fail:
    if (out != stdout && out != *shared_out) fclose(out);
    free(path);
    hark_result_free(result);
    free(pcm);
    return -1;
}

int cli_transcribe(int argc, char **argv)
{
    struct settings s;
    char err[512] = "";
    hark_model *model = NULL;
    hark_state *state = NULL;
    hark_vad *vad = NULL;
    FILE *shared_out = NULL;
    struct sigaction sa, old_sa;
    int code = 0, status = CLI_EXIT_OK, first;

    int prc = parse_args(argc, argv, &s);
    if (prc < 0) return CLI_EXIT_USAGE;
    if (prc > 0) return CLI_EXIT_OK;
    first = optind;

    /* Every input must be readable before minutes go into loading a model. */
    for (int i = first; i < argc; i++) {
        if (access(argv[i], R_OK) != 0) {
            cli_error("%s: %s", argv[i], strerror(errno));
            return CLI_EXIT_FAIL;
        }
    }

    model = hark_model_load(s.model_path, &code, err, sizeof err);
    if (!model) {
        cli_error("%s%s", err[0] ? err : hark_strerror(code),
                  s.model_from_default ? " (choose a model with -m or $HARK_MODEL)" : "");
        return CLI_EXIT_FAIL;
    }
    state = hark_state_new(model, s.n_threads, err, sizeof err);
    if (!state) {
        cli_error("%s", err[0] ? err : "cannot make a transcription state");
        hark_model_free(model);
        return CLI_EXIT_FAIL;
    }
    /* The VAD model: in the models folder, or beside the Whisper model. */
    char model_dir[4096];
    const char *slash = strrchr(s.model_path, '/');
    snprintf(model_dir, sizeof model_dir, "%.*s", slash ? (int)(slash - s.model_path) : 1, slash ? s.model_path : ".");
    const char *env_models = getenv("HARK_MODELS");
    const char *dirs[] = {env_models && *env_models ? env_models : "./models", model_dir};
    if (cli_vad_load(&s.vad, dirs, 2, &vad) < 0) {
        hark_state_free(state);
        hark_model_free(model);
        return CLI_EXIT_FAIL;
    }
    s.opt.vad = vad;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C ends the process */
    sigaction(SIGINT, &sa, &old_sa);

    for (int i = first; i < argc && !interrupted; i++)
        if (transcribe_one(state, &s, argv[i], &shared_out) != 0) status = CLI_EXIT_FAIL;
    if (interrupted) status = CLI_EXIT_FAIL;

    sigaction(SIGINT, &old_sa, NULL);
    if (shared_out && fclose(shared_out) != 0) {
        cli_error("cannot write '%s': %s", s.output, strerror(errno));
        status = CLI_EXIT_FAIL;
    }
    if (fflush(stdout) != 0) {
        cli_error("cannot write to stdout: %s", strerror(errno));
        status = CLI_EXIT_FAIL;
    }
    hark_state_free(state);
    hark_model_free(model);
    hark_vad_free(vad);
    return status;
}
