/*
 * test_vad.c: the Silero VAD file loader, the speech-segment rules on
 * hand-made probabilities, and the joins and time maps of both profiles.
 *
 * The loader is fed every truncation of the real model file (885,098 of
 * them, parsed from memory; those that end in a header or near a record's
 * boundary are also parsed from a copy of exactly that length, so that a
 * sanitizer sees any read past the end), and files broken field by field;
 * each must fail with one line naming the file and the fault. Expected
 * segments and mapped times below are worked out by hand from the rules,
 * not produced by the code under test.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "hark.h"
#include "speech.h"
#include "vad.h"

static uint8_t *file;
static size_t file_len;

/* Offsets of each tensor record's start in the real file. */
static size_t rec[32];
static int n_rec;
static size_t header_len;

static int32_t rd32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void wr32(uint8_t *p, int32_t v) { memcpy(p, &v, 4); }

static void index_records(void)
{
    size_t p = 4;
    p += 4 + (size_t)rd32(file + p);
    p += 5 * 4;           /* version, window, context */
    p += 4 + 4 * 3 * 4;   /* layers */
    p += 4 * 4;           /* lstm, final */
    header_len = p;
    n_rec = 0;
    while (p + 12 <= file_len && n_rec < 32) {
        rec[n_rec++] = p;
        int32_t nd = rd32(file + p), nl = rd32(file + p + 4), tt = rd32(file + p + 8);
        size_t n = 1;
        for (int d = 0; d < nd; d++) n *= (size_t)rd32(file + p + 12 + 4 * d);
        p += 12 + 4 * (size_t)nd + (size_t)nl + n * (tt == 1 ? 2 : 4);
    }
}

/* Parses a buffer; returns the code and leaves the reason in err. */
static int parse(const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    struct hark_vad v;
    err[0] = 0;
    int rc = vad_parse(&v, buf, len, "model.bin", err, errlen);
    if (!rc) vad_deinit(&v);
    return rc;
}

static int one_line_naming(const char *err)
{
    return !strncmp(err, "model.bin: ", 11) && strlen(err) > 11 && !strchr(err, '\n');
}

static void test_load(void)
{
    char err[512];
    CHECKF(parse(file, file_len, err, sizeof err) == 0, "%s", err);
    int code = 1;
    hark_vad *v = hark_vad_load(t_shared("vad", "ggml-silero-v6.2.0.bin"), &code, err, sizeof err);
    CHECKF(v && code == 0, "%s", err);
    CHECK(v && !strcmp(hark_vad_name(v), "silero-v6.2.0"));
    hark_vad_free(v);
    hark_vad_free(NULL);
    printf("  %zu bytes, %d tensor records, header %zu bytes\n", file_len, n_rec, header_len);
    CHECK(n_rec == 15);
}

static void test_truncations(void)
{
    char err[512];
    size_t bad = 0, checked_exact = 0;
    for (size_t k = 0; k < file_len; k++) {
        int rc = parse(file, k, err, sizeof err);
        /* Cut exactly between records, the file is whole but short of
         * tensors. */
        int boundary = 0;
        for (int r = 0; r < n_rec; r++) boundary |= k == rec[r];
        const char *want = boundary ? "is missing" : "truncated";
        if (rc != HARK_EFORMAT || !one_line_naming(err) || !strstr(err, want)) {
            if (bad++ < 5) CHECKF(0, "truncated at %zu: code %d, '%s'", k, rc, err);
        }
    }
    /* Exact-length copies where the parser reads headers. */
    for (size_t k = 0; k < file_len; k++) {
        int near = k <= header_len + 64;
        for (int r = 0; r < n_rec && !near; r++) near = k + 8 >= rec[r] && k <= rec[r] + 120;
        if (!near) continue;
        uint8_t *copy = malloc(k ? k : 1);
        memcpy(copy, file, k);
        if (parse(copy, k, err, sizeof err) != HARK_EFORMAT) bad++;
        free(copy);
        checked_exact++;
    }
    printf("  %zu truncations rejected (%zu of them as exact-length copies), %zu wrong\n", file_len, checked_exact, bad);
    CHECK(bad == 0);
}

