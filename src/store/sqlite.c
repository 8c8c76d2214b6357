/*
 * sqlite.c: the SQLite backend of the store (store.h, backend.h).
 *
 * The database is one file in WAL mode, so readers never wait for a writer
 * and a writer never waits for readers. A store holds one write connection
 * behind a mutex, through which every change goes, and a small pool of read
 * connections (query_only) for the functions that only read: any thread
 * takes a free reader, runs its statements and gives it back, so listings
 * and lookups go on while a worker records progress or claims a job. Each
 * connection is used by one thread at a time (the mutexes guarantee it), so
 * connections are opened without SQLite's own locking, and each keeps its
 * prepared statements for the life of the store. The price of separate
 * connections is that a reader's page cache is dropped whenever another
 * connection has written, so reads just after a write fetch their pages
 * again; the schema keeps what a listing reads small for that reason (the
 * total comes from a counter row, a page from the date index).
 *
 * Every change is one transaction begun with BEGIN IMMEDIATE, which takes
 * the database's write lock before the first read: a read-modify-write
 * (claim, enqueue, finish) can never interleave with another process's
 * writer either, and busy_timeout (5 s) lets a second process wait its turn.
 * Reads that combine several statements (a listing, its total and its queue
 * places) run in one read transaction, so they see one snapshot.
 *
 * synchronous=NORMAL: in WAL mode a commit is atomic and survives the
 * process dying at any point; only a power loss or OS crash can take back
 * the last few commits (never corrupt the file). For a transcription queue
 * that means at worst a job that runs once more or an upload whose row is
 * lost while its file stays, which is worth not paying an fsync on every
 * progress update.
 *
 * Schema changes are an ordered list of SQL scripts; schema_version records
 * each one applied. store_open applies the missing ones, one transaction
 * each, and refuses a database written by a newer hark.
 *
 * Leases (store.h) use SQLite's own clock ('now' in strftime), the same
 * for every process on the machine. There are no announcements across
 * processes: store_wait_news is not supported, and a queue over SQLite
 * looks at the store on its own schedule.
 *
 * Strings are stored as given and cut (at a UTF-8 character boundary) only
 * when copied into the fixed-size fields of struct store_upload/store_job.
 */
#include "backend.h"

#include "hark.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_READERS 4
#define BUSY_TIMEOUT_MS 5000

/* ---------------------------------------------------------------- schema */

/* Migration i takes the schema from version i to version i + 1. Never edit
 * one that has shipped: add a new one. */
