/*
 * test_vad.c: speech detection against whisper.cpp 1.9.3 on real recordings
 * with Silero VAD v6.2.0's trained weights (../shared/reference/vad).
 *
 * 1. Frame probabilities of the three clips on one and on two threads:
 *    max |difference| <= 1e-3 and mean <= 1e-4 against the reference; the
 *    two thread counts must agree bit for bit.
 * 2. Speech segments: from the reference's own probabilities exactly the
 *    reference's segments (the algorithm alone); from hark's probabilities
 *    the same, where a boundary may differ only if a frame whose side of a
 *    threshold changed lies within 1e-3 of that threshold in the reference.
 * 3. Transcription with VAD in the whisper.cpp profile against whisper-cli
 *    --vad (cli_<model>_<clip>_vad.json): segment times, segment text bytes
 *    and token ids, the ids taken as whisper-cli lists them (tokens whose
 *    bytes end in an incomplete UTF-8 sequence merged with the next).
 * 4. The timeline: speech placed at 40 s comes back at 40 s in both
 *    profiles, and silence or hiss alone gives no segments and no text.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "hark.h"
#include "decode.h"
#include "model.h"
#include "speech.h"
#include "tokenizer.h"
#include "wav.h"

static const char *const clips[] = {"jfk", "hifitts_concat_75s", "speech_gaps_71s"};
#define N_CLIPS 3

static hark_vad *vad;

static float *read_clip(const char *clip, size_t *n)
{
    char name[128], err[256];
    float *pcm = NULL;
    snprintf(name, sizeof name, "%s.wav", clip);
    int rc = wav_read(t_shared("audio", name), &pcm, n, err, sizeof err);
    CHECKF(rc == 0, "%s", err);
    return rc ? NULL : pcm;
}

static float *read_ref_probs(const char *clip, size_t *n)
{
    char name[128];
    size_t len = 0;
    snprintf(name, sizeof name, "vad/%s.probs.f32", clip);
    float *p = t_read_file(t_shared("reference", name), &len);
    CHECKF(p != NULL, "cannot read %s", name);
    *n = len / sizeof(float);
    return p;
}

/* The reference segments (centiseconds). */
static int read_ref_segments(const char *clip, double (*seg)[2], int max)
{
    char name[128];
    snprintf(name, sizeof name, "vad/%s.segments.tsv", clip);
    char *text = t_read_file(t_shared("reference", name), NULL);
    CHECKF(text != NULL, "cannot read %s", name);
    int n = 0;
    for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        if (n < max && sscanf(line, "%lf\t%lf", &seg[n][0], &seg[n][1]) == 2) n++;
    }
    free(text);
    return n;
}

static void test_probs(void)
{
    double worst_max = 0, worst_mean = 0;
    for (int c = 0; c < N_CLIPS; c++) {
        size_t n = 0, nr = 0, np[2] = {0, 0};
        float *pcm = read_clip(clips[c], &n), *ref = read_ref_probs(clips[c], &nr), *p[2] = {NULL, NULL};
        char err[256];
        if (!pcm || !ref) goto next;
        for (int t = 0; t < 2; t++) {
            int rc = hark_vad_probs(vad, pcm, n, t + 1, &p[t], &np[t], err, sizeof err);
            CHECKF(rc == 0, "%s: %s", clips[c], err);
        }
        if (!p[0] || !p[1]) goto next;
        CHECKF(np[0] == nr && np[1] == nr, "%s: %zu and %zu probabilities, reference %zu", clips[c], np[0], np[1], nr);
        CHECKF(!memcmp(p[0], p[1], np[0] * sizeof(float)), "%s: one and two threads differ", clips[c]);
        double mx = 0, sum = 0;
        size_t at = 0;
        for (size_t i = 0; i < nr && i < np[0]; i++) {
            double d = fabs((double)p[0][i] - ref[i]);
            sum += d;
            if (d > mx) {
                mx = d;
                at = i;
            }
        }
        double mean = nr ? sum / (double)nr : 0;
        printf("  %-19s %4zu frames: max |difference| %.2e (frame %zu), mean %.2e; 1 and 2 threads identical\n",
               clips[c], nr, mx, at, mean);
        CHECKF(mx <= 1e-3 && mean <= 1e-4, "%s: max %.3g mean %.3g", clips[c], mx, mean);
        if (mx > worst_max) worst_max = mx;
        if (mean > worst_mean) worst_mean = mean;
    next:
        free(pcm);
        free(ref);
        free(p[0]);
        free(p[1]);
    }
    printf("  worst: max %.2e, mean %.2e (limits 1e-3, 1e-4)\n", worst_max, worst_mean);
}

