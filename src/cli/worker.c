/*
 * worker.c: `hark worker`, the job queue without HTTP. It runs the jobs of
 * a database shared with `hark serve` processes (and other workers) on
 * other machines: PostgreSQL is the queue and the source of truth, and the
 * data folder (media and results) is a shared file system mounted at the
 * same path everywhere. Progress and cancellation go through the database,
 * so the API shows a job running here live, and a cancel there stops it.
 *
 * It runs until SIGINT or SIGTERM; then it stops taking jobs, releases the
 * ones it was running (back to the queue for another worker at once) and
 * exits 0. A worker that dies without that (SIGKILL, a lost machine) loses
 * its jobs when their lease passes (--lease-seconds).
 *
 * Every option has an environment variable, as for `hark serve`; the
 * command line wins over the environment, the environment over the
 * defaults.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "datadir.h"
#include "hark.h"
#include "queue.h"
#include "store.h"



void cli_worker_help(FILE *out)
{
    fputs("usage: hark worker --db postgres://... [options]\n"
          "\n"
          "Runs transcription jobs from a database shared with `hark serve` and other\n"
          "workers, on this machine or others, without serving HTTP. The data folder\n"
          "must be the one the API processes use (a shared file system mounted at the\n"
          "same path).\n"
          "\n"
          "options (each also read from the environment variable shown):\n"
          "  --db LOCATION          the shared database, a postgres:// URI (HARK_DB; required)\n"
          "  --data DIR             media and results (HARK_DATA; default ./data)\n"
          "  --models DIR           folder of ggml model files (HARK_MODELS; default ./models)\n"
          "  --model NAME           model for jobs that name none (HARK_MODEL; default the\n"
          "                         first model in the folder)\n"
          "  --workers N            jobs run at once, 1 to 64 (HARK_WORKERS; default 1)\n"
          "  --threads N            threads per job (HARK_THREADS; default the cores, at most 8)\n"
          "  --lease-seconds N      how long a job stays this worker's without a heartbeat;\n"
          "                         the jobs of a worker that dies go back to the queue\n"
          "                         when it has passed\n"
          "                         (HARK_LEASE_SECONDS; default 30)\n",
          out);
    cli_jobs_help(out);
    fputs("  These are the defaults for jobs that do not choose (HARK_VAD and HARK_VAD_*\n"
          "  set them too).\n"
          "\n"
          "When it is ready it prints \"hark: worker ready\" on stdout. SIGINT or SIGTERM\n"
          "stops it: the jobs it runs go back to the queue, and it exits 0.\n",
          out);
}

static const struct option long_options[] = {
    CLI_JOBS_OPTIONS,
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

/* Returns 0, 1 for --help (printed), or -1 after an error line. */
static int parse_args(int argc, char **argv, struct cli_jobs *s)
{
    int c, rc;
    if (cli_jobs_from_env(s, 1) < 0) return -1;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        if ((rc = cli_jobs_option(s, c, optarg)) < 0) return -1;
        if (rc) continue;
        switch (c) {
        case 'h': cli_worker_help(stdout); return 1;
        case ':': cli_error("%s needs a value", cli_bad_option(argc, argv)); return -1;
        default:
            cli_error("unknown option %s (see hark worker --help)", cli_bad_option(argc, argv));
            return -1;
        }
    }
    if (optind < argc) {
        cli_error("unexpected argument \"%s\" (see hark worker --help)", argv[optind]);
        return -1;
    }
    if (!s->db || !*s->db) {
        cli_error("the worker needs the shared database: --db postgres://... (or HARK_DB)");
        return -1;
    }
    return 0;
}

int cli_worker(int argc, char **argv)
{
    struct cli_jobs s;
    struct store *store = NULL;
    struct queue *queue = NULL;
    char err[DATADIR_PATH_MAX + 160], default_model[128], name[320];
    int rc, status = CLI_EXIT_FAIL;
    sigset_t stop_signals;

    rc = parse_args(argc, argv, &s);
    if (rc) return rc > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;

    if (cli_default_model(s.models, s.model, default_model, sizeof default_model) < 0)
        return CLI_EXIT_USAGE;
    /* The data folder is the API's: a worker never makes it, so a shared
     * folder that is not mounted is an error, not an empty folder. */
    if (datadir_check(s.data, err, sizeof err) < 0) {
        cli_error("%s", err);
        return CLI_EXIT_FAIL;
    }
    if (store_open(s.db, &store, err, sizeof err) < 0) {
        cli_error("%s", err);
        return CLI_EXIT_FAIL;
    }
    if (!store_is_shared(store))
        fprintf(stderr, "hark: %s is not a shared database: only processes on this machine "
                        "can share its queue\n",
                s.db);

    /* Every thread started from here on inherits the blocked stop signals. */
    cli_block_stop_signals(&stop_signals);
    cli_process_name(name, sizeof name);
    if (cli_start_queue(store, &s, default_model, name, &queue) < 0) goto out;
    printf("hark: worker ready (%s, %d worker%s)\n", name, s.workers, s.workers == 1 ? "" : "s");
    fflush(stdout);

    fprintf(stderr, "hark: stopping (%s): releasing running jobs\n", cli_wait_stop(&stop_signals));
    status = CLI_EXIT_OK;
out:
    queue_stop(queue);
    cli_jobs_deinit(&s);
    store_close(store);
    return status;
}
