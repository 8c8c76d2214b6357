/*
 * test_model.c: the model loader on the shared models, on every truncation
 * of small models written here, and on each kind of corruption. Run under
 * AddressSanitizer (make test SAN=1) this also shows that no malformed file
 * makes the loader read outside the mapping.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "hark.h"
#include "model.h"

/* ------------------------------------------------ writing small models */

struct buf {
    uint8_t *p;
    size_t n, cap;
};

static void put(struct buf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) abort();
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void put_i32(struct buf *b, int32_t v) { put(b, &v, 4); }

struct spec {
    int32_t n_vocab, state, heads, enc_layers, dec_layers, n_mels, ftype;
    int32_t n_tokens;   /* stored vocabulary */
    int weight_type;    /* type of 2-D linear weights and the token embedding */
};

/* Appends one tensor record with deterministic contents. */
static void put_tensor(struct buf *b, const char *name, int type, int n_dims, int64_t ne0,
                       int64_t ne1, int64_t ne2)
{
    int64_t ne[3] = {ne0, ne1, ne2}, n = 1;
    size_t bytes, i;
    int d;
    put_i32(b, n_dims);
    put_i32(b, (int32_t)strlen(name));
    put_i32(b, type);
    for (d = 0; d < n_dims; d++) {
        put_i32(b, (int32_t)ne[d]);
        n *= ne[d];
    }
    put(b, name, strlen(name));
    bytes = model_type_bytes(type, n);
    for (i = 0; i < bytes; i++) {
        uint8_t v = (uint8_t)(i * 31 + 7);
        /* Keep f16/f32 values finite: clear the high exponent bits. */
        if (type == TYPE_F16 && (i & 1)) v &= 0x3b;
        if (type == TYPE_F32 && (i & 3) == 3) v &= 0x3e;
        put(b, &v, 1);
    }
}

