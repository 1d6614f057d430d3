"""benchmarks/: the scripts still run (a smoke test; nothing here checks timings)."""

from __future__ import annotations


def test_startup_benchmark_runs_and_reports_every_command(run_python, repo_root):
    result = run_python(repo_root / "benchmarks" / "startup.py", "--repeats", "1", "--target", "1000")
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


def test_first_epoch_breakdown_runs_and_times_every_set_up_phase(run_python, repo_root):
    result = run_python(repo_root / "benchmarks" / "first_epoch.py", "--epochs", "2", "--override",
                        "data.subset=500", "--override", "data.test_subset=100")
    assert result.returncode == 0, result.stdout + result.stderr
    phases = [line[:36].strip() for line in result.stdout.splitlines()[2:-1]]
    assert phases == ["train() in all", "read the data", "wait for the warm-up", "prepare the data",
                      "build the trainer", "eager step, first", "eager step, batch of 128",
                      "eager step, batch of 116"], result.stdout
    assert result.stdout.splitlines()[-1].startswith("epochs: ")


def test_config_speed_runs_and_reports_a_row_per_contestant(run_python, repo_root):
    result = run_python(repo_root / "benchmarks" / "config_speed.py", "--configs", "configs/mnist_cnn.yaml",
                        "--epochs", "1", "--subset", "256")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("config "))
    rows = [line.split() for line in lines[header + 1:header + 3]]
    assert [row[:3] for row in rows] == [["mnist_cnn.yaml", "plain", "256"], ["mnist_cnn.yaml", "dlcli", "256"]]
    assert float(rows[1][-1]) > 0  # the ratio dlcli/plain, on the dlcli row
    assert lines[-1].startswith("timed: the training batches of each epoch")


def test_mutants_list_names_every_mutant_and_each_still_applies(run_python, repo_root):
    result = run_python(repo_root / "benchmarks" / "mutants.py", "--list")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert len(rows) == 20, result.stdout
    assert all(row[2] == "applies" for row in rows), result.stdout
    assert {"train_metric_count", "fuse_avgpool", "traceback_on_refusal"} <= {row[0] for row in rows}


def test_mutants_runs_one_mutant_in_a_copy_and_reports_it_killed(run_python, repo_root):
    before = (repo_root / "dlcli" / "model" / "summary.py").read_text()
    result = run_python(repo_root / "benchmarks" / "mutants.py", "--only", "non_trainable_counts_step_counter",
                        "--no-baseline")
    assert result.returncode == 0, result.stdout + result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("non_trainable_counts_step_counter"))
    assert row.split()[1] == "killed" and "test_batchnorm_counts_as_keras_does" in row, result.stdout
    assert (repo_root / "dlcli" / "model" / "summary.py").read_text() == before  # patched in the copy only


def test_mutants_refuses_a_patch_that_no_longer_applies(run_python, repo_root, monkeypatch):
    result = run_python(repo_root / "benchmarks" / "mutants.py", "--only", "no_such_mutant")
    assert result.returncode != 0 and "unknown mutant no_such_mutant; known: train_metric_count" in result.stderr
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("mutants", repo_root / "benchmarks" / "mutants.py")
    mutants = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "mutants", mutants)  # dataclasses look their module up there
    spec.loader.exec_module(mutants)
    stale = mutants.Mutant("stale", "text that is not there", "dlcli/model/summary.py", "no such text", "x",
                           ("tests",))
    assert stale.applies_to(repo_root) == "dlcli/model/summary.py: the old text occurs 0 times (expected once)"