static const char *const migrations[] = {
    /* 1: uploads and jobs. */
    "CREATE TABLE uploads ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " filename TEXT NOT NULL DEFAULT '',"
    " sha256 TEXT UNIQUE NOT NULL,"
    " content_type TEXT NOT NULL DEFAULT '',"
    " model TEXT NOT NULL DEFAULT '',"
    " upload_date TEXT NOT NULL DEFAULT '',"
    " size INTEGER NOT NULL DEFAULT 0,"
    " duration_s REAL NOT NULL DEFAULT 0,"
    " model_ran INTEGER NOT NULL DEFAULT 0,"
    " model_date TEXT NOT NULL DEFAULT '',"
    " time_s REAL NOT NULL DEFAULT 0,"
    " language TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX uploads_by_date ON uploads(upload_date DESC, id DESC);"
    "CREATE TABLE jobs ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " upload_id TEXT NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,"
    " model TEXT NOT NULL DEFAULT '',"
    " language TEXT NOT NULL DEFAULT '',"
    " task TEXT NOT NULL DEFAULT 'transcribe',"
    " state TEXT NOT NULL CHECK (state IN ('queued','running','done','failed','canceled')),"
    " progress REAL NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " created TEXT NOT NULL DEFAULT '',"
    " started TEXT NOT NULL DEFAULT '',"
    " finished TEXT NOT NULL DEFAULT '',"
    " worker TEXT NOT NULL DEFAULT '',"
    " error TEXT NOT NULL DEFAULT '');"
    /* The latest job of an upload (MAX(id) per upload_id) and the cascade. */
    "CREATE INDEX jobs_by_upload ON jobs(upload_id, id);"
    /* Claim (oldest queued), queue places, jobs_in_state, stats. */
    "CREATE INDEX jobs_by_state ON jobs(state, id);"
    /* At most one active job per upload, whatever the callers do. */
    "CREATE UNIQUE INDEX jobs_one_active ON jobs(upload_id)"
    " WHERE state IN ('queued','running');"
    /* The number of uploads, kept by triggers in the same transaction as
     * the change: counting the rows instead reads the whole of an index,
     * which is slow just after any write, when a read connection's page
     * cache is stale. */
    "CREATE TABLE upload_count (n INTEGER NOT NULL);"
    "INSERT INTO upload_count VALUES (0);"
    "CREATE TRIGGER uploads_count_insert AFTER INSERT ON uploads"
    " BEGIN UPDATE upload_count SET n = n + 1; END;"
    "CREATE TRIGGER uploads_count_delete AFTER DELETE ON uploads"
    " BEGIN UPDATE upload_count SET n = n - 1; END;",
    /* 2: leases. A running job is held until lease_until (the database's
     * clock, in the store's time format) unless its worker renews it. */
    "ALTER TABLE jobs ADD COLUMN lease_until TEXT NOT NULL DEFAULT '';",
    /* 3: a job's own settings (speech detection), a JSON object or ''. */
    "ALTER TABLE jobs ADD COLUMN options TEXT NOT NULL DEFAULT '';",
    /* 4: owners and API keys. An upload belongs to the key that sent it
     * ('' for the service's own key) and its content hash is unique per
     * owner. SQLite cannot drop the UNIQUE of a column, so the table is
     * copied into a new one without it and renamed; migrate() turns
     * foreign keys off meanwhile, so dropping the old table leaves the
     * jobs that point to it alone. Its index and counter triggers went
     * with it and are made again. A key is kept as the SHA-256 of the key. */
    "CREATE TABLE uploads_v4 ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " filename TEXT NOT NULL DEFAULT '',"
    " sha256 TEXT NOT NULL,"
    " content_type TEXT NOT NULL DEFAULT '',"
    " model TEXT NOT NULL DEFAULT '',"
    " upload_date TEXT NOT NULL DEFAULT '',"
    " size INTEGER NOT NULL DEFAULT 0,"
    " duration_s REAL NOT NULL DEFAULT 0,"
    " model_ran INTEGER NOT NULL DEFAULT 0,"
    " model_date TEXT NOT NULL DEFAULT '',"
    " time_s REAL NOT NULL DEFAULT 0,"
    " language TEXT NOT NULL DEFAULT '',"
    " owner TEXT NOT NULL DEFAULT '');"
    "INSERT INTO uploads_v4 (id, filename, sha256, content_type, model, upload_date, size,"
    " duration_s, model_ran, model_date, time_s, language)"
    " SELECT id, filename, sha256, content_type, model, upload_date, size, duration_s,"
    " model_ran, model_date, time_s, language FROM uploads;"
    "DROP TABLE uploads;"
    "ALTER TABLE uploads_v4 RENAME TO uploads;"
    "CREATE INDEX uploads_by_date ON uploads(upload_date DESC, id DESC);"
    "CREATE INDEX uploads_by_owner ON uploads(owner, upload_date DESC, id DESC);"
    "CREATE UNIQUE INDEX uploads_owner_sha256 ON uploads(owner, sha256);"
    "CREATE TRIGGER uploads_count_insert AFTER INSERT ON uploads"
    " BEGIN UPDATE upload_count SET n = n + 1; END;"
    "CREATE TRIGGER uploads_count_delete AFTER DELETE ON uploads"
    " BEGIN UPDATE upload_count SET n = n - 1; END;"
    "CREATE TABLE api_keys ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " hash TEXT UNIQUE NOT NULL,"
    " admin INTEGER NOT NULL DEFAULT 0,"
    " created TEXT NOT NULL DEFAULT '',"
    " revoked TEXT NOT NULL DEFAULT '');",
    /* 5: the search index. Each segment of an upload's transcript is a row;
     * an FTS5 table over their text (its own copy of nothing: it reads the
     * rows), kept in step by triggers, folds case and diacritics. Deleting
     * an upload deletes its rows, and the triggers its index entries. */
    "CREATE TABLE transcript_segments ("
    " id INTEGER PRIMARY KEY,"
    " upload_id TEXT NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,"
    " seg INTEGER NOT NULL,"
    " start_s REAL NOT NULL,"
    " end_s REAL NOT NULL,"
    " text TEXT NOT NULL);"
    "CREATE INDEX transcript_segments_by_upload ON transcript_segments(upload_id, seg);"
    "CREATE VIRTUAL TABLE transcript_fts USING fts5(text, content = 'transcript_segments',"
    " content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2');"
    "CREATE TRIGGER transcript_segments_insert AFTER INSERT ON transcript_segments"
    " BEGIN INSERT INTO transcript_fts(rowid, text) VALUES (new.id, new.text); END;"
    "CREATE TRIGGER transcript_segments_delete AFTER DELETE ON transcript_segments"
    " BEGIN INSERT INTO transcript_fts(transcript_fts, rowid, text) VALUES ('delete', old.id, old.text); END;",
    /* 6: the segments of each job as its worker decodes them (JSON). */
    "CREATE TABLE job_segments ("
    " job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    " seq INTEGER NOT NULL,"
    " window_s REAL NOT NULL,"
    " language TEXT NOT NULL DEFAULT '',"
    " data TEXT NOT NULL,"
    " PRIMARY KEY (job_id, seq)) WITHOUT ROWID;"
    /* ... and where a run cut short resumes: the start of the window after
     * the last one finished, and the segments final by then. */
    "ALTER TABLE jobs ADD COLUMN resume_s REAL NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN resume_segments INTEGER NOT NULL DEFAULT 0;"
    /* ... and the callback when a job ends: where, how it went
     * ('' not yet tried, pending, delivered, failed), when it is next due,
     * and every attempt. */
    "ALTER TABLE jobs ADD COLUMN callback_url TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN callback_state TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN callback_next TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN callback_tries INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX jobs_callbacks ON jobs(callback_next, id)"
    " WHERE callback_url <> '' AND callback_state IN ('', 'pending');"
    "CREATE TABLE callback_attempts ("
    " job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    " n INTEGER NOT NULL,"
    " at TEXT NOT NULL,"
    " status INTEGER NOT NULL,"
    " error TEXT NOT NULL DEFAULT '',"
    " PRIMARY KEY (job_id, n)) WITHOUT ROWID;",
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* ---------------------------------------------------------------- statements */

#define UPLOAD_COLS                                                              \
    "u.id, u.filename, u.sha256, u.content_type, u.model, u.upload_date, u.size," \
    " u.duration_s, u.model_ran, u.model_date, u.time_s, u.language,"             \
    " j.id, j.state, j.progress, j.error, u.owner"

/* Each upload with its latest job (NULL columns when it has none). A page
 * of the listing is picked from the date index alone (it covers the sort
 * and holds the rowid, so skipping offset rows reads nothing else); only
 * the rows of the page are then read and joined to their latest job. */
#define UPLOAD_JOIN \
    " LEFT JOIN jobs j ON j.id = (SELECT MAX(id) FROM jobs WHERE upload_id = u.id)"

#define JOB_COLS                                                                   \
    "id, upload_id, model, language, task, state, progress, attempts, created,"    \
    " started, finished, worker, error, lease_until, options, resume_s, resume_segments,"   \
    " callback_url, callback_state, callback_tries"

#define KEY_COLS "name, created, admin, revoked"

/* Now, and the end of a lease of ?N milliseconds from now, by SQLite's
 * clock in the store's time format ("%f" is seconds with milliseconds). */
#define SQL_NOW "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
#define SQL_LEASE(n) "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', (" n " / 1000.0) || ' seconds')"

#define STATEMENTS(X)                                                                      \
    X(BEGIN_WRITE, "BEGIN IMMEDIATE")                                                      \
    X(BEGIN_READ, "BEGIN")                                                                 \
    X(COMMIT, "COMMIT")                                                                    \
    X(ROLLBACK, "ROLLBACK")                                                                \
    X(VERSION, "SELECT COALESCE(MAX(version), 0) FROM schema_version")                     \
    X(VERSION_ADD, "INSERT INTO schema_version(version, applied) VALUES (?1, ?2)")         \
    X(UPLOAD_BY_SHA, "SELECT " UPLOAD_COLS " FROM uploads u" UPLOAD_JOIN                   \
                     " WHERE u.sha256 = ?1 AND u.owner = ?2")                              \
    X(UPLOAD_GET, "SELECT " UPLOAD_COLS " FROM uploads u" UPLOAD_JOIN " WHERE u.id = ?1")  \
    X(UPLOAD_LIST, "SELECT " UPLOAD_COLS " FROM (SELECT rowid AS rid FROM uploads"         \
                   " ORDER BY upload_date DESC, id DESC LIMIT ?1 OFFSET ?2) page"          \
                   " CROSS JOIN uploads u ON u.rowid = page.rid" UPLOAD_JOIN               \
                   " ORDER BY u.upload_date DESC, u.id DESC")                              \
    X(UPLOAD_LIST_OWNER, "SELECT " UPLOAD_COLS " FROM (SELECT rowid AS rid FROM uploads"   \
                         " WHERE owner = ?3 ORDER BY upload_date DESC, id DESC"            \
                         " LIMIT ?1 OFFSET ?2) page"                                       \
                         " CROSS JOIN uploads u ON u.rowid = page.rid" UPLOAD_JOIN         \
                         " ORDER BY u.upload_date DESC, u.id DESC")                        \
    X(UPLOAD_COUNT, "SELECT n FROM upload_count")                                          \
    X(UPLOAD_COUNT_OWNER, "SELECT COUNT(*) FROM uploads WHERE owner = ?1")                 \
    X(UPLOAD_EXISTS, "SELECT 1 FROM uploads WHERE id = ?1")                                \
    X(UPLOAD_INSERT, "INSERT INTO uploads (id, filename, sha256, content_type, model,"     \
                     " upload_date, size, duration_s, owner)"                              \
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")                       \
    X(UPLOAD_DELETE, "DELETE FROM uploads WHERE id = ?1")                                  \
    X(UPLOAD_RAN, "UPDATE uploads SET model_ran = 1, model_date = ?2,"                     \
                  " model = COALESCE(NULLIF(?3, ''), (SELECT model FROM jobs WHERE id = ?1)),"  \
                  " time_s = ?4, language = ?5"                                            \
                  " WHERE id = (SELECT upload_id FROM jobs WHERE id = ?1)")                \
    X(QUEUED_RANGE, "SELECT id FROM jobs WHERE state = 'queued' AND id > ?1 AND id <= ?2"  \
                    " ORDER BY id")                                                        \
    X(QUEUE_PLACE, "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND id <= ?1")        \
    X(JOB_GET, "SELECT " JOB_COLS " FROM jobs WHERE id = ?1")                              \
    X(JOB_ACTIVE, "SELECT " JOB_COLS " FROM jobs WHERE upload_id = ?1"                     \
                  " AND state IN ('queued', 'running') ORDER BY id DESC LIMIT 1")          \
    X(JOB_INSERT, "INSERT INTO jobs (upload_id, model, language, task, state, created,"    \
                  " options) VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6)")                   \
    X(JOB_CLAIM, "UPDATE jobs SET state = 'running', attempts = attempts + 1,"             \
                 " started = ?1, worker = ?2, progress = 0, finished = '', error = '',"    \
                 " lease_until = " SQL_LEASE("?3")                                         \
                 " WHERE id = (SELECT id FROM jobs WHERE state = 'queued'"                 \
                 " ORDER BY id LIMIT 1) RETURNING " JOB_COLS)                              \
    X(JOB_HEARTBEAT, "UPDATE jobs SET lease_until = " SQL_LEASE("?3")                      \
                     " WHERE id = ?1 AND state = 'running' AND worker = ?2")               \
    X(JOB_PROGRESS, "UPDATE jobs SET progress = ?2"                                        \
                    " WHERE id = ?1 AND state = 'running' AND worker = ?3")                \
    X(JOB_DONE, "UPDATE jobs SET state = 'done', progress = 100, finished = ?2,"           \
                " lease_until = '' WHERE id = ?1 AND state = 'running' AND worker = ?3")   \
    X(JOB_FAILED, "UPDATE jobs SET state = 'failed', error = ?2, finished = ?3,"           \
                  " lease_until = '' WHERE id = ?1 AND state = 'running' AND worker = ?4") \
    X(JOB_RELEASE, "UPDATE jobs SET state = 'queued', progress = 0, lease_until = ''"      \
                   " WHERE id = ?1 AND state = 'running' AND worker = ?2")                 \
    X(JOB_CANCEL, "UPDATE jobs SET state = 'canceled', finished = ?2, lease_until = ''"    \
                  " WHERE id = ?1 AND state IN ('queued', 'running')")                     \
    X(JOB_EXISTS, "SELECT 1 FROM jobs WHERE id = ?1")                                      \
    X(REQUEUE, "UPDATE jobs SET state = 'queued', progress = 0, lease_until = ''"          \
               " WHERE state = 'running'")                                                 \
    X(REQUEUE_EXPIRED, "UPDATE jobs SET state = 'queued', progress = 0, lease_until = ''"  \
                       " WHERE state = 'running' AND lease_until < " SQL_NOW)              \
    X(JOBS_IN_STATE, "SELECT id FROM jobs WHERE state = ?1 ORDER BY id")                   \
    X(STATS_JOBS, "SELECT state, COUNT(*) FROM jobs GROUP BY state")                       \
    X(KEY_ADD, "INSERT INTO api_keys (name, hash, admin, created) VALUES (?1, ?2, ?3, ?4)") \
    X(KEY_LIST, "SELECT " KEY_COLS " FROM api_keys ORDER BY created, name")                \
    X(KEY_REVOKE, "UPDATE api_keys SET revoked = ?2 WHERE name = ?1 AND revoked = ''")     \
    X(KEY_EXISTS, "SELECT 1 FROM api_keys WHERE name = ?1")                                \
    X(KEY_FIND, "SELECT " KEY_COLS " FROM api_keys WHERE hash = ?1 AND revoked = ''")      \
    X(KEY_COUNT, "SELECT COUNT(*) FROM api_keys")                                          \
    X(SEGS_DELETE, "DELETE FROM transcript_segments WHERE upload_id = ?1")                 \
    X(SEG_INSERT, "INSERT INTO transcript_segments (upload_id, seg, start_s, end_s, text)" \
                  " VALUES (?1, ?2, ?3, ?4, ?5)")                                          \
    X(SEARCH_COUNT, "SELECT COUNT(*) FROM transcript_fts f"                                \
                    " JOIN transcript_segments g ON g.id = f.rowid"                        \
                    " JOIN uploads u ON u.id = g.upload_id"                                \
                    " WHERE transcript_fts MATCH ?1 AND (?2 IS NULL OR u.owner = ?2)")     \
    X(SEARCH, "SELECT g.upload_id, u.filename, g.seg, g.start_s, g.end_s,"                 \
              " -bm25(transcript_fts), g.text,"                                            \
              " snippet(transcript_fts, 0, char(1), char(2), '…', 24)"                     \
              " FROM transcript_fts f JOIN transcript_segments g ON g.id = f.rowid"        \
              " JOIN uploads u ON u.id = g.upload_id"                                      \
              " WHERE transcript_fts MATCH ?1 AND (?2 IS NULL OR u.owner = ?2)"            \
              " ORDER BY bm25(transcript_fts), g.upload_id, g.seg LIMIT ?3 OFFSET ?4")     \
    X(UPLOADS_RAN, "SELECT id FROM uploads WHERE model_ran = 1 ORDER BY upload_date, id")  \
    X(JOB_SEG_PUT, "INSERT INTO job_segments (job_id, seq, window_s, language, data)"       \
                   " SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM jobs"            \
                   " WHERE id = ?1 AND state = 'running' AND worker = ?6)"                  \
                   " ON CONFLICT (job_id, seq) DO UPDATE SET window_s = excluded.window_s," \
                   " language = excluded.language, data = excluded.data")                   \
    X(JOB_SEGS, "SELECT seq, window_s, language, data FROM job_segments"                    \
                " WHERE job_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3")                    \
    X(JOB_SEGS_TRIM, "DELETE FROM job_segments WHERE job_id = ?1 AND seq >= ?2")                 \
    X(JOB_CHECKPOINT, "UPDATE jobs SET resume_s = ?2, resume_segments = ?3"                  \
                      " WHERE id = ?1 AND state = 'running' AND worker = ?4")                \
    X(JOB_SET_CALLBACK, "UPDATE jobs SET callback_url = ?2 WHERE id = ?1")                  \
    X(CALLBACK_CLAIM, "UPDATE jobs SET callback_state = 'pending', callback_next = " SQL_LEASE("?1") \
                      " WHERE id = (SELECT id FROM jobs WHERE callback_url <> ''"           \
                      " AND callback_state IN ('', 'pending') AND callback_next <= " SQL_NOW \
                      " AND state IN ('done', 'failed', 'canceled')"                        \
                      " ORDER BY callback_next, id LIMIT 1)"                                \
                      " RETURNING id, callback_url, callback_tries, finished, state")       \
    X(CALLBACK_DUE, "SELECT EXISTS (SELECT 1 FROM jobs WHERE callback_url <> ''"          \
                    " AND callback_state IN ('', 'pending') AND callback_next <= " SQL_NOW  \
                    " AND state IN ('done', 'failed', 'canceled'))")                        \
    X(CALLBACK_ATTEMPT_ADD, "INSERT OR REPLACE INTO callback_attempts (job_id, n, at, status, error)" \
                            " VALUES (?1, ?2, " SQL_NOW ", ?3, ?4)")                        \
    X(CALLBACK_UPDATE, "UPDATE jobs SET callback_tries = ?2, callback_state = ?3,"          \
                       " callback_next = " SQL_LEASE("?4") " WHERE id = ?1")                \
    X(CALLBACK_ATTEMPTS, "SELECT n, at, status, error FROM callback_attempts"               \
                         " WHERE job_id = ?1 ORDER BY n")

