/*
 * speech.c: speech segments from Silero VAD's frame probabilities, and
 * transcription of the speech alone with every time put back on the
 * original recording's timeline.
 *
 * Segments follow whisper.cpp 1.9.3's whisper_vad_segments_from_probs
 * step for step (itself Silero's get_speech_timestamps plus a merge of
 * gaps under 200 ms and a second minimum-length pass), in whole samples
 * and then whole centiseconds, so that they equal its segments exactly.
 * One departure: a merge never makes a segment longer than max_speech_s,
 * which whisper.cpp's merge does (undoing its own split).
 *
 * How the speech is joined and how times go back depends on the decoding
 * profile:
 * - whisper.cpp: as its whisper_vad does: each segment keeps overlap_s
 *   (0.1 s) of the audio after it, and 0.1 s of silence follows it; a
 *   table of (joined, original) time points, interpolated linearly in
 *   integer centiseconds, maps times back, and a segment shorter than
 *   10 cs after mapping is lengthened to 10 cs (whisper.cpp's
 *   whisper_full_get_segment_t1).
 * - openai: as faster-whisper's vad_filter does: the segments back to
 *   back with nothing between them (collect_chunks), and each time moved
 *   back by the silence removed before its chunk (SpeechTimestampsMap): a
 *   segment's start by the chunk that holds it, its end by the chunk it
 *   ends (a time on a chunk's end belongs to that chunk), and a token by
 *   the chunk that holds its middle, as faster-whisper places words.
 */
#include "speech.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "errors.h"
#include "model.h"
#include "result.h"
#include "state.h"
#include "vad.h"

#define SAMPLE_RATE 16000
#define SAMPLES_PER_CS 160

/* ---------------------------------------------------------------- params */

void hark_vad_params_init(struct hark_vad_params *p)
{
    p->threshold = 0.5f;
    p->min_speech_ms = 250;
    p->min_silence_ms = 100;
    p->max_speech_s = INFINITY;
    p->pad_ms = 30;
    p->overlap_s = 0.1f;
}

int hark_vad_params_check(const struct hark_vad_params *p, char *err, size_t errlen)
{
    const char *bad = NULL;
    if (!p) bad = "no settings given";
    else if (!(p->threshold > 0.0f && p->threshold <= 1.0f)) bad = "threshold must be in (0, 1]";
    else if (p->min_speech_ms < 0 || p->min_speech_ms > 3600000) bad = "min_speech_ms must be in [0, 3600000]";
    else if (p->min_silence_ms < 0 || p->min_silence_ms > 3600000) bad = "min_silence_ms must be in [0, 3600000]";
    else if (!(p->max_speech_s >= 1.0f)) bad = "max_speech_s must be at least 1";
    else if (p->pad_ms < 0 || p->pad_ms > 60000) bad = "pad_ms must be in [0, 60000]";
    else if (!(p->overlap_s >= 0.0f && p->overlap_s <= 1.0f)) bad = "overlap_s must be in [0, 1]";
    if (!bad) return 0;
    err_set(err, errlen, "VAD settings: %s", bad);
    return HARK_EINVAL;
}

/* -------------------------------------------------------------- segments */

static int64_t samples_to_cs(int samples)
{
    return (int64_t)((samples / (double)SAMPLE_RATE) * 100.0 + 0.5);
}

static int cs_to_samples(int64_t cs)
{
    return (int)((cs / 100.0) * SAMPLE_RATE + 0.5);
}

struct span {
    int start, end; /* samples */
};

static void erase(struct span *s, int *n, int i)
{
    memmove(s + i, s + i + 1, (size_t)(*n - i - 1) * sizeof(*s));
    (*n)--;
}

