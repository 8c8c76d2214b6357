# lib.sh: what the command-line tests share (sourced, not run). The caller
# sets $HARK (the binary) and $tmp (a scratch folder it removes) first.
#
# t NAME FUNCTION runs a test function and prints "PASS NAME" or "FAIL
# NAME" (after $LABEL when set, e.g. "pg_"); a function fails by returning
# non-zero after printing why with say (indented). $passed and $failed
# count them.
passed=0
failed=0

t() {
    if "${@:2}"; then
        echo "PASS ${LABEL:-}$1"
        passed=$((passed + 1))
    else
        echo "FAIL ${LABEL:-}$1"
        failed=$((failed + 1))
    fi
}

say() { echo "  $*"; }

# hark ARGS...: runs the binary with stdout in $tmp/out, stderr in $tmp/err
# and the exit status in $rc.
hark() {
    "$HARK" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

expect_rc() {
    if [ "$rc" -ne "$1" ]; then
        say "exit status $rc, expected $1 (stderr: $(head -c 300 "$tmp/err"))"
        return 1
    fi
}

# The error contract: exactly one line on stderr, "hark: <reason>", and that
# reason mentions $1 when given.
one_line_error() {
    if [ "$(wc -l <"$tmp/err")" -ne 1 ] || ! grep -q '^hark: ' "$tmp/err"; then
        say "stderr is not one 'hark: ...' line:"
        sed 's/^/    /' "$tmp/err" | head -5
        return 1
    fi
    if [ -n "${1:-}" ] && ! grep -qF -- "$1" "$tmp/err"; then
        say "error does not name '$1': $(cat "$tmp/err")"
        return 1
    fi
}

# The last line of a test script: "N passed, N failed", and a status that
# fails the script when any check failed.
summary() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