/* 1 when every frame on a different side of threshold or of threshold −
 * 0.15 in hark than in the reference lies within 1e-3 of that threshold in
 * the reference: the only frames where the segments may honestly differ. */
static int flips_near_threshold(const float *a, const float *ref, size_t n, float thr)
{
    const float lo = thr - 0.15f;
    for (size_t i = 0; i < n; i++) {
        if ((a[i] >= thr) != (ref[i] >= thr) && fabsf(ref[i] - thr) > 1e-3f) return 0;
        if ((a[i] < lo) != (ref[i] < lo) && fabsf(ref[i] - lo) > 1e-3f) return 0;
    }
    return 1;
}

static int same_segments(const struct hark_speech *s, int n, double (*ref)[2], int nref)
{
    if (n != nref) return 0;
    for (int i = 0; i < n; i++)
        if (llround(s[i].start_s * 100) != llround(ref[i][0]) || llround(s[i].end_s * 100) != llround(ref[i][1]))
            return 0;
    return 1;
}

static void test_segments(void)
{
    struct hark_vad_params vp;
    hark_vad_params_init(&vp);
    for (int c = 0; c < N_CLIPS; c++) {
        double ref[256][2];
        int nref = read_ref_segments(clips[c], ref, 256);
        size_t n = 0, nr = 0, np = 0;
        float *pcm = read_clip(clips[c], &n), *rp = read_ref_probs(clips[c], &nr), *p = NULL;
        struct hark_speech *s = NULL, *s2 = NULL;
        int ns = 0, ns2 = 0;
        char err[256];
        if (!pcm || !rp) goto next;
        CHECK(hark_vad_segments(rp, nr, &vp, &s, &ns) == 0);
        CHECKF(same_segments(s, ns, ref, nref), "%s: segments from the reference's probabilities differ", clips[c]);
        CHECK(hark_vad_probs(vad, pcm, n, 2, &p, &np, err, sizeof err) == 0);
        CHECK(hark_vad_detect(vad, pcm, n, &vp, 2, &s2, &ns2, err, sizeof err) == 0);
        int same = same_segments(s2, ns2, ref, nref);
        int excused = !same && p && np == nr && flips_near_threshold(p, rp, nr, vp.threshold);
        CHECKF(same || excused, "%s: %d segments, reference %d, and they differ away from the thresholds", clips[c],
               ns2, nref);
        printf("  %-19s %2d segments: %s\n", clips[c], nref,
               same ? "equal to the reference" : "differ only at frames within 1e-3 of a threshold");
    next:
        free(pcm);
        free(rp);
        free(p);
        free(s);
        free(s2);
    }
}

/* ------------------------------------------------------------ whisper-cli */

/* whisper-cli writes token and segment texts as raw bytes, which may be
 * invalid UTF-8 or control characters. Both sides are compared through one
 * mapping: a valid UTF-8 sequence stays, every other byte b becomes U+00b.
 * to_json writes that mapping as JSON escapes inside the file's strings
 * (whose quotes and backslashes whisper-cli escapes). */
static size_t utf8_len_at(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    int n = c < 0x80 ? 1 : (c >= 0xc2 && c <= 0xdf) ? 2 : (c >= 0xe0 && c <= 0xef) ? 3 : (c >= 0xf0 && c <= 0xf4) ? 4 : 0;
    if (!n || (size_t)n > left) return 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    if (n == 3 && ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f))) return 0;
    if (n == 4 && ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))) return 0;
    return (size_t)n;
}

