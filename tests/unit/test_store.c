/*
 * test_store.c: the store (store.h) over each of its backends.
 *
 * Every test runs against SQLite and, when HARK_TEST_PG names a PostgreSQL
 * database (tests/store/test_store_pg.sh starts a throwaway cluster and
 * sets it), against PostgreSQL too, under the same name with "pg_" in
 * front. A few tests are about one backend only: a file that is not a
 * database, a killed writer's WAL, for SQLite; an unreachable server, a
 * dropped connection, the job notification, for PostgreSQL.
 *
 * Each test opens its own database: a file in the test's temporary folder,
 * or a new database in the PostgreSQL cluster. Expected values come from
 * what the test itself put in (ids, dates, order of creation), never from
 * the store; where a test needs to look under the store (schema_version
 * rows, journal mode, a job table left empty by a cascade) or to set up a
 * state the API cannot make (a newer schema, a writer killed
 * mid-transaction), it opens the database directly with SQLite or libpq.
 * Timings (10,000 uploads, listing them) are printed, not judged.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "hark.h"
#include "queue.h"
#include "store.h"

/* ---------------------------------------------------------------- helpers */

enum { ON_SQLITE, ON_PG };

/* The backend the running test uses, and the PostgreSQL database given. */
static int backend = ON_SQLITE;
static const char *pg_base;

static char db_path[512];

/* The URI of database dbname on the server of pg_base: the same URI with
 * its path replaced. */
static void pg_uri(char *out, size_t outlen, const char *dbname)
{
    const char *auth = strstr(pg_base, "://");
    auth = auth ? auth + 3 : pg_base;
    const char *path = auth + strcspn(auth, "/?");
    const char *query = strchr(path, '?');
    if (!query) query = path + strlen(path);
    snprintf(out, outlen, "%.*s/%s%s", (int)(path - pg_base), pg_base, dbname, query);
}

/* "database ... does not exist, skipping" and the like are not news. */
static void pg_quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Runs one statement on the PostgreSQL database at uri: 0 or -1. */
static int pg_exec(const char *uri, const char *sql)
{
    PGconn *c = PQconnectdb(uri);
    int rc = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PQsetNoticeProcessor(c, pg_quiet, NULL);
        PGresult *r = PQexec(c, sql);
        ExecStatusType es = PQresultStatus(r);
        if (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK) rc = 0;
        else printf("  pg_exec: %s: %s", sql, PQerrorMessage(c));
        PQclear(r);
    } else {
        printf("  pg_exec: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return rc;
}

/* A fresh database for the running test: a file path for SQLite; for
 * PostgreSQL a new, empty database hark_t_<name> and its URI. */
static const char *fresh_path(const char *name)
{
    if (backend == ON_SQLITE) {
        snprintf(db_path, sizeof db_path, "%s/%s.db", t_tmpdir(), name);
        return db_path;
    }
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS hark_t_%s WITH (FORCE)", name);
    CHECK(pg_exec(pg_base, sql) == 0);
    snprintf(sql, sizeof sql, "CREATE DATABASE hark_t_%s", name);
    CHECK(pg_exec(pg_base, sql) == 0);
    snprintf(sql, sizeof sql, "hark_t_%s", name);
    pg_uri(db_path, sizeof db_path, sql);
    return db_path;
}

static struct store *open_store(const char *path)
{
    struct store *s = NULL;
    char err[512] = "";
    int rc = store_open(path, &s, err, sizeof err);
    CHECKF(rc == 0 && s, "store_open %s: %d %s", path, rc, err);
    return s;
}

/* Upload number i: id "up-<i>", a sha derived from i, a date that grows
 * with i by one second from 2026-01-01 (for i below 86,400) unless date
 * is given. */
static void make_upload(struct store_upload *u, int i, const char *date)
{
    memset(u, 0, sizeof *u);
    snprintf(u->id, sizeof u->id, "up-%06d", i);
    snprintf(u->filename, sizeof u->filename, "file-%d.wav", i);
    snprintf(u->sha256, sizeof u->sha256, "%064x", i + 1);
    snprintf(u->content_type, sizeof u->content_type, "audio/wav");
    snprintf(u->model, sizeof u->model, "rt-mini.en-f16");
    if (date) {
        snprintf(u->upload_date, sizeof u->upload_date, "%s", date);
    } else {
        int h = (i / 3600) % 24, m = (i / 60) % 60, sec = i % 60;
        snprintf(u->upload_date, sizeof u->upload_date, "2026-01-01T%02d:%02d:%02d.000Z", h, m, sec);
    }
    u->size = 1000 + i;
    u->duration_s = 1.5 * i;
}

static int insert(struct store *s, int i, const char *date)
{
    struct store_upload u;
    make_upload(&u, i, date);
    int rc = store_upload_insert(s, &u, NULL);
    CHECKF(rc == 0, "insert %d: %d %s", i, rc, store_error(s));
    return rc;
}

/* Uploads 0..n-1, each with one job queued, in that order: job i + 1 is
 * upload i's. */
static void insert_queued(struct store *s, int n)
{
    for (int i = 0; i < n; i++) {
        char id[40];
        insert(s, i, NULL);
        snprintf(id, sizeof id, "up-%06d", i);
        CHECK(store_job_enqueue(s, id, "m", "", "transcribe", NULL, NULL, NULL) == 0);
    }
}

/* Counts a claimed job id into seen[1..n], or into *bad when out of range. */
static void count_claim(int *seen, int n, int64_t id, int *bad)
{
    if (id < 1 || id > n) (*bad)++;
    else seen[id]++;
}

/* Checks that each of jobs 1..n was claimed exactly once and no claim was bad. */
static void check_claimed_once(const int *seen, int n, int bad)
{
    int twice = 0, never = 0;
    for (int k = 1; k <= n; k++) {
        if (seen[k] > 1) twice++;
        if (seen[k] == 0) never++;
    }
    CHECKF(bad == 0 && twice == 0 && never == 0, "bad %d, twice %d, never %d", bad, twice, never);
}

/* Child processes that start at one moment. Each runs a body that calls
 * child_ready() when it is set to go (which returns once the parent has
 * called release_children()) and gives the child's exit status; a child
 * may write the ids of the jobs it claimed (int64_t) to ids[1]. */
#define MAX_CHILDREN 4

struct children {
    int n;
    pid_t pids[MAX_CHILDREN];
    int ids[2];   /* job ids from the children */
    int ready[2]; /* a byte from each child that is ready */
    int go[2];    /* a byte to each child to start it */
};

typedef int (*child_body)(struct children *ch, const char *path, int c);

/* In a child: says it is ready and waits for the start; 0 or -1. */
static int child_ready(struct children *ch)
{
    char b = 1;
    return write(ch->ready[1], &b, 1) == 1 && read(ch->go[0], &b, 1) == 1 ? 0 : -1;
}

/* Forks n children running body on path; returns when all are ready. */
static void start_children(struct children *ch, int n, const char *path, child_body body)
{
    ch->n = n;
    CHECK(pipe(ch->ids) == 0 && pipe(ch->ready) == 0 && pipe(ch->go) == 0);
    for (int c = 0; c < n; c++) {
        ch->pids[c] = fork();
        if (ch->pids[c] == 0) {
            close(ch->ids[0]);
            _exit(body(ch, path, c));
        }
    }
    close(ch->ids[1]);
    char b = 0;
    for (int c = 0; c < n; c++) CHECK(read(ch->ready[0], &b, 1) == 1);
}

/* Lets every child go at once. */
static void release_children(struct children *ch)
{
    char b = 0;
    for (int c = 0; c < ch->n; c++) CHECK(write(ch->go[1], &b, 1) == 1);
    close(ch->ready[0]);
    close(ch->ready[1]);
    close(ch->go[0]);
    close(ch->go[1]);
}

/* Reads the job ids the children claimed until all of them are done
 * writing, counting each into seen[1..n_jobs] (count_claim); how many. */
static int read_child_ids(struct children *ch, int *seen, int n_jobs, int *bad)
{
    int count = 0;
    int64_t id;
    while (read(ch->ids[0], &id, sizeof id) == (ssize_t)sizeof id) {
        count_claim(seen, n_jobs, id, bad);
        count++;
    }
    return count;
}

/* Waits for every child and checks that each exited with status 0. */
static void reap_children(struct children *ch)
{
    close(ch->ids[0]);
    for (int c = 0; c < ch->n; c++) {
        int status = 0;
        CHECK(ch->pids[c] > 0 && waitpid(ch->pids[c], &status, 0) == ch->pids[c]);
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d status %d", c, status);
    }
}

/* Runs a query that returns one integer on the PostgreSQL database. */
static int64_t pg_int(const char *uri, const char *sql)
{
    PGconn *c = PQconnectdb(uri);
    int64_t v = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        else
            printf("  pg_int: %s: %s", sql, PQerrorMessage(c));
        PQclear(r);
    }
    PQfinish(c);
    return v;
}

static int64_t sql_int(const char *path, const char *sql)
{
    if (backend == ON_PG) return pg_int(path, sql);
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int64_t v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) goto done;
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) goto done;
    if (sqlite3_step(q) == SQLITE_ROW) v = sqlite3_column_int64(q, 0);
done:
    if (!q && db) printf("  sql_int: %s: %s\n", sql, sqlite3_errmsg(db));
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

/* Runs statements on the database directly: 0 (SQLITE_OK) or an error. */
static int sql_exec(const char *path, const char *sql)
{
    if (backend == ON_PG) return pg_exec(path, sql);
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) printf("  sql_exec: %s: %s\n", sql, db ? sqlite3_errmsg(db) : "?");
    sqlite3_close(db);
    return rc;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* ---------------------------------------------------------------- tests */

static void test_now(void)
{
    char a[32], b[32];
    store_now(a);
    store_now(b);
    /* "2026-11-24T08:01:02.345Z": 24 characters in a fixed layout. */
    CHECKF(strlen(a) == 24, "'%s'", a);
    CHECK(a[4] == '-' && a[7] == '-' && a[10] == 'T' && a[13] == ':' && a[16] == ':' &&
          a[19] == '.' && a[23] == 'Z');
    CHECK(strncmp(a, "20", 2) == 0);
    CHECKF(strcmp(a, b) <= 0, "%s then %s", a, b);
    CHECK(store_schema_version() >= 1);
}

static void test_open_new(void)
{
    const char *path = fresh_path("open_new");
    struct store *s = open_store(path);
    if (!s) return;
    store_close(s);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM schema_version") == store_schema_version());
    CHECK(sql_int(path, "SELECT MAX(version) FROM schema_version") == store_schema_version());
    if (backend == ON_PG) {
        CHECK(sql_int(path, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name IN "
                            "('uploads','jobs') AND table_schema = current_schema()") == 2);
        /* A second open finds the schema current. */
        s = open_store(path);
        if (s) CHECK(insert(s, 1, NULL) == 0);
        store_close(s);
        CHECK(sql_int(path, "SELECT COUNT(*) FROM uploads") == 1);
        CHECK(sql_int(path, "SELECT COUNT(*) FROM schema_version") == store_schema_version());
        return;
    }
    CHECK(sql_int(path, "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('uploads','jobs')") == 2);
    /* WAL is a property of the file: a plain connection sees it. */
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    sqlite3_stmt *q;
    CHECK(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(q) == SQLITE_ROW);
    CHECKF(strcmp((const char *)sqlite3_column_text(q, 0), "wal") == 0, "journal mode %s",
           sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    sqlite3_close(db);

    /* The "sqlite:" prefix names the same kind of store. */
    char loc[600];
    snprintf(loc, sizeof loc, "sqlite:%s", path);
    s = open_store(loc);
    if (s) CHECK(insert(s, 1, NULL) == 0);
    store_close(s);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM uploads") == 1);

    /* A PostgreSQL URI goes to PostgreSQL, whatever the path looks like:
     * nothing listens on port 1, so it fails to connect. */
    char err[256] = "";
    s = (struct store *)1;
    CHECK(store_open("postgres://hark@127.0.0.1:1/hark", &s, err, sizeof err) == HARK_EIO);
    CHECK(s == NULL);
    CHECKF(strstr(err, "PostgreSQL") != NULL, "err '%s'", err);
    s = (struct store *)1;
    CHECK(store_open("postgresql://127.0.0.1:1/hark?connect_timeout=2", &s, err, sizeof err) ==
          HARK_EIO);
    CHECK(s == NULL);
    CHECK(store_open("", &s, err, sizeof err) == HARK_EINVAL);
    CHECK(store_open(":memory:", &s, err, sizeof err) == HARK_EINVAL);
    store_close(NULL);
}

static void test_upload_insert_get(void)
{
    struct store *s = open_store(fresh_path("insert_get"));
    if (!s) return;
    struct store_upload in, out;
    make_upload(&in, 7, "2026-11-24T08:01:02.345Z");
    CHECK(store_upload_insert(s, &in, NULL) == 0);
    /* Fields insert must ignore. */
    memset(&out, 0x55, sizeof out);
    CHECK(store_upload_get(s, in.id, &out) == 0);
    CHECK(strcmp(out.id, "up-000007") == 0);
    CHECK(strcmp(out.filename, "file-7.wav") == 0);
    CHECK(strcmp(out.sha256, in.sha256) == 0 && strlen(out.sha256) == 64);
    CHECK(strcmp(out.content_type, "audio/wav") == 0);
    CHECK(strcmp(out.model, "rt-mini.en-f16") == 0);
    CHECK(strcmp(out.upload_date, "2026-11-24T08:01:02.345Z") == 0);
    CHECK(out.size == 1007);
    CHECK(out.duration_s == 10.5);
    CHECK(out.model_ran == 0 && out.model_date[0] == 0 && out.time_s == 0 && out.language[0] == 0);
    CHECK(out.job_id == 0 && strcmp(out.status, "uploaded") == 0 && out.progress == 0);
    CHECK(out.queue_position == 0 && out.error[0] == 0);

    CHECK(store_upload_get(s, "no-such-id", &out) == HARK_ENOENT);
    CHECKF(strstr(store_error(s), "store_upload_get") && strstr(store_error(s), "no-such-id"),
           "error '%s'", store_error(s));
    CHECK(store_upload_get(s, NULL, &out) == HARK_EINVAL);
    CHECK(store_upload_get(NULL, in.id, &out) == HARK_EINVAL);

    /* An upload needs an id and a hash. */
    struct store_upload bad = in;
    bad.sha256[0] = 0;
    CHECK(store_upload_insert(s, &bad, NULL) == HARK_EINVAL);
    /* The same id with other bytes is refused, not a duplicate. */
    bad = in;
    bad.sha256[0] = 'f';
    CHECK(store_upload_insert(s, &bad, NULL) == HARK_EINVAL);
    CHECKF(strstr(store_error(s), "store_upload_insert") != NULL, "'%s'", store_error(s));
    struct store_stats stats;
    CHECK(store_stats(s, &stats) == 0 && stats.uploads == 1);
    store_close(s);
}

static void test_duplicate(void)
{
    const char *path = fresh_path("duplicate");
    struct store *s = open_store(path);
    if (!s) return;
    struct store_upload a, b, existing;
    make_upload(&a, 1, NULL);
    CHECK(store_upload_insert(s, &a, NULL) == 0);
    struct store_job job;
    CHECK(store_job_enqueue(s, a.id, "m", "", "transcribe", NULL, &job, NULL) == 0);

    make_upload(&b, 2, NULL);
    memcpy(b.sha256, a.sha256, sizeof b.sha256);
    memset(&existing, 0, sizeof existing);
    int64_t changes_before = sql_int(path, "SELECT COUNT(*) FROM uploads");
    CHECK(store_upload_insert(s, &b, &existing) == HARK_EEXIST);
    CHECK(strcmp(existing.id, a.id) == 0);
    CHECK(strcmp(existing.filename, a.filename) == 0);
    CHECK(existing.size == a.size);
    CHECK(existing.job_id == job.id && strcmp(existing.status, "queued") == 0);
    CHECK(existing.queue_position == 1);
    CHECK(store_upload_insert(s, &b, NULL) == HARK_EEXIST);
    CHECK(store_upload_get(s, b.id, &existing) == HARK_ENOENT);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM uploads") == changes_before);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM uploads WHERE id = 'up-000002'") == 0);
    store_close(s);
}

