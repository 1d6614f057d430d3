"""Config fuzzing: thousands of mutated configs fed to the loader and to `dlcli validate`.

Every case must end in a resolved config or a clean ConfigError/DlcliError (exit 2
with an `error:` message), never another exception or a traceback, in under
CASE_SECONDS per step and without growing the peak memory by more than CASE_MEMORY
(see conftest.py). Cases come from the seeded generator in config_mutations.py. Where the
outcome is known it is checked: a restyled config resolves to the one it restates, and a
config whose one change is a key that nothing declares is rejected (Case.must_be_rejected).

CI runs CI_CASES cases, every one through `load_config` and every CLI_EVERY-th also
through `dlcli validate` in-process (CliRunner), about 45 s on the 2-core CI machine;
a handful also run through a real `python -m dlcli validate` process.
`DLCLI_FUZZ_CASES=50000 python -m pytest tests/fuzz` runs more. A failure names its
case: `python tests/fuzz/config_mutations.py N` prints it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config_mutations import make_case, shipped_configs

from tests.hang_guard import HANG_S

CI_CASES = 2_000
CASES = int(os.environ.get("DLCLI_FUZZ_CASES", CI_CASES))
BATCH = 100
CLI_EVERY = 2
ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_configs_seed_the_fuzzer_and_are_valid():
    from dlcli.config import load_config

    configs = shipped_configs()
    assert len(configs) == 4, sorted(configs)
    for name in configs:
        assert load_config(ROOT / "configs" / name)["name"] == Path(name).stem


def test_case_generation_is_seeded():
    assert make_case(1234) == make_case(1234)
    assert make_case(1234) != make_case(1235)


def test_the_ci_cases_hold_unknown_keys_that_must_be_rejected():
    """The unknown-key rule is not vacuous: 25 of the 2,000 CI cases add only an undeclared key."""
    assert sum(make_case(index).must_be_rejected for index in range(CI_CASES)) >= 10


@pytest.mark.parametrize("start", range(0, CASES, BATCH), ids=lambda s: f"cases{s}-{min(s + BATCH, CASES) - 1}")
def test_fuzzed_configs_resolve_or_fail_cleanly(start, fuzz):
    failures = []
    for index in range(start, min(start + BATCH, CASES)):
        failures += fuzz.check(make_case(index), through_cli=index % CLI_EVERY == 0)
    assert not failures, f"{len(failures)} failure(s):\n\n" + "\n\n".join(failures[:10])


MNIST_CNN = (ROOT / "configs" / "mnist_cnn.yaml").read_text()

#: each payload would create `pwned` in the test's folder if YAML were loaded unsafely
OBJECT_TAGS = {
    "os.system": '!!python/object/apply:os.system ["touch {dir}/pwned"]',
    "os.system-scalar": '!!python/object/apply:os.system "touch {dir}/pwned"',
    "os.system-kwargs": '!!python/object/apply:os.system {{args: ["touch {dir}/pwned"]}}',
    "builtins.open": '!!python/object/apply:builtins.open ["{dir}/pwned", "w"]',
    "object/new": '!!python/object/new:builtins.open ["{dir}/pwned", "w"]',
    "subprocess": '!!python/object/apply:subprocess.check_call [["touch", "{dir}/pwned"]]',
    "verbatim-tag": '!<tag:yaml.org,2002:python/object/apply:os.system> ["touch {dir}/pwned"]',
}


@pytest.mark.parametrize("section", ["name", "metrics", "optimizer", "model"])
@pytest.mark.parametrize("payload", list(OBJECT_TAGS.values()), ids=list(OBJECT_TAGS))
def test_python_object_tags_are_refused_and_never_run(payload, section, tmp_path):
    from typer.testing import CliRunner

    from dlcli.cli import app
    from dlcli.config import ConfigError, load_config

    value = payload.format(dir=tmp_path)
    lines = [f"{section}: {value}" if line.startswith(f"{section}:") else line for line in MNIST_CNN.splitlines()]
    text = "\n".join(line for line in lines if not (section in ("optimizer", "model") and line.startswith("  ")))
    assert value in text
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="tags that create objects are not allowed"):
        load_config(path)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "tags that create objects are not allowed" in result.stderr, result.output
    assert not (tmp_path / "pwned").exists()


def test_a_tag_directive_cannot_smuggle_python_tags_in(tmp_path):
    from dlcli.config import ConfigError, load_config

    path = tmp_path / "config.yaml"
    path.write_text(f"%TAG !! tag:yaml.org,2002:python/\n---\n{MNIST_CNN}".replace(
        "name: mnist_cnn", f'name: !!object/apply:os.system ["touch {tmp_path}/pwned"]'))
    with pytest.raises(ConfigError, match="tags that create objects are not allowed"):
        load_config(path)
    assert not (tmp_path / "pwned").exists()


#: which fuzz cases also run through a real `python -m dlcli validate` process
SUBPROCESS_PICKS = {
    "object tag": lambda case: b"python/object/apply:os.system" in case.content,
    "alias bomb": lambda case: case.kind == "laughs",
    "binary garbage": lambda case: case.kind == "bytes",
    "deep nesting": lambda case: case.kind == "deep",
    "huge model": lambda case: case.kind == "tree:huge_model",
    "valid restyle": lambda case: case.kind == "restyle",
    "odd file name": lambda case: case.stem == "caf\udce9",
}


def test_a_real_process_never_prints_a_traceback(tmp_path):
    """A few cases through `python -m dlcli validate` itself (run side by side)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8:strict"}  # as en_US.UTF-8
    runs = []
    for pick in SUBPROCESS_PICKS.values():
        case = next(case for case in map(make_case, range(10**5)) if pick(case)).with_canary(str(tmp_path))
        path = tmp_path / case.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(case.content)
        command = [sys.executable, "-m", "dlcli", "validate", str(path), *case.overrides]
        runs.append((case, subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE)))
    for case, process in runs:
        out, err = process.communicate(timeout=HANG_S)
        stderr = err.decode("utf-8", "replace")
        assert process.returncode in (0, 2), f"{case.describe()}\n{stderr}"
        assert "Traceback" not in stderr, f"{case.describe()}\n{stderr}"
        if process.returncode == 2:
            assert stderr.startswith("error:"), f"{case.describe()}\n{stderr}"
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".yaml")] == []  # no tag ran
    assert len(runs) == len(SUBPROCESS_PICKS)


def test_fuzz_summary(fuzz_stats, record_property):
    """Runs last: every case ran, and enough of them reached validation on both sides."""
    if fuzz_stats.cases < CASES:
        pytest.skip(f"only {fuzz_stats.cases} of {CASES} cases ran (a subset was selected)")
    for line in fuzz_stats.lines():
        print(line)
    record_property("fuzz_cases", fuzz_stats.cases)
    record_property("fuzz_valid", fuzz_stats.valid)
    record_property("fuzz_rejected", fuzz_stats.rejected)
    record_property("fuzz_max_seconds", round(fuzz_stats.max_seconds, 3))
    assert fuzz_stats.cases == CASES
    assert fuzz_stats.valid + fuzz_stats.rejected == CASES
    assert fuzz_stats.valid >= CASES // 20, "too few cases stay valid: the mutations never reach the model"
    assert fuzz_stats.round_trips == fuzz_stats.valid  # every valid config was written and read back
    assert fuzz_stats.rejected >= CASES // 2
    assert fuzz_stats.cli_runs >= CASES // CLI_EVERY
