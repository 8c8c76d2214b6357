/*
 * daemon.c: what the long-running subcommands (`hark serve`, `hark worker`)
 * share: settings from the environment, the choice of the default model,
 * the process's name as a claimer of jobs, and the stop signals.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "datadir.h"
#include "queue.h"
#include "store.h"

#define MAX_LEASE_S 3600

const char *cli_env_str(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

int cli_env_int(const char *name, int lo, int hi, int *out)
{
    const char *v = getenv(name);
    if (!v || !*v || cli_parse_int(v, lo, hi, out) == 0) return 0;
    cli_error("%s must be a whole number from %d to %d, not \"%s\"", name, lo, hi, v);
    return -1;
}

int cli_option_int(const char *option, const char *arg, int lo, int hi, int *out)
{
    if (cli_parse_int(arg, lo, hi, out) == 0) return 0;
    cli_error("--%s must be a whole number from %d to %d, not \"%s\"", option, lo, hi, arg);
    return -1;
}

int cli_default_model(const char *models, const char *model, char *out, size_t outlen)
{
    char path[4096];
    char **names = NULL;
    int n_names = 0;
    out[0] = 0;
    if (model && *model) {
        if (models_resolve(models, model, path, sizeof path) < 0) {
            cli_error("no model \"%s\" in %s (a name is a file name there without \"ggml-\" and "
                      "\".bin\", or give a path)",
                      model, models);
            return -1;
        }
        snprintf(out, outlen, "%s", model);
        return 0;
    }
    models_list(models, &names, &n_names);
    if (n_names) snprintf(out, outlen, "%s", names[0]);
    else
        fprintf(stderr,
                "hark: no models in %s yet: run `hark models download base.en`, or put "
                "whisper.cpp ggml model files there\n",
                models);
    models_list_free(names, n_names);
    return 0;
}

void cli_process_name(char *out, size_t outlen)
{
    char host[256];
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = 0;
    snprintf(out, outlen, "%s:%ld", host, (long)getpid());
}

void cli_block_stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A file that reaches the size limit (RLIMIT_FSIZE) fails its write
     * with EFBIG, answered like a full disk, instead of ending the process. */
    signal(SIGXFSZ, SIG_IGN);
}

const char *cli_wait_stop(const sigset_t *set)
{
    int sig = 0;
    while (sigwait(set, &sig) != 0) {
    }
    return sig == SIGINT ? "SIGINT" : "SIGTERM";
}

int cli_jobs_from_env(struct cli_jobs *j, int min_workers)
{
    j->db = cli_env_str("HARK_DB", NULL);
    j->data = cli_env_str("HARK_DATA", "./data");
    j->models = cli_env_str("HARK_MODELS", "./models");
    j->model = cli_env_str("HARK_MODEL", NULL);
    j->workers = 1;
    j->min_workers = min_workers;
    j->threads = cli_default_threads();
    j->lease_s = STORE_LEASE_MS_DEFAULT / 1000;
    j->vad_model = NULL;
    j->words = 1;
    j->beam_size = 5;
    j->no_fallback = 0;
    cli_vad_init(&j->vad);
    if (cli_env_int("HARK_WORKERS", min_workers, 64, &j->workers) < 0 ||
        cli_env_int("HARK_WORD_TIMESTAMPS", 0, 1, &j->words) < 0 ||
        cli_env_int("HARK_BEAM_SIZE", 1, 8, &j->beam_size) < 0 ||
        cli_env_int("HARK_NO_FALLBACK", 0, 1, &j->no_fallback) < 0 ||
        cli_env_int("HARK_THREADS", 1, 256, &j->threads) < 0 ||
        cli_env_int("HARK_LEASE_SECONDS", 1, MAX_LEASE_S, &j->lease_s) < 0 || cli_vad_from_env(&j->vad) < 0)
        return -1;
    return 0;
}

void cli_jobs_deinit(struct cli_jobs *j)
{
    hark_vad_free(j->vad_model);
    j->vad_model = NULL;
}

