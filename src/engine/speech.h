/*
 * speech.h: from speech probabilities to speech segments, and transcribing
 * only the speech (speech.c).
 *
 * Times here are whole centiseconds (10 ms), the unit whisper.cpp keeps
 * segment and mapping times in; samples are 16 kHz.
 */
#ifndef HARK_SPEECH_H
#define HARK_SPEECH_H

#include <stddef.h>
#include <stdint.h>

#include "hark.h"

struct decode_hooks;

struct speech_seg {
    int64_t t0_cs, t1_cs;
};

/* whisper.cpp 1.9.3's whisper_vad_segments_from_probs: hysteresis with
 * threshold and threshold − 0.15, minimum speech and silence, splits at
 * max_speech_s, gaps under 200 ms merged (but never past max_speech_s),
 * padding. Writes a malloc'ed array
 * (NULL when empty) to *out. Returns 0, HARK_EINVAL (params) or
 * HARK_ENOMEM. */
int speech_from_probs(const float *probs, size_t n_probs, const struct hark_vad_params *p,
                      struct speech_seg **out, int *n_out);

/* How a time in the audio that was transcribed goes back to the original.
 * whisper.cpp profile: its table of (processed, original) points with
 * linear interpolation in whole centiseconds. openai profile:
 * faster-whisper's SpeechTimestampsMap, where each chunk of speech moves
 * back by the silence removed before it. */
struct speech_map {
    int profile;            /* enum hark_decoder */
    int n;                  /* points or chunks */
    int64_t *proc_cs;       /* whisper.cpp: processed time of each point */
    int64_t *orig_cs;       /* whisper.cpp: its original time */
    int64_t *chunk_end;     /* openai: each chunk's end in the joined audio (samples) */
    int64_t *shift_cs;      /* openai: silence removed before each chunk */
};

/* Joins the speech of pcm (n_samples) into the audio to transcribe,
 * *out (malloc'ed, *n_out samples), and fills *map (free with
 * speech_map_deinit). whisper.cpp profile: each segment with overlap_s of
 * what follows it, then 0.1 s of silence, exactly as whisper.cpp's
 * whisper_vad builds its filtered audio; openai profile: the segments
 * back to back, as faster-whisper's collect_chunks. n_segs must be >= 1.
 * Returns 0 or HARK_ENOMEM. */
int speech_assemble(int profile, const float *pcm, size_t n_samples, const struct speech_seg *segs,
                    int n_segs, float overlap_s, float **out, size_t *n_out, struct speech_map *map);

void speech_map_deinit(struct speech_map *map);

/* The original time of processed time t_cs. For the openai profile,
 * `chunk` selects the chunk (-1: the chunk holding t_cs, where a time on a
 * chunk's end belongs to the next chunk unless is_end). */
int64_t speech_map_time(const struct speech_map *map, int64_t t_cs, int chunk, int is_end);

/* The openai profile's chunk for time t_cs (faster-whisper's
 * get_chunk_index); 0 for the whisper.cpp profile. */
int speech_map_chunk(const struct speech_map *map, int64_t t_cs, int is_end);

/* hark_transcribe with opt->vad set: detects speech on the state's
 * threads, transcribes the joined speech with decode_run (hooks passed
 * on), and maps every time back. No speech gives a result with no
 * segments. Same contract as hark_transcribe. */
int speech_transcribe(struct hark_state *st, const float *pcm, size_t n_samples,
                      const struct hark_options *opt, const struct decode_hooks *hooks,
                      struct hark_result **out, char *err, size_t errlen);

#endif
