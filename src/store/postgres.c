/*
 * postgres.c: the PostgreSQL backend of the store (store.h, backend.h),
 * through libpq, so that many service processes on many machines can
 * share one queue.
 *
 * A store holds a small pool of connections. Any thread takes a free one,
 * runs its statement and gives it back; each connection is used by one
 * thread at a time, which is all libpq asks for. Connections are made
 * lazily: a store used by one thread at a time holds one, and the pool
 * grows to N_CONNS only as calls overlap (so a server's max_connections,
 * 100 by default, serves about a dozen busy processes). A connection found
 * broken (the server restarted, an idle connection was cut) is reset
 * before it is used, and a statement that fails because its connection
 * dropped is run once more on the reset connection. Every change is one
 * statement, so no transaction is ever left half run by a lost
 * connection: the first attempt either did not run, or ran and only its
 * reply was lost. In that second, rare case the retry finds the state the
 * first attempt left and answers for it (a second finish or fail is
 * HARK_ESTALE, a second enqueue HARK_EBUSY), and a claim takes the next
 * job while the first one stays running until it is requeued. Only the
 * migrations run several statements in a transaction, and a connection
 * lost there is reported, not retried. A process made by fork() opens its
 * own store; it never uses its parent's connections.
 *
 * Each change being one statement also makes it one transaction under
 * PostgreSQL's default READ COMMITTED isolation, with the races settled by
 * the database rather than by a lock in this process:
 *   - claim takes the oldest queued job with SELECT ... FOR UPDATE SKIP
 *     LOCKED inside the UPDATE, so concurrent claimers (threads here,
 *     processes anywhere) never wait for each other and never get the same
 *     job;
 *   - enqueue inserts only when the upload has no active job, and the
 *     partial unique index jobs_one_active settles two enqueues racing for
 *     one upload (ON CONFLICT DO NOTHING: the loser answers HARK_EBUSY);
 *   - finish marks the job done and the upload run in one statement (a
 *     data-modifying WITH), only while the job is still running, so it is
 *     written once;
 *   - an upload insert racing another with the same bytes ends as
 *     HARK_EEXIST through ON CONFLICT DO NOTHING.
 * A statement chosen as a deadlock victim (finish and a delete of its
 * upload lock the same two rows in opposite orders) is run again.
 *
 * Reads are one statement too, so a listing, its total and its queue
 * places come from one snapshot.
 *
 * The schema is the SQLite backend's in PostgreSQL's dialect (identity
 * column, DOUBLE PRECISION, the same partial unique index, the upload
 * counter kept by a trigger), with the same version numbers. store_open
 * applies the missing migrations in one transaction holding a transaction
 * advisory lock, so several processes starting at once against a new
 * database migrate it exactly once; a database from a newer hark is
 * refused. Text columns that are sorted use the "C" collation, so every
 * listing comes out in the byte order SQLite gives. Times are stored as
 * the same ISO 8601 text as in SQLite (store_now), so both backends show
 * identical JSON.
 *
 * Values always travel as statement parameters in text format, never
 * inside the SQL text. Each statement is prepared once per connection
 * (PQprepare, then PQexecPrepared), which saves planning the larger reads
 * on every call; this needs a session per connection, so a pooler in front
 * of the server must run in session mode. A job queued (enqueued,
 * released, or taken back when its lease passed) is announced with
 * pg_notify('hark_jobs', id), and whatever a job's followers see change
 * (its claim, progress, a segment stored, its release or end) with
 * pg_notify('hark_changes', id), each delivered when its change commits.
 * store_wait_news listens to both on a connection of its own, outside the
 * pool, made on first use and remade when it is lost (then it answers
 * both: announcements may have been missed), and waits with poll() on its
 * socket: idle workers cost the server nothing.
 *
 * Leases are computed and compared by the server's clock (now() in UTC,
 * formatted as store_now does), so workers on machines whose clocks
 * disagree still agree on when a lease has passed.
 */
#include "backend.h"

#include "hark.h"

#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_CONNS 8
/* More than the backend's statements, so every one is prepared. */
#define N_PREPARED 40
#define CONNECT_TIMEOUT_S "10"
/* Deadlock victims and serialization failures are run again this often. */
#define N_TRIES 4
/* The advisory lock key taken while migrating ("hark" in ASCII). */
#define MIGRATE_LOCK "1751216747"

/* ---------------------------------------------------------------- schema */

/* Migration i takes the schema from version i to version i + 1, as the
 * SQLite backend's does. Never edit one that has shipped: add a new one. */
