/*
 * media.c: FFmpeg's libavformat/libavcodec/libswresample turned into the
 * 16 kHz mono float samples the engine takes (see media.h).
 *
 * Opening. The file is opened by us through FFmpeg's "file:" protocol (so a
 * name with a colon is never taken for a URL) and handed to libavformat as
 * its I/O context, and libavformat's callback for opening further resources
 * refuses everything: a playlist or concat script cannot make a service read
 * other files or reach the network. Probing is bounded by FFmpeg's probe
 * size, analysis duration and most streams, set explicitly below, and a
 * stream that states an absurd duration, sample rate or channel count is
 * refused before anything is decoded (media.h gives the limits).
 *
 * Decoding. Packets of the first audio stream are read, decoded and turned
 * into 16 kHz mono a frame at a time. Mono is the mean of all channels (the
 * LFE included), as wav.c does. libswresample's default downmix is not a
 * mean: it maps stereo to 0.707 (L + R), which can exceed full scale, and
 * 5.1 to 0.707 L + 0.707 R + C + 0.5 Ls + 0.5 Rs without the LFE; so the
 * resampler gets an explicit matrix of 1/n per channel. Audio already at
 * 16 kHz bypasses libswresample altogether and is averaged here with the
 * same float arithmetic as wav.c, so a 16-bit WAV at 16 kHz gives the same
 * samples as wav_read(), bit for bit. A stream whose format, rate or layout
 * changes mid-way (chained Ogg, some MP3s) gets the resampler rebuilt after
 * the old one has been drained.
 *
 * Damage. A packet the decoder rejects is skipped, as FFmpeg's own tools do;
 * a read error or a truncated file ends the input where it breaks. Only an
 * input that yields no samples at all is an error (HARK_EFORMAT).
 *
 * Threads. Every call has its own contexts; FFmpeg's log is replaced once,
 * under pthread_once, by one that drops it (noting one line per thread), so
 * any number of threads may probe and decode at the same time.
 */
#include "media.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/log.h>
#include <libswresample/swresample.h>

#include "hark.h"

/* Output reserved up front from the stated duration, at most (10 minutes);
 * beyond that the buffer doubles, so a lying header costs nothing. */
#define MAX_RESERVE_SAMPLES ((size_t)MEDIA_SAMPLE_RATE * 600)

static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;

/* Set on a thread whose input went past max_streams (see log_line). */
static _Thread_local int too_many_streams;

/* FFmpeg's log, which is dropped. One line is noted: when a demuxer asks
 * for a stream beyond max_streams, avformat_new_stream says so here and the
 * demuxer then fails with ENOMEM, which would otherwise read as memory
 * running out. */
static void log_line(void *avcl, int level, const char *fmt, va_list ap)
{
    (void)avcl, (void)level, (void)ap;
    if (fmt && !strncmp(fmt, "Number of streams exceeds max_streams", 37)) too_many_streams = 1;
}

static void quiet_log(void)
{
    av_log_set_level(AV_LOG_QUIET);
    av_log_set_callback(log_line);
}

/* The line for an input refused for its streams' count. */
static int streams_refused(const char *path, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: the file has more than %d streams", path, MEDIA_MAX_STREAMS);
    return HARK_EFORMAT;
}

/* The words for an AVERROR code, into buf. */
static const char *av_words(int averr, char *buf, size_t len)
{
    if (av_strerror(averr, buf, len) < 0) snprintf(buf, len, "FFmpeg error %d", averr);
    return buf;
}

/* 1 when a failure came from the operating system rather than from the
 * file's content. Demuxers report a short read of a truncated header as
 * AVERROR(EIO) too, so what decides is the error recorded on our I/O
 * context (an end of file is content). */
static int is_io_error(int averr, const AVIOContext *pb)
{
    if (pb && pb->error < 0 && pb->error != AVERROR_EOF) return 1;
    return averr == AVERROR(ENOENT) || averr == AVERROR(EACCES) || averr == AVERROR(EISDIR) ||
           averr == AVERROR(EPERM) || averr == AVERROR(ENOTDIR) || averr == AVERROR(ELOOP) ||
           averr == AVERROR(ENAMETOOLONG) || averr == AVERROR(EMFILE) || averr == AVERROR(ENFILE);
}

