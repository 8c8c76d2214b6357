/*
 * test_datadir.c: the data folder (datadir.h): stored names, adopting an
 * upload, opening its files, replacing a result set, and the start-up
 * sweep against a real SQLite store.
 *
 * Every test works in a folder of its own under the program's temporary
 * folder; what it expects on disk is what it put there itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "datadir.h"
#include "harness.h"
#include "hark.h"
#include "result.h"
#include "store.h"

#define ID "0b7c2d9e-4c7f-4e0a-9d55-3f6a1c2b8e01"

static int n_case;

/* A new data folder made by datadir_make. */
static const char *new_data(char *buf, size_t len)
{
    char err[256] = "";
    snprintf(buf, len, "%s/data%d", t_tmpdir(), ++n_case);
    CHECKF(datadir_make(buf, err, sizeof err) == 0, "datadir_make: %s", err);
    return buf;
}

static void put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECKF(f != NULL, "cannot write %s", path);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void test_clean_name(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"talk.mp4", "talk.mp4"},
        {"../../etc/passwd", "passwd"},
        {"C:\\Users\\me\\clip.wav", "clip.wav"},
        {"...hidden.mp4", "hidden.mp4"},
        {"a b&c.mp4", "a_b_c.mp4"},
        {"results.json", "media-results.json"},
        {"", "media"},
        {"dir/", "media"},
        {"\xc3\xa9t\xc3\xa9.wav", "__t__.wav"},
    };
    char out[256], longname[400];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        datadir_clean_name(cases[i].in, out, sizeof out);
        CHECKF(!strcmp(out, cases[i].want), "%s -> %s, want %s", cases[i].in, out, cases[i].want);
    }
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    datadir_clean_name(longname, out, sizeof out);
    CHECK(strlen(out) == 200);
}

static void test_result_format(void)
{
    CHECK(datadir_result_format("results.json") == hark_format_of(HARK_FORMAT_JSON));
    CHECK(datadir_result_format("results.srt") == hark_format_of(HARK_FORMAT_SRT));
    CHECK(datadir_result_format("results.vtt") == hark_format_of(HARK_FORMAT_VTT));
    CHECK(datadir_result_format("results.txt") == hark_format_of(HARK_FORMAT_TXT));
    CHECK(datadir_result_format("results.tsv") == NULL);  /* not kept */
    CHECK(datadir_result_format("results.text") == NULL); /* a name, not a file */
    CHECK(datadir_result_format("talk.json") == NULL);
    CHECK(datadir_result_format("results.") == NULL);
    char name[32];
    datadir_result_name(hark_format_of(HARK_FORMAT_VTT), name, sizeof name);
    CHECK(!strcmp(name, "results.vtt"));
    CHECK(datadir_result_format(name) == hark_format_of(HARK_FORMAT_VTT));
}

/* An upload moves from its temporary name into its folder, can be opened
 * there (but not through a link or as a dot file), and goes with its
 * folder. */
static void test_adopt_open_remove(void)
{
    char data[512], tmpl[600], secret[600], path[DATADIR_PATH_MAX], err[256] = "";
    int fd;
    new_data(data, sizeof data);
    datadir_upload_template(data, tmpl, sizeof tmpl);
    CHECK(!strcmp(tmpl + strlen(tmpl) - 6, "XXXXXX"));
    fd = mkstemp(tmpl);
    CHECKF(fd >= 0, "mkstemp %s: %s", tmpl, strerror(errno));
    if (fd < 0) return;
    CHECK(write(fd, "media", 5) == 5);
    close(fd);
    CHECKF(datadir_upload_adopt(data, ID, "talk.mp4", tmpl, err, sizeof err) == 0, "%s", err);
    CHECK(!exists(tmpl));
    CHECK(datadir_upload_path(data, ID, "talk.mp4", path, sizeof path) == 0 && exists(path));

    fd = datadir_upload_open(data, ID, "talk.mp4");
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    /* A link to a file outside, and a dot file, are never opened. */
    snprintf(secret, sizeof secret, "%s/secret", data);
    put_file(secret, "secret");
    CHECK(datadir_upload_path(data, ID, "link.mp4", path, sizeof path) == 0 && symlink(secret, path) == 0);
    errno = 0;
    CHECK(datadir_upload_open(data, ID, "link.mp4") < 0 && errno == ELOOP);
    CHECK(datadir_upload_path(data, ID, ".results.json.1-1.tmp", path, sizeof path) == 0);
    put_file(path, "{}");
    CHECK(datadir_upload_open(data, ID, ".results.json.1-1.tmp") < 0);
    CHECK(datadir_upload_open(data, ID, "../secret") < 0);
    CHECK(datadir_upload_open(data, ID, "") < 0);
    CHECK(datadir_upload_open(data, "no-such-upload", "talk.mp4") < 0);

    /* A second adopt into the same folder fails and leaves the temporary. */
    datadir_upload_template(data, tmpl, sizeof tmpl);
    fd = mkstemp(tmpl);
    if (fd >= 0) close(fd);
    CHECK(datadir_upload_adopt(data, ID, "again.mp4", tmpl, err, sizeof err) == HARK_EIO);
    CHECK(strstr(err, "cannot store the upload: ") == err && !strstr(err, data));
    CHECK(exists(tmpl));

    datadir_upload_remove(data, ID);
    CHECK(datadir_upload_path(data, ID, NULL, path, sizeof path) == 0 && !exists(path));
    CHECK(exists(secret)); /* the link's target stays */
    datadir_upload_remove(data, ID); /* already gone: fine */
}

