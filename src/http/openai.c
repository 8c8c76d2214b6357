/*
 * openai.c: the OpenAI-compatible routes: GET /v1/models,
 * POST /v1/audio/transcriptions and POST /v1/audio/translations, with the
 * request fields and response shapes of OpenAI's audio API, so its client
 * libraries work against hark unchanged. A request is answered
 * synchronously: the file is received into <data>/tmp, decoded, handed to
 * the next free worker ahead of queued jobs, and removed; nothing enters
 * the upload history. The model "whisper-1" is the server's default model.
 *
 * Speech detection follows the server's default unless the request sets
 * OpenAI's chunking_strategy: "auto" (on, the server's settings) or
 * {"type": "server_vad", "threshold", "prefix_padding_ms",
 * "silence_duration_ms"}, which become the threshold, the padding and the
 * minimum silence; hark's own form field "vad" (true or false) also turns
 * it on or off. POST /v1/audio/speech-timestamps answers the speech
 * segments of a file alone, as speaches' route of that name does.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hark.h"
#include "internal.h"
#include "media.h"
#include "queue.h"

enum MHD_Result route_v1_models(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    char **names = NULL;
    int n = 0, i;
    json_t *data = json_array();
    models_list(srv->models_dir, &names, &n);
    if (srv->default_model[0])
        json_array_append_new(data, json_pack("{s:s, s:s, s:i, s:s}", "id", "whisper-1", "object",
                                              "model", "created", 0, "owned_by", "hark"));
    for (i = 0; i < n; i++)
        json_array_append_new(data, json_pack("{s:s, s:s, s:i, s:s}", "id", names[i], "object",
                                              "model", "created", 0, "owned_by", "hark"));
    models_list_free(names, n);
    return http_send_json(c, rq, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

/* The whole text: the segments' texts joined, without outer white space. */
static char *full_text(const hark_result *r)
{
    size_t len = 0, off = 0, k;
    int i, n = hark_result_n_segments(r);
    char *s;
    for (i = 0; i < n; i++) len += strlen(hark_result_segment(r, i)->text);
    s = malloc(len + 1);
    if (!s) return NULL;
    for (i = 0; i < n; i++) {
        const char *t = hark_result_segment(r, i)->text;
        k = strlen(t);
        memcpy(s + off, t, k);
        off += k;
    }
    s[off] = 0;
    k = 0;
    while (s[k] == ' ' || s[k] == '\n') k++;
    memmove(s, s + k, off - k + 1);
    off -= k;
    while (off && (s[off - 1] == ' ' || s[off - 1] == '\n')) s[--off] = 0;
    return s;
}

/* Every segment's words, as OpenAI's API lists them: the text without its
 * leading space, start and end. */
static json_t *words_json(const hark_result *r)
{
    json_t *words = json_array();
    for (int i = 0; i < hark_result_n_segments(r); i++) {
        const struct hark_segment *seg = hark_result_segment(r, i);
        for (int k = 0; k < seg->n_words; k++) {
            const char *text = seg->words[k].text;
            while (*text == ' ') text++;
            json_array_append_new(words, json_pack("{s:s, s:f, s:f}", "word", text, "start", seg->words[k].start_s,
                                                   "end", seg->words[k].end_s));
        }
    }
    return words;
}

/* A float as the double its shortest decimal form reads as (0.6f is 0.6,
 * not 0.6000000238). */
static double shortest(float x)
{
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x) break;
    }
    return strtod(buf, NULL);
}