static const char *const migrations[] = {
    /* 1: uploads and jobs. */
    "CREATE TABLE uploads ("
    " id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
    " filename TEXT NOT NULL DEFAULT '',"
    " sha256 TEXT UNIQUE NOT NULL,"
    " content_type TEXT NOT NULL DEFAULT '',"
    " model TEXT NOT NULL DEFAULT '',"
    " upload_date TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
    " size BIGINT NOT NULL DEFAULT 0,"
    " duration_s DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " model_ran INTEGER NOT NULL DEFAULT 0,"
    " model_date TEXT NOT NULL DEFAULT '',"
    " time_s DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " language TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX uploads_by_date ON uploads(upload_date DESC, id DESC);"
    "CREATE TABLE jobs ("
    " id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " upload_id TEXT COLLATE \"C\" NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,"
    " model TEXT NOT NULL DEFAULT '',"
    " language TEXT NOT NULL DEFAULT '',"
    " task TEXT NOT NULL DEFAULT 'transcribe',"
    " state TEXT NOT NULL CHECK (state IN ('queued','running','done','failed','canceled')),"
    " progress DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " created TEXT NOT NULL DEFAULT '',"
    " started TEXT NOT NULL DEFAULT '',"
    " finished TEXT NOT NULL DEFAULT '',"
    " worker TEXT NOT NULL DEFAULT '',"
    " error TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX jobs_by_upload ON jobs(upload_id, id);"
    "CREATE INDEX jobs_by_state ON jobs(state, id);"
    "CREATE UNIQUE INDEX jobs_one_active ON jobs(upload_id)"
    " WHERE state IN ('queued','running');"
    /* The number of uploads, kept in the same transaction as the change. */
    "CREATE TABLE upload_count (n BIGINT NOT NULL);"
    "INSERT INTO upload_count VALUES (0);"
    "CREATE FUNCTION hark_upload_count() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  IF TG_OP = 'INSERT' THEN UPDATE upload_count SET n = n + 1;"
    "  ELSE UPDATE upload_count SET n = n - 1; END IF;"
    "  RETURN NULL;"
    " END $$;"
    "CREATE TRIGGER uploads_count AFTER INSERT OR DELETE ON uploads"
    " FOR EACH ROW EXECUTE FUNCTION hark_upload_count();",
    /* 2: leases, as in SQLite. */
    "ALTER TABLE jobs ADD COLUMN lease_until TEXT COLLATE \"C\" NOT NULL DEFAULT '';",
    /* 3: a job's own settings, as in SQLite. */
    "ALTER TABLE jobs ADD COLUMN options TEXT NOT NULL DEFAULT '';",
    /* 4: owners and API keys, as in SQLite: the content hash becomes
     * unique per owner. */
    "ALTER TABLE uploads ADD COLUMN owner TEXT COLLATE \"C\" NOT NULL DEFAULT '';"
    "ALTER TABLE uploads DROP CONSTRAINT uploads_sha256_key;"
    "CREATE UNIQUE INDEX uploads_owner_sha256 ON uploads(owner, sha256);"
    "CREATE INDEX uploads_by_owner ON uploads(owner, upload_date DESC, id DESC);"
    "CREATE TABLE api_keys ("
    " name TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
    " hash TEXT UNIQUE NOT NULL,"
    " admin INTEGER NOT NULL DEFAULT 0,"
    " created TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
    " revoked TEXT NOT NULL DEFAULT '');",
    /* 5: the search index: a row per segment of a transcript, with its
     * words as a tsvector kept by the database. The text search
     * configuration folds case (simple) and diacritics (the unaccent
     * dictionary, from the extension of that name shipped with
     * PostgreSQL). */
    "CREATE EXTENSION IF NOT EXISTS unaccent;"
    "CREATE TEXT SEARCH CONFIGURATION hark_search (COPY = pg_catalog.simple);"
    "ALTER TEXT SEARCH CONFIGURATION hark_search"
    " ALTER MAPPING FOR hword, hword_part, word WITH unaccent, simple;"
    "CREATE TABLE transcript_segments ("
    " id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " upload_id TEXT COLLATE \"C\" NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,"
    " seg INTEGER NOT NULL,"
    " start_s DOUBLE PRECISION NOT NULL,"
    " end_s DOUBLE PRECISION NOT NULL,"
    " text TEXT NOT NULL,"
    " tsv tsvector GENERATED ALWAYS AS (to_tsvector('hark_search'::regconfig, text)) STORED);"
    "CREATE INDEX transcript_segments_by_upload ON transcript_segments(upload_id, seg);"
    "CREATE INDEX transcript_segments_tsv ON transcript_segments USING GIN (tsv);",
    /* 6: the segments of each job as its worker decodes them (JSON). */
    "CREATE TABLE job_segments ("
    " job_id BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    " seq INTEGER NOT NULL,"
    " window_s DOUBLE PRECISION NOT NULL,"
    " language TEXT NOT NULL DEFAULT '',"
    " data TEXT NOT NULL,"
    " PRIMARY KEY (job_id, seq));"
    "ALTER TABLE jobs ADD COLUMN resume_s DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " ADD COLUMN resume_segments INTEGER NOT NULL DEFAULT 0,"
    " ADD COLUMN callback_url TEXT NOT NULL DEFAULT '',"
    " ADD COLUMN callback_state TEXT NOT NULL DEFAULT '',"
    " ADD COLUMN callback_next TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
    " ADD COLUMN callback_tries INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX jobs_callbacks ON jobs(callback_next, id)"
    " WHERE callback_url <> '' AND callback_state IN ('', 'pending');"
    "CREATE TABLE callback_attempts ("
    " job_id BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    " n INTEGER NOT NULL,"
    " at TEXT NOT NULL,"
    " status INTEGER NOT NULL,"
    " error TEXT NOT NULL DEFAULT '',"
    " PRIMARY KEY (job_id, n));",
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* ---------------------------------------------------------------- statements */

/* Columns 0..16 of an upload with its latest job (NULL job columns when it
 * has none) and its owner; column 17 is its queue place, 0 unless queued. */
#define UPLOAD_COLS                                                              \
    "u.id, u.filename, u.sha256, u.content_type, u.model, u.upload_date, u.size," \
    " u.duration_s, u.model_ran, u.model_date, u.time_s, u.language,"             \
    " j.id, j.state, j.progress, j.error, u.owner"

#define UPLOAD_JOIN \
    " LEFT JOIN jobs j ON j.id = (SELECT MAX(id) FROM jobs WHERE upload_id = u.id)"

/* The place of one upload's job: a count over the state index. */
#define ONE_PLACE                                                                     \
    ", CASE WHEN j.state = 'queued' THEN (SELECT COUNT(*) FROM jobs q"                \
    " WHERE q.state = 'queued' AND q.id <= j.id) ELSE 0 END"

#define JOB_COLS                                                                   \
    "id, upload_id, model, language, task, state, progress, attempts, created,"    \
    " started, finished, worker, error, lease_until, options, resume_s, resume_segments,"   \
    " callback_url, callback_state, callback_tries"

/* A time in the store's format, now by the server's clock, and the end of
 * a lease of $N milliseconds from now: every machine's workers compare
 * leases on one clock. */
#define PG_TIME(ts) "to_char(" ts ", 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define PG_NOW PG_TIME("(now() AT TIME ZONE 'UTC')")
#define PG_LEASE(n) PG_TIME("(now() AT TIME ZONE 'UTC') + " n "::bigint * interval '1 millisecond'")

static const char sql_upload_by_sha[] =
    "SELECT " UPLOAD_COLS ONE_PLACE " FROM uploads u" UPLOAD_JOIN
    " WHERE u.sha256 = $1 AND u.owner = $2";

static const char sql_upload_get[] =
    "SELECT " UPLOAD_COLS ONE_PLACE " FROM uploads u" UPLOAD_JOIN " WHERE u.id = $1";

/* A page of uploads, newest first, in one statement (one snapshot) whose
 * rows are of three kinds, told by column 0 (columns counted from 0): the page's rows (kind 0,
 * columns 1..17 as UPLOAD_COLS, newest first); the queue places (kind 1,
 * job id in column 13 and place in column 18, by job id) of every queued
 * job from the page's oldest queued one to its newest, found as SQLite's
 * backend does by one count and one walk along the state index; and the
 * total number of uploads (kind 2, column 18). $3 is the owner whose
 * uploads are listed, NULL for everyone's. The caller matches the
 * places to the rows. Joining them in SQL instead lets the planner, whose
 * estimates of a fresh table are poor, repeat the walk for every row. The
 * page's ids come from the date index alone (skipping offset rows reads
 * no table rows), and only those rows are then read. */
static const char sql_upload_list[] =
    "WITH page (id, filename, sha256, content_type, model, upload_date, size, duration_s,"
    " model_ran, model_date, time_s, language, job_id, state, progress, error, owner)"
    " AS MATERIALIZED"
    " (SELECT " UPLOAD_COLS " FROM uploads u LEFT JOIN LATERAL (SELECT id, state, progress,"
    " error FROM jobs WHERE upload_id = u.id ORDER BY id DESC LIMIT 1) j ON true"
    " WHERE u.id = ANY (ARRAY (SELECT id FROM uploads WHERE $3::text IS NULL OR owner = $3"
    " ORDER BY upload_date DESC, id DESC LIMIT $1 OFFSET $2))),"
    " span AS MATERIALIZED (SELECT lo, hi, (SELECT COUNT(*) FROM jobs WHERE state = 'queued'"
    " AND id < lo) AS before FROM (SELECT MIN(job_id) AS lo, MAX(job_id) AS hi FROM page"
    " WHERE state = 'queued') m WHERE lo IS NOT NULL)"
    " SELECT 0 AS kind, page.*, NULL::BIGINT AS num FROM page"
    " UNION ALL SELECT 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    " NULL, q.id, NULL, NULL, NULL, NULL, span.before + ROW_NUMBER() OVER (ORDER BY q.id)"
    " FROM span JOIN jobs q ON q.state = 'queued' AND q.id BETWEEN span.lo AND span.hi"
    " UNION ALL SELECT 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    " NULL, NULL, NULL, NULL, NULL, NULL, CASE WHEN $3::text IS NULL"
    " THEN (SELECT n FROM upload_count) ELSE (SELECT COUNT(*) FROM uploads WHERE owner = $3) END"
    " ORDER BY 1, 7 DESC, 2 DESC, 14";

static const char sql_upload_exists[] = "SELECT 1 FROM uploads WHERE id = $1";

static const char sql_upload_insert[] =
    "INSERT INTO uploads (id, filename, sha256, content_type, model, upload_date, size,"
    " duration_s, owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING";

static const char sql_upload_delete[] = "DELETE FROM uploads WHERE id = $1";

/* A change to a job that its followers see (GET /jobs/<n>/events: its
 * state, progress, segments) announces itself on hark_changes. */
#define NOTIFY_CHANGED(id) "pg_notify('hark_changes', " id "::text)"
#define CHANGED(id) " RETURNING " NOTIFY_CHANGED(id)

/* Inserts a job unless the upload has an active one; the new job's
 * columns, its queue place (column 20) and the notification. */
static const char sql_job_enqueue[] =
    "WITH ins AS (INSERT INTO jobs (upload_id, model, language, task, state, created, options)"
    " SELECT $1, $2, $3, $4, 'queued', $5, $6 WHERE NOT EXISTS (SELECT 1 FROM jobs"
    " WHERE upload_id = $1 AND state IN ('queued', 'running'))"
    " ON CONFLICT (upload_id) WHERE state IN ('queued', 'running') DO NOTHING"
    " RETURNING " JOB_COLS ")"
    " SELECT ins.*, (SELECT COUNT(*) FROM jobs q WHERE q.state = 'queued' AND q.id < ins.id) + 1,"
    " pg_notify('hark_jobs', ins.id::text) FROM ins";

static const char sql_job_get[] = "SELECT " JOB_COLS " FROM jobs WHERE id = $1";

static const char sql_job_active[] =
    "SELECT " JOB_COLS " FROM jobs WHERE upload_id = $1"
    " AND state IN ('queued', 'running') ORDER BY id DESC LIMIT 1";

static const char sql_job_claim[] =
    "UPDATE jobs SET state = 'running', attempts = attempts + 1, started = $1, worker = $2,"
    " progress = 0, finished = '', error = '', lease_until = " PG_LEASE("$3")
    " WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY id"
    " FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING " JOB_COLS ", " NOTIFY_CHANGED("id");

static const char sql_job_heartbeat[] =
    "UPDATE jobs SET lease_until = " PG_LEASE("$3")
    " WHERE id = $1 AND state = 'running' AND worker = $2";

static const char sql_job_progress[] =
    "UPDATE jobs SET progress = $2 WHERE id = $1 AND state = 'running' AND worker = $3" CHANGED("id");

/* The segments of a transcript, $N a JSON array of {seg, start_s, end_s,
 * text}, as rows. */
#define SEGMENT_ROWS(n) \
    "jsonb_to_recordset(" n "::jsonb) AS x(seg integer, start_s double precision, end_s double precision, text text)"

/* The job's row is changed (and locked) first, the upload's after it; the
 * upload's indexed segments are replaced by $7 in the same statement. */
static const char sql_job_finish[] =
    "WITH j AS (UPDATE jobs SET state = 'done', progress = 100, finished = $2, lease_until = ''"
    " WHERE id = $1 AND state = 'running' AND worker = $6 RETURNING upload_id, model),"
    " d AS (DELETE FROM transcript_segments s USING j WHERE s.upload_id = j.upload_id),"
    " i AS (INSERT INTO transcript_segments (upload_id, seg, start_s, end_s, text)"
    " SELECT j.upload_id, x.seg, x.start_s, x.end_s, x.text FROM j CROSS JOIN " SEGMENT_ROWS("$7") ")"
    " UPDATE uploads u SET model_ran = 1, model_date = $2,"
    " model = COALESCE(NULLIF($3, ''), j.model), time_s = $4, language = $5"
    " FROM j WHERE u.id = j.upload_id" CHANGED("$1");

/* store_index_set: the number of uploads found (0 or 1). */
static const char sql_index_set[] =
    "WITH u AS (SELECT id FROM uploads WHERE id = $1 FOR UPDATE),"
    " d AS (DELETE FROM transcript_segments s USING u WHERE s.upload_id = u.id),"
    " i AS (INSERT INTO transcript_segments (upload_id, seg, start_s, end_s, text)"
    " SELECT u.id, x.seg, x.start_s, x.end_s, x.text FROM u CROSS JOIN " SEGMENT_ROWS("$2") ")"
    " SELECT COUNT(*) FROM u";

/* A page of hits ($2 NULL: every owner's); the snippets are made for the
 * page's rows only, after the sort and the limit. */
static const char sql_search[] =
    "WITH q AS (SELECT to_tsquery('hark_search', $1) AS query),"
    " page AS (SELECT s.id, ts_rank(s.tsv, q.query) AS rank"
    " FROM transcript_segments s JOIN uploads u ON u.id = s.upload_id CROSS JOIN q"
    " WHERE s.tsv @@ q.query AND ($2::text IS NULL OR u.owner = $2)"
    " ORDER BY rank DESC, s.upload_id, s.seg LIMIT $3 OFFSET $4)"
    " SELECT s.upload_id, u.filename, s.seg, s.start_s, s.end_s, page.rank, s.text,"
    " ts_headline('hark_search', s.text, q.query,"
    " 'StartSel=' || chr(1) || ', StopSel=' || chr(2) || ', MaxWords=24, MinWords=12')"
    " FROM page JOIN transcript_segments s ON s.id = page.id JOIN uploads u ON u.id = s.upload_id CROSS JOIN q"
    " ORDER BY page.rank DESC, s.upload_id, s.seg";

/* The number of hits. */
static const char sql_search_count[] =
    "SELECT COUNT(*) FROM transcript_segments s JOIN uploads u ON u.id = s.upload_id"
    " WHERE s.tsv @@ to_tsquery('hark_search', $1) AND ($2::text IS NULL OR u.owner = $2)";

static const char sql_uploads_ran[] = "SELECT id FROM uploads WHERE model_ran = 1 ORDER BY upload_date, id";

static const char sql_job_segment_put[] =
    "INSERT INTO job_segments (job_id, seq, window_s, language, data)"
    " SELECT $1::bigint, $2::integer, $3::double precision, $4::text, $5::text WHERE EXISTS (SELECT 1 FROM jobs"
    " WHERE id = $1 AND state = 'running' AND worker = $6)"
    " ON CONFLICT (job_id, seq) DO UPDATE SET window_s = excluded.window_s,"
    " language = excluded.language, data = excluded.data" CHANGED("job_id");

static const char sql_job_segments[] =
    "SELECT seq, window_s, language, data FROM job_segments"
    " WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";

static const char sql_job_segments_trim[] = "DELETE FROM job_segments WHERE job_id = $1 AND seq >= $2";

static const char sql_job_set_callback[] = "UPDATE jobs SET callback_url = $2 WHERE id = $1";

static const char sql_callback_claim[] =
    "UPDATE jobs SET callback_state = 'pending', callback_next = " PG_LEASE("$1")
    " WHERE id = (SELECT id FROM jobs WHERE callback_url <> '' AND callback_state IN ('', 'pending')"
    " AND callback_next <= " PG_NOW " AND state IN ('done', 'failed', 'canceled')"
    " ORDER BY callback_next, id FOR UPDATE SKIP LOCKED LIMIT 1)"
    " RETURNING id, callback_url, callback_tries, finished, state";

static const char sql_callback_record[] =
    "WITH a AS (INSERT INTO callback_attempts (job_id, n, at, status, error)"
    " VALUES ($1, $2, " PG_NOW ", $3, $4) ON CONFLICT (job_id, n) DO UPDATE SET at = excluded.at,"
    " status = excluded.status, error = excluded.error)"
    " UPDATE jobs SET callback_tries = $2, callback_state = $5, callback_next = " PG_LEASE("$6")
    " WHERE id = $1";

static const char sql_callback_attempts[] =
    "SELECT n, at, status, error FROM callback_attempts WHERE job_id = $1 ORDER BY n";

static const char sql_job_checkpoint[] =
    "UPDATE jobs SET resume_s = $2, resume_segments = $3 WHERE id = $1 AND state = 'running' AND worker = $4";

static const char sql_job_fail[] =
    "UPDATE jobs SET state = 'failed', error = $2, finished = $3, lease_until = ''"
    " WHERE id = $1 AND state = 'running' AND worker = $4" CHANGED("id");

/* Both announce the job queued again, as an enqueue does. */
static const char sql_job_release[] =
    "WITH r AS (UPDATE jobs SET state = 'queued', progress = 0, lease_until = ''"
    " WHERE id = $1 AND state = 'running' AND worker = $2 RETURNING id)"
    " SELECT pg_notify('hark_jobs', id::text), " NOTIFY_CHANGED("id") " FROM r";

static const char sql_requeue_expired[] =
    "WITH r AS (UPDATE jobs SET state = 'queued', progress = 0, lease_until = ''"
    " WHERE state = 'running' AND lease_until < " PG_NOW " RETURNING id)"
    " SELECT pg_notify('hark_jobs', id::text), " NOTIFY_CHANGED("id") " FROM r";

/* Column 0: 1 when canceled now; column 1: whether the job exists. */
static const char sql_job_cancel[] =
    "WITH c AS (UPDATE jobs SET state = 'canceled', finished = $2, lease_until = ''"
    " WHERE id = $1 AND state IN ('queued', 'running')" CHANGED("id") ")"
    " SELECT (SELECT COUNT(*) FROM c), EXISTS (SELECT 1 FROM jobs WHERE id = $1)";

static const char sql_requeue[] =
    "UPDATE jobs SET state = 'queued', progress = 0, lease_until = '' WHERE state = 'running'";

static const char sql_jobs_in_state[] = "SELECT id FROM jobs WHERE state = $1 ORDER BY id";

static const char sql_stats[] =
    "SELECT (SELECT n FROM upload_count),"
    " COUNT(*) FILTER (WHERE state = 'queued'), COUNT(*) FILTER (WHERE state = 'running'),"
    " COUNT(*) FILTER (WHERE state = 'done'), COUNT(*) FILTER (WHERE state = 'failed'),"
    " COUNT(*) FILTER (WHERE state = 'canceled') FROM jobs";

#define KEY_COLS "name, created, admin, revoked"

static const char sql_key_add[] =
    "INSERT INTO api_keys (name, hash, admin, created) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT DO NOTHING";

static const char sql_key_list[] = "SELECT " KEY_COLS " FROM api_keys ORDER BY created, name";

/* Whether the key exists, after revoking it unless it was revoked before. */
static const char sql_key_revoke[] =
    "WITH r AS (UPDATE api_keys SET revoked = $2 WHERE name = $1 AND revoked = '' RETURNING 1)"
    " SELECT EXISTS (SELECT 1 FROM api_keys WHERE name = $1), (SELECT COUNT(*) FROM r)";

static const char sql_key_find[] = "SELECT " KEY_COLS " FROM api_keys WHERE hash = $1 AND revoked = ''";

static const char sql_key_count[] = "SELECT COUNT(*) FROM api_keys";

/* ---------------------------------------------------------------- handle */

/* One connection and the statements prepared on it (named hark_<index>),
 * forgotten whenever the connection is reset. */
struct pg_conn {
    PGconn *c;                  /* NULL until first needed */
    const char *prepared[N_PREPARED];
    int n_prepared;
};

struct pg_store {
    struct store base;
    char *location;             /* the libpq URI, as given */
    pthread_mutex_t lock;       /* guards free_slots, n_free */
    pthread_cond_t cond;        /* signalled when a connection is given back */
    struct pg_conn conns[N_CONNS];
    int free_slots[N_CONNS];    /* a stack: the most recently used on top */
    int n_free;
    pthread_mutex_t listen_lock; /* guards listen: one waiter at a time */
    PGconn *listen;             /* LISTEN hark_jobs, hark_changes; made by the first wait */
};

static struct pg_store *from_store(struct store *s) { return (struct pg_store *)s; }

/* ---------------------------------------------------------------- connections */

/* Notices ("relation already exists, skipping") are not errors and must
 * not reach the service's stderr. */
static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Connects to location; on failure *out stays NULL and the error is recorded. */
static int conn_open(const char *location, PGconn **out, const char *op)
{
    /* Entries before the URI are defaults it may override; those after it
     * are imposed. */
    const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname",
                                "client_encoding", NULL};
    const char *const values[] = {CONNECT_TIMEOUT_S, "hark", location, "UTF8", NULL};
    *out = NULL;
    PGconn *c = PQconnectdbParams(keys, values, 1);
    if (!c) {
        store_set_error("%s: out of memory for a PostgreSQL connection", op);
        return HARK_ENOMEM;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        store_set_error("%s: PostgreSQL: %s", op, PQerrorMessage(c));
        PQfinish(c);
        return HARK_EIO;
    }
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    *out = c;
    return 0;
}