int speech_from_probs(const float *probs, size_t n_probs, const struct hark_vad_params *p,
                      struct speech_seg **out, int *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (hark_vad_params_check(p, NULL, 0) || (!probs && n_probs) ||
        n_probs > (size_t)(INT_MAX / 2 / VAD_WINDOW))
        return HARK_EINVAL;
    const int n_window = VAD_WINDOW;
    const int min_silence = SAMPLE_RATE * p->min_silence_ms / 1000;
    const int audio_length = (int)n_probs * n_window;
    const int min_speech = SAMPLE_RATE * p->min_speech_ms / 1000;
    const int pad = SAMPLE_RATE * p->pad_ms / 1000;
    int max_speech;
    if (p->max_speech_s > 100000.0f) {
        max_speech = INT_MAX / 2;
    } else {
        int64_t t = (int64_t)SAMPLE_RATE * (int64_t)p->max_speech_s - n_window - 2 * pad;
        max_speech = t > INT_MAX ? INT_MAX / 2 : (int)t;
        if (max_speech < 0) max_speech = INT_MAX / 2;
    }
    /* Silero's utils_vad.py: a silence over 98 ms marks a place where a
     * segment that grew past max_speech may be cut. */
    const int min_silence_at_max = SAMPLE_RATE * 98 / 1000;
    float neg_threshold = p->threshold - 0.15f;
    if (neg_threshold < 0.01f) neg_threshold = 0.01f;

    /* At most one segment starts per frame. */
    struct span *sp = malloc((n_probs / 2 + 2) * sizeof(*sp));
    if (!sp) return HARK_ENOMEM;
    int n = 0;
    int in_speech = 0, temp_end = 0, prev_end = 0, next_start = 0, start = 0, has_curr = 0;
    for (int i = 0; i < (int)n_probs; i++) {
        float prob = probs[i];
        int cur = n_window * i;
        if (prob >= p->threshold && temp_end) {
            temp_end = 0;
            if (next_start < prev_end) next_start = cur;
        }
        if (prob >= p->threshold && !in_speech) {
            in_speech = 1;
            start = cur;
            has_curr = 1;
            continue;
        }
        if (in_speech && cur - start > max_speech) {
            if (prev_end) {
                sp[n++] = (struct span){start, prev_end};
                has_curr = 1;
                if (next_start < prev_end) {
                    in_speech = 0;
                    has_curr = 0;
                } else {
                    start = next_start;
                }
                prev_end = next_start = temp_end = 0;
            } else {
                sp[n++] = (struct span){start, cur};
                prev_end = next_start = temp_end = 0;
                in_speech = 0;
                has_curr = 0;
                continue;
            }
        }
        if (prob < neg_threshold && in_speech) {
            if (!temp_end) temp_end = cur;
            if (cur - temp_end > min_silence_at_max) prev_end = temp_end;
            if (cur - temp_end < min_silence) continue;
            if (temp_end - start > min_speech) sp[n++] = (struct span){start, temp_end};
            prev_end = next_start = temp_end = 0;
            in_speech = 0;
            has_curr = 0;
            continue;
        }
    }
    if (has_curr && audio_length - start > min_speech) sp[n++] = (struct span){start, audio_length};

    /* Gaps under 200 ms join their neighbours. whisper.cpp joins them
     * whatever the length, which puts back together what max_speech_s has
     * just cut; hark does not join past that length (with the default,
     * no limit, the two agree). */
    const double max_joined = (double)p->max_speech_s * SAMPLE_RATE;
    for (int i = 0; i < n - 1; i++) {
        if (sp[i + 1].start - sp[i].end < SAMPLE_RATE * 200 / 1000 && sp[i + 1].end - sp[i].start <= max_joined) {
            sp[i].end = sp[i + 1].end;
            erase(sp, &n, i + 1);
            i--;
        }
    }
    for (int i = 0; i < n; i++) {
        if (sp[i].end - sp[i].start < min_speech) {
            erase(sp, &n, i);
            i--;
        }
    }
    /* Padding: the whole pad where the gap allows, else half the gap. */
    struct speech_seg *seg = n ? malloc((size_t)n * sizeof(*seg)) : NULL;
    if (n && !seg) {
        free(sp);
        return HARK_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        if (i == 0) sp[i].start = sp[i].start > pad ? sp[i].start - pad : 0;
        if (i < n - 1) {
            int gap = sp[i + 1].start - sp[i].end;
            if (gap < 2 * pad) {
                sp[i].end += gap / 2;
                sp[i + 1].start = sp[i + 1].start > gap / 2 ? sp[i + 1].start - gap / 2 : 0;
            } else {
                sp[i].end = sp[i].end + pad < audio_length ? sp[i].end + pad : audio_length;
                sp[i + 1].start = sp[i + 1].start > pad ? sp[i + 1].start - pad : 0;
            }
        } else {
            sp[i].end = sp[i].end + pad < audio_length ? sp[i].end + pad : audio_length;
        }
        seg[i].t0_cs = samples_to_cs(sp[i].start);
        seg[i].t1_cs = samples_to_cs(sp[i].end);
    }
    free(sp);
    *out = seg;
    *n_out = n;
    return 0;
}

