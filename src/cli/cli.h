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

#include <stdio.h>

#define HARK_VERSION "0.1.0"

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* Prints "hark: <formatted message>\n" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses a whole decimal integer in [lo, hi]; returns 0 or -1. */
int cli_parse_int(const char *s, int lo, int hi, int *out);

/* After getopt_long() returned '?' or ':', the option it stopped at as the
 * user wrote it ("--bogus", "-x"); a static buffer or an argv string. */
const char *cli_bad_option(int argc, char **argv);

/* The default worker thread count: online CPUs, at least 1, at most 8. */
int cli_default_threads(void);

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

#endif