static int refuse_io_open(struct AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
                          AVDictionary **options)
{
    (void)s, (void)pb, (void)url, (void)flags, (void)options;
    return AVERROR(EPERM);
}

/* An open input: the format context, the I/O context we own, the index of
 * the first audio stream. */
struct input {
    AVFormatContext *fmt;
    AVIOContext *pb;
    int stream;
};

static void input_close(struct input *in)
{
    avformat_close_input(&in->fmt);
    avio_closep(&in->pb);
}

/* The duration of the audio stream in seconds as the file states it (the
 * container's when the stream states none), or 0 when neither does. */
static double stated_duration_s(const struct input *in)
{
    const AVStream *st = in->fmt->streams[in->stream];
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0 && st->time_base.num > 0 && st->time_base.den > 0)
        return (double)st->duration * av_q2d(st->time_base);
    if (in->fmt->duration != AV_NOPTS_VALUE && in->fmt->duration > 0)
        return (double)in->fmt->duration / AV_TIME_BASE;
    return 0.0;
}

/* Refuses an audio stream that states a duration, rate or channel count no
 * real recording has (media.h's limits): 0, or HARK_EFORMAT with a line in err. */
static int check_stated(const char *path, const struct input *in, char *err, size_t errlen)
{
    const AVCodecParameters *par = in->fmt->streams[in->stream]->codecpar;
    double duration_s = stated_duration_s(in);
    if (!(duration_s <= MEDIA_MAX_DURATION_S)) {
        snprintf(err, errlen, "%s: the file states a duration of %.0f hours, more than the %.0f hours taken",
                 path, duration_s / 3600, MEDIA_MAX_DURATION_S / 3600);
        return HARK_EFORMAT;
    }
    if (par->sample_rate < 0 || par->sample_rate > MEDIA_MAX_RATE) {
        snprintf(err, errlen, "%s: the audio states a sample rate of %d Hz, outside 1 to %d Hz", path,
                 par->sample_rate, MEDIA_MAX_RATE);
        return HARK_EFORMAT;
    }
    if (par->ch_layout.nb_channels < 0 || par->ch_layout.nb_channels > MEDIA_MAX_CHANNELS) {
        snprintf(err, errlen, "%s: the audio states %d channels, outside 1 to %d", path,
                 par->ch_layout.nb_channels, MEDIA_MAX_CHANNELS);
        return HARK_EFORMAT;
    }
    return 0;
}

/* Opens path, probes it and finds its first audio stream. Returns 0, or
 * HARK_EIO / HARK_EAUDIO / HARK_ENOMEM with a line in err; on failure
 * nothing is left open. */
