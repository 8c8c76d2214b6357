/*
 * hark.h: the public C API of hark's Whisper engine.
 *
 * The engine loads Whisper models in whisper.cpp's ggml file format and turns
 * 16 kHz mono float PCM into timed text. It is split, as whisper.cpp is, into
 * an immutable model (weights, vocabulary, mel filters; mmapped, shared by
 * any number of threads) and a state (every per-transcription buffer: mel,
 * activations, key/value caches; used by one thread at a time).
 *
 * Errors: a function that can fail returns 0 or a negative HARK_E* code from
 * the table below; hark_strerror() names it. Constructors also fill a
 * caller-supplied buffer with a one-line reason that names the thing that was
 * wrong (the file, the tensor, the field).
 */
#ifndef HARK_H
#define HARK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes: name, value, message. The one table that also generates
 * hark_strerror(). */
#define HARK_ERRORS(X)                                          \
    X(OK, 0, "success")                                         \
    X(EINVAL, -1, "invalid argument")                           \
    X(ENOMEM, -2, "out of memory")                              \
    X(EIO, -3, "input/output error")                            \
    X(EFORMAT, -4, "malformed model file")                      \
    X(EAUDIO, -5, "unsupported or malformed audio")             \
    X(ECANCELED, -6, "canceled")                                \
    X(ERANGE, -7, "value out of range")                         \
    X(ENOTSUP, -8, "not supported")                             \
    X(ENOENT, -9, "no such file or directory")                  \
    X(EEXIST, -10, "already exists")                            \
    X(EBUSY, -11, "in use")                                     \
    X(EAGAIN, -12, "nothing available now")                     \
    X(ESTALE, -13, "no longer held by the caller")

enum hark_error {
#define HARK_ERR_ENUM(name, value, msg) HARK_##name = value,
    HARK_ERRORS(HARK_ERR_ENUM)
#undef HARK_ERR_ENUM
};

/* Returns a static string for a HARK_E* code (never NULL). Thread-safe. */
const char *hark_strerror(int code);

/* ---------------------------------------------------------------- model */

typedef struct hark_model hark_model;

/* The header fields of a ggml Whisper file, in file order. */
struct hark_hparams {
    int32_t n_vocab;
    int32_t n_audio_ctx;
    int32_t n_audio_state;
    int32_t n_audio_head;
    int32_t n_audio_layer;
    int32_t n_text_ctx;
    int32_t n_text_state;
    int32_t n_text_head;
    int32_t n_text_layer;
    int32_t n_mels;
    int32_t ftype; /* ftype % 1000 (0 f32, 1 f16, 2 q4_0, 3 q4_1, 7 q8_0, 8 q5_0, 9 q5_1) */
};

/* Loads and validates a model file (mmapped). Returns NULL on failure with a
 * one-line reason in err (naming the file) and, if code is not NULL, the
 * HARK_E* code in *code. The model is immutable: any number of threads may
 * use it at once. Free it with hark_model_free() after every state made from
 * it has been freed. */
hark_model *hark_model_load(const char *path, int *code, char *err, size_t errlen);

/* Reads only a model file's header: its hyperparameters into *hp, checked
 * as hark_model_load checks them, without loading the weights. Returns 0,
 * or a HARK_E* code with a one-line reason in err. */
int hark_model_peek(const char *path, struct hark_hparams *hp, char *err, size_t errlen);

/* Frees a model; NULL is a no-op. */
void hark_model_free(hark_model *model);

/* Borrowed; lives as long as the model. */
const struct hark_hparams *hark_model_hparams(const hark_model *model);

/* 1 if the vocabulary is multilingual (n_vocab >= 51865), else 0. */
int hark_model_is_multilingual(const hark_model *model);

/* Tensor listing for `hark models info`: the i-th tensor record in file
 * order. The name is borrowed for the model's lifetime. Returns 0, or
 * HARK_ERANGE when i is out of range. */
struct hark_tensor_info {
    const char *name;
    int type; /* ggml type id: 0 f32, 1 f16, 2 q4_0, 3 q4_1, 6 q5_0, 7 q5_1, 8 q8_0 */
    int n_dims;
    int64_t ne[4]; /* ggml order: ne[0] varies fastest */
    size_t n_bytes;
};
int hark_model_n_tensors(const hark_model *model);
int hark_model_tensor(const hark_model *model, int i, struct hark_tensor_info *info);

/* The name of a ggml tensor type ("f16", "q5_1", ...); "?" if unknown. */
const char *hark_type_name(int type);

/* Language table (openai-whisper's LANGUAGES order). Index 0 is "en".
 * hark_lang_count() is 100 for large-v3 vocabularies, 99 otherwise. */
