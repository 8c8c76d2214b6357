/*
 * test_nomem.c: the engine when memory runs out. Linked with the engine's
 * calls to malloc, calloc, realloc, aligned_alloc and strdup wrapped (the
 * Makefile's -Wl,--wrap), so that the Nth allocation after arm() fails.
 * For every N along loading a model, making a state, detecting speech and
 * transcribing a short clip with word timestamps: the call either succeeds
 * (N past its last allocation) or returns HARK_ENOMEM with a one-line
 * reason, leaves nothing half made, and the next call with memory to spare
 * succeeds. Under the sanitizers the leak checker then finds nothing left.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "hark.h"
#include "wav.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
char *__real_strdup(const char *s);

/* Allocations left before the failing one; -1: none fails. */
static atomic_long budget = -1;
static atomic_int failed_one;
static atomic_long taken; /* allocations since arm() */

static int take(void)
{
    long left = atomic_load(&budget);
    if (left >= 0) atomic_fetch_add(&taken, 1);
    while (left >= 0) {
        if (atomic_compare_exchange_weak(&budget, &left, left - 1)) {
            if (left > 0) return 0;
            atomic_store(&failed_one, 1);
            return 1;
        }
    }
    return 0;
}

void *__wrap_malloc(size_t n) { return take() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t k, size_t n) { return take() ? NULL : __real_calloc(k, n); }
void *__wrap_realloc(void *p, size_t n) { return take() ? NULL : __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t align, size_t n) { return take() ? NULL : __real_aligned_alloc(align, n); }
char *__wrap_strdup(const char *s) { return take() ? NULL : __real_strdup(s); }

/* The Nth allocation from now fails (N = 0: the next one). */
static void arm(long n)
{
    atomic_store(&failed_one, 0);
    atomic_store(&taken, 0);
    atomic_store(&budget, n);
}

/* Whether an allocation failed since arm(); disarms. */
static int disarm(void)
{
    atomic_store(&budget, -1);
    return atomic_load(&failed_one);
}

/* The indices a transcription tries (loading a model or speech detection
 * tries every one): every one of the first (which set everything up), then
 * steps growing with the index (a transcription makes hundreds, most of them
 * alike: a segment's tokens, words and text), wider under the sanitizers,
 * where each try runs several times slower. */
#if defined(__SANITIZE_ADDRESS__)
#define DENSE 12
#define GROWTH 2
#else
#define DENSE 40
#define GROWTH 4
#endif
static long next_index(long n) { return n < DENSE ? n + 1 : n + 1 + n / GROWTH; }

static int one_line(const char *err) { return err[0] && !strchr(err, '\n'); }

static void test_model_load(void)
{
    const char *path = t_shared("models", "rt-mini.en-f16.bin");
    char err[512];
    int tries = 0;
    for (long n = 0;; n++, tries++) {
        int code = 1;
        err[0] = 0;
        arm(n);
        hark_model *m = hark_model_load(path, &code, err, sizeof err);
        int hit = disarm();
        if (m) {
            hark_model_free(m);
            CHECKF(!hit, "allocation %ld failed, yet the model loaded", n);
            break;
        }
        CHECKF(hit && code == HARK_ENOMEM && one_line(err), "allocation %ld: code %d '%s'", n, code, err);
        if (t_failed_now()) return;
    }
    printf("  model load: %d failing allocations tried of %ld\n", tries, atomic_load(&taken));
}

static void test_transcribe(void)
{
    char err[512];
    float *pcm = NULL;
    size_t n_pcm = 0;
    hark_model *m = hark_model_load(t_shared("models", "rt-mini.en-f16.bin"), NULL, err, sizeof err);
    CHECKF(m != NULL, "%s", err);
    CHECKF(wav_read(t_shared("audio", "jfk.wav"), &pcm, &n_pcm, err, sizeof err) == 0, "%s", err);
    if (!m || !pcm) goto out;
    if (n_pcm > 16000 * 3) n_pcm = 16000 * 3;

    struct hark_options o;
    hark_options_init(&o);
    o.word_timestamps = 1;
    o.no_fallback = 1;
    o.beam_size = 1;
    o.best_of = 1;
    int tries = 0, done = 0;
    for (long n = 0; !done; n = next_index(n), tries++) {
        hark_result *r = NULL;
        int rc;
        err[0] = 0;
        arm(n);
        hark_state *st = hark_state_new(m, 2, err, sizeof err);
        if (st) rc = hark_transcribe(st, pcm, n_pcm, &o, &r, err, sizeof err);
        else rc = HARK_ENOMEM;
        int hit = disarm();
        if (rc == 0) {
            CHECKF(!hit, "allocation %ld failed, yet the transcription succeeded", n);
            CHECK(r && hark_result_n_segments(r) > 0);
            done = 1;
        } else {
            CHECKF(hit && rc == HARK_ENOMEM && r == NULL && one_line(err), "allocation %ld: rc %d '%s'", n, rc,
                   err);
        }
        hark_result_free(r);
        /* The state that ran out of memory still works. */
        if (st && rc != 0 && tries % 16 == 0) {
            CHECKF(hark_transcribe(st, pcm, n_pcm, &o, &r, err, sizeof err) == 0, "after %ld: %s", n, err);
            hark_result_free(r);
            r = NULL;
        }
        hark_state_free(st);
        if (t_failed_now()) break;
    }
    printf("  state and transcription: %d failing allocations tried of %ld\n", tries, atomic_load(&taken));
out:
    free(pcm);
    hark_model_free(m);
}

static void test_vad(void)
{
    char err[512];
    float *pcm = NULL;
    size_t n_pcm = 0;
    CHECKF(wav_read(t_shared("audio", "jfk.wav"), &pcm, &n_pcm, err, sizeof err) == 0, "%s", err);
    if (!pcm) return;
    struct hark_vad_params p;
    hark_vad_params_init(&p);
    int tries = 0, done = 0;
    for (long n = 0; !done; n++, tries++) {
        struct hark_speech *segs = NULL;
        int n_segs = 0, code = 1, rc;
        err[0] = 0;
        arm(n);
        hark_vad *v = hark_vad_load(t_shared("vad", "ggml-silero-v6.2.0.bin"), &code, err, sizeof err);
        rc = v ? hark_vad_detect(v, pcm, n_pcm, &p, 2, &segs, &n_segs, err, sizeof err) : code;
        int hit = disarm();
        if (rc == 0) {
            CHECKF(!hit && n_segs > 0, "allocation %ld: %d segments, failed %d", n, n_segs, hit);
            done = 1;
        } else {
            CHECKF(hit && rc == HARK_ENOMEM && one_line(err), "allocation %ld: rc %d '%s'", n, rc, err);
        }
        free(segs);
        hark_vad_free(v);
        if (t_failed_now()) break;
    }
    printf("  speech detection: %d failing allocations tried of %ld\n", tries, atomic_load(&taken));
    free(pcm);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("nomem_model_load", test_model_load);
    t_run("nomem_transcribe", test_transcribe);
    t_run("nomem_vad", test_vad);
    return t_summary();
}