static char *bytes_mapped(const unsigned char *s, size_t len, int to_json)
{
    char *out = malloc(6 * len + 1);
    size_t o = 0;
    int in_string = 0;
    if (!out) return NULL;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_len_at(s + i, len - i);
        if (to_json && s[i] == '\\' && i + 1 < len) {
            out[o++] = (char)s[i++];
            out[o++] = (char)s[i++];
            continue;
        }
        if (to_json && s[i] == '"') in_string = !in_string;
        if (k && !(k == 1 && s[i] < 0x20 && to_json && in_string)) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        } else if (to_json) {
            o += (size_t)sprintf(out + o, "\\u%04x", s[i++]);
        } else {
            out[o++] = (char)(0xc0 | (s[i] >> 6));
            out[o++] = (char)(0x80 | (s[i++] & 0x3f));
        }
    }
    out[o] = 0;
    return out;
}

static json_t *load_cli_json(const char *name)
{
    size_t len = 0;
    unsigned char *raw = t_read_file(t_shared("reference", name), &len);
    CHECKF(raw != NULL, "cannot read %s", name);
    if (!raw) return NULL;
    char *fixed = bytes_mapped(raw, len, 1);
    json_error_t e;
    json_t *j = fixed ? json_loads(fixed, 0, &e) : NULL;
    CHECKF(j != NULL, "%s: %s", name, fixed ? e.text : "out of memory");
    free(raw);
    free(fixed);
    return j;
}

/* A token's bytes as whisper.cpp sees them: a C string, timestamps
 * spelled "[_TT_n]" and the first one "[_BEG_]". */
static size_t token_cstr(const hark_model *m, int32_t id, char *buf, size_t cap)
{
    char tmp[64];
    size_t len;
    struct tok_special sp;
    tok_special_init(&sp, hark_model_hparams(m)->n_vocab);
    if (id >= sp.beg) {
        int k = id == sp.beg ? snprintf(buf, cap, "[_BEG_]") : snprintf(buf, cap, "[_TT_%d]", id - sp.beg);
        return k < 0 ? 0 : (size_t)k < cap ? (size_t)k : cap - 1;
    }
    const char *b = tok_bytes(m, id, tmp, &len);
    len = strnlen(b, len);
    if (len >= cap) len = cap - 1;
    memcpy(buf, b, len);
    buf[len] = 0;
    return len;
}

/* whisper-cli's utf8_trailing_bytes_needed. */
static int trailing_needed(const unsigned char *s, size_t n)
{
    long i = (long)n - 1;
    while (i >= 0 && (s[i] & 0xc0) == 0x80) i--;
    if (i < 0) return 0;
    unsigned c = s[i];
    int want = (c & 0x80) == 0 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (!want) return 0;
    int have = (int)(n - (size_t)i);
    return have >= want ? 0 : want - have;
}

