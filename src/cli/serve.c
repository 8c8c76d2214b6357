/*
 * serve.c: `hark serve`, the HTTP service: opens the data folder and its
 * database, sweeps what an earlier process left half-done, starts the job
 * workers and the HTTP server, and runs until SIGINT or SIGTERM.
 *
 * Every option has an environment variable (HARK_HOST, HARK_PORT, ...);
 * the command line wins over the environment, the environment over the
 * defaults.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "datadir.h"
#include "hark.h"
#include "http.h"
#include "queue.h"
#include "store.h"

#define DEFAULT_MAX_UPLOAD ((int64_t)8 << 30)
#define DEFAULT_MAX_CONNECTIONS 4096
#define DEFAULT_IDLE_TIMEOUT_S 60
/* Descriptors a connection may hold (its socket, and an upload's file or
 * the media it reads) and those the rest of the process keeps (the
 * database, the models, the listening socket). */
#define FDS_PER_CONNECTION 2
#define FDS_RESERVED 64

struct serve_settings {
    const char *host;
    int port;
    struct cli_jobs jobs;
    int64_t max_upload;
    const char *api_key;
    int max_connections;
    int max_connections_per_ip;
    int idle_timeout_s;
    const char *callback_allow;
    const char *callback_secret;
};

void cli_serve_help(FILE *out)
{
    fputs("usage: hark serve [options]\n"
          "\n"
          "Serves hark's HTTP API: upload media, schedule transcriptions, browse the\n"
          "history, fetch results, stream the media, and OpenAI-compatible\n"
          "/v1/audio/transcriptions. Jobs are kept in <data>/hark.db and survive restarts.\n"
          "\n"
          "options (each also read from the environment variable shown):\n"
          "  --host ADDR            address to listen on (HARK_HOST; default 127.0.0.1)\n"
          "  --port N               port, 0 for any free one (HARK_PORT; default 8080)\n"
          "  --data DIR             media, results and database (HARK_DATA; default ./data)\n"
          "  --models DIR           folder of ggml model files (HARK_MODELS; default ./models)\n"
          "  --model NAME           default model: a file name in the models folder without\n"
          "                         \"ggml-\" and \".bin\", or a path (HARK_MODEL; default the\n"
          "                         first model in the folder)\n"
          "  --workers N            transcription workers, 0 for none (HARK_WORKERS; default 1)\n"
          "  --threads N            threads per worker (HARK_THREADS; default the cores, at most 8)\n"
          "  --max-upload-bytes N   largest upload accepted (HARK_MAX_UPLOAD_BYTES; default 8 GiB)\n"
          "  --api-key KEY          require \"Authorization: Bearer KEY\" on every route but\n"
          "                         /health (HARK_API_KEY; default none); KEY is an admin\n"
          "                         key beside those of hark keys, which need no flag\n"
          "  --max-connections N    open connections at once; beyond it a new one is closed\n"
          "                         unanswered (HARK_MAX_CONNECTIONS; default 4096, less\n"
          "                         when the limit on open files, ulimit -n, is lower)\n"
          "  --max-connections-per-ip N\n"
          "                         the same from one client address, 0 for no limit\n"
          "                         (HARK_MAX_CONNECTIONS_PER_IP; default 0)\n"
          "  --idle-timeout-seconds N\n"
          "                         close a connection after N s without a byte either\n"
          "                         way, 0 for never (HARK_IDLE_TIMEOUT_SECONDS; default 60)\n"
          "  --callback-allow HOSTS hosts a job's callback_url may name, \"host\" or\n"
          "                         \"host:port\", comma-separated (HARK_CALLBACK_ALLOW;\n"
          "                         default none: no callbacks)\n"
          "  --callback-secret KEY  the key of the callbacks' X-Hark-Signature, HMAC-SHA256\n"
          "                         (HARK_CALLBACK_SECRET; default the text of\n"
          "                         <data>/callback-secret, made when missing)\n"
          "  --db LOCATION          the database: an SQLite file, or a postgres:// URI\n"
          "                         (HARK_DB; default <data>/hark.db)\n"
          "  --lease-seconds N      how long a running job stays this process's without a\n"
          "                         heartbeat (HARK_LEASE_SECONDS; default 30); with a shared\n"
          "                         database, the jobs of a process that dies go back to\n"
          "                         the queue when their lease has passed\n",
          out);
    cli_jobs_help(out);
    fputs("  These are the defaults for jobs and requests that do not choose (POST /model\n"
          "  \"vad\", the /v1 routes' chunking_strategy); HARK_VAD and HARK_VAD_* set them too.\n"
          "\n"
          "When it is ready it prints \"hark: listening on http://ADDR:PORT\" on stdout.\n"
          "SIGINT or SIGTERM stops it; a job cut off runs again at the next start.\n",
          out);
}