/* The same bytes are one upload per owner: a second owner's copy is a row
 * of its own, a duplicate only within one owner; listings by owner count
 * and show that owner's rows only; deleting one copy leaves the other. */
static void test_owners(void)
{
    const char *path = fresh_path("owners");
    struct store *s = open_store(path);
    if (!s) return;
    struct store_upload a, b, c, existing, *rows = NULL;
    int n = -1;
    int64_t total = -1;
    make_upload(&a, 1, NULL);
    snprintf(a.owner, sizeof a.owner, "alice");
    CHECK(store_upload_insert(s, &a, NULL) == 0);
    make_upload(&b, 2, NULL);
    memcpy(b.sha256, a.sha256, sizeof b.sha256);
    snprintf(b.owner, sizeof b.owner, "bob");
    CHECK(store_upload_insert(s, &b, NULL) == 0);
    make_upload(&c, 3, NULL);
    memcpy(c.sha256, a.sha256, sizeof c.sha256);
    snprintf(c.owner, sizeof c.owner, "alice");
    memset(&existing, 0, sizeof existing);
    CHECK(store_upload_insert(s, &c, &existing) == HARK_EEXIST);
    CHECK(strcmp(existing.id, a.id) == 0 && strcmp(existing.owner, "alice") == 0);
    /* The service's own (owner "") is a third owner. */
    c.owner[0] = 0;
    CHECK(store_upload_insert(s, &c, NULL) == 0);

    CHECK(store_upload_get(s, b.id, &existing) == 0 && strcmp(existing.owner, "bob") == 0);
    CHECK(store_upload_list_owner(s, "alice", 10, 0, &rows, &n, &total) == 0);
    CHECK(n == 1 && total == 1 && rows && strcmp(rows[0].id, a.id) == 0 && strcmp(rows[0].owner, "alice") == 0);
    free(rows);
    CHECK(store_upload_list_owner(s, "bob", 10, 0, &rows, &n, &total) == 0);
    CHECK(n == 1 && total == 1 && rows && strcmp(rows[0].id, b.id) == 0);
    free(rows);
    CHECK(store_upload_list_owner(s, "", 10, 0, &rows, &n, &total) == 0);
    CHECK(n == 1 && total == 1 && rows && strcmp(rows[0].id, c.id) == 0);
    free(rows);
    CHECK(store_upload_list_owner(s, "carol", 10, 0, &rows, &n, &total) == 0);
    CHECK(n == 0 && total == 0 && rows == NULL);
    /* Newest first: c, b, a. */
    CHECK(store_upload_list_owner(s, NULL, 10, 0, &rows, &n, &total) == 0);
    CHECK(n == 3 && total == 3 && rows && strcmp(rows[0].id, c.id) == 0 && strcmp(rows[2].id, a.id) == 0);
    free(rows);
    CHECK(store_upload_list_owner(s, "alice", 10, 1, &rows, &n, &total) == 0);
    CHECK(n == 0 && total == 1);
    free(rows);

    CHECK(store_upload_delete(s, a.id) == 0);
    CHECK(store_upload_get(s, b.id, &existing) == 0 && strcmp(existing.sha256, a.sha256) == 0);
    /* With alice's copy gone she may send the bytes again. */
    c = a;
    snprintf(c.id, sizeof c.id, "up-000009");
    CHECK(store_upload_insert(s, &c, NULL) == 0);
    store_close(s);
}

/* API keys: kept as a hash, never twice under one name, revoked for good;
 * the count includes revoked keys. */
static void test_keys(void)
{
    const char *path = fresh_path("keys");
    struct store *s = open_store(path);
    if (!s) return;
    char h1[65], h2[65], h3[65];
    CHECK(store_key_hash("abc", h1) == 0);
    CHECKF(strcmp(h1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0, "'%s'", h1);
    CHECK(store_key_hash("hark_key_alice", h1) == 0 && store_key_hash("hark_key_root", h2) == 0 &&
          store_key_hash("hark_key_other", h3) == 0);
    int64_t count = -1;
    CHECK(store_key_count(s, &count) == 0 && count == 0);
    CHECK(store_key_add(s, "alice", h1, 0) == 0);
    CHECK(store_key_add(s, "root", h2, 1) == 0);
    CHECK(store_key_add(s, "alice", h3, 1) == HARK_EEXIST);
    CHECK(store_key_add(s, "a b", h3, 0) == HARK_EINVAL);
    CHECK(store_key_add(s, "", h3, 0) == HARK_EINVAL);
    CHECK(store_key_add(s, "carol", "not-a-hash", 0) == HARK_EINVAL);
    CHECK(store_key_add(s, "carol", "HARK", 0) == HARK_EINVAL);
    CHECK(store_key_count(s, &count) == 0 && count == 2);
    /* The row holds the hash it was given. */
    {
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM api_keys WHERE name = 'alice' AND hash = '%s'", h1);
        CHECK(sql_int(path, sql) == 1);
    }

    struct store_key k, *rows = NULL;
    int n = -1;
    CHECK(store_key_find(s, h1, &k) == 0 && strcmp(k.name, "alice") == 0 && k.admin == 0 && k.revoked[0] == 0);
    CHECK(strlen(k.created) == 24);
    CHECK(store_key_find(s, h2, &k) == 0 && strcmp(k.name, "root") == 0 && k.admin == 1);
    CHECK(store_key_find(s, h3, &k) == HARK_ENOENT);
    CHECK(store_key_list(s, &rows, &n) == 0 && n == 2 && rows);
    if (rows && n == 2) {
        CHECK(strcmp(rows[0].name, "alice") == 0 && rows[0].admin == 0);
        CHECK(strcmp(rows[1].name, "root") == 0 && rows[1].admin == 1);
    }
    free(rows);

    CHECK(store_key_revoke(s, "alice") == 0);
    CHECK(store_key_find(s, h1, &k) == HARK_ENOENT);
    CHECK(store_key_list(s, &rows, &n) == 0 && n == 2 && rows && rows[0].revoked[0] != 0);
    char when[32] = "";
    if (rows) snprintf(when, sizeof when, "%s", rows[0].revoked);
    free(rows);
    CHECK(store_key_revoke(s, "alice") == 0);
    CHECK(store_key_list(s, &rows, &n) == 0 && n == 2 && rows && strcmp(rows[0].revoked, when) == 0);
    free(rows);
    CHECK(store_key_revoke(s, "nobody") == HARK_ENOENT);
    CHECK(store_key_add(s, "alice", h3, 0) == HARK_EEXIST);
    CHECK(store_key_count(s, &count) == 0 && count == 2);
    CHECK(store_key_find(s, h2, &k) == 0);
    store_close(s);

    /* Kept across a reopen. */
    s = open_store(path);
    if (!s) return;
    CHECK(store_key_find(s, h2, &k) == 0 && k.admin == 1);
    CHECK(store_key_find(s, h1, &k) == HARK_ENOENT);
    store_close(s);
}

/* A job's own settings are kept as given and come back with the job, from
 * every read and from the claim; too long a value is refused. */
static void test_job_options(void)
{
    struct store *s = open_store(fresh_path("options"));
    if (!s) return;
    CHECK(insert(s, 1, NULL) == 0);
    CHECK(insert(s, 2, NULL) == 0);
    static const char opts[] = "{\"vad\":{\"threshold\":0.6,\"pad_ms\":40}}";
    struct store_job job, got;
    CHECK(store_job_enqueue(s, "up-000001", "m", "", "transcribe", opts, &job, NULL) == 0);
    CHECK(strcmp(job.options, opts) == 0);
    CHECK(store_job_get(s, job.id, &got) == 0 && strcmp(got.options, opts) == 0);
    CHECK(store_job_active(s, "up-000001", &got) == 0 && strcmp(got.options, opts) == 0);
    CHECK(store_job_claim(s, "w", &got) == 0 && got.id == job.id && strcmp(got.options, opts) == 0);
    CHECK(store_job_enqueue(s, "up-000002", "m", "", "transcribe", NULL, &job, NULL) == 0 && job.options[0] == 0);
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CHECK(store_job_enqueue(s, "up-000001", "m", "", "transcribe", big, &job, NULL) == HARK_EINVAL);
    store_close(s);
}

/* Strings longer than their fields are cut at a character boundary. */
static void test_truncation(void)
{
    struct store *s = open_store(fresh_path("truncation"));
    if (!s) return;
    CHECK(insert(s, 1, NULL) == 0);
    /* 200 two-byte characters (400 bytes) into model[128]: 127 bytes fit,
     * which would split a character, so 126 are kept. */
    char model[401];
    for (int i = 0; i < 200; i++) memcpy(model + 2 * i, "\xc3\xa9", 2);
    model[400] = 0;
    char error[600];
    memset(error, 'e', sizeof error - 1);
    error[sizeof error - 1] = 0;
    struct store_job job;
    CHECK(store_job_enqueue(s, "up-000001", model, "en", "translate", NULL, &job, NULL) == 0);
    CHECKF(strlen(job.model) == 126, "model length %zu", strlen(job.model));
    CHECK(memcmp(job.model, model, 126) == 0);
    CHECK(strcmp(job.task, "translate") == 0 && strcmp(job.language, "en") == 0);
    /* The worker name fills worker[64] exactly: 63 bytes and the NUL. */
    char worker[100];
    memset(worker, 'w', sizeof worker - 1);
    worker[sizeof worker - 1] = 0;
    CHECK(store_job_claim(s, worker, &job) == 0);
    CHECK(strlen(job.worker) == 63);
    CHECK(store_job_fail(s, job.id, worker, error) == 0);
    CHECK(store_job_get(s, job.id, &job) == 0);
    CHECK(strlen(job.error) == 255 && job.error[0] == 'e');
    struct store_upload u;
    CHECK(store_upload_get(s, "up-000001", &u) == 0);
    CHECK(strcmp(u.status, "failed") == 0 && strlen(u.error) == 255);
    store_close(s);
}

static void test_list(void)
{
    struct store *s = open_store(fresh_path("list"));
    if (!s) return;
    /* 25 uploads: dates grow with i, except 10..14 which share one date
     * (then the id, descending, decides). Expected order, newest first:
     * 24..15, then 14..10 (same date, ids descending), then 9..0. */
    for (int i = 0; i < 25; i++) {
        const char *date = i >= 10 && i < 15 ? "2026-01-01T00:00:12.000Z" : NULL;
        insert(s, i, date);
    }
    int expect[25];
    for (int k = 0; k < 25; k++) expect[k] = 24 - k;

    struct store_upload *rows = NULL;
    int n = -1;
    int64_t total = -1;
    CHECK(store_upload_list(s, 10, 0, &rows, &n, &total) == 0);
    CHECK(n == 10 && total == 25);
    for (int k = 0; k < n && rows; k++) {
        char id[40];
        snprintf(id, sizeof id, "up-%06d", expect[k]);
        CHECKF(strcmp(rows[k].id, id) == 0, "row %d: %s, expected %s", k, rows[k].id, id);
        CHECK(strcmp(rows[k].status, "uploaded") == 0);
    }
    free(rows);

    CHECK(store_upload_list(s, 10, 20, &rows, &n, &total) == 0);
    CHECK(n == 5 && total == 25);
    for (int k = 0; k < n && rows; k++) {
        char id[40];
        snprintf(id, sizeof id, "up-%06d", expect[20 + k]);
        CHECKF(strcmp(rows[k].id, id) == 0, "row %d: %s, expected %s", 20 + k, rows[k].id, id);
    }
    free(rows);

    /* The whole list in pages of 7 is the whole list at once. */
    struct store_upload *all = NULL;
    CHECK(store_upload_list(s, 100, 0, &all, &n, &total) == 0 && n == 25);
    for (int off = 0; off < 25 && all; off += 7) {
        CHECK(store_upload_list(s, 7, off, &rows, &n, &total) == 0);
        CHECK(n == (25 - off < 7 ? 25 - off : 7));
        for (int k = 0; k < n; k++) CHECK(strcmp(rows[k].id, all[off + k].id) == 0);
        free(rows);
    }
    free(all);

    rows = (struct store_upload *)1;
    CHECK(store_upload_list(s, 10, 30, &rows, &n, &total) == 0);
    CHECK(n == 0 && rows == NULL && total == 25);
    CHECK(store_upload_list(s, 0, 0, &rows, &n, &total) == 0);
    CHECK(n == 0 && rows == NULL && total == 25);
    CHECK(store_upload_list(s, -1, 0, &rows, &n, &total) == HARK_EINVAL);
    CHECK(store_upload_list(s, 10, -1, &rows, &n, &total) == HARK_EINVAL);
    store_close(s);
}

static void test_enqueue_position(void)
{
    struct store *s = open_store(fresh_path("enqueue"));
    if (!s) return;
    for (int i = 1; i <= 4; i++) insert(s, i, NULL);
    struct store_job jobs[3];
    for (int i = 0; i < 3; i++) {
        char id[40];
        snprintf(id, sizeof id, "up-%06d", i + 1);
        int pos = -1;
        CHECK(store_job_enqueue(s, id, "tiny", "", "transcribe", NULL, &jobs[i], &pos) == 0);
        CHECKF(pos == i + 1, "position %d for job %d", pos, i);
        CHECK(strcmp(jobs[i].state, "queued") == 0 && jobs[i].attempts == 0);
        CHECK(strcmp(jobs[i].upload_id, id) == 0 && strcmp(jobs[i].model, "tiny") == 0);
        CHECK(jobs[i].created[0] && !jobs[i].started[0] && !jobs[i].finished[0]);
        CHECK(i == 0 || jobs[i].id > jobs[i - 1].id);
    }
    /* A second job for an upload with an active one. */
    struct store_job active;
    int pos = -1;
    CHECK(store_job_enqueue(s, "up-000002", "base", "", "transcribe", NULL, &active, &pos) == HARK_EBUSY);
    CHECK(active.id == jobs[1].id && strcmp(active.model, "tiny") == 0);
    CHECK(store_job_enqueue(s, "nope", "base", "", "transcribe", NULL, &active, &pos) == HARK_ENOENT);
    CHECK(store_job_enqueue(s, "up-000004", "base", "", "summarise", NULL, &active, &pos) == HARK_EINVAL);
    /* NULL outputs and a default task. */
    CHECK(store_job_enqueue(s, "up-000004", NULL, NULL, NULL, NULL, NULL, NULL) == 0);
    CHECK(store_job_active(s, "up-000004", &active) == 0 && strcmp(active.task, "transcribe") == 0);

    struct store_upload u;
    CHECK(store_upload_get(s, "up-000002", &u) == 0);
    CHECK(strcmp(u.status, "queued") == 0 && u.queue_position == 2 && u.job_id == jobs[1].id);
    CHECK(store_job_active(s, "up-000003", &active) == 0 && active.id == jobs[2].id);

    struct store_job claimed;
    CHECK(store_job_claim(s, "w", &claimed) == 0 && claimed.id == jobs[0].id);
    CHECK(store_upload_get(s, "up-000001", &u) == 0);
    CHECK(strcmp(u.status, "running") == 0 && u.queue_position == 0);
    CHECK(store_upload_get(s, "up-000003", &u) == 0 && u.queue_position == 2);
    /* The list gives the same places (newest first: 4, 3, 2, 1). */
    struct store_upload *rows;
    int n;
    int64_t total;
    CHECK(store_upload_list(s, 10, 0, &rows, &n, &total) == 0 && n == 4);
    if (n == 4) {
        CHECK(rows[0].queue_position == 3 && rows[1].queue_position == 2);
        CHECK(rows[2].queue_position == 1 && rows[3].queue_position == 0);
        CHECK(strcmp(rows[3].status, "running") == 0);
    }
    free(rows);
    /* A new job goes after every queued one. */
    insert(s, 5, NULL);
    CHECK(store_job_enqueue(s, "up-000005", "tiny", "", "transcribe", NULL, NULL, &pos) == 0 && pos == 4);
    store_close(s);
}

static void test_claim_fifo(void)
{
    struct store *s = open_store(fresh_path("claim_fifo"));
    if (!s) return;
    struct store_job job;
    CHECK(store_job_claim(s, "w", &job) == HARK_EAGAIN);
    int64_t ids[5];
    /* Uploads enqueued in the order 3, 1, 4, 0, 2: claims follow that order. */
    const int order[5] = {3, 1, 4, 0, 2};
    for (int i = 0; i < 5; i++) insert(s, i, NULL);
    for (int k = 0; k < 5; k++) {
        char id[40];
        snprintf(id, sizeof id, "up-%06d", order[k]);
        CHECK(store_job_enqueue(s, id, "m", "", "transcribe", NULL, &job, NULL) == 0);
        ids[k] = job.id;
    }
    for (int k = 0; k < 5; k++) {
        char id[40];
        snprintf(id, sizeof id, "up-%06d", order[k]);
        CHECK(store_job_claim(s, "host:1", &job) == 0);
        CHECKF(job.id == ids[k] && strcmp(job.upload_id, id) == 0, "claim %d got %lld", k,
               (long long)job.id);
        CHECK(strcmp(job.state, "running") == 0 && job.attempts == 1);
        CHECK(strcmp(job.worker, "host:1") == 0 && job.started[0] && job.progress == 0);
    }
    CHECK(store_job_claim(s, "w", &job) == HARK_EAGAIN);
    CHECK(store_job_claim(s, "w", NULL) == HARK_EAGAIN);
    store_close(s);
}

/* ---- Four threads claim 200 jobs at once; a fifth lists meanwhile. */

#define N_CONC_JOBS 200
#define N_CLAIMERS 4

struct claimer {
    struct store *s;
    int64_t got[N_CONC_JOBS];
    int n_got;
    int errors;
};

static void *claim_loop(void *arg)
{
    struct claimer *c = arg;
    char name[32];
    snprintf(name, sizeof name, "w%ld-%p", (long)getpid(), arg);
    for (;;) {
        struct store_job job;
        int rc = store_job_claim(c->s, name, &job);
        if (rc == HARK_EAGAIN) break;
        if (rc != 0 || c->n_got >= N_CONC_JOBS) {
            c->errors++;
            break;
        }
        c->got[c->n_got++] = job.id;
        if (store_job_progress(c->s, job.id, name, 50) != 0) c->errors++;
        if (store_job_finish(c->s, job.id, name, NULL, "en", 0.5, NULL, 0) != 0) c->errors++;
    }
    return NULL;
}

static atomic_int readers_stop;

static void *list_loop(void *arg)
{
    struct claimer *c = arg;
    while (!readers_stop) {
        struct store_upload *rows;
        int n;
        int64_t total;
        if (store_upload_list(c->s, 50, 0, &rows, &n, &total) != 0 || total != N_CONC_JOBS) c->errors++;
        free(rows);
    }
    return NULL;
}

static void test_claim_threads(void)
{
    const char *path = fresh_path("claim_threads");
    struct store *s = open_store(path);
    if (!s) return;
    insert_queued(s, N_CONC_JOBS);
    static struct claimer cl[N_CLAIMERS + 1];
    pthread_t th[N_CLAIMERS + 1];
    memset(cl, 0, sizeof cl);
    readers_stop = 0;
    double t0 = now_us();
    for (int i = 0; i <= N_CLAIMERS; i++) {
        cl[i].s = s;
        pthread_create(&th[i], NULL, i < N_CLAIMERS ? claim_loop : list_loop, &cl[i]);
    }
    for (int i = 0; i < N_CLAIMERS; i++) pthread_join(th[i], NULL);
    double t1 = now_us();
    readers_stop = 1;
    pthread_join(th[N_CLAIMERS], NULL);

    int seen[N_CONC_JOBS + 1] = {0};
    int n_total = 0, bad = 0;
    for (int i = 0; i < N_CLAIMERS; i++) {
        CHECKF(cl[i].errors == 0, "claimer %d: %d errors", i, cl[i].errors);
        n_total += cl[i].n_got;
        for (int k = 0; k < cl[i].n_got; k++) {
            int64_t id = cl[i].got[k];
            count_claim(seen, N_CONC_JOBS, id, &bad);
            /* Each thread's claims come in id order (FIFO). */
            if (k > 0 && id <= cl[i].got[k - 1]) bad++;
        }
    }
    CHECKF(cl[N_CLAIMERS].errors == 0, "lister: %d errors", cl[N_CLAIMERS].errors);
    CHECKF(n_total == N_CONC_JOBS && bad == 0, "%d claims, %d bad", n_total, bad);
    check_claimed_once(seen, N_CONC_JOBS, bad);
    printf("  %d jobs claimed+progress+finished by %d threads (+1 lister) in %.1f ms: "
           "%d/%d/%d/%d per thread\n",
           N_CONC_JOBS, N_CLAIMERS, (t1 - t0) / 1e3, cl[0].n_got, cl[1].n_got, cl[2].n_got,
           cl[3].n_got);
    struct store_stats st;
    CHECK(store_stats(s, &st) == 0 && st.done == N_CONC_JOBS && st.queued == 0 && st.running == 0);
    store_close(s);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM uploads WHERE model_ran = 1") == N_CONC_JOBS);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM jobs WHERE attempts = 1") == N_CONC_JOBS);
}

