/*
 * cli.h: what the `hark` command's files share: the subcommand entry points,
 * the exit codes and the one-line error printer.
 *
 * Every subcommand takes the argv that starts at its own name (argv[0] is
 * "transcribe", "models", ...) and returns the process exit status:
 * CLI_EXIT_OK, CLI_EXIT_FAIL for a failure of the work itself (a file that
 * cannot be read, a malformed model) or CLI_EXIT_USAGE for a command line
 * that cannot be understood. Errors are one line on stderr, "hark: <reason>".
 */
#ifndef HARK_CLI_H
#define HARK_CLI_H

#include <signal.h>
#include <stdio.h>

#include "hark.h"

#define HARK_VERSION "0.1.0"

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* ---- util.c: the helpers every subcommand shares */

/* Prints "hark: <formatted message>\n" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses a whole decimal integer in [lo, hi]; returns 0 or -1. */
int cli_parse_int(const char *s, int lo, int hi, int *out);

/* After getopt_long() returned '?' or ':', the option it stopped at as the
 * user wrote it ("--bogus", "-x"); a static buffer or an argv string. */
const char *cli_bad_option(int argc, char **argv);

/* The default worker thread count: online CPUs, at least 1, at most 8. */
int cli_default_threads(void);

/* For the long-running subcommands, serve and worker (daemon.c). */

/* The variable's value, or fallback when it is unset or empty. */
const char *cli_env_str(const char *name, const char *fallback);

/* Reads a whole number in [lo, hi] from the variable into *out when it is
 * set and not empty; -1 after an error line when it is not a number there. */
int cli_env_int(const char *name, int lo, int hi, int *out);

/* Reads the value arg of --option, a whole number in [lo, hi], into *out;
 * -1 after an error line when it is not one. */
int cli_option_int(const char *option, const char *arg, int lo, int hi, int *out);

/* The default model's name into out: model when it is given (-1 after an
 * error line if the models folder has no such model), else the first model
 * in the folder, else "" with a note on stderr. */
int cli_default_model(const char *models, const char *model, char *out, size_t outlen);

/* "HOST:PID": this process among the claimers of a shared queue. */
void cli_process_name(char *out, size_t outlen);

/* Blocks SIGINT and SIGTERM in the calling thread and every thread it
 * starts later, and ignores SIGPIPE and SIGXFSZ; cli_wait_stop then waits for one and
 * returns its name. */
void cli_block_stop_signals(sigset_t *set);
const char *cli_wait_stop(const sigset_t *set);

/* Speech detection options, shared by transcribe, serve, worker and vad
 * (vad.c). */
enum { CLI_VAD_AUTO = -1, CLI_VAD_OFF = 0, CLI_VAD_ON = 1 };

struct cli_vad {
    int mode;                        /* CLI_VAD_AUTO: on when a model is found */
    const char *model;               /* --vad-model; NULL: look in the models folders */
    struct hark_vad_params params;
};

enum {
    CLI_OPT_VAD = 0x600,
    CLI_OPT_NO_VAD,
    CLI_OPT_VAD_MODEL,
    CLI_OPT_VAD_THRESHOLD,
    CLI_OPT_VAD_MIN_SPEECH,
    CLI_OPT_VAD_MIN_SILENCE,
    CLI_OPT_VAD_MAX_SPEECH,
    CLI_OPT_VAD_PAD,
};

#define CLI_VAD_OPTIONS                                                                              \
    {"vad", no_argument, 0, CLI_OPT_VAD}, {"no-vad", no_argument, 0, CLI_OPT_NO_VAD},                \
        {"vad-model", required_argument, 0, CLI_OPT_VAD_MODEL},                                      \
        {"vad-threshold", required_argument, 0, CLI_OPT_VAD_THRESHOLD},                              \
        {"vad-min-speech-ms", required_argument, 0, CLI_OPT_VAD_MIN_SPEECH},                         \
        {"vad-min-silence-ms", required_argument, 0, CLI_OPT_VAD_MIN_SILENCE},                       \
        {"vad-max-speech-s", required_argument, 0, CLI_OPT_VAD_MAX_SPEECH},                          \
        {"vad-pad-ms", required_argument, 0, CLI_OPT_VAD_PAD}

/* The defaults: on when a model is found, whisper.cpp's parameters. */
void cli_vad_init(struct cli_vad *v);

/* HARK_VAD (1 on, 0 off), HARK_VAD_MODEL, HARK_VAD_THRESHOLD,
 * HARK_VAD_MIN_SPEECH_MS, HARK_VAD_MIN_SILENCE_MS, HARK_VAD_MAX_SPEECH_S,
 * HARK_VAD_PAD_MS; -1 after an error line. */
int cli_vad_from_env(struct cli_vad *v);

/* Takes a getopt_long code of CLI_VAD_OPTIONS: 1 when it was one, 0 when
 * not, -1 after an error line. */
int cli_vad_option(struct cli_vad *v, int code, const char *arg);

/* The options' lines for a --help. */
void cli_vad_help(FILE *out);