static int parse_int64(const char *s, int64_t lo, int64_t *out)
{
    char *end;
    long long v;
    if (!s || !*s) return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end || v < lo) return -1;
    *out = v;
    return 0;
}

/* Reads the environment's defaults; returns -1 after an error line. */
static int settings_from_env(struct serve_settings *s)
{
    const char *v;
    s->host = cli_env_str("HARK_HOST", "127.0.0.1");
    s->port = 8080;
    s->max_upload = DEFAULT_MAX_UPLOAD;
    s->api_key = cli_env_str("HARK_API_KEY", NULL);
    s->max_connections = DEFAULT_MAX_CONNECTIONS;
    s->max_connections_per_ip = 0;
    s->idle_timeout_s = DEFAULT_IDLE_TIMEOUT_S;
    s->callback_allow = cli_env_str("HARK_CALLBACK_ALLOW", NULL);
    s->callback_secret = cli_env_str("HARK_CALLBACK_SECRET", NULL);
    if (cli_jobs_from_env(&s->jobs, 0) < 0 || cli_env_int("HARK_PORT", 0, 65535, &s->port) < 0 ||
        cli_env_int("HARK_MAX_CONNECTIONS", 1, INT_MAX, &s->max_connections) < 0 ||
        cli_env_int("HARK_MAX_CONNECTIONS_PER_IP", 0, INT_MAX, &s->max_connections_per_ip) < 0 ||
        cli_env_int("HARK_IDLE_TIMEOUT_SECONDS", 0, INT_MAX, &s->idle_timeout_s) < 0)
        return -1;
    if ((v = getenv("HARK_MAX_UPLOAD_BYTES")) && *v && parse_int64(v, 1, &s->max_upload) < 0) {
        cli_error("HARK_MAX_UPLOAD_BYTES must be a positive number of bytes, not \"%s\"", v);
        return -1;
    }
    return 0;
}

static const struct option long_options[] = {
    {"host", required_argument, 0, 'H'},
    {"port", required_argument, 0, 'p'},
    {"max-upload-bytes", required_argument, 0, 'u'},
    {"api-key", required_argument, 0, 'k'},
    {"max-connections", required_argument, 0, 'C'},
    {"max-connections-per-ip", required_argument, 0, 'I'},
    {"idle-timeout-seconds", required_argument, 0, 'T'},
    {"callback-allow", required_argument, 0, 'A'},
    {"callback-secret", required_argument, 0, 'S'},
    CLI_JOBS_OPTIONS,
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

/* Returns 0, 1 for --help (printed), or -1 after an error line. */
static int parse_args(int argc, char **argv, struct serve_settings *s)
{
    int c, rc;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        if ((rc = cli_jobs_option(&s->jobs, c, optarg)) < 0) return -1;
        if (rc) continue;
        switch (c) {
        case 'H': s->host = optarg; break;
        case 'p':
            if (cli_option_int("port", optarg, 0, 65535, &s->port) < 0) return -1;
            break;
        case 'u':
            if (parse_int64(optarg, 1, &s->max_upload) < 0) {
                cli_error("--max-upload-bytes must be a positive number of bytes, not \"%s\"", optarg);
                return -1;
            }
            break;
        case 'k': s->api_key = optarg; break;
        case 'C':
            if (cli_option_int("max-connections", optarg, 1, INT_MAX, &s->max_connections) < 0) return -1;
            break;
        case 'I':
            if (cli_option_int("max-connections-per-ip", optarg, 0, INT_MAX, &s->max_connections_per_ip) < 0)
                return -1;
            break;
        case 'T':
            if (cli_option_int("idle-timeout-seconds", optarg, 0, INT_MAX, &s->idle_timeout_s) < 0) return -1;
            break;
        case 'A': s->callback_allow = optarg; break;
        case 'S': s->callback_secret = optarg; break;
        case 'h': cli_serve_help(stdout); return 1;
        case ':': cli_error("%s needs a value", cli_bad_option(argc, argv)); return -1;
        default: cli_error("unknown option %s (see hark serve --help)", cli_bad_option(argc, argv)); return -1;
        }
    }
    if (optind < argc) {
        cli_error("unexpected argument \"%s\" (see hark serve --help)", argv[optind]);
        return -1;
    }
    return 0;
}