static json_t *verbose_json(const hark_result *r, const char *text, int words)
{
    json_t *segs = json_array(), *o;
    int i, j, n = hark_result_n_segments(r);
    int lang = hark_lang_index(hark_result_language(r));
    for (i = 0; i < n; i++) {
        const struct hark_segment *s = hark_result_segment(r, i);
        json_t *tokens = json_array();
        for (j = 0; j < s->n_tokens; j++) json_array_append_new(tokens, json_integer(s->tokens[j].id));
        json_array_append_new(segs,
                              json_pack("{s:i, s:i, s:f, s:f, s:s, s:o, s:f, s:f, s:f, s:f}", "id",
                                        s->id, "seek", s->seek, "start", s->start_s, "end", s->end_s,
                                        "text", s->text, "tokens", tokens, "temperature",
                                        (double)s->temperature, "avg_logprob",
                                        (double)s->avg_logprob, "compression_ratio",
                                        (double)s->compression_ratio, "no_speech_prob",
                                        (double)s->no_speech_prob));
    }
    o = json_pack("{s:s, s:s, s:f, s:s, s:o}", "task", hark_result_task(r), "language",
                  lang >= 0 ? hark_lang_name(lang) : hark_result_language(r), "duration",
                  hark_result_duration_s(r), "text", text, "segments", segs);
    if (o && words) json_object_set_new(o, "words", words_json(r));
    /* hark's addition: speech detection's settings and the speech. */
    struct hark_vad_params p;
    const char *name = NULL;
    if (o && hark_result_vad(r, &p, &name)) {
        json_t *speech = json_array();
        for (i = 0; i < hark_result_n_speech(r); i++)
            json_array_append_new(speech, json_pack("{s:f, s:f}", "start", hark_result_speech(r, i)->start_s, "end",
                                                    hark_result_speech(r, i)->end_s));
        json_object_set_new(o, "vad",
                            json_pack("{s:s, s:f, s:i, s:i, s:o, s:i, s:o}", "model", name, "threshold",
                                      shortest(p.threshold), "min_speech_ms", p.min_speech_ms, "min_silence_ms",
                                      p.min_silence_ms, "max_speech_s",
                                      isinf(p.max_speech_s) ? json_null() : json_real(shortest(p.max_speech_s)), "pad_ms",
                                      p.pad_ms, "speech", speech));
    }
    return o;
}

/* Reads chunking_strategy and "vad" into v; -1 after queueing a 400. */
static int read_vad_fields(struct MHD_Connection *c, struct request *rq, struct queue_vad *v,
                           enum MHD_Result *ret)
{
    const char *cs = receive_field(rq->rx, "chunking_strategy", 0), *on = receive_field(rq->rx, "vad", 0);
    char err[256];
    if (on && *on) {
        if (!strcmp(on, "true")) v->mode = QUEUE_VAD_ON;
        else if (!strcmp(on, "false")) v->mode = QUEUE_VAD_OFF;
        else {
            *ret = http_send_error(c, rq, 400, "invalid_value", "vad", NULL, "vad must be true or false");
            return -1;
        }
    }
    /* The object comes as JSON text, or (from OpenAI's own clients) as one
     * field per member: chunking_strategy[type], chunking_strategy[threshold]. */
    json_t *o = NULL, *x;
    const char *key;
    for (int i = 0; i < rq->rx->n_fields; i++) {
        const char *name = rq->rx->fields[i].name, *val = rq->rx->fields[i].value;
        size_t len = strlen(name);
        if (strncmp(name, "chunking_strategy[", 18) || len < 20 || name[len - 1] != ']') continue;
        char member[64], *end;
        snprintf(member, sizeof member, "%.*s", (int)(len - 19), name + 18);
        if (!o) o = json_object();
        double d = strtod(val, &end);
        json_object_set_new(o, member, *val && !*end ? json_real(d) : json_string(val));
    }
    if (!o && (!cs || !*cs)) return 0;
    if (!o && !strcmp(cs, "auto")) {
        v->mode = QUEUE_VAD_ON;
        return 0;
    }
    json_error_t je;
    if (!o) o = json_loads(cs, 0, &je);
    const char *type = json_string_value(json_object_get(o, "type"));
    if (!o || !json_is_object(o) || !type || strcmp(type, "server_vad")) {
        json_decref(o);
        *ret = http_send_error(c, rq, 400, "invalid_value", "chunking_strategy", NULL,
                               "chunking_strategy must be \"auto\" or an object with \"type\": \"server_vad\"");
        return -1;
    }
    v->mode = QUEUE_VAD_ON;
    json_object_foreach(o, key, x) {
        static const char *const names[][2] = {{"threshold", "threshold"},
                                               {"prefix_padding_ms", "pad_ms"},
                                               {"silence_duration_ms", "min_silence_ms"}};
        const char *ours = NULL;
        if (!strcmp(key, "type")) continue;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (!strcmp(key, names[i][0])) ours = names[i][1];
        if (!ours || !json_is_number(x) || queue_vad_set(v, ours, json_number_value(x), err, sizeof err) != 0) {
            if (!ours) snprintf(err, sizeof err, "\"%s\" is not a server_vad setting", key);
            else if (!json_is_number(x)) snprintf(err, sizeof err, "\"%s\" must be a number", key);
            json_decref(o);
            *ret = http_send_error(c, rq, 400, "invalid_value", "chunking_strategy", NULL, "chunking_strategy: %s",
                                   err);
            return -1;
        }
    }
    json_decref(o);
    return 0;
}

