/*
 * models.c: `hark models info MODEL`, a description of a ggml Whisper model
 * file: its size, the model type its hyperparameters name, the vocabulary,
 * every hyperparameter, a table of the tensors (name, type, shape, bytes) and
 * the totals per tensor type.
 *
 * The model type is named from n_audio_layer and n_audio_state (the pairs of
 * the released models, which share them between .en and multilingual
 * variants); 128 mel bins make a large model large-v3, and large-v3 with 4
 * decoder layers is large-v3-turbo. Any other combination is "unknown".
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "hark.h"

void cli_models_help(FILE *out)
{
    fputs("usage: hark models info MODEL\n"
          "\n"
          "Describes a ggml Whisper model file (whisper.cpp's ggml-<name>.bin): file size,\n"
          "model type (tiny, base, small, medium, large, large-v3, large-v3-turbo), vocabulary,\n"
          "hyperparameters, the table of tensors (name, type, shape in PyTorch order, bytes)\n"
          "and the totals per tensor type.\n"
          "\n"
          "options:\n"
          "  -h, --help   this help\n",
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

int cli_models(int argc, char **argv)
{
    const char *path = NULL;
    if (argc < 2) {
        cli_error("models needs a subcommand (see `hark models --help`)");
        return CLI_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        cli_models_help(stdout);
        return CLI_EXIT_OK;
    }
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