static void write_model(struct buf *b, const struct spec *s)
{
    int32_t S = s->state, i, j;
    char name[128];
    int wt = s->weight_type;
    int ct = wt == TYPE_F32 ? TYPE_F32 : TYPE_F16; /* conv weights */
    b->n = 0;
    put_i32(b, 0x67676d6c);
    put_i32(b, s->n_vocab);
    put_i32(b, 1500);
    put_i32(b, S);
    put_i32(b, s->heads);
    put_i32(b, s->enc_layers);
    put_i32(b, 448);
    put_i32(b, S);
    put_i32(b, s->heads);
    put_i32(b, s->dec_layers);
    put_i32(b, s->n_mels);
    put_i32(b, s->ftype);
    put_i32(b, s->n_mels);
    put_i32(b, 201);
    for (i = 0; i < s->n_mels * 201; i++) {
        float f = (float)i / 1000.0f;
        put(b, &f, 4);
    }
    put_i32(b, s->n_tokens);
    for (i = 0; i < s->n_tokens; i++) {
        char tok[8];
        int n = snprintf(tok, sizeof tok, "t%d", i);
        put_i32(b, n);
        put(b, tok, (size_t)n);
    }
    put_tensor(b, "encoder.positional_embedding", TYPE_F32, 2, S, 1500, 1);
    put_tensor(b, "encoder.conv1.weight", ct, 3, 3, s->n_mels, S);
    put_tensor(b, "encoder.conv1.bias", TYPE_F32, 2, 1, S, 1);
    put_tensor(b, "encoder.conv2.weight", ct, 3, 3, S, S);
    put_tensor(b, "encoder.conv2.bias", TYPE_F32, 2, 1, S, 1);
    for (i = 0; i < s->enc_layers; i++) {
        static const char *ln[] = {"attn_ln", "mlp_ln"};
        snprintf(name, sizeof name, "encoder.blocks.%d.mlp.0.weight", i);
        put_tensor(b, name, wt, 2, S, 4 * S, 1);
        snprintf(name, sizeof name, "encoder.blocks.%d.mlp.0.bias", i);
        put_tensor(b, name, TYPE_F32, 1, 4 * S, 1, 1);
        snprintf(name, sizeof name, "encoder.blocks.%d.mlp.2.weight", i);
        put_tensor(b, name, wt, 2, 4 * S, S, 1);
        snprintf(name, sizeof name, "encoder.blocks.%d.mlp.2.bias", i);
        put_tensor(b, name, TYPE_F32, 1, S, 1, 1);
        for (j = 0; j < 2; j++) {
            snprintf(name, sizeof name, "encoder.blocks.%d.%s.weight", i, ln[j]);
            put_tensor(b, name, TYPE_F32, 1, S, 1, 1);
            snprintf(name, sizeof name, "encoder.blocks.%d.%s.bias", i, ln[j]);
            put_tensor(b, name, TYPE_F32, 1, S, 1, 1);
        }
        snprintf(name, sizeof name, "encoder.blocks.%d.attn.key.weight", i);
        put_tensor(b, name, wt, 2, S, S, 1);
        for (j = 0; j < 3; j++) {
            static const char *pr[] = {"query", "value", "out"};
            snprintf(name, sizeof name, "encoder.blocks.%d.attn.%s.weight", i, pr[j]);
            put_tensor(b, name, wt, 2, S, S, 1);
            snprintf(name, sizeof name, "encoder.blocks.%d.attn.%s.bias", i, pr[j]);
            put_tensor(b, name, TYPE_F32, 1, S, 1, 1);
        }
    }
    put_tensor(b, "encoder.ln_post.weight", TYPE_F32, 1, S, 1, 1);
    put_tensor(b, "encoder.ln_post.bias", TYPE_F32, 1, S, 1, 1);
    put_tensor(b, "decoder.positional_embedding", TYPE_F32, 2, S, 448, 1);
    put_tensor(b, "decoder.token_embedding.weight", wt, 2, S, s->n_vocab, 1);
    for (i = 0; i < s->dec_layers; i++) {
        static const char *att[] = {"attn", "cross_attn"};
        static const char *ln[] = {"attn_ln", "cross_attn_ln", "mlp_ln"};
        int a;
        for (a = 0; a < 2; a++) {
            snprintf(name, sizeof name, "decoder.blocks.%d.%s.key.weight", i, att[a]);
            put_tensor(b, name, wt, 2, S, S, 1);
            for (j = 0; j < 3; j++) {
                static const char *pr[] = {"query", "value", "out"};
                snprintf(name, sizeof name, "decoder.blocks.%d.%s.%s.weight", i, att[a], pr[j]);
                put_tensor(b, name, wt, 2, S, S, 1);
                snprintf(name, sizeof name, "decoder.blocks.%d.%s.%s.bias", i, att[a], pr[j]);
                put_tensor(b, name, TYPE_F32, 1, S, 1, 1);
            }
        }
        for (j = 0; j < 3; j++) {
            snprintf(name, sizeof name, "decoder.blocks.%d.%s.weight", i, ln[j]);
            put_tensor(b, name, TYPE_F32, 1, S, 1, 1);
            snprintf(name, sizeof name, "decoder.blocks.%d.%s.bias", i, ln[j]);
            put_tensor(b, name, TYPE_F32, 1, S, 1, 1);
        }
        snprintf(name, sizeof name, "decoder.blocks.%d.mlp.0.weight", i);
        put_tensor(b, name, wt, 2, S, 4 * S, 1);
        snprintf(name, sizeof name, "decoder.blocks.%d.mlp.0.bias", i);
        put_tensor(b, name, TYPE_F32, 1, 4 * S, 1, 1);
        snprintf(name, sizeof name, "decoder.blocks.%d.mlp.2.weight", i);
        put_tensor(b, name, wt, 2, 4 * S, S, 1);
        snprintf(name, sizeof name, "decoder.blocks.%d.mlp.2.bias", i);
        put_tensor(b, name, TYPE_F32, 1, S, 1, 1);
    }
    put_tensor(b, "decoder.ln.weight", TYPE_F32, 1, S, 1, 1);
    put_tensor(b, "decoder.ln.bias", TYPE_F32, 1, S, 1, 1);
}