static enum MHD_Result send_text_format(struct MHD_Connection *c, struct request *rq,
                                        const hark_result *r, enum hark_format fmt)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    enum MHD_Result ret;
    if (!f) return MHD_NO;
    if (hark_result_write(r, fmt, f) < 0) {
        fclose(f);
        free(buf);
        return http_send_error(c, rq, 500, "internal", NULL, NULL, "cannot format the result");
    }
    fclose(f);
    ret = http_send_bytes(c, rq, 200, "text/plain; charset=utf-8", buf, len);
    free(buf);
    return ret;
}

/* Decodes the received file to 16 kHz mono; -1 after queueing the error
 * (400 for what is not audio). */
static int decode_file(struct MHD_Connection *c, struct request *rq, float **pcm, size_t *n, enum MHD_Result *ret)
{
    char err[512];
    int rc = media_decode(rq->rx->tmp_path, pcm, n, NULL, NULL, err, sizeof err);
    if (rc >= 0) return 0;
    if (rc == HARK_EAUDIO || rc == HARK_EFORMAT)
        *ret = http_send_failure(c, rq, HTTP_OP_MEDIA, rc, "file", NULL, "invalid file format: %s",
                                 media_reason(err, rq->rx->tmp_path));
    else
        *ret = http_send_failure(c, rq, HTTP_OP_MEDIA, rc, "file", NULL, "cannot read the file: %s", err);
    return -1;
}

/* ------------------------------------------------------------ streaming */

/* stream=true: the transcription runs on a thread of its own (the request's
 * answer must leave first), and OpenAI's transcription events follow as it
 * goes: a transcript.text.delta for each segment as the engine finishes it,
 * then transcript.text.done with the whole text and the usage, or an error
 * event in OpenAI's shape, which the official clients raise as an APIError. */
struct v1_stream {
    struct http_server *srv;
    struct sse *sse;
    struct hark_options opt;
    char model[256], language[32];
    char *prompt;
    float *pcm;
    size_t n;
    int sent; /* deltas sent */
};

static int stream_segment(void *user, const struct hark_segment *seg, int index)
{
    struct v1_stream *vs = user;
    const char *t = seg->text ? seg->text : "";
    (void)index;
    if (!vs->sent) t += strspn(t, " \n");
    if (!*t) return 0;
    vs->sent++;
    return sse_send(vs->sse, NULL, NULL, json_pack("{s:s, s:s}", "type", "transcript.text.delta", "delta", t)) != 0;
}

/* Usage as OpenAI counts it for its token-billed models: the audio as
 * encoder positions (one per 20 ms) and the tokens decoded. */
static json_t *usage_json(const hark_result *r, size_t n_samples)
{
    json_int_t audio = (json_int_t)((n_samples + 319) / 320), out = 0;
    for (int i = 0; i < hark_result_n_segments(r); i++) out += hark_result_segment(r, i)->n_tokens;
    return json_pack("{s:s, s:I, s:I, s:I}", "type", "tokens", "input_tokens", audio, "output_tokens", out,
                     "total_tokens", audio + out);
}