/* A result set replaces the earlier one whole, and a failed write leaves the
 * earlier one as it was with no temporaries. */
static void test_results(void)
{
    char data[512], dir[DATADIR_PATH_MAX], path[DATADIR_PATH_MAX], err[512] = "";
    struct hark_result *r = calloc(1, sizeof *r);
    size_t len = 0;
    char *text;
    new_data(data, sizeof data);
    CHECK(datadir_upload_path(data, ID, NULL, dir, sizeof dir) == 0 && mkdir(dir, 0755) == 0);
    CHECK(datadir_upload_path(data, ID, "talk.mp4", path, sizeof path) == 0);
    put_file(path, "media");

    CHECKF(datadir_results_write(data, ID, "7-1", r, err, sizeof err) == 0, "%s", err);
    CHECK(t_count_files(dir) == 5); /* the media and four temporaries */
    CHECK(datadir_upload_path(data, ID, ".results.json.7-1.tmp", path, sizeof path) == 0 && exists(path));
    CHECKF(datadir_results_commit(data, ID, "7-1", err, sizeof err) == 0, "%s", err);
    CHECK(t_count_files(dir) == 5);
    static const char *const names[] = {"results.json", "results.srt", "results.vtt", "results.txt"};
    for (int i = 0; i < 4; i++) {
        CHECK(datadir_upload_path(data, ID, names[i], path, sizeof path) == 0 && exists(path));
    }
    CHECK(datadir_upload_path(data, ID, "results.json", path, sizeof path) == 0);
    text = t_read_file(path, &len);
    CHECK(text && len > 0 && text[0] == '{');
    free(text);

    /* A write into a folder that cannot take files fails, and the set in
     * place stays. */
    if (geteuid() != 0) {
        chmod(dir, 0555);
        CHECK(datadir_results_write(data, ID, "8-1", r, err, sizeof err) == HARK_EIO);
        chmod(dir, 0755);
        CHECK(t_count_files(dir) == 5);
    }

    /* A commit with no temporaries fails at its first rename and leaves
     * the set in place; one that fails half-way leaves no result file, not
     * a mix of two runs. */
    CHECK(datadir_results_commit(data, ID, "9-1", err, sizeof err) == HARK_EIO);
    CHECK(strstr(err, "cannot rename") != NULL);
    CHECK(t_count_files(dir) == 5);
    CHECK(datadir_results_write(data, ID, "9-2", r, err, sizeof err) == 0);
    CHECK(datadir_upload_path(data, ID, ".results.vtt.9-2.tmp", path, sizeof path) == 0 && unlink(path) == 0);
    CHECK(datadir_results_commit(data, ID, "9-2", err, sizeof err) == HARK_EIO);
    CHECK(t_count_files(dir) == 1);

    /* Removing one claim's temporaries leaves another claim's. */
    CHECK(datadir_results_write(data, ID, "10-1", r, err, sizeof err) == 0);
    CHECK(datadir_results_write(data, ID, "10-2", r, err, sizeof err) == 0);
    datadir_results_remove(data, ID, "10-1", 0);
    CHECK(t_count_files(dir) == 5);
    CHECK(datadir_results_commit(data, ID, "10-2", err, sizeof err) == 0);
    datadir_results_remove(data, ID, "10-2", 1);
    CHECK(t_count_files(dir) == 1);
    free(r);
}

/* The sweep: a folder with a row keeps its files but loses old dot files;
 * a folder without a row goes; tmp/ is emptied; with a minimum age, recent
 * things stay. */