/* Takes a free connection (waiting when all are in use), connecting or
 * resetting it as needed: 0 and *slot, or a negative code with nothing held. */
static int conn_take(struct pg_store *st, const char *op, int *slot)
{
    pthread_mutex_lock(&st->lock);
    while (st->n_free == 0) pthread_cond_wait(&st->cond, &st->lock);
    int i = st->free_slots[--st->n_free];
    pthread_mutex_unlock(&st->lock);
    int rc = 0;
    struct pg_conn *pc = &st->conns[i];
    if (!pc->c) {
        rc = conn_open(st->location, &pc->c, op);
        pc->n_prepared = 0;
    } else if (PQstatus(pc->c) != CONNECTION_OK) {
        PQreset(pc->c);
        pc->n_prepared = 0;
        if (PQstatus(pc->c) != CONNECTION_OK) {
            store_set_error("%s: PostgreSQL: %s", op, PQerrorMessage(pc->c));
            rc = HARK_EIO;
        }
    }
    if (rc < 0) {
        pthread_mutex_lock(&st->lock);
        st->free_slots[st->n_free++] = i;
        pthread_cond_signal(&st->cond);
        pthread_mutex_unlock(&st->lock);
        return rc;
    }
    *slot = i;
    return 0;
}

/* Gives a connection back, ending any transaction left open by a failure. */
static void conn_give(struct pg_store *st, int slot)
{
    PGconn *c = st->conns[slot].c;
    if (c && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE)
        PQclear(PQexec(c, "ROLLBACK"));
    pthread_mutex_lock(&st->lock);
    st->free_slots[st->n_free++] = slot;
    pthread_cond_signal(&st->cond);
    pthread_mutex_unlock(&st->lock);
}

