/*
 * main.c: the `hark` command: dispatches to a subcommand (each in a file
 * of its own; the helpers they share are in util.c).
 *
 * `hark help [COMMAND]`, `hark --help` and `hark COMMAND --help` print help
 * on stdout and exit 0; a command line that cannot be understood prints one
 * line on stderr and exits 2.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"

static void main_help(FILE *out)
{
    fputs("usage: hark <command> [options]\n"
          "\n"
          "hark is a Whisper speech-to-text service and engine for whisper.cpp's ggml model files.\n"
          "\n"
          "commands:\n"
          "  serve        serve the HTTP API: uploads, a job queue, results, media\n"
          "  worker       run jobs from a database shared with other machines, without HTTP\n"
          "  transcribe   transcribe (or translate) audio or video files\n"
          "  vad          print the stretches of speech in a file (Silero VAD)\n"
          "  models       model files: info (describe one), list (the models folder),\n"
          "               download NAME (from Hugging Face)\n"
          "  bench        time a model's stages and whole transcriptions\n"
          "  keys         API keys with owners: add NAME [--admin], list, revoke NAME\n"
          "  search       find words across every transcript; --reindex builds the index\n"
          "  help [CMD]   this help, or the help of a command\n"
          "\n"
          "options:\n"
          "  -h, --help     this help\n"
          "  -V, --version  print the version\n"
          "\n"
          "Run `hark <command> --help` for a command's options.\n",
          out);
}

/* `hark help [COMMAND]`. */
static int help_command(int argc, char **argv)
{
    if (argc < 2) {
        main_help(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "serve")) {
        cli_serve_help(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "worker")) {
        cli_worker_help(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "transcribe")) {
        cli_transcribe_help(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "vad")) {
        cli_vad_cmd_help(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "models")) {
        cli_models_help(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "bench")) {
        cli_bench_help(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "keys")) {
        cli_keys_help(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "search")) {
        cli_search_help(stdout);
        return CLI_EXIT_OK;
    }
    cli_error("no such command '%s' (see `hark --help`)", argv[1]);
    return CLI_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    const char *cmd;
    if (argc < 2) {
        main_help(stderr);
        return CLI_EXIT_USAGE;
    }
    cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        main_help(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        printf("hark %s\n", HARK_VERSION);
        return CLI_EXIT_OK;
    }
    if (!strcmp(cmd, "help")) return help_command(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return cli_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "worker")) return cli_worker(argc - 1, argv + 1);
    if (!strcmp(cmd, "transcribe")) return cli_transcribe(argc - 1, argv + 1);
    if (!strcmp(cmd, "models")) return cli_models(argc - 1, argv + 1);
    if (!strcmp(cmd, "vad")) return cli_vad(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cli_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "keys")) return cli_keys(argc - 1, argv + 1);
    if (!strcmp(cmd, "search")) return cli_search(argc - 1, argv + 1);
    if (cmd[0] == '-')
        cli_error("unknown option '%s' (see `hark --help`)", cmd);
    else
        cli_error("no such command '%s' (see `hark --help`)", cmd);
    return CLI_EXIT_USAGE;
}