/* Compares one segment with the reference's; returns the differences. */
static int compare_segment(const hark_model *m, const struct hark_segment *seg, json_t *rs, const char *what, int i)
{
    int diffs = 0;
    struct tok_special sp;
    tok_special_init(&sp, hark_model_hparams(m)->n_vocab);
    json_t *off = json_object_get(rs, "offsets");
    long r0 = (long)json_integer_value(json_object_get(off, "from"));
    long r1 = (long)json_integer_value(json_object_get(off, "to"));
    long t0 = lround(seg->start_s * 1000), t1 = lround(seg->end_s * 1000);
    if (t0 != r0 || t1 != r1) {
        diffs++;
        CHECKF(0, "%s: segment %d [%ld, %ld] ms, reference [%ld, %ld]", what, i, t0, t1, r0, r1);
    }
    /* Text: the C strings of the text tokens. */
    char *raw = malloc((size_t)seg->n_tokens * 64 + 1), buf[64];
    size_t o = 0;
    for (int j = 0; raw && j < seg->n_tokens; j++)
        if (seg->tokens[j].id < sp.eot) o += token_cstr(m, seg->tokens[j].id, raw + o, 64);
    char *text = raw ? bytes_mapped((unsigned char *)raw, o, 0) : NULL;
    const char *rt = json_string_value(json_object_get(rs, "text"));
    if (!text || !rt || strcmp(text, rt)) {
        diffs++;
        CHECKF(0, "%s: segment %d text differs", what, i);
    }
    free(raw);
    free(text);
    /* Tokens as whisper-cli lists them. */
    json_t *rtok = json_object_get(rs, "tokens");
    size_t k = 0;
    for (int j = 0; j < seg->n_tokens; k++) {
        unsigned char acc[1024];
        size_t n = token_cstr(m, seg->tokens[j].id, (char *)acc, sizeof acc);
        int32_t first = seg->tokens[j++].id;
        while (j < seg->n_tokens && trailing_needed(acc, n) > 0 && n + 64 < sizeof acc)
            n += token_cstr(m, seg->tokens[j++].id, (char *)acc + n, sizeof acc - n);
        json_t *rk = json_array_get(rtok, k);
        if (!rk || json_integer_value(json_object_get(rk, "id")) != first) {
            diffs++;
            CHECKF(0, "%s: segment %d listed token %zu is %d, reference %lld", what, i, k, first,
                   rk ? (long long)json_integer_value(json_object_get(rk, "id")) : -1LL);
            return diffs;
        }
    }
    (void)buf;
    if (k != json_array_size(rtok)) {
        diffs++;
        CHECKF(0, "%s: segment %d lists %zu tokens, reference %zu", what, i, k, json_array_size(rtok));
    }
    return diffs;
}

/* whisper-cli's token list: each listed token's first id and its text (the
 * bytes of it and of the tokens merged into it, mapped by bytes_mapped). */
struct listed {
    int32_t id;
    const char *text;
};

struct lock {
    const hark_model *m;
    struct listed *ref;
    int n_ref, idx;
    unsigned char acc[1024]; /* bytes of the entry being matched */
    size_t n_acc;
    int32_t eot;
    double tol;
    int n_steps, n_tolerated, n_unlisted, n_merged;
    double max_gap;
};

/* The entry is complete when its bytes need no more continuation bytes
 * (whisper-cli's merge rule); its text must then be the reference's. */
static void lock_take(struct lock *L, int32_t id, int window, int step)
{
    char b[64];
    size_t n = token_cstr(L->m, id, b, sizeof b);
    if (L->n_acc + n > sizeof L->acc) n = sizeof L->acc - L->n_acc;
    memcpy(L->acc + L->n_acc, b, n);
    L->n_acc += n;
    if (trailing_needed(L->acc, L->n_acc) > 0) {
        L->n_merged++;
        return;
    }
    char *mapped = bytes_mapped(L->acc, L->n_acc, 0);
    const char *want = L->ref[L->idx].text;
    CHECKF(mapped && want && !strcmp(mapped, want), "window %d step %d: listed entry %d spells '%s', reference '%s'",
           window, step, L->idx, mapped ? mapped : "", want ? want : "");
    free(mapped);
    L->idx++;
    L->n_acc = 0;
}

/* Teacher forcing against the listed tokens. whisper-cli lists only the
 * tokens a window kept (up to its last timestamp), so a step where hark's
 * choice is not the next listed token may be a token whisper.cpp also
 * sampled and then dropped: there hark's token is taken and the list waits.
 * Where hark preferred its own token over the listed one by less than the
 * lockstep gap, it is a near-tie: tolerated, and decoding goes on with
 * whisper.cpp's token. The ids merged into an entry are not listed: there
 * hark's own tokens are taken, and the entry's bytes checked when it ends.
 * Whether it all stayed in step is judged by the result, which must equal
 * the reference. */
static int32_t lock_step(void *user, int window, int step, const float *lp, int n_vocab, int32_t chosen)
{
    struct lock *L = user;
    L->n_steps++;
    if (L->idx >= L->n_ref || chosen == L->eot) return chosen;
    if (L->n_acc == 0) {
        int32_t ref = L->ref[L->idx].id;
        if (chosen != ref) {
            double gap = ref >= 0 && ref < n_vocab ? (double)lp[chosen] - (double)lp[ref] : INFINITY;
            if (gap >= L->tol) {
                L->n_unlisted++;
                return chosen;
            }
            L->n_tolerated++;
            if (gap > L->max_gap) L->max_gap = gap;
            chosen = ref;
        }
    }
    lock_take(L, chosen, window, step);
    return chosen;
}

