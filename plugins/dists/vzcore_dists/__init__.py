"""vzcore's distribution actions (OpenVZ's ``/etc/vz/dists`` scripts): one module per
distribution, one function per action, writing the CT's own configuration files."""
