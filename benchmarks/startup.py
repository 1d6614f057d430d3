"""Start-up time of the dlcli commands that must answer at once, beside `import torch`.

    python benchmarks/startup.py [--repeats N] [--target SECONDS]

Each command runs as a fresh `python -m dlcli ...` process with this checkout first on
the path: `--help`, `list-layers`, and `validate` on a config with a mistake (which must
answer before torch is imported). The baseline `python -c "import torch"` runs in the
same session, interleaved with them, so the ratio compares like with like. Every command
runs once untimed first (byte-code and page cache), then N timed times; the table shows
min and median wall time. Exit status 1 when a command's median misses the target.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

BAD_CONFIG = """\
model:
  input_shape: [1, 28, 28]
  layers:
    - conv2d: {filters: 32, kernel_size: 3}
    - desne: {units: 10}
data: mnist
"""


def run_once(args: list[str], expected_code: int, env: dict) -> float:
    """Wall seconds of one `python ARGS` process; stops the benchmark if it fails unexpectedly."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != expected_code:
        sys.exit(f"`python {' '.join(args)}` exited {done.returncode}, expected {expected_code}:\n{done.stderr}")
    return elapsed


def measure(commands: list[tuple[str, list[str], int]], repeats: int, env: dict) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {label: [] for label, _, _ in commands}
    for label, args, code in commands:  # warm-up, untimed
        run_once(args, code, env)
    for _ in range(repeats):  # round-robin, so a noisy moment hits every command alike
        for label, args, code in commands:
            times[label].append(run_once(args, code, env))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per command (default: 10)")
    parser.add_argument("--target", type=float, default=0.5, help="seconds each dlcli command must stay under")
    options = parser.parse_args(argv)
    if options.repeats < 1:
        parser.error("--repeats must be at least 1")

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "bad.yaml"
        bad.write_text(BAD_CONFIG)
        baseline = 'python -c "import torch"'
        commands = [("dlcli --help", ["-m", "dlcli", "--help"], 0),
                    ("dlcli list-layers", ["-m", "dlcli", "list-layers"], 0),
                    ("dlcli validate bad.yaml", ["-m", "dlcli", "validate", str(bad)], 2),
                    (baseline, ["-c", "import torch"], 0)]
        times = measure(commands, options.repeats, env)

    torch_median = statistics.median(times[baseline])
    print(f"start-up, {options.repeats} runs each after one warm-up; python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'command':<28}{'min s':>8}{'median s':>10}{'/ import torch':>16}  target < {options.target:g} s")
    missed = []
    for label, _, _ in commands:
        low, mid = min(times[label]), statistics.median(times[label])
        is_dlcli = label != baseline
        verdict = ("ok" if mid < options.target else "MISSED") if is_dlcli else "(baseline)"
        if is_dlcli and mid >= options.target:
            missed.append(label)
        print(f"{label:<28}{low:>8.3f}{mid:>10.3f}{mid / torch_median:>15.2f}x  {verdict}")
    if missed:
        print(f"over the {options.target:g} s target: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