/* ---------------------------------------------------------------- statements */

/* The SQLSTATE of a failed result ("" when there is none). */
static const char *sqlstate(const PGresult *r)
{
    const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

/* Records a failed statement and gives its code: bad data (class 22) is
 * HARK_EINVAL, the server out of memory HARK_ENOMEM, the rest HARK_EIO. */
static int pg_fail(PGconn *c, const PGresult *r, const char *op)
{
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    store_set_error("%s: PostgreSQL: %s", op, msg ? msg : PQerrorMessage(c));
    const char *code = sqlstate(r);
    if (strncmp(code, "22", 2) == 0) return HARK_EINVAL;
    if (strcmp(code, "53200") == 0 || (!r && PQstatus(c) == CONNECTION_OK)) return HARK_ENOMEM;
    return HARK_EIO;
}

/* Runs sql on pc as a prepared statement, preparing it on first use
 * (each statement is planned once per connection, not once per call):
 * the result of the execution, or of the preparation when that failed. */
static PGresult *exec_prepared(struct pg_conn *pc, const char *sql, int n,
                               const char *const *params)
{
    int k = 0;
    while (k < pc->n_prepared && pc->prepared[k] != sql) k++;
    if (k == N_PREPARED) return PQexecParams(pc->c, sql, n, NULL, params, NULL, NULL, 0);
    char name[16];
    snprintf(name, sizeof name, "hark_%d", k);
    if (k == pc->n_prepared) {
        PGresult *r = PQprepare(pc->c, name, sql, n, NULL);
        if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) return r;
        PQclear(r);
        pc->prepared[pc->n_prepared++] = sql;
    }
    return PQexecPrepared(pc->c, name, n, params, NULL, NULL, 0);
}

/* Runs one statement outside any transaction, with n text parameters
 * (sql must be one of the static strings above: it names the prepared
 * statement). Returns the result when it succeeded; otherwise NULL, *rc
 * the code and the error recorded, and the SQLSTATE copied into state[6]
 * when given. A statement that failed because the connection dropped runs
 * once more on the reset connection; one chosen as a deadlock victim or
 * failed by a serialization conflict runs again up to N_TRIES times. */
static PGresult *run(struct pg_conn *pc, const char *sql, int n, const char *const *params,
                     const char *op, int *rc, char *state)
{
    PGconn *c = pc->c;
    int reconnected = 0;
    if (state) state[0] = '\0';
    for (int tries = 0;; tries++) {
        PGresult *r = exec_prepared(pc, sql, n, params);
        ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK) return r;
        const char *code = sqlstate(r);
        if (PQstatus(c) == CONNECTION_BAD && !reconnected) {
            PQclear(r);
            PQreset(c);
            pc->n_prepared = 0;
            reconnected = 1;
            if (PQstatus(c) == CONNECTION_OK) continue;
            store_set_error("%s: PostgreSQL: %s", op, PQerrorMessage(c));
            *rc = HARK_EIO;
            return NULL;
        }
        if ((strcmp(code, "40P01") == 0 || strcmp(code, "40001") == 0) && tries + 1 < N_TRIES) {
            PQclear(r);
            continue;
        }
        *rc = pg_fail(c, r, op);
        if (state) store_copy(state, 6, code);
        PQclear(r);
        return NULL;
    }
}

/* The number of rows a command changed. */
static int64_t changed(PGresult *r) { return strtoll(PQcmdTuples(r), NULL, 10); }

static const char *val(const PGresult *r, int row, int col) { return PQgetvalue(r, row, col); }

static int64_t val_i64(const PGresult *r, int row, int col)
{
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static double val_f64(const PGresult *r, int row, int col)
{
    return strtod(PQgetvalue(r, row, col), NULL);
}

/* A copy of a fixed-size field that need not be NUL-terminated. */
static void field(char *dst, size_t dstlen, const char *src, size_t srclen)
{
    size_t n = src ? strnlen(src, srclen) : 0;
    if (n >= dstlen) n = dstlen - 1;
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}

#define FIELD(dst, src) field(dst, sizeof dst, src, sizeof src)

static const char *or_empty(const char *s) { return s ? s : ""; }

/* Fills an upload from the 17 columns of UPLOAD_COLS starting at column
 * c0 (queue_position is left 0). */
static void read_upload(const PGresult *r, int row, int c0, struct store_upload *u)
{
    memset(u, 0, sizeof *u);
    store_copy(u->id, sizeof u->id, val(r, row, c0 + 0));
    store_copy(u->filename, sizeof u->filename, val(r, row, c0 + 1));
    store_copy(u->sha256, sizeof u->sha256, val(r, row, c0 + 2));
    store_copy(u->content_type, sizeof u->content_type, val(r, row, c0 + 3));
    store_copy(u->model, sizeof u->model, val(r, row, c0 + 4));
    store_copy(u->upload_date, sizeof u->upload_date, val(r, row, c0 + 5));
    u->size = val_i64(r, row, c0 + 6);
    u->duration_s = val_f64(r, row, c0 + 7);
    u->model_ran = val_i64(r, row, c0 + 8) != 0;
    store_copy(u->model_date, sizeof u->model_date, val(r, row, c0 + 9));
    u->time_s = val_f64(r, row, c0 + 10);
    store_copy(u->language, sizeof u->language, val(r, row, c0 + 11));
    store_copy(u->owner, sizeof u->owner, val(r, row, c0 + 16));
    if (PQgetisnull(r, row, c0 + 12)) {
        store_copy(u->status, sizeof u->status, "uploaded");
        return;
    }
    u->job_id = val_i64(r, row, c0 + 12);
    store_copy(u->status, sizeof u->status, val(r, row, c0 + 13));
    u->progress = val_f64(r, row, c0 + 14);
    if (strcmp(u->status, STORE_FAILED) == 0)
        store_copy(u->error, sizeof u->error, val(r, row, c0 + 15));
}

/* Fills a job from columns 0..19 (JOB_COLS) of a row. */
static void read_job(const PGresult *r, int row, struct store_job *j)
{
    memset(j, 0, sizeof *j);
    j->id = val_i64(r, row, 0);
    store_copy(j->upload_id, sizeof j->upload_id, val(r, row, 1));
    store_copy(j->model, sizeof j->model, val(r, row, 2));
    store_copy(j->language, sizeof j->language, val(r, row, 3));
    store_copy(j->task, sizeof j->task, val(r, row, 4));
    store_copy(j->state, sizeof j->state, val(r, row, 5));
    j->progress = val_f64(r, row, 6);
    j->attempts = (int)val_i64(r, row, 7);
    store_copy(j->created, sizeof j->created, val(r, row, 8));
    store_copy(j->started, sizeof j->started, val(r, row, 9));
    store_copy(j->finished, sizeof j->finished, val(r, row, 10));
    store_copy(j->worker, sizeof j->worker, val(r, row, 11));
    store_copy(j->error, sizeof j->error, val(r, row, 12));
    store_copy(j->lease_until, sizeof j->lease_until, val(r, row, 13));
    store_copy(j->options, sizeof j->options, val(r, row, 14));
    j->resume_s = val_f64(r, row, 15);
    j->resume_segments = (int)val_i64(r, row, 16);
    store_copy(j->callback_url, sizeof j->callback_url, val(r, row, 17));
    store_copy(j->callback_state, sizeof j->callback_state, val(r, row, 18));
    j->callback_tries = (int)val_i64(r, row, 19);
}

/* Runs a query for at most one upload with n parameters: 0 and *out (when
 * not NULL), 1 when there is no row, or a negative code. */
static int query_upload_n(struct pg_conn *c, const char *sql, int n, const char *const *params,
                          const char *op, struct store_upload *out)
{
    int rc = 0;
    PGresult *r = run(c, sql, n, params, op, &rc, NULL);
    if (!r) return rc;
    if (PQntuples(r) == 0) {
        rc = 1;
    } else if (out) {
        read_upload(r, 0, 0, out);
        if (strcmp(out->status, STORE_QUEUED) == 0) out->queue_position = (int)val_i64(r, 0, 17);
    }
    PQclear(r);
    return rc;
}

/* Runs a query for at most one upload keyed by key: 0 and *out (when not
 * NULL), 1 when there is no row, or a negative code. */
static int query_upload(struct pg_conn *c, const char *sql, const char *key, const char *op,
                        struct store_upload *out)
{
    const char *params[1] = {key};
    return query_upload_n(c, sql, 1, params, op, out);
}

/* The same for one job. */
static int query_job(struct pg_conn *c, const char *sql, int n, const char *const *params,
                     const char *op, struct store_job *out)
{
    int rc = 0;
    PGresult *r = run(c, sql, n, params, op, &rc, NULL);
    if (!r) return rc;
    if (PQntuples(r) == 0) rc = 1;
    else if (out) read_job(r, 0, out);
    PQclear(r);
    return rc;
}

/* Runs a change and gives how many rows it touched (or a negative code). */
static int64_t run_change(struct pg_conn *c, const char *sql, int n, const char *const *params,
                          const char *op, int *rc)
{
    PGresult *r = run(c, sql, n, params, op, rc, NULL);
    if (!r) return -1;
    int64_t k = changed(r);
    PQclear(r);
    return k;
}

/* run() on a connection taken from the pool for it and given back: the
 * result, or NULL with *rc set. */
static PGresult *pool_run(struct pg_store *st, const char *sql, int n, const char *const *params,
                          const char *op, int *rc)
{
    int slot;
    if ((*rc = conn_take(st, op, &slot)) < 0) return NULL;
    PGresult *r = run(&st->conns[slot], sql, n, params, op, rc, NULL);
    conn_give(st, slot);
    return r;
}

/* run_change() likewise: the rows changed, or -1 with *rc set. */
static int64_t pool_change(struct pg_store *st, const char *sql, int n, const char *const *params,
                           const char *op, int *rc)
{
    int slot;
    if ((*rc = conn_take(st, op, &slot)) < 0) return -1;
    int64_t k = run_change(&st->conns[slot], sql, n, params, op, rc);
    conn_give(st, slot);
    return k;
}

/* ---------------------------------------------------------------- open, close */

/* Runs one statement of the migration transaction: 0 or a negative code. */
static int migrate_exec(PGconn *c, const char *sql, const char *op, PGresult **keep)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK) {
        int rc = pg_fail(c, r, op);
        PQclear(r);
        return rc;
    }
    if (keep) *keep = r;
    else PQclear(r);
    return 0;
}