int hark_vad_segments(const float *probs, size_t n_probs, const struct hark_vad_params *params,
                      struct hark_speech **segments, int *n_segments)
{
    struct speech_seg *s = NULL;
    int n = 0;
    if (!segments || !n_segments) return HARK_EINVAL;
    *segments = NULL;
    *n_segments = 0;
    int rc = speech_from_probs(probs, n_probs, params, &s, &n);
    if (rc) return rc;
    struct hark_speech *out = n ? malloc((size_t)n * sizeof(*out)) : NULL;
    if (n && !out) {
        free(s);
        return HARK_ENOMEM;
    }
    for (int i = 0; i < n; i++) out[i] = (struct hark_speech){s[i].t0_cs / 100.0, s[i].t1_cs / 100.0};
    free(s);
    *segments = out;
    *n_segments = n;
    return 0;
}

int hark_vad_detect(const hark_vad *vad, const float *pcm, size_t n_samples,
                    const struct hark_vad_params *params, int n_threads, struct hark_speech **segments,
                    int *n_segments, char *err, size_t errlen)
{
    float *probs = NULL;
    size_t n = 0;
    if (segments) *segments = NULL;
    if (n_segments) *n_segments = 0;
    int rc = hark_vad_params_check(params, err, errlen);
    if (rc) return rc;
    rc = hark_vad_probs(vad, pcm, n_samples, n_threads, &probs, &n, err, errlen);
    if (rc) return rc;
    rc = hark_vad_segments(probs, n, params, segments, n_segments);
    free(probs);
    /* whisper.cpp lets the last segment run to the end of the last,
     * zero-padded frame; hark stops it at the end of the audio. */
    for (int i = 0; !rc && i < *n_segments; i++)
        if ((*segments)[i].end_s > (double)n_samples / SAMPLE_RATE) (*segments)[i].end_s = (double)n_samples / SAMPLE_RATE;
    if (rc) err_set(err, errlen, "hark_vad_detect: %s", hark_strerror(rc));
    return rc;
}

/* ------------------------------------------------------------- the joins */

void speech_map_deinit(struct speech_map *m)
{
    free(m->proc_cs);
    free(m->orig_cs);
    free(m->chunk_end);
    free(m->shift_cs);
    memset(m, 0, sizeof(*m));
}

/* whisper.cpp's whisper_vad: the buffer is sized by a first pass and
 * filled by a second, each with its own clamping, and the transcription
 * runs on the whole buffer (any tail the second pass left is silence). */