enum {
#define STMT_ENUM(name, sql) S_##name,
    STATEMENTS(STMT_ENUM)
#undef STMT_ENUM
    N_STMT
};

static const char *const stmt_sql[N_STMT] = {
#define STMT_SQL(name, sql) sql,
    STATEMENTS(STMT_SQL)
#undef STMT_SQL
};

/* One connection and its prepared statements (made on first use). */
struct conn {
    sqlite3 *db;
    sqlite3_stmt *stmt[N_STMT];
};

struct sqlite_store {
    struct store base;
    pthread_mutex_t write_lock; /* guards writer */
    struct conn writer;
    pthread_mutex_t pool_lock;  /* guards free_readers, n_free */
    pthread_cond_t pool_cond;   /* signalled when a reader is given back */
    struct conn readers[N_READERS];
    int free_readers[N_READERS];
    int n_free;
};

static struct sqlite_store *from_store(struct store *s) { return (struct sqlite_store *)s; }

/* ---------------------------------------------------------------- helpers */

/* Records op's failure with SQLite's message; returns the HARK_E* code. */
static int db_fail(sqlite3 *db, const char *op, int rc)
{
    store_set_error("%s: %s", op, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    return rc == SQLITE_NOMEM ? HARK_ENOMEM : HARK_EIO;
}

/* The prepared statement id of c, or NULL with the error recorded. */
static sqlite3_stmt *get_stmt(struct conn *c, int id, const char *op, int *rc)
{
    if (!c->stmt[id]) {
        int src = sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                     &c->stmt[id], NULL);
        if (src != SQLITE_OK) {
            *rc = db_fail(c->db, op, src);
            c->stmt[id] = NULL;
            return NULL;
        }
    }
    return c->stmt[id];
}

/* Makes a statement ready for its next use and drops its bindings. */
static void done_stmt(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Binds a string of at most max bytes (a fixed-size field need not be
 * NUL-terminated); NULL binds "". */
static void bind_str(sqlite3_stmt *st, int idx, const char *str, size_t max)
{
    if (!str) str = "";
    sqlite3_bind_text(st, idx, str, (int)strnlen(str, max), SQLITE_STATIC);
}

#define NO_LIMIT ((size_t)1 << 30)
#define BIND_FIELD(st, idx, field) bind_str(st, idx, field, sizeof(field))

static void col_str(char *dst, size_t dstlen, sqlite3_stmt *st, int col)
{
    store_copy(dst, dstlen, (const char *)sqlite3_column_text(st, col));
}

/* Runs a statement that returns no rows, with its bindings in place. */
static int exec_stmt(struct conn *c, sqlite3_stmt *st, const char *op)
{
    int src = sqlite3_step(st);
    int rc = src == SQLITE_DONE ? 0 : db_fail(c->db, op, src);
    done_stmt(st);
    return rc;
}

/* Runs a prepared statement with no parameters and no rows. */
static int exec_id(struct conn *c, int id, const char *op)
{
    int rc = 0;
    sqlite3_stmt *st = get_stmt(c, id, op, &rc);
    if (!st) return rc;
    return exec_stmt(c, st, op);
}

/* Ends an open transaction without keeping anything (a no-op when none is
 * open); the error already recorded stays. */
static void rollback(struct conn *c)
{
    if (sqlite3_get_autocommit(c->db)) return;
    sqlite3_stmt **st = &c->stmt[S_ROLLBACK];
    if (!*st && sqlite3_prepare_v3(c->db, stmt_sql[S_ROLLBACK], -1, SQLITE_PREPARE_PERSISTENT, st,
                                   NULL) != SQLITE_OK) {
        *st = NULL;
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        return;
    }
    sqlite3_step(*st);
    sqlite3_reset(*st);
}

/* Starts a write transaction: takes the writer and the database's write
 * lock. On failure nothing is held. */
static int write_begin(struct sqlite_store *st, const char *op)
{
    pthread_mutex_lock(&st->write_lock);
    int rc = exec_id(&st->writer, S_BEGIN_WRITE, op);
    if (rc < 0) pthread_mutex_unlock(&st->write_lock);
    return rc;
}

/* Ends a write transaction: commits when rc is 0, rolls back otherwise
 * (an outcome such as HARK_ESTALE writes nothing). Returns rc, or the
 * commit's failure. */
static int write_end(struct sqlite_store *st, const char *op, int rc)
{
    if (rc == 0) {
        rc = exec_id(&st->writer, S_COMMIT, op);
        if (rc < 0) rollback(&st->writer);
    } else {
        rollback(&st->writer);
    }
    pthread_mutex_unlock(&st->write_lock);
    return rc;
}

/* Takes a free read connection, waiting for one if all are in use. */
static struct conn *reader_take(struct sqlite_store *st)
{
    pthread_mutex_lock(&st->pool_lock);
    while (st->n_free == 0) pthread_cond_wait(&st->pool_cond, &st->pool_lock);
    struct conn *c = &st->readers[st->free_readers[--st->n_free]];
    pthread_mutex_unlock(&st->pool_lock);
    return c;
}

static void reader_give(struct sqlite_store *st, struct conn *c)
{
    rollback(c);
    pthread_mutex_lock(&st->pool_lock);
    st->free_readers[st->n_free++] = (int)(c - st->readers);
    pthread_cond_signal(&st->pool_cond);
    pthread_mutex_unlock(&st->pool_lock);
}

/* Fills an upload from a row of UPLOAD_COLS; queue_position is left 0. */
static void read_upload(sqlite3_stmt *q, struct store_upload *u)
{
    memset(u, 0, sizeof *u);
    col_str(u->id, sizeof u->id, q, 0);
    col_str(u->filename, sizeof u->filename, q, 1);
    col_str(u->sha256, sizeof u->sha256, q, 2);
    col_str(u->content_type, sizeof u->content_type, q, 3);
    col_str(u->model, sizeof u->model, q, 4);
    col_str(u->upload_date, sizeof u->upload_date, q, 5);
    u->size = sqlite3_column_int64(q, 6);
    u->duration_s = sqlite3_column_double(q, 7);
    u->model_ran = sqlite3_column_int(q, 8) != 0;
    col_str(u->model_date, sizeof u->model_date, q, 9);
    u->time_s = sqlite3_column_double(q, 10);
    col_str(u->language, sizeof u->language, q, 11);
    col_str(u->owner, sizeof u->owner, q, 16);
    if (sqlite3_column_type(q, 12) == SQLITE_NULL) {
        store_copy(u->status, sizeof u->status, "uploaded");
        return;
    }
    u->job_id = sqlite3_column_int64(q, 12);
    col_str(u->status, sizeof u->status, q, 13);
    u->progress = sqlite3_column_double(q, 14);
    if (strcmp(u->status, STORE_FAILED) == 0) col_str(u->error, sizeof u->error, q, 15);
}

static void read_job(sqlite3_stmt *q, struct store_job *j)
{
    memset(j, 0, sizeof *j);
    j->id = sqlite3_column_int64(q, 0);
    col_str(j->upload_id, sizeof j->upload_id, q, 1);
    col_str(j->model, sizeof j->model, q, 2);
    col_str(j->language, sizeof j->language, q, 3);
    col_str(j->task, sizeof j->task, q, 4);
    col_str(j->state, sizeof j->state, q, 5);
    j->progress = sqlite3_column_double(q, 6);
    j->attempts = sqlite3_column_int(q, 7);
    col_str(j->created, sizeof j->created, q, 8);
    col_str(j->started, sizeof j->started, q, 9);
    col_str(j->finished, sizeof j->finished, q, 10);
    col_str(j->worker, sizeof j->worker, q, 11);
    col_str(j->error, sizeof j->error, q, 12);
    col_str(j->lease_until, sizeof j->lease_until, q, 13);
    col_str(j->options, sizeof j->options, q, 14);
    j->resume_s = sqlite3_column_double(q, 15);
    j->resume_segments = sqlite3_column_int(q, 16);
    col_str(j->callback_url, sizeof j->callback_url, q, 17);
    col_str(j->callback_state, sizeof j->callback_state, q, 18);
    j->callback_tries = sqlite3_column_int(q, 19);
}

/* Runs a query that returns at most one upload row, keyed by ?1 and, when
 * owner is not NULL, ?2: 0 and *out, 1 when there is no row, or a negative
 * code. */
static int query_upload(struct conn *c, int id, const char *key, const char *owner, const char *op,
                        struct store_upload *out)
{
    int rc = 0;
    sqlite3_stmt *q = get_stmt(c, id, op, &rc);
    if (!q) return rc;
    bind_str(q, 1, key, NO_LIMIT);
    if (owner) bind_str(q, 2, owner, NO_LIMIT);
    int src = sqlite3_step(q);
    if (src == SQLITE_ROW) {
        if (out) read_upload(q, out);
    } else if (src == SQLITE_DONE) {
        rc = 1;
    } else {
        rc = db_fail(c->db, op, src);
    }
    done_stmt(q);
    return rc;
}

/* The same for a job, with the statement's parameters bound by the caller. */
static int query_job(struct conn *c, sqlite3_stmt *q, const char *op, struct store_job *out)
{
    int rc = 0;
    int src = sqlite3_step(q);
    if (src == SQLITE_ROW) {
        if (out) read_job(q, out);
    } else if (src == SQLITE_DONE) {
        rc = 1;
    } else {
        rc = db_fail(c->db, op, src);
    }
    done_stmt(q);
    return rc;
}

/* Runs a query returning one integer. */
static int query_int(struct conn *c, sqlite3_stmt *q, const char *op, int64_t *value)
{
    int src = sqlite3_step(q);
    int rc = 0;
    if (src == SQLITE_ROW)
        *value = sqlite3_column_int64(q, 0);
    else
        rc = db_fail(c->db, op, src == SQLITE_DONE ? SQLITE_ERROR : src);
    done_stmt(q);
    return rc;
}

struct place {
    int64_t job_id;
    int row;
};

static int place_cmp(const void *a, const void *b)
{
    const struct place *x = a, *y = b;
    return (x->job_id > y->job_id) - (x->job_id < y->job_id);
}

/* Fills queue_position of the queued rows, inside the caller's read
 * transaction: one count for the oldest of them, then one walk over the
 * queued jobs between it and the newest, instead of a count per row. */
static int fill_positions(struct conn *c, struct store_upload *rows, int n, const char *op)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].job_id && strcmp(rows[i].status, STORE_QUEUED) == 0) k++;
    if (k == 0) return 0;
    struct place *pl = malloc((size_t)k * sizeof *pl);
    if (!pl) {
        store_set_error("%s: out of memory", op);
        return HARK_ENOMEM;
    }
    k = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].job_id && strcmp(rows[i].status, STORE_QUEUED) == 0)
            pl[k++] = (struct place){rows[i].job_id, i};
    qsort(pl, (size_t)k, sizeof *pl, place_cmp);

    int rc = 0;
    int64_t first = 0;
    sqlite3_stmt *q = get_stmt(c, S_QUEUE_PLACE, op, &rc);
    if (!q) goto fail;
    sqlite3_bind_int64(q, 1, pl[0].job_id);
    rc = query_int(c, q, op, &first);
    if (rc < 0) goto fail;
    int pos = (int)first, next = 0;
    while (next < k && pl[next].job_id == pl[0].job_id) rows[pl[next++].row].queue_position = pos;
    if (next == k) goto fail;
    q = get_stmt(c, S_QUEUED_RANGE, op, &rc);
    if (!q) goto fail;
    sqlite3_bind_int64(q, 1, pl[0].job_id);
    sqlite3_bind_int64(q, 2, pl[k - 1].job_id);
    int src = SQLITE_DONE;
    while (next < k && (src = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(q, 0);
        pos++;
        while (next < k && pl[next].job_id == id) rows[pl[next++].row].queue_position = pos;
    }
    if (next < k && src != SQLITE_DONE) rc = db_fail(c->db, op, src);
    done_stmt(q);
fail:
    free(pl);
    return rc;
}

