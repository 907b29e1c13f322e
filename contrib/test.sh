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
# vm-run installs QEMU's helpers and fetches the guest kernel on first use, which needs
# the network: do it here, before pytest runs in a namespace without one.
case "$VZ_TEST_KERNELS" in *vm*)
    vm_run=$(.venv/bin/python -c 'from pathlib import Path
from vzcore.testing.vm import find_vm_run
print(find_vm_run(None, Path.cwd()) or "")')
    if [ -n "$vm_run" ]; then
        "$vm_run" -- true >/dev/null ||
            echo "contrib/test.sh: vm-run could not prepare its VM; the VM subset's tests will fail and say why" >&2
    fi ;;
esac
# The Debian templates the tests boot (docs/templates.md) are built with the real
# 'vzctl template create', which needs the mirror: here, before pytest runs in a namespace
# without one.  --reuse keeps a cache built from the same recipe (vzcore version, packages,
# mirror), so a re-run does not rebuild; VZ_TEST_TEMPLATES set by the caller is used as is,
# VZ_TEST_TEMPLATE_ROOT moves the build (default .cache/test-templates, ignored by git).
if [ -z "${VZ_TEST_TEMPLATES:-}" ]; then
    templates_root="${VZ_TEST_TEMPLATE_ROOT:-$PWD/.cache/test-templates}"
    for init in systemd sysvinit; do
        VZ_ROOT="$templates_root" .venv/bin/vzctl template create debian-12 --flavour minimal \
                --init "$init" --reuse ||
            echo "contrib/test.sh: could not build the Debian test template ($init); the tests that need it will fail and say why" >&2
    done
    export VZ_TEST_TEMPLATES="$templates_root/vz/template/cache"
fi
# The OCI runtime-tools validation suite (docs/oci.md), built offline from Debian's source,
# which needs the mirror once: here too; a re-run with the same recipe does nothing.
contrib/oci/build-runtime-tools ||
    echo "contrib/test.sh: could not build the OCI validation suite; tests/oci/test_validation.py will fail and say why" >&2
echo "contrib/test.sh: running the test suite: pytest $* (kernels: $VZ_TEST_KERNELS)"
exec unshare --net -- sh -c 'ip link set lo up && exec .venv/bin/pytest --durations=40 "$@"' pytest "$@"
