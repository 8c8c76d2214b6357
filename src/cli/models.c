/*
 * models.c: `hark models`, the model files' command:
 *
 *   info MODEL      a description of a ggml Whisper model file: its size, the
 *                   model type its hyperparameters name, the vocabulary, every
 *                   hyperparameter, a table of the tensors (name, type, shape,
 *                   bytes) and the totals per tensor type;
 *   list            the models in the models folder, one a line, each loaded
 *                   (and so validated) for its type;
 *   download NAME   whisper.cpp's converted models fetched from Hugging Face
 *                   into the models folder (the transfer is download.c's),
 *                   and its Silero VAD models ("silero-v6.2.0") for speech
 *                   detection, which list shows apart from Whisper models.
 *
 * The model type is named from n_audio_layer and n_audio_state (the pairs of
 * the released models, which share them between .en and multilingual
 * variants); 128 mel bins make a large model large-v3, and large-v3 with 4
 * decoder layers is large-v3-turbo. Any other combination is "unknown".
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "download.h"
#include "hark.h"
#include "queue.h"

void cli_models_help(FILE *out)
{
    fputs("usage: hark models info MODEL\n"
          "       hark models list [--models DIR]\n"
          "       hark models download [--models DIR] [--base-url URL] [--force] NAME...\n"
          "\n"
          "Works with whisper.cpp's ggml Whisper model files (ggml-<name>.bin).\n"
          "\n"
          "  info       describes a model file: file size, model type (tiny, base, small, medium,\n"
          "             large, large-v3, large-v3-turbo), vocabulary, hyperparameters, the table\n"
          "             of tensors (name, type, shape in PyTorch order, bytes) and the totals per\n"
          "             tensor type\n"
          "  list       the models in the models folder, one a line: name, size, model type,\n"
          "             weight type and whether it is multilingual (the names `hark serve` takes),\n"
          "             then the speech-detection model found there, if any\n"
          "  download   fetches each NAME as ggml-NAME.bin into the models folder, resuming an\n"
          "             interrupted download (Ctrl-C keeps what was fetched), and checks that the\n"
          "             file loads before putting it in place; a model already there is kept\n"
          "\n"
          "model names: tiny, tiny.en, base, base.en, small, small.en, medium, medium.en,\n"
          "  large-v1, large-v2, large-v3, large-v3-turbo, and quantized variants such as\n"
          "  tiny.en-q5_1, base.en-q5_1, small-q8_0, medium.en-q5_0, large-v3-turbo-q5_0\n"
          "  (\".en\" models are English-only; the rest are multilingual)\n"
          "speech detection (Silero VAD, from ggml-org/whisper-vad): silero-v6.2.0, silero-v5.1.2\n"
          "\n"
          "options:\n"
          "  --models DIR     the models folder (HARK_MODELS; default ./models, created by\n"
          "                   download if missing)\n"
          "  --base-url URL   where download fetches <URL>/ggml-NAME.bin (HARK_MODEL_URL;\n"
          "                   default " MODELS_DEFAULT_URL ";\n"
          "                   silero names: HARK_VAD_URL, default " MODELS_VAD_URL ")\n"
          "  -f, --force      download a model again even if it is already present\n"
          "  -h, --help       this help\n"
          "\n"
          "example: hark models download base.en && hark serve --model base.en\n",
          out);
}

static const char *model_type_name(const struct hark_hparams *hp)
{
    static const struct {
        int n_audio_layer, n_audio_state;
        const char *name;
    } types[] = {
        {4, 384, "tiny"}, {6, 512, "base"}, {12, 768, "small"}, {24, 1024, "medium"}, {32, 1280, "large"},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (hp->n_audio_layer != types[i].n_audio_layer || hp->n_audio_state != types[i].n_audio_state)
            continue;
        if (hp->n_mels == 128) {
            if (strcmp(types[i].name, "large") != 0) return "unknown";
            return hp->n_text_layer == 4 ? "large-v3-turbo" : "large-v3";
        }
        return types[i].name;
    }
    return "unknown";
}

/* The file-header ftype (after % 1000), which numbers types differently from
 * the tensor records. */
static const char *ftype_name(int ftype)
{
    switch (ftype) {
    case 0: return "f32";
    case 1: return "f16";
    case 2: return "q4_0";
    case 3: return "q4_1";
    case 7: return "q8_0";
    case 8: return "q5_0";
    case 9: return "q5_1";
    }
    return "?";
}