static int input_open(const char *path, struct input *in, char *err, size_t errlen)
{
    char words[128];
    char *url = NULL;
    AVDictionary *opts = NULL;
    size_t len = strlen(path) + 6;
    int ret, rc;

    pthread_once(&quiet_once, quiet_log);
    memset(in, 0, sizeof *in);
    in->stream = -1;

    url = malloc(len);
    if (!url) {
        snprintf(err, errlen, "%s: out of memory", path);
        return HARK_ENOMEM;
    }
    snprintf(url, len, "file:%s", path);
    ret = avio_open(&in->pb, url, AVIO_FLAG_READ);
    free(url);
    if (ret < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, av_words(ret, words, sizeof words));
        rc = ret == AVERROR(ENOMEM) ? HARK_ENOMEM : HARK_EIO;
        goto fail;
    }
    in->fmt = avformat_alloc_context();
    if (!in->fmt) {
        snprintf(err, errlen, "%s: out of memory", path);
        rc = HARK_ENOMEM;
        goto fail;
    }
    in->fmt->pb = in->pb;
    in->fmt->io_open = refuse_io_open;
    if (av_dict_set_int(&opts, "probesize", MEDIA_PROBE_BYTES, 0) < 0 ||
        av_dict_set_int(&opts, "analyzeduration", (int64_t)MEDIA_PROBE_S * 1000000, 0) < 0 ||
        av_dict_set_int(&opts, "max_streams", MEDIA_MAX_STREAMS, 0) < 0) {
        snprintf(err, errlen, "%s: out of memory", path);
        rc = HARK_ENOMEM;
        goto fail;
    }
    /* On failure avformat_open_input frees the context (not our pb). */
    too_many_streams = 0;
    ret = avformat_open_input(&in->fmt, NULL, NULL, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        if (too_many_streams) {
            rc = streams_refused(path, err, errlen);
        } else if (is_io_error(ret, in->pb)) {
            snprintf(err, errlen, "%s: cannot read: %s", path, av_words(ret, words, sizeof words));
            rc = HARK_EIO;
        } else if (ret == AVERROR(ENOMEM)) {
            snprintf(err, errlen, "%s: out of memory", path);
            rc = HARK_ENOMEM;
        } else if (ret == AVERROR_EOF) {
            snprintf(err, errlen, "%s: the file ends inside its header (cut short?), so it cannot be read",
                     path);
            rc = HARK_EAUDIO;
        } else {
            snprintf(err, errlen, "%s: not audio or video FFmpeg can read, or its header is damaged (%s)",
                     path, av_words(ret, words, sizeof words));
            rc = HARK_EAUDIO;
        }
        goto fail;
    }
    ret = avformat_find_stream_info(in->fmt, NULL);
    if (too_many_streams) {
        rc = streams_refused(path, err, errlen);
        goto fail;
    }
    if (ret < 0) {
        if (ret == AVERROR(ENOMEM)) {
            snprintf(err, errlen, "%s: out of memory", path);
            rc = HARK_ENOMEM;
        } else {
            snprintf(err, errlen, "%s: cannot read its streams: %s", path, av_words(ret, words, sizeof words));
            rc = is_io_error(ret, in->pb) ? HARK_EIO : HARK_EAUDIO;
        }
        goto fail;
    }
    for (unsigned i = 0; i < in->fmt->nb_streams; i++) {
        if (in->fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO) {
            in->stream = (int)i;
            break;
        }
    }
    if (in->stream < 0) {
        snprintf(err, errlen, "%s: no audio stream (%s)", path, in->fmt->iformat->name);
        rc = HARK_EAUDIO;
        goto fail;
    }
    rc = check_stated(path, in, err, errlen);
    if (rc != 0) goto fail;
    return 0;
fail:
    av_dict_free(&opts);
    input_close(in);
    return rc;
}

/* The first name of a libavformat list such as "mov,mp4,m4a,3gp,3g2,mj2". */
static void first_name(const char *names, char *out, size_t outlen)
{
    size_t n = strcspn(names, ",");
    if (n >= outlen) n = outlen - 1;
    memcpy(out, names, n);
    out[n] = 0;
}

/* 1 when every stream of a Matroska file is one WebM allows. */
static int matroska_is_webm(const AVFormatContext *fmt)
{
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        const AVCodecParameters *par = fmt->streams[i]->codecpar;
        switch (par->codec_id) {
        case AV_CODEC_ID_VP8:
        case AV_CODEC_ID_VP9:
        case AV_CODEC_ID_AV1:
        case AV_CODEC_ID_VORBIS:
        case AV_CODEC_ID_OPUS:
        case AV_CODEC_ID_WEBVTT:
            break;
        default:
            if (fmt->streams[i]->disposition & AV_DISPOSITION_ATTACHED_PIC) break;
            return 0;
        }
    }
    return 1;
}

/* The MIME type to serve the file as, from its container and whether it
 * holds real video. */
static const char *content_type(const AVFormatContext *fmt, const char *format, int has_video)
{
    if (!strcmp(format, "mov")) {
        const AVDictionaryEntry *brand = av_dict_get(fmt->metadata, "major_brand", NULL, 0);
        if (brand && !strncmp(brand->value, "qt", 2)) return "video/quicktime";
        return has_video ? "video/mp4" : "audio/mp4";
    }
    if (!strcmp(format, "matroska")) {
        if (matroska_is_webm(fmt)) return has_video ? "video/webm" : "audio/webm";
        return has_video ? "video/x-matroska" : "audio/x-matroska";
    }
    if (!strcmp(format, "mp3")) return "audio/mpeg";
    if (!strcmp(format, "ogg")) return has_video ? "video/ogg" : "audio/ogg";
    if (!strcmp(format, "flac")) return "audio/flac";
    if (!strcmp(format, "wav")) return "audio/wav";
    if (!strcmp(format, "aac")) return "audio/aac";
    return "application/octet-stream";
}

