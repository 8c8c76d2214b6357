/*
 * mel.h: 16 kHz mono float PCM -> Whisper's log-mel spectrogram.
 *
 * The spectrogram is openai-whisper's (audio.py log_mel_spectrogram) of the
 * whole audio with 30 s of zeros appended, the way whisper.cpp computes it
 * once per file and cuts 3000-frame windows from it: STFT with n_fft 400,
 * hop 160, periodic Hann window, centred with reflect padding of 200 samples;
 * power |X|^2; the last frame dropped; mel = filters . power;
 * log10(max(mel, 1e-10)); clamped below at (global max - 8); then (x + 4) / 4.
 */
#ifndef HARK_MEL_H
#define HARK_MEL_H

#include <stddef.h>

#define MEL_SAMPLE_RATE 16000
#define MEL_N_FFT 400          /* STFT window, samples */
#define MEL_HOP 160            /* samples per frame (10 ms) */
#define MEL_N_BINS 201         /* frequency bins: MEL_N_FFT / 2 + 1 */
#define MEL_PAD_SAMPLES 480000 /* 30 s of zeros appended to the audio */

/* The number of frames of the log-mel of n_samples of audio, padding
 * included: (n_samples + 480000) / 160 (jfk.wav's 176000 samples give 4100).
 * Thread-safe. */
size_t mel_n_frames(size_t n_samples);

/* Computes the log-mel of n_samples of PCM (pcm may be NULL when n_samples is
 * 0) with the model's filter bank filters (n_mels, MEL_N_BINS), row-major,
 * using n_threads threads (values below 1 mean 1).
 *
 * On success returns 0, stores a new malloc'ed array (n_mels, *n_frames),
 * row-major (frame index fastest), in *mel (owned by the caller: free()) and
 * the frame count in *n_frames. Returns HARK_EINVAL for bad arguments,
 * HARK_ERANGE when the audio is too long for an int frame count, HARK_ENOMEM
 * when memory runs out; *mel is then NULL. Thread-safe. */
int mel_compute(const float *pcm, size_t n_samples, const float *filters, int n_mels,
                int n_threads, float **mel, int *n_frames);

/* The same into a caller-provided buffer mel of n_mels * n_frames floats,
 * where n_frames must equal mel_n_frames(n_samples) (else HARK_EINVAL).
 * Returns 0 or a negative HARK_E* code. Thread-safe. */
int mel_compute_into(const float *pcm, size_t n_samples, const float *filters, int n_mels,
                     int n_threads, float *mel, int n_frames);

#endif