/* The VAD model the settings ask for: --vad-model, else the first of dirs
 * (n_dirs folders, NULL entries skipped) holding one. *out is NULL when
 * detection is off, or on by default and no model was found. Returns 0,
 * or -1 after an error line (a model that does not load; --vad and none). */
int cli_vad_load(const struct cli_vad *v, const char *const *dirs, int n_dirs, hark_vad **out);

/* The settings serve and worker share: the database, the data and models
 * folders, the default model and how jobs run. */
struct cli_jobs {
    const char *db;         /* NULL: serve's <data>/hark.db */
    const char *data;
    const char *models;
    const char *model;      /* NULL: the first model in the folder */
    int workers;            /* at least min_workers: serve 0, worker 1 */
    int min_workers;
    int threads;
    int lease_s;
    struct cli_vad vad;     /* speech detection's defaults for jobs that set none */
    int words;              /* word timestamps for jobs that do not say (default on) */
    int beam_size;          /* decoding: beam size (1: greedy) */
    int no_fallback;        /* decoding: never retry a window at a higher temperature */
    hark_vad *vad_model;    /* loaded by cli_start_queue (owned; cli_jobs_deinit) */
};

/* The defaults, then HARK_DB, HARK_DATA, HARK_MODELS, HARK_MODEL,
 * HARK_WORKERS, HARK_THREADS, HARK_LEASE_SECONDS, HARK_WORD_TIMESTAMPS,
 * HARK_BEAM_SIZE, HARK_NO_FALLBACK and the HARK_VAD* variables; -1 after an error line. */
int cli_jobs_from_env(struct cli_jobs *j, int min_workers);

/* Frees what cli_start_queue loaded; call after queue_stop. */
void cli_jobs_deinit(struct cli_jobs *j);

/* Takes the getopt_long code of a shared option: 'D' (--db), 'd' (--data),
 * 'M' (--models), 'm' (--model), 'w' (--workers), 't' (--threads), 'l'
 * (--lease-seconds), CLI_OPT_WORDS (--word-timestamps), CLI_OPT_NO_WORDS
 * (--no-word-timestamps), CLI_OPT_BEAM (--beam-size), CLI_OPT_NO_FALLBACK
 * (--no-fallback) or one of CLI_VAD_OPTIONS. 1 when it was one of them,
 * 0 when not, -1 after an error line. */
int cli_jobs_option(struct cli_jobs *j, int code, const char *arg);

enum { CLI_OPT_WORDS = 0x620, CLI_OPT_NO_WORDS, CLI_OPT_BEAM, CLI_OPT_NO_FALLBACK };

/* The long options of cli_jobs_option, for a getopt_long table. */
#define CLI_JOBS_OPTIONS                                                                       \
    {"db", required_argument, 0, 'D'}, {"data", required_argument, 0, 'd'},                    \
        {"models", required_argument, 0, 'M'}, {"model", required_argument, 0, 'm'},           \
        {"workers", required_argument, 0, 'w'}, {"threads", required_argument, 0, 't'},        \
        {"lease-seconds", required_argument, 0, 'l'},                                          \
        {"word-timestamps", no_argument, 0, CLI_OPT_WORDS},                                    \
        {"no-word-timestamps", no_argument, 0, CLI_OPT_NO_WORDS},                              \
        {"beam-size", required_argument, 0, CLI_OPT_BEAM},                                     \
        {"no-fallback", no_argument, 0, CLI_OPT_NO_FALLBACK}, CLI_VAD_OPTIONS

/* The end of serve's and worker's --help: word timestamps, decoding, -h,
 * and speech detection's options. */
void cli_jobs_help(FILE *out);

struct store;
struct queue;

/* Opens the store at db, or at the data folder's own database
 * (<data>/hark.db) when db is NULL or "", as serve and keys find it. 0, or
 * -1 after an error line. */
int cli_open_store(const char *data, const char *db, struct store **out);

/* Starts the job queue on store with j's folders, workers, threads,
 * lease and speech detection (the VAD model is loaded into j->vad_model;
 * without one a note says how to get it), its workers named after name
 * (cli_process_name); -1 after an error line. */
int cli_start_queue(struct store *store, struct cli_jobs *j, const char *default_model,
                    const char *name, struct queue **out);

/* `hark vad ...` (vad.c). */
int cli_vad(int argc, char **argv);
void cli_vad_cmd_help(FILE *out);

/* `hark transcribe ...` (transcribe.c). */
int cli_transcribe(int argc, char **argv);
void cli_transcribe_help(FILE *out);

/* `hark serve ...` (serve.c). */
int cli_serve(int argc, char **argv);
void cli_serve_help(FILE *out);

/* `hark worker ...` (worker.c). */
int cli_worker(int argc, char **argv);
void cli_worker_help(FILE *out);

/* `hark models ...` (models.c). */
int cli_models(int argc, char **argv);
void cli_models_help(FILE *out);

/* `hark keys ...` (keys.c). */
int cli_keys(int argc, char **argv);
void cli_keys_help(FILE *out);

/* search.c */
int cli_search(int argc, char **argv);
void cli_search_help(FILE *out);

#endif
