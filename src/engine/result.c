/*
 * result.c: the transcription result (result.h): building it segment by
 * segment, its accessors, freeing it, UTF-8 sanitising of segment text, and
 * the defaults of struct hark_options.
 */
#include <stdlib.h>
#include <string.h>

#include "hark.h"
#include "result.h"

void hark_options_init(struct hark_options *opt)
{
    memset(opt, 0, sizeof(*opt));
    opt->language = NULL;
    opt->task = HARK_TASK_TRANSCRIBE;
    opt->decoder = HARK_DECODER_OPENAI;
    opt->beam_size = 5;
    opt->best_of = 5;
    opt->temperature = 0.0f;
    opt->temperature_inc = 0.2f;
    opt->no_fallback = 0;
    opt->no_timestamps = 0;
    opt->condition_on_previous = 1;
    opt->initial_prompt = NULL;
    opt->compression_ratio_threshold = 2.4f;
    opt->logprob_threshold = -1.0f;
    opt->no_speech_threshold = 0.6f;
    opt->seed = 0;
    opt->progress = NULL;
    opt->progress_user = NULL;
    opt->on_segment = NULL;
    opt->segment_user = NULL;
    opt->vad = NULL;
    hark_vad_params_init(&opt->vad_params);
    opt->word_timestamps = 0;
    opt->alignment_heads = NULL;
}

static void segment_deinit(struct hark_segment *seg)
{
    if (seg->tokens) {
        for (int i = 0; i < seg->n_tokens; i++) free((char *)seg->tokens[i].text);
        free((struct hark_token *)seg->tokens);
    }
    free((char *)seg->text);
    if (seg->words) {
        for (int i = 0; i < seg->n_words; i++) free((char *)seg->words[i].text);
        free((struct hark_word *)seg->words);
    }
    seg->tokens = NULL;
    seg->text = NULL;
    seg->n_tokens = 0;
    seg->words = NULL;
    seg->n_words = 0;
}

int result_add_segment(struct hark_result *r, struct hark_segment *seg)
{
    if (r->n_segments == r->cap_segments) {
        int cap = r->cap_segments ? 2 * r->cap_segments : 16;
        struct hark_segment *s = realloc(r->segments, (size_t)cap * sizeof(*s));
        if (!s) {
            segment_deinit(seg);
            return HARK_ENOMEM;
        }
        r->segments = s;
        r->cap_segments = cap;
    }
    seg->id = r->n_segments;
    r->segments[r->n_segments++] = *seg;
    return 0;
}

/* Length of the valid UTF-8 sequence starting at s (1..4), or 0 when the
 * bytes there are not one (overlong forms, surrogates and values above
 * U+10FFFF are invalid, as in RFC 3629). */
