/*
 * wav.h: reads RIFF/WAVE files of 16-bit PCM (any channel count; mixed down
 * to mono) into float samples in [-1, 1) as s16 / 32768, the way
 * whisper.cpp's reader does. The sample rate must be 16000 Hz.
 */
#ifndef HARK_WAV_H
#define HARK_WAV_H

#include <stddef.h>

/* On success returns 0 and a malloc'ed array of *n_samples floats in *pcm
 * (owned by the caller). On failure returns HARK_EIO (unreadable),
 * HARK_EAUDIO (not a WAV file), HARK_ENOTSUP (a WAV that is not 16-bit PCM
 * at 16 kHz) or HARK_ENOMEM, with a one-line reason naming the file in err. */
int wav_read(const char *path, float **pcm, size_t *n_samples, char *err, size_t errlen);

#endif