/* A copy of the file with one change; the parse must fail naming `want`. */
static void expect_fault(const uint8_t *buf, size_t len, const char *want, const char *what)
{
    char err[512];
    int rc = parse(buf, len, err, sizeof err);
    CHECKF(rc == HARK_EFORMAT && one_line_naming(err) && strstr(err, want), "%s: code %d, '%s' (want '%s')", what, rc,
           err, want);
    printf("  %-28s %s\n", what, err);
}

static void test_faults(void)
{
    uint8_t *b = malloc(file_len + 4096);
    size_t tlen = (size_t)rd32(file + 4);
    const size_t ver = 8 + tlen, layers = ver + 20, lstm = layers + 4 + 48;
#define RESET() memcpy(b, file, file_len)
    RESET();
    b[0] ^= 1;
    expect_fault(b, file_len, "bad magic", "bad magic");
    RESET();
    b[8] = 'X';
    expect_fault(b, file_len, "model type 'Xilero-16k'", "model type");
    RESET();
    wr32(b + 4, 100000);
    expect_fault(b, file_len, "model type length", "model type length");
    RESET();
    wr32(b + ver, -1);
    expect_fault(b, file_len, "version field 0", "version");
    RESET();
    wr32(b + ver + 12, 256);
    expect_fault(b, file_len, "window 256", "window size");
    RESET();
    wr32(b + layers, 5);
    expect_fault(b, file_len, "5 encoder layers", "layer count");
    RESET();
    wr32(b + layers + 4 + 12 + 4, 65);
    expect_fault(b, file_len, "encoder layer 1", "layer channels");
    RESET();
    wr32(b + lstm, 64);
    expect_fault(b, file_len, "LSTM sizes", "LSTM size");
    RESET();
    wr32(b + lstm + 12, 2);
    expect_fault(b, file_len, "final convolution", "final convolution");
    RESET();
    wr32(b + rec[0], 7);
    expect_fault(b, file_len, "n_dims 7", "n_dims");
    RESET();
    wr32(b + rec[0] + 4, 0);
    expect_fault(b, file_len, "name length 0", "name length");
    RESET();
    wr32(b + rec[0] + 12, -3);
    expect_fault(b, file_len, "dimension 0 is -3", "negative dimension");
    RESET();
    wr32(b + rec[0] + 12, 5); /* conv 0 kernel [5, 129, 128] */
    expect_fault(b, file_len, "shape [5, 129, 128], expected [3, 129, 128]", "shape");
    RESET();
    wr32(b + rec[0] + 8, 0); /* conv 0 weight stored as f32 */
    expect_fault(b, file_len, "type f32, expected f16", "type f32 for f16");
    RESET();
    wr32(b + rec[0] + 8, 8);
    expect_fault(b, file_len, "type 8, expected f16", "quantized type");
    RESET();
    b[rec[0] + 12 + 12] = 'X'; /* first letter of the name */
    expect_fault(b, file_len, "unknown tensor 'Xmodel.encoder.0.reparam_conv.weight'", "unknown tensor");
    /* The last record (the STFT basis) removed: missing. */
    expect_fault(file, rec[n_rec - 1], "'_model.stft.forward_basis_buffer' is missing", "missing tensor");
    /* The first record again at the end: twice. */
    RESET();
    size_t r0 = rec[1] - rec[0];
    memcpy(b + file_len, file + rec[0], r0 < 4096 ? r0 : 0);
    if (r0 >= 4096) {
        free(b);
        b = malloc(file_len + r0);
        RESET();
        memcpy(b + file_len, file + rec[0], r0);
    }
    expect_fault(b, file_len + r0, "appears twice", "duplicate tensor");
    /* Trailing bytes that are not a whole record. */
    RESET();
    memset(b + file_len, 0, 6);
    expect_fault(b, file_len + 6, "truncated", "trailing bytes");
    /* A weight that is not a number: f16 0x7e00 is NaN. */
    RESET();
    b[rec[0] + 12 + 12 + 36] = 0x00;
    b[rec[0] + 12 + 12 + 36 + 1] = 0x7e;
    expect_fault(b, file_len, "is not a finite number", "NaN weight");
#undef RESET
    free(b);
}

