#!/bin/sh
# Install the test dependencies and run the whole test suite, as root (what CI runs).
#
# Tests run inside a network namespace made for the run (lo up), so nothing they do
# touches the host's interfaces, and with VZ_TEST_REQUIRE_ROOT=1: a root test fails
# instead of skipping when root or that namespace is missing.
set -eu
cd "$(dirname "$0")/.."
contrib/setup.sh --test
export VZ_TEST_REQUIRE_ROOT=1
exec unshare --net -- sh -c 'ip link set lo up && exec .venv/bin/pytest "$@"' pytest "$@"
