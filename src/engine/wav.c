/*
 * wav.c: a RIFF/WAVE reader for 16-bit PCM at 16 kHz (see wav.h). Chunks are
 * walked by their declared sizes with every size checked against the file,
 * so a truncated or lying header gives an error, never an out-of-bounds read.
 */
#include "wav.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "errors.h"
#include "hark.h"

static uint32_t rd32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

int wav_read(const char *path, float **pcm, size_t *n_samples, char *err, size_t errlen)
{
    FILE *f = NULL;
    uint8_t *buf = NULL;
    float *out = NULL;
    long size;
    int rc = HARK_EAUDIO;
    size_t pos, data_off = 0, data_len = 0;
    int have_fmt = 0, channels = 0, bits = 0, format = 0;
    uint32_t rate = 0;

    *pcm = NULL;
    *n_samples = 0;
    f = fopen(path, "rb");
    if (!f) {
        err_set(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return HARK_EIO;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        err_set(err, errlen, "%s: cannot read", path);
        rc = HARK_EIO;
        goto fail;
    }
    buf = malloc(size > 0 ? (size_t)size : 1);
    if (!buf) {
        err_set(err, errlen, "%s: out of memory reading %ld bytes", path, size);
        rc = HARK_ENOMEM;
        goto fail;
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        err_set(err, errlen, "%s: short read", path);
        rc = HARK_EIO;
        goto fail;
    }
    if (size < 12 || memcmp(buf, "RIFF", 4) || memcmp(buf + 8, "WAVE", 4)) {
        err_set(err, errlen, "%s: not a RIFF/WAVE file", path);
        goto fail;
    }
    for (pos = 12; pos + 8 <= (size_t)size;) {
        uint32_t len = rd32(buf + pos + 4);
        const uint8_t *body = buf + pos + 8;
        size_t avail = (size_t)size - pos - 8;
        if (!memcmp(buf + pos, "fmt ", 4)) {
            if (len < 16 || len > avail) {
                err_set(err, errlen, "%s: bad fmt chunk", path);
                goto fail;
            }
            format = rd16(body);
            channels = rd16(body + 2);
            rate = rd32(body + 4);
            bits = rd16(body + 14);
            if (format == 0xFFFE && len >= 26) format = rd16(body + 24);
            have_fmt = 1;
        } else if (!memcmp(buf + pos, "data", 4)) {
            data_off = pos + 8;
            data_len = len <= avail ? len : avail; /* a streamed file may declare more than it has */
            break;
        }
        if (len > avail) break;
        pos += 8 + (size_t)len + (len & 1);
    }
    if (!have_fmt || !data_off) {
        err_set(err, errlen, "%s: no %s chunk", path, have_fmt ? "data" : "fmt");
        goto fail;
    }
    if (format != 1 || bits != 16 || channels < 1) {
        err_set(err, errlen, "%s: only 16-bit PCM WAV is read here (format %d, %d bits, %d channels)",
                path, format, bits, channels);
        rc = HARK_ENOTSUP;
        goto fail;
    }
    if (rate != 16000) {
        err_set(err, errlen, "%s: sample rate %u Hz, expected 16000 Hz", path, rate);
        rc = HARK_ENOTSUP;
        goto fail;
    }
    {
        size_t frame = (size_t)channels * 2, n = data_len / frame, i;
        int c;
        out = malloc((n ? n : 1) * sizeof *out);
        if (!out) {
            err_set(err, errlen, "%s: out of memory for %zu samples", path, n);
            rc = HARK_ENOMEM;
            goto fail;
        }
        for (i = 0; i < n; i++) {
            float acc = 0;
            for (c = 0; c < channels; c++)
                acc += (float)(int16_t)rd16(buf + data_off + i * frame + (size_t)c * 2) / 32768.0f;
            out[i] = acc / (float)channels;
        }
        *pcm = out;
        *n_samples = n;
    }
    free(buf);
    fclose(f);
    return 0;
fail:
    free(out);
    free(buf);
    if (f) fclose(f);
    return rc;
}
