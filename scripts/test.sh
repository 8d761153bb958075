#!/usr/bin/env bash
# The test command: install what is missing, then configure, build and test
# each preset of CMakePresets.json in build/<preset>.
#
#   scripts/test.sh [debug|asan|tsan|release|all]     (default: all)
#
# "all" is debug, then asan (AddressSanitizer + UBSan) with every test, then
# tsan with only the tests labelled "threads". A step that fails does not stop
# the others; the script exits 1 if any failed, and closes with a summary.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1

usage() {
    echo "usage: scripts/test.sh [debug|asan|tsan|release|all]" >&2
    exit 2
}

[ $# -le 1 ] || usage
case "${1:-all}" in
all) presets=(debug asan tsan) ;;
debug | asan | tsan | release) presets=("$1") ;;
*) usage ;;
esac

# Sanitizer defaults; options already in the environment come last and win.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:print_stacktrace=1:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"

started=$SECONDS
summary=()  # one line per step
skip_lines=() # one line per skipped test: preset, name, why
failed_steps=()
total_pass=0
total_fail=0
total_skip=0

banner() { printf '\n==== %s\n' "$*"; }

elapsed() {
    local s=$(($1))
    printf '%dm%02ds' $((s / 60)) $((s % 60))
}

# record <name> <status> <start seconds> [detail]
record() {
    summary+=("$(printf '  %-8s %-7s %8s  %s' "$1" "$2" "$(elapsed $((SECONDS - $3)))" "${4:-}")")
    if [ "$2" = FAILED ]; then
        failed_steps+=("$1")
    fi
}

# Count passed, failed and skipped tests from a ctest log into
# $n_pass/$n_fail/$n_skip. ctest counts a skipped test as passed in its
# "tests passed" line and lists it as "(Skipped)" under "did not run".
count_tests() {
    local line total
    n_pass=0 n_fail=0 n_skip=0
    line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$1" | tail -n1)
    [ -n "$line" ] || return 1
    total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
    n_fail=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")
    n_skip=$(grep -cE '^[[:space:]]+[0-9]+ - .*\(Skipped\)$' "$1")
    n_pass=$((total - n_fail - n_skip))
}

# Every test ctest skipped in preset $1 (log $2), with the reason it printed
# (a line with "SKIP"; ctest itself shows only that it was skipped), into
# skip_lines.
skip_reasons() {
    local p=$1 log=$2 last=build/$1/Testing/Temporary/LastTest.log name reason
    while IFS= read -r name; do
        reason=$(awk -v t="$name" '
            /^[0-9]+\/[0-9]+ Test: / { cur = substr($0, index($0, "Test: ") + 6) }
            cur == t && /SKIP/ { sub(/.*SKIP:? */, ""); print; exit }' "$last" 2>/dev/null)
        skip_lines+=("$(printf '  %-8s %-30s %s' "$p" "$name" "${reason:-(no reason printed)}")")
    done < <(sed -nE 's/^[[:space:]]+[0-9]+ - (.*) \(Skipped\)$/\1/p' "$log")
}

# run_preset <preset>: configure, build, test. Returns nothing; records.
run_preset() {
    local p=$1 t0=$SECONDS log status detail
    local -a ctest_args=(--preset "$p" --output-on-failure -j2)

    banner "$p: configure"
    if ! cmake --preset "$p"; then
        record "$p" FAILED "$t0" "configure failed"
        total_fail=$((total_fail + 1))
        return
    fi
    banner "$p: build"
    if ! cmake --build --preset "$p" -j2; then
        record "$p" FAILED "$t0" "build failed"
        total_fail=$((total_fail + 1))
        return
    fi

    if [ "$p" = tsan ]; then
        # Under TSan only the tests that exercise threads are worth their time.
        # Having none yet is not a failure, but it is said, not hidden: ask
        # ctest how many there are before running them.
        ctest_args+=(-L threads)
        if [[ $(ctest "${ctest_args[@]}" -N) =~ Total\ Tests:\ 0($'\n'|$) ]]; then
            banner "$p: no test is labelled 'threads'"
            record "$p" ok "$t0" "no test is labelled 'threads' yet: nothing to run"
            return
        fi
    fi
    ctest_args+=(--no-tests=error)
    banner "$p: ctest ${ctest_args[*]}"
    log=build/$p/test.log
    ctest "${ctest_args[@]}" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}

    skip_reasons "$p" "$log"
    if count_tests "$log"; then
        detail="$n_pass passed, $n_fail failed, $n_skip skipped"
        total_pass=$((total_pass + n_pass))
        total_fail=$((total_fail + n_fail))
        total_skip=$((total_skip + n_skip))
    else
        detail="ctest printed no result line"
    fi
    if [ "$status" -ne 0 ]; then
        if [ "$n_fail" -eq 0 ]; then
            total_fail=$((total_fail + 1)) # ctest failed without a failing test
        fi
        record "$p" FAILED "$t0" "tests: $detail (ctest exit $status)"
    else
        record "$p" ok "$t0" "tests: $detail"
    fi
}

banner "setup: scripts/setup.sh"
t0=$SECONDS
if ! bash scripts/setup.sh; then
    record setup FAILED "$t0" "could not install the build dependencies"
    total_fail=$((total_fail + 1))
else
    record setup ok "$t0"
    for p in "${presets[@]}"; do
        run_preset "$p"
    done
fi

banner "summary"
printf '%s\n' "${summary[@]}"
if [ ${#skip_lines[@]} -gt 0 ]; then
    echo "skipped tests, and why:"
    printf '%s\n' "${skip_lines[@]}"
fi
if [ ${#failed_steps[@]} -eq 0 ]; then
    echo "test.sh: every step passed in $(elapsed $((SECONDS - started)))"
    status=0
else
    echo "test.sh: FAILED: ${failed_steps[*]} (in $(elapsed $((SECONDS - started))); a step that fails to configure or build counts as one failed test)"
    status=1
fi
echo "summary: $total_pass passed, $total_fail failed, $total_skip skipped"
exit $status