int hark_lang_count(const hark_model *model);
const char *hark_lang_code(int index); /* "en", "zh", ...; NULL if out of range */
const char *hark_lang_name(int index); /* "english", ...; NULL if out of range */
int hark_lang_index(const char *code_or_name); /* -1 if unknown */

/* ---------------------------------------------------------------- state */

typedef struct hark_state hark_state;

/* Makes a state for one transcription at a time over the given model, with
 * n_threads worker threads (>= 1). Returns NULL on failure (reason in err).
 * The model must outlive the state. A state is used by one thread at a
 * time; different states over one model may run concurrently. */
hark_state *hark_state_new(const hark_model *model, int n_threads, char *err, size_t errlen);

/* Frees a state; NULL is a no-op. */
void hark_state_free(hark_state *state);

/* ------------------------------------------------------------------ vad */

/* Speech detection with Silero VAD in whisper.cpp's ggml VAD file format
 * (`ggml-silero-v6.2.0.bin`, `ggml-silero-v5.1.2.bin`). Like a Whisper
 * model, a loaded VAD model is immutable and may be used by any number of
 * threads at once. */
typedef struct hark_vad hark_vad;

/* Samples per probability: one speech probability per 512-sample (32 ms)
 * frame of 16 kHz audio. */
#define HARK_VAD_FRAME 512

/* Loads and validates a VAD model file. Returns NULL on failure with a
 * one-line reason in err (naming the file and the fault) and, if code is
 * not NULL, the HARK_E* code in *code. Free it with hark_vad_free(). */
hark_vad *hark_vad_load(const char *path, int *code, char *err, size_t errlen);

/* Frees a VAD model; NULL is a no-op. */
void hark_vad_free(hark_vad *vad);

/* The model's name as its file states it, e.g. "silero-v6.2.0". Borrowed;
 * lives as long as the model. */
const char *hark_vad_name(const hark_vad *vad);

/* How probabilities become speech segments (whisper.cpp's
 * whisper_vad_params and defaults). */
struct hark_vad_params {
    float threshold;      /* speech starts at p >= threshold; default 0.5 */
    int min_speech_ms;    /* shorter speech is dropped; default 250 */
    int min_silence_ms;   /* silence that ends speech (below threshold - 0.15); default 100 */
    float max_speech_s;   /* longer speech is split; default INFINITY (never) */
    int pad_ms;           /* padding added around each segment; default 30 */
    float overlap_s;      /* whisper.cpp profile: audio each segment keeps of the
                             next stretch when segments are joined; default 0.1 */
};

/* Fills params with the defaults above. */
void hark_vad_params_init(struct hark_vad_params *params);

/* Checks every field's range. Returns 0, or HARK_EINVAL with a one-line
 * reason naming the field in err. */
int hark_vad_params_check(const struct hark_vad_params *params, char *err, size_t errlen);

/* One stretch of speech, in seconds on the audio's timeline. */
struct hark_speech {
    double start_s, end_s;
};

/* The speech probability of every HARK_VAD_FRAME-sample frame of 16 kHz
 * mono PCM (the last frame zero-padded), with the LSTM state starting at
 * zero, on n_threads threads (>= 1). On success returns 0 and a malloc'ed
 * array of ceil(n_samples / 512) floats in *probs (owned by the caller:
 * free()); on failure a HARK_E* code with a reason in err. Thread-safe. */
int hark_vad_probs(const hark_vad *vad, const float *pcm, size_t n_samples, int n_threads,
                   float **probs, size_t *n_probs, char *err, size_t errlen);

/* Speech segments from frame probabilities, exactly as whisper.cpp 1.9.3's
 * whisper_vad_segments_from_probs derives them (times are whole
 * centiseconds). On success returns 0 and a malloc'ed array in *segments
 * (NULL when there is no speech; owned by the caller: free()) with its
 * length in *n_segments. Returns HARK_EINVAL for bad params, HARK_ENOMEM. */
int hark_vad_segments(const float *probs, size_t n_probs, const struct hark_vad_params *params,
                      struct hark_speech **segments, int *n_segments);

/* hark_vad_probs followed by hark_vad_segments, the last segment ending
 * at the end of the audio at the latest. */
int hark_vad_detect(const hark_vad *vad, const float *pcm, size_t n_samples,
                    const struct hark_vad_params *params, int n_threads,
                    struct hark_speech **segments, int *n_segments, char *err, size_t errlen);

/* ------------------------------------------------------------ transcribe */

enum hark_task { HARK_TASK_TRANSCRIBE = 0, HARK_TASK_TRANSLATE = 1 };

/* Decoding profile: openai-whisper's rules (the default) or whisper.cpp
 * 1.9.3's departures from them (see ../shared/docs/WHISPER.md). */