int cli_jobs_option(struct cli_jobs *j, int code, const char *arg)
{
    switch (code) {
    case 'D': j->db = arg; return 1;
    case 'd': j->data = arg; return 1;
    case 'M': j->models = arg; return 1;
    case 'm': j->model = arg; return 1;
    case 'w': return cli_option_int("workers", arg, j->min_workers, 64, &j->workers) < 0 ? -1 : 1;
    case 't': return cli_option_int("threads", arg, 1, 256, &j->threads) < 0 ? -1 : 1;
    case 'l': return cli_option_int("lease-seconds", arg, 1, MAX_LEASE_S, &j->lease_s) < 0 ? -1 : 1;
    case CLI_OPT_WORDS: j->words = 1; return 1;
    case CLI_OPT_NO_WORDS: j->words = 0; return 1;
    case CLI_OPT_BEAM: return cli_option_int("beam-size", arg, 1, 8, &j->beam_size) < 0 ? -1 : 1;
    case CLI_OPT_NO_FALLBACK: j->no_fallback = 1; return 1;
    default: return cli_vad_option(&j->vad, code, arg);
    }
}

void cli_jobs_help(FILE *out)
{
    fputs("  --word-timestamps      time every word (DTW over the alignment heads): words in\n"
          "                         results.json and subtitles cut at words, for jobs that\n"
          "                         do not choose (HARK_WORD_TIMESTAMPS=1; the default)\n"
          "  --no-word-timestamps   only when a job asks (HARK_WORD_TIMESTAMPS=0)\n"
          "  --beam-size N          beam size of the decoding, and candidates sampled when a\n"
          "                         window is decoded again; 1 for greedy (HARK_BEAM_SIZE;\n"
          "                         default 5): smaller is faster\n"
          "  --no-fallback          decode each window once, never again at a higher\n"
          "                         temperature when it looks wrong (HARK_NO_FALLBACK=1):\n"
          "                         faster, at times less accurate\n"
          "  -h, --help             this help\n"
          "\n",
          out);
    cli_vad_help(out);
}

int cli_start_queue(struct store *store, struct cli_jobs *j, const char *default_model,
                    const char *name, struct queue **out)
{
    struct queue_config qc;
    char err[512];
    const char *dirs[] = {j->models};
    if (hark_vad_params_check(&j->vad.params, err, sizeof err) != 0) {
        cli_error("%s", err);
        return -1;
    }
    /* Loaded even when off by default: a job may still ask for it. */
    struct cli_vad load = j->vad;
    if (load.mode == CLI_VAD_OFF) load.mode = CLI_VAD_AUTO;
    if (cli_vad_load(&load, dirs, 1, &j->vad_model) < 0) return -1;
    if (j->vad_model)
        fprintf(stderr, "hark: speech detection with %s%s\n", hark_vad_name(j->vad_model),
                j->vad.mode == CLI_VAD_OFF ? " (off unless a job asks)" : "");
    else if (j->vad.mode != CLI_VAD_OFF)
        fprintf(stderr, "hark: speech detection is off: no VAD model in %s (get one with `hark models download "
                        "silero-v6.2.0`)\n",
                j->models);
    memset(&qc, 0, sizeof qc);
    qc.vad = j->vad_model;
    qc.vad_on = j->vad.mode != CLI_VAD_OFF;
    qc.vad_params = j->vad.params;
    qc.words_on = j->words;
    qc.beam_size = j->beam_size;
    qc.no_fallback = j->no_fallback;
    qc.data_dir = j->data;
    qc.models_dir = j->models;
    qc.default_model = default_model;
    qc.workers = j->workers;
    qc.threads = j->threads;
    qc.worker_name = name;
    qc.lease_ms = j->lease_s * 1000;
    if (queue_start(store, &qc, out, err, sizeof err) < 0) {
        cli_error("%s", err);
        return -1;
    }
    return 0;
}

int cli_open_store(const char *data, const char *db, struct store **out)
{
    char path[DATADIR_PATH_MAX + 64], err[512];
    if (!db || !*db) {
        datadir_database(data, path, sizeof path);
        db = path;
    }
    if (store_open(db, out, err, sizeof err) < 0) {
        cli_error("%s", err);
        return -1;
    }
    return 0;
}