static void test_sweep(void)
{
    char data[512], db[600], path[DATADIR_PATH_MAX], err[256] = "";
    struct store *s = NULL;
    struct store_upload u;
    static const char *orphan = "1e3f7a52-9b1d-4c0e-8f2a-6d4b3c2a1f00";
    struct timeval old[2] = {{1000000000, 0}, {1000000000, 0}};

    new_data(data, sizeof data);
    datadir_database(data, db, sizeof db);
    CHECKF(store_open(db, &s, err, sizeof err) == 0, "%s", err);
    if (!s) return;
    memset(&u, 0, sizeof u);
    snprintf(u.id, sizeof u.id, "%s", ID);
    snprintf(u.filename, sizeof u.filename, "talk.mp4");
    snprintf(u.sha256, sizeof u.sha256, "%064d", 1);
    snprintf(u.content_type, sizeof u.content_type, "video/mp4");
    snprintf(u.upload_date, sizeof u.upload_date, "2026-01-01T00:00:00Z");
    CHECK(store_upload_insert(s, &u, NULL) == 0);

    CHECK(datadir_upload_path(data, ID, NULL, path, sizeof path) == 0 && mkdir(path, 0755) == 0);
    CHECK(datadir_upload_path(data, ID, "talk.mp4", path, sizeof path) == 0);
    put_file(path, "media");
    CHECK(datadir_upload_path(data, ID, ".results.json.3-1.tmp", path, sizeof path) == 0);
    put_file(path, "{");
    CHECK(datadir_upload_path(data, orphan, NULL, path, sizeof path) == 0 && mkdir(path, 0755) == 0);
    CHECK(datadir_upload_path(data, orphan, "x.mp4", path, sizeof path) == 0);
    put_file(path, "media");
    snprintf(path, sizeof path, "%s/tmp/up-abc123", data);
    put_file(path, "partial");

    /* Everything is recent: a minimum age of an hour keeps it all. */
    CHECK(datadir_sweep(s, data, 3600) == 0);
    CHECK(exists(path));
    /* Made old, the temporary and the dot file go, and so does the
     * orphan folder. */
    utimes(path, old);
    CHECK(datadir_upload_path(data, ID, ".results.json.3-1.tmp", path, sizeof path) == 0);
    utimes(path, old);
    CHECK(datadir_upload_path(data, orphan, NULL, path, sizeof path) == 0);
    utimes(path, old);
    CHECK(datadir_sweep(s, data, 3600) == 1);
    CHECK(!exists(path));
    CHECK(datadir_upload_path(data, ID, ".results.json.3-1.tmp", path, sizeof path) == 0 && !exists(path));
    CHECK(datadir_upload_path(data, ID, "talk.mp4", path, sizeof path) == 0 && exists(path));
    snprintf(path, sizeof path, "%s/tmp/up-abc123", data);
    CHECK(!exists(path));
    /* Without a minimum age, a folder whose row was deleted goes at once. */
    CHECK(store_upload_delete(s, ID) == 0);
    CHECK(datadir_sweep(s, data, 0) == 1);
    CHECK(datadir_upload_path(data, ID, NULL, path, sizeof path) == 0 && !exists(path));
    store_close(s);
}

static void test_make_check(void)
{
    char data[512], path[600], err[700] = "";
    snprintf(data, sizeof data, "%s/absent", t_tmpdir());
    CHECK(datadir_check(data, err, sizeof err) == HARK_ENOENT);
    CHECK(strstr(err, "no data folder") && strstr(err, "/absent/db"));
    CHECK(datadir_make(data, err, sizeof err) == 0);
    CHECK(datadir_check(data, err, sizeof err) == 0);
    CHECK(datadir_make(data, err, sizeof err) == 0); /* again: fine */
    /* A file where a folder should be. */
    snprintf(data, sizeof data, "%s/blocked", t_tmpdir());
    CHECK(mkdir(data, 0755) == 0);
    snprintf(path, sizeof path, "%s/db", data);
    put_file(path, "not a folder");
    CHECK(datadir_make(data, err, sizeof err) == HARK_EIO);
    CHECK(strstr(err, "cannot create the folder") && strstr(err, "/blocked/db"));
    CHECK(datadir_check(data, err, sizeof err) == HARK_ENOENT);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("clean_name", test_clean_name);
    t_run("result_format", test_result_format);
    t_run("adopt_open_remove", test_adopt_open_remove);
    t_run("results", test_results);
    t_run("sweep", test_sweep);
    t_run("make_check", test_make_check);
    return t_summary();
}