/* A client that hung up stops its transcription. */
static int stream_progress(void *user, float fraction)
{
    (void)fraction;
    return sse_gone(((struct v1_stream *)user)->sse);
}

static void *stream_run(void *arg)
{
    struct v1_stream *vs = arg;
    struct http_server *srv = vs->srv;
    hark_result *res = NULL;
    char err[512];
    vs->opt.on_segment = stream_segment;
    vs->opt.segment_user = vs;
    vs->opt.progress = stream_progress;
    vs->opt.progress_user = vs;
    int rc = queue_transcribe(srv->queue, vs->model, vs->pcm, vs->n, &vs->opt, &res, err, sizeof err);
    if (rc == 0) {
        char *text = full_text(res);
        if (text)
            sse_send(vs->sse, NULL, NULL,
                     json_pack("{s:s, s:s, s:o}", "type", "transcript.text.done", "text", text, "usage",
                               usage_json(res, vs->n)));
        free(text);
    } else if (!sse_gone(vs->sse)) {
        int status;
        const char *code;
        http_failure(HTTP_OP_TRANSCRIBE, rc, &status, &code);
        sse_send(vs->sse, NULL, NULL,
                 json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", err, "type",
                           status >= 500 ? "server_error" : "invalid_request_error", "param", "code", code));
    }
    hark_result_free(res);
    sse_close(vs->sse);
    free(vs->pcm);
    free(vs->prompt);
    free(vs);
    pthread_mutex_lock(&srv->lock);
    if (--srv->n_streams == 0) pthread_cond_broadcast(&srv->streams_cv);
    pthread_mutex_unlock(&srv->lock);
    return NULL;
}

/* Starts the thread and answers with the event stream. pcm is taken. */
static enum MHD_Result stream_start(struct http_server *srv, struct MHD_Connection *c, struct request *rq,
                                    const char *model, const struct hark_options *opt, float *pcm, size_t n)
{
    struct v1_stream *vs = calloc(1, sizeof *vs);
    pthread_attr_t attr;
    pthread_t th;
    if (!vs || (opt->initial_prompt && !(vs->prompt = strdup(opt->initial_prompt)))) goto nomem;
    vs->srv = srv;
    vs->opt = *opt;
    vs->opt.initial_prompt = vs->prompt;
    snprintf(vs->model, sizeof vs->model, "%s", model);
    if (opt->language) {
        snprintf(vs->language, sizeof vs->language, "%s", opt->language);
        vs->opt.language = vs->language;
    }
    vs->pcm = pcm;
    vs->n = n;
    vs->sse = sse_new(&srv->stopping);
    if (!vs->sse) goto nomem;
    struct MHD_Response *r = sse_response(vs->sse, c); /* takes the reader's reference, even on failure */
    if (!r) {
        sse_close(vs->sse);
        vs->sse = NULL;
        goto nomem;
    }
    pthread_mutex_lock(&srv->lock);
    srv->n_streams++;
    pthread_mutex_unlock(&srv->lock);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int started = pthread_create(&th, &attr, stream_run, vs) == 0;
    pthread_attr_destroy(&attr);
    if (!started) {
        pthread_mutex_lock(&srv->lock);
        srv->n_streams--;
        pthread_mutex_unlock(&srv->lock);
        sse_close(vs->sse);
        MHD_destroy_response(r);
        free(vs->prompt);
        free(vs);
        free(pcm);
        return http_send_error(c, rq, 503, "busy", NULL, NULL, "cannot start a transcription thread");
    }
    return http_send_response(c, rq, 200, r);
nomem:
    if (vs) free(vs->prompt);
    free(vs);
    free(pcm);
    return http_send_error(c, rq, 500, "out_of_memory", NULL, NULL, "out of memory");
}