static int assemble_wcpp(const float *pcm, int n_samples, const struct speech_seg *segs, int n_segs,
                         float overlap_s, float **out, size_t *n_out, struct speech_map *map)
{
    const int overlap = (int)(overlap_s * SAMPLE_RATE);
    const int silence = (int)(0.1 * SAMPLE_RATE);
    int64_t total = 0;
    for (int i = 0; i < n_segs; i++) {
        int a = cs_to_samples(segs[i].t0_cs), b = cs_to_samples(segs[i].t1_cs);
        if (i < n_segs - 1) b += overlap;
        if (b > n_samples - 1) b = n_samples - 1;
        total += b - a;
    }
    total += (int64_t)(n_segs - 1) * silence;
    if (total < 0) total = 0;
    float *buf = calloc((size_t)total + 1, sizeof(float));
    map->proc_cs = malloc((size_t)4 * n_segs * sizeof(int64_t));
    map->orig_cs = malloc((size_t)4 * n_segs * sizeof(int64_t));
    if (!buf || !map->proc_cs || !map->orig_cs) {
        free(buf);
        return HARK_ENOMEM;
    }
    int64_t offset = 0;
    int np = 0;
    for (int i = 0; i < n_segs; i++) {
        int a = cs_to_samples(segs[i].t0_cs), b = cs_to_samples(segs[i].t1_cs);
        if (a > n_samples - 1) a = n_samples - 1;
        if (b > n_samples - 1) b = n_samples - 1;
        int orig_len = b - a;
        if (i < n_segs - 1) b = b + overlap < n_samples - 1 ? b + overlap : n_samples - 1;
        int len = b - a;
        if (len <= 0) continue;
        if (offset + len > total) break; /* cannot happen: the first pass bounds the second */
        map->proc_cs[np] = samples_to_cs((int)offset);
        map->orig_cs[np++] = segs[i].t0_cs;
        map->proc_cs[np] = samples_to_cs((int)(offset + orig_len));
        map->orig_cs[np++] = segs[i].t1_cs;
        memcpy(buf + offset, pcm + a, (size_t)len * sizeof(float));
        offset += len;
        if (i < n_segs - 1) {
            map->proc_cs[np] = samples_to_cs((int)offset);
            map->orig_cs[np++] = segs[i].t1_cs;
            map->proc_cs[np] = samples_to_cs((int)(offset + silence));
            map->orig_cs[np++] = segs[i + 1].t0_cs;
            offset += silence; /* already zero */
        }
    }
    /* The points are in order; repeated processed times keep their first. */
    int k = 0;
    for (int i = 0; i < np; i++) {
        if (k && map->proc_cs[k - 1] == map->proc_cs[i]) continue;
        map->proc_cs[k] = map->proc_cs[i];
        map->orig_cs[k++] = map->orig_cs[i];
    }
    map->n = k;
    *out = buf;
    *n_out = (size_t)total;
    return 0;
}

/* faster-whisper's collect_chunks and SpeechTimestampsMap. */
static int assemble_openai(const float *pcm, int n_samples, const struct speech_seg *segs, int n_segs,
                           float **out, size_t *n_out, struct speech_map *map)
{
    int64_t total = 0;
    for (int i = 0; i < n_segs; i++) {
        int64_t a = segs[i].t0_cs * SAMPLES_PER_CS, b = segs[i].t1_cs * SAMPLES_PER_CS;
        if (b > n_samples) b = n_samples;
        if (b > a) total += b - a;
    }
    float *buf = malloc(((size_t)total + 1) * sizeof(float));
    map->chunk_end = malloc((size_t)n_segs * sizeof(int64_t));
    map->shift_cs = malloc((size_t)n_segs * sizeof(int64_t));
    if (!buf || !map->chunk_end || !map->shift_cs) {
        free(buf);
        return HARK_ENOMEM;
    }
    int64_t offset = 0, prev_end = 0, removed = 0;
    int k = 0;
    for (int i = 0; i < n_segs; i++) {
        int64_t a = segs[i].t0_cs * SAMPLES_PER_CS, b = segs[i].t1_cs * SAMPLES_PER_CS;
        if (b > n_samples) b = n_samples;
        if (b <= a) continue;
        memcpy(buf + offset, pcm + a, (size_t)(b - a) * sizeof(float));
        offset += b - a;
        removed += a - prev_end;
        prev_end = b;
        map->chunk_end[k] = b - removed;
        map->shift_cs[k++] = removed / SAMPLES_PER_CS;
    }
    map->n = k;
    *out = buf;
    *n_out = (size_t)total;
    return 0;
}