static int expand_listed(json_t *ref, struct listed **out)
{
    int n = 0;
    json_t *segs = json_object_get(ref, "transcription");
    size_t total = 0;
    for (size_t i = 0; i < json_array_size(segs); i++)
        total += json_array_size(json_object_get(json_array_get(segs, i), "tokens"));
    struct listed *v = malloc((total ? total : 1) * sizeof(*v));
    for (size_t i = 0; v && i < json_array_size(segs); i++) {
        json_t *toks = json_object_get(json_array_get(segs, i), "tokens");
        for (size_t j = 0; j < json_array_size(toks); j++) {
            json_t *t = json_array_get(toks, j);
            v[n].id = (int32_t)json_integer_value(json_object_get(t, "id"));
            v[n++].text = json_string_value(json_object_get(t, "text"));
        }
    }
    *out = v;
    return n;
}

/* Compares a whole result with the reference; returns the differences. */
static int compare_result(const hark_model *m, const hark_result *r, json_t *ref, const char *what)
{
    json_t *segs = json_object_get(ref, "transcription");
    int ns = hark_result_n_segments(r), diffs = 0;
    if ((size_t)ns != json_array_size(segs)) {
        diffs++;
        CHECKF(0, "%s: %d segments, reference %zu", what, ns, json_array_size(segs));
    }
    for (int i = 0; i < ns && (size_t)i < json_array_size(segs); i++)
        diffs += compare_segment(m, hark_result_segment(r, i), json_array_get(segs, (size_t)i), what, i);
    return diffs;
}

static void run_cli_model(const char *model)
{
    char name[128], err[256];
    snprintf(name, sizeof name, "%s.bin", model);
    hark_model *m = t_load_model(name);
    hark_state *st = m ? hark_state_new(m, 2, err, sizeof err) : NULL;
    CHECKF(!m || st, "%s: %s", model, err);
    snprintf(name, sizeof name, "%s/expect.json", model);
    json_error_t je;
    json_t *expect = json_load_file(t_shared("reference", name), 0, &je);
    CHECKF(expect != NULL, "%s: %s", name, je.text);
    double tol = json_number_value(json_object_get(json_object_get(expect, "tolerances"), "lockstep_gap"));
    json_decref(expect);
    struct tok_special sp;
    if (m) tok_special_init(&sp, hark_model_hparams(m)->n_vocab);
    for (int c = 0; st && c < N_CLIPS; c++) {
        size_t n = 0;
        float *pcm = read_clip(clips[c], &n);
        snprintf(name, sizeof name, "vad/cli_%s_%s_vad.json", model, clips[c]);
        json_t *ref = load_cli_json(name);
        struct listed *listed = NULL;
        int n_listed = ref ? expand_listed(ref, &listed) : 0;
        struct hark_options o;
        t_cli_greedy_options(&o);
        o.vad = vad;
        char what[128];
        snprintf(what, sizeof what, "%s %s", model, clips[c]);
        if (!pcm || !ref || !listed) goto next;

        /* 1. Lock-step. */
        struct lock L;
        memset(&L, 0, sizeof L);
        L.m = m;
        L.ref = listed;
        L.n_ref = n_listed;
        L.eot = sp.eot;
        L.tol = tol;
        struct decode_hooks hooks = {.user = &L, .step = lock_step};
        hark_result *r = NULL;
        int rc = speech_transcribe(st, pcm, n, &o, &hooks, &r, err, sizeof err);
        CHECKF(rc == 0, "%s lockstep: %s", what, err);
        CHECKF(L.idx == n_listed, "%s: %d of %d listed tokens reached", what, L.idx, n_listed);
        int d = r ? compare_result(m, r, ref, what) : 1;
        printf("  %-16s %-19s lockstep: %d steps, %d listed tokens (%d merged ids), %d unlisted, %d near-ties "
               "tolerated (largest preference %.4f, tolerance %.2f): %s\n",
               model, clips[c], L.n_steps, n_listed, L.n_merged, L.n_unlisted, L.n_tolerated,
               L.n_tolerated ? L.max_gap : 0.0, tol, d ? "differs" : "segments, texts and ids equal");
        if (r) CHECK(hark_result_vad(r, NULL, NULL) == 1);
        hark_result_free(r);
        r = NULL;

        /* 2. Free-running: equal wherever the lock-step run needed no
         * tolerance. */
        rc = hark_transcribe(st, pcm, n, &o, &r, err, sizeof err);
        CHECKF(rc == 0, "%s: %s", what, err);
        if (r && L.n_tolerated == 0) {
            d = compare_result(m, r, ref, what);
        } else if (r) {
            d = -1;
        }
        printf("  %-16s %-19s greedy: %d segments, %d speech segments: %s\n", model, clips[c],
               r ? hark_result_n_segments(r) : -1, r ? hark_result_n_speech(r) : -1,
               d == 0 ? "equal to whisper-cli --vad" : d < 0 ? "not compared (a tolerated near-tie came first)" : "DIFFERENT");
        hark_result_free(r);
    next:
        free(listed);
        json_decref(ref);
        free(pcm);
    }
    hark_state_free(st);
    hark_model_free(m);
}

