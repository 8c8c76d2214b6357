/*
 * vad.c: speech detection on the command line: the --vad options that
 * transcribe, serve and worker share (with their HARK_VAD* variables),
 * finding the Silero VAD model, and `hark vad`, which prints the speech
 * segments of a file.
 *
 * Speech detection is on by default wherever a VAD model is found: the one
 * --vad-model (HARK_VAD_MODEL) names, else the newest ggml-silero-*.bin in
 * the models folders searched. --no-vad (HARK_VAD=0) turns it off; --vad
 * (HARK_VAD=1) makes a missing model an error instead of a note.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "hark.h"
#include "media.h"
#include "queue.h"

void cli_vad_init(struct cli_vad *v)
{
    memset(v, 0, sizeof *v);
    v->mode = CLI_VAD_AUTO;
    hark_vad_params_init(&v->params);
}

/* A number in [lo, hi] ("inf" too where hi is infinite); -1 if not. */
static int parse_float(const char *s, double lo, double hi, float *out)
{
    char *end;
    double x;
    if (!s || !*s) return -1;
    errno = 0;
    x = strtod(s, &end);
    if (errno == ERANGE && isinf(x)) errno = 0;
    if (errno || *end || !(x >= lo && x <= hi)) return -1;
    *out = (float)x;
    return 0;
}

static int set_value(struct cli_vad *v, int code, const char *arg, const char *what)
{
    switch (code) {
    case CLI_OPT_VAD:
    case CLI_OPT_NO_VAD:
        v->mode = code == CLI_OPT_VAD ? CLI_VAD_ON : CLI_VAD_OFF;
        return 1;
    case CLI_OPT_VAD_MODEL:
        if (!arg || !*arg) {
            cli_error("%s wants the path of a VAD model", what);
            return -1;
        }
        v->model = arg;
        return 1;
    case CLI_OPT_VAD_THRESHOLD:
        if (parse_float(arg, 0.0, 1.0, &v->params.threshold) != 0 || v->params.threshold <= 0.0f) {
            cli_error("%s wants a probability above 0 and at most 1, not '%s'", what, arg);
            return -1;
        }
        return 1;
    case CLI_OPT_VAD_MIN_SPEECH:
    case CLI_OPT_VAD_MIN_SILENCE:
    case CLI_OPT_VAD_PAD: {
        int hi = code == CLI_OPT_VAD_PAD ? 60000 : 3600000;
        int *dst = code == CLI_OPT_VAD_MIN_SPEECH    ? &v->params.min_speech_ms
                   : code == CLI_OPT_VAD_MIN_SILENCE ? &v->params.min_silence_ms
                                                     : &v->params.pad_ms;
        if (cli_parse_int(arg, 0, hi, dst) != 0) {
            cli_error("%s wants milliseconds from 0 to %d, not '%s'", what, hi, arg);
            return -1;
        }
        return 1;
    }
    case CLI_OPT_VAD_MAX_SPEECH:
        if (parse_float(arg, 1.0, INFINITY, &v->params.max_speech_s) != 0) {
            cli_error("%s wants seconds, at least 1 (or inf), not '%s'", what, arg);
            return -1;
        }
        return 1;
    }
    return 0;
}

static const struct {
    int code;
    const char *option, *env;
} names[] = {
    {CLI_OPT_VAD_MODEL, "--vad-model", "HARK_VAD_MODEL"},
    {CLI_OPT_VAD_THRESHOLD, "--vad-threshold", "HARK_VAD_THRESHOLD"},
    {CLI_OPT_VAD_MIN_SPEECH, "--vad-min-speech-ms", "HARK_VAD_MIN_SPEECH_MS"},
    {CLI_OPT_VAD_MIN_SILENCE, "--vad-min-silence-ms", "HARK_VAD_MIN_SILENCE_MS"},
    {CLI_OPT_VAD_MAX_SPEECH, "--vad-max-speech-s", "HARK_VAD_MAX_SPEECH_S"},
    {CLI_OPT_VAD_PAD, "--vad-pad-ms", "HARK_VAD_PAD_MS"},
};

int cli_vad_option(struct cli_vad *v, int code, const char *arg)
{
    const char *what = code == CLI_OPT_VAD ? "--vad" : "--no-vad";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].code == code) what = names[i].option;
    return set_value(v, code, arg, what);
}

int cli_vad_from_env(struct cli_vad *v)
{
    const char *on = getenv("HARK_VAD");
    if (on && *on) {
        if (!strcmp(on, "1")) v->mode = CLI_VAD_ON;
        else if (!strcmp(on, "0")) v->mode = CLI_VAD_OFF;
        else {
            cli_error("HARK_VAD must be 1 (on) or 0 (off), not '%s'", on);
            return -1;
        }
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *val = getenv(names[i].env);
        if (val && *val && set_value(v, names[i].code, val, names[i].env) < 0) return -1;
    }
    return 0;
}

void cli_vad_help(FILE *out)
{
    fputs("speech detection (Silero VAD; on whenever a VAD model is found):\n"
          "      --vad               require speech detection (no VAD model is an error)\n"
          "      --no-vad            transcribe the whole audio\n"
          "      --vad-model PATH    the VAD model (default: ggml-silero-*.bin in the models\n"
          "                          folder; get it with `hark models download silero-v6.2.0`)\n"
          "      --vad-threshold P   speech probability that starts speech (default 0.5)\n"
          "      --vad-min-speech-ms N   shorter speech is dropped (default 250)\n"
          "      --vad-min-silence-ms N  silence that ends speech (default 100)\n"
          "      --vad-max-speech-s S    longer speech is split (default: no limit)\n"
          "      --vad-pad-ms N      padding kept around speech (default 30)\n",
          out);
}