/* Two processes (and this one) claim from the same file: the database's
 * write lock, not only the store's mutex, keeps claims apart. Children
 * write the ids they got into a pipe. */
static int child_claim(struct children *ch, const char *path, int c)
{
    (void)c;
    struct store *cs = NULL;
    char err[256];
    if (store_open(path, &cs, err, sizeof err) != 0) return 3;
    if (child_ready(ch) != 0) return 4;
    struct store_job j;
    int rc;
    while ((rc = store_job_claim(cs, "child", &j)) == 0) {
        if (write(ch->ids[1], &j.id, sizeof j.id) != sizeof j.id) return 4;
        if (store_job_finish(cs, j.id, "child", "m", "en", 1, NULL, 0) != 0) return 5;
    }
    store_close(cs);
    return rc == HARK_EAGAIN ? 0 : 6;
}

static void test_claim_processes(void)
{
    enum { N_JOBS = 120, N_CHILDREN = 2 };
    const char *path = fresh_path("claim_procs");
    struct store *s = open_store(path);
    if (!s) return;
    insert_queued(s, N_JOBS);
    struct children ch;
    start_children(&ch, N_CHILDREN, path, child_claim);
    release_children(&ch);
    int seen[N_JOBS + 1] = {0};
    int n_parent = 0, bad = 0;
    struct store_job j;
    int rc;
    while ((rc = store_job_claim(s, "parent", &j)) == 0) {
        count_claim(seen, N_JOBS, j.id, &bad);
        n_parent++;
        if (store_job_finish(s, j.id, "parent", "m", "en", 1, NULL, 0) != 0) bad++;
    }
    CHECKF(rc == HARK_EAGAIN, "parent claim: %d %s", rc, store_error(s));
    int n_children = read_child_ids(&ch, seen, N_JOBS, &bad);
    reap_children(&ch);
    check_claimed_once(seen, N_JOBS, bad);
    printf("  %d jobs: %d claimed here, %d by %d other processes\n", N_JOBS, n_parent, n_children,
           N_CHILDREN);
    struct store_stats st;
    CHECK(store_stats(s, &st) == 0 && st.done == N_JOBS);
    store_close(s);
}

static void test_job_state_rules(void)
{
    const char *path = fresh_path("state_rules");
    struct store *s = open_store(path);
    if (!s) return;
    for (int i = 1; i <= 3; i++) insert(s, i, NULL);
    struct store_job job, got;
    struct store_upload u;

    /* Queued -> running -> progress -> done, once. */
    CHECK(store_job_enqueue(s, "up-000001", "", "", "transcribe", NULL, &job, NULL) == 0);
    CHECK(store_job_progress(s, job.id, "w", 10) == HARK_ESTALE); /* queued, not running */
    CHECK(store_job_finish(s, job.id, "w", "m", "en", 1, NULL, 0) == HARK_ESTALE);
    CHECK(store_job_claim(s, "w", &got) == 0 && got.id == job.id);
    CHECK(store_job_progress(s, job.id, "w", 42.5) == 0);
    CHECK(store_job_get(s, job.id, &got) == 0 && got.progress == 42.5);
    CHECK(store_upload_get(s, "up-000001", &u) == 0 && u.progress == 42.5);
    CHECK(store_job_progress(s, job.id, "w", 250) == 0);
    CHECK(store_job_get(s, job.id, &got) == 0 && got.progress == 100);
    CHECK(store_job_finish(s, job.id, "w", "rt-tiny", "de", 3.25, NULL, 0) == 0);
    CHECK(store_job_get(s, job.id, &got) == 0);
    CHECK(strcmp(got.state, "done") == 0 && got.progress == 100 && got.finished[0]);
    CHECK(store_upload_get(s, "up-000001", &u) == 0);
    CHECK(u.model_ran == 1 && strcmp(u.model, "rt-tiny") == 0 && strcmp(u.language, "de") == 0);
    CHECK(u.time_s == 3.25 && u.model_date[0] && strcmp(u.status, "done") == 0);
    CHECK(u.job_id == job.id && u.progress == 100 && u.error[0] == 0);
    CHECK(store_job_finish(s, job.id, "w", "other", "fr", 9, NULL, 0) == HARK_ESTALE);
    CHECKF(strstr(store_error(s), "store_job_finish") != NULL, "'%s'", store_error(s));
    CHECK(store_upload_get(s, "up-000001", &u) == 0 && strcmp(u.model, "rt-tiny") == 0);
    CHECK(store_job_progress(s, job.id, "w", 5) == HARK_ESTALE);
    CHECK(store_job_fail(s, job.id, "w", "late") == HARK_ESTALE);
    CHECK(store_job_cancel(s, job.id) == HARK_ESTALE);
    CHECK(store_job_active(s, "up-000001", &got) == HARK_ENOENT);

    /* A second run that fails: the upload keeps the first run's outcome. */
    CHECK(store_job_enqueue(s, "up-000001", "big", "", "transcribe", NULL, &job, NULL) == 0);
    CHECK(store_job_claim(s, "w", &got) == 0 && got.id == job.id);
    CHECK(store_job_fail(s, job.id, "w", "decoder exploded") == 0);
    CHECK(store_job_get(s, job.id, &got) == 0);
    CHECK(strcmp(got.state, "failed") == 0 && strcmp(got.error, "decoder exploded") == 0);
    CHECK(got.finished[0]);
    CHECK(store_job_fail(s, job.id, "w", "again") == HARK_ESTALE);
    CHECK(store_upload_get(s, "up-000001", &u) == 0);
    CHECK(strcmp(u.status, "failed") == 0 && strcmp(u.error, "decoder exploded") == 0);
    CHECK(u.model_ran == 1 && strcmp(u.model, "rt-tiny") == 0);

    /* Cancel while queued: nothing to claim. */
    CHECK(store_job_enqueue(s, "up-000002", "", "", "transcribe", NULL, &job, NULL) == 0);
    CHECK(store_job_cancel(s, job.id) == 0);
    CHECK(store_job_get(s, job.id, &got) == 0 && strcmp(got.state, "canceled") == 0 && got.finished[0]);
    CHECK(store_job_claim(s, "w", &got) == HARK_EAGAIN);
    CHECK(store_job_cancel(s, job.id) == HARK_ESTALE);

    /* Cancel while running: the worker's finish is refused and the upload
     * is not marked as run. */
    CHECK(store_job_enqueue(s, "up-000003", "", "", "transcribe", NULL, &job, NULL) == 0);
    CHECK(store_job_claim(s, "w", &got) == 0 && got.id == job.id);
    CHECK(store_job_cancel(s, job.id) == 0);
    CHECK(store_job_progress(s, job.id, "w", 60) == HARK_ESTALE);
    CHECK(store_job_finish(s, job.id, "w", "m", "en", 1, NULL, 0) == HARK_ESTALE);
    CHECK(store_upload_get(s, "up-000003", &u) == 0);
    CHECK(u.model_ran == 0 && u.model_date[0] == 0 && strcmp(u.status, "canceled") == 0);
    CHECK(store_job_get(s, job.id, &got) == 0 && strcmp(got.state, "canceled") == 0);

    /* Unknown jobs. */
    CHECK(store_job_cancel(s, 9999) == HARK_ENOENT);
    CHECK(store_job_get(s, 9999, &got) == HARK_ENOENT);
    CHECK(store_job_progress(s, 9999, "w", 1) == HARK_ESTALE);
    CHECK(store_job_finish(s, 9999, "w", "m", "en", 1, NULL, 0) == HARK_ESTALE);

    /* A canceled upload can be queued again. */
    CHECK(store_job_enqueue(s, "up-000003", "", "", "transcribe", NULL, &job, NULL) == 0);

    int64_t *ids = NULL;
    int n = -1;
    CHECK(store_jobs_in_state(s, STORE_CANCELED, &ids, &n) == 0 && n == 2);
    free(ids);
    CHECK(store_jobs_in_state(s, STORE_QUEUED, &ids, &n) == 0 && n == 1 && ids && ids[0] == job.id);
    free(ids);
    CHECK(store_jobs_in_state(s, STORE_RUNNING, &ids, &n) == 0 && n == 0);
    free(ids);
    struct store_stats st;
    CHECK(store_stats(s, &st) == 0);
    CHECKF(st.uploads == 3 && st.queued == 1 && st.running == 0 && st.done == 1 && st.failed == 1 &&
               st.canceled == 2,
           "stats %lld %lld %lld %lld %lld %lld", (long long)st.uploads, (long long)st.queued,
           (long long)st.running, (long long)st.done, (long long)st.failed, (long long)st.canceled);
    store_close(s);
}

