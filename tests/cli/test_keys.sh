#!/usr/bin/env bash
# test_keys.sh: `hark keys add`, `list` and `revoke` from the outside.
#
# Help; usage errors (exit 2, one "hark: ..." line, nothing written); a key
# printed once on stdout as "hark_" and 64 hex digits, different every
# time, never shown by list and never stored (only its SHA-256 is, in the
# api_keys table of <data>/hark.db); a taken or revoked name refused
# (exit 1); revoke of an unknown name (exit 1); list with the revocation
# date; the store found by --data, HARK_DATA, --db and HARK_DB alike; list
# and revoke on a data folder that does not exist (exit 1, nothing made).
#
# Run from the repository root; $HARK_BIN is the binary (default
# build/hark); uses sha256sum.
# Prints "PASS name" / "FAIL name" per test and ends with "N passed, N failed".
set -u

HARK=${HARK_BIN:-build/hark}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hark-keys-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/lib.sh"

DATA=$tmp/data

test_help() {
    local args
    for args in "keys --help" "help keys"; do
        # shellcheck disable=SC2086
        hark $args
        expect_rc 0 || { say "for: hark $args"; return 1; }
        grep -q 'hark keys add NAME' "$tmp/out" && grep -q -- '--admin' "$tmp/out" ||
            { say "'hark $args' shows no keys usage"; return 1; }
    done
    hark --help
    grep -q '^  keys ' "$tmp/out" || { say "hark --help does not list keys"; return 1; }
}

test_usage_errors() {
    local args
    for args in "keys" "keys add" "keys revoke" "keys frob" "keys list extra" "keys list --admin" \
        "keys add a b" "keys add x --bogus" "keys add bad/name" "keys add -- -x"; do
        # shellcheck disable=SC2086
        hark $args --data "$DATA"
        expect_rc 2 || { say "for: hark $args"; return 1; }
        one_line_error || { say "for: hark $args"; return 1; }
    done
    [ ! -e "$DATA/hark.db" ] || { say "a usage error wrote $DATA/hark.db"; return 1; }
}

KEY_A=
test_add() {
    hark keys add alice --data "$DATA"
    expect_rc 0 || return 1
    KEY_A=$(cat "$tmp/out")
    [[ $KEY_A =~ ^hark_[0-9a-f]{64}$ ]] || { say "stdout is not one key: $(head -c 200 "$tmp/out")"; return 1; }
    [ "$(wc -l <"$tmp/out")" -eq 1 ] || { say "stdout has more than the key"; return 1; }
    grep -q 'alice' "$tmp/err" && grep -q 'once' "$tmp/err" || { say "no note on stderr: $(cat "$tmp/err")"; return 1; }
    hark keys add root --admin --data "$DATA"
    expect_rc 0 || return 1
    [ "$(cat "$tmp/out")" != "$KEY_A" ] || { say "two keys alike"; return 1; }
    # Only the hash is in the database.
    if grep -qaF "${KEY_A#hark_}" "$DATA/hark.db" "$DATA"/hark.db-wal 2>/dev/null; then
        say "the key itself is in the database"
        return 1
    fi
    local hash
    hash=$(printf %s "$KEY_A" | sha256sum | cut -c1-64)
    grep -qaF "$hash" "$DATA/hark.db" "$DATA"/hark.db-wal 2>/dev/null || { say "the key's SHA-256 is not stored"; return 1; }
}

test_list() {
    hark keys list --data "$DATA"
    expect_rc 0 || return 1
    grep -Eq '^alice +[0-9]{4}-[0-9]{2}-[0-9]{2}T[^ ]+Z +no +-$' "$tmp/out" &&
        grep -Eq '^root +[^ ]+ +yes +-$' "$tmp/out" || { say "list: $(cat "$tmp/out")"; return 1; }
    if grep -q 'hark_' "$tmp/out"; then
        say "list shows a key"
        return 1
    fi
}

test_taken_name() {
    hark keys add alice --data "$DATA"
    expect_rc 1 && one_line_error alice || return 1
    [ ! -s "$tmp/out" ] || { say "a refused add printed a key"; return 1; }
}

test_revoke() {
    hark keys revoke alice --data "$DATA"
    expect_rc 0 || return 1
    hark keys list --data "$DATA"
    grep -Eq '^alice +[^ ]+ +no +[0-9]{4}-[^ ]+Z$' "$tmp/out" || { say "list after revoke: $(cat "$tmp/out")"; return 1; }
    hark keys revoke alice --data "$DATA"
    expect_rc 0 || return 1
    hark keys revoke nobody --data "$DATA"
    expect_rc 1 && one_line_error nobody || return 1
    # A revoked name is not given again.
    hark keys add alice --data "$DATA"
    expect_rc 1 && one_line_error alice
}

test_store_options() {
    HARK_DATA=$DATA hark keys list
    expect_rc 0 && grep -q '^root ' "$tmp/out" || { say "HARK_DATA not used"; return 1; }
    hark keys list --db "$DATA/hark.db" --data "$tmp/elsewhere"
    expect_rc 0 && grep -q '^root ' "$tmp/out" || { say "--db not used"; return 1; }
    HARK_DB=$DATA/hark.db hark keys list
    expect_rc 0 && grep -q '^root ' "$tmp/out" || { say "HARK_DB not used"; return 1; }
    hark keys add bob --db "sqlite:$tmp/other.db"
    expect_rc 0 && [ -s "$tmp/other.db" ] || { say "--db sqlite:PATH not used"; return 1; }
}

test_missing_data() {
    local verb
    for verb in list "revoke x"; do
        # shellcheck disable=SC2086
        hark keys $verb --data "$tmp/missing"
        expect_rc 1 && one_line_error || { say "for: keys $verb"; return 1; }
    done
    [ ! -e "$tmp/missing" ] || { say "list made the data folder"; return 1; }
}

t keys_help test_help
t keys_usage_errors test_usage_errors
t keys_add test_add
t keys_list test_list
t keys_taken_name test_taken_name
t keys_revoke test_revoke
t keys_store_options test_store_options
t keys_missing_data test_missing_data
summary
