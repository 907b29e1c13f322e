"""vzcore's cpu plugin: OpenVZ's cpuunits, cpulimit, cpus and cpumask on cpu and cpuset cgroups."""

__version__ = "0.1.0"