static void test_delete_cascade(void)
{
    const char *path = fresh_path("delete");
    struct store *s = open_store(path);
    if (!s) return;
    insert(s, 1, NULL);
    insert(s, 2, NULL);
    struct store_job j1, j2, j3, got;
    CHECK(store_job_enqueue(s, "up-000001", "", "", "transcribe", NULL, &j1, NULL) == 0);
    CHECK(store_job_claim(s, "w", &got) == 0);
    CHECK(store_job_finish(s, j1.id, "w", "m", "en", 1, NULL, 0) == 0);
    CHECK(store_job_enqueue(s, "up-000001", "", "", "transcribe", NULL, &j2, NULL) == 0);
    CHECK(store_job_enqueue(s, "up-000002", "", "", "transcribe", NULL, &j3, NULL) == 0);
    CHECK(store_upload_delete(s, "up-000001") == 0);
    struct store_upload u;
    CHECK(store_upload_get(s, "up-000001", &u) == HARK_ENOENT);
    CHECK(store_job_get(s, j1.id, &got) == HARK_ENOENT);
    CHECK(store_job_get(s, j2.id, &got) == HARK_ENOENT);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM jobs WHERE upload_id = 'up-000001'") == 0);
    CHECK(store_upload_delete(s, "up-000001") == HARK_ENOENT);
    CHECK(store_upload_delete(s, NULL) == HARK_EINVAL);
    /* The other upload's job moved up to the head of the queue. */
    CHECK(store_upload_get(s, "up-000002", &u) == 0 && u.queue_position == 1);

    /* Deleting under a running job: the worker finds it gone. */
    CHECK(store_job_claim(s, "w", &got) == 0 && got.id == j3.id);
    CHECK(store_upload_delete(s, "up-000002") == 0);
    CHECK(store_job_progress(s, j3.id, "w", 10) == HARK_ESTALE);
    CHECK(store_job_finish(s, j3.id, "w", "m", "en", 1, NULL, 0) == HARK_ESTALE);
    CHECK(store_job_fail(s, j3.id, "w", "x") == HARK_ESTALE);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM jobs") == 0);
    struct store_stats st;
    CHECK(store_stats(s, &st) == 0 && st.uploads == 0 && st.done == 0);
    /* The total follows inserts and deletes. */
    for (int i = 10; i < 15; i++) insert(s, i, NULL);
    CHECK(store_upload_delete(s, "up-000012") == 0);
    CHECK(store_upload_delete(s, "up-000012") == HARK_ENOENT);
    struct store_upload *rows = NULL;
    int n = 0;
    int64_t total = 0;
    CHECK(store_upload_list(s, 10, 0, &rows, &n, &total) == 0 && n == 4 && total == 4);
    free(rows);
    store_close(s);
}

static void test_requeue_after_crash(void)
{
    const char *path = fresh_path("requeue");
    struct store *s = open_store(path);
    if (!s) return;
    insert(s, 1, NULL);
    insert(s, 2, NULL);
    struct store_job a, b, got;
    CHECK(store_job_enqueue(s, "up-000001", "", "", "transcribe", NULL, &a, NULL) == 0);
    CHECK(store_job_enqueue(s, "up-000002", "", "", "transcribe", NULL, &b, NULL) == 0);
    CHECK(store_job_claim(s, "w1", &got) == 0 && got.id == a.id);
    CHECK(store_job_progress(s, a.id, "w1", 70) == 0);
    /* The process "dies": the store closes without finishing the job. */
    store_close(s);

    s = open_store(path);
    if (!s) return;
    int64_t *ids = NULL;
    int n = 0;
    CHECK(store_jobs_in_state(s, STORE_RUNNING, &ids, &n) == 0 && n == 1 && ids[0] == a.id);
    free(ids);
    n = -1;
    CHECK(store_requeue_running(s, &n) == 0 && n == 1);
    CHECK(store_job_get(s, a.id, &got) == 0 && strcmp(got.state, "queued") == 0 && got.progress == 0);
    struct store_upload u;
    CHECK(store_upload_get(s, "up-000001", &u) == 0 && u.queue_position == 1);
    CHECK(store_upload_get(s, "up-000002", &u) == 0 && u.queue_position == 2);
    /* It keeps its place ahead of the job queued after it. */
    CHECK(store_job_claim(s, "w2", &got) == 0 && got.id == a.id && got.attempts == 2);
    CHECK(strcmp(got.worker, "w2") == 0);
    CHECK(store_job_finish(s, a.id, "w2", "m", "en", 2, NULL, 0) == 0);
    CHECK(store_requeue_running(s, &n) == 0 && n == 0);
    store_close(s);
}

/* ---- Leases: heartbeat, expiry, release, and only the holder may end a job. */

static void test_lease(void)
{
    const char *path = fresh_path("lease");
    struct store *s = open_store(path);
    if (!s) return;
    store_set_lease(s, 60000);
    for (int i = 1; i <= 3; i++) insert(s, i, NULL);
    struct store_job a, b, c, got;
    struct store_upload u;
    char now[32], sql[256];
    CHECK(store_job_enqueue(s, "up-000001", "", "", "transcribe", NULL, &a, NULL) == 0);
    CHECK(store_job_enqueue(s, "up-000002", "", "", "transcribe", NULL, &b, NULL) == 0);
    CHECK(a.lease_until[0] == 0);

    /* A claim holds the job for the lease, from the database's clock. */
    store_now(now);
    CHECK(store_job_claim(s, "w1", &got) == 0 && got.id == a.id && got.attempts == 1);
    CHECKF(strlen(got.lease_until) == 24 && strcmp(got.lease_until, now) > 0, "lease '%s', now '%s'",
           got.lease_until, now);
    /* Only the holder renews, records, ends or releases it. */
    CHECK(store_job_heartbeat(s, a.id, "w1") == 0);
    CHECK(store_job_heartbeat(s, a.id, "w2") == HARK_ESTALE);
    CHECK(store_job_heartbeat(s, a.id, NULL) == HARK_ESTALE);
    CHECK(store_job_progress(s, a.id, "w2", 10) == HARK_ESTALE);
    CHECK(store_job_finish(s, a.id, "w2", "m", "en", 1, NULL, 0) == HARK_ESTALE);
    CHECK(store_job_fail(s, a.id, "w2", "no") == HARK_ESTALE);
    CHECK(store_job_release(s, a.id, "w2") == HARK_ESTALE);
    CHECK(store_job_progress(s, a.id, "w1", 30) == 0);
    CHECK(store_job_heartbeat(s, 9999, "w1") == HARK_ESTALE);
    CHECK(store_job_heartbeat(s, b.id, "w1") == HARK_ESTALE); /* queued, not running */
    int n = -1;
    CHECK(store_requeue_expired(s, &n) == 0 && n == 0);
    CHECK(store_job_get(s, a.id, &got) == 0 && strcmp(got.state, "running") == 0);

    /* Its lease passes: the job goes back to the queue at its place. */
    snprintf(sql, sizeof sql, "UPDATE jobs SET lease_until = '2000-01-01T00:00:00.000Z' WHERE id = %lld",
             (long long)a.id);
    CHECK(sql_exec(path, sql) == 0);
    CHECK(store_requeue_expired(s, &n) == 0 && n == 1);
    CHECK(store_job_get(s, a.id, &got) == 0 && strcmp(got.state, "queued") == 0);
    CHECK(got.progress == 0 && got.lease_until[0] == 0 && got.attempts == 1);
    CHECK(store_upload_get(s, "up-000001", &u) == 0 && u.queue_position == 1);
    CHECK(store_requeue_expired(s, NULL) == 0);
    /* The first worker can no longer touch it... */
    CHECK(store_job_heartbeat(s, a.id, "w1") == HARK_ESTALE);
    CHECK(store_job_progress(s, a.id, "w1", 40) == HARK_ESTALE);
    CHECK(store_job_finish(s, a.id, "w1", "m", "en", 1, NULL, 0) == HARK_ESTALE);
    /* ...nor once another has claimed it: it is completed once. */
    CHECK(store_job_claim(s, "w2", &got) == 0 && got.id == a.id && got.attempts == 2);
    CHECK(store_job_finish(s, a.id, "w1", "m1", "en", 1, NULL, 0) == HARK_ESTALE);
    CHECK(store_job_fail(s, a.id, "w1", "late") == HARK_ESTALE);
    CHECK(store_job_finish(s, a.id, "w2", "m2", "en", 2, NULL, 0) == 0);
    CHECK(store_job_finish(s, a.id, "w2", "m2", "en", 2, NULL, 0) == HARK_ESTALE);
    CHECK(store_job_get(s, a.id, &got) == 0 && strcmp(got.state, "done") == 0);
    CHECK(got.lease_until[0] == 0 && strcmp(got.worker, "w2") == 0);
    CHECK(store_upload_get(s, "up-000001", &u) == 0 && strcmp(u.model, "m2") == 0);

    /* A release: back to queued at once, the attempt counted. */
    CHECK(store_job_claim(s, "w3", &got) == 0 && got.id == b.id);
    CHECK(store_job_release(s, b.id, "w4") == HARK_ESTALE);
    CHECK(store_job_release(s, b.id, "w3") == 0);
    CHECK(store_job_release(s, b.id, "w3") == HARK_ESTALE);
    CHECK(store_job_get(s, b.id, &got) == 0 && strcmp(got.state, "queued") == 0);
    CHECK(got.attempts == 1 && got.lease_until[0] == 0 && got.progress == 0);
    CHECK(store_job_progress(s, b.id, "w3", 5) == HARK_ESTALE);

    /* A real lease: 300 ms, renewed, then left to pass. */
    store_set_lease(s, 300);
    CHECK(store_job_claim(s, "w5", &got) == 0 && got.id == b.id && got.attempts == 2);
    usleep(200 * 1000);
    CHECK(store_job_heartbeat(s, b.id, "w5") == 0);
    usleep(200 * 1000);
    CHECK(store_requeue_expired(s, &n) == 0 && n == 0);
    usleep(300 * 1000);
    /* Passed, but not yet taken back: the holder may still renew it. */
    CHECK(store_job_heartbeat(s, b.id, "w5") == 0);
    CHECK(store_requeue_expired(s, &n) == 0 && n == 0);
    usleep(400 * 1000);
    CHECK(store_requeue_expired(s, &n) == 0 && n == 1);
    CHECK(store_job_heartbeat(s, b.id, "w5") == HARK_ESTALE);

    /* Cancel and requeue_running end leases too. */
    store_set_lease(s, 60000);
    CHECK(store_job_claim(s, "w6", &got) == 0 && got.id == b.id && got.lease_until[0]);
    CHECK(store_requeue_running(s, &n) == 0 && n == 1);
    CHECK(store_job_get(s, b.id, &got) == 0 && got.lease_until[0] == 0);
    CHECK(store_job_heartbeat(s, b.id, "w6") == HARK_ESTALE);
    CHECK(store_job_enqueue(s, "up-000003", "", "", "transcribe", NULL, &c, NULL) == 0);
    CHECK(store_job_claim(s, "w7", &got) == 0 && got.id == b.id);
    CHECK(store_job_claim(s, "w8", &got) == 0 && got.id == c.id);
    CHECK(store_job_cancel(s, c.id) == 0);
    CHECK(store_job_get(s, c.id, &got) == 0 && got.lease_until[0] == 0);
    CHECK(store_job_heartbeat(s, c.id, "w8") == HARK_ESTALE);
    CHECK(store_job_release(s, c.id, "w8") == HARK_ESTALE);

    CHECK(store_is_shared(s) == (backend == ON_PG));
    store_close(s);
}

/* ---- Four threads claim 60 jobs with a 40 ms lease and hold each for 0 to
 * 80 ms without renewing it, while a fifth puts expired jobs back: many
 * jobs are taken back and run twice, yet each is finished exactly once. */

enum { N_LEASE_JOBS = 60, N_LEASE_THREADS = 4 };

struct leaser {
    struct store *s;
    int id;
    int finished, refused, errors;
    int64_t done_ids[N_LEASE_JOBS];
};

static atomic_int lease_stop;

static void *lease_loop(void *arg)
{
    struct leaser *l = arg;
    char name[48];
    snprintf(name, sizeof name, "lw%ld-%d", (long)getpid(), l->id);
    unsigned seed = (unsigned)l->id * 7919u + 1;
    int idle = 0;
    while (!lease_stop && idle < 400) {
        struct store_job j;
        int rc = store_job_claim(l->s, name, &j);
        if (rc == HARK_EAGAIN) {
            idle++;
            usleep(5000);
            continue;
        }
        if (rc != 0) {
            l->errors++;
            break;
        }
        idle = 0;
        usleep((rand_r(&seed) % 80) * 1000);
        rc = store_job_finish(l->s, j.id, name, "m", "en", 1, NULL, 0);
        if (rc == 0 && l->finished < N_LEASE_JOBS) l->done_ids[l->finished++] = j.id;
        else if (rc == HARK_ESTALE) l->refused++;
        else l->errors++;
    }
    return NULL;
}

static void test_lease_exactly_once(void)
{
    const char *path = fresh_path("lease_once");
    struct store *s = open_store(path);
    if (!s) return;
    store_set_lease(s, 40);
    for (int i = 0; i < N_LEASE_JOBS; i++) {
        insert(s, i, NULL);
        char id[40];
        snprintf(id, sizeof id, "up-%06d", i);
        CHECK(store_job_enqueue(s, id, "", "", "transcribe", NULL, NULL, NULL) == 0);
    }
    static struct leaser ls[N_LEASE_THREADS];
    pthread_t th[N_LEASE_THREADS];
    lease_stop = 0;
    for (int i = 0; i < N_LEASE_THREADS; i++) {
        memset(&ls[i], 0, sizeof ls[i]);
        ls[i].s = s;
        ls[i].id = i;
        CHECK(pthread_create(&th[i], NULL, lease_loop, &ls[i]) == 0);
    }
    int requeued = 0;
    for (int round = 0; round < 2000; round++) {
        int n = 0;
        CHECK(store_requeue_expired(s, &n) == 0);
        requeued += n;
        struct store_stats st;
        CHECK(store_stats(s, &st) == 0);
        if (st.done == N_LEASE_JOBS) break;
        usleep(10 * 1000);
    }
    lease_stop = 1;
    for (int i = 0; i < N_LEASE_THREADS; i++) pthread_join(th[i], NULL);
    int finished = 0, refused = 0, errors = 0;
    static int seen[N_LEASE_JOBS + 1];
    memset(seen, 0, sizeof seen);
    int bad = 0;
    for (int i = 0; i < N_LEASE_THREADS; i++) {
        finished += ls[i].finished;
        refused += ls[i].refused;
        errors += ls[i].errors;
        for (int k = 0; k < ls[i].finished; k++) {
            int64_t id = ls[i].done_ids[k];
            if (id < 1 || id > N_LEASE_JOBS) bad++;
            else seen[id]++;
        }
    }
    int twice = 0;
    for (int k = 1; k <= N_LEASE_JOBS; k++) twice += seen[k] > 1;
    CHECKF(errors == 0 && bad == 0, "%d errors, %d bad ids", errors, bad);
    CHECKF(finished == N_LEASE_JOBS && twice == 0, "%d finishes accepted, %d jobs twice", finished, twice);
    CHECKF(sql_int(path, "SELECT COUNT(*) FROM jobs WHERE state = 'done'") == N_LEASE_JOBS,
           "done rows");
    CHECK(sql_int(path, "SELECT COUNT(*) FROM uploads WHERE model_ran = 1") == N_LEASE_JOBS);
    CHECKF(requeued > 0 && refused > 0, "%d taken back, %d finishes refused", requeued, refused);
    printf("  %d jobs: %d leases passed and were taken back, %d late finishes refused\n",
           N_LEASE_JOBS, requeued, refused);
    store_close(s);
}

