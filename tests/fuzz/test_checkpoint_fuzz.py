"""Checkpoint fuzzing: seeded damage to every field of a good checkpoint, fed to what evaluate,
predict, export and --resume read first (`load_trained`, then one prediction). Every case
ends in finite outputs or a DlcliError (exit 2), never another exception, NaN outputs or a file
written anywhere. CI runs CI_CASES; `DLCLI_FUZZ_CHECKPOINTS=50000 python -m pytest
tests/fuzz/test_checkpoint_fuzz.py` runs more. A failure names its case (`python
tests/fuzz/checkpoint_mutations.py N` says what it damages).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import pytest
import torch

from checkpoint_mutations import mutate

from dlcli.errors import DlcliError
from tests.samples import train_smallest_cnn

CI_CASES = 1_000
CASES = int(os.environ.get("DLCLI_FUZZ_CHECKPOINTS", CI_CASES))
BATCH = 250

@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict:
    run_dir = train_smallest_cnn(tmp_path_factory.mktemp("runs"), "fuzzed")
    return torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)


def _files(folder: Path) -> set:
    return {p for p in folder.rglob("*")}


TALLY = {"loaded": 0, "refused": 0, "unsaveable": 0}


def _case(index: int, good: dict, folder: Path) -> str | None:
    """None when case `index` ends as it must, else what went wrong."""
    from dlcli.inference import load_trained

    state, done = mutate(good, index)
    path = folder / f"case{index}.pt"
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)  # pickling a value nested 3,000 deep
    try:
        torch.save(state, path)
    except Exception:  # noqa: BLE001 - torch cannot write it: no file to test
        TALLY["unsaveable"] += 1
        return None
    finally:
        sys.setrecursionlimit(limit)
    before = _files(folder.parent)
    try:
        trained = load_trained(path, "cpu")
        x = torch.zeros(2, *trained.input_shape, dtype=torch.uint8)
        split = trained.fit_samples(x, where="fuzz")
        outputs = torch.cat([trained.probabilities(xb).float() for xb, _ in split.slices(2)])  # as predict does
        if not bool(torch.isfinite(outputs).all()):
            return f"case {index} ({'; '.join(done)}): NaN or infinite outputs, no error"
        TALLY["loaded"] += 1
    except DlcliError as err:
        TALLY["refused"] += 1
        if not str(err).strip() or max(map(len, str(err).splitlines())) > 2_000:
            return f"case {index} ({'; '.join(done)}): an empty or flooding message: {str(err)[:300]}"
    except Exception as err:  # noqa: BLE001 - any other exception is the bug looked for
        return (f"case {index} ({'; '.join(done)}): {type(err).__name__} (not a DlcliError):\n"
                + "".join(traceback.format_exception(err)[-6:]))
    finally:
        path.unlink()
    created = _files(folder.parent) - before - {path}
    if created:
        return f"case {index} ({'; '.join(done)}): wrote {sorted(map(str, created))[:5]}"
    return None


@pytest.mark.parametrize("start", range(0, CASES, BATCH), ids=lambda s: f"cases{s}-{min(s + BATCH, CASES) - 1}")
def test_damaged_checkpoints_load_or_are_refused_cleanly(start, good, tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    failures = [f for f in (_case(i, good, folder) for i in range(start, min(start + BATCH, CASES))) if f]
    assert not failures, f"{len(failures)} failure(s):\n\n" + "\n\n".join(failures[:10])


def test_checkpoint_fuzz_summary():
    """Runs last: every case ran, and both outcomes occur (the damage reaches past the first check)."""
    if sum(TALLY.values()) < CASES:
        pytest.skip(f"only {sum(TALLY.values())} of {CASES} cases ran (a subset was selected)")
    print(f"checkpoint fuzz: {CASES:,} cases: {TALLY['loaded']:,} loaded and predicted, {TALLY['refused']:,} "
          f"refused with a DlcliError, {TALLY['unsaveable']:,} that torch could not save")
    assert TALLY["loaded"] >= CASES // 20 and TALLY["refused"] >= CASES // 2
