/*
 * test_cues.c: subtitles cut at words (cues.c).
 *
 * Properties over generated segments (random words of random lengths and
 * durations, in random limits): no line over max_line_chars characters and
 * no cue over max_lines lines or max_cue_s seconds unless one word alone is
 * longer; cues never overlap, never go back in time and never are empty;
 * the words come out in order, each once, never cut. Then hand-made cases
 * (a word longer than a line, word tags, a segment without words), and
 * FFmpeg's libavformat reading every SRT and WebVTT file back: one packet
 * per cue, at the cue's times, decoded without error.
 */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cues.h"
#include "harness.h"
#include "hark.h"

static uint32_t rng = 12345;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static int chars(const char *s, size_t n)
{
    int k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xc0) != 0x80;
    return k;
}

/* A segment of random words: a leading space, 1 to 14 letters (some
 * multi-byte), times increasing with small gaps. */
struct gen {
    struct hark_segment seg;
    struct hark_word w[80];
    char text[80][64];
    int longest;
};

static void make_segment(struct gen *g, double *t)
{
    int n = 1 + (int)(rnd() % 60);
    memset(&g->seg, 0, sizeof g->seg);
    g->longest = 0;
    for (int k = 0; k < n; k++) {
        int len = 1 + (int)(rnd() % 14), o = 0;
        if (k > 0 || rnd() % 2) g->text[k][o++] = ' ';
        for (int i = 0; i < len; i++) {
            if (rnd() % 9 == 0) {
                memcpy(g->text[k] + o, "\xc3\xa9", 2); /* é */
                o += 2;
            } else {
                g->text[k][o++] = (char)('a' + rnd() % 26);
            }
        }
        g->text[k][o] = 0;
        if (len > g->longest) g->longest = len;
        *t += (rnd() % 30) / 100.0;
        double d = 0.05 + (rnd() % 150) / 100.0;
        g->w[k] = (struct hark_word){g->text[k], *t, *t + d, 0.5f, 0, 0};
        *t += d;
    }
    g->seg.words = g->w;
    g->seg.n_words = n;
    g->seg.start_s = g->w[0].start_s;
    g->seg.end_s = *t;
    g->seg.text = "";
}

static void test_properties(void)
{
    int n_cues = 0, n_runs = 0, worst_line = 0, over = 0;
    static struct gen g[4];
    for (int run = 0; run < 400; run++) {
        struct hark_cue_options o;
        hark_cue_options_init(&o);
        o.max_line_chars = 8 + (int)(rnd() % 50);
        o.max_lines = 1 + (int)(rnd() % 3);
        o.max_cue_s = 1.0 + (rnd() % 80) / 10.0;
        struct hark_segment segs[4];
        double t = 0.0;
        int ns = 1 + (int)(rnd() % 4), total_words = 0;
        for (int i = 0; i < ns; i++) {
            make_segment(&g[i], &t);
            segs[i] = g[i].seg;
            total_words += segs[i].n_words;
        }
        struct cue *c = NULL;
        int nc = 0;
        CHECK(cues_build(segs, ns, &o, 0, &c, &nc) == 0);
        /* The words, in order, each once and whole: the cues' text with
         * line breaks as spaces equals the words' text joined. */
        char want[8192] = "", got[8192] = "";
        for (int i = 0; i < ns; i++)
            for (int k = 0; k < segs[i].n_words; k++) {
                const char *w = segs[i].words[k].text;
                while (*w == ' ') w++;
                strcat(want, " ");
                strcat(want, w);
            }
        double prev_end = -1;
        for (int q = 0; q < nc; q++) {
            CHECK(c[q].text[0] != 0);
            CHECKF(c[q].start >= prev_end - 1e-12 && c[q].end > c[q].start, "cue %d [%g, %g] after %g", q, c[q].start,
                   c[q].end, prev_end);
            prev_end = c[q].end;
            int lines = 1, line_words = 0, cue_words = 0;
            const char *s = c[q].text;
            while (*s) {
                const char *e = strchr(s, '\n');
                size_t len = e ? (size_t)(e - s) : strlen(s);
                int lc = chars(s, len);
                for (size_t i = 0; i < len; i++) line_words += s[i] == ' ';
                line_words++;
                cue_words += line_words;
                /* Over the limit only as a single word. */
                if (lc > o.max_line_chars && memchr(s, ' ', len)) over++;
                if (lc > worst_line) worst_line = lc;
                line_words = 0;
                strcat(got, " ");
                strncat(got, s, len);
                if (!e) break;
                lines++;
                s = e + 1;
            }
            CHECKF(lines <= o.max_lines, "cue %d has %d lines (limit %d)", q, lines, o.max_lines);
            if (c[q].end - c[q].start > o.max_cue_s + 1e-9) {
                /* Only a single word may last longer. */
                CHECKF(cue_words == 1, "cue %d lasts %.2f s with %d words (limit %.1f)", q, c[q].end - c[q].start,
                       cue_words, o.max_cue_s);
            }
        }
        CHECKF(!strcmp(want, got), "run %d: the words changed", run);
        n_cues += nc;
        n_runs++;
        (void)total_words;
        cues_free(c, nc);
    }
    CHECK(over == 0);
    printf("  %d generated inputs, %d cues: limits kept (lines over the limit hold one word: %d), no overlap, words "
           "intact\n",
           n_runs, n_cues, over);
}