enum MHD_Result route_v1_audio(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct receive *rx = rq->rx;
    struct hark_options opt;
    hark_result *res = NULL;
    float *pcm = NULL;
    size_t n = 0;
    char sha[65], err[512];
    const char *model, *format, *language, *prompt, *temp, *g;
    int translate = rq->route == ROUTE_V1_TRANSLATIONS, words = 0, i, rc;
    enum MHD_Result ret;

    if (receive_end(rx, sha) < 0)
        return http_send_error(c, rq, rx->status, rx->code, rx->param[0] ? rx->param : NULL, NULL,
                               "%s", rx->message);
    model = receive_field(rx, "model", 0);
    if (model && !strcmp(model, "whisper-1")) model = NULL;

    format = receive_field(rx, "response_format", 0);
    if (!format || !*format) format = "json";
    if (strcmp(format, "json") && strcmp(format, "text") && strcmp(format, "srt") &&
        strcmp(format, "verbose_json") && strcmp(format, "vtt"))
        return http_send_error(c, rq, 400, "invalid_value", "response_format", NULL,
                               "response_format must be json, text, srt, verbose_json or vtt, not \"%s\"",
                               format);
    const char *stream = receive_field(rx, "stream", 0);
    int streaming = stream && !strcmp(stream, "true");
    if (stream && !streaming && strcmp(stream, "false"))
        return http_send_error(c, rq, 400, "invalid_value", "stream", NULL,
                               "stream must be true or false, not \"%s\"", stream);
    if (streaming && strcmp(format, "json") && strcmp(format, "text"))
        return http_send_error(c, rq, 400, "invalid_value", "stream", NULL,
                               "stream=true sends text events; response_format must be json or text, not \"%s\"",
                               format);
    hark_options_init(&opt);
    language = receive_field(rx, "language", 0);
    if (language && *language) {
        if (hark_lang_index(language) < 0)
            return http_send_error(c, rq, 400, "invalid_value", "language", NULL,
                                   "unknown language \"%s\": use an ISO-639-1 code such as \"en\"",
                                   language);
        if (!translate) opt.language = language;
    }
    prompt = receive_field(rx, "prompt", 0);
    if (prompt && *prompt) opt.initial_prompt = prompt;
    temp = receive_field(rx, "temperature", 0);
    if (temp && *temp) {
        char *end;
        double t;
        errno = 0;
        t = strtod(temp, &end);
        if (errno || *end || !isfinite(t) || t < 0 || t > 1)
            return http_send_error(c, rq, 400, "invalid_value", "temperature", NULL,
                                   "temperature must be a number from 0 to 1");
        opt.temperature = (float)t;
    }
    /* Clients send the array as repeated "timestamp_granularities[]" or
     * "timestamp_granularities" fields. */
    for (int k = 0; k < 2; k++) {
        const char *field = k ? "timestamp_granularities" : "timestamp_granularities[]";
        for (i = 0; (g = receive_field(rx, field, i)); i++) {
            if (!strcmp(g, "word")) words = 1;
            else if (strcmp(g, "segment"))
                return http_send_error(c, rq, 400, "invalid_value", "timestamp_granularities", NULL,
                                       "timestamp granularities are \"segment\" and \"word\", not \"%s\"", g);
        }
    }
    opt.task = translate ? HARK_TASK_TRANSLATE : HARK_TASK_TRANSCRIBE;
    model = check_model(srv, c, rq, model, srv->default_model, translate, opt.language, &ret);
    if (!model) return ret;
    struct hark_vad_params defaults;
    struct queue_options jo;
    queue_vad_defaults(srv->queue, NULL, &defaults);
    queue_options_init(&jo, &defaults);
    if (words) jo.words = 1;
    if (read_vad_fields(c, rq, &jo.vad, &ret) < 0) return ret;
    if (queue_options_apply(srv->queue, &jo, &opt, err, sizeof err) < 0)
        return http_send_error(c, rq, 400, "vad_unavailable", "chunking_strategy", NULL, "%s", err);

    if (decode_file(c, rq, &pcm, &n, &ret) < 0) return ret;
    if (streaming) return stream_start(srv, c, rq, model, &opt, pcm, n);
    rc = queue_transcribe(srv->queue, model, pcm, n, &opt, &res, err, sizeof err);
    free(pcm);
    if (rc < 0)
        return http_send_failure(c, rq, HTTP_OP_TRANSCRIBE, rc, rc == HARK_ENOENT ? "model" : NULL, NULL, "%s", err);
    /* text, srt and vtt are the engine's own formats, sent as plain text as
     * OpenAI's API sends them; json and verbose_json are OpenAI's shapes. */
    const struct hark_format_info *tf = strcmp(format, "json") ? hark_format_find(format) : NULL;
    if (tf) {
        ret = send_text_format(c, rq, res, tf->fmt);
    } else {
        char *text = full_text(res);
        if (!text) ret = MHD_NO;
        else if (!strcmp(format, "json"))
            ret = http_send_json(c, rq, 200, json_pack("{s:s}", "text", text));
        else
            ret = http_send_json(c, rq, 200, verbose_json(res, text, words));
        free(text);
    }
    hark_result_free(res);
    return ret;
}