/* Brings the schema up to date in one transaction under an advisory lock:
 * a second process starting at the same time waits for the first, then
 * finds the schema current. */
static int migrate(PGconn *c)
{
    static const char op[] = "store_open (migrate)";
    PGresult *r = NULL;
    int rc = migrate_exec(c, "BEGIN", op, NULL);
    if (rc < 0) return rc;
    rc = migrate_exec(c, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")", op, NULL);
    if (rc < 0) goto fail;
    rc = migrate_exec(c,
                      "CREATE TABLE IF NOT EXISTS schema_version ("
                      " version INTEGER PRIMARY KEY, applied TEXT NOT NULL)",
                      op, NULL);
    if (rc < 0) goto fail;
    rc = migrate_exec(c, "SELECT COALESCE(MAX(version), 0) FROM schema_version", op, &r);
    if (rc < 0) goto fail;
    int64_t version = val_i64(r, 0, 0);
    PQclear(r);
    if (version > N_MIGRATIONS) {
        store_set_error("store_open: the PostgreSQL database has schema version %lld, newer than "
                        "this hark's %d; use a newer hark or another database",
                        (long long)version, N_MIGRATIONS);
        rc = HARK_ENOTSUP;
        goto fail;
    }
    for (; version < N_MIGRATIONS; version++) {
        r = PQexec(c, migrations[version]);
        if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
            const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
            store_set_error("store_open: migration to schema version %lld: %s",
                            (long long)version + 1, msg ? msg : PQerrorMessage(c));
            PQclear(r);
            rc = HARK_EIO;
            goto fail;
        }
        PQclear(r);
        char v[24], now[32];
        snprintf(v, sizeof v, "%lld", (long long)version + 1);
        store_now(now);
        const char *params[2] = {v, now};
        r = PQexecParams(c, "INSERT INTO schema_version (version, applied) VALUES ($1, $2)", 2,
                         NULL, params, NULL, NULL, 0);
        if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
            rc = pg_fail(c, r, op);
            PQclear(r);
            goto fail;
        }
        PQclear(r);
    }
    return migrate_exec(c, "COMMIT", op, NULL);
fail:
    if (PQstatus(c) == CONNECTION_OK) PQclear(PQexec(c, "ROLLBACK"));
    return rc;
}

static void pg_close(struct store *s)
{
    struct pg_store *st = from_store(s);
    for (int i = 0; i < N_CONNS; i++) PQfinish(st->conns[i].c);
    PQfinish(st->listen);
    pthread_mutex_destroy(&st->listen_lock);
    pthread_cond_destroy(&st->cond);
    pthread_mutex_destroy(&st->lock);
    free(st->location);
    free(st);
}

/* location is the whole libpq URI ("postgres://user@host:port/db?..."). */
static int pg_open(const char *location, struct store **out)
{
    struct pg_store *st = calloc(1, sizeof *st);
    if (!st || !(st->location = strdup(location))) {
        free(st);
        store_set_error("store_open: out of memory");
        return HARK_ENOMEM;
    }
    st->base.ops = &store_postgres_backend;
    pthread_mutex_init(&st->lock, NULL);
    pthread_mutex_init(&st->listen_lock, NULL);
    pthread_cond_init(&st->cond, NULL);
    for (int i = 0; i < N_CONNS; i++) st->free_slots[i] = N_CONNS - 1 - i;
    st->n_free = N_CONNS;
    int slot = 0;
    int rc = conn_take(st, "store_open", &slot);
    if (rc < 0) goto fail;
    rc = migrate(st->conns[slot].c);
    conn_give(st, slot);
    if (rc < 0) goto fail;
    *out = &st->base;
    return 0;
fail:
    pg_close(&st->base);
    return rc;
}

/* ---------------------------------------------------------------- uploads */

static int pg_upload_insert(struct store *s, const struct store_upload *u,
                            struct store_upload *existing)
{
    static const char op[] = "store_upload_insert";
    struct pg_store *st = from_store(s);
    struct store_upload f;
    FIELD(f.id, u->id);
    FIELD(f.filename, u->filename);
    FIELD(f.sha256, u->sha256);
    FIELD(f.content_type, u->content_type);
    FIELD(f.model, u->model);
    FIELD(f.upload_date, u->upload_date);
    FIELD(f.owner, u->owner);
    char size[24], duration[32];
    snprintf(size, sizeof size, "%lld", (long long)u->size);
    snprintf(duration, sizeof duration, "%.17g", u->duration_s);
    const char *params[9] = {f.id, f.filename, f.sha256, f.content_type, f.model, f.upload_date,
                             size, duration, f.owner};
    const char *by_sha[2] = {f.sha256, f.owner};
    int slot, rc = conn_take(st, op, &slot);
    if (rc < 0) return rc;
    struct pg_conn *c = &st->conns[slot];
    /* Nothing inserted: the bytes are stored (a duplicate) or the id is
     * taken by other bytes. Should the row that stood in the way be
     * deleted before it is read, the insert is tried again. */
    for (int tries = 0; tries < N_TRIES; tries++) {
        int64_t k = run_change(c, sql_upload_insert, 9, params, op, &rc);
        if (k < 0) break;
        if (k > 0) {
            rc = 0;
            break;
        }
        rc = query_upload_n(c, sql_upload_by_sha, 2, by_sha, op, existing);
        if (rc == 0) {
            rc = HARK_EEXIST;
            break;
        }
        if (rc < 0) break;
        rc = query_upload(c, sql_upload_exists, f.id, op, NULL);
        if (rc == 0) {
            store_set_error("%s: upload '%.40s' exists with other content", op, f.id);
            rc = HARK_EINVAL;
            break;
        }
        if (rc < 0) break;
        store_set_error("%s: upload '%.40s': the insert kept conflicting", op, f.id);
        rc = HARK_EIO;
    }
    conn_give(st, slot);
    return rc;
}

static int pg_upload_get(struct store *s, const char *id, struct store_upload *out)
{
    static const char op[] = "store_upload_get";
    struct pg_store *st = from_store(s);
    int slot, rc = conn_take(st, op, &slot);
    if (rc < 0) return rc;
    rc = query_upload(&st->conns[slot], sql_upload_get, id, op, out);
    conn_give(st, slot);
    if (rc == 1) {
        store_set_error("%s: no upload '%.64s'", op, id);
        rc = HARK_ENOENT;
    }
    return rc;
}

/* The place of job id among the kind-1 rows [lo, hi) of a listing (sorted
 * by job id), 0 when it is not among them. */
