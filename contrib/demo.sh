#!/bin/sh
# The main job on a fresh host: install vzcore, create and start two CTs from the built-in
# busybox template, run ps in one, and show vzlist.  Safe to run again.
set -eu
cd "$(dirname "$0")/.."
contrib/setup.sh
for ctid in 101 102; do
    vzctl status "$ctid" | grep -q " exist " ||
        vzctl create "$ctid" --ostemplate busybox --hostname "ct$ctid"
    vzctl status "$ctid" | grep -q " running" || vzctl start "$ctid"
done
echo "--- ps inside CT 101:"
vzctl exec 101 ps
echo "--- vzlist:"
vzlist