static int near(double a, double b) { return fabs(a - b) < 1e-9; }

static void test_cases(void)
{
    static struct hark_word w[] = {
        {" The", 1.0, 1.2, 1, 0, 0},   {" quick", 1.2, 1.5, 1, 0, 0}, {" brown", 1.5, 1.8, 1, 0, 0},
        {" fox", 1.8, 2.0, 1, 0, 0},   {" jumps", 2.0, 2.4, 1, 0, 0}, {" over", 2.4, 2.6, 1, 0, 0},
        {" supercalifragilisticexpialidocious", 2.6, 4.0, 1, 0, 0},   {" dog.", 4.0, 4.2, 1, 0, 0},
    };
    struct hark_segment seg = {0};
    seg.words = w;
    seg.n_words = 8;
    seg.start_s = 1.0;
    seg.end_s = 4.2;
    seg.text = " The quick brown fox jumps over supercalifragilisticexpialidocious dog.";
    struct hark_cue_options o;
    hark_cue_options_init(&o);
    o.max_line_chars = 16;
    o.max_lines = 2;
    struct cue *c = NULL;
    int nc = 0;
    CHECK(cues_build(&seg, 1, &o, 0, &c, &nc) == 0);
    /* "The quick brown" (15) / "fox jumps over" (14); then the long word
     * alone on a line, and "dog." on the next. */
    CHECKF(nc == 2, "%d cues", nc);
    if (nc == 2) {
        CHECKF(!strcmp(c[0].text, "The quick brown\nfox jumps over") && c[0].start == 1.0 && c[0].end == 2.6, "[%s]",
               c[0].text);
        CHECKF(!strcmp(c[1].text, "supercalifragilisticexpialidocious\ndog."), "[%s]", c[1].text);
    }
    cues_free(c, nc);
    /* Word tags in WebVTT. */
    o.max_line_chars = 42;
    o.word_tags = 1;
    seg.n_words = 3;
    CHECK(cues_build(&seg, 1, &o, 1, &c, &nc) == 0 && nc == 1);
    if (nc == 1) CHECKF(!strcmp(c[0].text, "The <00:00:01.200>quick <00:00:01.500>brown"), "[%s]", c[0].text);
    cues_free(c, nc);
    /* Words that share one instant, as a model unsure of its times gives:
     * each cue is moved a millisecond past the one before, and its tags
     * move with it, in order and within the cue. */
    static struct hark_word same[] = {
        {" a", 9.0, 9.0, 1, 0, 0}, {" b", 9.0, 9.0, 1, 0, 0}, {" c", 9.0, 9.0, 1, 0, 0},
        {" d", 9.0, 9.0, 1, 0, 0}, {" e", 8.5, 9.0, 1, 0, 0}, {" f", 9.0, 9.2, 1, 0, 0},
    };
    struct hark_segment tied = {0};
    tied.words = same;
    tied.n_words = 6;
    tied.start_s = 9.0;
    tied.end_s = 9.2;
    o.max_line_chars = 3;
    o.max_lines = 1;
    CHECK(cues_build(&tied, 1, &o, 1, &c, &nc) == 0 && nc == 3);
    if (nc == 3) {
        CHECKF(!strcmp(c[0].text, "a <00:00:09.000>b") && near(c[0].start, 9.0) && near(c[0].end, 9.001),
               "[%s] %.4f %.4f", c[0].text, c[0].start, c[0].end);
        CHECKF(!strcmp(c[1].text, "c <00:00:09.001>d") && near(c[1].start, 9.001) && near(c[1].end, 9.002),
               "[%s] %.4f %.4f", c[1].text, c[1].start, c[1].end);
        CHECKF(!strcmp(c[2].text, "e <00:00:09.002>f") && near(c[2].start, 9.002) && near(c[2].end, 9.2),
               "[%s] %.4f %.4f", c[2].text, c[2].start, c[2].end);
    }
    cues_free(c, nc);
    o.max_line_chars = 42;
    o.max_lines = 2;
    /* A segment without words is one cue; "-->" and line breaks cleaned;
     * an empty one gives none. */
    struct hark_segment plain[2] = {{0}, {0}};
    plain[0].start_s = 5.0;
    plain[0].end_s = 6.0;
    plain[0].text = " a --> b\nc ";
    plain[1].start_s = 6.0;
    plain[1].end_s = 6.0;
    plain[1].text = "  ";
    CHECK(cues_build(plain, 2, &o, 0, &c, &nc) == 0 && nc == 1);
    if (nc == 1) CHECKF(!strcmp(c[0].text, "a -> b c"), "[%s]", c[0].text);
    cues_free(c, nc);
    /* Options out of range are refused. */
    o.max_lines = 0;
    char err[128];
    CHECK(hark_cue_options_check(&o, err, sizeof err) == HARK_EINVAL && strstr(err, "max_lines"));
}