int speech_assemble(int profile, const float *pcm, size_t n_samples, const struct speech_seg *segs,
                    int n_segs, float overlap_s, float **out, size_t *n_out, struct speech_map *map)
{
    memset(map, 0, sizeof(*map));
    map->profile = profile;
    *out = NULL;
    *n_out = 0;
    if (n_segs < 1 || n_samples > (size_t)INT_MAX) return HARK_EINVAL;
    int rc = profile == HARK_DECODER_WHISPER_CPP
                 ? assemble_wcpp(pcm, (int)n_samples, segs, n_segs, overlap_s, out, n_out, map)
                 : assemble_openai(pcm, (int)n_samples, segs, n_segs, out, n_out, map);
    if (rc) speech_map_deinit(map);
    return rc;
}

int speech_map_chunk(const struct speech_map *m, int64_t t_cs, int is_end)
{
    if (m->profile == HARK_DECODER_WHISPER_CPP || m->n == 0) return 0;
    int64_t sample = t_cs * SAMPLES_PER_CS;
    if (is_end)
        for (int i = 0; i < m->n; i++)
            if (m->chunk_end[i] == sample) return i;
    /* bisect_right: the chunks that end at or before the sample. */
    int lo = 0, hi = m->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (m->chunk_end[mid] <= sample) lo = mid + 1;
        else hi = mid;
    }
    return lo < m->n - 1 ? lo : m->n - 1;
}

int64_t speech_map_time(const struct speech_map *m, int64_t t, int chunk, int is_end)
{
    if (m->n == 0) return t;
    if (m->profile != HARK_DECODER_WHISPER_CPP) {
        if (chunk < 0 || chunk >= m->n) chunk = speech_map_chunk(m, t, is_end);
        return t + m->shift_cs[chunk];
    }
    if (t <= m->proc_cs[0]) return m->orig_cs[0];
    if (t >= m->proc_cs[m->n - 1]) return m->orig_cs[m->n - 1];
    int lo = 0, hi = m->n - 1; /* the first point at or after t */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (m->proc_cs[mid] < t) lo = mid + 1;
        else hi = mid;
    }
    if (m->proc_cs[lo] == t) return m->orig_cs[lo];
    int64_t dp = m->proc_cs[lo] - m->proc_cs[lo - 1], d0 = m->orig_cs[lo] - m->orig_cs[lo - 1];
    if (dp == 0) return m->orig_cs[lo - 1];
    return m->orig_cs[lo - 1] + (t - m->proc_cs[lo - 1]) * d0 / dp;
}

/* ------------------------------------------------------------ transcribe */

static int64_t to_cs(double s)
{
    return (int64_t)llround(s * 100.0);
}

/* Moves every time of segment s from the joined audio back to the
 * original. */
static void map_segment(struct hark_segment *s, const struct speech_map *m)
{
    int wcpp = m->profile == HARK_DECODER_WHISPER_CPP;
    int64_t t0 = speech_map_time(m, to_cs(s->start_s), -1, 0);
    int64_t t1 = speech_map_time(m, to_cs(s->end_s), -1, 1);
    if (wcpp && t1 - t0 < 10) t1 = t0 + 10;
    s->seek = (int)speech_map_time(m, s->seek, -1, 0);
    struct hark_token *tk = (struct hark_token *)s->tokens;
    for (int j = 0; j < s->n_tokens; j++) {
        if (tk[j].t0_s < 0.0) continue;
        int64_t a = to_cs(tk[j].t0_s), b = to_cs(tk[j].t1_s);
        int chunk = speech_map_chunk(m, (a + b) / 2, 0);
        tk[j].t0_s = speech_map_time(m, a, chunk, 0) / 100.0;
        tk[j].t1_s = speech_map_time(m, b, chunk, 0) / 100.0;
    }
    for (int j = 0; j < s->n_tokens; j++)
        if (tk[j].t_dtw_s >= 0.0) tk[j].t_dtw_s = speech_map_time(m, to_cs(tk[j].t_dtw_s), -1, 0) / 100.0;
    /* A word keeps to the stretch of speech that holds its middle, as
     * faster-whisper places words. */
    struct hark_word *w = (struct hark_word *)s->words;
    for (int j = 0; j < s->n_words; j++) {
        int64_t a = to_cs(w[j].start_s), b = to_cs(w[j].end_s);
        int chunk = speech_map_chunk(m, (a + b) / 2, 0);
        w[j].start_s = speech_map_time(m, a, chunk, 0) / 100.0;
        w[j].end_s = speech_map_time(m, b, chunk, 0) / 100.0;
    }
    s->start_s = t0 / 100.0;
    s->end_s = t1 / 100.0;
}