/* The same layout with version 5.1.2 and other weights loads, and gives
 * probabilities in [0, 1]. */
static void test_other_version(void)
{
    uint8_t *b = malloc(file_len);
    memcpy(b, file, file_len);
    size_t ver = 8 + (size_t)rd32(file + 4);
    wr32(b + ver, 5);
    wr32(b + ver + 4, 1);
    wr32(b + ver + 8, 2);
    /* Scale every f32 weight by 0.9 (other weights, same layout). */
    for (int r = 0; r < n_rec; r++) {
        int32_t nd = rd32(b + rec[r]), nl = rd32(b + rec[r] + 4), tt = rd32(b + rec[r] + 8);
        size_t n = 1, d0 = rec[r] + 12 + 4 * (size_t)nd + (size_t)nl;
        for (int d = 0; d < nd; d++) n *= (size_t)rd32(b + rec[r] + 12 + 4 * d);
        for (size_t i = 0; tt == 0 && i < n; i++) {
            float x;
            memcpy(&x, b + d0 + 4 * i, 4);
            x *= 0.9f;
            memcpy(b + d0 + 4 * i, &x, 4);
        }
    }
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/ggml-silero-v5.1.2.bin", t_tmpdir());
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(b, 1, file_len, f) == file_len);
    if (f) fclose(f);
    hark_vad *v = hark_vad_load(path, NULL, err, sizeof err);
    CHECKF(v != NULL, "%s", err);
    if (v) {
        CHECK(!strcmp(hark_vad_name(v), "silero-v5.1.2"));
        float pcm[16000], *p = NULL;
        size_t np = 0;
        for (int i = 0; i < 16000; i++) pcm[i] = 0.3f * sinf(i * 0.05f) * sinf(i * 0.0007f);
        CHECK(hark_vad_probs(v, pcm, 16000, 1, &p, &np, err, sizeof err) == 0 && np == 32);
        for (size_t i = 0; p && i < np; i++) CHECKF(p[i] >= 0.0f && p[i] <= 1.0f, "p[%zu] = %g", i, p[i]);
        free(p);
    }
    hark_vad_free(v);
    free(b);
}

static void test_load_errors(void)
{
    char err[512], path[512];
    int code = 0;
    CHECK(hark_vad_load("/nonexistent/vad.bin", &code, err, sizeof err) == NULL && code == HARK_ENOENT);
    CHECKF(strstr(err, "/nonexistent/vad.bin") != NULL, "%s", err);
    CHECK(hark_vad_load(t_tmpdir(), &code, err, sizeof err) == NULL && code < 0);
    snprintf(path, sizeof path, "%s/empty.bin", t_tmpdir());
    FILE *f = fopen(path, "wb");
    if (f) fclose(f);
    CHECK(hark_vad_load(path, &code, err, sizeof err) == NULL && code == HARK_EFORMAT);
    CHECKF(strstr(err, "truncated") != NULL, "%s", err);
    /* A Whisper model is not a VAD model. */
    CHECK(hark_vad_load(t_shared("models", "rt-mini.en-q4_0.bin"), &code, err, sizeof err) == NULL &&
          code == HARK_EFORMAT);
    printf("  a Whisper model: %s\n", err);
    float *p = (float *)1;
    size_t np = 1;
    CHECK(hark_vad_probs(NULL, NULL, 0, 1, &p, &np, err, sizeof err) == HARK_EINVAL && p == NULL && np == 0);
}

/* ------------------------------------------------------------- segments */

static int segs_of(const float *probs, size_t n, const struct hark_vad_params *vp, struct hark_speech **s)
{
    int ns = -1;
    CHECK(hark_vad_segments(probs, n, vp, s, &ns) == 0);
    return ns;
}