int cli_vad_load(const struct cli_vad *v, const char *const *dirs, int n_dirs, hark_vad **out)
{
    char path[4096], err[512] = "";
    const char *file = v->model;
    *out = NULL;
    if (v->mode == CLI_VAD_OFF) return 0;
    for (int i = 0; !file && i < n_dirs; i++)
        if (dirs[i] && models_find_vad(dirs[i], path, sizeof path) == 0) file = path;
    if (!file) {
        if (v->mode == CLI_VAD_ON) {
            cli_error("speech detection needs a VAD model: none in %s (get one with `hark models download "
                      "silero-v6.2.0`, or name it with --vad-model)",
                      n_dirs > 0 && dirs[0] ? dirs[0] : "the models folder");
            return -1;
        }
        return 0;
    }
    int code = 0;
    *out = hark_vad_load(file, &code, err, sizeof err);
    if (!*out) {
        cli_error("%s", err[0] ? err : hark_strerror(code));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- hark vad */

void cli_vad_cmd_help(FILE *out)
{
    fprintf(out,
            "usage: hark vad [options] FILE\n"
            "\n"
            "Prints the stretches of speech in an audio or video file that FFmpeg can read,\n"
            "as Silero VAD finds them (whisper.cpp's segments), in seconds.\n"
            "\n"
            "options:\n"
            "  -f, --format FMT        text (default): \"START END\" a line; json:\n"
            "                          {\"segments\": [{\"start\": 0.32, \"end\": 2.27}, ...]}\n"
            "      --models DIR        where to look for the VAD model (HARK_MODELS; default\n"
            "                          ./models)\n"
            "  -t, --threads N         threads (default: online CPUs, at most 8; here %d)\n"
            "  -h, --help              this help\n",
            cli_default_threads());
    fputs("\n", out);
    cli_vad_help(out);
}

int cli_vad(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"format", required_argument, 0, 'f'},
        {"models", required_argument, 0, 'M'},
        {"threads", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},
        CLI_VAD_OPTIONS,
        {0, 0, 0, 0},
    };
    struct cli_vad v;
    const char *models = getenv("HARK_MODELS");
    int json = 0, threads = cli_default_threads(), c;
    if (!models || !*models) models = "./models";
    cli_vad_init(&v);
    if (cli_vad_from_env(&v) < 0) return CLI_EXIT_USAGE;
    v.mode = CLI_VAD_ON;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":f:t:h", long_options, NULL)) != -1) {
        int r = cli_vad_option(&v, c, optarg);
        if (r < 0) return CLI_EXIT_USAGE;
        if (r > 0) continue;
        switch (c) {
        case 'f':
            if (!strcmp(optarg, "json")) json = 1;
            else if (!strcmp(optarg, "text") || !strcmp(optarg, "txt")) json = 0;
            else {
                cli_error("unknown format '%s' (text or json)", optarg);
                return CLI_EXIT_USAGE;
            }
            break;
        case 'M': models = optarg; break;
        case 't':
            if (cli_parse_int(optarg, 1, 256, &threads) != 0) {
                cli_error("--threads wants a whole number from 1 to 256, not '%s'", optarg);
                return CLI_EXIT_USAGE;
            }
            break;
        case 'h': cli_vad_cmd_help(stdout); return CLI_EXIT_OK;
        case ':': cli_error("option '%s' needs a value", cli_bad_option(argc, argv)); return CLI_EXIT_USAGE;
        default:
            cli_error("unknown option '%s' (see `hark vad --help`)", cli_bad_option(argc, argv));
            return CLI_EXIT_USAGE;
        }
    }
    if (v.mode == CLI_VAD_OFF) {
        cli_error("`hark vad` is speech detection: --no-vad (or HARK_VAD=0) leaves nothing to do");
        return CLI_EXIT_USAGE;
    }
    if (optind != argc - 1) {
        cli_error(optind >= argc ? "no input file (see `hark vad --help`)" : "hark vad takes one input file");
        return CLI_EXIT_USAGE;
    }
    const char *input = argv[optind];
    char err[512] = "";
    float *pcm = NULL;
    size_t n = 0;
    struct hark_speech *segs = NULL;
    int n_segs = 0, status = CLI_EXIT_FAIL;
    hark_vad *vad = NULL;
    const char *dirs[] = {models};
    if (hark_vad_params_check(&v.params, err, sizeof err) != 0) {
        cli_error("%s", err);
        return CLI_EXIT_USAGE;
    }
    if (cli_vad_load(&v, dirs, 1, &vad) < 0) return CLI_EXIT_FAIL;
    int rc = media_decode(input, &pcm, &n, NULL, NULL, err, sizeof err);
    if (rc != 0) {
        cli_error("%s", err[0] ? err : hark_strerror(rc));
        goto done;
    }
    rc = hark_vad_detect(vad, pcm, n, &v.params, threads, &segs, &n_segs, err, sizeof err);
    if (rc != 0) {
        cli_error("%s: %s", input, err[0] ? err : hark_strerror(rc));
        goto done;
    }
    if (json) {
        fputs("{\"segments\": [", stdout);
        for (int i = 0; i < n_segs; i++)
            printf("%s{\"start\": %.2f, \"end\": %.2f}", i ? ", " : "", segs[i].start_s, segs[i].end_s);
        fputs("]}\n", stdout);
    } else {
        for (int i = 0; i < n_segs; i++) printf("%.2f %.2f\n", segs[i].start_s, segs[i].end_s);
    }
    if (fflush(stdout) != 0) {
        cli_error("cannot write to stdout");
        goto done;
    }
    status = CLI_EXIT_OK;
done:
    free(segs);
    free(pcm);
    hark_vad_free(vad);
    return status;
}