static void map_result(struct hark_result *r, const struct speech_map *m)
{
    for (int i = 0; i < r->n_segments; i++) map_segment(&r->segments[i], m);
}

/* The caller's segment callback, given each segment on the original
 * timeline: a copy is mapped, since the result maps its own at the end. */
struct segment_relay {
    const struct hark_options *opt;
    const struct speech_map *map;
};

static int relay_segment(void *user, const struct hark_segment *seg, int index)
{
    const struct segment_relay *sr = user;
    struct hark_segment copy = *seg;
    struct hark_token *tk = malloc((size_t)(seg->n_tokens ? seg->n_tokens : 1) * sizeof(*tk));
    struct hark_word *w = malloc((size_t)(seg->n_words ? seg->n_words : 1) * sizeof(*w));
    int rc = HARK_ENOMEM;
    if (tk && w) {
        if (seg->n_tokens) memcpy(tk, seg->tokens, (size_t)seg->n_tokens * sizeof(*tk));
        if (seg->n_words) memcpy(w, seg->words, (size_t)seg->n_words * sizeof(*w));
        copy.tokens = tk;
        copy.words = w;
        map_segment(&copy, sr->map);
        rc = sr->opt->on_segment(sr->opt->segment_user, &copy, index);
    }
    free(tk);
    free(w);
    return rc;
}

/* The next window's start, on the original timeline: where a resumed run
 * (start_s) leaves out the speech before. */
static int relay_window(void *user, double next_s, int n_segments)
{
    const struct segment_relay *sr = user;
    double at = speech_map_time(sr->map, to_cs(next_s), -1, 0) / 100.0;
    return sr->opt->on_window(sr->opt->window_user, at, n_segments);
}

struct vad_cancel {
    const struct hark_options *opt;
};

static int ask_cancel(void *user)
{
    const struct hark_options *opt = ((struct vad_cancel *)user)->opt;
    return opt->progress && opt->progress(opt->progress_user, 0.0f);
}

int speech_transcribe(struct hark_state *st, const float *pcm, size_t n_samples,
                      const struct hark_options *opt, const struct decode_hooks *hooks,
                      struct hark_result **out, char *err, size_t errlen)
{
    struct hark_options o = *opt;
    struct hark_result *r = NULL;
    struct speech_seg *segs = NULL;
    struct speech_map map;
    float *probs = NULL, *joined = NULL;
    size_t n_joined = 0;
    int n_segs = 0;
    memset(&map, 0, sizeof(map));
    if (out) *out = NULL;
    if (!out) return HARK_EINVAL;
    if (o.beam_size < 1) o.beam_size = 1;
    if (o.best_of < 1) o.best_of = 1;
    int rc = decode_check(st, pcm, n_samples, &o, err, errlen);
    if (!rc) rc = hark_vad_params_check(&o.vad_params, err, errlen);
    if (rc) return rc;
    if (n_samples > (size_t)INT_MAX / 2) {
        err_set(err, errlen, "hark_transcribe: audio too long for speech detection");
        return HARK_ERANGE;
    }