static void test_segment_rules(void)
{
    struct hark_vad_params vp;
    hark_vad_params_init(&vp);
    CHECK(vp.threshold == 0.5f && vp.min_speech_ms == 250 && vp.min_silence_ms == 100 && isinf(vp.max_speech_s) &&
          vp.pad_ms == 30 && fabsf(vp.overlap_s - 0.1f) < 1e-7f);
    float p[200];
    struct hark_speech *s = NULL;
    int n;

    /* Nothing above the threshold: no speech. */
    for (int i = 0; i < 200; i++) p[i] = 0.49f;
    n = segs_of(p, 100, &vp, &s);
    CHECK(n == 0 && s == NULL);

    /* Frames 10..39 speech (960 ms): starts at sample 5120; the first
     * silent frame (40, sample 20480) ends it once 1600 samples of silence
     * passed (frame 44); padded by 480 samples: [4640, 20960] samples =
     * [29, 131] cs. */
    for (int i = 0; i < 100; i++) p[i] = i >= 10 && i < 40 ? 0.9f : 0.1f;
    n = segs_of(p, 100, &vp, &s);
    CHECKF(n == 1 && s && fabs(s[0].start_s - 0.29) < 1e-9 && fabs(s[0].end_s - 1.31) < 1e-9, "%d: [%.2f, %.2f]",
           n, n > 0 ? s[0].start_s : -1, n > 0 ? s[0].end_s : -1);
    free(s);

    /* Hysteresis: 0.4 (between 0.35 and 0.5) keeps speech going. */
    for (int i = 40; i < 60; i++) p[i] = 0.4f;
    n = segs_of(p, 100, &vp, &s);
    /* Ends at frame 60 (sample 30720) + 480 = 31200 samples = 195 cs. */
    CHECKF(n == 1 && s && fabs(s[0].end_s - 1.95) < 1e-9, "hysteresis: %d, end %.2f", n, n > 0 ? s[0].end_s : -1);
    free(s);

    /* Too short: 7 frames = 3584 samples, not over 4000. */
    for (int i = 0; i < 100; i++) p[i] = i >= 10 && i < 17 ? 0.9f : 0.1f;
    n = segs_of(p, 100, &vp, &s);
    CHECK(n == 0);
    free(s);

    /* Two bursts 3 frames apart (1536 samples of silence < 1600): one
     * segment, [10·512 − 480, 53·512 + 480] = [4640, 27616] samples =
     * [29, 173] cs. */
    for (int i = 0; i < 100; i++) p[i] = (i >= 10 && i < 30) || (i >= 33 && i < 53) ? 0.9f : 0.1f;
    n = segs_of(p, 100, &vp, &s);
    CHECKF(n == 1 && s && fabs(s[0].start_s - 0.29) < 1e-9 && fabs(s[0].end_s - 1.73) < 1e-9, "min silence: %d", n);
    free(s);

    /* 5 frames apart (2560 samples: ends the first; the gap is under 3200,
     * so the merge joins them again): one segment. 8 frames apart (4096
     * samples): two segments, each padded by 480 samples. */
    for (int i = 0; i < 100; i++) p[i] = (i >= 10 && i < 30) || (i >= 35 && i < 55) ? 0.9f : 0.1f;
    n = segs_of(p, 100, &vp, &s);
    CHECKF(n == 1, "merge: %d segments", n);
    free(s);
    for (int i = 0; i < 100; i++) p[i] = (i >= 10 && i < 30) || (i >= 38 && i < 58) ? 0.9f : 0.1f;
    n = segs_of(p, 100, &vp, &s);
    /* [5120 − 480, 15360 + 480] and [19456 − 480, 29696 + 480] samples:
     * [29, 99] and [119, 189] cs. */
    CHECKF(n == 2 && s && fabs(s[0].end_s - 0.99) < 1e-9 && fabs(s[1].start_s - 1.19) < 1e-9 &&
               fabs(s[1].end_s - 1.89) < 1e-9,
           "two segments: %d", n);
    free(s);

    /* Speech to the end: it ends at the end of the last frame. */
    for (int i = 0; i < 100; i++) p[i] = i >= 50 ? 0.9f : 0.1f;
    n = segs_of(p, 100, &vp, &s);
    /* [25600 − 480, 51200] samples = [157, 320] cs. */
    CHECKF(n == 1 && s && fabs(s[0].start_s - 1.57) < 1e-9 && fabs(s[0].end_s - 3.2) < 1e-9, "to the end: %d", n);
    free(s);

    /* max_speech_s 2: 200 frames of speech (6.4 s) with no silence are cut
     * hard once a segment passes 32000 − 512 − 960 = 30528 samples, at the
     * first frame past it, and the next starts a frame later: [0, 30720],
     * [31232, 61952], [62464, 93184], [93696, 102400]. The 512-sample gaps
     * are not merged back (that would pass 2 s); padding splits them:
     * [0, 194], [194, 389], [389, 584], [584, 640] cs. */
    for (int i = 0; i < 200; i++) p[i] = 0.9f;
    vp.max_speech_s = 2.0f;
    n = segs_of(p, 200, &vp, &s);
    static const double want[4][2] = {{0, 1.94}, {1.94, 3.89}, {3.89, 5.84}, {5.84, 6.40}};
    CHECKF(n == 4, "max speech: %d segments", n);
    for (int i = 0; i < n && i < 4; i++)
        CHECKF(fabs(s[i].start_s - want[i][0]) < 1e-9 && fabs(s[i].end_s - want[i][1]) < 1e-9,
               "max speech: segment %d [%.2f, %.2f], want [%.2f, %.2f]", i, s[i].start_s, s[i].end_s, want[i][0],
               want[i][1]);
    free(s);
    hark_vad_params_init(&vp);

    /* A higher threshold finds nothing in 0.9 speech... */
    vp.threshold = 0.95f;
    n = segs_of(p, 200, &vp, &s);
    CHECK(n == 0);
    free(s);
}