int media_probe(const char *path, struct media_info *info, char *err, size_t errlen)
{
    struct input in;
    const AVStream *st;
    int rc;

    memset(info, 0, sizeof *info);
    rc = input_open(path, &in, err, errlen);
    if (rc != 0) return rc;
    st = in.fmt->streams[in.stream];
    info->duration_s = stated_duration_s(&in);
    for (unsigned i = 0; i < in.fmt->nb_streams; i++) {
        const AVStream *s = in.fmt->streams[i];
        if (s->codecpar->codec_type == AVMEDIA_TYPE_VIDEO && !(s->disposition & AV_DISPOSITION_ATTACHED_PIC))
            info->has_video = 1;
    }
    first_name(in.fmt->iformat->name, info->format, sizeof info->format);
    snprintf(info->content_type, sizeof info->content_type, "%s",
             content_type(in.fmt, info->format, info->has_video));
    snprintf(info->audio_codec, sizeof info->audio_codec, "%s", avcodec_get_name(st->codecpar->codec_id));
    info->sample_rate = st->codecpar->sample_rate;
    info->channels = st->codecpar->ch_layout.nb_channels;
    input_close(&in);
    return 0;
}

/* ------------------------------------------------------------- decoding */

/* What one decode call carries between its steps. */
struct decoder {
    const char *path;
    AVCodecContext *codec;
    SwrContext *swr;
    /* The input format the resampler (or the direct path) was set up for. */
    int in_format, in_rate, in_channels;
    AVChannelLayout in_layout;
    int direct;          /* 1: 16 kHz input, averaged here without swr */
    float *out;          /* (cap) output samples, n of them written */
    size_t n, cap;
    int n_damaged;       /* packets or frames the decoder rejected */
    int last_damage;     /* the AVERROR of the last of them */
    char *err;
    size_t errlen;
};

/* Makes room for at least extra more output samples. */
static int reserve(struct decoder *d, size_t extra)
{
    size_t need, cap;
    float *p;
    if (extra > SIZE_MAX / sizeof(float) - d->n) goto nomem;
    need = d->n + extra;
    if (need <= d->cap) return 0;
    cap = d->cap ? d->cap : 4096;
    while (cap < need) cap = cap > SIZE_MAX / sizeof(float) / 2 ? need : cap * 2;
    p = realloc(d->out, cap * sizeof *p);
    if (!p) goto nomem;
    d->out = p;
    d->cap = cap;
    return 0;
nomem:
    snprintf(d->err, d->errlen, "%s: out of memory for %zu decoded samples", d->path, d->n + extra);
    return HARK_ENOMEM;
}

/* Samples of one channel of a frame as floats in [-1, 1], in the engine's
 * convention: s16 / 32768 as wav.c does. */
static float sample_at(const AVFrame *f, int c, int i, int channels)
{
    switch (f->format) {
    case AV_SAMPLE_FMT_S16:
        return (float)((const int16_t *)f->extended_data[0])[(size_t)i * channels + c] / 32768.0f;
    case AV_SAMPLE_FMT_S16P:
        return (float)((const int16_t *)f->extended_data[c])[i] / 32768.0f;
    case AV_SAMPLE_FMT_S32:
        return (float)((double)((const int32_t *)f->extended_data[0])[(size_t)i * channels + c] / 2147483648.0);
    case AV_SAMPLE_FMT_S32P:
        return (float)((double)((const int32_t *)f->extended_data[c])[i] / 2147483648.0);
    case AV_SAMPLE_FMT_FLT:
        return ((const float *)f->extended_data[0])[(size_t)i * channels + c];
    case AV_SAMPLE_FMT_FLTP:
        return ((const float *)f->extended_data[c])[i];
    default:
        return 0.0f;
    }
}

static int direct_format(int format)
{
    return format == AV_SAMPLE_FMT_S16 || format == AV_SAMPLE_FMT_S16P || format == AV_SAMPLE_FMT_S32 ||
           format == AV_SAMPLE_FMT_S32P || format == AV_SAMPLE_FMT_FLT || format == AV_SAMPLE_FMT_FLTP;
}