/* Waits on s for the next announcement: the bits heard, and how long it
 * took in *ms. */
static int news_in(struct store *s, int timeout_ms, double *ms)
{
    double t0 = now_us();
    int news = store_wait_news(s, timeout_ms);
    if (ms) *ms = (now_us() - t0) / 1000;
    return news;
}

/* Everything announced on s until 300 ms pass quietly: the bits heard. */
static int news_all(struct store *s)
{
    int heard = 0, news;
    while ((news = store_wait_news(s, 300)) > 0) heard |= news;
    return heard;
}

/* The announcements: SQLite has none; PostgreSQL wakes a waiter for an
 * enqueue, a release and an expiry by any process (jobs), and for what a
 * job's followers see change: its claim, progress, a segment stored, its
 * end (changes). A waiter whose connection was cut reconnects. */
static void test_wait_news(void)
{
    const char *path = fresh_path("wait_news");
    struct store *s = open_store(path);
    if (!s) return;
    if (backend == ON_SQLITE) {
        CHECK(store_wait_news(s, 10) == HARK_ENOTSUP);
        store_close(s);
        return;
    }
    struct store *other = open_store(path);
    if (!other) {
        store_close(s);
        return;
    }
    const int jobs = STORE_NEWS_JOBS, changes = STORE_NEWS_CHANGES;
    for (int i = 1; i <= 5; i++) insert(other, i, NULL);
    /* The first wait subscribes; then nothing is announced. */
    int rc = store_wait_news(s, 0);
    CHECKF(rc == 0 || rc == (jobs | changes), "rc %d %s", rc, store_error(s));
    double ms;
    CHECK(news_in(s, 100, &ms) == 0);
    CHECKF(ms >= 90 && ms < 1000, "timeout after %.0f ms", ms);

    struct store_job j;
    CHECK(store_job_enqueue(other, "up-000001", "", "", "transcribe", NULL, &j, NULL) == 0);
    CHECK(news_in(s, 5000, &ms) == jobs);
    CHECKF(ms < 1000, "woken after %.0f ms", ms);
    CHECK(news_in(s, 50, NULL) == 0);

    CHECK(store_job_claim(other, "w", &j) == 0);
    CHECK(news_in(s, 5000, NULL) == changes);
    CHECK(store_job_heartbeat(other, j.id, "w") == 0);
    CHECK(store_job_checkpoint(other, j.id, "w", 30.0, 1) == 0);
    CHECK(news_in(s, 100, NULL) == 0);
    CHECK(store_job_progress(other, j.id, "w", 40.0) == 0);
    CHECK(news_in(s, 5000, &ms) == changes);
    CHECKF(ms < 1000, "woken after %.0f ms", ms);
    struct store_job_segment seg = {.seq = 0, .window_s = 0.0, .language = "en", .data = "{\"text\":\" a\"}"};
    CHECK(store_job_segment_put(other, j.id, "w", &seg) == 0);
    CHECK(news_in(s, 5000, NULL) == changes);
    /* Refused changes announce nothing. */
    CHECK(store_job_progress(other, j.id, "someone else", 50.0) == HARK_ESTALE);
    CHECK(store_job_segment_put(other, j.id, "someone else", &seg) == HARK_ESTALE);
    CHECK(news_in(s, 100, NULL) == 0);
    CHECK(store_job_release(other, j.id, "w") == 0);
    CHECK(news_in(s, 5000, NULL) == (jobs | changes));
    CHECK(store_job_claim(other, "w", &j) == 0);
    CHECK(store_job_finish(other, j.id, "w", "m", "en", 1.0, NULL, 0) == 0);
    int heard = news_all(s);
    CHECKF(heard == changes, "claim and finish: %d", heard);

    CHECK(store_job_enqueue(other, "up-000002", "", "", "transcribe", NULL, &j, NULL) == 0);
    CHECK(store_job_claim(other, "w", &j) == 0);
    CHECK(store_job_fail(other, j.id, "w", "broken") == 0);
    heard = news_all(s);
    CHECKF(heard == (jobs | changes), "enqueue, claim and fail: %d", heard);
    CHECK(store_job_enqueue(other, "up-000003", "", "", "transcribe", NULL, &j, NULL) == 0);
    CHECK(news_in(s, 5000, NULL) == jobs);
    CHECK(store_job_cancel(other, j.id) == 0);
    CHECK(news_in(s, 5000, NULL) == changes);

    store_set_lease(other, 1);
    CHECK(store_job_enqueue(other, "up-000004", "", "", "transcribe", NULL, &j, NULL) == 0);
    CHECK(store_job_claim(other, "w", &j) == 0);
    usleep(20 * 1000);
    int n = 0;
    CHECK(store_requeue_expired(other, &n) == 0 && n == 1);
    heard = news_all(s);
    CHECKF(heard == (jobs | changes), "enqueue, claim and expiry: %d", heard);

    /* The listening connection is cut: the waiter reconnects, says that
     * anything may have been missed, and hears the next announcement. */
    CHECK(sql_int(path, "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                        "datname = current_database() AND query LIKE 'LISTEN%'") == 1);
    int all = 0;
    for (int k = 0; k < 5; k++) all += store_wait_news(s, 200) == (jobs | changes);
    CHECKF(all >= 1, "%d", all);
    CHECK(store_job_enqueue(other, "up-000005", "", "", "transcribe", NULL, NULL, NULL) == 0);
    CHECK(news_in(s, 5000, NULL) == jobs);
    store_close(other);
    store_close(s);
}

/* A queue with no workers, as an API server beside `hark worker`
 * processes has, still hears what other processes change in running jobs:
 * its change count (what GET /jobs/<n>/events waits on) moves at once. It
 * only listens: a job whose lease has passed is left to the workers. */
static void test_news_reach_queue(void)
{
    const char *path = fresh_path("news_queue");
    struct store *s = open_store(path), *other = open_store(path);
    struct queue *q = NULL;
    if (!s || !other) goto out;
    /* A job elsewhere whose lease has passed, before the queue starts. */
    insert(other, 2, NULL);
    struct store_job expired;
    store_set_lease(other, 1);
    CHECK(store_job_enqueue(other, "up-000002", "m", "", "transcribe", NULL, &expired, NULL) == 0);
    CHECK(store_job_claim(other, "elsewhere/2", &expired) == 0);
    store_set_lease(other, 60000);
    usleep(20 * 1000);
    struct queue_config cfg = {.data_dir = t_tmpdir(), .models_dir = t_tmpdir(), .default_model = "m",
                               .workers = 0, .threads = 1, .worker_name = "api:1"};
    char err[512] = "";
    int rc = queue_start(s, &cfg, &q, err, sizeof err);
    CHECKF(rc == 0 && q, "queue_start: %d %s", rc, err);
    if (!q) goto out;
    insert(other, 1, NULL);
    struct store_job j;
    CHECK(store_job_enqueue(other, "up-000001", "m", "", "transcribe", NULL, &j, NULL) == 0);
    CHECK(store_job_claim(other, "elsewhere/1", &j) == 0);
    /* The claim's own announcement passes first. */
    uint64_t seen = queue_changes(q);
    queue_wait_changes(q, &seen, 300);
    struct store_job_segment seg = {.seq = 0, .window_s = 0.0, .language = "en", .data = "{\"text\":\" a\"}"};
    CHECK(store_job_segment_put(other, j.id, "elsewhere/1", &seg) == 0);
    uint64_t before = seen;
    double t0 = now_us();
    queue_wait_changes(q, &seen, 5000);
    double ms = (now_us() - t0) / 1000;
    CHECKF(seen != before && ms < 2000, "a segment stored elsewhere: count %llu -> %llu after %.0f ms",
           (unsigned long long)before, (unsigned long long)seen, ms);
    before = seen;
    CHECK(store_job_finish(other, j.id, "elsewhere/1", "m", "en", 1.0, NULL, 0) == 0);
    queue_wait_changes(q, &seen, 5000);
    CHECKF(seen != before, "the job's end elsewhere: count stayed %llu", (unsigned long long)seen);
    /* It claims nothing, and takes nothing back. */
    CHECK(store_job_enqueue(other, "up-000001", "m", "", "transcribe", NULL, &j, NULL) == 0);
    usleep(300 * 1000);
    CHECK(store_job_get(s, j.id, &j) == 0 && !strcmp(j.state, STORE_QUEUED));
    CHECK(store_job_get(s, expired.id, &expired) == 0 && !strcmp(expired.state, STORE_RUNNING));
out:
    queue_stop(q);
    store_close(other);
    store_close(s);
}

static void test_reopen_keeps_data(void)
{
    const char *path = fresh_path("reopen");
    struct store *s = open_store(path);
    if (!s) return;
    insert(s, 1, NULL);
    CHECK(store_job_enqueue(s, "up-000001", "m", "", "transcribe", NULL, NULL, NULL) == 0);
    store_close(s);
    /* Mark the recorded migration: a re-run would add or replace rows. */
    CHECK(sql_exec(path, "UPDATE schema_version SET applied = 'marker'") == SQLITE_OK);
    for (int k = 0; k < 2; k++) {
        s = open_store(path);
        if (!s) return;
        struct store_upload u;
        CHECK(store_upload_get(s, "up-000001", &u) == 0 && strcmp(u.status, "queued") == 0);
        store_close(s);
    }
    CHECK(sql_int(path, "SELECT COUNT(*) FROM schema_version") == store_schema_version());
    CHECK(sql_int(path, "SELECT COUNT(*) FROM schema_version WHERE applied = 'marker'") ==
          store_schema_version());
}

/* A database of schema version 1, from before leases, made here from a
 * current one by undoing migration 2 (it adds jobs.lease_until and nothing
 * else). Opening it applies 2 and keeps every row; a job a version-1
 * process left running has no lease, so it counts as expired and goes back
 * to the queue. */
static void test_upgrade_v1(void)
{
    const char *path = fresh_path("upgrade_v1");
    struct store *s = open_store(path);
    if (!s) return;
    CHECK(store_schema_version() == 6);
    insert(s, 1, NULL);
    insert(s, 2, NULL);
    CHECK(store_job_enqueue(s, "up-000001", "m", "", "transcribe", NULL, NULL, NULL) == 0);
    CHECK(store_job_enqueue(s, "up-000002", "m", "", "transcribe", NULL, NULL, NULL) == 0);
    struct store_job j;
    CHECK(store_job_claim(s, "old", &j) == 0 && strcmp(j.upload_id, "up-000001") == 0);
    store_close(s);
    /* Back to version 1: the jobs' segments (6) and the search index (5)
     * go, owners and keys (4), and the content hash is unique again, then
     * leases (2) and options (3). */
    CHECK(sql_exec(path, "DROP TABLE job_segments; DROP TABLE callback_attempts; DROP INDEX jobs_callbacks;"
                         " ALTER TABLE jobs DROP COLUMN resume_s; ALTER TABLE jobs DROP COLUMN resume_segments;"
                         " ALTER TABLE jobs DROP COLUMN callback_url; ALTER TABLE jobs DROP COLUMN callback_state;"
                         " ALTER TABLE jobs DROP COLUMN callback_next;"
                         " ALTER TABLE jobs DROP COLUMN callback_tries") == SQLITE_OK);
    if (backend == ON_PG)
        CHECK(sql_exec(path, "DROP TABLE transcript_segments; DROP TEXT SEARCH CONFIGURATION hark_search") == 0);
    else
        CHECK(sql_exec(path, "DROP TABLE transcript_fts; DROP TABLE transcript_segments") == SQLITE_OK);
    if (backend == ON_PG)
        CHECK(sql_exec(path, "DROP TABLE api_keys; ALTER TABLE uploads DROP COLUMN owner;"
                             " ALTER TABLE uploads ADD CONSTRAINT uploads_sha256_key UNIQUE (sha256)") == 0);
    else
        CHECK(sql_exec(path, "DROP TABLE api_keys; DROP INDEX uploads_owner_sha256;"
                             " DROP INDEX uploads_by_owner; ALTER TABLE uploads DROP COLUMN owner;"
                             " CREATE UNIQUE INDEX uploads_v1_sha256 ON uploads(sha256)") == SQLITE_OK);
    CHECK(sql_exec(path, "ALTER TABLE jobs DROP COLUMN options") == SQLITE_OK);
    CHECK(sql_exec(path, "ALTER TABLE jobs DROP COLUMN lease_until") == SQLITE_OK);
    CHECK(sql_exec(path, "DELETE FROM schema_version WHERE version >= 2") == SQLITE_OK);
    CHECK(sql_int(path, "SELECT MAX(version) FROM schema_version") == 1);

    s = open_store(path);
    if (!s) return;
    CHECK(sql_int(path, "SELECT MAX(version) FROM schema_version") == 6);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM jobs WHERE lease_until = '' AND options = ''") == 2);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM job_segments") == 0);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM transcript_segments") == 0);
    /* The uploads table was rebuilt (SQLite) without losing a job, and
     * every upload so far is the service's own. */
    CHECK(sql_int(path, "SELECT COUNT(*) FROM uploads WHERE owner = ''") == 2);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM api_keys") == 0);
    struct store_upload u;
    CHECK(store_upload_get(s, "up-000001", &u) == 0 && strcmp(u.status, "running") == 0);
    CHECK(u.owner[0] == 0);
    CHECK(store_upload_get(s, "up-000002", &u) == 0 && strcmp(u.status, "queued") == 0);
    int n = -1;
    CHECK(store_requeue_expired(s, &n) == 0 && n == 1);
    /* Both run now, the older first, each once. */
    CHECK(store_job_claim(s, "new", &j) == 0 && strcmp(j.upload_id, "up-000001") == 0 && j.attempts == 2);
    CHECK(store_job_finish(s, j.id, "new", "m", "en", 1, NULL, 0) == 0);
    CHECK(store_job_claim(s, "new", &j) == 0 && strcmp(j.upload_id, "up-000002") == 0 && j.attempts == 1);
    CHECK(store_job_finish(s, j.id, "new", "m", "en", 1, NULL, 0) == 0);
    CHECK(store_job_claim(s, "new", &j) == HARK_EAGAIN);
    store_close(s);
}