static void test_params_check(void)
{
    struct hark_vad_params vp;
    char err[256];
    static const struct {
        int field;
        const char *name;
    } bad[] = {{0, "threshold"}, {1, "min_speech_ms"}, {2, "min_silence_ms"}, {3, "max_speech_s"},
               {4, "pad_ms"},    {5, "overlap_s"}};
    hark_vad_params_init(&vp);
    CHECK(hark_vad_params_check(&vp, err, sizeof err) == 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hark_vad_params_init(&vp);
        switch (bad[i].field) {
        case 0: vp.threshold = 1.5f; break;
        case 1: vp.min_speech_ms = -1; break;
        case 2: vp.min_silence_ms = -5; break;
        case 3: vp.max_speech_s = 0.5f; break;
        case 4: vp.pad_ms = -1; break;
        case 5: vp.overlap_s = NAN; break;
        }
        CHECK(hark_vad_params_check(&vp, err, sizeof err) == HARK_EINVAL);
        CHECKF(strstr(err, bad[i].name) != NULL, "%s: '%s'", bad[i].name, err);
    }
    struct hark_speech *s = (struct hark_speech *)1;
    int n = 5;
    vp.threshold = 0.0f;
    CHECK(hark_vad_segments(NULL, 0, &vp, &s, &n) == HARK_EINVAL && s == NULL && n == 0);
}

/* ------------------------------------------------------------- the maps */