/* Drains what the resampler still holds into the output. */
static int swr_drain(struct decoder *d)
{
    char words[128];
    for (;;) {
        int room, got, rc;
        uint8_t *dst;
        int64_t pending = swr_get_delay(d->swr, MEDIA_SAMPLE_RATE);
        room = (int)(pending > 4096 ? pending + 256 : 4096);
        rc = reserve(d, (size_t)room);
        if (rc != 0) return rc;
        dst = (uint8_t *)(d->out + d->n);
        got = swr_convert(d->swr, &dst, room, NULL, 0);
        if (got < 0) {
            snprintf(d->err, d->errlen, "%s: resampling failed: %s", d->path, av_words(got, words, sizeof words));
            return HARK_EFORMAT;
        }
        if (got == 0) return 0;
        d->n += (size_t)got;
    }
}

/* Sets up the conversion for a frame's format, rate and channels: the direct
 * path at 16 kHz, else a resampler whose matrix averages the channels. */
static int converter_setup(struct decoder *d, const AVFrame *f)
{
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    char words[128];
    double *matrix = NULL;
    int channels = f->ch_layout.nb_channels, ret, rc;

    if (d->swr) {
        rc = swr_drain(d);
        if (rc != 0) return rc;
        swr_free(&d->swr);
    }
    av_channel_layout_uninit(&d->in_layout);
    d->in_format = f->format;
    d->in_rate = f->sample_rate;
    d->in_channels = channels;
    d->direct = f->sample_rate == MEDIA_SAMPLE_RATE && direct_format(f->format);
    /* A layout that only gives a count is replaced by the default order for
     * that count: the matrix treats every channel alike anyway. */
    if (f->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
        av_channel_layout_default(&d->in_layout, channels);
    else if (av_channel_layout_copy(&d->in_layout, &f->ch_layout) < 0)
        goto nomem;
    if (d->direct) return 0;

    ret = swr_alloc_set_opts2(&d->swr, &mono, AV_SAMPLE_FMT_FLT, MEDIA_SAMPLE_RATE, &d->in_layout,
                              (enum AVSampleFormat)f->format, f->sample_rate, 0, NULL);
    if (ret < 0) goto swr_fail;
    matrix = malloc((size_t)channels * sizeof *matrix); /* (1, channels) */
    if (!matrix) goto nomem;
    for (int c = 0; c < channels; c++) matrix[c] = 1.0 / channels;
    ret = swr_set_matrix(d->swr, matrix, channels);
    free(matrix);
    if (ret < 0) goto swr_fail;
    ret = swr_init(d->swr);
    if (ret < 0) goto swr_fail;
    return 0;
swr_fail:
    swr_free(&d->swr);
    snprintf(d->err, d->errlen, "%s: cannot resample %d Hz %s audio with %d channels: %s", d->path,
             f->sample_rate, av_get_sample_fmt_name((enum AVSampleFormat)f->format) ?
             av_get_sample_fmt_name((enum AVSampleFormat)f->format) : "unknown",
             channels, av_words(ret, words, sizeof words));
    return ret == AVERROR(ENOMEM) ? HARK_ENOMEM : HARK_EFORMAT;
nomem:
    swr_free(&d->swr);
    snprintf(d->err, d->errlen, "%s: out of memory", d->path);
    return HARK_ENOMEM;
}

/* Appends one decoded frame to the output as 16 kHz mono. */
static int take_frame(struct decoder *d, const AVFrame *f)
{
    char words[128];
    int channels = f->ch_layout.nb_channels, rc;

    if (f->nb_samples <= 0) return 0;
    if (channels < 1 || channels > MEDIA_MAX_CHANNELS || f->sample_rate <= 0) {
        d->n_damaged++;
        d->last_damage = AVERROR_INVALIDDATA;
        return 0;
    }
    if (f->format != d->in_format || f->sample_rate != d->in_rate || channels != d->in_channels ||
        (f->ch_layout.order != AV_CHANNEL_ORDER_UNSPEC && av_channel_layout_compare(&f->ch_layout, &d->in_layout))) {
        rc = converter_setup(d, f);
        if (rc != 0) return rc;
    }
    if (d->direct) {
        rc = reserve(d, (size_t)f->nb_samples);
        if (rc != 0) return rc;
        for (int i = 0; i < f->nb_samples; i++) {
            float acc = 0.0f;
            for (int c = 0; c < channels; c++) acc += sample_at(f, c, i, channels);
            d->out[d->n++] = acc / (float)channels;
        }
        return 0;
    }
    {
        int room = swr_get_out_samples(d->swr, f->nb_samples), got;
        uint8_t *dst;
        if (room < 0) room = 0;
        rc = reserve(d, (size_t)room + 16);
        if (rc != 0) return rc;
        dst = (uint8_t *)(d->out + d->n);
        got = swr_convert(d->swr, &dst, room + 16, (const uint8_t **)f->extended_data, f->nb_samples);
        if (got < 0) {
            snprintf(d->err, d->errlen, "%s: resampling failed: %s", d->path, av_words(got, words, sizeof words));
            return got == AVERROR(ENOMEM) ? HARK_ENOMEM : HARK_EFORMAT;
        }
        d->n += (size_t)got;
    }
    return 0;
}

/* Receives every frame the decoder has ready. Returns 0 (on EAGAIN or the
 * end of the stream) or a HARK_E* code. */
static int receive_frames(struct decoder *d, AVFrame *frame)
{
    for (;;) {
        int ret = avcodec_receive_frame(d->codec, frame), rc;
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return 0;
        if (ret == AVERROR(ENOMEM)) {
            snprintf(d->err, d->errlen, "%s: out of memory while decoding", d->path);
            return HARK_ENOMEM;
        }
        if (ret < 0) {
            /* A damaged frame: skip it and read on. */
            d->n_damaged++;
            d->last_damage = ret;
            return 0;
        }
        rc = take_frame(d, frame);
        av_frame_unref(frame);
        if (rc != 0) return rc;
    }
}

/* Sends one packet (NULL to flush) and takes the frames that come out. */
static int decode_packet(struct decoder *d, const AVPacket *pkt, AVFrame *frame)
{
    int ret = avcodec_send_packet(d->codec, pkt), rc;
    if (ret == AVERROR(EAGAIN)) {
        /* The decoder wants its output taken first; then the packet fits. */
        rc = receive_frames(d, frame);
        if (rc != 0) return rc;
        ret = avcodec_send_packet(d->codec, pkt);
    }
    if (ret == AVERROR(ENOMEM)) {
        snprintf(d->err, d->errlen, "%s: out of memory while decoding", d->path);
        return HARK_ENOMEM;
    }
    if (ret < 0 && ret != AVERROR_EOF) {
        d->n_damaged++;
        d->last_damage = ret;
    }
    return receive_frames(d, frame);
}

int media_decode(const char *path, float **pcm, size_t *n_samples, media_progress_fn progress, void *user,
                 char *err, size_t errlen)
{
    struct input in = {0};
    struct decoder d = {0};
    const AVCodec *codec;
    const AVStream *st;
    AVPacket *pkt = NULL;
    AVFrame *frame = NULL;
    char words[128];
    int64_t size_bytes;
    float last_fraction = 0.0f;
    int ret, rc, read_error = 0;

    *pcm = NULL;
    *n_samples = 0;
    d.path = path;
    d.err = err;
    d.errlen = errlen;
    d.in_format = -1;
    rc = input_open(path, &in, err, errlen);
    if (rc != 0) return rc;
    st = in.fmt->streams[in.stream];
    /* Only the audio stream's packets are wanted; the demuxer skips the rest. */
    for (unsigned i = 0; i < in.fmt->nb_streams; i++)
        if ((int)i != in.stream) in.fmt->streams[i]->discard = AVDISCARD_ALL;

    codec = avcodec_find_decoder(st->codecpar->codec_id);
    if (!codec) {
        snprintf(err, errlen, "%s: no decoder for its audio codec '%s'", path,
                 avcodec_get_name(st->codecpar->codec_id));
        rc = HARK_EAUDIO;
        goto fail;
    }
    d.codec = avcodec_alloc_context3(codec);
    pkt = av_packet_alloc();
    frame = av_frame_alloc();
    if (!d.codec || !pkt || !frame) {
        snprintf(err, errlen, "%s: out of memory", path);
        rc = HARK_ENOMEM;
        goto fail;
    }
    ret = avcodec_parameters_to_context(d.codec, st->codecpar);
    if (ret >= 0) {
        d.codec->pkt_timebase = st->time_base;
        d.codec->thread_count = 1;
        ret = avcodec_open2(d.codec, codec, NULL);
    }
    if (ret < 0) {
        snprintf(err, errlen, "%s: cannot start the %s decoder: %s", path, codec->name,
                 av_words(ret, words, sizeof words));
        rc = ret == AVERROR(ENOMEM) ? HARK_ENOMEM : HARK_EFORMAT;
        goto fail;
    }

    /* Reserve what the stated duration needs (capped), plus a little; the
     * duration is one input_open checked, in [0, MEDIA_MAX_DURATION_S]. */
    double stated_s = stated_duration_s(&in);
    if (stated_s > 0) {
        double want = stated_s * MEDIA_SAMPLE_RATE + 1024.0;
        size_t want_n = want < (double)MAX_RESERVE_SAMPLES ? (size_t)want : MAX_RESERVE_SAMPLES;
        rc = reserve(&d, want_n);
        if (rc != 0) goto fail;
    }

    size_bytes = avio_size(in.pb);
    if (progress && progress(user, 0.0f)) {
        rc = HARK_ECANCELED;
        goto fail;
    }
    for (;;) {
        ret = av_read_frame(in.fmt, pkt);
        if (ret == AVERROR(ENOMEM)) {
            snprintf(err, errlen, "%s: out of memory while reading", path);
            rc = HARK_ENOMEM;
            goto fail;
        }
        if (ret < 0) {
            /* The end, or a read error or damage the demuxer cannot pass:
             * keep what was decoded, as FFmpeg's own tools do. */
            if (ret != AVERROR_EOF) read_error = ret;
            break;
        }
        if (pkt->stream_index == in.stream) {
            rc = decode_packet(&d, pkt, frame);
            if (rc != 0) goto fail;
        }
        av_packet_unref(pkt);
        if (progress && size_bytes > 0) {
            int64_t pos = avio_tell(in.pb);
            float fraction = pos > 0 ? (float)((double)pos / (double)size_bytes) : 0.0f;
            if (fraction > 1.0f) fraction = 1.0f;
            if (fraction >= last_fraction + 0.01f) {
                last_fraction = fraction;
                if (progress(user, fraction)) {
                    rc = HARK_ECANCELED;
                    goto fail;
                }
            }
        }
    }
    rc = decode_packet(&d, NULL, frame);
    if (rc != 0) goto fail;
    if (d.swr) {
        rc = swr_drain(&d);
        if (rc != 0) goto fail;
    }
    if (d.n == 0) {
        if (read_error && is_io_error(read_error, in.pb)) {
            snprintf(err, errlen, "%s: cannot read: %s", path, av_words(read_error, words, sizeof words));
            rc = HARK_EIO;
        } else if (d.n_damaged) {
            snprintf(err, errlen, "%s: no decodable audio (%d damaged packets; %s)", path, d.n_damaged,
                     av_words(d.last_damage, words, sizeof words));
            rc = HARK_EFORMAT;
        } else {
            snprintf(err, errlen, "%s: no decodable audio%s%s", path, read_error ? ": " : "",
                     read_error ? av_words(read_error, words, sizeof words) : "");
            rc = HARK_EFORMAT;
        }
        goto fail;
    }
    if (progress && progress(user, 1.0f)) {
        rc = HARK_ECANCELED;
        goto fail;
    }

    /* The engine takes [-1, 1]: a float decoder's overshoot is clipped, as a
     * conversion to 16-bit would, and the NaN a damaged frame may carry
     * becomes silence. */
    for (size_t i = 0; i < d.n; i++) {
        float v = d.out[i];
        d.out[i] = isnan(v) ? 0.0f : v > 1.0f ? 1.0f : v < -1.0f ? -1.0f : v;
    }
    /* Give back the unused tail of the buffer; a failed shrink keeps it. */
    {
        float *p = realloc(d.out, d.n * sizeof *p);
        if (p) d.out = p;
    }
    *pcm = d.out;
    *n_samples = d.n;
    d.out = NULL;
    rc = 0;
    /* Success falls through: the cleanup below frees only what is not returned. */
fail:
    if (rc == HARK_ECANCELED) snprintf(err, errlen, "%s: decoding canceled", path);
    free(d.out);
    swr_free(&d.swr);
    av_channel_layout_uninit(&d.in_layout);
    av_frame_free(&frame);
    av_packet_free(&pkt);
    avcodec_free_context(&d.codec);
    input_close(&in);
    return rc;
}

const char *media_reason(const char *err, const char *path)
{
    size_t n = strlen(path);
    return strncmp(err, path, n) == 0 && strncmp(err + n, ": ", 2) == 0 ? err + n + 2 : err;
}
