"""Mutation check: plausible one-line bugs that the suite must notice, each applied alone to a
copy of this checkout and run against the tests that should kill it.

    python benchmarks/mutants.py               # every mutant; a killed/survived table
    python benchmarks/mutants.py --list        # the mutants, and whether each still applies
    python benchmarks/mutants.py --only NAME   # one mutant (repeat --only for more)

A mutant is an exact string in a named file and its replacement (`old` must occur exactly
once: a patch that no longer applies is reported, never skipped). For each one the checkout
is copied to a temporary folder (never patched in place), the patch applied there, and
`python -m pytest TESTS -x -q` run in the copy with the copy first on the path. Killed: the
tests failed. Survived: they passed, so the bug would go unnoticed. Before the mutants, the
same tests run once on an unpatched copy (the baseline; --no-baseline skips it): a test that
fails there would "kill" every mutant and prove nothing.

Exit status: 0 when every mutant was killed, 1 when one survived, 2 when a patch does not
apply, a mutant's tests are not found, the baseline fails, or the copy would not import its
own dlcli.

The list started from issue #14's audit: the eight bugs that survived the whole suite, the
hostile-checkpoint assert that could never fail, and unknown-key detection, which the config
fuzz accepted either way. Add a mutant for every bug a test is written to catch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# not copied: version control, environments, caches, earlier runs' output
SKIP_AT_ROOT = {".git", ".venv", ".pytest_cache", "runs", "build", "dist", ".whl", ".gl"}
SKIP_ANYWHERE = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
TIMEOUT_S = 600


@dataclass(frozen=True)
class Mutant:
    name: str
    bug: str  # what the one-line change breaks, in words
    path: str  # relative to the repository root
    old: str
    new: str
    tests: tuple[str, ...]  # pytest arguments: the tests that must fail with the bug

    def applies_to(self, root: Path) -> str | None:
        """None when the patch applies to the tree at `root`, else why not."""
        target = root / self.path
        if not target.is_file():
            return f"{self.path}: no such file"
        found = target.read_text(encoding="utf-8").count(self.old)
        return None if found == 1 else f"{self.path}: the old text occurs {found} times (expected once)"

    def apply(self, root: Path) -> None:
        target = root / self.path
        target.write_text(target.read_text(encoding="utf-8").replace(self.old, self.new), encoding="utf-8")


ORACLES = "tests/train/test_oracles.py"
MEMORY = "tests/reliability/test_memory_limits.py"

MUTANTS = [
    Mutant("train_metric_count", "train_loss and train metrics divide by batches x batch_size (a short last "
           "batch counted full)", "dlcli/train/trainer.py",
           "count = float(sizes.sum())", "count = float(done * self.batch_size)",
           (f"{ORACLES}::test_train_loss_and_accuracy_average_over_samples_with_a_short_last_batch",)),
    Mutant("grad_clip_fp32", "trainer.grad_clip ignored in fp32 (the CPU path)", "dlcli/train/step.py",
           "        else:\n            if clip:\n                torch.nn.utils.clip_grad_norm_(t.model.parameters(), "
           "clip)\n            t.optimizer.step()",
           "        else:\n            t.optimizer.step()",
           (f"{ORACLES}::test_grad_clip_scales_the_gradient_to_the_clip_norm",)),
    Mutant("epoch_scheduler_not_stepped", "step, multistep and exponential schedulers never stepped",
           "dlcli/train/trainer.py",
           "            else:\n                self.scheduler.step()\n        value = record.get(self.monitor)",
           "            else:\n                pass\n        value = record.get(self.monitor)",
           (f"{ORACLES}::test_per_epoch_schedulers_step_once_an_epoch",)),
    Mutant("step_scheduler_every_batch", "a per-step scheduler stepped on every batch under grad_accum",
           "dlcli/train/trainer.py",
           "                self.step += 1\n                if self.scheduler is not None and "
           "self.scheduler_interval == \"step\":\n                    self.scheduler.step()\n",
           "                self.step += 1\n            if self.scheduler is not None and "
           "self.scheduler_interval == \"step\":\n                self.scheduler.step()\n",
           (f"{ORACLES}::test_per_step_schedulers_step_once_per_optimizer_step_under_grad_accum",)),
    Mutant("shuffle_ignores_epoch", "the same shuffled order every epoch", "dlcli/train/trainer.py",
           'epoch_permutation(self.cfg["seed"], self.epoch, len(train))',
           'epoch_permutation(self.cfg["seed"], 0, len(train))',
           (f"{ORACLES}::test_every_epoch_sees_every_sample_once_in_a_new_order",)),
    Mutant("fuse_avgpool", "trainer.fuse moves a conv's activation after an average pool (not exact)",
           "dlcli/layers/pool.py", 'takes_activation=_kind == "max"', "takes_activation=True",
           ("tests/train/test_optimizations.py::test_the_fused_model_equals_conv_relu_pool_written_in_torch",)),
    Mutant("non_trainable_counts_step_counter", "BatchNorm's num_batches_tracked counted as a non-trainable "
           "parameter", "dlcli/model/summary.py",
           'for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))',
           "for n, b in model.named_buffers())",
           ("tests/test_model.py::test_batchnorm_counts_as_keras_does_scale_and_shift_trainable_running_stats_not",)),
    Mutant("min_delta_sign_in_max_mode", "early stopping's min_delta lowers the bar in max mode",
           "dlcli/train/trainer.py", "value > best + min_delta", "value > best - min_delta",
           ("tests/train/test_callbacks.py",)),
    Mutant("plateau_mode_of_trainer_monitor", "reduce_on_plateau judges its own metric by trainer.monitor's "
           "direction", "dlcli/train/trainer.py",
           'watching["mode"] = self.mode if watched == self.monitor else self._mode_of(watched)',
           'watching["mode"] = self.mode',
           (f"{ORACLES}::test_reduce_on_plateau_steps_with_its_own_metric_in_its_direction",)),
    Mutant("traceback_on_refusal", "a refused input prints a traceback before its error (exit 2 still)",
           "dlcli/cli/_app.py",
           "            message = str(err) if isinstance(err, DlcliError)",
           "            import traceback\n            traceback.print_exc()\n"
           "            message = str(err) if isinstance(err, DlcliError)",
           ("tests/reliability/test_hostile_checkpoints.py::test_hostile_checkpoint_is_refused",)),
    Mutant("unknown_keys_accepted", "a key no registry entry declares is ignored instead of refused",
           "dlcli/registry.py",
           "        if arg is None:\n            valid = ",
           "        if arg is None:\n            continue\n            valid = ",
           ("tests/fuzz/test_config_fuzz.py", "-k", "cases0-99 or cases100-199")),
    Mutant("checkpoint_unpacked_unchecked", "a 3 MB checkpoint holding a deflated 3 GB tensor is read whole",
           "dlcli/checkpoint.py", "    refuse_checkpoint_beyond_memory(path)  # a deflated", "    # a deflated",
           (f"{MEMORY}::test_a_deflated_3gb_tensor_is_refused_before_loading",)),
    Mutant("ulimit_ignored", "`ulimit -v` left out of the available memory", "dlcli/memory.py",
           "    found += _room_under_rlimits()\n", "",
           ("tests/test_memory.py::test_available_memory_is_capped_by_ulimit_v",
            f"{MEMORY}::test_a_deflated_3gb_tensor_is_refused_before_loading")),
    Mutant("checkpoint_model_unchecked", "a checkpoint's config of a million-unit layer is built before its "
           "weights are checked", "dlcli/checkpoint.py",
           "refuse_model_beyond_memory(cfg, meta)", "pass",
           (f"{MEMORY}::test_a_checkpoint_config_of_a_million_unit_layer_is_refused_before_building",)),
    Mutant("training_memory_unchecked", "a model memory cannot train is built, to die in the allocator",
           "dlcli/train/run.py", "    refuse_training_beyond_memory(cfg, meta_model, device)", "    pass",
           (f"{MEMORY}::test_training_that_memory_cannot_hold_is_refused_before_the_model_is_built",)),
    Mutant("validate_memory_unchecked", "dlcli validate passes a model memory cannot train", "dlcli/preflight.py",
           'if model is not None and device.type == "cpu":', "if False:",
           (f"{MEMORY}::test_validate_reports_training_that_memory_cannot_hold",)),
    Mutant("momentum_state_uncounted", "SGD's momentum buffer left out of the training estimate",
           "dlcli/optim.py", 'state_slots=lambda args: int(args["momentum"] > 0)', "state_slots=lambda args: 0",
           ("tests/test_memory.py::test_optimizer_slots_are_what_torch_keeps",)),
    Mutant("activations_forward_only", "the training estimate counts a batch's activations once, not for the "
           "backward pass too", "dlcli/memory.py", "activations=2 * values", "activations=values",
           ("tests/test_memory.py::test_training_footprint_by_hand",)),
    Mutant("fingerprint_ignores_labels", "a split's content fingerprint hashes its inputs only: a resume on "
           "shifted labels goes on", "dlcli/data/fingerprint.py",
           '(("x", split.x), ("y", split.y))', '(("x", split.x),)',
           ("tests/train/test_resume_fingerprint.py::test_every_csv_label_shifted_is_refused_naming_the_split",)),
    Mutant("fingerprint_kinds_compared", "a resume compares a streamed split's fingerprint with an in-memory one "
           "(data.in_memory: auto) and refuses the same data", "dlcli/data/fingerprint.py",
           ' or old.rsplit(":", 1)[0] != new.rsplit(":", 1)[0]', "",
           ("tests/data/test_fingerprint.py::test_only_fingerprints_of_one_kind_are_compared",)),
]


def copy_tree(destination: Path) -> Path:
    """This checkout without its history, environment and caches, at destination/repo."""
    root = destination / "repo"
    root.mkdir(parents=True)
    for item in REPO_ROOT.iterdir():
        if item.name in SKIP_AT_ROOT:
            continue
        if item.is_dir():
            shutil.copytree(item, root / item.name, ignore=SKIP_ANYWHERE, symlinks=True)
        else:
            shutil.copy2(item, root / item.name)
    (root / "runs").mkdir()
    return root


def environment(root: Path) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]).rstrip(
        os.pathsep), "PYTHONDONTWRITEBYTECODE": "1"}


def imports_its_own_dlcli(root: Path) -> bool:
    """The copy's tests must import the copy's dlcli, not an installed one."""
    done = subprocess.run([sys.executable, "-c", "import dlcli; print(dlcli.__file__)"], cwd=root,
                          env=environment(root), capture_output=True, text=True)
    return done.returncode == 0 and Path(done.stdout.strip()).resolve().is_relative_to(root.resolve())


def run_tests(root: Path, tests: tuple[str, ...]) -> tuple[str, float, str]:
    """(outcome, seconds, first failing test or the output's end): outcome is "passed", "failed",
    "no tests" (none collected: a stale test name), "error" (pytest stopped: a collection error,
    as a syntax error in the patch gives) or "timeout"."""
    command = [sys.executable, "-m", "pytest", *tests, "-x", "-q", "-p", "no:cacheprovider"]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=root, env=environment(root), capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start, f"no result in {TIMEOUT_S} s"
    seconds = time.perf_counter() - start
    lines = (done.stdout + done.stderr).splitlines()
    failed = next((line.split(" - ")[0] for line in lines if line.startswith(("FAILED ", "ERROR "))), "")
    outcome = {0: "passed", 1: "failed", 5: "no tests"}.get(done.returncode, "error")
    return outcome, seconds, failed or (lines[-1] if lines else f"exit {done.returncode}")


def select(names: list[str]) -> list[Mutant]:
    known = {m.name: m for m in MUTANTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        sys.exit(f"error: unknown mutant {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names] if names else MUTANTS


def list_mutants(mutants: list[Mutant]) -> int:
    stale = 0
    for mutant in mutants:
        why = mutant.applies_to(REPO_ROOT)
        stale += why is not None
        print(f"{mutant.name:36} {mutant.path:26} {'applies' if why is None else 'STALE: ' + why}")
        print(f"{'':36} {mutant.bug}")
    return 2 if stale else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and whether each applies; run none")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run this mutant (repeatable)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run of the tests on an unpatched copy")
    args = parser.parse_args(argv)
    mutants = select(args.only)
    if args.list:
        return list_mutants(mutants)
    stale = [f"{m.name}: {why}" for m in mutants if (why := m.applies_to(REPO_ROOT))]
    if stale:
        print("error: patches that no longer apply (update them in benchmarks/mutants.py):\n  " + "\n  ".join(stale),
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dlcli-mutants-") as scratch:
        clean = copy_tree(Path(scratch) / "clean")
        if not imports_its_own_dlcli(clean):
            print(f"error: python in {clean} does not import the copy's dlcli", file=sys.stderr)
            return 2
        if not args.no_baseline:
            for mutant in mutants:  # one run per mutant: their -k selections do not combine
                outcome, seconds, detail = run_tests(clean, mutant.tests)
                if outcome != "passed":
                    print(f"error: the baseline (no mutant) {outcome} for {mutant.name}'s tests: {detail}",
                          file=sys.stderr)
                    return 2
            print(f"baseline: the tests of {len(mutants)} mutant(s) pass on an unpatched copy")
        print(f"{'mutant':36} {'result':9} {'seconds':>7}  killed by")
        survived = 0
        problems = 0
        for mutant in mutants:
            root = copy_tree(Path(scratch) / mutant.name)
            mutant.apply(root)
            outcome, seconds, detail = run_tests(root, mutant.tests)
            result = {"failed": "killed", "passed": "SURVIVED", "no tests": "NO TESTS"}.get(outcome,
                                                                                           f"killed ({outcome})")
            survived += outcome == "passed"
            problems += outcome == "no tests"
            shown = detail if outcome != "passed" else " ".join(mutant.tests)
            print(f"{mutant.name:36} {result:9} {seconds:7.1f}  {shown}", flush=True)
            shutil.rmtree(root.parent)
        print(f"{len(mutants) - survived} of {len(mutants)} mutants killed" +
              (f"; {survived} survived: the tests above do not notice that bug" if survived else ""))
    return 2 if problems else 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
