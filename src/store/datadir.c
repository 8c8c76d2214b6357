/*
 * datadir.c: the data folder's layout, its temporary names, the atomic
 * replacement of a result set and the start-up sweep (see datadir.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "datadir.h"
#include "store.h"

#define RESULT_PREFIX "results."

static int fail(char *err, size_t errlen, int rc, const char *what, const char *path, int e)
{
    if (err && errlen) snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
    return rc;
}

static int make_dir(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (mkdir(path, 0755) == 0 || errno == EEXIST) {
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
        errno = ENOTDIR;
    }
    return fail(err, errlen, HARK_EIO, "cannot create the folder", path, errno);
}

int datadir_make(const char *data, char *err, size_t errlen)
{
    char path[DATADIR_PATH_MAX];
    int rc = make_dir(data, err, errlen);
    snprintf(path, sizeof path, "%s/db", data);
    if (!rc) rc = make_dir(path, err, errlen);
    snprintf(path, sizeof path, "%s/tmp", data);
    if (!rc) rc = make_dir(path, err, errlen);
    return rc;
}

int datadir_check(const char *data, char *err, size_t errlen)
{
    char path[DATADIR_PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/db", data);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    snprintf(err, errlen, "no data folder %s (it is made by `hark serve`; on this machine, mount the shared one "
             "at the same path)", path);
    return HARK_ENOENT;
}

void datadir_database(const char *data, char *out, size_t len)
{
    snprintf(out, len, "%s/hark.db", data);
}

void datadir_upload_template(const char *data, char *out, size_t len)
{
    snprintf(out, len, "%s/tmp/up-XXXXXX", data);
}

void datadir_clean_name(const char *in, char *out, size_t len)
{
    const char *base = in, *p;
    size_t n = 0;
    for (p = in; *p; p++)
        if (*p == '/' || *p == '\\') base = p + 1;
    while (*base == '.') base++;
    if (!strncmp(base, RESULT_PREFIX, strlen(RESULT_PREFIX))) n = (size_t)snprintf(out, len, "media-");
    for (p = base; *p && n + 1 < len && n < 200; p++) {
        char ch = *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '_' || ch == '-';
        out[n++] = ok ? ch : '_';
    }
    out[n] = 0;
    if (!n) snprintf(out, len, "media");
}

int datadir_upload_path(const char *data, const char *id, const char *name, char *out, size_t len)
{
    int n = name ? snprintf(out, len, "%s/db/%s/%s", data, id, name) : snprintf(out, len, "%s/db/%s", data, id);
    return n < 0 || (size_t)n >= len ? HARK_EINVAL : 0;
}

int datadir_upload_adopt(const char *data, const char *id, const char *name, const char *tmp_path,
                         char *err, size_t errlen)
{
    char dir[DATADIR_PATH_MAX], path[DATADIR_PATH_MAX];
    int e;
    if (datadir_upload_path(data, id, NULL, dir, sizeof dir) || datadir_upload_path(data, id, name, path, sizeof path)) {
        snprintf(err, errlen, "cannot store the upload: %s", strerror(ENAMETOOLONG));
        return HARK_EINVAL;
    }
    if (mkdir(dir, 0755) == 0) {
        if (rename(tmp_path, path) == 0) return 0;
        e = errno;
        rmdir(dir);
    } else {
        e = errno;
    }
    snprintf(err, errlen, "cannot store the upload: %s", strerror(e));
    return HARK_EIO;
}

/* Whether a file was last changed at least min_age seconds ago. */
static int old_enough(int dfd, const char *name, int min_age)
{
    struct stat st;
    if (min_age <= 0) return 1;
    return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && time(NULL) - st.st_mtime >= min_age;
}

/* Removes the plain files of a folder whose names start with prefix ("" for
 * all) and that are at least min_age seconds old. */
static void remove_files(const char *path, const char *prefix, int min_age)
{
    DIR *d = opendir(path);
    struct dirent *e;
    if (!d) return;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && !strncmp(e->d_name, prefix, strlen(prefix)) &&
            old_enough(dirfd(d), e->d_name, min_age))
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
}

void datadir_upload_remove(const char *data, const char *id)
{
    char dir[DATADIR_PATH_MAX];
    if (datadir_upload_path(data, id, NULL, dir, sizeof dir)) return;
    remove_files(dir, "", 0);
    rmdir(dir);
}

int datadir_upload_open(const char *data, const char *id, const char *name)
{
    char dir[DATADIR_PATH_MAX];
    int dfd, fd, e;
    if (!name[0] || name[0] == '.' || strchr(name, '/') || datadir_upload_path(data, id, NULL, dir, sizeof dir)) {
        errno = ENOENT;
        return -1;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) return -1;
    fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    e = errno;
    close(dfd);
    errno = e;
    return fd;
}