/* Reads a subtitle file with libavformat and decodes every packet; returns
 * the number of packets, -1 on an error, and checks their times. */
static int ffmpeg_read(const char *path, const struct cue *c, int nc)
{
    AVFormatContext *fmt = NULL;
    if (avformat_open_input(&fmt, path, NULL, NULL) < 0) return -1;
    int n = -1;
    if (avformat_find_stream_info(fmt, NULL) < 0 || fmt->nb_streams != 1) goto done;
    AVStream *st = fmt->streams[0];
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    AVCodecContext *dec = codec ? avcodec_alloc_context3(codec) : NULL;
    if (!dec || avcodec_parameters_to_context(dec, st->codecpar) < 0 || avcodec_open2(dec, codec, NULL) < 0) {
        avcodec_free_context(&dec);
        goto done;
    }
    AVPacket *pkt = av_packet_alloc();
    n = 0;
    while (pkt && av_read_frame(fmt, pkt) >= 0) {
        AVSubtitle sub;
        int got = 0;
        if (avcodec_decode_subtitle2(dec, &sub, &got, pkt) < 0 || !got) n = -1000000;
        if (got) avsubtitle_free(&sub);
        double t0 = pkt->pts * av_q2d(st->time_base), t1 = (pkt->pts + pkt->duration) * av_q2d(st->time_base);
        if (n >= 0 && n < nc &&
            (fabs(t0 - cues_ms(c[n].start) / 1000.0) > 0.0015 || fabs(t1 - cues_ms(c[n].end) / 1000.0) > 0.0015))
            n = -1000000;
        n++;
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
done:
    avformat_close_input(&fmt);
    return n < 0 ? -1 : n;
}

static void test_ffmpeg_reads_back(void)
{
    static struct gen g[3];
    int files = 0;
    for (int run = 0; run < 20; run++) {
        struct hark_segment segs[3];
        double t = 3598.0 * (run % 2); /* across the hour too */
        for (int i = 0; i < 3; i++) {
            make_segment(&g[i], &t);
            segs[i] = g[i].seg;
        }
        for (int vtt = 0; vtt < 2; vtt++) {
            struct hark_cue_options o;
            hark_cue_options_init(&o);
            o.word_tags = run % 3 == 0;
            char path[512];
            snprintf(path, sizeof path, "%s/cues-%d.%s", t_tmpdir(), run, vtt ? "vtt" : "srt");
            FILE *f = fopen(path, "w");
            CHECK(f != NULL);
            if (!f) continue;
            CHECK(hark_segments_write_cues(segs, 3, vtt ? HARK_FORMAT_VTT : HARK_FORMAT_SRT, &o, f) == 0);
            fclose(f);
            struct cue *c = NULL;
            int nc = 0;
            CHECK(cues_build(segs, 3, &o, vtt, &c, &nc) == 0);
            int got = ffmpeg_read(path, c, nc);
            CHECKF(got == nc, "%s: FFmpeg read %d cues, %d written", path, got, nc);
            cues_free(c, nc);
            files++;
        }
    }
    printf("  %d SRT and WebVTT files read back by libavformat, every cue at its times\n", files);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    av_log_set_level(AV_LOG_ERROR);
    t_run("cue_properties", test_properties);
    t_run("cue_cases", test_cases);
    t_run("cue_ffmpeg_reads_back", test_ffmpeg_reads_back);
    return t_summary();
}