static void test_cli_tiny(void) { run_cli_model("rt-tiny.en-f16"); }
static void test_cli_mini(void) { run_cli_model("rt-mini-f16"); }

/* ------------------------------------------------------------- timeline */

/* 40 s of silence, jfk, 10 s of silence: the speech VAD finds in jfk alone
 * comes back 40 s later, and every segment and token of the transcription
 * lies inside the speech, in both profiles. */
static void test_timeline(void)
{
    size_t nj = 0;
    float *jfk = read_clip("jfk", &nj);
    hark_model *m = t_load_model("rt-mini.en-f32.bin");
    char err[256];
    hark_state *st = m ? hark_state_new(m, 2, err, sizeof err) : NULL;
    if (!jfk || !st) goto done;
    const size_t lead = 40 * 16000, n = lead + nj + 10 * 16000;
    float *pcm = calloc(n, sizeof(float));
    if (!pcm) goto done;
    memcpy(pcm + lead, jfk, nj * sizeof(float));
    struct hark_vad_params vp;
    hark_vad_params_init(&vp);
    struct hark_speech *alone = NULL, *placed = NULL;
    int na = 0, np = 0;
    CHECK(hark_vad_detect(vad, jfk, nj, &vp, 2, &alone, &na, err, sizeof err) == 0);
    CHECK(hark_vad_detect(vad, pcm, n, &vp, 2, &placed, &np, err, sizeof err) == 0);
    CHECKF(na > 0 && na == np, "%d segments alone, %d placed at 40 s", na, np);
    double worst = 0;
    for (int i = 0; i < na && i < np; i++) {
        double d = fmax(fabs(placed[i].start_s - 40.0 - alone[i].start_s), fabs(placed[i].end_s - 40.0 - alone[i].end_s));
        if (d > worst) worst = d;
    }
    /* Frames are 32 ms: the placed audio's frames start 40 s in, a whole
     * number of frames (1250), so the probabilities are the same. */
    CHECKF(worst < 0.0051, "speech moved by %.3f s", worst);
    printf("  jfk alone: speech from %.2f s; at 40 s: from %.2f s (worst shift error %.3f s)\n",
           na ? alone[0].start_s : -1.0, np ? placed[0].start_s : -1.0, worst);
    for (int prof = 0; prof < 2 && np > 0; prof++) {
        struct hark_options o;
        hark_options_init(&o);
        o.decoder = prof ? HARK_DECODER_WHISPER_CPP : HARK_DECODER_OPENAI;
        o.beam_size = 1;
        o.no_fallback = 1;
        o.vad = vad;
        hark_result *r = NULL;
        CHECKF(hark_transcribe(st, pcm, n, &o, &r, err, sizeof err) == 0, "%s", err);
        if (!r) continue;
        CHECK(fabs(hark_result_duration_s(r) - (double)n / 16000) < 1e-9);
        CHECK(hark_result_n_speech(r) == np);
        int ns = hark_result_n_segments(r), outside = 0;
        double lo = placed[0].start_s, hi = placed[np - 1].end_s;
        for (int i = 0; i < ns; i++) {
            const struct hark_segment *s = hark_result_segment(r, i);
            if (s->start_s < lo - 1e-9 || s->end_s > hi + 0.1 + 1e-9) outside++;
            for (int j = 0; j < s->n_tokens; j++)
                if (s->tokens[j].t0_s >= 0 && (s->tokens[j].t0_s < lo - 1e-9 || s->tokens[j].t1_s > hi + 0.1 + 1e-9))
                    outside++;
        }
        CHECKF(ns > 0 && outside == 0, "%s: %d segments, %d times outside [%.2f, %.2f]", prof ? "whisper.cpp" : "openai",
               ns, outside, lo, hi);
        printf("  %-11s profile: %d segments from %.2f s to %.2f s, speech %.2f-%.2f s\n",
               prof ? "whisper.cpp" : "openai", ns, ns ? hark_result_segment(r, 0)->start_s : -1.0,
               ns ? hark_result_segment(r, ns - 1)->end_s : -1.0, lo, hi);
        hark_result_free(r);
    }
    free(alone);
    free(placed);
    free(pcm);
done:
    free(jfk);
    hark_state_free(st);
    hark_model_free(m);
}