/* Raises the soft limit on open files to the hard one (each connection
 * holds a descriptor) and lowers the connection limit to what the files
 * allow, with a note on stderr when it does. */
static void fit_connections(struct serve_settings *s)
{
    struct rlimit rl;
    long long fit;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return;
    if (rl.rlim_cur != rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) rl.rlim_cur = was;
    }
    if (rl.rlim_cur == RLIM_INFINITY) return;
    fit = ((long long)rl.rlim_cur - FDS_RESERVED) / FDS_PER_CONNECTION;
    if (fit < 1) fit = 1;
    if (s->max_connections > fit) {
        fprintf(stderr,
                "hark: at most %lld connections at once, not %d: the limit on open files is %llu "
                "(ulimit -n)\n",
                fit, s->max_connections, (unsigned long long)rl.rlim_cur);
        s->max_connections = (int)fit;
    }
}

int cli_serve(int argc, char **argv)
{
    struct serve_settings s;
    struct store *store = NULL;
    struct queue *queue = NULL;
    struct http_server *http = NULL;
    struct http_config hc;
    char err[512], default_model[128], worker[320];
    int rc, status = CLI_EXIT_FAIL;
    sigset_t stop_signals;

    if (settings_from_env(&s) < 0) return CLI_EXIT_USAGE;
    rc = parse_args(argc, argv, &s);
    if (rc) return rc > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;

    if (cli_default_model(s.jobs.models, s.jobs.model, default_model, sizeof default_model) < 0)
        return CLI_EXIT_USAGE;

    if (datadir_make(s.jobs.data, err, sizeof err) < 0) {
        cli_error("%s", err);
        return CLI_EXIT_FAIL;
    }
    if (cli_open_store(s.jobs.data, s.jobs.db, &store) < 0) return CLI_EXIT_FAIL;
    /* A database of its own (SQLite) means no other process shares the
     * data folder, so whatever is in flight there was left by a dead one;
     * a shared database leaves other processes' recent work alone. */
    rc = datadir_sweep(store, s.jobs.data, store_is_shared(store) ? 3600 : 0);
    if (rc > 0) fprintf(stderr, "hark: removed %d upload folder(s) without a record\n", rc);

    /* Every thread started from here on inherits the blocked stop signals. */
    cli_block_stop_signals(&stop_signals);
    cli_process_name(worker, sizeof worker);
    if (cli_start_queue(store, &s.jobs, default_model, worker, &queue) < 0) goto out;

    memset(&hc, 0, sizeof hc);
    hc.host = s.host;
    hc.port = s.port;
    hc.data_dir = s.jobs.data;
    hc.models_dir = s.jobs.models;
    hc.default_model = default_model;
    hc.max_upload_bytes = s.max_upload;
    hc.api_key = s.api_key;
    fit_connections(&s);
    hc.max_connections = (unsigned)s.max_connections;
    hc.max_connections_per_ip = (unsigned)s.max_connections_per_ip;
    hc.idle_timeout_s = (unsigned)s.idle_timeout_s;
    hc.callback_allow = s.callback_allow;
    hc.callback_secret = s.callback_secret;
    if (http_start(&hc, store, queue, &http, err, sizeof err) < 0) {
        cli_error("%s", err);
        goto out;
    }
    printf(strchr(s.host, ':') ? "hark: listening on http://[%s]:%d\n"
                               : "hark: listening on http://%s:%d\n",
           s.host, http_port(http));
    fflush(stdout);

    fprintf(stderr, "hark: stopping (%s)\n", cli_wait_stop(&stop_signals));
    status = CLI_EXIT_OK;
out:
    if (queue) queue_shutdown(queue);
    if (http) http_stop(http);
    if (queue) queue_stop(queue);
    cli_jobs_deinit(&s.jobs);
    store_close(store);
    return status;
}
