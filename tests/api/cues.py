"""cues.py FILE FORMAT [MAX_CHARS MAX_LINES MAX_SECONDS]

Parses an SRT (FORMAT srt) or WebVTT (vtt) file strictly: numbered cues for
SRT, a WEBVTT header, HH:MM:SS,mmm or [HH:]MM:SS.mmm times, cues in order
and not overlapping, a blank line after every cue, no empty line of text,
word tags only as times inside their cue. With the limits, checks every
cue against them (a longer line, or a longer cue, must be a single word). Prints the number
of cues, then the words in order, one per line; exits 1 with the reason
otherwise.
"""
import re
import sys

TIME = r"(?:(\d{2,}):)?(\d{2}):(\d{2})[.,](\d{3})"


def seconds(m, i):
    return int(m.group(i) or 0) * 3600 + int(m.group(i + 1)) * 60 + int(m.group(i + 2)) + int(m.group(i + 3)) / 1000


def fail(path, why):
    print("  %s: %s" % (path.rsplit("/", 1)[-1], why))
    sys.exit(1)


def main():
    path, fmt = sys.argv[1], sys.argv[2]
    lim = [float(x) for x in sys.argv[3:6]] or None
    text = open(path, encoding="utf-8").read()
    if fmt == "vtt":
        if not text.startswith("WEBVTT\n\n"):
            fail(path, "no WEBVTT header")
        text = text[8:]
    if text and not text.endswith("\n\n"):
        fail(path, "the last cue does not end with a blank line")
    blocks = [b for b in text.split("\n\n") if b]
    words, prev = [], 0.0
    for n, block in enumerate(blocks, 1):
        lines = block.split("\n")
        if fmt == "srt":
            if lines[0] != str(n):
                fail(path, "cue %d is numbered %r" % (n, lines[0]))
            lines = lines[1:]
        m = re.fullmatch(TIME + " --> " + TIME, lines[0]) if lines else None
        if not m or (fmt == "srt") != ("," in lines[0]):
            fail(path, "cue %d times %r" % (n, lines[0] if lines else ""))
        start, end = seconds(m, 1), seconds(m, 5)
        if end < start or start < prev - 0.0005:
            fail(path, "cue %d runs %.3f to %.3f after %.3f" % (n, start, end, prev))
        prev = end
        body = lines[1:]
        if not body or not all(body):
            fail(path, "cue %d has no text or an empty line" % n)
        for line in body:
            for tag in re.findall(r"<([^>]*)>", line):
                tm = re.fullmatch(TIME, tag)
                if not tm or not start <= seconds(tm, 1) <= end:
                    fail(path, "cue %d tag <%s>" % (n, tag))
            plain = re.sub(r"<[^>]*>", "", line)
            if lim and len(plain) > lim[0] and " " in plain.strip():
                fail(path, "cue %d line %r is longer than %g" % (n, plain, lim[0]))
            words += plain.split()
        n_words = sum(len(re.sub(r"<[^>]*>", "", line).split()) for line in body)
        if lim and (len(body) > lim[1] or (end - start > lim[2] + 0.0005 and n_words > 1)):
            fail(path, "cue %d: %d lines, %.3f s" % (n, len(body), end - start))
    print(len(blocks))
    for w in words:
        print(w)


main()
