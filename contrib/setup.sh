#!/bin/sh
# Install vzcore on a Debian 12 host, as root: the Debian packages it needs, a virtual
# environment in ./.venv, vzcore and every plugin in plugins/, and /etc/vz/vz.conf.
#
#   contrib/setup.sh           install for use (vzctl and vzlist linked into /usr/local/sbin)
#   contrib/setup.sh --test    also install the test dependencies (editable, for development)
set -eu
cd "$(dirname "$0")/.."
mode=${1:-}

# debootstrap and the archive keyring: vzctl template create (docs/templates.md); lxcfs
# and fuse3: in-CT views (docs/views.md).
packages="python3 python3-venv busybox-static iproute2 util-linux procps
          e2fsprogs btrfs-progs xfsprogs quota zstd xz-utils kmod gcc libc6-dev
          debootstrap debian-archive-keyring lxcfs fuse3"
# QEMU for the VM subset of the tests (docs/testing.md): vm-run boots Debian's stock kernel
# with it (and installs it itself when missing), fetching that kernel and virtme-ng.
test_packages=""
[ "$mode" != "--test" ] || test_packages="qemu-system-x86 sshpass openssh-client"
# The OCI runtime's tests (docs/oci.md): the engines that drive it, the runtimes compared
# with it, and what contrib/oci/build-runtime-tools builds the validation suite with.
[ "$mode" != "--test" ] || test_packages="$test_packages $(cat contrib/oci/packages)"

missing_of() {
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}
apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
missing=$(missing_of $packages)
missing_tests=$(missing_of $test_packages)
if [ -n "$missing$missing_tests" ]; then
    echo "Installing Debian packages:" $missing $missing_tests
    # One unreachable source must not stop the install; a package that cannot be had does.
    apt-get update -qq || echo "setup.sh: apt-get update reported errors; installing anyway" >&2
    [ -z "$missing" ] || apt_install $missing
    [ -z "$missing_tests" ] || apt_install $missing_tests ||
        echo "setup.sh: could not install" $missing_tests"; the tests that need them (VM subset, OCI) will fail and say why" >&2
fi

# Debian's own interpreter: fast to start (the PATH python may be a slow shim).
# (a venv left without pip by an interrupted run is made again)
[ -x .venv/bin/pip ] || /usr/bin/python3 -m venv --clear .venv
if [ "$mode" = "--test" ]; then
    editable="-e"
    .venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
else
    editable=""
    .venv/bin/pip install -q --disable-pip-version-check .
fi
for plugin in plugins/*/; do
    .venv/bin/pip install -q --disable-pip-version-check $editable "$plugin"
done
# Bytecode for the sources an editable install runs from: every vzctl process would
# otherwise compile them anew where PYTHONDONTWRITEBYTECODE is set (about 60 ms a call).
# (pip compiled a non-editable install's copy already.)  -q prints only errors.
[ "$mode" != "--test" ] || .venv/bin/python -m compileall -q vzcore plugins contrib

if [ "$mode" != "--test" ]; then
    mkdir -p /etc/vz/conf
    [ -f /etc/vz/vz.conf ] || cp vzcore/data/vz.conf /etc/vz/vz.conf
    # Sample CT configs that plugins ship (vzctl create --config NAME); an admin's copy stays.
    for sample in plugins/*/vzcore_*/samples/ve-*.conf-sample; do
        [ -f "$sample" ] || continue
        [ -f "/etc/vz/conf/${sample##*/}" ] || cp "$sample" /etc/vz/conf/
    done
    ln -sf "$PWD/.venv/bin/vzctl" /usr/local/sbin/vzctl
    ln -sf "$PWD/.venv/bin/vzlist" /usr/local/sbin/vzlist
    # The vz service (vzctl boot-all / stop-all, docs/host.md), only where systemd runs.
    if [ -d /run/systemd/system ]; then
        install -m 644 contrib/systemd/vz.service /etc/systemd/system/vz.service
        systemctl daemon-reload && systemctl enable vz.service
    else
        echo "setup.sh: systemd does not run here; vz.service not installed (docs/host.md)" >&2
    fi
fi
echo "vzcore installed in $PWD/.venv"
