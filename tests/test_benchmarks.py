"""benchmarks/: the scripts still run (a smoke test; nothing here checks timings)."""

from __future__ import annotations


def test_startup_benchmark_runs_and_reports_every_command(run_python, repo_root):
    result = run_python(repo_root / "benchmarks" / "startup.py", "--repeats", "1", "--target", "1000", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("start-up, 1 runs each")
    rows = {line[:28].strip(): line for line in lines[2:]}
    assert list(rows) == ["dlcli --help", "dlcli list-layers", "dlcli validate bad.yaml",
                          'python -c "import torch"']
    assert rows['python -c "import torch"'].endswith("1.00x  (baseline)")
    assert all(rows[label].endswith("ok") for label in list(rows)[:3])


def test_startup_benchmark_refuses_zero_repeats(run_python, repo_root):
    result = run_python(repo_root / "benchmarks" / "startup.py", "--repeats", "0")
    assert result.returncode == 2 and "--repeats must be at least 1" in result.stderr