static void test_newer_schema(void)
{
    const char *path = fresh_path("newer");
    struct store *s = open_store(path);
    if (!s) return;
    insert(s, 1, NULL);
    store_close(s);
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO schema_version VALUES (%d, 'future')",
             store_schema_version() + 5);
    CHECK(sql_exec(path, sql) == SQLITE_OK);
    char err[512] = "";
    s = (struct store *)1;
    CHECK(store_open(path, &s, err, sizeof err) == HARK_ENOTSUP);
    CHECK(s == NULL);
    char want[32];
    snprintf(want, sizeof want, "%d", store_schema_version() + 5);
    CHECKF(strstr(err, "newer") && strstr(err, want), "err '%s'", err);
    /* Nothing was changed by the refusal. */
    CHECK(sql_int(path, "SELECT COUNT(*) FROM uploads") == 1);
}

static void test_not_a_database(void)
{
    const char *path = fresh_path("garbage");
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    char junk[8192];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)("hark is not sqlite\n"[i % 19]);
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
    struct store *s = (struct store *)1;
    char err[512] = "";
    int rc = store_open(path, &s, err, sizeof err);
    CHECKF(rc < 0 && s == NULL, "rc %d", rc);
    CHECKF(strstr(err, "not a database") && strstr(err, "garbage.db"), "err '%s'", err);
    size_t len = 0;
    char *back = t_read_file(path, &len);
    CHECK(back && len == sizeof junk && memcmp(back, junk, len) == 0);
    free(back);

    /* A missing folder, and a folder in place of the file. */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no/such/dir/hark.db", t_tmpdir());
    err[0] = 0;
    rc = store_open(missing, &s, err, sizeof err);
    CHECKF(rc < 0 && s == NULL && strstr(err, "no/such/dir") != NULL, "rc %d err '%s'", rc, err);
    err[0] = 0;
    rc = store_open(t_tmpdir(), &s, err, sizeof err);
    CHECKF(rc < 0 && s == NULL && err[0], "rc %d err '%s'", rc, err);
}

/* A writer killed inside a transaction leaves nothing behind. The child
 * writes 2,000 rows in one transaction and kills itself: with SQLite, a
 * tiny page cache makes the uncommitted pages spill into the WAL first;
 * with PostgreSQL, the server holds them (and the lock on the upload
 * counter) until it sees the client gone. */
static void crash_sqlite_writer(const char *path)
{
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) _exit(3);
    sqlite3_exec(db, "PRAGMA cache_size = 4; BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (int i = 0; i < 2000; i++) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "INSERT INTO uploads (id, sha256, filename) VALUES ('c%d', 'sha%d', "
                 "printf('%%.300c', 'x'))",
                 i, i);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) _exit(4);
    }
}

static void crash_pg_writer(const char *uri)
{
    PGconn *c = PQconnectdb(uri);
    if (PQstatus(c) != CONNECTION_OK) _exit(3);
    PGresult *r = PQexec(c, "BEGIN");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) _exit(4);
    PQclear(r);
    for (int i = 0; i < 2000; i++) {
        char id[32], sha[32];
        snprintf(id, sizeof id, "c%d", i);
        snprintf(sha, sizeof sha, "sha%d", i);
        const char *params[2] = {id, sha};
        r = PQexecParams(c,
                         "INSERT INTO uploads (id, sha256, filename)"
                         " VALUES ($1, $2, repeat('x', 300))",
                         2, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) _exit(4);
        PQclear(r);
    }
}

static void test_crash_mid_transaction(void)
{
    const char *path = fresh_path("crash_raw");
    struct store *s = open_store(path);
    if (!s) return;
    insert(s, 1, NULL);
    store_close(s);

    pid_t pid = fork();
    if (pid == 0) {
        if (backend == ON_PG) crash_pg_writer(path);
        else crash_sqlite_writer(path);
        kill(getpid(), SIGKILL);
        _exit(5);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
    if (backend == ON_SQLITE) {
        struct stat sb;
        char wal[600];
        snprintf(wal, sizeof wal, "%s-wal", path);
        int64_t wal_bytes = stat(wal, &sb) == 0 ? (int64_t)sb.st_size : 0;
        printf("  WAL left by the killed writer: %lld bytes\n", (long long)wal_bytes);
        CHECK(wal_bytes > 100000); /* its uncommitted pages really reached the file */
    }

    s = open_store(path);
    if (!s) return;
    struct store_stats st;
    CHECK(store_stats(s, &st) == 0 && st.uploads == 1);
    struct store_upload u;
    CHECK(store_upload_get(s, "c0", &u) == HARK_ENOENT);
    CHECK(insert(s, 2, NULL) == 0);
    CHECK(store_stats(s, &st) == 0 && st.uploads == 2);
    store_close(s);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM uploads") == 2);
    if (backend == ON_SQLITE)
        CHECK(sql_int(path, "SELECT COUNT(*) FROM pragma_integrity_check "
                            "WHERE integrity_check != 'ok'") == 0);
}

/* The store's own transactions under SIGKILL at an arbitrary moment: a
 * child runs insert/enqueue/claim/progress/finish in a loop; after it is
 * killed every finished job's upload is marked run and no other is. */
static void test_crash_store_api(void)
{
    const char *path = fresh_path("crash_api");
    struct store *s = open_store(path);
    if (!s) return;
    store_close(s);
    pid_t pid = fork();
    if (pid == 0) {
        struct store *cs = NULL;
        char err[256];
        if (store_open(path, &cs, err, sizeof err) != 0) _exit(3);
        for (int i = 0;; i++) {
            struct store_upload u;
            struct store_job j;
            make_upload(&u, i, NULL);
            if (store_upload_insert(cs, &u, NULL) != 0) _exit(4);
            if (store_job_enqueue(cs, u.id, "m", "", "transcribe", NULL, NULL, NULL) != 0) _exit(5);
            if (i % 3 == 0) continue;
            if (store_job_claim(cs, "child", &j) != 0) _exit(6);
            if (store_job_progress(cs, j.id, "child", 50) != 0) _exit(7);
            if (store_job_finish(cs, j.id, "child", "m", "en", 1, NULL, 0) != 0) _exit(8);
        }
    }
    /* Let it get going (a loaded or sanitised build starts slowly), then
     * kill it wherever it is. */
    for (int waited = 0; waited < 10000; waited += 10) {
        if (sql_int(path, "SELECT COUNT(*) FROM uploads") >= 30) break;
        usleep(10 * 1000);
    }
    usleep(37 * 1000);
    kill(pid, SIGKILL);
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECKF(WIFSIGNALED(status), "child exited early with %d", WEXITSTATUS(status));

    s = open_store(path);
    if (!s) return;
    struct store_stats st;
    CHECK(store_stats(s, &st) == 0);
    printf("  killed child left %lld uploads, %lld done, %lld queued, %lld running\n",
           (long long)st.uploads, (long long)st.done, (long long)st.queued, (long long)st.running);
    CHECK(st.uploads > 0);
    CHECK(st.running <= 1);
    store_close(s);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM uploads u WHERE model_ran != CASE WHEN EXISTS "
                        "(SELECT 1 FROM jobs WHERE upload_id = u.id AND state = 'done') "
                        "THEN 1 ELSE 0 END") == 0);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM jobs WHERE state = 'done' AND progress != 100") == 0);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM uploads u WHERE NOT EXISTS "
                        "(SELECT 1 FROM jobs WHERE upload_id = u.id)") <= 1);
}

/* The message is per thread: another thread's failure does not replace
 * this thread's. */
static void *fail_in_thread(void *arg)
{
    struct store *s = arg;
    struct store_job j;
    int rc = store_job_get(s, 424242, &j);
    return (void *)(intptr_t)(rc == HARK_ENOENT && strstr(store_error(s), "424242") != NULL);
}

static void test_error_per_thread(void)
{
    struct store *s = open_store(fresh_path("errors"));
    if (!s) return;
    struct store_upload u;
    CHECK(store_upload_get(s, "first-missing", &u) == HARK_ENOENT);
    pthread_t th;
    void *ok = NULL;
    pthread_create(&th, NULL, fail_in_thread, s);
    pthread_join(th, &ok);
    CHECK(ok == (void *)1);
    CHECKF(strstr(store_error(s), "first-missing") != NULL, "'%s'", store_error(s));
    store_close(s);
}

struct writer {
    struct store *s;
    int64_t job_id;
    int n, errors;
};

static atomic_int writer_stop;

static void *progress_loop(void *arg)
{
    struct writer *w = arg;
    while (!writer_stop) {
        if (store_job_progress(w->s, w->job_id, "w", (w->n % 100) + 0.5) != 0) w->errors++;
        w->n++;
        usleep(500);
    }
    return NULL;
}

/* 10,000 uploads, a tenth with a finished job and a tenth queued; the
 * listing of a page and of everything, timed. Reads are timed alone and
 * again while another thread keeps writing progress. */
static void test_big_list(void)
{
    enum { N = 10000 };
    struct store *s = open_store(fresh_path("big"));
    if (!s) return;
    double t0 = now_us();
    int bad = 0;
    for (int i = 0; i < N; i++) {
        struct store_upload u;
        make_upload(&u, i, NULL);
        if (store_upload_insert(s, &u, NULL) != 0) bad++;
    }
    double t1 = now_us();
    /* Uploads i % 10 == 1 get a job that finishes, then uploads i % 10 == 0
     * one that stays queued; the others never get one. */
    int n_queued = 0;
    for (int pass = 1; pass >= 0 && !bad; pass--) {
        for (int i = 0; i < N; i++) {
            char id[40];
            if (i % 10 != pass) continue;
            snprintf(id, sizeof id, "up-%06d", i);
            if (store_job_enqueue(s, id, "m", "", "transcribe", NULL, NULL, NULL) != 0) bad++;
            if (pass == 0) n_queued++;
        }
        struct store_job j;
        while (pass == 1 && store_job_claim(s, "w", &j) == 0)
            if (store_job_finish(s, j.id, "w", "m", "en", 1, NULL, 0) != 0) bad++;
    }
    double t2 = now_us();
    CHECKF(bad == 0, "%d failures: %s", bad, store_error(s));
    printf("  10000 uploads inserted (one transaction each) in %.1f ms (%.1f us each); "
           "jobs queued, claimed and finished in %.1f ms\n",
           (t1 - t0) / 1e3, (t1 - t0) / N, (t2 - t1) / 1e3);

    enum { REPS = 41 };
    double times[REPS];
    struct store_upload *rows = NULL;
    int n = 0;
    int64_t total = 0;
    for (int r = 0; r < REPS; r++) {
        double a = now_us();
        CHECK(store_upload_list(s, 100, 0, &rows, &n, &total) == 0);
        times[r] = now_us() - a;
        if (r < REPS - 1) free(rows);
    }
    CHECK(n == 100 && total == N);
    double page = median(times, REPS);
    if (n == 100) CHECK(strcmp(rows[0].id, "up-009999") == 0 && strcmp(rows[99].id, "up-009900") == 0);
    free(rows);

    for (int r = 0; r < REPS; r++) {
        double a = now_us();
        CHECK(store_upload_list(s, 100, 9900, &rows, &n, &total) == 0);
        times[r] = now_us() - a;
        if (r < REPS - 1) free(rows);
    }
    double last_page = median(times, REPS);
    CHECK(n == 100 && rows && strcmp(rows[99].id, "up-000000") == 0);
    free(rows);

    for (int r = 0; r < 5; r++) {
        double a = now_us();
        CHECK(store_upload_list(s, N, 0, &rows, &n, &total) == 0);
        times[r] = now_us() - a;
        if (r < 4) free(rows);
    }
    double whole = median(times, 5);
    CHECK(n == N);
    /* Every row in order; queue places are 1..n_queued in job order
     * (uploads i % 10 == 0, oldest first, so newest-first rows count down). */
    int order_bad = 0, place_bad = 0, status_bad = 0, expect_place = n_queued;
    for (int k = 0; k < n && rows; k++) {
        int i = N - 1 - k;
        char id[40];
        snprintf(id, sizeof id, "up-%06d", i);
        if (strcmp(rows[k].id, id) != 0) order_bad++;
        const char *want = i % 10 == 0 ? "queued" : i % 10 == 1 ? "done" : "uploaded";
        if (strcmp(rows[k].status, want) != 0) status_bad++;
        if (i % 10 == 0) {
            if (rows[k].queue_position != expect_place--) place_bad++;
        } else if (rows[k].queue_position != 0) {
            place_bad++;
        }
        if ((i % 10 == 1) != (rows[k].model_ran == 1)) status_bad++;
    }
    CHECKF(order_bad == 0 && place_bad == 0 && status_bad == 0, "order %d places %d status %d",
           order_bad, place_bad, status_bad);
    free(rows);

    for (int r = 0; r < REPS; r++) {
        struct store_upload u;
        char id[40];
        snprintf(id, sizeof id, "up-%06d", (r * 241) % N);
        double a = now_us();
        CHECK(store_upload_get(s, id, &u) == 0);
        times[r] = now_us() - a;
    }
    double get = median(times, REPS);
    printf("  median: list(100) %.0f us, list(100, offset 9900) %.0f us, list(10000) %.0f us, "
           "get %.1f us (%d queued)\n",
           page, last_page, whole, get, n_queued);

    /* Reads right after a write: every read connection's page cache is
     * stale then, and is read again. */
    struct store_job j;
    CHECK(store_job_claim(s, "w", &j) == 0);
    double times2[REPS];
    for (int r = 0; r < REPS; r++) {
        struct store_upload u;
        char id[40];
        snprintf(id, sizeof id, "up-%06d", (r * 241) % N);
        CHECK(store_job_progress(s, j.id, "w", r) == 0);
        double a = now_us();
        CHECK(store_upload_list(s, 100, 0, &rows, &n, &total) == 0 && n == 100);
        times[r] = now_us() - a;
        free(rows);
        CHECK(store_job_progress(s, j.id, "w", r + 0.5) == 0);
        a = now_us();
        CHECK(store_upload_get(s, id, &u) == 0);
        times2[r] = now_us() - a;
    }
    printf("  right after a write: median list(100) %.0f us, get %.1f us\n", median(times, REPS),
           median(times2, REPS));

    /* The same reads while another thread records progress about 2,000
     * times a second (far more often than workers do). */
    struct writer w = {s, j.id, 0, 0};
    pthread_t th;
    writer_stop = 0;
    pthread_create(&th, NULL, progress_loop, &w);
    usleep(20 * 1000);
    for (int r = 0; r < REPS; r++) {
        double a = now_us();
        CHECK(store_upload_list(s, 100, 0, &rows, &n, &total) == 0 && n == 100);
        times[r] = now_us() - a;
        free(rows);
    }
    double page_busy = median(times, REPS);
    for (int r = 0; r < REPS; r++) {
        struct store_upload u;
        char id[40];
        snprintf(id, sizeof id, "up-%06d", (r * 241) % N);
        double a = now_us();
        CHECK(store_upload_get(s, id, &u) == 0);
        times[r] = now_us() - a;
    }
    double get_busy = median(times, REPS);
    writer_stop = 1;
    pthread_join(th, NULL);
    CHECK(w.errors == 0 && w.n > 0);
    printf("  with a writer thread (%d progress updates meanwhile): median list(100) %.0f us, "
           "get %.1f us\n",
           w.n, page_busy, get_busy);
    store_close(s);
}