/* ---------------------------------------------------------------- open, close */

static void conn_close(struct conn *c)
{
    for (int i = 0; i < N_STMT; i++) sqlite3_finalize(c->stmt[i]);
    memset(c->stmt, 0, sizeof c->stmt);
    sqlite3_close(c->db);
    c->db = NULL;
}

/* Opens one connection with the store's settings. */
static int conn_open(struct conn *c, const char *path, int reader)
{
    int src = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                                SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        store_set_error("store_open '%s': %s", path,
                        c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(src));
        sqlite3_close(c->db);
        c->db = NULL;
        return src == SQLITE_NOMEM ? HARK_ENOMEM : HARK_EIO;
    }
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    const char *pragmas = reader ? "PRAGMA foreign_keys = ON; PRAGMA query_only = ON;"
                                 : "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";
    int rc = 0;
    if (!reader) {
        /* journal_mode reads the file first: this is where a file that is
         * not a database is found. */
        sqlite3_stmt *q = NULL;
        src = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &q, NULL);
        if (src == SQLITE_OK) src = sqlite3_step(q);
        /* The pragma reads the file and then takes the write lock; a read
         * turning into a write does not wait on the busy handler, so while
         * another process turns a new file to WAL it answers SQLITE_BUSY at
         * once, and is retried here for as long as the handler would wait. */
        for (int waited = 0; src == SQLITE_BUSY && waited < BUSY_TIMEOUT_MS; waited += 10) {
            sqlite3_reset(q);
            sqlite3_sleep(10);
            src = sqlite3_step(q);
        }
        if (src != SQLITE_ROW) {
            store_set_error("store_open '%s': %s", path, sqlite3_errmsg(c->db));
            rc = src == SQLITE_NOMEM ? HARK_ENOMEM : HARK_EIO;
        } else if (sqlite3_stricmp((const char *)sqlite3_column_text(q, 0), "wal") != 0) {
            store_set_error("store_open '%s': cannot use WAL mode (journal mode is %s)", path,
                            (const char *)sqlite3_column_text(q, 0));
            rc = HARK_EIO;
        }
        sqlite3_finalize(q);
        if (rc < 0) goto fail;
    }
    src = sqlite3_exec(c->db, pragmas, NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        store_set_error("store_open '%s': %s", path, sqlite3_errmsg(c->db));
        rc = src == SQLITE_NOMEM ? HARK_ENOMEM : HARK_EIO;
        goto fail;
    }
    return 0;
fail:
    conn_close(c);
    return rc;
}

/* Brings the schema up to date: one BEGIN IMMEDIATE transaction per
 * migration, each re-reading the version under the write lock, so two
 * processes opening the same new file apply each migration once. */
static int migrate_steps(struct conn *c, const char *path)
{
    int rc;
    for (;;) {
        rc = exec_id(c, S_BEGIN_WRITE, "store_open (migrate)");
        if (rc < 0) return rc;
        int src = sqlite3_exec(c->db,
                               "CREATE TABLE IF NOT EXISTS schema_version ("
                               " version INTEGER PRIMARY KEY, applied TEXT NOT NULL)",
                               NULL, NULL, NULL);
        if (src != SQLITE_OK) {
            rc = db_fail(c->db, "store_open (schema_version)", src);
            goto fail;
        }
        int64_t version = 0;
        sqlite3_stmt *q = get_stmt(c, S_VERSION, "store_open (schema_version)", &rc);
        if (!q) goto fail;
        rc = query_int(c, q, "store_open (schema_version)", &version);
        if (rc < 0) goto fail;
        if (version > N_MIGRATIONS) {
            store_set_error("store_open '%s': the database has schema version %lld, newer than "
                            "this hark's %d; use a newer hark or another database",
                            path, (long long)version, N_MIGRATIONS);
            rc = HARK_ENOTSUP;
            goto fail;
        }
        if (version == N_MIGRATIONS) return exec_id(c, S_COMMIT, "store_open (migrate)");
        src = sqlite3_exec(c->db, migrations[version], NULL, NULL, NULL);
        if (src != SQLITE_OK) {
            store_set_error("store_open '%s': migration to schema version %lld: %s", path,
                            (long long)version + 1, sqlite3_errmsg(c->db));
            rc = src == SQLITE_NOMEM ? HARK_ENOMEM : HARK_EIO;
            goto fail;
        }
        q = get_stmt(c, S_VERSION_ADD, "store_open (schema_version)", &rc);
        if (!q) goto fail;
        char now[32];
        store_now(now);
        sqlite3_bind_int64(q, 1, version + 1);
        bind_str(q, 2, now, sizeof now);
        rc = exec_stmt(c, q, "store_open (schema_version)");
        if (rc < 0) goto fail;
        rc = exec_id(c, S_COMMIT, "store_open (migrate)");
        if (rc < 0) goto fail;
    }
fail:
    rollback(c);
    return rc;
}

/* migrate_steps with foreign keys off, as SQLite's way of rebuilding a
 * table (migration 4) needs: the pragma has no effect inside a
 * transaction, so it is set around them all. */