    size_t n_probs = (n_samples + VAD_WINDOW - 1) / VAD_WINDOW;
    probs = malloc((n_probs ? n_probs : 1) * sizeof(float));
    if (!probs) {
        rc = HARK_ENOMEM;
        goto fail;
    }
    struct vad_cancel vc = {opt};
    rc = vad_run(o.vad, st->pool, pcm, n_samples, probs, n_probs, ask_cancel, &vc);
    if (!rc) rc = speech_from_probs(probs, n_probs, &o.vad_params, &segs, &n_segs);
    if (rc) goto fail;

    /* With start_s, the speech before it is left out; the result still
     * lists all the speech found. */
    int64_t start_cs = to_cs(o.start_s);
    int first = 0;
    while (first < n_segs && segs[first].t1_cs <= start_cs) first++;
    int n_left = n_segs - first;
    struct speech_seg first_seg = n_left > 0 ? segs[first] : (struct speech_seg){0, 0};
    if (n_left > 0 && first_seg.t0_cs < start_cs) segs[first].t0_cs = start_cs;
    if (n_left > 0) {
        rc = speech_assemble(o.decoder, pcm, n_samples, segs + first, n_left, o.vad_params.overlap_s,
                             &joined, &n_joined, &map);
        segs[first] = first_seg;
        if (rc) goto fail;
    }
    o.start_s = 0.0;
    if (n_left > 0 && n_joined > 0) {
        struct segment_relay relay = {opt, &map};
        o.vad = NULL;
        if (opt->on_segment) {
            o.on_segment = relay_segment;
            o.segment_user = &relay;
        }
        if (opt->on_window) {
            o.on_window = relay_window;
            o.window_user = &relay;
        }
        rc = decode_run(st, joined, n_joined, &o, hooks, &r, err, errlen);
        if (rc) goto out;
        map_result(r, &map);
    } else {
        /* No speech: nothing to transcribe and no language heard. */
        r = calloc(1, sizeof(*r));
        if (!r) {
            rc = HARK_ENOMEM;
            goto fail;
        }
        r->task = o.task;
        r->word_timestamps = o.word_timestamps != 0;
        const char *lang = o.language && o.language[0] && strcmp(o.language, "auto") ? o.language
                           : st->model->hp.n_vocab < 51865                            ? "en"
                                                                                     : NULL;
        if (lang && hark_lang_code(hark_lang_index(lang)))
            snprintf(r->language, sizeof(r->language), "%s", hark_lang_code(hark_lang_index(lang)));
        r->language_prob = lang ? 1.0f : 0.0f;
        if (opt->progress && opt->progress(opt->progress_user, 1.0f)) {
            rc = HARK_ECANCELED;
            goto fail;
        }
    }
    r->duration_s = (double)n_samples / SAMPLE_RATE;
    r->vad_used = 1;
    r->vad_params = o.vad_params;
    snprintf(r->vad_name, sizeof(r->vad_name), "%s", opt->vad->name);
    if (n_segs) {
        r->speech = malloc((size_t)n_segs * sizeof(*r->speech));
        if (!r->speech) {
            rc = HARK_ENOMEM;
            goto fail;
        }
        for (int i = 0; i < n_segs; i++) {
            r->speech[i] = (struct hark_speech){segs[i].t0_cs / 100.0, segs[i].t1_cs / 100.0};
            if (r->speech[i].end_s > r->duration_s) r->speech[i].end_s = r->duration_s;
        }
        r->n_speech = n_segs;
    }
    *out = r;
    r = NULL;
    goto out;
fail:
    if (rc == HARK_ECANCELED) err_set(err, errlen, "hark_transcribe: canceled by a callback");
    else err_set(err, errlen, "hark_transcribe: speech detection failed: %s", hark_strerror(rc));
out:
    hark_result_free(r);
    speech_map_deinit(&map);
    free(segs);
    free(probs);
    free(joined);
    return rc;
}
