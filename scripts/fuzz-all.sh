#!/usr/bin/env bash
# CI's fuzzing pass, after ./run-tests: every Jazzer @FuzzTest target (the guest-facing parsers and state
# machines) fuzzed for a short fixed time each, one per core at a time (FUZZ_JOBS; a target's JVM fuzzes on
# one thread, so each still has a core for its time), with bench/fuzz's engine. Prints per target
# executions, coverage and findings; exits 1 on any finding (the crashing input is in the log and, as a
# file, in the target's ...FuzzTestInputs folder: commit it there once the bug is fixed).
#   scripts/fuzz-all.sh [SECONDS] [FILTER...] [-- MAVEN-ARGS...]      (SECONDS defaults to $FUZZ_SECONDS or 20)
set -euo pipefail
here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
seconds="${1:-${FUZZ_SECONDS:-20}}"
[[ $# -gt 0 ]] && shift
exec "$here/bench/fuzz" "${seconds}s" --jobs "${FUZZ_JOBS:-$(nproc)}" "$@"