static int utf8_valid_len(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int n;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else {
        return 0;
    }
    if ((size_t)n > left) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (int i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return n;
}

char *result_utf8_sanitize(const char *bytes, size_t len)
{
    /* Each invalid byte becomes U+FFFD (3 bytes), so 3 * len bounds it. */
    char *out = malloc(3 * len + 1);
    if (!out) return NULL;
    const unsigned char *s = (const unsigned char *)bytes;
    size_t i = 0, o = 0;
    while (i < len) {
        int n = utf8_valid_len(s + i, len - i);
        if (n > 0) {
            memcpy(out + o, s + i, (size_t)n);
            o += (size_t)n;
            i += (size_t)n;
        } else {
            out[o++] = (char)0xef;
            out[o++] = (char)0xbf;
            out[o++] = (char)0xbd;
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

int hark_result_n_segments(const hark_result *r)
{
    return r ? r->n_segments : 0;
}

const struct hark_segment *hark_result_segment(const hark_result *r, int i)
{
    if (!r || i < 0 || i >= r->n_segments) return NULL;
    return &r->segments[i];
}

const char *hark_result_language(const hark_result *r)
{
    return r ? r->language : "";
}

float hark_result_language_prob(const hark_result *r)
{
    return r ? r->language_prob : 0.0f;
}

double hark_result_duration_s(const hark_result *r)
{
    return r ? r->duration_s : 0.0;
}

const char *hark_result_task(const hark_result *r)
{
    return r && r->task == HARK_TASK_TRANSLATE ? "translate" : "transcribe";
}

int hark_result_vad(const hark_result *r, struct hark_vad_params *params, const char **name)
{
    if (!r || !r->vad_used) return 0;
    if (params) *params = r->vad_params;
    if (name) *name = r->vad_name;
    return 1;
}

int hark_result_n_speech(const hark_result *r)
{
    return r ? r->n_speech : 0;
}

const struct hark_speech *hark_result_speech(const hark_result *r, int i)
{
    if (!r || i < 0 || i >= r->n_speech) return NULL;
    return &r->speech[i];
}

void hark_result_free(hark_result *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_segments; i++) segment_deinit(&r->segments[i]);
    free(r->segments);
    free(r->speech);
    free(r);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

size_t result_trim(const char *s, size_t len, size_t *start)
{
    size_t a = 0, b = len;
    while (a < b && is_space(s[a])) a++;
    while (b > a && is_space(s[b - 1])) b--;
    *start = a;
    return b;
}

static char *dup_text(const char *t)
{
    return result_utf8_sanitize(t ? t : "", t ? strlen(t) : 0);
}

/* A deep copy of seg into out; on failure out holds what was copied, for
 * segment_deinit. */
static int segment_copy(struct hark_segment *out, const struct hark_segment *seg)
{
    *out = *seg;
    out->text = NULL;
    out->tokens = NULL;
    out->words = NULL;
    out->n_tokens = out->n_words = 0;
    if (!(out->text = dup_text(seg->text))) return HARK_ENOMEM;
    if (seg->n_tokens > 0) {
        struct hark_token *tk = calloc((size_t)seg->n_tokens, sizeof(*tk));
        if (!tk) return HARK_ENOMEM;
        out->tokens = tk;
        for (int i = 0; i < seg->n_tokens; i++, out->n_tokens++) {
            tk[i] = seg->tokens[i];
            tk[i].text = NULL;
            /* Token bytes may be part of a character: copied as they are. */
            const char *t = seg->tokens[i].text ? seg->tokens[i].text : "";
            if (!(tk[i].text = strdup(t))) return HARK_ENOMEM;
        }
    }
    if (seg->n_words > 0) {
        struct hark_word *w = calloc((size_t)seg->n_words, sizeof(*w));
        if (!w) return HARK_ENOMEM;
        out->words = w;
        for (int i = 0; i < seg->n_words; i++, out->n_words++) {
            w[i] = seg->words[i];
            if (!(w[i].text = dup_text(seg->words[i].text))) return HARK_ENOMEM;
        }
    }
    return 0;
}

int hark_result_prepend(hark_result *r, const struct hark_segment *segs, int n)
{
    if (!r || n < 0 || (n > 0 && !segs)) return HARK_EINVAL;
    if (n == 0) return 0;
    int total = r->n_segments + n;
    struct hark_segment *all = calloc((size_t)total, sizeof(*all));
    if (!all) return HARK_ENOMEM;
    for (int i = 0; i < n; i++) {
        if (segment_copy(&all[i], &segs[i]) != 0) {
            for (int k = 0; k <= i; k++) segment_deinit(&all[k]);
            free(all);
            return HARK_ENOMEM;
        }
    }
    if (r->n_segments) memcpy(all + n, r->segments, (size_t)r->n_segments * sizeof(*all));
    for (int i = 0; i < total; i++) {
        all[i].id = i;
        all[i].language = r->language;
    }
    free(r->segments);
    r->segments = all;
    r->n_segments = r->cap_segments = total;
    return 0;
}