static int find_place(const PGresult *r, int lo, int hi, int64_t id)
{
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int64_t k = val_i64(r, mid, 13);
        if (k == id) return (int)val_i64(r, mid, 18);
        if (k < id) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

static int pg_upload_list(struct store *s, const char *owner, int limit, int64_t offset,
                          struct store_upload **rows, int *n, int64_t *total)
{
    static const char op[] = "store_upload_list";
    struct pg_store *st = from_store(s);
    char lim[24], off[24];
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(off, sizeof off, "%lld", (long long)offset);
    const char *params[3] = {lim, off, owner};
    int rc;
    PGresult *r = pool_run(st, sql_upload_list, 3, params, op, &rc);
    if (!r) return rc;
    int n_rows = PQntuples(r), count = 0, places = 0;
    while (count < n_rows && val_i64(r, count, 0) == 0) count++;
    while (count + places < n_rows && val_i64(r, count + places, 0) == 1) places++;
    if (count + places != n_rows - 1) {
        PQclear(r);
        store_set_error("%s: the listing came back malformed", op);
        return HARK_EIO;
    }
    struct store_upload *out = NULL;
    if (count > 0) {
        out = malloc((size_t)count * sizeof *out);
        if (!out) {
            PQclear(r);
            store_set_error("%s: out of memory for %d rows", op, count);
            return HARK_ENOMEM;
        }
        for (int i = 0; i < count; i++) {
            read_upload(r, i, 1, &out[i]);
            if (strcmp(out[i].status, STORE_QUEUED) == 0)
                out[i].queue_position = find_place(r, count, count + places, out[i].job_id);
        }
    }
    int64_t all = val_i64(r, n_rows - 1, 18);
    PQclear(r);
    *rows = out;
    *n = count;
    if (total) *total = all;
    return 0;
}

static int pg_upload_delete(struct store *s, const char *id)
{
    static const char op[] = "store_upload_delete";
    struct pg_store *st = from_store(s);
    const char *params[1] = {id};
    int rc;
    int64_t k = pool_change(st, sql_upload_delete, 1, params, op, &rc);
    if (k < 0) return rc;
    if (k == 0) {
        store_set_error("%s: no upload '%.64s'", op, id);
        return HARK_ENOENT;
    }
    return 0;
}

/* ---------------------------------------------------------------- jobs */

static int pg_job_enqueue(struct store *s, const char *upload_id, const char *model,
                          const char *language, const char *task, const char *options,
                          struct store_job *out, int *position)
{
    static const char op[] = "store_job_enqueue";
    struct pg_store *st = from_store(s);
    char now[32];
    store_now(now);
    const char *params[6] = {upload_id, or_empty(model), or_empty(language), task, now, or_empty(options)};
    int slot, rc = conn_take(st, op, &slot);
    if (rc < 0) return rc;
    struct pg_conn *c = &st->conns[slot];
    /* No row: the upload has an active job, which is read; should it end
     * before it is read, the insert is tried again. */
    for (int tries = 0; tries < N_TRIES; tries++) {
        char state[6];
        PGresult *r = run(c, sql_job_enqueue, 6, params, op, &rc, state);
        if (!r) {
            if (strcmp(state, "23503") == 0) {
                store_set_error("%s: no upload '%.64s'", op, upload_id);
                rc = HARK_ENOENT;
            }
            break;
        }
        if (PQntuples(r) == 1) {
            if (out) read_job(r, 0, out);
            if (position) *position = (int)val_i64(r, 0, 20);
            PQclear(r);
            rc = 0;
            break;
        }
        PQclear(r);
        rc = query_job(c, sql_job_active, 1, params, op, out);
        if (rc == 0) {
            store_set_error("%s: upload '%.64s' has an active job", op, upload_id);
            rc = HARK_EBUSY;
            break;
        }
        if (rc < 0) break;
        store_set_error("%s: upload '%.64s': the insert kept conflicting", op, upload_id);
        rc = HARK_EIO;
    }
    conn_give(st, slot);
    return rc;
}

static int pg_job_get(struct store *s, int64_t id, struct store_job *out)
{
    static const char op[] = "store_job_get";
    struct pg_store *st = from_store(s);
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)id);
    const char *params[1] = {key};
    int slot, rc = conn_take(st, op, &slot);
    if (rc < 0) return rc;
    rc = query_job(&st->conns[slot], sql_job_get, 1, params, op, out);
    conn_give(st, slot);
    if (rc == 1) {
        store_set_error("%s: no job %lld", op, (long long)id);
        rc = HARK_ENOENT;
    }
    return rc;
}

static int pg_job_active(struct store *s, const char *upload_id, struct store_job *out)
{
    static const char op[] = "store_job_active";
    struct pg_store *st = from_store(s);
    const char *params[1] = {upload_id};
    int slot, rc = conn_take(st, op, &slot);
    if (rc < 0) return rc;
    rc = query_job(&st->conns[slot], sql_job_active, 1, params, op, out);
    conn_give(st, slot);
    if (rc == 1) {
        store_set_error("%s: upload '%.64s' has no active job", op, upload_id);
        rc = HARK_ENOENT;
    }
    return rc;
}

static int pg_job_claim(struct store *s, const char *worker, struct store_job *out)
{
    static const char op[] = "store_job_claim";
    struct pg_store *st = from_store(s);
    char now[32], lease[24];
    store_now(now);
    snprintf(lease, sizeof lease, "%d", s->lease_ms);
    const char *params[3] = {now, or_empty(worker), lease};
    int slot, rc = conn_take(st, op, &slot);
    if (rc < 0) return rc;
    rc = query_job(&st->conns[slot], sql_job_claim, 3, params, op, out);
    conn_give(st, slot);
    return rc == 1 ? HARK_EAGAIN : rc;
}

/* Runs one change on a job that must still be running: HARK_ESTALE when it
 * touched no row. */
static int update_running(struct pg_store *st, const char *sql, int n, const char *const *params,
                          const char *op, int64_t id)
{
    int rc;
    int64_t k = pool_change(st, sql, n, params, op, &rc);
    if (k < 0) return rc;
    if (k == 0) {
        store_set_error("%s: job %lld is not running, or not for this worker", op, (long long)id);
        return HARK_ESTALE;
    }
    return 0;
}

static int pg_job_heartbeat(struct store *s, int64_t id, const char *worker)
{
    char key[24], lease[24];
    snprintf(key, sizeof key, "%lld", (long long)id);
    snprintf(lease, sizeof lease, "%d", s->lease_ms);
    const char *params[3] = {key, worker, lease};
    return update_running(from_store(s), sql_job_heartbeat, 3, params, "store_job_heartbeat", id);
}

static int pg_job_progress(struct store *s, int64_t id, const char *worker, double progress)
{
    char key[24], value[32];
    snprintf(key, sizeof key, "%lld", (long long)id);
    snprintf(value, sizeof value, "%.17g", progress);
    const char *params[3] = {key, value, worker};
    return update_running(from_store(s), sql_job_progress, 3, params, "store_job_progress", id);
}

/* Segments as the JSON array SEGMENT_ROWS reads (malloc'ed), or NULL when
 * out of memory. */
static char *segments_json(const struct store_segment *segs, int n, const char *op)
{
    json_t *arr = json_array();
    for (int i = 0; arr && i < n; i++) {
        json_t *o = json_pack("{s:i, s:f, s:f, s:s}", "seg", segs[i].index, "start_s", segs[i].start_s, "end_s",
                              segs[i].end_s, "text", segs[i].text);
        if (!o || json_array_append_new(arr, o) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    char *text = arr ? json_dumps(arr, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(arr);
    if (!text) store_set_error("%s: out of memory (or a segment's text is not UTF-8)", op);
    return text;
}

static int pg_job_finish(struct store *s, int64_t id, const char *worker, const char *model,
                         const char *language, double time_s, const struct store_segment *segs, int n_segs)
{
    char key[24], now[32], t[32];
    snprintf(key, sizeof key, "%lld", (long long)id);
    store_now(now);
    snprintf(t, sizeof t, "%.17g", time_s);
    char *rows = segments_json(segs, n_segs, "store_job_finish");
    if (!rows) return HARK_ENOMEM;
    const char *params[7] = {key, now, or_empty(model), t, or_empty(language), worker, rows};
    int rc = update_running(from_store(s), sql_job_finish, 7, params, "store_job_finish", id);
    free(rows);
    return rc;
}

static int pg_job_fail(struct store *s, int64_t id, const char *worker, const char *error)
{
    char key[24], now[32];
    snprintf(key, sizeof key, "%lld", (long long)id);
    store_now(now);
    const char *params[4] = {key, or_empty(error), now, worker};
    return update_running(from_store(s), sql_job_fail, 4, params, "store_job_fail", id);
}

/* Runs a statement that changes jobs and announces each (a SELECT of
 * pg_notify over the changed rows): how many, or a negative code. */
static int64_t run_announce(struct pg_store *st, const char *sql, int n, const char *const *params,
                            const char *op, int *rc)
{
    PGresult *r = pool_run(st, sql, n, params, op, rc);
    if (!r) return -1;
    int64_t k = PQntuples(r);
    PQclear(r);
    return k;
}

static int pg_job_release(struct store *s, int64_t id, const char *worker)
{
    static const char op[] = "store_job_release";
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)id);
    const char *params[2] = {key, worker};
    int rc = 0;
    int64_t k = run_announce(from_store(s), sql_job_release, 2, params, op, &rc);
    if (k < 0) return rc;
    if (k == 0) {
        store_set_error("%s: job %lld is not running, or not for this worker", op, (long long)id);
        return HARK_ESTALE;
    }
    return 0;
}

static int pg_requeue_expired(struct store *s, int *n)
{
    int rc = 0;
    int64_t k = run_announce(from_store(s), sql_requeue_expired, 0, NULL, "store_requeue_expired",
                             &rc);
    if (k < 0) return rc;
    if (n) *n = (int)k;
    return 0;
}

/* Drains the notifications read so far: the STORE_NEWS_* bits heard. */
static int drain_notes(PGconn *c)
{
    int news = 0;
    PGnotify *note;
    while ((note = PQnotifies(c)) != NULL) {
        if (strcmp(note->relname, "hark_jobs") == 0) news |= STORE_NEWS_JOBS;
        else if (strcmp(note->relname, "hark_changes") == 0) news |= STORE_NEWS_CHANGES;
        PQfreemem(note);
    }
    return news;
}

/* Sleeps ms milliseconds (the wait's answer to a server it cannot reach,
 * so a caller that loops does not spin). */
static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* The listening connection: made (or remade after a loss) and subscribed
 * to hark_jobs and hark_changes. 0, 1 when it was (re)made now
 * (notifications may have been missed meanwhile), or a negative code.
 * Under listen_lock. */
static int listen_ready(struct pg_store *st, const char *op)
{
    if (st->listen && PQstatus(st->listen) == CONNECTION_OK) return 0;
    if (st->listen) {
        PQfinish(st->listen);
        st->listen = NULL;
    }
    int rc = conn_open(st->location, &st->listen, op);
    if (rc < 0) return rc;
    PGresult *r = PQexec(st->listen, "LISTEN hark_jobs; LISTEN hark_changes");
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = pg_fail(st->listen, r, op);
        PQclear(r);
        PQfinish(st->listen);
        st->listen = NULL;
        return rc;
    }
    PQclear(r);
    return 1;
}