void datadir_result_name(const struct hark_format_info *f, char *out, size_t len)
{
    snprintf(out, len, RESULT_PREFIX "%s", f->ext);
}

const struct hark_format_info *datadir_result_format(const char *name)
{
    const struct hark_format_info *f;
    if (strncmp(name, RESULT_PREFIX, strlen(RESULT_PREFIX))) return NULL;
    f = hark_format_find(name + strlen(RESULT_PREFIX));
    return f && f->stored && !strcmp(f->ext, name + strlen(RESULT_PREFIX)) ? f : NULL;
}

/* ------------------------------------------------------------ result sets */

/* The stored formats: the engine's table lists them first. */
static int n_results(void)
{
    int n = 0;
    while (hark_format_at(n) && hark_format_at(n)->stored) n++;
    return n;
}

/* Result file i's final and temporary paths for one claim. */
static int result_paths(const char *data, const char *id, const char *tag, int i, char *final, char *tmp)
{
    char name[64], temp[128];
    datadir_result_name(hark_format_at(i), name, sizeof name);
    snprintf(temp, sizeof temp, ".%s.%.40s.tmp", name, tag);
    if (datadir_upload_path(data, id, temp, tmp, DATADIR_PATH_MAX)) return HARK_EINVAL;
    return datadir_upload_path(data, id, name, final, DATADIR_PATH_MAX);
}

void datadir_results_remove(const char *data, const char *id, const char *tag, int all)
{
    char final[DATADIR_PATH_MAX], tmp[DATADIR_PATH_MAX];
    for (int i = 0; i < n_results(); i++) {
        if (result_paths(data, id, tag, i, final, tmp)) continue;
        unlink(tmp);
        if (all) unlink(final);
    }
}

int datadir_results_write(const char *data, const char *id, const char *tag, const hark_result *r, char *err,
                          size_t errlen)
{
    char final[DATADIR_PATH_MAX], tmp[DATADIR_PATH_MAX];
    int rc = 0;
    for (int i = 0; i < n_results(); i++) {
        FILE *f;
        if (result_paths(data, id, tag, i, final, tmp)) {
            rc = fail(err, errlen, HARK_EINVAL, "cannot write the results of", id, ENAMETOOLONG);
            goto fail;
        }
        if (!(f = fopen(tmp, "w"))) {
            rc = fail(err, errlen, HARK_EIO, "cannot write", tmp, errno);
            goto fail;
        }
        /* The first failing call's errno says why (a full disk is ENOSPC,
         * from a write or only from the fsync). */
        errno = 0;
        rc = hark_result_write(r, hark_format_at(i)->fmt, f);
        int e = rc == HARK_EIO ? errno : 0;
        if (!rc && (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0)) {
            rc = HARK_EIO;
            e = errno;
        }
        if (fclose(f) != 0 && !rc) {
            rc = HARK_EIO;
            e = errno;
        }
        if (rc) {
            snprintf(err, errlen, "cannot write %s: %s", tmp, e ? strerror(e) : hark_strerror(rc));
            goto fail;
        }
    }
    return 0;
fail:
    datadir_results_remove(data, id, tag, 0);
    return rc;
}

int datadir_results_commit(const char *data, const char *id, const char *tag, char *err, size_t errlen)
{
    char final[DATADIR_PATH_MAX], tmp[DATADIR_PATH_MAX];
    int rc = 0, renamed = 0;
    for (int i = 0; i < n_results(); i++) {
        if (result_paths(data, id, tag, i, final, tmp) || rename(tmp, final) != 0) {
            rc = fail(err, errlen, HARK_EIO, "cannot rename", tmp, errno);
            goto fail;
        }
        renamed = 1;
    }
    return 0;
fail:
    datadir_results_remove(data, id, tag, renamed);
    return rc;
}

/* ------------------------------------------------------------------- sweep */

int datadir_sweep(struct store *store, const char *data, int min_age)
{
    char path[DATADIR_PATH_MAX];
    DIR *d;
    struct dirent *e;
    int orphans = 0;
    snprintf(path, sizeof path, "%s/tmp", data);
    remove_files(path, "", min_age);
    snprintf(path, sizeof path, "%s/db", data);
    d = opendir(path);
    if (!d) return 0;
    while ((e = readdir(d))) {
        struct store_upload u;
        int rc;
        if (e->d_name[0] == '.' || datadir_upload_path(data, e->d_name, NULL, path, sizeof path)) continue;
        rc = strlen(e->d_name) < sizeof u.id ? store_upload_get(store, e->d_name, &u) : HARK_ENOENT;
        if (rc == 0) {
            remove_files(path, ".", min_age);
        } else if (rc == HARK_ENOENT && old_enough(dirfd(d), e->d_name, min_age)) {
            remove_files(path, "", 0);
            if (rmdir(path) == 0) orphans++;
        }
    }
    closedir(d);
    return orphans;
}
