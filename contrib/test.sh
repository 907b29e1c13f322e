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
# The tests marked vm (or cgroup2) run a second time under Debian 12's stock kernel with
# cgroup v2 only, in one VM boot after the host's tests (docs/testing.md);
# VZ_TEST_KERNELS=host leaves them out, --kernel vm runs only them.
export VZ_TEST_KERNELS="${VZ_TEST_KERNELS:-host,vm}"
echo "contrib/test.sh: running the test suite: pytest $* (kernels: $VZ_TEST_KERNELS)"
exec unshare --net -- sh -c 'ip link set lo up && exec .venv/bin/pytest "$@"' pytest "$@"
