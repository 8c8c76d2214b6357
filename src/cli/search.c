/*
 * search.c: `hark search QUERY` prints the transcripts' segments that match,
 * and `hark search --reindex` builds the search index again from every
 * finished upload's results.json: after a restore from backup, or for
 * uploads transcribed before the index existed. The store is found as
 * serve finds it (--db, HARK_DB, or <data>/hark.db under --data).
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "datadir.h"
#include "hark.h"
#include "store.h"

void cli_search_help(FILE *out)
{
    fputs("usage: hark search QUERY [options]\n"
          "       hark search --reindex [options]\n"
          "\n"
          "Finds words and phrases across every transcript (what GET /search answers):\n"
          "every word must match, \"quoted words\" match as a phrase, a word ending in *\n"
          "matches as a prefix (trans*); case and diacritics do not count. Prints each hit\n"
          "as upload id, segment times and text, best first.\n"
          "\n"
          "  --reindex      index every finished upload's results.json again (after a\n"
          "                 restore, or for uploads from before the index existed)\n"
          "  --limit N      hits to print (default 20, at most 1000)\n"
          "  --data DIR     the data folder (HARK_DATA; default ./data)\n"
          "  --db LOCATION  the database: an SQLite file, or a postgres:// URI (HARK_DB;\n"
          "                 default <data>/hark.db), as given to hark serve\n",
          out);
}

static const struct option long_options[] = {
    {"reindex", no_argument, 0, 'r'},
    {"limit", required_argument, 0, 'l'},
    {"data", required_argument, 0, 'd'},
    {"db", required_argument, 0, 'D'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

/* One upload's segments from its results.json into the index. Returns 0,
 * or -1 after an error line. */
static int reindex_one(struct store *s, const char *data, const char *id)
{
    const struct hark_format_info *f = hark_format_find("json");
    char name[64];
    datadir_result_name(f, name, sizeof name);
    int fd = datadir_upload_open(data, id, name);
    if (fd < 0) {
        cli_error("upload %s: no %s in %s/db/%s (is --data the server's data folder?)", id, name, data, id);
        return -1;
    }
    FILE *in = fdopen(fd, "r");
    json_error_t jerr;
    json_t *root = in ? json_loadf(in, 0, &jerr) : NULL;
    if (in) fclose(in);
    else close(fd);
    json_t *segs = root ? json_object_get(root, "segments") : NULL;
    if (!json_is_array(segs)) {
        cli_error("upload %s: %s has no segments%s%s", id, name, root ? "" : ": ", root ? "" : jerr.text);
        json_decref(root);
        return -1;
    }
    size_t n = json_array_size(segs);
    struct store_segment *rows = n ? calloc(n, sizeof *rows) : NULL;
    int rc = n && !rows ? HARK_ENOMEM : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *g = json_array_get(segs, i);
        const char *text = json_string_value(json_object_get(g, "text"));
        json_t *t0 = json_object_get(g, "start"), *t1 = json_object_get(g, "end");
        if (!text || !json_is_number(t0) || !json_is_number(t1)) {
            cli_error("upload %s: segment %zu of %s has no text, start or end", id, i, name);
            rc = HARK_EINVAL;
            break;
        }
        rows[i] = (struct store_segment){(int)i, json_number_value(t0), json_number_value(t1), text};
    }
    if (rc == 0 && (rc = store_index_set(s, id, rows, (int)n)) < 0) cli_error("upload %s: %s", id, store_error(s));
    else if (rc == HARK_ENOMEM) cli_error("out of memory");
    free(rows);
    json_decref(root);
    return rc < 0 ? -1 : 0;
}

static int reindex(struct store *s, const char *data)
{
    char **ids = NULL;
    int n = 0, done = 0, failed = 0;
    if (store_uploads_ran(s, &ids, &n) < 0) {
        cli_error("%s", store_error(s));
        return CLI_EXIT_FAIL;
    }
    for (int i = 0; i < n; i++) {
        if (reindex_one(s, data, ids[i]) == 0) done++;
        else failed++;
        free(ids[i]);
    }
    free(ids);
    fprintf(stderr, "hark: indexed %d of %d transcribed uploads%s\n", done, n, failed ? "; see the errors above" : "");
    return failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static int search(struct store *s, const char *query, int limit)
{
    struct store_hit *hits = NULL;
    int n = 0;
    int64_t total = 0;
    int rc = store_search(s, query, NULL, limit, 0, &hits, &n, &total);
    if (rc == HARK_EINVAL) {
        const char *why = store_error(s), *colon = strstr(why, ": ");
        cli_error("%s", colon ? colon + 2 : why);
        return CLI_EXIT_USAGE;
    }
    if (rc < 0) {
        cli_error("%s", store_error(s));
        return CLI_EXIT_FAIL;
    }
    for (int i = 0; i < n; i++) {
        const char *t = hits[i].text;
        while (*t == ' ') t++;
        printf("%s  %8.2f %8.2f  %s\n", hits[i].upload_id, hits[i].start_s, hits[i].end_s, t);
    }
    store_hits_free(hits, n);
    fprintf(stderr, "hark: %d of %lld hits\n", n, (long long)total);
    return CLI_EXIT_OK;
}

int cli_search(int argc, char **argv)
{
    const char *data = cli_env_str("HARK_DATA", "./data"), *db = cli_env_str("HARK_DB", NULL);
    struct store *s = NULL;
    int c, again = 0, status;
    int limit = 20;
    char err[512];

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        switch (c) {
        case 'r': again = 1; break;
        case 'l':
            if (cli_option_int("limit", optarg, 1, 1000, &limit) < 0) return CLI_EXIT_USAGE;
            break;
        case 'd': data = optarg; break;
        case 'D': db = optarg; break;
        case 'h': cli_search_help(stdout); return CLI_EXIT_OK;
        case ':': cli_error("%s needs a value", cli_bad_option(argc, argv)); return CLI_EXIT_USAGE;
        default: cli_error("unknown option %s (see hark search --help)", cli_bad_option(argc, argv)); return CLI_EXIT_USAGE;
        }
    }
    if (argc - optind > 1 || (again && optind < argc)) {
        cli_error("search takes one QUERY (quote it), or --reindex alone (see hark search --help)");
        return CLI_EXIT_USAGE;
    }
    if (!again && optind == argc) {
        cli_error("search needs a QUERY, or --reindex (see hark search --help)");
        return CLI_EXIT_USAGE;
    }
    if ((!db || !*db) && datadir_check(data, err, sizeof err) < 0) {
        cli_error("%s", err);
        return CLI_EXIT_FAIL;
    }
    if (cli_open_store(data, db, &s) < 0) return CLI_EXIT_FAIL;
    status = again ? reindex(s, data) : search(s, argv[optind], limit);
    store_close(s);
    return status;
}