/* Silence and low hiss: no speech, so no segments and no text, done. */
static void test_no_speech(void)
{
    hark_model *m = t_load_model("rt-mini-f16.bin");
    char err[256];
    hark_state *st = m ? hark_state_new(m, 2, err, sizeof err) : NULL;
    const size_t n = 20 * 16000;
    float *pcm = calloc(n, sizeof(float));
    if (!st || !pcm) goto done;
    uint32_t x = 12345;
    for (int kind = 0; kind < 2; kind++) {
        for (size_t i = 0; i < n; i++) {
            x = x * 1664525u + 1013904223u;
            pcm[i] = kind ? ((float)(x >> 8) / 16777216.0f - 0.5f) * 0.004f : 0.0f;
        }
        for (int prof = 0; prof < 2; prof++) {
            struct hark_options o;
            hark_options_init(&o);
            o.decoder = prof ? HARK_DECODER_WHISPER_CPP : HARK_DECODER_OPENAI;
            o.vad = vad;
            hark_result *r = NULL;
            CHECKF(hark_transcribe(st, pcm, n, &o, &r, err, sizeof err) == 0, "%s", err);
            if (!r) continue;
            CHECKF(hark_result_n_segments(r) == 0 && hark_result_n_speech(r) == 0, "%s: %d segments",
                   kind ? "hiss" : "silence", hark_result_n_segments(r));
            CHECK(hark_result_vad(r, NULL, NULL) == 1 && fabs(hark_result_duration_s(r) - 20.0) < 1e-9);
            hark_result_free(r);
        }
    }
    printf("  20 s of silence and of hiss, both profiles: no segments\n");
done:
    free(pcm);
    hark_state_free(st);
    hark_model_free(m);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    char err[512];
    vad = hark_vad_load(t_shared("vad", "ggml-silero-v6.2.0.bin"), NULL, err, sizeof err);
    if (!vad) {
        printf("  %s\n", err);
        t_skip("vad", "the VAD model is not present");
        return t_summary();
    }
    t_run("vad_probs", test_probs);
    t_run("vad_segments", test_segments);
    t_run("vad_cli_rt_tiny_en", test_cli_tiny);
    t_run("vad_cli_rt_mini", test_cli_mini);
    t_run("vad_timeline", test_timeline);
    t_run("vad_no_speech", test_no_speech);
    hark_vad_free(vad);
    return t_summary();
}
