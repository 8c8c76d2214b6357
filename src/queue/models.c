/*
 * models.c: the models folder. A model is a ggml file in the folder, named
 * by its file name without whisper.cpp's "ggml-" prefix and the ".bin"
 * suffix, so "ggml-base.en.bin" and "base.en.bin" are both "base.en".
 *
 * Names come from HTTP requests, so finding one is strict: a name never
 * leaves the folder (no '/', no "..", no hidden file). Only the operator
 * (the command line, the server's default model) may also give a path
 * containing '/', which must still be a regular .bin file and contain no
 * "..". Everything refused is HARK_ENOENT, the same answer as a model that
 * does not exist, so a caller cannot probe the file system through the
 * difference.
 *
 * Speech-detection models (Silero VAD, "ggml-silero-v6.2.0.bin") live in
 * the same folder but are not Whisper models: they are never listed or
 * resolved as one, and models_find_vad finds them.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "queue.h"

#define PREFIX "ggml-"
#define SUFFIX ".bin"

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static int is_regular_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void models_list_free(char **names, int n)
{
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

int models_is_vad(const char *name)
{
    if (!name) return 0;
    if (strncmp(name, PREFIX, strlen(PREFIX)) == 0) name += strlen(PREFIX);
    return strncmp(name, "silero", 6) == 0;
}

int models_list(const char *dir, char ***names, int *n)
{
    DIR *d;
    struct dirent *e;
    char **out = NULL, path[PATH_MAX];
    int count = 0, cap = 0, rc = 0;

    if (!names || !n) return HARK_EINVAL;
    *names = NULL;
    *n = 0;
    if (!dir || !*dir || !(d = opendir(dir))) return 0;
    while ((e = readdir(d)) != NULL) {
        const char *base = e->d_name;
        size_t len;
        if (base[0] == '.' || !ends_with(base, SUFFIX)) continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, base) >= (int)sizeof path) continue;
        if (!is_regular_file(path)) continue;
        if (strncmp(base, PREFIX, strlen(PREFIX)) == 0) base += strlen(PREFIX);
        len = strlen(base) - strlen(SUFFIX);
        if (len == 0 || models_is_vad(base)) continue;
        if (count == cap) {
            int grown = cap ? cap * 2 : 16;
            char **p = realloc(out, (size_t)grown * sizeof *p);
            if (!p) {
                rc = HARK_ENOMEM;
                goto fail;
            }
            out = p;
            cap = grown;
        }
        if (!(out[count] = malloc(len + 1))) {
            rc = HARK_ENOMEM;
            goto fail;
        }
        memcpy(out[count], base, len);
        out[count][len] = 0;
        count++;
    }
    closedir(d);
    d = NULL;
    if (count > 1) qsort(out, (size_t)count, sizeof *out, cmp_names);
    /* "ggml-x.bin" and "x.bin" are both "x": keep one. */
    int kept = 0;
    for (int i = 0; i < count; i++) {
        if (kept > 0 && strcmp(out[kept - 1], out[i]) == 0) {
            free(out[i]);
            continue;
        }
        out[kept++] = out[i];
    }
    *names = out;
    *n = kept;
    return 0;
fail:
    if (d) closedir(d);
    models_list_free(out, count);
    return rc;
}

int models_find(const char *dir, const char *name, char *path, size_t pathlen)
{
    if (!name || !*name || !path || pathlen == 0) return HARK_ENOENT;
    path[0] = 0;
    if (!dir || !*dir || name[0] == '.' || strchr(name, '/') || strstr(name, "..") || models_is_vad(name))
        return HARK_ENOENT;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return HARK_ENOENT;
    static const char *const forms[] = {"%s/" PREFIX "%s" SUFFIX, "%s/%s" SUFFIX};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        int len = snprintf(path, pathlen, forms[i], dir, name);
        if (len < 0 || (size_t)len >= pathlen) continue;
        if (is_regular_file(path)) return 0;
    }
    path[0] = 0;
    return HARK_ENOENT;
}

int models_resolve(const char *dir, const char *name, char *path, size_t pathlen)
{
    if (!name || !strchr(name, '/')) return models_find(dir, name, path, pathlen);
    if (!path || pathlen == 0) return HARK_ENOENT;
    path[0] = 0;
    if (strstr(name, "..") || !ends_with(name, SUFFIX) || !is_regular_file(name)) return HARK_ENOENT;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return HARK_ENOENT;
    if (strlen(name) >= pathlen) return HARK_ENOENT;
    memcpy(path, name, strlen(name) + 1);
    return 0;
}

int models_find_vad(const char *dir, char *path, size_t pathlen)
{
    DIR *d;
    struct dirent *e;
    char best[256] = "", cand[PATH_MAX];
    int best_rank = -1;
    if (!path || pathlen == 0) return HARK_EINVAL;
    path[0] = 0;
    if (!dir || !*dir || !(d = opendir(dir))) return HARK_ENOENT;
    /* The newest known release first, then any other by name. */
    while ((e = readdir(d)) != NULL) {
        const char *base = e->d_name;
        if (base[0] == '.' || !ends_with(base, SUFFIX) || !models_is_vad(base) || strlen(base) >= sizeof best) continue;
        if (snprintf(cand, sizeof cand, "%s/%s", dir, base) >= (int)sizeof cand || !is_regular_file(cand)) continue;
        int rank = strstr(base, "silero-v6.2.0") ? 2 : 1;
        if (rank > best_rank || (rank == best_rank && strcmp(base, best) > 0)) {
            best_rank = rank;
            snprintf(best, sizeof best, "%s", base);
        }
    }
    closedir(d);
    if (best_rank < 0) return HARK_ENOENT;
    int len = snprintf(path, pathlen, "%s/%s", dir, best);
    if (len < 0 || (size_t)len >= pathlen) {
        path[0] = 0;
        return HARK_ENOENT;
    }
    return 0;
}
