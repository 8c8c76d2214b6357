/*
 * harness.c: see harness.h.
 */
#include "harness.h"

#include "hark.h"

#include <dirent.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>

static int n_passed, n_failed, failed_now;
static const char *filter;
static const char *current;

void t_init(int argc, char **argv)
{
    filter = argc > 1 ? argv[1] : NULL;
    setvbuf(stdout, NULL, _IOLBF, 0);
}

void t_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    failed_now = 1;
    printf("  %s:%d: %s: ", file, line, current ? current : "?");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

int t_failed_now(void) { return failed_now; }

void t_run(const char *name, void (*fn)(void))
{
    if (filter && !strstr(name, filter)) return;
    current = name;
    failed_now = 0;
    fn();
    if (failed_now) {
        n_failed++;
        printf("FAIL %s\n", name);
    } else {
        n_passed++;
        printf("PASS %s\n", name);
    }
    current = NULL;
}

void t_skip(const char *name, const char *why)
{
    if (filter && !strstr(name, filter)) return;
    printf("SKIP %s: %s\n", name, why);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static char tmpdir[256];

int t_summary(void)
{
    if (tmpdir[0]) nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}

const char *t_shared(const char *kind, const char *name)
{
    static char buf[4096];
    const char *dir = NULL;
    if (!strcmp(kind, "models")) dir = getenv("HARK_TEST_MODELS");
    else if (!strcmp(kind, "media")) dir = getenv("HARK_TEST_MEDIA");
    else if (!strcmp(kind, "audio")) dir = getenv("HARK_TEST_AUDIO");
    if (dir && *dir) {
        snprintf(buf, sizeof buf, "%s/%s", dir, name);
    } else {
        const char *root = getenv("HARK_SHARED");
        if (!root || !*root) root = "../shared";
        snprintf(buf, sizeof buf, "%s/%s/%s", root, kind, name);
    }
    return buf;
}

struct hark_model *t_load_model(const char *name)
{
    char err[512];
    hark_model *m = hark_model_load(t_shared("models", name), NULL, err, sizeof err);
    CHECKF(m != NULL, "load %s: %s", name, err);
    return m;
}

void t_cli_greedy_options(struct hark_options *o)
{
    hark_options_init(o);
    o->decoder = HARK_DECODER_WHISPER_CPP;
    o->beam_size = 1;
    o->best_of = 1;
    o->no_fallback = 1;
    o->language = "en";
}

void *t_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) goto fail;
    buf = malloc((size_t)n + 1);
    if (!buf) goto fail;
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) goto fail;
    buf[n] = 0;
    if (len) *len = (size_t)n;
    fclose(f);
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

const char *t_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/hark-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return tmpdir;
}

int t_count_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}