enum hark_decoder { HARK_DECODER_OPENAI = 0, HARK_DECODER_WHISPER_CPP = 1 };

/* Progress callback: fraction of the audio done, 0..1. Return nonzero to
 * cancel the transcription (hark_transcribe then returns HARK_ECANCELED).
 * Called from the thread that called hark_transcribe. */
typedef int (*hark_progress_fn)(void *user, float fraction);

struct hark_segment;

/* Segment callback: each segment of the result as soon as it is final, in
 * order, with its index in the result: its times on the audio's timeline
 * (speech detection included) and its words when word timestamps are on.
 * The segment is only lent for the call. Return nonzero to cancel, as with
 * the progress callback. Called from the thread that called
 * hark_transcribe. */
typedef int (*hark_segment_fn)(void *user, const struct hark_segment *segment, int index);

/* Window callback: after each window, once its segments went to the
 * segment callback. n_segments segments are final, and the next window
 * begins at next_s on the audio's timeline: a run begun there (start_s),
 * with those segments put in front (hark_result_prepend), goes on where
 * this one is. Return nonzero to cancel. */
typedef int (*hark_window_fn)(void *user, double next_s, int n_segments);

struct hark_options {
    const char *language;       /* "en", "de", ... or "auto"/NULL: detect (multilingual models) */
    enum hark_task task;
    enum hark_decoder decoder;
    int beam_size;              /* 1 = greedy; default 5 */
    int best_of;                /* candidates sampled at temperature > 0; default 5 */
    float temperature;          /* first temperature; default 0 */
    float temperature_inc;      /* fallback step; default 0.2 */
    int no_fallback;            /* 1: decode once at `temperature` */
    int no_timestamps;          /* 1: <|notimestamps|> */
    int condition_on_previous;  /* default 1 */
    const char *initial_prompt; /* NULL: none */
    float compression_ratio_threshold; /* 2.4 */
    float logprob_threshold;           /* -1.0 */
    float no_speech_threshold;         /* 0.6 */
    uint64_t seed;              /* sampling seed; default 0 */
    /* Begin at this time (seconds, default 0): the audio (with speech
     * detection, the speech) before it is not transcribed, and every time
     * stays on the whole audio's timeline. Without speech detection, a run
     * begun at the seek of another run's window, with the same options and
     * no conditioning on earlier text, gives that run's segments from that
     * window on. */
    double start_s;
    hark_progress_fn progress;  /* may be NULL */
    void *progress_user;
    hark_segment_fn on_segment; /* may be NULL */
    void *segment_user;
    hark_window_fn on_window;   /* may be NULL */
    void *window_user;
    /* Speech detection: with a VAD model, only the speech it finds is
     * transcribed, and every time in the result is on the original audio's
     * timeline. NULL (the default): the whole audio. */
    const hark_vad *vad;
    struct hark_vad_params vad_params;
    /* Word timestamps: DTW over the cross-attention of the model's
     * alignment heads gives every text token a time and every segment its
     * words. alignment_heads: NULL for the model's own (by its shape), or
     * "LAYER,HEAD;LAYER,HEAD" or "top-N" (every head of the N top layers). */
    int word_timestamps;
    const char *alignment_heads;
};

/* Fills options with the defaults above. */
void hark_options_init(struct hark_options *opt);

typedef struct hark_result hark_result;

/* Transcribes n_samples of 16 kHz mono float PCM. On success returns 0 and
 * stores a new result in *out (owned by the caller: hark_result_free). On
 * failure returns a HARK_E* code with a reason in err; *out is NULL. */
int hark_transcribe(hark_state *state, const float *pcm, size_t n_samples,
                    const struct hark_options *opt, hark_result **out,
                    char *err, size_t errlen);

/* ---------------------------------------------------------------- result */

struct hark_token {
    int32_t id;
    const char *text;   /* the token's bytes, NUL-terminated (may be a partial UTF-8 sequence) */
    float p;            /* probability when it was chosen */
    float logprob;
    double t0_s, t1_s;  /* time span: a timestamp token's own time; for a text token from
                           the previous token's end to its step's most probable timestamp,
                           within its segment; -1 if unknown (no timestamps) */
    double t_dtw_s;     /* with word timestamps, a text token's time by DTW over the
                           alignment heads (whisper.cpp's t_dtw); -1 otherwise */
};

/* A word and when it is spoken (with word timestamps). */
struct hark_word {
    const char *text;   /* valid UTF-8, with its leading space as spoken ("  world") */
    double start_s, end_s;
    float p;            /* mean probability of its tokens */
    int i0, i1;         /* its tokens: [i0, i1) of the segment's tokens */
};