/* ---- Three processes of four threads each claim 200 jobs at once. */

/* Runs N_CLAIMERS claim_loop threads on s; the number of errors. */
static int claim_with_threads(struct store *s, struct claimer *cl)
{
    pthread_t th[N_CLAIMERS];
    int errors = 0;
    for (int i = 0; i < N_CLAIMERS; i++) {
        memset(&cl[i], 0, sizeof cl[i]);
        cl[i].s = s;
        if (pthread_create(&th[i], NULL, claim_loop, &cl[i]) != 0) return -1;
    }
    for (int i = 0; i < N_CLAIMERS; i++) {
        pthread_join(th[i], NULL);
        errors += cl[i].errors;
    }
    return errors;
}

/* A child of test_claim_threads_processes: N_CLAIMERS threads claim, then
 * the ids they got go into the pipe. */
static int child_claim_threads(struct children *ch, const char *path, int c)
{
    (void)c;
    static struct claimer cl[N_CLAIMERS];
    struct store *cs = NULL;
    char err[256];
    if (store_open(path, &cs, err, sizeof err) != 0) return 3;
    if (child_ready(ch) != 0) return 4;
    int errors = claim_with_threads(cs, cl);
    for (int i = 0; i < N_CLAIMERS; i++)
        for (int k = 0; k < cl[i].n_got; k++)
            if (write(ch->ids[1], &cl[i].got[k], sizeof(int64_t)) != sizeof(int64_t)) return 5;
    store_close(cs);
    return errors == 0 ? 0 : 6;
}

static void test_claim_threads_processes(void)
{
    enum { N_CHILDREN = 2 };
    const char *path = fresh_path("claim_mixed");
    struct store *s = open_store(path);
    if (!s) return;
    insert_queued(s, N_CONC_JOBS);
    static struct claimer cl[N_CLAIMERS];
    struct children ch;
    start_children(&ch, N_CHILDREN, path, child_claim_threads);
    double t0 = now_us();
    release_children(&ch);
    int errors = claim_with_threads(s, cl);
    CHECKF(errors == 0, "%d errors here: %s", errors, store_error(s));
    int seen[N_CONC_JOBS + 1] = {0};
    int n_here = 0, bad = 0;
    for (int i = 0; i < N_CLAIMERS; i++) {
        for (int k = 0; k < cl[i].n_got; k++) {
            count_claim(seen, N_CONC_JOBS, cl[i].got[k], &bad);
            n_here++;
        }
    }
    int n_children = read_child_ids(&ch, seen, N_CONC_JOBS, &bad);
    reap_children(&ch);
    double t1 = now_us();
    check_claimed_once(seen, N_CONC_JOBS, bad);
    printf("  %d jobs claimed+progress+finished by 3 processes x %d threads in %.1f ms: %d here, "
           "%d by the other two\n",
           N_CONC_JOBS, N_CLAIMERS, (t1 - t0) / 1e3, n_here, n_children);
    struct store_stats st;
    CHECK(store_stats(s, &st) == 0 && st.done == N_CONC_JOBS && st.running == 0 && st.queued == 0);
    store_close(s);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM jobs WHERE attempts = 1") == N_CONC_JOBS);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM uploads WHERE model_ran = 1") == N_CONC_JOBS);
}

/* Four processes open one new, empty database at the same moment: the
 * schema is made once and each version recorded once. */
static int child_open_insert(struct children *ch, const char *path, int c)
{
    char err[256];
    struct store *cs = NULL;
    if (child_ready(ch) != 0) return 4;
    int rc = store_open(path, &cs, err, sizeof err);
    if (rc != 0) {
        printf("  process %d: %d %s\n", c, rc, err);
        return 3;
    }
    /* Each process then writes through the schema it found. */
    struct store_upload u;
    make_upload(&u, c, NULL);
    rc = store_upload_insert(cs, &u, NULL);
    store_close(cs);
    return rc == 0 ? 0 : 5;
}

static void test_migrate_race(void)
{
    enum { N_PROCS = 4 };
    const char *path = fresh_path("migrate_race");
    struct children ch;
    start_children(&ch, N_PROCS, path, child_open_insert);
    release_children(&ch);
    reap_children(&ch);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM schema_version") == store_schema_version());
    CHECK(sql_int(path, "SELECT COUNT(DISTINCT version) FROM schema_version") ==
          store_schema_version());
    CHECK(sql_int(path, "SELECT COUNT(*) FROM uploads") == N_PROCS);
    CHECK(sql_int(path, "SELECT n FROM upload_count") == N_PROCS);
    if (backend == ON_PG)
        CHECK(sql_int(path, "SELECT COUNT(*) FROM pg_indexes WHERE tablename = 'jobs' AND "
                            "schemaname = current_schema()") == 5);
}

/* PostgreSQL: a server that is not there, a database that does not exist. */
static void test_pg_open_errors(void)
{
    char err[512] = "", uri[600];
    struct store *s = (struct store *)1;
    int rc = store_open("postgres://hark@127.0.0.1:1/hark", &s, err, sizeof err);
    CHECKF(rc == HARK_EIO && s == NULL && strstr(err, "PostgreSQL"), "rc %d err '%s'", rc, err);
    CHECK(strchr(err, '\n') == NULL);
    pg_uri(uri, sizeof uri, "hark_no_such_database");
    s = (struct store *)1;
    rc = store_open(uri, &s, err, sizeof err);
    CHECKF(rc == HARK_EIO && s == NULL && strstr(err, "hark_no_such_database"), "rc %d err '%s'",
           rc, err);
}

/* PostgreSQL: every connection of the store is cut by the server (as by a
 * restart); the next calls reconnect and succeed. */
static void test_pg_reconnect(void)
{
    const char *path = fresh_path("reconnect");
    struct store *s = open_store(path);
    if (!s) return;
    insert(s, 1, NULL);
    struct store_upload u;
    CHECK(store_upload_get(s, "up-000001", &u) == 0);
    const char *kill_sql = "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()";
    for (int round = 0; round < 3; round++) {
        int64_t killed = sql_int(path, kill_sql);
        CHECKF(killed >= 1, "round %d: %lld connections cut", round, (long long)killed);
        /* A read, a change and a claim, each on a connection cut under it. */
        int rc = store_upload_get(s, "up-000001", &u);
        CHECKF(rc == 0, "round %d get: %d %s", round, rc, store_error(s));
        if (round == 0) {
            CHECK(store_job_enqueue(s, "up-000001", "m", "", "transcribe", NULL, NULL, NULL) == 0);
        } else if (round == 1) {
            struct store_job j;
            rc = store_job_claim(s, "w", &j);
            CHECKF(rc == 0 && j.attempts == 1, "claim: %d %s", rc, store_error(s));
        } else {
            struct store_stats st;
            CHECK(store_stats(s, &st) == 0 && st.uploads == 1 && st.running == 1);
        }
    }
    store_close(s);
}

/* PostgreSQL: an enqueue notifies hark_jobs with the job's id when it
 * commits; a refused enqueue does not. */
static void test_pg_notify(void)
{
    const char *path = fresh_path("notify");
    struct store *s = open_store(path);
    if (!s) return;
    insert(s, 1, NULL);
    PGconn *l = PQconnectdb(path);
    CHECK(PQstatus(l) == CONNECTION_OK);
    PQclear(PQexec(l, "LISTEN hark_jobs"));
    struct store_job j;
    CHECK(store_job_enqueue(s, "up-000001", "m", "", "transcribe", NULL, &j, NULL) == 0);
    CHECK(store_job_enqueue(s, "up-000001", "m", "", "transcribe", NULL, NULL, NULL) == HARK_EBUSY);
    int n = 0;
    char want[24], got[64] = "";
    snprintf(want, sizeof want, "%lld", (long long)j.id);
    for (int waited = 0; waited < 2000; waited += 10) {
        PQconsumeInput(l);
        PGnotify *note;
        while ((note = PQnotifies(l)) != NULL) {
            if (strcmp(note->relname, "hark_jobs") == 0) {
                n++;
                snprintf(got, sizeof got, "%s", note->extra);
            }
            PQfreemem(note);
        }
        if (n > 0 && waited >= 200) break;
        usleep(10 * 1000);
    }
    CHECKF(n == 1 && strcmp(got, want) == 0, "%d notifications, payload '%s', want '%s'", n, got,
           want);
    PQfinish(l);
    store_close(s);
}

enum { BOTH, SQLITE_ONLY, PG_ONLY };

/* The hits of a query: their "upload:segment" joined by spaces in rank
 * order, or "error <code>". */
static const char *hits_of(struct store *s, const char *query, const char *owner, int limit, int64_t offset,
                           int64_t *total)
{
    static char out[512];
    struct store_hit *h = NULL;
    int n = -1;
    int rc = store_search(s, query, owner, limit, offset, &h, &n, total);
    if (rc) {
        snprintf(out, sizeof out, "error %d", rc);
        return out;
    }
    out[0] = 0;
    for (int i = 0; i < n; i++)
        snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s:%d", i ? " " : "", h[i].upload_id + 8,
                 h[i].segment);
    store_hits_free(h, n);
    return out;
}

/* The search index: words, prefixes, phrases, case and diacritics folded,
 * owners kept apart, pages, snippets, replacing an upload's transcript,
 * the finish that indexes, and deletion. Uploads "up-000001" (alice) and
 * "up-000002" (bob) are named 1 and 2 in the hits. */