static int pg_wait_news(struct store *s, int timeout_ms)
{
    static const char op[] = "store_wait_news";
    const int all = STORE_NEWS_JOBS | STORE_NEWS_CHANGES;
    struct pg_store *st = from_store(s);
    pthread_mutex_lock(&st->listen_lock);
    int rc = listen_ready(st, op);
    if (rc != 0) {
        pthread_mutex_unlock(&st->listen_lock);
        if (rc < 0) sleep_ms(timeout_ms);
        return rc < 0 ? rc : all;
    }
    PGconn *c = st->listen;
    int news = drain_notes(c);
    if (news == 0) {
        struct pollfd pfd = {PQsocket(c), POLLIN, 0};
        int k = poll(&pfd, 1, timeout_ms);
        if (k > 0) {
            /* Readable with nothing to consume: the server hung up. The
             * next wait reconnects; this one answers that anything may
             * have been missed. */
            if (!PQconsumeInput(c)) {
                store_set_error("%s: PostgreSQL: %s", op, PQerrorMessage(c));
                news = all;
            }
            news |= drain_notes(c);
        } else if (k < 0 && errno != EINTR) {
            store_set_error("%s: poll: %s", op, strerror(errno));
            rc = HARK_EIO;
        }
    }
    pthread_mutex_unlock(&st->listen_lock);
    return rc < 0 ? rc : news;
}

static int pg_job_cancel(struct store *s, int64_t id)
{
    static const char op[] = "store_job_cancel";
    struct pg_store *st = from_store(s);
    char key[24], now[32];
    snprintf(key, sizeof key, "%lld", (long long)id);
    store_now(now);
    const char *params[2] = {key, now};
    int slot, rc = conn_take(st, op, &slot);
    if (rc < 0) return rc;
    PGresult *r = run(&st->conns[slot], sql_job_cancel, 2, params, op, &rc, NULL);
    if (r) {
        if (val_i64(r, 0, 0) > 0) {
            rc = 0;
        } else if (val(r, 0, 1)[0] == 't') {
            store_set_error("%s: job %lld has already ended", op, (long long)id);
            rc = HARK_ESTALE;
        } else {
            store_set_error("%s: no job %lld", op, (long long)id);
            rc = HARK_ENOENT;
        }
        PQclear(r);
    }
    conn_give(st, slot);
    return rc;
}

static int pg_requeue_running(struct store *s, int *n)
{
    static const char op[] = "store_requeue_running";
    struct pg_store *st = from_store(s);
    int rc;
    int64_t k = pool_change(st, sql_requeue, 0, NULL, op, &rc);
    if (k < 0) return rc;
    if (n) *n = (int)k;
    return 0;
}

static int pg_jobs_in_state(struct store *s, const char *state, int64_t **ids, int *n)
{
    static const char op[] = "store_jobs_in_state";
    struct pg_store *st = from_store(s);
    const char *params[1] = {state};
    int rc;
    PGresult *r = pool_run(st, sql_jobs_in_state, 1, params, op, &rc);
    if (!r) return rc;
    int count = PQntuples(r);
    int64_t *out = NULL;
    if (count > 0) {
        out = malloc((size_t)count * sizeof *out);
        if (!out) {
            PQclear(r);
            store_set_error("%s: out of memory", op);
            return HARK_ENOMEM;
        }
        for (int i = 0; i < count; i++) out[i] = val_i64(r, i, 0);
    }
    PQclear(r);
    *ids = out;
    *n = count;
    return 0;
}

static int pg_stats(struct store *s, struct store_stats *out)
{
    static const char op[] = "store_stats";
    struct pg_store *st = from_store(s);
    int rc;
    PGresult *r = pool_run(st, sql_stats, 0, NULL, op, &rc);
    if (!r) return rc;
    out->uploads = val_i64(r, 0, 0);
    out->queued = val_i64(r, 0, 1);
    out->running = val_i64(r, 0, 2);
    out->done = val_i64(r, 0, 3);
    out->failed = val_i64(r, 0, 4);
    out->canceled = val_i64(r, 0, 5);
    PQclear(r);
    return 0;
}

/* ---------------------------------------------------------------- keys */

static void read_key(const PGresult *r, int row, struct store_key *k)
{
    memset(k, 0, sizeof *k);
    store_copy(k->name, sizeof k->name, val(r, row, 0));
    store_copy(k->created, sizeof k->created, val(r, row, 1));
    k->admin = val_i64(r, row, 2) != 0;
    store_copy(k->revoked, sizeof k->revoked, val(r, row, 3));
}

static int pg_key_add(struct store *s, const char *name, const char *hash, int admin)
{
    static const char op[] = "store_key_add";
    struct pg_store *st = from_store(s);
    char now[32];
    store_now(now);
    const char *params[4] = {name, hash, admin ? "1" : "0", now};
    int rc;
    int64_t k = pool_change(st, sql_key_add, 4, params, op, &rc);
    if (k < 0) return rc;
    if (k == 0) {
        store_set_error("%s: a key named '%.64s' exists (or existed)", op, name);
        return HARK_EEXIST;
    }
    return 0;
}

static int pg_key_list(struct store *s, struct store_key **rows, int *n)
{
    static const char op[] = "store_key_list";
    struct pg_store *st = from_store(s);
    int rc;
    PGresult *r = pool_run(st, sql_key_list, 0, NULL, op, &rc);
    if (!r) return rc;
    int count = PQntuples(r);
    struct store_key *out = NULL;
    if (count > 0) {
        out = malloc((size_t)count * sizeof *out);
        if (!out) {
            PQclear(r);
            store_set_error("%s: out of memory", op);
            return HARK_ENOMEM;
        }
        for (int i = 0; i < count; i++) read_key(r, i, &out[i]);
    }
    PQclear(r);
    *rows = out;
    *n = count;
    return 0;
}