struct hark_segment {
    int id;
    int seek;              /* mel frame (10 ms) at which its window started */
    double start_s, end_s;
    const char *text;      /* valid UTF-8 (invalid bytes become U+FFFD) */
    int n_tokens;
    const struct hark_token *tokens;
    float temperature;
    float avg_logprob;
    float compression_ratio;
    float no_speech_prob;
    int n_words;                   /* 0 without word timestamps */
    const struct hark_word *words;
    const char *language;          /* the language it was decoded in: its result's */
};

/* Accessors. Pointers are borrowed and live as long as the result. */
int hark_result_n_segments(const hark_result *r);
const struct hark_segment *hark_result_segment(const hark_result *r, int i);
const char *hark_result_language(const hark_result *r); /* code, e.g. "en" */
float hark_result_language_prob(const hark_result *r);
double hark_result_duration_s(const hark_result *r);
const char *hark_result_task(const hark_result *r); /* "transcribe" or "translate" */

/* Speech detection in a result: 1 when a VAD model chose what was
 * transcribed (then *params, if not NULL, receives the settings used and
 * *name, if not NULL, the VAD model's name, borrowed), else 0. */
int hark_result_vad(const hark_result *r, struct hark_vad_params *params, const char **name);
/* The speech segments transcribed, on the original timeline (0 without
 * VAD). The pointer is borrowed and lives as long as the result. */
int hark_result_n_speech(const hark_result *r);
const struct hark_speech *hark_result_speech(const hark_result *r, int i);

enum hark_format { HARK_FORMAT_TXT, HARK_FORMAT_JSON, HARK_FORMAT_SRT, HARK_FORMAT_VTT, HARK_FORMAT_TSV };

/* Parses "txt", "json", "srt", "vtt", "tsv"; returns -1 if unknown. */
int hark_format_parse(const char *name);

/* Every output format: its name, file extension and HTTP content type, and
 * whether the service keeps it as a file beside each transcribed upload
 * (results.<ext>). The one list the command line, the service's routes,
 * its job queue and /v1 all read. */
struct hark_format_info {
    enum hark_format fmt;
    const char *name;          /* as hark_format_parse takes it */
    const char *ext;
    const char *content_type;  /* with its charset */
    int stored;
};

/* The i-th format (0, 1, ...), the stored ones first; NULL past the last. */
const struct hark_format_info *hark_format_at(int i);

/* A format by its name, or "text" (OpenAI's name for txt); NULL if none. */
const struct hark_format_info *hark_format_find(const char *name);

/* A format by its id; NULL for a value outside enum hark_format. */
const struct hark_format_info *hark_format_of(enum hark_format fmt);

/* Writes the result in a format. Returns 0, HARK_EINVAL (unknown format or
 * NULL argument), HARK_ENOMEM or HARK_EIO (a write failed). */
int hark_result_write(const hark_result *r, enum hark_format fmt, FILE *out);

/* Subtitles (SRT, WebVTT) cut at words: segments with word times are
 * split into cues of at most max_lines lines of max_line_chars characters
 * and max_cue_s seconds, at word boundaries, with the words' own times (a
 * word longer than a line stands alone); segments without are one cue.
 * word_tags adds WebVTT timestamp tags before each word. */
struct hark_cue_options {
    int max_line_chars;   /* default 42 */
    int max_lines;        /* default 2 */
    double max_cue_s;     /* default 7 */
    int word_tags;        /* WebVTT only; default 0 */
};

/* Fills o with the defaults above. */
void hark_cue_options_init(struct hark_cue_options *o);

/* Checks the ranges (lines of 1-1000 characters, 1-20 lines, 0.5-3600 s).
 * Returns 0 or HARK_EINVAL with a reason in err. */
int hark_cue_options_check(const struct hark_cue_options *o, char *err, size_t errlen);

/* Writes a result (or n segments, which may come from elsewhere) as SRT
 * or WebVTT with these options (NULL: the defaults). Returns 0, HARK_EINVAL
 * (another format, bad options), HARK_ENOMEM or HARK_EIO.
 * hark_result_write uses the defaults. */
int hark_result_write_cues(const hark_result *r, enum hark_format fmt, const struct hark_cue_options *o, FILE *out);
int hark_segments_write_cues(const struct hark_segment *segs, int n, enum hark_format fmt,
                             const struct hark_cue_options *o, FILE *out);

/* Frees a result; NULL is a no-op. */
/* Puts copies of n segments (text, tokens and words) before the result's
 * own, and numbers them all again from 0: how a resumed run (start_s) is
 * joined to what its earlier run had finished. Returns 0, HARK_EINVAL, or
 * HARK_ENOMEM (the result is then unchanged). */
int hark_result_prepend(hark_result *r, const struct hark_segment *segs, int n);

void hark_result_free(hark_result *r);

#ifdef __cplusplus
}
#endif
#endif
