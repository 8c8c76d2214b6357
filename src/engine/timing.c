/*
 * timing.c: the engine's side of `hark bench` (timing.h): stage calls for
 * the benchmark to time, the facts it prints about a model, and the GEMM
 * rate of the engine's linear layer.
 *
 * Each stage call is one internal call (mel_compute, enc_forward,
 * dec_reserve, dec_forward, dec_step) so that what the benchmark times is
 * the stage alone. The counts of FLOPs and bytes are the benchmark's
 * arithmetic over the model's shapes and tensors, kept here because they
 * need the model's layout.
 */
#include "timing.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decoder.h"
#include "encoder.h"
#include "kernels.h"
#include "mel.h"
#include "model.h"
#include "pool.h"
#include "quant.h"
#include "state.h"
#include "tokenizer.h"
#include "wav.h"

_Static_assert(TIMING_SAMPLE_RATE == MEL_SAMPLE_RATE, "timing.h's sample rate is the log-mel's");

#define GEMM_M 1500
#define GEMM_K 1280
#define GEMM_N 5120
#define GEMM_RUNS 3

double timing_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------ stages */

int timing_mel(const hark_model *model, const float *pcm, size_t n_samples, int n_threads, float **mel,
               int *n_frames)
{
    return mel_compute(pcm, n_samples, model->mel_filters, model->hp.n_mels, n_threads, mel, n_frames);
}

int timing_encode(hark_state *st, const float *mel, int n_frames) { return enc_forward(st, mel, n_frames, 0); }

int timing_dec_reserve(hark_state *st, int n_seq) { return dec_reserve(st, n_seq); }

int timing_dec_prompt(hark_state *st, int slot, const int32_t *prompt, int n_prompt, float *logits)
{
    return dec_forward(st, slot, prompt, n_prompt, 0, n_prompt - 1, logits);
}

int timing_dec_step(hark_state *st, int n_seq, const int *slots, const int32_t *tokens, int pos, float *logits)
{
    return dec_step(st, n_seq, slots, tokens, pos, logits);
}

int timing_prompt(const hark_model *model, int32_t *prompt)
{
    struct tok_special sp;
    tok_special_init(&sp, hark_model_hparams(model)->n_vocab);
    prompt[0] = sp.sot;
    if (!sp.multilingual) return 1;
    prompt[1] = sp.lang0;
    prompt[2] = sp.transcribe;
    return 3;
}

/* ------------------------------------------------------------------- facts */

const char *timing_weight_type(const hark_model *model) { return hark_type_name(model->tok_emb.type); }

int timing_encoder_quantized(const hark_model *model) { return quant_is_block_type(model->enc[0].mlp0_w.type); }

/* Multiply-adds x 2 of one encoder window: the two convolutions over 3000
 * and 1500 frames, and per layer the projections (12 S^2 per frame) and the
 * two attention products (2 C^2 S). */
double timing_encoder_flops(const hark_model *model)
{
    const struct hark_hparams *hp = &model->hp;
    double S = hp->n_audio_state, C = hp->n_audio_ctx, M = hp->n_mels;
    double macs = 2 * C * S * 3 * M + C * S * 3 * S + hp->n_audio_layer * (12 * C * S * S + 2 * C * C * S);
    return 2 * macs;
}

/* Bytes a decoder step at batch 1 reads at position pos: every decoder
 * weight but the cross-attention key and value projections (applied once per
 * window), the token embedding (the output projection), the f16
 * cross-attention keys and values, and the f32 self-attention cache. */