/* POST /v1/audio/speech-timestamps: multipart "file", and optionally the
 * settings as fields (threshold, min_speech_ms, min_silence_ms,
 * max_speech_s, pad_ms, or speaches' and faster-whisper's names for them):
 * {"segments": [{"start": s, "end": s}, ...]} in seconds. */
enum MHD_Result route_v1_speech(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct receive *rx = rq->rx;
    const hark_vad *vad = queue_vad_model(srv->queue);
    struct hark_vad_params defaults;
    struct queue_vad v;
    struct hark_speech *segs = NULL;
    float *pcm = NULL;
    size_t n = 0;
    int n_segs = 0, rc;
    enum MHD_Result ret;
    char sha[65], err[512];

    if (receive_end(rx, sha) < 0)
        return http_send_error(c, rq, rx->status, rx->code, rx->param[0] ? rx->param : NULL, NULL,
                               "%s", rx->message);
    if (!vad)
        return http_send_error(c, rq, 503, "vad_unavailable", NULL, NULL,
                               "speech detection needs a VAD model, and there is none in the models "
                               "folder: hark models download silero-v6.2.0");
    queue_vad_defaults(srv->queue, NULL, &defaults);
    queue_vad_init(&v, &defaults);
    for (int i = 0; i < rx->n_fields; i++) {
        const char *name = rx->fields[i].name, *val = rx->fields[i].value;
        char *end;
        if (!strcmp(name, "model") || !strcmp(name, "vad_filter")) continue;
        errno = 0;
        double x = strtod(val, &end);
        if (!strcmp(val, "inf") || !strcmp(val, "null")) x = INFINITY, end = (char *)val + strlen(val);
        if (errno || end == val || *end) {
            rc = queue_vad_set(&v, name, 0.0, err, sizeof err);
            if (rc == HARK_ENOENT)
                return http_send_error(c, rq, 400, "invalid_request", name, NULL, "%s", err);
            return http_send_error(c, rq, 400, "invalid_value", name, NULL, "\"%s\" must be a number", name);
        }
        if (queue_vad_set(&v, name, x, err, sizeof err) != 0)
            return http_send_error(c, rq, 400, "invalid_value", name, NULL, "%s", err);
    }
    if (decode_file(c, rq, &pcm, &n, &ret) < 0) return ret;
    rc = hark_vad_detect(vad, pcm, n, &v.params, 2, &segs, &n_segs, err, sizeof err);
    free(pcm);
    if (rc < 0) return http_send_error(c, rq, 500, "vad_failed", NULL, NULL, "%s", err);
    json_t *arr = json_array();
    for (int i = 0; i < n_segs; i++)
        json_array_append_new(arr, json_pack("{s:f, s:f}", "start", segs[i].start_s, "end", segs[i].end_s));
    free(segs);
    return http_send_json(c, rq, 200, json_pack("{s:o}", "segments", arr));
}
