"""vzcore as an OCI runtime: the ``vzcore-oci`` command that podman, containerd and CRI-O
drive through runc's command-line contract.

Each OCI container is a vzcore CT of a private installation below ``--root``
(:mod:`vzcore.oci.store`); its ``config.json`` becomes the CT's config
(:mod:`vzcore.oci.spec`), so vzcore's own engine and plugins start it (isolation,
beancounters, cpu, devices, seccomp); the ``oci`` plugin (:mod:`vzcore.oci.plugin`) adds
what only OCI has: the bundle's extra mounts, the process (user, capabilities, rlimits,
terminal) and the exec fifo that keeps a created container from running its program
until ``start``.  See docs/oci-runtime.md.
"""
