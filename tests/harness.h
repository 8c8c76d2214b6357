/*
 * harness.h: the minimal test harness every test program links.
 *
 * A test program runs named test functions with t_run(); a test fails when
 * any CHECK in it fails (the failure is printed with file and line, and the
 * test goes on so one run shows every broken check). Each test prints one
 * line "PASS name" or "FAIL name"; tests/run.sh counts those lines over
 * every program, and a program that crashes counts as one more failure.
 * An optional argument to a test program runs only the tests whose names
 * contain it.
 */
#ifndef HARK_TEST_HARNESS_H
#define HARK_TEST_HARNESS_H

#include <stddef.h>
#include <stdio.h>

void t_init(int argc, char **argv);
void t_run(const char *name, void (*fn)(void));
void t_skip(const char *name, const char *why);
int t_summary(void); /* prints "N passed, N failed" for this program; returns the exit code */

void t_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int t_failed_now(void); /* 1 if the running test has failed so far */

#define CHECK(cond)                                                   \
    do {                                                              \
        if (!(cond)) t_fail(__FILE__, __LINE__, "%s", #cond);         \
    } while (0)

#define CHECKF(cond, ...)                                             \
    do {                                                              \
        if (!(cond)) t_fail(__FILE__, __LINE__, __VA_ARGS__);         \
    } while (0)

/* Path of a file in the shared test data: kind is "models", "audio",
 * "media", "reference" or "meta"; HARK_TEST_MODELS / HARK_TEST_MEDIA /
 * HARK_TEST_AUDIO override their folders, HARK_SHARED the whole root
 * (default ../shared relative to the repository root). Returns a static
 * buffer overwritten by the next call. */
const char *t_shared(const char *kind, const char *name);

/* Loads a model from the shared models folder (t_shared("models", name)).
 * A failed load fails the running test, with the loader's reason, and
 * returns NULL. */
struct hark_model;
struct hark_model *t_load_model(const char *name);

/* Fills options as the reference whisper-cli runs were made: the
 * whisper.cpp profile, greedy (one candidate), no temperature fallback,
 * English. */
struct hark_options;
void t_cli_greedy_options(struct hark_options *o);

/* Reads a whole file into a malloc'ed buffer (NUL-terminated); NULL if it
 * cannot be read. */
void *t_read_file(const char *path, size_t *len);

/* Entries in a folder, "." and ".." left out; -1 if it cannot be read. */
int t_count_files(const char *dir);

/* A fresh temporary directory for this program, removed with its contents
 * by t_summary(); a static buffer. */
const char *t_tmpdir(void);

#endif
