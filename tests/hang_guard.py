"""The one wall-clock limit of the suite: it only catches a hang, never judges speed.

The suite runs on shared 2-core machines where other jobs can slow a process tenfold, so a
limit that a slow but healthy run could reach fails the landing of unrelated work. Speed
targets live in benchmarks/; tests wait for events (a file written, a line printed, a
process ended), with this as the bound on how long a broken build can hold the suite.
Where a bound is about work rather than waiting, bound CPU time (RLIMIT_CPU,
time.process_time), which other jobs do not inflate.
"""

HANG_S = 600