static const char *tmp_path(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", t_tmpdir(), name);
    return p;
}

static void save(const struct buf *b, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b->p, 1, b->n, f) != b->n) abort();
    fclose(f);
}

/* Loads path and expects failure with a one-line message naming the file
 * and containing `want` (if not NULL). */
static void expect_fail(const char *path, int want_code, const char *want, const char *what)
{
    char err[512];
    int code = 0;
    hark_model *m = hark_model_load(path, &code, err, sizeof err);
    CHECKF(!m, "%s: loaded a malformed model", what);
    hark_model_free(m);
    if (m) return;
    CHECKF(code == want_code, "%s: code %d (%s), expected %d", what, code, hark_strerror(code), want_code);
    CHECKF(strstr(err, path) == err, "%s: message does not start with the path: %s", what, err);
    CHECKF(!strchr(err, '\n'), "%s: message is not one line", what);
    if (want) CHECKF(strstr(err, want) != NULL, "%s: message '%s' lacks '%s'", what, err, want);
}

static const struct spec small_f16 = {51864, 4, 2, 1, 1, 80, 1, 12, TYPE_F16};

/* ----------------------------------------------------------------- tests */

static void test_shared_models(void)
{
    size_t len;
    char *text = t_read_file(t_shared("models", "MANIFEST.json"), &len);
    json_error_t jerr;
    json_t *man, *models;
    size_t i;
    CHECKF(text != NULL, "cannot read MANIFEST.json");
    if (!text) return;
    man = json_loads(text, 0, &jerr);
    free(text);
    CHECKF(man != NULL, "MANIFEST.json: %s", jerr.text);
    if (!man) return;
    models = man;
    CHECK(json_is_array(models) && json_array_size(models) == 9);
    for (i = 0; i < json_array_size(models); i++) {
        json_t *e = json_array_get(models, i), *hp = json_object_get(e, "header_hparams");
        const char *file = json_string_value(json_object_get(e, "file"));
        char err[512];
        int code = -100;
        hark_model *m;
        const struct hark_hparams *h;
        if (!file || !hp) {
            CHECKF(0, "MANIFEST entry %zu lacks file/hparams", i);
            continue;
        }
        if (strrchr(file, '/')) file = strrchr(file, '/') + 1;
        m = hark_model_load(t_shared("models", file), &code, err, sizeof err);
        CHECKF(m != NULL, "%s: %s", file, err);
        if (!m) continue;
        CHECK(code == 0);
        h = hark_model_hparams(m);
#define HP(f) CHECKF(h->f == json_integer_value(json_object_get(hp, #f)) || \
                     (!strcmp(#f, "ftype") && h->f == json_integer_value(json_object_get(hp, #f)) % 1000), \
                     "%s: " #f " %d", file, h->f)
        HP(n_vocab); HP(n_audio_ctx); HP(n_audio_state); HP(n_audio_head); HP(n_audio_layer);
        HP(n_text_ctx); HP(n_text_state); HP(n_text_head); HP(n_text_layer); HP(n_mels); HP(ftype);
#undef HP
        CHECKF(hark_model_n_tensors(m) == 5 + 15 * h->n_audio_layer + 2 + 2 + 24 * h->n_text_layer + 2,
               "%s: %d tensors", file, hark_model_n_tensors(m));
        CHECK(hark_model_is_multilingual(m) == (h->n_vocab >= 51865));
        {
            /* The header alone gives the same hyperparameters. */
            struct hark_hparams peek;
            CHECKF(hark_model_peek(t_shared("models", file), &peek, err, sizeof err) == 0, "%s: %s", file, err);
            CHECKF(!memcmp(&peek, h, sizeof peek), "%s: peeked hparams differ", file);
        }
        CHECK(m->n_vocab_stored == json_integer_value(json_object_get(e, "n_vocab_stored")));
        {
            struct hark_tensor_info ti;
            int k, n_f16 = 0;
            CHECK(hark_model_tensor(m, -1, &ti) == HARK_ERANGE);
            CHECK(hark_model_tensor(m, hark_model_n_tensors(m), &ti) == HARK_ERANGE);
            for (k = 0; k < hark_model_n_tensors(m); k++) {
                CHECK(hark_model_tensor(m, k, &ti) == 0 && ti.name && ti.n_bytes > 0);
                if (ti.type == TYPE_F16) n_f16++;
            }
            if (h->ftype >= 2) CHECKF(n_f16 == 2, "%s: %d f16 tensors in a quantized file", file, n_f16);
        }
        hark_model_free(m);
    }
    json_decref(man);
}

static void test_small_model_loads(void)
{
    static const int types[] = {TYPE_F32, TYPE_F16, TYPE_Q4_0, TYPE_Q4_1, TYPE_Q5_0, TYPE_Q5_1, TYPE_Q8_0};
    size_t i;
    struct buf b = {0};
    for (i = 0; i < sizeof types / sizeof types[0]; i++) {
        struct spec s = small_f16;
        char err[512];
        hark_model *m;
        s.weight_type = types[i];
        s.state = types[i] >= TYPE_Q4_0 ? 32 : 4;
        s.heads = 2;
        write_model(&b, &s);
        save(&b, tmp_path("small.bin"));
        m = hark_model_load(tmp_path("small.bin"), NULL, err, sizeof err);
        CHECKF(m != NULL, "type %s: %s", hark_type_name(types[i]), err);
        if (m) {
            CHECK(m->tok_emb.type == types[i]);
            CHECK(m->enc[0].attn_ln_w.f32 != NULL && ((uintptr_t)m->enc[0].attn_ln_w.f32 & 63) == 0);
            CHECK(m->n_vocab_stored == 12 && m->vocab_len[11] == 3 && !memcmp(m->vocab_bytes[11], "t11", 3));
        }
        hark_model_free(m);
    }
    /* Asymmetric depth (large-v3-turbo) and the three vocabulary sizes. */
    {
        static const int32_t vocab[] = {51864, 51865, 51866};
        for (i = 0; i < 3; i++) {
            struct spec s = small_f16;
            char err[512];
            hark_model *m;
            s.n_vocab = vocab[i];
            s.enc_layers = 3;
            s.dec_layers = 1;
            s.n_mels = i == 2 ? 128 : 80;
            write_model(&b, &s);
            save(&b, tmp_path("small.bin"));
            m = hark_model_load(tmp_path("small.bin"), NULL, err, sizeof err);
            CHECKF(m != NULL, "n_vocab %d: %s", vocab[i], err);
            hark_model_free(m);
        }
    }
    free(b.p);
}

/* Every truncation of a small model fails cleanly. Inside a tensor's data
 * the loader makes one bounds decision, so there the first, middle and last
 * bytes stand for the rest; every other byte (headers, filters, vocabulary,
 * tensor headers and names) is tried. */
static void truncate_all(const struct buf *full, const char *label, int vocab_stride)
{
    const char *path = tmp_path("trunc.bin");
    FILE *f;
    size_t k, n_tried = 0;
    uint8_t *important = calloc(full->n + 1, 1);
    char err[512];
    hark_model *m;

    /* Mark tensor data interiors as skippable by re-walking the records:
     * header(56) + filters + vocab, then records. */
    {
        size_t pos = 4 + 44;
        int32_t n_mel, n_fft, n_tok, i;
        memcpy(&n_mel, full->p + pos, 4);
        memcpy(&n_fft, full->p + pos + 4, 4);
        pos += 8;
        for (k = 0; k < pos; k++) important[k] = 1;
        important[pos] = important[pos + 1] = important[pos + (size_t)n_mel * n_fft * 2] = 1;
        pos += (size_t)n_mel * n_fft * 4;
        memcpy(&n_tok, full->p + pos, 4);
        for (k = 0; k < 4; k++) important[pos + k] = 1;
        pos += 4;
        for (i = 0; i < n_tok; i++) {
            uint32_t len;
            memcpy(&len, full->p + pos, 4);
            len += 4;
            if (i % vocab_stride == 0 || i == n_tok - 1)
                for (k = 0; k < len; k++) important[pos + k] = 1;
            pos += len;
        }
        while (pos < full->n) {
            int32_t nd, nl, ty, ne, d;
            int64_t nel = 1;
            size_t start = pos, bytes;
            memcpy(&nd, full->p + pos, 4);
            memcpy(&nl, full->p + pos + 4, 4);
            memcpy(&ty, full->p + pos + 8, 4);
            pos += 12;
            for (d = 0; d < nd; d++) {
                memcpy(&ne, full->p + pos, 4);
                pos += 4;
                nel *= ne;
            }
            pos += (size_t)nl;
            for (k = start; k < pos; k++) important[k] = 1;
            bytes = model_type_bytes(ty, nel);
            important[pos] = important[pos + bytes / 2] = important[pos + bytes - 1] = 1;
            pos += bytes;
        }
    }
    if (vocab_stride > 1) { /* a large file: every 11th of the chosen bytes */
        size_t seen = 0;
        for (k = 0; k < full->n; k++)
            if (important[k] && seen++ % 11) important[k] = 0;
    }
    f = fopen(path, "wb");
    if (!f || fwrite(full->p, 1, full->n, f) != full->n) abort();
    fclose(f);
    for (k = full->n; k-- > 0;) {
        if (!important[k]) continue;
        if (truncate(path, (off_t)k) != 0) abort();
        m = hark_model_load(path, NULL, err, sizeof err);
        n_tried++;
        if (m) {
            CHECKF(0, "%s: truncated to %zu of %zu bytes and still loaded", label, k, full->n);
            hark_model_free(m);
            break;
        }
        if (!strstr(err, path) || strchr(err, '\n')) {
            CHECKF(0, "%s: truncation at %zu: bad message '%s'", label, k, err);
            break;
        }
    }
    printf("  %s: %zu truncations of %zu bytes tried\n", label, n_tried, full->n);
    free(important);
}

static void test_truncations(void)
{
    struct buf b = {0};
    struct spec s = small_f16;
    size_t n;
    write_model(&b, &s);
    truncate_all(&b, "f16 model", 1);
    s.weight_type = TYPE_Q5_1;
    s.state = 32;
    s.ftype = 2009;
    write_model(&b, &s);
    truncate_all(&b, "q5_1 model", 1);
    free(b.p);
    /* A real file: every 11th of its header and tensor-record bytes and of
     * the vocabulary's bytes at every 97th token. */
    b.p = t_read_file(t_shared("models", "rt-mini.en-q4_0.bin"), &n);
    CHECKF(b.p != NULL, "cannot read rt-mini.en-q4_0.bin");
    if (!b.p) return;
    b.n = b.cap = n;
    truncate_all(&b, "rt-mini.en-q4_0", 97);
    free(b.p);
}

/* Patches an int32 at a byte offset of a fresh small model and expects a
 * load failure mentioning `want`. */
static size_t find(const struct buf *b, const char *s)
{
    size_t i, n = strlen(s);
    for (i = 0; i + n <= b->n; i++)
        if (!memcmp(b->p + i, s, n)) return i;
    abort();
}

static void patch_i32(struct buf *b, size_t off, int32_t v) { memcpy(b->p + off, &v, 4); }

/* hark_model_peek on a header cut at every byte, a wrong magic, a bad
 * field and a missing file: a code and a one-line reason, never success. */
static void test_peek_refusals(void)
{
    struct buf b = {0};
    struct spec s = small_f16;
    struct hark_hparams hp;
    char err[512];
    const char *path = tmp_path("peek.bin");
    write_model(&b, &s);
    save(&b, path);
    CHECK(hark_model_peek(path, &hp, err, sizeof err) == 0 && hp.n_vocab == s.n_vocab);
    for (size_t cut = 48; cut-- > 0;) {
        if (truncate(path, (off_t)cut) != 0) abort();
        err[0] = 0;
        int rc = hark_model_peek(path, &hp, err, sizeof err);
        CHECKF(rc == HARK_EFORMAT && err[0] && !strchr(err, '\n'), "cut at %zu: %d '%s'", cut, rc, err);
    }
    patch_i32(&b, 4, 1234); /* n_vocab */
    save(&b, path);
    CHECK(hark_model_peek(path, &hp, err, sizeof err) == HARK_EFORMAT && strstr(err, "n_vocab"));
    patch_i32(&b, 0, 0x12345678);
    save(&b, path);
    CHECK(hark_model_peek(path, &hp, err, sizeof err) == HARK_EFORMAT && strstr(err, "magic"));
    unlink(path);
    CHECK(hark_model_peek(path, &hp, err, sizeof err) == HARK_ENOENT && err[0]);
    free(b.p);
}

static void test_corruptions(void)
{
    struct buf b = {0};
    const char *path = tmp_path("bad.bin");
    static const struct {
        int field; /* hparams index */
        int32_t value;
        const char *want;
    } hp_bad[] = {
        {0, 50000, "n_vocab"}, {1, 1499, "n_audio_ctx"}, {2, 0, "n_audio_state"},
        {3, 3, "divisible"},   {4, -1, "n_audio_layer"}, {5, 0, "n_text_ctx"},
        {9, 0, "n_mels"},      {10, 5, "ftype"},         {10, 3002, "quantization version"},
        {10, -1, "ftype"},     {4, 1 << 30, "n_audio_layer"},
    };
    size_t i, off;

    /* Not a model at all; an empty file; a directory. */
    write_model(&b, &small_f16);
    b.p[0] ^= 0xff;
    save(&b, path);
    expect_fail(path, HARK_EFORMAT, "bad magic", "magic");
    b.n = 0;
    save(&b, path);
    expect_fail(path, HARK_EFORMAT, "too short", "empty file");
    expect_fail(t_tmpdir(), HARK_EIO, "not a regular file", "directory");
    {
        char missing[512];
        snprintf(missing, sizeof missing, "%s/does-not-exist.bin", t_tmpdir());
        expect_fail(missing, HARK_ENOENT, "cannot open", "missing file");
    }

    for (i = 0; i < sizeof hp_bad / sizeof hp_bad[0]; i++) {
        write_model(&b, &small_f16);
        patch_i32(&b, 4 + 4 * (size_t)hp_bad[i].field, hp_bad[i].value);
        save(&b, path);
        expect_fail(path, HARK_EFORMAT, hp_bad[i].want, hp_bad[i].want);
    }
    /* Mel filter count disagreeing with n_mels. */
    write_model(&b, &small_f16);
    patch_i32(&b, 48, 128);
    save(&b, path);
    expect_fail(path, HARK_EFORMAT, "mel filters", "mel count");
    /* A vocabulary larger than n_vocab, and a token with an absurd length. */
    write_model(&b, &small_f16);
    patch_i32(&b, 56 + 80 * 201 * 4, 60000);
    save(&b, path);
    expect_fail(path, HARK_EFORMAT, "vocabulary count", "vocab count");
    write_model(&b, &small_f16);
    patch_i32(&b, 56 + 80 * 201 * 4 + 4, 0x7fffffff);
    save(&b, path);
    expect_fail(path, HARK_EFORMAT, "vocabulary token 0", "token length");

    /* Tensor records. */
    write_model(&b, &small_f16);
    off = find(&b, "encoder.conv1.bias");
    memcpy(b.p + off, "encoder.convX", 13);
    save(&b, path);
    expect_fail(path, HARK_EFORMAT, "unknown tensor 'encoder.convX.bias'", "unknown tensor");

    write_model(&b, &small_f16);
    off = find(&b, "encoder.conv1.bias");
    memcpy(b.p + off, "encoder.conv2", 13); /* conv2.bias now appears twice */
    save(&b, path);
    expect_fail(path, HARK_EFORMAT, "tensor 'encoder.conv2.bias'", "renamed to an existing name");

    write_model(&b, &small_f16);
    off = find(&b, "encoder.ln_post.weight");
    patch_i32(&b, off - 4 * 1 - 4, 99); /* ttype of a 1-D record: 3 ints + 1 ne */
    save(&b, path);
    expect_fail(path, HARK_EFORMAT, "type 99", "unknown type");

    write_model(&b, &small_f16);
    off = find(&b, "encoder.ln_post.weight");
    patch_i32(&b, off - 8, TYPE_Q8_0);
    save(&b, path);
    expect_fail(path, HARK_EFORMAT, "not allowed", "quantized 1-D tensor");

    write_model(&b, &small_f16);
    off = find(&b, "encoder.ln_post.weight");
    patch_i32(&b, off - 4, 5);
    save(&b, path);
    expect_fail(path, HARK_EFORMAT, "shape [5], expected [4]", "wrong shape");

    write_model(&b, &small_f16);
    off = find(&b, "encoder.ln_post.weight");
    patch_i32(&b, off - 4, -4);
    save(&b, path);
    expect_fail(path, HARK_EFORMAT, "dimension 0 is -4", "negative dimension");

    write_model(&b, &small_f16);
    off = find(&b, "encoder.ln_post.weight");
    patch_i32(&b, off - 16, 0);
    save(&b, path);
    expect_fail(path, HARK_EFORMAT, "n_dims 0", "zero dims");

    write_model(&b, &small_f16);
    off = find(&b, "encoder.ln_post.weight");
    patch_i32(&b, off - 12, 1 << 20);
    save(&b, path);
    expect_fail(path, HARK_EFORMAT, "name length", "huge name");

    write_model(&b, &small_f16);
    off = find(&b, "encoder.ln_post.weight");
    b.p[off + 3] = 0;
    save(&b, path);
    expect_fail(path, HARK_EFORMAT, "NUL", "NUL in name");

    /* Dimensions whose product overflows: a 4-D record of 2^31-1 each. */
    write_model(&b, &small_f16);
    off = find(&b, "encoder.positional_embedding");
    patch_i32(&b, off - 20, 4); /* n_dims 4: the name's first bytes are read as dimensions */
    save(&b, path);
    expect_fail(path, HARK_EFORMAT, NULL, "dims reinterpreted");
    {
        struct buf o = {0};
        put(&o, b.p, find(&b, "encoder.positional_embedding") - 20);
        put_i32(&o, 4);
        put_i32(&o, 28);
        put_i32(&o, TYPE_F32);
        put_i32(&o, 0x7fffffff);
        put_i32(&o, 0x7fffffff);
        put_i32(&o, 0x7fffffff);
        put_i32(&o, 0x7fffffff);
        put(&o, "encoder.positional_embedding", 28);
        save(&o, path);
        expect_fail(path, HARK_EFORMAT, "overflows", "overflow");
        free(o.p);
    }

    /* Quantized conv weights are not a layout any converter writes. */
    {
        struct spec s = small_f16;
        s.state = 32;
        write_model(&b, &s);
        off = find(&b, "encoder.conv2.weight");
        patch_i32(&b, off - 16, TYPE_Q8_0);
        save(&b, path);
        expect_fail(path, HARK_EFORMAT, "not allowed", "quantized conv");
    }

    /* A tensor missing at the end of the file, and trailing garbage. */
    write_model(&b, &small_f16);
    b.n = find(&b, "decoder.ln.bias") - 16;
    save(&b, path);
    expect_fail(path, HARK_EFORMAT, "missing tensor 'decoder.ln.bias'", "missing tensor");
    write_model(&b, &small_f16);
    put_i32(&b, 1);
    save(&b, path);
    expect_fail(path, HARK_EFORMAT, "truncated tensor header", "trailing bytes");
    free(b.p);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("model_shared_models", test_shared_models);
    t_run("model_small_every_type", test_small_model_loads);
    t_run("model_every_truncation", test_truncations);
    t_run("model_peek_refusals", test_peek_refusals);
    t_run("model_corruptions", test_corruptions);
    return t_summary();
}