static int migrate(struct conn *c, const char *path)
{
    int src = sqlite3_exec(c->db, "PRAGMA foreign_keys = OFF", NULL, NULL, NULL);
    if (src != SQLITE_OK) return db_fail(c->db, "store_open (migrate)", src);
    int rc = migrate_steps(c, path);
    src = sqlite3_exec(c->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    if (src != SQLITE_OK && rc == 0) rc = db_fail(c->db, "store_open (migrate)", src);
    return rc;
}

static void sqlite_close(struct store *s)
{
    struct sqlite_store *st = from_store(s);
    /* The writer closes last: closing the last connection checkpoints the
     * WAL into the database file. */
    for (int i = 0; i < N_READERS; i++) conn_close(&st->readers[i]);
    conn_close(&st->writer);
    pthread_cond_destroy(&st->pool_cond);
    pthread_mutex_destroy(&st->pool_lock);
    pthread_mutex_destroy(&st->write_lock);
    free(st);
}

/* Failures are left in the thread's last error; store_open copies it
 * into its caller's err. */
static int sqlite_open(const char *path, struct store **out)
{
    if (!path[0] || strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0) {
        store_set_error("store_open '%s': the SQLite store needs a file path", path);
        return HARK_EINVAL;
    }
    struct sqlite_store *st = calloc(1, sizeof *st);
    if (!st) {
        store_set_error("store_open '%s': out of memory", path);
        return HARK_ENOMEM;
    }
    st->base.ops = &store_sqlite_backend;
    pthread_mutex_init(&st->write_lock, NULL);
    pthread_mutex_init(&st->pool_lock, NULL);
    pthread_cond_init(&st->pool_cond, NULL);
    int rc = conn_open(&st->writer, path, 0);
    if (rc < 0) goto fail;
    rc = migrate(&st->writer, path);
    if (rc < 0) goto fail;
    for (int i = 0; i < N_READERS; i++) {
        rc = conn_open(&st->readers[i], path, 1);
        if (rc < 0) goto fail;
        st->free_readers[st->n_free++] = i;
    }
    *out = &st->base;
    return 0;
fail:
    sqlite_close(&st->base);
    return rc;
}

/* ---------------------------------------------------------------- uploads */

static int sqlite_upload_insert(struct store *s, const struct store_upload *u,
                                struct store_upload *existing)
{
    static const char op[] = "store_upload_insert";
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    char sha[sizeof u->sha256];
    store_copy(sha, sizeof sha, u->sha256);
    char owner[sizeof u->owner];
    store_copy(owner, sizeof owner, u->owner);
    rc = query_upload(c, S_UPLOAD_BY_SHA, sha, owner, op, existing);
    if (rc == 0) {
        if (existing) rc = fill_positions(c, existing, 1, op);
        rc = rc < 0 ? rc : HARK_EEXIST;
        goto done;
    }
    if (rc < 0) goto done;
    sqlite3_stmt *q = get_stmt(c, S_UPLOAD_INSERT, op, &rc);
    if (!q) goto done;
    BIND_FIELD(q, 1, u->id);
    BIND_FIELD(q, 2, u->filename);
    BIND_FIELD(q, 3, u->sha256);
    BIND_FIELD(q, 4, u->content_type);
    BIND_FIELD(q, 5, u->model);
    BIND_FIELD(q, 6, u->upload_date);
    sqlite3_bind_int64(q, 7, u->size);
    sqlite3_bind_double(q, 8, u->duration_s);
    BIND_FIELD(q, 9, u->owner);
    int src = sqlite3_step(q);
    if (src == SQLITE_DONE) {
        rc = 0;
    } else if ((src & 0xff) == SQLITE_CONSTRAINT) {
        store_set_error("%s: upload '%.40s': %s", op, u->id, sqlite3_errmsg(c->db));
        rc = HARK_EINVAL;
    } else {
        rc = db_fail(c->db, op, src);
    }
    done_stmt(q);
done:
    return write_end(st, op, rc);
}

static int sqlite_upload_get(struct store *s, const char *id, struct store_upload *out)
{
    static const char op[] = "store_upload_get";
    struct sqlite_store *st = from_store(s);
    struct conn *c = reader_take(st);
    int rc = exec_id(c, S_BEGIN_READ, op);
    if (rc < 0) goto done;
    rc = query_upload(c, S_UPLOAD_GET, id, NULL, op, out);
    if (rc == 1) {
        store_set_error("%s: no upload '%.64s'", op, id);
        rc = HARK_ENOENT;
    }
    if (rc == 0) rc = fill_positions(c, out, 1, op);
done:
    reader_give(st, c);
    return rc;
}

static int sqlite_upload_list(struct store *s, const char *owner, int limit, int64_t offset,
                              struct store_upload **rows, int *n, int64_t *total)
{
    static const char op[] = "store_upload_list";
    struct sqlite_store *st = from_store(s);
    struct store_upload *out = NULL;
    int count = 0;
    int64_t all = 0;
    struct conn *c = reader_take(st);
    int rc = exec_id(c, S_BEGIN_READ, op);
    if (rc < 0) goto fail;
    sqlite3_stmt *q = get_stmt(c, owner ? S_UPLOAD_COUNT_OWNER : S_UPLOAD_COUNT, op, &rc);
    if (!q) goto fail;
    if (owner) bind_str(q, 1, owner, NO_LIMIT);
    rc = query_int(c, q, op, &all);
    if (rc < 0) goto fail;
    /* Room for what the page can hold, not for limit rows. */
    int64_t room = all - offset < limit ? all - offset : limit;
    if (room > 0) {
        out = malloc((size_t)room * sizeof *out);
        if (!out) {
            store_set_error("%s: out of memory for %lld rows", op, (long long)room);
            rc = HARK_ENOMEM;
            goto fail;
        }
        q = get_stmt(c, owner ? S_UPLOAD_LIST_OWNER : S_UPLOAD_LIST, op, &rc);
        if (!q) goto fail;
        sqlite3_bind_int64(q, 1, room);
        sqlite3_bind_int64(q, 2, offset);
        if (owner) bind_str(q, 3, owner, NO_LIMIT);
        int src = SQLITE_DONE;
        while (count < room && (src = sqlite3_step(q)) == SQLITE_ROW) read_upload(q, &out[count++]);
        if (count < room && src != SQLITE_DONE) rc = db_fail(c->db, op, src);
        done_stmt(q);
        if (rc < 0) goto fail;
        rc = fill_positions(c, out, count, op);
        if (rc < 0) goto fail;
    }
    reader_give(st, c);
    *rows = out;
    *n = count;
    if (total) *total = all;
    return 0;
fail:
    reader_give(st, c);
    free(out);
    return rc;
}

static int sqlite_upload_delete(struct store *s, const char *id)
{
    static const char op[] = "store_upload_delete";
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    sqlite3_stmt *q = get_stmt(c, S_UPLOAD_DELETE, op, &rc);
    if (!q) goto done;
    bind_str(q, 1, id, NO_LIMIT);
    rc = exec_stmt(c, q, op);
    if (rc == 0 && sqlite3_changes(c->db) == 0) {
        store_set_error("%s: no upload '%.64s'", op, id);
        rc = HARK_ENOENT;
    }
done:
    return write_end(st, op, rc);
}

/* ---------------------------------------------------------------- jobs */

/* 0 when the upload exists, HARK_ENOENT (recorded) when not, or a fault. */
static int upload_exists(struct conn *c, const char *upload_id, const char *op)
{
    int rc = 0;
    sqlite3_stmt *q = get_stmt(c, S_UPLOAD_EXISTS, op, &rc);
    if (!q) return rc;
    bind_str(q, 1, upload_id, NO_LIMIT);
    int src = sqlite3_step(q);
    done_stmt(q);
    if (src == SQLITE_ROW) return 0;
    if (src != SQLITE_DONE) return db_fail(c->db, op, src);
    store_set_error("%s: no upload '%.64s'", op, upload_id);
    return HARK_ENOENT;
}

static int sqlite_job_enqueue(struct store *s, const char *upload_id, const char *model,
                              const char *language, const char *task, const char *options,
                              struct store_job *out, int *position)
{
    static const char op[] = "store_job_enqueue";
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    sqlite3_stmt *q;
    if ((rc = upload_exists(c, upload_id, op)) != 0) goto done;
    q = get_stmt(c, S_JOB_ACTIVE, op, &rc);
    if (!q) goto done;
    bind_str(q, 1, upload_id, NO_LIMIT);
    rc = query_job(c, q, op, out);
    if (rc == 0) {
        store_set_error("%s: upload '%.64s' has an active job", op, upload_id);
        rc = HARK_EBUSY;
        goto done;
    }
    if (rc < 0) goto done;

    char now[32];
    store_now(now);
    q = get_stmt(c, S_JOB_INSERT, op, &rc);
    if (!q) goto done;
    bind_str(q, 1, upload_id, NO_LIMIT);
    bind_str(q, 2, model, NO_LIMIT);
    bind_str(q, 3, language, NO_LIMIT);
    bind_str(q, 4, task, NO_LIMIT);
    bind_str(q, 5, now, sizeof now);
    bind_str(q, 6, options ? options : "", NO_LIMIT);
    rc = exec_stmt(c, q, op);
    if (rc < 0) goto done;
    int64_t id = sqlite3_last_insert_rowid(c->db);
    if (out) {
        q = get_stmt(c, S_JOB_GET, op, &rc);
        if (!q) goto done;
        sqlite3_bind_int64(q, 1, id);
        rc = query_job(c, q, op, out);
        if (rc != 0) {
            if (rc > 0) rc = db_fail(c->db, op, SQLITE_ERROR);
            goto done;
        }
    }
    if (position) {
        int64_t place = 0;
        q = get_stmt(c, S_QUEUE_PLACE, op, &rc);
        if (!q) goto done;
        sqlite3_bind_int64(q, 1, id);
        rc = query_int(c, q, op, &place);
        if (rc < 0) goto done;
        *position = (int)place;
    }
done:
    return write_end(st, op, rc);
}

static int sqlite_job_get(struct store *s, int64_t id, struct store_job *out)
{
    static const char op[] = "store_job_get";
    struct sqlite_store *st = from_store(s);
    struct conn *c = reader_take(st);
    int rc = 0;
    sqlite3_stmt *q = get_stmt(c, S_JOB_GET, op, &rc);
    if (q) {
        sqlite3_bind_int64(q, 1, id);
        rc = query_job(c, q, op, out);
        if (rc == 1) {
            store_set_error("%s: no job %lld", op, (long long)id);
            rc = HARK_ENOENT;
        }
    }
    reader_give(st, c);
    return rc;
}

static int sqlite_job_active(struct store *s, const char *upload_id, struct store_job *out)
{
    static const char op[] = "store_job_active";
    struct sqlite_store *st = from_store(s);
    struct conn *c = reader_take(st);
    int rc = 0;
    sqlite3_stmt *q = get_stmt(c, S_JOB_ACTIVE, op, &rc);
    if (q) {
        bind_str(q, 1, upload_id, NO_LIMIT);
        rc = query_job(c, q, op, out);
        if (rc == 1) {
            store_set_error("%s: upload '%.64s' has no active job", op, upload_id);
            rc = HARK_ENOENT;
        }
    }
    reader_give(st, c);
    return rc;
}

static int sqlite_job_claim(struct store *s, const char *worker, struct store_job *out)
{
    static const char op[] = "store_job_claim";
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    sqlite3_stmt *q = get_stmt(c, S_JOB_CLAIM, op, &rc);
    if (!q) goto done;
    char now[32];
    store_now(now);
    bind_str(q, 1, now, sizeof now);
    bind_str(q, 2, worker, NO_LIMIT);
    sqlite3_bind_int64(q, 3, s->lease_ms);
    int src = sqlite3_step(q);
    if (src == SQLITE_ROW) {
        if (out) read_job(q, out);
        src = sqlite3_step(q);
    } else if (src == SQLITE_DONE) {
        rc = HARK_EAGAIN;
    }
    if (src != SQLITE_DONE) rc = db_fail(c->db, op, src);
    done_stmt(q);
done:
    return write_end(st, op, rc);
}

/* Runs one UPDATE on a job that must still be running, with its
 * parameters bound by the caller: HARK_ESTALE when it touched no row. */
static int update_running(struct conn *c, sqlite3_stmt *q, const char *op, int64_t id)
{
    int rc = exec_stmt(c, q, op);
    if (rc == 0 && sqlite3_changes(c->db) == 0) {
        store_set_error("%s: job %lld is not running, or not for this worker", op, (long long)id);
        rc = HARK_ESTALE;
    }
    return rc;
}

static int sqlite_job_heartbeat(struct store *s, int64_t id, const char *worker)
{
    static const char op[] = "store_job_heartbeat";
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    sqlite3_stmt *q = get_stmt(c, S_JOB_HEARTBEAT, op, &rc);
    if (q) {
        sqlite3_bind_int64(q, 1, id);
        bind_str(q, 2, worker, NO_LIMIT);
        sqlite3_bind_int64(q, 3, s->lease_ms);
        rc = update_running(c, q, op, id);
    }
    return write_end(st, op, rc);
}

static int sqlite_job_release(struct store *s, int64_t id, const char *worker)
{
    static const char op[] = "store_job_release";
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    sqlite3_stmt *q = get_stmt(c, S_JOB_RELEASE, op, &rc);
    if (q) {
        sqlite3_bind_int64(q, 1, id);
        bind_str(q, 2, worker, NO_LIMIT);
        rc = update_running(c, q, op, id);
    }
    return write_end(st, op, rc);
}

static int sqlite_job_progress(struct store *s, int64_t id, const char *worker, double progress)
{
    static const char op[] = "store_job_progress";
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    sqlite3_stmt *q = get_stmt(c, S_JOB_PROGRESS, op, &rc);
    if (q) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_double(q, 2, progress);
        bind_str(q, 3, worker, NO_LIMIT);
        rc = update_running(c, q, op, id);
    }
    return write_end(st, op, rc);
}

