/*
 * encoder.h: Whisper's audio encoder (conv stem + transformer blocks), and
 * the decoder's cross-attention keys/values computed from its output.
 */
#ifndef HARK_ENCODER_H
#define HARK_ENCODER_H

struct hark_state;
struct hark_model;
struct enc_ctx;

/* Allocates the encoder's buffers for a model; NULL on allocation failure. */
struct enc_ctx *enc_ctx_new(const struct hark_model *model);
void enc_ctx_free(struct enc_ctx *ctx);

/* Encodes one 30 s window: `mel` is the whole log-mel, row-major
 * (n_mels, n_frames); the window is frames [offset, offset + 2 * n_audio_ctx)
 * with zeros past n_frames. Leaves the encoder output in the state and fills
 * every decoder layer's cross-attention keys/values. Returns 0 or HARK_E*. */
int enc_forward(struct hark_state *st, const float *mel, int n_frames, int offset);

#endif
