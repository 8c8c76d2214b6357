/*
 * keys.c: `hark keys add NAME [--admin]`, `hark keys list` and
 * `hark keys revoke NAME`: the API keys of the service's users.
 *
 * A key is 32 random bytes (OpenSSL's generator), written as "hark_" and 64 hex
 * digits; it is printed once, when it is added, and the store keeps only
 * its SHA-256 (store_key_hash), which is enough to recognise it and useless
 * for making one. A key's name is the owner of every upload sent with it
 * (store.h); `hark serve` reads the keys from the same store on every
 * request, so a key added or revoked here counts at once, without a
 * restart. The store is found as serve finds it: --db, HARK_DB, or
 * <data>/hark.db under --data (HARK_DATA, default ./data).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>

#include "cli.h"
#include "datadir.h"
#include "hark.h"
#include "store.h"

#define KEY_BYTES 32

void cli_keys_help(FILE *out)
{
    fputs("usage: hark keys add NAME [--admin] [options]\n"
          "       hark keys list [options]\n"
          "       hark keys revoke NAME [options]\n"
          "\n"
          "The API keys of hark serve's users. Each key has an owner, its NAME: an upload\n"
          "sent with a key belongs to it, and the key sees, schedules, downloads and\n"
          "deletes only its own uploads; an --admin key sees every owner's. Once a key\n"
          "has been added, a request without a valid key is refused (401). The key is\n"
          "printed once, by add; the store keeps only its SHA-256. A revoked key is\n"
          "refused from then on; its uploads stay, and its name is not given again.\n"
          "\n"
          "  add NAME       make a key named NAME (letters, digits, '.', '_', '-';\n"
          "                 at most 63) and print it on stdout\n"
          "  list           name, when added, admin or not, when revoked; never the key\n"
          "  revoke NAME    refuse the key from now on\n"
          "\n"
          "options:\n"
          "  --admin        (add) the key sees and changes every owner's uploads\n"
          "  --data DIR     the data folder whose database holds the keys (HARK_DATA;\n"
          "                 default ./data)\n"
          "  --db LOCATION  the database: an SQLite file, or a postgres:// URI (HARK_DB;\n"
          "                 default <data>/hark.db), as given to hark serve\n",
          out);
}

static const struct option long_options[] = {
    {"admin", no_argument, 0, 'a'},
    {"data", required_argument, 0, 'd'},
    {"db", required_argument, 0, 'D'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

/* Opens the store as serve does; making the data folder only for add (a
 * missing folder is a mistake to report for list and revoke). Returns 0,
 * or -1 after an error line. */
static int open_store(const char *data, const char *db, int make, struct store **out)
{
    char err[512];
    if ((!db || !*db) &&
        (make ? datadir_make(data, err, sizeof err) : datadir_check(data, err, sizeof err)) < 0) {
        cli_error("%s", err);
        return -1;
    }
    return cli_open_store(data, db, out);
}

/* A new key, "hark_" and KEY_BYTES random bytes in hex, into out (at least
 * 6 + 2 * KEY_BYTES bytes). -1 when OpenSSL's generator has no seed. */
static int make_key(char *out)
{
    unsigned char b[KEY_BYTES];
    if (RAND_bytes(b, sizeof b) != 1) return -1;
    memcpy(out, "hark_", 5);
    for (size_t i = 0; i < sizeof b; i++) snprintf(out + 5 + 2 * i, 3, "%02x", b[i]);
    return 0;
}

static int keys_add(struct store *s, const char *name, int admin)
{
    char key[6 + 2 * KEY_BYTES], hash[65];
    int rc;
    if (make_key(key) < 0) {
        cli_error("no random numbers for a key");
        return CLI_EXIT_FAIL;
    }
    if (store_key_hash(key, hash) < 0) {
        cli_error("%s", store_error(s));
        return CLI_EXIT_FAIL;
    }
    rc = store_key_add(s, name, hash, admin);
    if (rc == HARK_EEXIST) {
        cli_error("a key named \"%s\" exists or was revoked; names are not given twice", name);
        return CLI_EXIT_FAIL;
    }
    if (rc < 0) {
        cli_error("%s", store_error(s));
        return CLI_EXIT_FAIL;
    }
    printf("%s\n", key);
    fflush(stdout);
    fprintf(stderr, "hark: added %s \"%s\"; it is shown only this once\n", admin ? "admin key" : "key",
            name);
    return CLI_EXIT_OK;
}

static int keys_list(struct store *s)
{
    struct store_key *rows = NULL;
    int n = 0;
    if (store_key_list(s, &rows, &n) < 0) {
        cli_error("%s", store_error(s));
        return CLI_EXIT_FAIL;
    }
    printf("%-24s %-24s %-5s %s\n", "NAME", "CREATED", "ADMIN", "REVOKED");
    for (int i = 0; i < n; i++)
        printf("%-24s %-24s %-5s %s\n", rows[i].name, rows[i].created, rows[i].admin ? "yes" : "no",
               rows[i].revoked[0] ? rows[i].revoked : "-");
    free(rows);
    return CLI_EXIT_OK;
}

static int keys_revoke(struct store *s, const char *name)
{
    int rc = store_key_revoke(s, name);
    if (rc == HARK_ENOENT) {
        cli_error("no key named \"%s\" (see hark keys list)", name);
        return CLI_EXIT_FAIL;
    }
    if (rc < 0) {
        cli_error("%s", store_error(s));
        return CLI_EXIT_FAIL;
    }
    fprintf(stderr, "hark: revoked key \"%s\"\n", name);
    return CLI_EXIT_OK;
}

int cli_keys(int argc, char **argv)
{
    const char *data = cli_env_str("HARK_DATA", "./data"), *db = cli_env_str("HARK_DB", NULL);
    const char *verb, *name = NULL;
    struct store *s = NULL;
    int c, admin = 0, status;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        switch (c) {
        case 'a': admin = 1; break;
        case 'd': data = optarg; break;
        case 'D': db = optarg; break;
        case 'h': cli_keys_help(stdout); return CLI_EXIT_OK;
        case ':': cli_error("%s needs a value", cli_bad_option(argc, argv)); return CLI_EXIT_USAGE;
        default: cli_error("unknown option %s (see hark keys --help)", cli_bad_option(argc, argv)); return CLI_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        cli_error("keys needs add, list or revoke (see hark keys --help)");
        return CLI_EXIT_USAGE;
    }
    verb = argv[optind++];
    if (!strcmp(verb, "add") || !strcmp(verb, "revoke")) {
        if (optind >= argc) {
            cli_error("keys %s needs a NAME", verb);
            return CLI_EXIT_USAGE;
        }
        name = argv[optind++];
    } else if (strcmp(verb, "list")) {
        cli_error("unknown keys command \"%s\": add, list or revoke", verb);
        return CLI_EXIT_USAGE;
    }
    if (optind < argc) {
        cli_error("unexpected argument \"%s\" (see hark keys --help)", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    if (!strcmp(verb, "add") && !store_key_name_ok(name)) {
        cli_error("bad key name \"%s\": 1 to 63 letters, digits, '.', '_' or '-'", name);
        return CLI_EXIT_USAGE;
    }
    if (admin && strcmp(verb, "add")) {
        cli_error("--admin goes with keys add");
        return CLI_EXIT_USAGE;
    }
    if (open_store(data, db, !strcmp(verb, "add"), &s) < 0) return CLI_EXIT_FAIL;
    if (!strcmp(verb, "add")) status = keys_add(s, name, admin);
    else if (!strcmp(verb, "revoke")) status = keys_revoke(s, name);
    else status = keys_list(s);
    store_close(s);
    return status;
}