/* Replaces an upload's indexed segments. */
static int put_segments(struct conn *c, const char *upload_id, const struct store_segment *segs, int n,
                        const char *op)
{
    int rc = 0;
    sqlite3_stmt *q = get_stmt(c, S_SEGS_DELETE, op, &rc);
    if (!q) return rc;
    bind_str(q, 1, upload_id, NO_LIMIT);
    rc = exec_stmt(c, q, op);
    for (int i = 0; rc == 0 && i < n; i++) {
        q = get_stmt(c, S_SEG_INSERT, op, &rc);
        if (!q) break;
        bind_str(q, 1, upload_id, NO_LIMIT);
        sqlite3_bind_int(q, 2, segs[i].index);
        sqlite3_bind_double(q, 3, segs[i].start_s);
        sqlite3_bind_double(q, 4, segs[i].end_s);
        bind_str(q, 5, segs[i].text, NO_LIMIT);
        rc = exec_stmt(c, q, op);
    }
    return rc;
}

static int sqlite_job_finish(struct store *s, int64_t id, const char *worker, const char *model,
                             const char *language, double time_s, const struct store_segment *segs, int n_segs)
{
    static const char op[] = "store_job_finish";
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    char now[32];
    store_now(now);
    sqlite3_stmt *q = get_stmt(c, S_JOB_DONE, op, &rc);
    if (!q) goto done;
    sqlite3_bind_int64(q, 1, id);
    bind_str(q, 2, now, sizeof now);
    bind_str(q, 3, worker, NO_LIMIT);
    rc = update_running(c, q, op, id);
    if (rc != 0) goto done;
    q = get_stmt(c, S_UPLOAD_RAN, op, &rc);
    if (!q) goto done;
    sqlite3_bind_int64(q, 1, id);
    bind_str(q, 2, now, sizeof now);
    bind_str(q, 3, model, NO_LIMIT);
    sqlite3_bind_double(q, 4, time_s);
    bind_str(q, 5, language, NO_LIMIT);
    rc = exec_stmt(c, q, op);
    if (rc != 0) goto done;
    /* The job's upload, whose transcript the segments are. */
    struct store_job job;
    q = get_stmt(c, S_JOB_GET, op, &rc);
    if (!q) goto done;
    sqlite3_bind_int64(q, 1, id);
    rc = query_job(c, q, op, &job);
    if (rc == 1) rc = HARK_ESTALE;
    if (rc == 0) rc = put_segments(c, job.upload_id, segs, n_segs, op);
done:
    return write_end(st, op, rc);
}

static int sqlite_job_fail(struct store *s, int64_t id, const char *worker, const char *error)
{
    static const char op[] = "store_job_fail";
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    char now[32];
    store_now(now);
    sqlite3_stmt *q = get_stmt(c, S_JOB_FAILED, op, &rc);
    if (q) {
        sqlite3_bind_int64(q, 1, id);
        bind_str(q, 2, error, NO_LIMIT);
        bind_str(q, 3, now, sizeof now);
        bind_str(q, 4, worker, NO_LIMIT);
        rc = update_running(c, q, op, id);
    }
    return write_end(st, op, rc);
}

static int sqlite_job_cancel(struct store *s, int64_t id)
{
    static const char op[] = "store_job_cancel";
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    char now[32];
    store_now(now);
    sqlite3_stmt *q = get_stmt(c, S_JOB_CANCEL, op, &rc);
    if (!q) goto done;
    sqlite3_bind_int64(q, 1, id);
    bind_str(q, 2, now, sizeof now);
    rc = exec_stmt(c, q, op);
    if (rc < 0 || sqlite3_changes(c->db) > 0) goto done;
    q = get_stmt(c, S_JOB_EXISTS, op, &rc);
    if (!q) goto done;
    sqlite3_bind_int64(q, 1, id);
    int src = sqlite3_step(q);
    done_stmt(q);
    if (src == SQLITE_ROW) {
        store_set_error("%s: job %lld has already ended", op, (long long)id);
        rc = HARK_ESTALE;
    } else if (src == SQLITE_DONE) {
        store_set_error("%s: no job %lld", op, (long long)id);
        rc = HARK_ENOENT;
    } else {
        rc = db_fail(c->db, op, src);
    }
done:
    return write_end(st, op, rc);
}

/* Runs one of the requeue statements in a write transaction; *n (when not
 * NULL) gets how many jobs went back. */
static int requeue(struct store *s, int stmt, const char *op, int *n)
{
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    rc = exec_id(c, stmt, op);
    if (rc == 0 && n) *n = sqlite3_changes(c->db);
    return write_end(st, op, rc);
}

static int sqlite_requeue_running(struct store *s, int *n)
{
    return requeue(s, S_REQUEUE, "store_requeue_running", n);
}

static int sqlite_requeue_expired(struct store *s, int *n)
{
    return requeue(s, S_REQUEUE_EXPIRED, "store_requeue_expired", n);
}

/* Steps the bound statement q to its end, each row read by read into
 * one more element (size bytes) of a malloc'ed array: 0 with the array in
 * *rows (NULL when there is none) and its length in *n, or a negative
 * code with nothing kept. Resets q. */
static int collect_rows(struct conn *c, sqlite3_stmt *q, size_t size, void (*read)(sqlite3_stmt *, void *),
                        void **rows, int *n, const char *op)
{
    char *out = NULL;
    int count = 0, cap = 0, rc = 0, src;
    while ((src = sqlite3_step(q)) == SQLITE_ROW) {
        if (count == cap) {
            int grown = cap ? cap * 2 : 16;
            char *more = realloc(out, (size_t)grown * size);
            if (!more) {
                store_set_error("%s: out of memory", op);
                rc = HARK_ENOMEM;
                break;
            }
            out = more;
            cap = grown;
        }
        read(q, out + (size_t)count++ * size);
    }
    if (rc == 0 && src != SQLITE_DONE) rc = db_fail(c->db, op, src);
    done_stmt(q);
    if (rc < 0) {
        free(out);
        return rc;
    }
    *rows = out;
    *n = count;
    return 0;
}