static void test_map_openai(void)
{
    /* 10 s of a ramp; speech [1.00, 2.00] and [5.00, 6.00] s. */
    const size_t n = 160000;
    float *pcm = malloc(n * sizeof(float)), *out = NULL;
    for (size_t i = 0; i < n; i++) pcm[i] = (float)i;
    struct speech_seg segs[2] = {{100, 200}, {500, 600}};
    struct speech_map m;
    size_t n_out = 0;
    CHECK(speech_assemble(HARK_DECODER_OPENAI, pcm, n, segs, 2, 0.1f, &out, &n_out, &m) == 0);
    /* Back to back: 2 s of audio, samples 16000..31999 then 80000..95999. */
    CHECK(n_out == 32000);
    CHECK(out && out[0] == 16000.0f && out[15999] == 31999.0f && out[16000] == 80000.0f && out[31999] == 95999.0f);
    /* Chunk 0 ends at 16000 in the joined audio and moved by 100 cs;
     * chunk 1 moved by 400 cs. */
    CHECK(speech_map_time(&m, 0, -1, 0) == 100);
    CHECK(speech_map_time(&m, 50, -1, 0) == 150);
    CHECK(speech_map_time(&m, 100, -1, 0) == 500);  /* a start on the boundary: the next chunk */
    CHECK(speech_map_time(&m, 100, -1, 1) == 200);  /* an end on the boundary: this chunk */
    CHECK(speech_map_time(&m, 150, -1, 0) == 550);
    CHECK(speech_map_time(&m, 250, -1, 0) == 650);  /* past the end: the last chunk */
    CHECK(speech_map_chunk(&m, 99, 0) == 0 && speech_map_chunk(&m, 101, 0) == 1);
    CHECK(speech_map_time(&m, 99, 1, 0) == 499);    /* a chunk given: a word's middle decides */
    speech_map_deinit(&m);
    free(out);
    free(pcm);
}

static void test_map_whisper_cpp(void)
{
    const size_t n = 160000;
    float *pcm = malloc(n * sizeof(float)), *out = NULL;
    for (size_t i = 0; i < n; i++) pcm[i] = (float)i + 1.0f;
    struct speech_seg segs[2] = {{100, 200}, {500, 600}};
    struct speech_map m;
    size_t n_out = 0;
    CHECK(speech_assemble(HARK_DECODER_WHISPER_CPP, pcm, n, segs, 2, 0.1f, &out, &n_out, &m) == 0);
    /* Segment 0 with 0.1 s of what follows (17600 samples), 0.1 s of
     * silence, segment 1 (16000): 35200 samples. */
    CHECK(n_out == 35200);
    CHECK(out && out[0] == 16001.0f && out[17599] == 33600.0f && out[17600] == 0.0f && out[19199] == 0.0f &&
          out[19200] == 80001.0f && out[35199] == 96000.0f);
    /* Points: (0, 100) (100, 200) (110, 200) (120, 500) (220, 600). */
    CHECKF(m.n == 5, "%d points", m.n);
    static const int64_t proc[] = {0, 100, 110, 120, 220}, orig[] = {100, 200, 200, 500, 600};
    for (int i = 0; i < m.n && i < 5; i++) CHECK(m.proc_cs[i] == proc[i] && m.orig_cs[i] == orig[i]);
    CHECK(speech_map_time(&m, 0, -1, 0) == 100);
    CHECK(speech_map_time(&m, 50, -1, 0) == 150);
    CHECK(speech_map_time(&m, 105, -1, 0) == 200);  /* inside the overlap */
    CHECK(speech_map_time(&m, 115, -1, 0) == 350);  /* inside the silence: interpolated across the gap */
    CHECK(speech_map_time(&m, 170, -1, 0) == 550);
    CHECK(speech_map_time(&m, 300, -1, 0) == 600);  /* after the last point */
    speech_map_deinit(&m);
    free(out);
    free(pcm);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    file = t_read_file(t_shared("vad", "ggml-silero-v6.2.0.bin"), &file_len);
    if (file) index_records();
    t_run("params_check", test_params_check);
    t_run("segment_rules", test_segment_rules);
    t_run("map_openai", test_map_openai);
    t_run("map_whisper_cpp", test_map_whisper_cpp);
    t_run("load_errors", test_load_errors);
    if (!file) {
        t_skip("vad_file", "the VAD model is not present");
        return t_summary();
    }
    t_run("load", test_load);
    t_run("truncations", test_truncations);
    t_run("faults", test_faults);
    t_run("other_version", test_other_version);
    free(file);
    return t_summary();
}
