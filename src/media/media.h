/*
 * media.h: reads any audio or video file FFmpeg's libraries understand
 * (mp4/AAC, mov, mkv/webm/Opus, mp3, m4a, flac, wav, ogg, ...; any channel
 * layout and sample rate) and turns its first audio stream into the 16 kHz
 * mono float samples the engine takes.
 *
 * Decoding streams: packets are read, decoded and resampled a frame at a
 * time, so memory is the output (4 bytes per 16 kHz sample, 230 MB for an
 * hour) plus FFmpeg's small working set, whatever the input's size. Nothing
 * is started as a subprocess.
 *
 * Errors are HARK_EIO (the file cannot be opened or read), HARK_EAUDIO (not
 * media FFmpeg recognises, or media without an audio stream), HARK_EFORMAT
 * (corrupt or truncated beyond what can be decoded), HARK_ECANCELED (the
 * progress callback asked to stop) or HARK_ENOMEM, with one line in err
 * that names the file and the fault. FFmpeg's own log output is silenced;
 * its messages reach the caller only through err.
 */
#ifndef HARK_MEDIA_H
#define HARK_MEDIA_H

#include <stddef.h>

#define MEDIA_SAMPLE_RATE 16000

/* What a file and its audio stream may state and still be taken: a file
 * beyond one of these is refused with HARK_EFORMAT before any decoding,
 * since no real recording has it and a forged header could otherwise make
 * work of it. Probing reads at most MEDIA_PROBE_BYTES bytes and
 * MEDIA_PROBE_S seconds of media. */
#define MEDIA_MAX_DURATION_S (7.0 * 24 * 3600)
#define MEDIA_MAX_RATE 768000
#define MEDIA_MAX_CHANNELS 64
#define MEDIA_MAX_STREAMS 100
#define MEDIA_PROBE_BYTES 5000000
#define MEDIA_PROBE_S 5

struct media_info {
    double duration_s;       /* of the audio stream (container's if unknown); 0 if unknown */
    char format[64];         /* FFmpeg's container name, first entry: "mov", "matroska", "mp3" */
    char content_type[64];   /* for serving: "video/mp4", "audio/mpeg", "audio/ogg", "video/webm" */
    char audio_codec[32];    /* e.g. "aac", "mp3", "opus" */
    int has_video;           /* 1 if the file has a video stream (cover art pictures do not count) */
    int sample_rate;         /* of the audio stream as stored */
    int channels;
};

/* Opens the file, finds its first audio stream and fills *info. Returns 0,
 * or HARK_EAUDIO when FFmpeg does not recognise the file or it has no audio
 * stream (the "not media" case, which a service answers with 415),
 * HARK_EFORMAT when the file has more streams, or its audio states a
 * duration, rate or channel count, beyond the limits above, HARK_EIO when
 * it cannot be read. Reads only what probing needs. On success duration_s
 * is in [0, MEDIA_MAX_DURATION_S], sample_rate in [0, MEDIA_MAX_RATE] and
 * channels in [0, MEDIA_MAX_CHANNELS] (0: not stated). */
int media_probe(const char *path, struct media_info *info, char *err, size_t errlen);

/* Called now and then while decoding with the fraction of the input read so
 * far (0..1, by byte position or time); a nonzero return stops decoding
 * with HARK_ECANCELED. */
typedef int (*media_progress_fn)(void *user, float fraction);

/* Decodes the first audio stream of the file to 16 kHz mono float in [-1,
 * 1]: channels are averaged, resampling is libswresample's. On success
 * returns 0 and a malloc'ed array of *n_samples (> 0) floats owned by the
 * caller. A damaged packet in the middle is skipped, as FFmpeg's own tools
 * do; an input that yields no decodable audio at all is HARK_EFORMAT.
 * progress may be NULL. */
int media_decode(const char *path, float **pcm, size_t *n_samples,
                 media_progress_fn progress, void *user, char *err, size_t errlen);

/* A media error without the "<path>: " these functions put in front, for
 * someone who never saw the server's path. */
const char *media_reason(const char *err, const char *path);

#endif