static int models_info(const char *path)
{
    char err[512] = "";
    int code = 0, n;
    struct stat st;
    const struct hark_hparams *hp;
    /* Totals per ggml tensor type id (0..15; larger ids are unknown). */
    long long count[16] = {0}, bytes[16] = {0}, all_bytes = 0;
    hark_model *model = hark_model_load(path, &code, err, sizeof err);

    if (!model) {
        cli_error("%s", err[0] ? err : hark_strerror(code));
        return CLI_EXIT_FAIL;
    }
    hp = hark_model_hparams(model);
    n = hark_model_n_tensors(model);

    printf("file           %s\n", path);
    if (stat(path, &st) == 0)
        printf("file size      %lld bytes (%.1f MiB)\n", (long long)st.st_size,
               (double)st.st_size / (1024.0 * 1024.0));
    printf("model type     %s\n", model_type_name(hp));
    if (hark_model_is_multilingual(model))
        printf("vocabulary     multilingual, %d languages\n", hark_lang_count(model));
    else
        printf("vocabulary     english-only\n");
    printf("\nhparams\n");
    printf("  n_vocab        %d\n", (int)hp->n_vocab);
    printf("  n_audio_ctx    %d\n", (int)hp->n_audio_ctx);
    printf("  n_audio_state  %d\n", (int)hp->n_audio_state);
    printf("  n_audio_head   %d\n", (int)hp->n_audio_head);
    printf("  n_audio_layer  %d\n", (int)hp->n_audio_layer);
    printf("  n_text_ctx     %d\n", (int)hp->n_text_ctx);
    printf("  n_text_state   %d\n", (int)hp->n_text_state);
    printf("  n_text_head    %d\n", (int)hp->n_text_head);
    printf("  n_text_layer   %d\n", (int)hp->n_text_layer);
    printf("  n_mels         %d\n", (int)hp->n_mels);
    printf("  ftype          %d (%s)\n", (int)hp->ftype, ftype_name(hp->ftype));

    printf("\ntensors        %d\n", n);
    printf("  %-44s %-5s %-22s %12s\n", "name", "type", "shape", "bytes");
    for (int i = 0; i < n; i++) {
        struct hark_tensor_info ti;
        char shape[96];
        size_t at = 0;
        if (hark_model_tensor(model, i, &ti) != 0) continue;
        shape[at++] = '[';
        for (int d = ti.n_dims - 1; d >= 0 && at < sizeof shape - 24; d--)
            at += (size_t)snprintf(shape + at, sizeof shape - at, "%lld%s", (long long)ti.ne[d],
                                   d ? ", " : "");
        snprintf(shape + at, sizeof shape - at, "]");
        printf("  %-44s %-5s %-22s %12zu\n", ti.name, hark_type_name(ti.type), shape, ti.n_bytes);
        if (ti.type >= 0 && ti.type < 16) {
            count[ti.type]++;
            bytes[ti.type] += (long long)ti.n_bytes;
        }
        all_bytes += (long long)ti.n_bytes;
    }

    printf("\ntotals by type\n");
    for (int t = 0; t < 16; t++)
        if (count[t]) printf("  %-5s %5lld tensors %14lld bytes\n", hark_type_name(t), count[t], bytes[t]);
    printf("  %-5s %5d tensors %14lld bytes\n", "all", n, all_bytes);

    hark_model_free(model);
    if (fflush(stdout) != 0) {
        cli_error("cannot write to stdout");
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

static const char *default_models_dir(void)
{
    const char *env = getenv("HARK_MODELS");
    return env && *env ? env : "./models";
}

/* The speech-detection model the folder offers, after the Whisper models. */
static void list_vad(const char *dir)
{
    char path[4096], err[512] = "";
    struct stat st;
    if (models_find_vad(dir, path, sizeof path) != 0) return;
    hark_vad *vad = hark_vad_load(path, NULL, err, sizeof err);
    double mb = stat(path, &st) == 0 ? (double)st.st_size / 1e6 : 0.0;
    if (vad) printf("\nspeech detection: %s (%.1f MB, %s)\n", hark_vad_name(vad), mb, path);
    else printf("\nspeech detection: invalid: %s\n", err);
    hark_vad_free(vad);
}

/* `hark models list`: one line per model in the folder. A file that does not
 * load is listed as invalid, with the loader's reason. */
static int list_models(const char *dir)
{
    char **names = NULL;
    int n = 0, width = 4, rc;

    if ((rc = models_list(dir, &names, &n)) != 0) {
        cli_error("cannot list %s: %s", dir, hark_strerror(rc));
        return CLI_EXIT_FAIL;
    }
    if (n == 0) {
        cli_error("no models in %s (get one with `hark models download base.en`)", dir);
        models_list_free(names, n);
        list_vad(dir);
        return CLI_EXIT_OK;
    }
    for (int i = 0; i < n; i++)
        if ((int)strlen(names[i]) > width) width = (int)strlen(names[i]);
    printf("%-*s %10s  %-15s %-7s %s\n", width, "name", "size", "type", "weights", "multilingual");
    for (int i = 0; i < n; i++) {
        char path[4096], err[512] = "", size[32] = "?";
        struct stat st;
        hark_model *model;
        int code = 0;

        if (models_resolve(dir, names[i], path, sizeof path) != 0) continue;
        if (stat(path, &st) == 0) snprintf(size, sizeof size, "%.1f MB", (double)st.st_size / 1e6);
        model = hark_model_load(path, &code, err, sizeof err);
        if (!model) {
            printf("%-*s %10s  invalid: %s\n", width, names[i], size, err[0] ? err : hark_strerror(code));
            continue;
        }
        printf("%-*s %10s  %-15s %-7s %s\n", width, names[i], size, model_type_name(hark_model_hparams(model)),
               ftype_name(hark_model_hparams(model)->ftype), hark_model_is_multilingual(model) ? "yes" : "no");
        hark_model_free(model);
    }
    models_list_free(names, n);
    list_vad(dir);
    if (fflush(stdout) != 0) {
        cli_error("cannot write to stdout");
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

static void on_interrupt(int sig)
{
    (void)sig;
    models_download_set_canceled(1);
}

/* `hark models download NAME...`: every name is checked before anything is
 * fetched; the first interruption stops the whole command. */
static int download_models(const char *dir, const char *base_url, int force, int n, char **names)
{
    struct sigaction sa, old_int, old_term;
    int status = CLI_EXIT_OK;
    int report = isatty(STDERR_FILENO) ? MODELS_REPORT_PROGRESS : MODELS_REPORT_SUMMARY;

    for (int i = 0; i < n; i++) {
        if (models_name_check(names[i]) != 0) {
            cli_error("'%s' is not a model name: use a whisper.cpp name such as base.en or "
                      "large-v3-turbo-q5_0 (see `hark models --help`)",
                      names[i]);
            return CLI_EXIT_USAGE;
        }
    }
    /* Ctrl-C (and SIGTERM) stop the transfer but keep the partial file;
     * without SA_RESTART, so a blocked wait returns at once. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    models_download_set_canceled(0);
    for (int i = 0; i < n; i++) {
        char err[1024] = "";
        const char *url = base_url;
        if (!url) {
            url = getenv(models_is_vad(names[i]) ? "HARK_VAD_URL" : "HARK_MODEL_URL");
            if (!url || !*url) url = models_is_vad(names[i]) ? MODELS_VAD_URL : MODELS_DEFAULT_URL;
        }
        int rc = models_download(url, dir, names[i], force, report, err, sizeof err);
        if (rc == MODELS_PRESENT) {
            fprintf(stderr, "hark: %s already present in %s (--force downloads it again)\n", names[i], dir);
            continue;
        }
        if (rc < 0) {
            cli_error("%s", err[0] ? err : hark_strerror(rc));
            status = CLI_EXIT_FAIL;
            if (rc == HARK_ECANCELED) break;
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return status;
}

/* `hark models list|download [options] ...`; argv[0] is the subcommand. */
static int folder_command(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"models", required_argument, 0, 'M'},
        {"base-url", required_argument, 0, 'U'},
        {"force", no_argument, 0, 'f'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int is_list = !strcmp(argv[0], "list"), force = 0, c;
    const char *dir = default_models_dir(), *base_url = NULL;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, is_list ? ":h" : ":fh", long_options, NULL)) != -1) {
        switch (c) {
        case 'M': dir = optarg; break;
        case 'U':
            if (is_list) goto bad_option;
            base_url = optarg;
            break;
        case 'f':
            if (is_list) goto bad_option;
            force = 1;
            break;
        case 'h': cli_models_help(stdout); return CLI_EXIT_OK;
        case ':': cli_error("option '%s' needs a value", cli_bad_option(argc, argv)); return CLI_EXIT_USAGE;
        default: goto bad_option;
        }
    }
    if (!*dir) {
        cli_error("the models folder is an empty string");
        return CLI_EXIT_USAGE;
    }
    if (is_list) {
        if (optind < argc) {
            cli_error("models list takes no arguments, got '%s' (see `hark models --help`)", argv[optind]);
            return CLI_EXIT_USAGE;
        }
        return list_models(dir);
    }
    if (optind >= argc) {
        cli_error("models download needs a model name such as base.en (see `hark models --help`)");
        return CLI_EXIT_USAGE;
    }
    return download_models(dir, base_url, force, argc - optind, argv + optind);

bad_option:
    cli_error("unknown option '%s' for models %s (see `hark models --help`)", cli_bad_option(argc, argv),
              argv[0]);
    return CLI_EXIT_USAGE;
}

int cli_models(int argc, char **argv)
{
    const char *path = NULL;
    if (argc < 2) {
        cli_error("models needs a subcommand: info, list or download (see `hark models --help`)");
        return CLI_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        cli_models_help(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "list") || !strcmp(argv[1], "download")) return folder_command(argc - 1, argv + 1);
    if (strcmp(argv[1], "info") != 0) {
        cli_error("no such models subcommand '%s' (see `hark models --help`)", argv[1]);
        return CLI_EXIT_USAGE;
    }
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            cli_models_help(stdout);
            return CLI_EXIT_OK;
        }
        if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("unknown option '%s' (see `hark models --help`)", argv[i]);
            return CLI_EXIT_USAGE;
        }
        if (path) {
            cli_error("models info takes one model file");
            return CLI_EXIT_USAGE;
        }
        path = argv[i];
    }
    if (!path) {
        cli_error("models info needs a model file (see `hark models --help`)");
        return CLI_EXIT_USAGE;
    }
    return models_info(path);
}
