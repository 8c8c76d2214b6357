/*
 * daemon.c: what the long-running subcommands (`hark serve`, `hark worker`)
 * share: settings from the environment, the choice of the default model,
 * the process's name as a claimer of jobs, and the stop signals.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "queue.h"

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
}

const char *cli_wait_stop(const sigset_t *set)
{
    int sig = 0;
    while (sigwait(set, &sig) != 0) {
    }
    return sig == SIGINT ? "SIGINT" : "SIGTERM";
}