double timing_decoder_bytes(const hark_model *model, int pos)
{
    const struct hark_hparams *hp = hark_model_hparams(model);
    double b = (double)model->tok_emb.n_bytes + model->ln_w.n_bytes + model->ln_b.n_bytes;
    for (int l = 0; l < hp->n_text_layer; l++) {
        const struct dec_layer *d = &model->dec[l];
        const struct tensor *t[] = {
            &d->attn_ln_w, &d->attn_ln_b, &d->q_w, &d->q_b, &d->k_w, &d->v_w, &d->v_b, &d->o_w, &d->o_b,
            &d->cross_ln_w, &d->cross_ln_b, &d->cq_w, &d->cq_b, &d->co_w, &d->co_b,
            &d->mlp_ln_w, &d->mlp_ln_b, &d->mlp0_w, &d->mlp0_b, &d->mlp2_w, &d->mlp2_b,
        };
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) b += (double)t[i]->n_bytes;
    }
    b += (double)hp->n_text_layer * 2 * hp->n_audio_ctx * hp->n_text_state * 2;
    b += (double)hp->n_text_layer * 2 * pos * hp->n_text_state * 4;
    return b;
}

double timing_align_ms(const hark_state *st) { return st->align_ms; }

void timing_align_reset(hark_state *st) { st->align_ms = 0; }

/* ---------------------------------------------------------------- machine */

/* Random activations and weights from a fixed LCG; for q8_0, an f16 scale
 * then 32 signed bytes per block. The first product warms the packing
 * buffers and pages and is not counted. */
double timing_linear_rate(int n_threads, int quantized)
{
    int type = quantized ? TYPE_Q8_0 : TYPE_F32;
    struct kern_pool *pool = kern_pool_new(n_threads);
    size_t row = kern_row_bytes(type, GEMM_K);
    uint8_t *w = malloc(row * GEMM_N);
    float *x = malloc(sizeof(float) * GEMM_M * GEMM_K);
    float *y = malloc(sizeof(float) * GEMM_M * GEMM_N);
    double best = 0;
    uint32_t r = 1;

    if (!pool || !w || !x || !y || !row) goto done;
    for (size_t i = 0; i < (size_t)GEMM_M * GEMM_K; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = (float)((int32_t)r >> 8) / 8388608.0f;
    }
    if (type == TYPE_F32) {
        float *wf = (float *)w;
        for (size_t i = 0; i < (size_t)GEMM_N * GEMM_K; i++) {
            r = r * 1664525u + 1013904223u;
            wf[i] = (float)((int32_t)r >> 8) / 8388608.0f * 0.03f;
        }
    } else { /* q8_0: f16 scale, then 32 signed bytes per block */
        uint16_t d = kern_f32_to_f16(0.0003f);
        for (size_t b = 0; b < row * GEMM_N / Q8_0_BYTES; b++) {
            uint8_t *blk = w + b * Q8_0_BYTES;
            memcpy(blk, &d, 2);
            for (int i = 0; i < QK; i++) {
                r = r * 1664525u + 1013904223u;
                blk[2 + i] = (uint8_t)(r >> 24);
            }
        }
    }
    struct tensor t = {
        .name = "bench", .type = type, .n_dims = 2, .ne = {GEMM_K, GEMM_N, 1, 1},
        .data = w, .n_bytes = row * GEMM_N, .f32 = type == TYPE_F32 ? (const float *)w : NULL,
    };
    kern_linear(pool, &t, NULL, x, GEMM_M, y, 0); /* warm: packing buffers, pages */
    for (int k = 0; k < GEMM_RUNS; k++) {
        double t0 = timing_now_ms();
        kern_linear(pool, &t, NULL, x, GEMM_M, y, 0);
        double ms = timing_now_ms() - t0;
        double rate = 2.0 * GEMM_M * GEMM_K * GEMM_N / (ms * 1e6);
        if (rate > best) best = rate;
    }
done:
    free(w);
    free(x);
    free(y);
    kern_pool_free(pool);
    return best;
}

/* ------------------------------------------------------------------- audio */

int timing_wav_read(const char *path, float **pcm, size_t *n_samples, char *err, size_t errlen)
{
    return wav_read(path, pcm, n_samples, err, errlen);
}
