"""vzcore plugin: system call interception (statfs, sysinfo) by a host supervisor."""
