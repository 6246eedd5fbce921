# What host and board agree on: pure functions over bytes, no I/O.
# Runs under CPython (as anne_host.protocol) and MicroPython (as anne.protocol);
# modules here import each other only relatively so either name works.