static void read_id(sqlite3_stmt *q, void *id) { *(int64_t *)id = sqlite3_column_int64(q, 0); }

static int sqlite_jobs_in_state(struct store *s, const char *state, int64_t **ids, int *n)
{
    static const char op[] = "store_jobs_in_state";
    struct sqlite_store *st = from_store(s);
    struct conn *c = reader_take(st);
    int rc = 0;
    sqlite3_stmt *q = get_stmt(c, S_JOBS_IN_STATE, op, &rc);
    if (q) {
        bind_str(q, 1, state, NO_LIMIT);
        void *rows = NULL;
        rc = collect_rows(c, q, sizeof **ids, read_id, &rows, n, op);
        if (rc == 0) *ids = rows;
    }
    reader_give(st, c);
    return rc;
}

static int sqlite_stats(struct store *s, struct store_stats *out)
{
    static const char op[] = "store_stats";
    struct sqlite_store *st = from_store(s);
    struct conn *c = reader_take(st);
    int rc = exec_id(c, S_BEGIN_READ, op);
    if (rc < 0) goto done;
    sqlite3_stmt *q = get_stmt(c, S_UPLOAD_COUNT, op, &rc);
    if (!q) goto done;
    rc = query_int(c, q, op, &out->uploads);
    if (rc < 0) goto done;
    q = get_stmt(c, S_STATS_JOBS, op, &rc);
    if (!q) goto done;
    int src;
    while ((src = sqlite3_step(q)) == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(q, 0);
        int64_t k = sqlite3_column_int64(q, 1);
        if (!state) continue;
        if (strcmp(state, STORE_QUEUED) == 0) out->queued = k;
        else if (strcmp(state, STORE_RUNNING) == 0) out->running = k;
        else if (strcmp(state, STORE_DONE) == 0) out->done = k;
        else if (strcmp(state, STORE_FAILED) == 0) out->failed = k;
        else if (strcmp(state, STORE_CANCELED) == 0) out->canceled = k;
    }
    if (src != SQLITE_DONE) rc = db_fail(c->db, op, src);
    done_stmt(q);
done:
    reader_give(st, c);
    return rc;
}

/* ---------------------------------------------------------------- keys */

static void read_key(sqlite3_stmt *q, void *row)
{
    struct store_key *k = row;
    memset(k, 0, sizeof *k);
    col_str(k->name, sizeof k->name, q, 0);
    col_str(k->created, sizeof k->created, q, 1);
    k->admin = sqlite3_column_int(q, 2) != 0;
    col_str(k->revoked, sizeof k->revoked, q, 3);
}

static int sqlite_key_add(struct store *s, const char *name, const char *hash, int admin)
{
    static const char op[] = "store_key_add";
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    sqlite3_stmt *q = get_stmt(c, S_KEY_ADD, op, &rc);
    if (!q) goto done;
    char now[32];
    store_now(now);
    bind_str(q, 1, name, NO_LIMIT);
    bind_str(q, 2, hash, NO_LIMIT);
    sqlite3_bind_int(q, 3, admin);
    bind_str(q, 4, now, sizeof now);
    int src = sqlite3_step(q);
    if (src == SQLITE_DONE) {
        rc = 0;
    } else if ((src & 0xff) == SQLITE_CONSTRAINT) {
        store_set_error("%s: a key named '%.64s' exists (or existed)", op, name);
        rc = HARK_EEXIST;
    } else {
        rc = db_fail(c->db, op, src);
    }
    done_stmt(q);
done:
    return write_end(st, op, rc);
}

static int sqlite_key_list(struct store *s, struct store_key **rows, int *n)
{
    static const char op[] = "store_key_list";
    struct sqlite_store *st = from_store(s);
    struct conn *c = reader_take(st);
    int rc = 0;
    sqlite3_stmt *q = get_stmt(c, S_KEY_LIST, op, &rc);
    if (q) {
        void *out = NULL;
        rc = collect_rows(c, q, sizeof **rows, read_key, &out, n, op);
        if (rc == 0) *rows = out;
    }
    reader_give(st, c);
    return rc;
}

static int sqlite_key_revoke(struct store *s, const char *name)
{
    static const char op[] = "store_key_revoke";
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    sqlite3_stmt *q = get_stmt(c, S_KEY_REVOKE, op, &rc);
    if (!q) goto done;
    char now[32];
    store_now(now);
    bind_str(q, 1, name, NO_LIMIT);
    bind_str(q, 2, now, sizeof now);
    rc = exec_stmt(c, q, op);
    if (rc < 0 || sqlite3_changes(c->db) > 0) goto done;
    q = get_stmt(c, S_KEY_EXISTS, op, &rc);
    if (!q) goto done;
    bind_str(q, 1, name, NO_LIMIT);
    int src = sqlite3_step(q);
    if (src == SQLITE_DONE) {
        store_set_error("%s: no key named '%.64s'", op, name);
        rc = HARK_ENOENT;
    } else if (src != SQLITE_ROW) {
        rc = db_fail(c->db, op, src);
    }
    done_stmt(q);
done:
    return write_end(st, op, rc);
}

static int sqlite_key_find(struct store *s, const char *hash, struct store_key *out)
{
    static const char op[] = "store_key_find";
    struct sqlite_store *st = from_store(s);
    struct conn *c = reader_take(st);
    int rc = 0;
    sqlite3_stmt *q = get_stmt(c, S_KEY_FIND, op, &rc);
    if (!q) goto done;
    bind_str(q, 1, hash, NO_LIMIT);
    int src = sqlite3_step(q);
    if (src == SQLITE_ROW) {
        read_key(q, out);
    } else if (src == SQLITE_DONE) {
        store_set_error("%s: no valid key with that hash", op);
        rc = HARK_ENOENT;
    } else {
        rc = db_fail(c->db, op, src);
    }
    done_stmt(q);
done:
    reader_give(st, c);
    return rc;
}

static int sqlite_key_count(struct store *s, int64_t *n)
{
    static const char op[] = "store_key_count";
    struct sqlite_store *st = from_store(s);
    struct conn *c = reader_take(st);
    int rc = 0;
    sqlite3_stmt *q = get_stmt(c, S_KEY_COUNT, op, &rc);
    if (q) rc = query_int(c, q, op, n);
    reader_give(st, c);
    return rc;
}

/* ---------------------------------------------------------------- search */

static int sqlite_index_set(struct store *s, const char *upload_id, const struct store_segment *segs, int n_segs)
{
    static const char op[] = "store_index_set";
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    rc = upload_exists(c, upload_id, op);
    if (rc == 0) rc = put_segments(c, upload_id, segs, n_segs, op);
    return write_end(st, op, rc);
}

/* A column's text, malloc'ed ("" for NULL); NULL when out of memory. */
static char *col_dup(sqlite3_stmt *q, int col)
{
    const char *t = (const char *)sqlite3_column_text(q, col);
    return strdup(t ? t : "");
}

static int sqlite_search(struct store *s, const char *fts, const char *tsq, const char *owner, int limit,
                         int64_t offset, struct store_hit **hits, int *n, int64_t *total)
{
    static const char op[] = "store_search";
    struct sqlite_store *st = from_store(s);
    struct store_hit *out = NULL;
    int count = 0;
    int64_t all = 0;
    (void)tsq;
    struct conn *c = reader_take(st);
    int rc = exec_id(c, S_BEGIN_READ, op);
    if (rc < 0) goto fail;
    sqlite3_stmt *q = get_stmt(c, S_SEARCH_COUNT, op, &rc);
    if (!q) goto fail;
    bind_str(q, 1, fts, NO_LIMIT);
    if (owner) bind_str(q, 2, owner, NO_LIMIT);
    rc = query_int(c, q, op, &all);
    if (rc < 0) goto fail;
    int64_t room = all - offset < limit ? all - offset : limit;
    if (room > 0) {
        out = calloc((size_t)room, sizeof *out);
        if (!out) {
            store_set_error("%s: out of memory for %lld hits", op, (long long)room);
            rc = HARK_ENOMEM;
            goto fail;
        }
        q = get_stmt(c, S_SEARCH, op, &rc);
        if (!q) goto fail;
        bind_str(q, 1, fts, NO_LIMIT);
        if (owner) bind_str(q, 2, owner, NO_LIMIT);
        sqlite3_bind_int64(q, 3, room);
        sqlite3_bind_int64(q, 4, offset);
        int src = SQLITE_DONE;
        while (count < room && (src = sqlite3_step(q)) == SQLITE_ROW) {
            struct store_hit *h = &out[count++];
            col_str(h->upload_id, sizeof h->upload_id, q, 0);
            col_str(h->filename, sizeof h->filename, q, 1);
            h->segment = sqlite3_column_int(q, 2);
            h->start_s = sqlite3_column_double(q, 3);
            h->end_s = sqlite3_column_double(q, 4);
            h->score = sqlite3_column_double(q, 5);
            h->text = col_dup(q, 6);
            h->snippet = col_dup(q, 7);
            if (!h->text || !h->snippet) {
                store_set_error("%s: out of memory", op);
                rc = HARK_ENOMEM;
                break;
            }
        }
        if (rc == 0 && count < room && src != SQLITE_DONE) rc = db_fail(c->db, op, src);
        done_stmt(q);
        if (rc < 0) goto fail;
    }
    reader_give(st, c);
    *hits = out;
    *n = count;
    if (total) *total = all;
    return 0;
fail:
    reader_give(st, c);
    store_hits_free(out, count);
    return rc;
}

static void read_text_id(sqlite3_stmt *q, void *id) { *(char **)id = col_dup(q, 0); }