static int pg_key_revoke(struct store *s, const char *name)
{
    static const char op[] = "store_key_revoke";
    struct pg_store *st = from_store(s);
    char now[32];
    store_now(now);
    const char *params[2] = {name, now};
    int rc;
    PGresult *r = pool_run(st, sql_key_revoke, 2, params, op, &rc);
    if (!r) return rc;
    int exists = strcmp(val(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!exists) {
        store_set_error("%s: no key named '%.64s'", op, name);
        return HARK_ENOENT;
    }
    return 0;
}

static int pg_key_find(struct store *s, const char *hash, struct store_key *out)
{
    static const char op[] = "store_key_find";
    struct pg_store *st = from_store(s);
    const char *params[1] = {hash};
    int rc;
    PGresult *r = pool_run(st, sql_key_find, 1, params, op, &rc);
    if (!r) return rc;
    rc = 0;
    if (PQntuples(r) > 0) {
        read_key(r, 0, out);
    } else {
        store_set_error("%s: no valid key with that hash", op);
        rc = HARK_ENOENT;
    }
    PQclear(r);
    return rc;
}

static int pg_key_count(struct store *s, int64_t *n)
{
    static const char op[] = "store_key_count";
    struct pg_store *st = from_store(s);
    int rc;
    PGresult *r = pool_run(st, sql_key_count, 0, NULL, op, &rc);
    if (!r) return rc;
    *n = val_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

/* ---------------------------------------------------------------- search */

static int pg_index_set(struct store *s, const char *upload_id, const struct store_segment *segs, int n_segs)
{
    static const char op[] = "store_index_set";
    char *rows = segments_json(segs, n_segs, op);
    if (!rows) return HARK_ENOMEM;
    const char *params[2] = {upload_id, rows};
    int rc;
    PGresult *r = pool_run(from_store(s), sql_index_set, 2, params, op, &rc);
    free(rows);
    if (!r) return rc;
    int found = val_i64(r, 0, 0) > 0;
    PQclear(r);
    if (!found) {
        store_set_error("%s: no upload '%.64s'", op, upload_id);
        return HARK_ENOENT;
    }
    return 0;
}

static int pg_search(struct store *s, const char *fts, const char *tsq, const char *owner, int limit,
                     int64_t offset, struct store_hit **hits, int *n, int64_t *total)
{
    static const char op[] = "store_search";
    struct pg_store *st = from_store(s);
    char lim[24], off[24];
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(off, sizeof off, "%lld", (long long)offset);
    const char *params[4] = {tsq, owner, lim, off};
    (void)fts;
    int rc;
    PGresult *r = pool_run(st, sql_search_count, 2, params, op, &rc);
    if (!r) return rc;
    int64_t all = val_i64(r, 0, 0);
    PQclear(r);
    r = pool_run(st, sql_search, 4, params, op, &rc);
    if (!r) return rc;
    int count = PQntuples(r);
    struct store_hit *out = count ? calloc((size_t)count, sizeof *out) : NULL;
    if (count && !out) rc = HARK_ENOMEM;
    for (int i = 0; i < count && out; i++) {
        struct store_hit *h = &out[i];
        store_copy(h->upload_id, sizeof h->upload_id, val(r, i, 0));
        store_copy(h->filename, sizeof h->filename, val(r, i, 1));
        h->segment = (int)val_i64(r, i, 2);
        h->start_s = val_f64(r, i, 3);
        h->end_s = val_f64(r, i, 4);
        h->score = val_f64(r, i, 5);
        h->text = strdup(val(r, i, 6));
        h->snippet = strdup(val(r, i, 7));
        if (!h->text || !h->snippet) rc = HARK_ENOMEM;
    }
    PQclear(r);
    if (rc == HARK_ENOMEM) {
        store_set_error("%s: out of memory", op);
        store_hits_free(out, count);
        return rc;
    }
    *hits = out;
    *n = count;
    if (total) *total = all;
    return 0;
}

static int pg_uploads_ran(struct store *s, char ***ids, int *n)
{
    static const char op[] = "store_uploads_ran";
    int rc;
    PGresult *r = pool_run(from_store(s), sql_uploads_ran, 0, NULL, op, &rc);
    if (!r) return rc;
    int count = PQntuples(r);
    char **out = count ? calloc((size_t)count, sizeof *out) : NULL;
    int ok = !count || out;
    for (int i = 0; ok && i < count; i++) ok = (out[i] = strdup(val(r, i, 0))) != NULL;
    PQclear(r);
    if (!ok) {
        for (int i = 0; out && i < count; i++) free(out[i]);
        free(out);
        store_set_error("%s: out of memory", op);
        return HARK_ENOMEM;
    }
    *ids = out;
    *n = count;
    return 0;
}

static int pg_job_segment_put(struct store *s, int64_t id, const char *worker, const struct store_job_segment *seg)
{
    char key[24], seq[16], window[32];
    snprintf(key, sizeof key, "%lld", (long long)id);
    snprintf(seq, sizeof seq, "%d", seg->seq);
    snprintf(window, sizeof window, "%.17g", seg->window_s);
    const char *params[6] = {key, seq, window, seg->language, seg->data, worker};
    return update_running(from_store(s), sql_job_segment_put, 6, params, "store_job_segment_put", id);
}

static int pg_job_segments(struct store *s, int64_t id, int after, int limit, struct store_job_segment **rows,
                           int *n)
{
    static const char op[] = "store_job_segments";
    char key[24], from[16], most[16];
    snprintf(key, sizeof key, "%lld", (long long)id);
    snprintf(from, sizeof from, "%d", after);
    snprintf(most, sizeof most, "%d", limit);
    const char *params[3] = {key, from, most};
    int rc;
    PGresult *r = pool_run(from_store(s), sql_job_segments, 3, params, op, &rc);
    if (!r) return rc;
    int count = PQntuples(r);
    struct store_job_segment *out = count ? calloc((size_t)count, sizeof *out) : NULL;
    int ok = !count || out;
    for (int i = 0; ok && i < count; i++) {
        out[i].seq = atoi(val(r, i, 0));
        out[i].window_s = strtod(val(r, i, 1), NULL);
        store_copy(out[i].language, sizeof out[i].language, val(r, i, 2));
        ok = (out[i].data = strdup(val(r, i, 3))) != NULL;
    }
    PQclear(r);
    if (!ok) {
        store_job_segments_free(out, count);
        store_set_error("%s: out of memory", op);
        return HARK_ENOMEM;
    }
    *rows = out;
    *n = count;
    return 0;
}

static int pg_job_checkpoint(struct store *s, int64_t id, const char *worker, double resume_s, int n_segments)
{
    char key[24], at[32], n[16];
    snprintf(key, sizeof key, "%lld", (long long)id);
    snprintf(at, sizeof at, "%.17g", resume_s);
    snprintf(n, sizeof n, "%d", n_segments);
    const char *params[4] = {key, at, n, worker};
    return update_running(from_store(s), sql_job_checkpoint, 4, params, "store_job_checkpoint", id);
}

static int pg_job_set_callback(struct store *s, int64_t id, const char *url)
{
    static const char op[] = "store_job_set_callback";
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)id);
    const char *params[2] = {key, url};
    int rc;
    int64_t k = pool_change(from_store(s), sql_job_set_callback, 2, params, op, &rc);
    if (k < 0) return rc;
    if (k == 0) {
        store_set_error("%s: no job %lld", op, (long long)id);
        return HARK_ENOENT;
    }
    return 0;
}

static int pg_callback_claim(struct store *s, int hold_ms, struct store_callback *out)
{
    char hold[16];
    snprintf(hold, sizeof hold, "%d", hold_ms);
    const char *params[1] = {hold};
    int rc;
    PGresult *r = pool_run(from_store(s), sql_callback_claim, 1, params, "store_callback_claim", &rc);
    if (!r) return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return HARK_EAGAIN;
    }
    memset(out, 0, sizeof *out);
    out->job_id = val_i64(r, 0, 0);
    store_copy(out->url, sizeof out->url, val(r, 0, 1));
    out->tries = (int)val_i64(r, 0, 2);
    store_copy(out->finished, sizeof out->finished, val(r, 0, 3));
    store_copy(out->state, sizeof out->state, val(r, 0, 4));
    PQclear(r);
    return 0;
}

static int pg_callback_record(struct store *s, int64_t id, int n, int status, const char *error, const char *state,
                              int retry_ms)
{
    char key[24], num[16], code[16], retry[16], err[256];
    snprintf(key, sizeof key, "%lld", (long long)id);
    snprintf(num, sizeof num, "%d", n);
    snprintf(code, sizeof code, "%d", status);
    snprintf(retry, sizeof retry, "%d", retry_ms);
    store_copy(err, sizeof err, error);
    const char *params[6] = {key, num, code, err, state, retry};
    int rc;
    return pool_change(from_store(s), sql_callback_record, 6, params, "store_callback_record", &rc) < 0 ? rc : 0;
}

static int pg_callback_attempts(struct store *s, int64_t id, struct store_callback_attempt **rows, int *n)
{
    static const char op[] = "store_callback_attempts";
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)id);
    const char *params[1] = {key};
    int rc;
    PGresult *r = pool_run(from_store(s), sql_callback_attempts, 1, params, op, &rc);
    if (!r) return rc;
    int count = PQntuples(r);
    struct store_callback_attempt *out = count ? calloc((size_t)count, sizeof *out) : NULL;
    if (count && !out) {
        PQclear(r);
        store_set_error("%s: out of memory", op);
        return HARK_ENOMEM;
    }
    for (int i = 0; i < count; i++) {
        out[i].n = (int)val_i64(r, i, 0);
        store_copy(out[i].at, sizeof out[i].at, val(r, i, 1));
        out[i].status = (int)val_i64(r, i, 2);
        store_copy(out[i].error, sizeof out[i].error, val(r, i, 3));
    }
    PQclear(r);
    *rows = out;
    *n = count;
    return 0;
}

static int pg_job_segments_trim(struct store *s, int64_t id, int from)
{
    char key[24], seq[16];
    snprintf(key, sizeof key, "%lld", (long long)id);
    snprintf(seq, sizeof seq, "%d", from);
    const char *params[2] = {key, seq};
    int rc;
    return pool_change(from_store(s), sql_job_segments_trim, 2, params, "store_job_segments_trim", &rc) < 0 ? rc : 0;
}

const struct store_backend store_postgres_backend = {
    .name = "postgres",
    .shared = 1,
    .open = pg_open,
    .close = pg_close,
    .upload_insert = pg_upload_insert,
    .upload_get = pg_upload_get,
    .upload_list = pg_upload_list,
    .upload_delete = pg_upload_delete,
    .job_enqueue = pg_job_enqueue,
    .job_get = pg_job_get,
    .job_active = pg_job_active,
    .job_claim = pg_job_claim,
    .job_heartbeat = pg_job_heartbeat,
    .job_progress = pg_job_progress,
    .job_finish = pg_job_finish,
    .job_fail = pg_job_fail,
    .job_release = pg_job_release,
    .job_cancel = pg_job_cancel,
    .requeue_running = pg_requeue_running,
    .requeue_expired = pg_requeue_expired,
    .wait_news = pg_wait_news,
    .jobs_in_state = pg_jobs_in_state,
    .stats = pg_stats,
    .key_add = pg_key_add,
    .key_list = pg_key_list,
    .key_revoke = pg_key_revoke,
    .key_find = pg_key_find,
    .key_count = pg_key_count,
    .index_set = pg_index_set,
    .search = pg_search,
    .uploads_ran = pg_uploads_ran,
    .job_segment_put = pg_job_segment_put,
    .job_segments = pg_job_segments,
    .job_segments_trim = pg_job_segments_trim,
    .job_checkpoint = pg_job_checkpoint,
    .job_set_callback = pg_job_set_callback,
    .callback_claim = pg_callback_claim,
    .callback_record = pg_callback_record,
    .callback_attempts = pg_callback_attempts,
};
