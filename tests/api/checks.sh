# checks.sh: the checks tests/api/test_vad.sh, test_words.sh, test_owners.sh,
# test_faults.sh and test_load.sh share
# (sourced after lib.sh and tests/cli/lib.sh, for call and say).

# body [N]: the first N bytes (400) of the last response, on one line.
body() { head -c "${1:-400}" "$API_TMP/body" | tr -d '\000' | tr '\n' ' '; }

# want STATUS [ERROR CODE]: the last response had STATUS; an error is in
# OpenAI's shape, and has that code and a message when a code is given.
want() {
    if [ "$code" != "$1" ]; then
        say "$last -> $code, expected $1; body: $(body)"
        return 1
    fi
    if [ "$1" -ge 400 ] && ! jq -e '.error | type == "object" and (.message | type == "string") and
            has("type") and has("param") and has("code")' "$API_TMP/body" >/dev/null 2>&1; then
        say "$last -> $code: not in the {error:{message,type,param,code}} shape: $(body)"
        return 1
    fi
    if [ -n "${2:-}" ] && ! jq -e --arg c "$2" '.error.code == $c and (.error.message | length) > 0' \
        "$API_TMP/body" >/dev/null 2>&1; then
        say "$last -> error $(jq -c .error "$API_TMP/body" 2>/dev/null), expected code \"$2\""
        return 1
    fi
}

# jqb FILTER [JQ ARGS...]: the body satisfies the jq filter.
jqb() {
    local f=$1
    shift
    jq -e "$@" "$f" "$API_TMP/body" >/dev/null 2>&1 && return 0
    say "$last: not ($f): $(body 600)"
    return 1
}

# upload FILE: POST /upload, 201; sets up_id.
upload() {
    call POST /upload -F "file=@$1"
    want 201 || return 1
    up_id=$(jq -r .id "$API_TMP/body")
}

# openai_checks NAME URL SCRIPT: the openai npm client's checks in
# tests/api/openai/SCRIPT against the server at URL (with the shared audio
# folder in HARK_AUDIO); a client that cannot be installed is one FAIL.
openai_checks() {
    local dir=$HERE/openai
    if ! command -v node >/dev/null || ! command -v npm >/dev/null || ! npm_install "$dir" openai; then
        echo "FAIL $1: the openai client cannot be installed"
        failed=$((failed + 1))
        return
    fi
    HARK_URL=$2 HARK_AUDIO=$AUDIO node_checks "$1" $((120 * SLOW)) "$dir/$3"
}