static int sqlite_uploads_ran(struct store *s, char ***ids, int *n)
{
    static const char op[] = "store_uploads_ran";
    struct sqlite_store *st = from_store(s);
    struct conn *c = reader_take(st);
    int rc = 0;
    sqlite3_stmt *q = get_stmt(c, S_UPLOADS_RAN, op, &rc);
    if (q) {
        void *rows = NULL;
        rc = collect_rows(c, q, sizeof **ids, read_text_id, &rows, n, op);
        char **got = rows;
        for (int i = 0; rc == 0 && i < *n; i++)
            if (!got[i]) rc = HARK_ENOMEM;
        if (rc == HARK_ENOMEM) {
            store_set_error("%s: out of memory", op);
            for (int i = 0; i < *n; i++) free(got[i]);
            free(got);
            *n = 0;
        } else if (rc == 0) {
            *ids = got;
        }
    }
    reader_give(st, c);
    return rc;
}

static int sqlite_job_segment_put(struct store *s, int64_t id, const char *worker,
                                  const struct store_job_segment *seg)
{
    static const char op[] = "store_job_segment_put";
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    sqlite3_stmt *q = get_stmt(c, S_JOB_SEG_PUT, op, &rc);
    if (q) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int(q, 2, seg->seq);
        sqlite3_bind_double(q, 3, seg->window_s);
        BIND_FIELD(q, 4, seg->language);
        bind_str(q, 5, seg->data, NO_LIMIT);
        bind_str(q, 6, worker, NO_LIMIT);
        rc = update_running(c, q, op, id);
    }
    return write_end(st, op, rc);
}

/* A row of JOB_SEGS; data NULL when out of memory. */
static void read_job_segment(sqlite3_stmt *q, void *out)
{
    struct store_job_segment *g = out;
    g->seq = sqlite3_column_int(q, 0);
    g->window_s = sqlite3_column_double(q, 1);
    col_str(g->language, sizeof g->language, q, 2);
    const char *data = (const char *)sqlite3_column_text(q, 3);
    g->data = strdup(data ? data : "");
}

static int sqlite_job_segments(struct store *s, int64_t id, int after, int limit, struct store_job_segment **rows,
                               int *n)
{
    static const char op[] = "store_job_segments";
    struct sqlite_store *st = from_store(s);
    struct conn *c = reader_take(st);
    int rc = 0;
    sqlite3_stmt *q = get_stmt(c, S_JOB_SEGS, op, &rc);
    if (q) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int(q, 2, after);
        sqlite3_bind_int(q, 3, limit);
        void *got = NULL;
        rc = collect_rows(c, q, sizeof **rows, read_job_segment, &got, n, op);
        struct store_job_segment *g = got;
        for (int i = 0; rc == 0 && i < *n; i++)
            if (!g[i].data) rc = HARK_ENOMEM;
        if (rc == HARK_ENOMEM) {
            store_set_error("%s: out of memory", op);
            store_job_segments_free(g, *n);
            *n = 0;
        } else if (rc == 0) {
            *rows = g;
        }
    }
    reader_give(st, c);
    return rc;
}

static int sqlite_job_checkpoint(struct store *s, int64_t id, const char *worker, double resume_s, int n_segments)
{
    static const char op[] = "store_job_checkpoint";
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    sqlite3_stmt *q = get_stmt(c, S_JOB_CHECKPOINT, op, &rc);
    if (q) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_double(q, 2, resume_s);
        sqlite3_bind_int(q, 3, n_segments);
        bind_str(q, 4, worker, NO_LIMIT);
        rc = update_running(c, q, op, id);
    }
    return write_end(st, op, rc);
}

static int sqlite_job_segments_trim(struct store *s, int64_t id, int from)
{
    static const char op[] = "store_job_segments_trim";
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    sqlite3_stmt *q = get_stmt(c, S_JOB_SEGS_TRIM, op, &rc);
    if (q) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int(q, 2, from);
        rc = exec_stmt(c, q, op);
    }
    return write_end(st, op, rc);
}

static int sqlite_job_set_callback(struct store *s, int64_t id, const char *url)
{
    static const char op[] = "store_job_set_callback";
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    sqlite3_stmt *q = get_stmt(c, S_JOB_SET_CALLBACK, op, &rc);
    if (q) {
        sqlite3_bind_int64(q, 1, id);
        bind_str(q, 2, url, NO_LIMIT);
        rc = exec_stmt(c, q, op);
        if (rc == 0 && sqlite3_changes(c->db) == 0) {
            store_set_error("%s: no job %lld", op, (long long)id);
            rc = HARK_ENOENT;
        }
    }
    return write_end(st, op, rc);
}

static int sqlite_callback_claim(struct store *s, int hold_ms, struct store_callback *out)
{
    static const char op[] = "store_callback_claim";
    struct sqlite_store *st = from_store(s);
    /* Looked for without the write lock first: mostly none is due. */
    struct conn *r = reader_take(st);
    int rc = 0;
    int64_t due = 0;
    sqlite3_stmt *q = get_stmt(r, S_CALLBACK_DUE, op, &rc);
    if (q) {
        rc = query_int(r, q, op, &due);
    }
    reader_give(st, r);
    if (rc < 0) return rc;
    if (!due) return HARK_EAGAIN;
    rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    q = get_stmt(c, S_CALLBACK_CLAIM, op, &rc);
    if (q) {
        sqlite3_bind_int(q, 1, hold_ms);
        int src = sqlite3_step(q);
        if (src == SQLITE_ROW) {
            memset(out, 0, sizeof *out);
            out->job_id = sqlite3_column_int64(q, 0);
            col_str(out->url, sizeof out->url, q, 1);
            out->tries = sqlite3_column_int(q, 2);
            col_str(out->finished, sizeof out->finished, q, 3);
            col_str(out->state, sizeof out->state, q, 4);
            src = sqlite3_step(q);
        } else if (src == SQLITE_DONE) {
            rc = HARK_EAGAIN;
        }
        if (src != SQLITE_DONE && src != SQLITE_ROW) rc = db_fail(c->db, op, src);
        done_stmt(q);
    }
    if (rc == HARK_EAGAIN) return write_end(st, op, 0) < 0 ? HARK_EIO : HARK_EAGAIN;
    return write_end(st, op, rc);
}

static int sqlite_callback_record(struct store *s, int64_t id, int n, int status, const char *error,
                                  const char *state, int retry_ms)
{
    static const char op[] = "store_callback_record";
    struct sqlite_store *st = from_store(s);
    int rc = write_begin(st, op);
    if (rc < 0) return rc;
    struct conn *c = &st->writer;
    sqlite3_stmt *q = get_stmt(c, S_CALLBACK_ATTEMPT_ADD, op, &rc);
    if (q) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int(q, 2, n);
        sqlite3_bind_int(q, 3, status);
        bind_str(q, 4, error, 255);
        rc = exec_stmt(c, q, op);
    }
    if (rc == 0 && (q = get_stmt(c, S_CALLBACK_UPDATE, op, &rc))) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int(q, 2, n);
        bind_str(q, 3, state, NO_LIMIT);
        sqlite3_bind_int(q, 4, retry_ms);
        rc = exec_stmt(c, q, op);
    }
    return write_end(st, op, rc);
}

static void read_attempt(sqlite3_stmt *q, void *out)
{
    struct store_callback_attempt *a = out;
    memset(a, 0, sizeof *a);
    a->n = sqlite3_column_int(q, 0);
    col_str(a->at, sizeof a->at, q, 1);
    a->status = sqlite3_column_int(q, 2);
    col_str(a->error, sizeof a->error, q, 3);
}

static int sqlite_callback_attempts(struct store *s, int64_t id, struct store_callback_attempt **rows, int *n)
{
    static const char op[] = "store_callback_attempts";
    struct sqlite_store *st = from_store(s);
    struct conn *c = reader_take(st);
    int rc = 0;
    sqlite3_stmt *q = get_stmt(c, S_CALLBACK_ATTEMPTS, op, &rc);
    if (q) {
        sqlite3_bind_int64(q, 1, id);
        void *got = NULL;
        rc = collect_rows(c, q, sizeof **rows, read_attempt, &got, n, op);
        if (rc == 0) *rows = got;
    }
    reader_give(st, c);
    return rc;
}

const struct store_backend store_sqlite_backend = {
    .name = "sqlite",
    .shared = 0,
    .open = sqlite_open,
    .close = sqlite_close,
    .upload_insert = sqlite_upload_insert,
    .upload_get = sqlite_upload_get,
    .upload_list = sqlite_upload_list,
    .upload_delete = sqlite_upload_delete,
    .job_enqueue = sqlite_job_enqueue,
    .job_get = sqlite_job_get,
    .job_active = sqlite_job_active,
    .job_claim = sqlite_job_claim,
    .job_heartbeat = sqlite_job_heartbeat,
    .job_progress = sqlite_job_progress,
    .job_finish = sqlite_job_finish,
    .job_fail = sqlite_job_fail,
    .job_release = sqlite_job_release,
    .job_cancel = sqlite_job_cancel,
    .requeue_running = sqlite_requeue_running,
    .requeue_expired = sqlite_requeue_expired,
    .wait_news = NULL, /* no announcements across processes */
    .jobs_in_state = sqlite_jobs_in_state,
    .stats = sqlite_stats,
    .key_add = sqlite_key_add,
    .key_list = sqlite_key_list,
    .key_revoke = sqlite_key_revoke,
    .key_find = sqlite_key_find,
    .key_count = sqlite_key_count,
    .index_set = sqlite_index_set,
    .search = sqlite_search,
    .uploads_ran = sqlite_uploads_ran,
    .job_segment_put = sqlite_job_segment_put,
    .job_segments = sqlite_job_segments,
    .job_segments_trim = sqlite_job_segments_trim,
    .job_checkpoint = sqlite_job_checkpoint,
    .job_set_callback = sqlite_job_set_callback,
    .callback_claim = sqlite_callback_claim,
    .callback_record = sqlite_callback_record,
    .callback_attempts = sqlite_callback_attempts,
};