static void test_search(void)
{
    const char *path = fresh_path("search");
    struct store *s = open_store(path);
    if (!s) return;
    struct store_upload a, b;
    make_upload(&a, 1, NULL);
    snprintf(a.owner, sizeof a.owner, "alice");
    make_upload(&b, 2, NULL);
    snprintf(b.owner, sizeof b.owner, "bob");
    CHECK(store_upload_insert(s, &a, NULL) == 0 && store_upload_insert(s, &b, NULL) == 0);
    const struct store_segment sa[] = {
        {0, 0.0, 2.5, " Ça va très bien."},
        {1, 2.5, 6.0, " The transcription of the meeting starts now."},
        {2, 6.0, 9.0, " Un café à Paris, s'il vous plaît."},
    };
    const struct store_segment sb[] = {
        {0, 0.0, 4.0, " Transcribing every word is what we do."},
        {1, 4.0, 8.5, " Très bien, the meeting is over."},
    };
    CHECK(store_index_set(s, a.id, sa, 3) == 0);
    CHECK(store_index_set(s, b.id, sb, 2) == 0);
    CHECK(store_index_set(s, "up-999999", sa, 1) == HARK_ENOENT);

    int64_t total = -1;
    const char *q0 = hits_of(s, "tres", NULL, 10, 0, &total);
    CHECKF((!strcmp(q0, "1:0 2:1") || !strcmp(q0, "2:1 1:0")) && total == 2, "tres: %s", q0);
    const char *q1 = hits_of(s, "TRÈS", NULL, 10, 0, &total);
    CHECKF(total == 2 && strlen(q1) == 7, "TRÈS: %s (%lld)", q1, (long long)total);
    const char *q2 = hits_of(s, "cafe paris", NULL, 10, 0, &total);
    CHECKF(!strcmp(q2, "1:2") && total == 1, "cafe paris: %s", q2);
    const char *q3 = hits_of(s, "trans*", NULL, 10, 0, &total);
    CHECKF(total == 2 && (strstr(q3, "1:1") && strstr(q3, "2:0")), "trans*: %s", q3);
    const char *q4 = hits_of(s, "\"tres bien the meeting\"", NULL, 10, 0, &total);
    CHECKF(!strcmp(q4, "2:1") && total == 1, "phrase: %s", q4);
    const char *q5 = hits_of(s, "\"meeting the\"", NULL, 10, 0, &total);
    CHECKF(!q5[0] && total == 0, "reversed phrase: %s", q5);
    const char *q6 = hits_of(s, "meeting", "alice", 10, 0, &total);
    CHECKF(!strcmp(q6, "1:1") && total == 1, "alice's meeting: %s", q6);
    const char *q7 = hits_of(s, "meeting", "carol", 10, 0, &total);
    CHECKF(!q7[0] && total == 0, "carol's meeting: %s", q7);
    const char *q8 = hits_of(s, "tres", NULL, 1, 1, &total);
    CHECKF(strlen(q8) == 3 && total == 2, "page 2: %s", q8);
    const char *q9 = hits_of(s, "tres", NULL, 10, 5, &total);
    CHECKF(!q9[0] && total == 2, "past the end: %s %lld", q9, (long long)total);
    CHECKF(!strcmp(hits_of(s, "nothing-here", NULL, 10, 0, &total), "") && total == 0, "no hit");
    /* What is not a query. */
    struct store_hit *h = NULL;
    int n = -1;
    CHECK(store_search(s, "", NULL, 10, 0, &h, &n, NULL) == HARK_EINVAL);
    CHECK(store_search(s, "*** \" - ", NULL, 10, 0, &h, &n, NULL) == HARK_EINVAL);
    char many[400] = "";
    for (int i = 0; i < 17; i++) snprintf(many + strlen(many), sizeof many - strlen(many), "w%d ", i);
    CHECK(store_search(s, many, NULL, 10, 0, &h, &n, NULL) == HARK_EINVAL);
    char longq[300];
    memset(longq, 'a', sizeof longq - 1);
    longq[sizeof longq - 1] = 0;
    CHECK(store_search(s, longq, NULL, 10, 0, &h, &n, NULL) == HARK_EINVAL);
    /* Quotes and operators of either backend inside a query are words. */
    CHECK(store_search(s, "'tres' & !bien | NEAR(a) :* <-> \\", NULL, 10, 0, &h, &n, &total) == 0);
    store_hits_free(h, n);

    /* Random queries of up to 15 pieces: syntax of either backend, letters,
     * accented and typographic characters, and a byte that is not UTF-8.
     * Each is answered; only those with that byte may be refused
     * (PostgreSQL takes UTF-8 only), and never as a database fault. */
    static const char *const pieces[] = {"\"", "*", "'", "&", "|", "!", ":", "<", ">", "(", ")", "\\", "-",
                                         " ", "a", "b", "T", "R", "é", "\xe2\x80\x9c", "\xff"};
    uint32_t seed = 12345;
    int refused = 0;
    for (int k = 0; k < 300; k++) {
        char rq[128] = "";
        seed = seed * 1664525u + 1013904223u;
        int count = (int)(seed >> 24) % 16, bad = 0, letter = 0;
        for (int i = 0; i < count; i++) {
            seed = seed * 1664525u + 1013904223u;
            const char *p = pieces[(seed >> 16) % (sizeof pieces / sizeof pieces[0])];
            bad |= p[0] == '\xff';
            letter |= (p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z') || (unsigned char)p[0] >= 0x80;
            strcat(rq, p);
        }
        int rc = store_search(s, rq, k % 2 ? "alice" : NULL, 5, 0, &h, &n, &total);
        CHECKF(rc == 0 || (rc == HARK_EINVAL && (bad || !letter)), "query %d '%s': %d %s", k, rq, rc, store_error(s));
        if (rc == 0) store_hits_free(h, n);
        refused += rc == HARK_EINVAL;
    }
    printf("  300 random queries: %d refused as invalid, none failed\n", refused);

    /* A hit's fields and snippet. */
    CHECK(store_search(s, "cafe", NULL, 10, 0, &h, &n, &total) == 0 && n == 1);
    if (n == 1) {
        CHECKF(!strcmp(h[0].upload_id, a.id) && !strcmp(h[0].filename, a.filename) && h[0].segment == 2 &&
                   h[0].start_s == 6.0 && h[0].end_s == 9.0 && !strcmp(h[0].text, sa[2].text),
               "hit %s %s %d [%g %g] %s", h[0].upload_id, h[0].filename, h[0].segment, h[0].start_s, h[0].end_s,
               h[0].text);
        CHECKF(strstr(h[0].snippet, "\x01" "café" "\x02") != NULL, "snippet '%s'", h[0].snippet);
    }
    store_hits_free(h, n);

    /* A new transcript replaces the old; a finish indexes its segments. */
    const struct store_segment again[] = {{0, 0.0, 1.0, " Nothing of the sort."}};
    CHECK(store_index_set(s, a.id, again, 1) == 0);
    CHECKF(!strcmp(hits_of(s, "cafe", NULL, 10, 0, &total), "") && total == 0, "old text still found");
    CHECKF(!strcmp(hits_of(s, "sort", NULL, 10, 0, &total), "1:0"), "new text not found");
    struct store_job job;
    CHECK(store_job_enqueue(s, b.id, "m", "", "transcribe", NULL, &job, NULL) == 0);
    CHECK(store_job_claim(s, "w", &job) == 0);
    const struct store_segment done[] = {{0, 0.0, 2.0, " Zébulon arrive."}, {1, 2.0, 3.0, " Fin."}};
    CHECK(store_job_finish(s, job.id, "other", "m", "fr", 1, done, 2) == HARK_ESTALE);
    CHECKF(!strcmp(hits_of(s, "zebulon", NULL, 10, 0, &total), ""), "a stale finish indexed");
    CHECK(store_job_finish(s, job.id, "w", "m", "fr", 1, done, 2) == 0);
    CHECKF(!strcmp(hits_of(s, "zebulon", NULL, 10, 0, &total), "2:0"), "zebulon: %s", hits_of(s, "zebulon", NULL, 10, 0, &total));
    CHECKF(!strcmp(hits_of(s, "transcribing", NULL, 10, 0, &total), ""), "bob's old transcript is still found");
    char **ids = NULL;
    CHECK(store_uploads_ran(s, &ids, &n) == 0 && n == 1 && ids && !strcmp(ids[0], b.id));
    for (int i = 0; ids && i < n; i++) free(ids[i]);
    free(ids);

    /* Deleting an upload takes its transcript out of the index. */
    CHECK(store_upload_delete(s, b.id) == 0);
    CHECKF(!strcmp(hits_of(s, "zebulon", NULL, 10, 0, &total), "") && total == 0, "deleted upload found");
    CHECKF(!strcmp(hits_of(s, "sort", NULL, 10, 0, &total), "1:0"), "the other upload lost");
    store_close(s);
    /* The index is kept across a reopen. */
    s = open_store(path);
    CHECKF(s && !strcmp(hits_of(s, "sort", NULL, 10, 0, &total), "1:0"), "after reopening");
    store_close(s);
}

/* A job's segments as they are decoded: kept only for the worker that
 * runs it, replaced at the same place, read in order after a place, page
 * by page, trimmed for a resumed run, kept after the job ends and gone
 * with its upload. */
static void test_job_segments(void)
{
    const char *path = fresh_path("job_segments");
    struct store *s = open_store(path);
    if (!s) return;
    insert(s, 1, NULL);
    insert(s, 2, NULL);
    struct store_job a, b, got;
    CHECK(store_job_enqueue(s, "up-000001", "", "", "transcribe", NULL, &a, NULL) == 0);
    CHECK(store_job_enqueue(s, "up-000002", "", "", "transcribe", NULL, &b, NULL) == 0);
    struct store_job_segment g = {0, 0.0, "en", "{\"text\":\" zero\"}"};
    /* Queued: not yet anyone's. */
    CHECK(store_job_segment_put(s, a.id, "w1", &g) == HARK_ESTALE);
    CHECK(store_job_claim(s, "w1", &got) == 0 && got.id == a.id);
    CHECK(store_job_segment_put(s, a.id, "w2", &g) == HARK_ESTALE);
    CHECK(store_job_segment_put(s, 9999, "w1", &g) == HARK_ESTALE);
    CHECK(store_job_segment_put(s, a.id, "w1", NULL) == HARK_EINVAL);
    char data[64];
    for (int i = 0; i < 7; i++) {
        snprintf(data, sizeof data, "{\"text\":\" s%d é\"}", i);
        struct store_job_segment x = {i, i < 4 ? 0.0 : 29.5, "en", data};
        CHECK(store_job_segment_put(s, a.id, "w1", &x) == 0);
    }
    /* The same place again replaces. */
    struct store_job_segment x = {2, 0.0, "en", "{\"text\":\" two\"}"};
    CHECK(store_job_segment_put(s, a.id, "w1", &x) == 0);
    struct store_job_segment *rows = NULL;
    int n = -1;
    CHECK(store_job_segments(s, a.id, -1, 100, &rows, &n) == 0 && n == 7);
    for (int i = 0; rows && i < n; i++) CHECKF(rows[i].seq == i, "row %d is seq %d", i, rows[i].seq);
    CHECK(rows && !strcmp(rows[2].data, "{\"text\":\" two\"}") && !strcmp(rows[5].data, "{\"text\":\" s5 é\"}") &&
          rows[5].window_s == 29.5 && !strcmp(rows[5].language, "en"));
    store_job_segments_free(rows, n);
    /* After a place, a page at a time. */
    CHECK(store_job_segments(s, a.id, 2, 3, &rows, &n) == 0 && n == 3 && rows[0].seq == 3 && rows[2].seq == 5);
    store_job_segments_free(rows, n);
    CHECK(store_job_segments(s, a.id, 6, 3, &rows, &n) == 0 && n == 0 && rows == NULL);
    CHECK(store_job_segments(s, b.id, -1, 3, &rows, &n) == 0 && n == 0);
    CHECK(store_job_segments(s, a.id, -1, 0, &rows, &n) == HARK_EINVAL);
    /* The checkpoint: only the worker's, kept across a claim. */
    CHECK(store_job_checkpoint(s, a.id, "w2", 29.5, 4) == HARK_ESTALE);
    CHECK(store_job_checkpoint(s, a.id, "w1", -1.0, 4) == HARK_EINVAL);
    CHECK(store_job_checkpoint(s, a.id, "w1", 29.5, 4) == 0);
    CHECK(store_job_get(s, a.id, &got) == 0 && got.resume_s == 29.5 && got.resume_segments == 4);
    CHECK(store_job_get(s, b.id, &got) == 0 && got.resume_s == 0.0 && got.resume_segments == 0);
    /* Trimmed from a place on. */
    CHECK(store_job_segments_trim(s, a.id, 4) == 0);
    CHECK(store_job_segments(s, a.id, -1, 100, &rows, &n) == 0 && n == 4 && rows[3].seq == 3);
    store_job_segments_free(rows, n);
    /* Kept when the job ends, written no more. */
    CHECK(store_job_finish(s, a.id, "w1", "m", "en", 1.0, NULL, 0) == 0);
    CHECK(store_job_segment_put(s, a.id, "w1", &g) == HARK_ESTALE);
    CHECK(store_job_segments(s, a.id, -1, 100, &rows, &n) == 0 && n == 4);
    store_job_segments_free(rows, n);
    /* Gone with the upload. */
    CHECK(store_upload_delete(s, "up-000001") == 0);
    CHECK(store_job_segments(s, a.id, -1, 100, &rows, &n) == 0 && n == 0);
    if (backend == ON_SQLITE) CHECK(sql_int(path, "SELECT COUNT(*) FROM job_segments") == 0);
    store_close(s);
}

/* Callbacks: due once a job with a URL has ended, held while one process
 * sends it, due again when an attempt failed and a retry is set, never
 * again once delivered or failed; every attempt kept. */
static void test_callbacks(void)
{
    const char *path = fresh_path("callbacks");
    struct store *s = open_store(path);
    if (!s) return;
    insert(s, 1, NULL);
    insert(s, 2, NULL);
    struct store_job a, b, got;
    struct store_callback cb;
    CHECK(store_job_enqueue(s, "up-000001", "", "", "transcribe", NULL, &a, NULL) == 0);
    CHECK(store_job_enqueue(s, "up-000002", "", "", "transcribe", NULL, &b, NULL) == 0);
    CHECK(store_job_set_callback(s, a.id, "http://127.0.0.1:9/hook") == 0);
    CHECK(store_job_set_callback(s, b.id, "http://127.0.0.1:9/other") == 0);
    CHECK(store_job_set_callback(s, 99999, "http://x/") == HARK_ENOENT);
    CHECK(store_callback_claim(s, 60000, &cb) == HARK_EAGAIN); /* neither has ended */
    CHECK(store_job_claim(s, "w", &got) == 0 && got.id == a.id && !strcmp(got.callback_url, "http://127.0.0.1:9/hook"));
    CHECK(store_job_finish(s, a.id, "w", "m", "en", 1.0, NULL, 0) == 0);
    CHECK(store_callback_claim(s, 60000, &cb) == 0 && cb.job_id == a.id && cb.tries == 0 &&
          !strcmp(cb.url, "http://127.0.0.1:9/hook") && !strcmp(cb.state, "done") && cb.finished[0]);
    CHECK(store_callback_claim(s, 60000, &cb) == HARK_EAGAIN); /* held */
    CHECK(store_callback_record(s, a.id, 1, 500, "HTTP 500", "pending", 0) == 0);
    CHECK(store_callback_claim(s, 60000, &cb) == 0 && cb.job_id == a.id && cb.tries == 1);
    CHECK(store_callback_record(s, a.id, 2, 200, "", "delivered", 0) == 0);
    CHECK(store_callback_claim(s, 60000, &cb) == HARK_EAGAIN);
    struct store_callback_attempt *at = NULL;
    int n = 0;
    CHECK(store_callback_attempts(s, a.id, &at, &n) == 0 && n == 2);
    CHECK(at && at[0].n == 1 && at[0].status == 500 && !strcmp(at[0].error, "HTTP 500") && at[0].at[0] &&
          at[1].n == 2 && at[1].status == 200);
    free(at);
    CHECK(store_job_get(s, a.id, &got) == 0 && !strcmp(got.callback_state, "delivered") && got.callback_tries == 2);
    /* A canceled job's end is told too; failed for good, it is not due again. */
    CHECK(store_job_cancel(s, b.id) == 0);
    CHECK(store_callback_claim(s, 60000, &cb) == 0 && cb.job_id == b.id && !strcmp(cb.state, "canceled"));
    CHECK(store_callback_record(s, b.id, 1, 0, "connection refused", "failed", 0) == 0);
    CHECK(store_callback_claim(s, 60000, &cb) == HARK_EAGAIN);
    CHECK(store_callback_record(s, b.id, 1, 0, "x", "maybe", 0) == HARK_EINVAL);
    CHECK(store_job_get(s, b.id, &got) == 0 && !strcmp(got.callback_state, "failed") && got.callback_tries == 1);
    /* Gone with the upload. */
    CHECK(store_upload_delete(s, "up-000001") == 0);
    CHECK(store_callback_attempts(s, a.id, &at, &n) == 0 && n == 0);
    free(at);
    store_close(s);
}

static const struct {
    const char *name;
    void (*fn)(void);
    int where;
} tests[] = {
    {"store_now", test_now, SQLITE_ONLY},
    {"store_open_new", test_open_new, BOTH},
    {"store_upload_insert_get", test_upload_insert_get, BOTH},
    {"store_duplicate", test_duplicate, BOTH},
    {"store_owners", test_owners, BOTH},
    {"store_keys", test_keys, BOTH},
    {"store_truncation", test_truncation, BOTH},
    {"store_job_options", test_job_options, BOTH},
    {"store_list", test_list, BOTH},
    {"store_enqueue_position", test_enqueue_position, BOTH},
    {"store_claim_fifo", test_claim_fifo, BOTH},
    {"store_claim_threads", test_claim_threads, BOTH},
    {"store_claim_processes", test_claim_processes, BOTH},
    {"store_claim_threads_processes", test_claim_threads_processes, BOTH},
    {"store_migrate_race", test_migrate_race, BOTH},
    {"store_upgrade_v1", test_upgrade_v1, BOTH},
    {"store_job_state_rules", test_job_state_rules, BOTH},
    {"store_delete_cascade", test_delete_cascade, BOTH},
    {"store_requeue_after_crash", test_requeue_after_crash, BOTH},
    {"store_lease", test_lease, BOTH},
    {"store_lease_exactly_once", test_lease_exactly_once, BOTH},
    {"store_wait_news", test_wait_news, BOTH},
    {"store_reopen_keeps_data", test_reopen_keeps_data, BOTH},
    {"store_newer_schema", test_newer_schema, BOTH},
    {"store_not_a_database", test_not_a_database, SQLITE_ONLY},
    {"store_open_errors", test_pg_open_errors, PG_ONLY},
    {"store_reconnect", test_pg_reconnect, PG_ONLY},
    {"store_notify", test_pg_notify, PG_ONLY},
    {"store_news_reach_queue", test_news_reach_queue, PG_ONLY},
    {"store_crash_mid_transaction", test_crash_mid_transaction, BOTH},
    {"store_crash_store_api", test_crash_store_api, BOTH},
    {"store_error_per_thread", test_error_per_thread, BOTH},
    {"store_big_list", test_big_list, BOTH},
    {"store_search", test_search, BOTH},
    {"store_job_segments", test_job_segments, BOTH},
    {"store_callbacks", test_callbacks, BOTH},
};

int main(int argc, char **argv)
{
    t_init(argc, argv);
    pg_base = getenv("HARK_TEST_PG");
    if (pg_base && !pg_base[0]) pg_base = NULL;
    int n = (int)(sizeof tests / sizeof tests[0]);
    backend = ON_SQLITE;
    for (int i = 0; i < n; i++)
        if (tests[i].where != PG_ONLY) t_run(tests[i].name, tests[i].fn);
    /* The same tests on PostgreSQL, named "pg_<name>". */
    backend = ON_PG;
    for (int i = 0; i < n; i++) {
        if (tests[i].where == SQLITE_ONLY) continue;
        char name[96];
        snprintf(name, sizeof name, "pg_%s", tests[i].name);
        if (pg_base) t_run(name, tests[i].fn);
        else if (i == n - 1)
            t_skip("pg_store", "HARK_TEST_PG is not set (tests/store/test_store_pg.sh sets it)");
    }
    return t_summary();
}
