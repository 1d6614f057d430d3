"""Fixtures of the config fuzz suite: one runner per session that feeds a case to the
loader and to `dlcli validate`, checks the outcome, time and memory, and keeps the
tallies printed at the end of the run.

Bounds per case and step: CPU time (time.process_time: other jobs on a shared machine
do not count), growth of the peak resident memory (ru_maxrss), and an address-space
limit (RLIMIT_AS) so that a bomb that gets through raises MemoryError in this process
instead of taking the machine; a wall-clock alarm interrupts a hang.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# CPU seconds for each of loader and CLI, per case (wall time varies on a shared machine). The
# slowest sound case, a 560 KB config refused at the loader's 50,000-node cap (case 820), takes
# 1.4 CPU s on a quiet 2-core machine and 2.0 with other jobs on the cores: CPU time too grows
# under contention (shared caches and cores), so the bound keeps a margin over it. The bombs it
# guards against (alias and merge bombs, deep nesting) run for minutes when they get through.
CASE_SECONDS = 5.0
CASE_MEMORY = 200 * 2**20  # peak resident growth per case (ru_maxrss)
ADDRESS_ROOM = 1 * 2**30  # address space a case may add: a bomb fails with MemoryError, not the machine
HANG_SECONDS = 300  # a case still running after this (wall time) is a hang: interrupt it and report it
MESSAGE_LINE = 1_000  # characters in one line of an error message; a longer one echoes an input in full
# click's own usage errors (an override such as `--help=x` or `-x=1` read as an option) exit 2
# with click's "Usage: ... Error: ..." lines rather than dlcli's `error:` line
USAGE_ERROR = re.compile(r"^Error: ", re.MULTILINE)


class CaseHang(BaseException):
    """Raised by the alarm in a case that runs far past its time (BaseException: no
    `except Exception` in the package can swallow it)."""


@dataclass
class FuzzStats:
    """Tallies of the run, printed at the end (pytest_terminal_summary) and by test_fuzz_summary."""

    cases: int = 0
    valid: int = 0
    rejected: int = 0
    cli_runs: int = 0
    cli_exit: dict = field(default_factory=lambda: {0: 0, 2: 0})
    max_seconds: float = 0.0
    max_case: str = ""
    max_message: int = 0
    round_trips: int = 0  # valid configs written with dump_config and read back
    seconds: float = 0.0  # wall time spent in the cases (writing, loading, validating)

    def time(self, seconds: float, what: str) -> None:
        if seconds > self.max_seconds:
            self.max_seconds, self.max_case = seconds, what

    def lines(self) -> list[str]:
        return [f"config fuzz: {self.cases:,} cases in {self.seconds:.1f} s: "
                f"{self.valid:,} valid, {self.rejected:,} rejected with ConfigError/DlcliError",
                f"  through `dlcli validate` (CliRunner): {self.cli_runs:,} (exit 0: {self.cli_exit[0]:,}, "
                f"exit 2: {self.cli_exit[2]:,})",
                f"  slowest step: {self.max_seconds:.3f} CPU s ({self.max_case}); longest error message: "
                f"{self.max_message:,} characters"]


def _comparable(value):
    """Plain data with NaN made equal to itself (nan != nan), for comparing configs."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, float) and value != value:
        return "nan"
    return value


_STATS = pytest.StashKey[FuzzStats]()


def _address_space() -> int | None:
    """Current virtual memory size in bytes (Linux), else None."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


class Limits:
    """Time, memory and hang guard around one step of one case.

        with Limits() as limits:
            ...
        limits.cpu, limits.seconds, limits.grown  # CPU and wall seconds, peak resident growth in bytes
    """

    def __enter__(self) -> "Limits":
        self.rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.old_as = resource.getrlimit(resource.RLIMIT_AS)
        used = _address_space()
        if used is not None and self.old_as[0] == resource.RLIM_INFINITY:
            resource.setrlimit(resource.RLIMIT_AS, (used + ADDRESS_ROOM, self.old_as[1]))
        self.old_alarm = signal.signal(signal.SIGALRM, self._hang)
        signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
        self.t0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    @staticmethod
    def _hang(signum, frame):
        raise CaseHang(f"still running after {HANG_SECONDS} s")

    def __exit__(self, *exc) -> None:
        self.seconds, self.cpu = time.perf_counter() - self.t0, time.process_time() - self.cpu0
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.old_alarm)
        resource.setrlimit(resource.RLIMIT_AS, self.old_as)
        self.grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self.rss0


def format_exception(err: BaseException) -> str:
    return "".join(traceback.format_exception(type(err), err, err.__traceback__)[-12:])


@pytest.fixture(scope="session")
def fuzz_stats(request) -> FuzzStats:
    stats = FuzzStats()
    request.config.stash[_STATS] = stats
    return stats


@pytest.fixture(scope="session")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("config_fuzz")


@pytest.fixture(scope="session")
def canary_dir(tmp_path_factory) -> Path:
    """Where an object tag that ran would create its files: must stay empty."""
    return tmp_path_factory.mktemp("canary")


@pytest.fixture(scope="session")
def warm_cli():
    """Import torch (and torchvision) and build one model before any case is timed or measured."""
    from typer.testing import CliRunner

    from dlcli.cli import app

    runner = CliRunner()
    config = Path(__file__).resolve().parents[2] / "configs" / "mnist_cnn.yaml"
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 0, result.output
    try:  # validate looks for a torchvision data set's files with torchvision's own lists (cifar10...)
        import torchvision.datasets  # noqa: F401
    except ImportError:
        pass
    return runner, app


class FuzzRunner:
    """Feeds one case to `load_config` and (optionally) `dlcli validate`; returns the
    failures found, each naming the case so it can be replayed alone."""

    def __init__(self, directory: Path, canary: Path, runner, app, stats: FuzzStats, expected: dict):
        self.directory, self.canary, self.runner, self.app = directory, canary, runner, app
        self.stats, self.expected = stats, expected

    def check(self, case, through_cli: bool) -> list[str]:
        start = time.perf_counter()
        case = case.with_canary(str(self.canary))
        path = self.directory / case.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(case.content)
        if case.size > len(case.content):
            os.truncate(path, case.size)  # sparse: no disk used
        failures: list[str] = []
        try:
            outcome = self._load(case, path, failures)
            if through_cli:
                self._cli(case, path, outcome, failures)
        finally:
            path.unlink()
        created = sorted(p.name for p in self.canary.iterdir())
        if created:
            failures.append(f"{case.describe()}\n  an object tag ran: it created {created} in {self.canary}")
            for name in created:
                (self.canary / name).unlink()
        self.stats.cases += 1
        self.stats.seconds += time.perf_counter() - start
        return failures

    def _bounded(self, case, step: str, limits: Limits, failures: list[str]) -> None:
        self.stats.time(limits.cpu, f"case {case.index} {step}")
        if limits.cpu > CASE_SECONDS:
            failures.append(f"{case.describe()}\n  {step} took {limits.cpu:.2f} s of CPU (limit {CASE_SECONDS} s)")
        if limits.grown > CASE_MEMORY:
            failures.append(f"{case.describe()}\n  {step} grew the peak memory by {limits.grown / 2**20:,.0f} MiB "
                            f"(limit {CASE_MEMORY / 2**20:,.0f} MiB)")

    def _load(self, case, path: Path, failures: list[str]) -> str | None:
        """'valid', 'rejected', or None when load_config broke its contract."""
        from dlcli.config import load_config
        from dlcli.errors import DlcliError

        limits = Limits()
        try:
            with limits:
                resolved = load_config(path, list(case.overrides))
        except DlcliError as err:
            self._bounded(case, "load_config", limits, failures)
            message = str(err)
            self.stats.max_message = max(self.stats.max_message, len(message))
            if not message.strip():
                failures.append(f"{case.describe()}\n  {type(err).__name__} with an empty message")
            longest = max(map(len, message.splitlines()), default=0)
            if longest > MESSAGE_LINE:
                failures.append(f"{case.describe()}\n  a message line of {longest:,} characters (limit "
                                f"{MESSAGE_LINE:,}): an input echoed in full?\n{message[:2000]}")
            if case.same_as:
                failures.append(f"{case.describe()}\n  rejected, but it means the same as {case.same_as}:\n"
                                f"{message[:2000]}")
            self.stats.rejected += 1
            return "rejected"
        except KeyboardInterrupt:
            raise
        except BaseException as err:  # noqa: BLE001 - anything else is the bug being looked for
            failures.append(f"{case.describe()}\n  load_config raised {type(err).__name__} (not a ConfigError):\n"
                            f"{format_exception(err)}")
            return None
        self._bounded(case, "load_config", limits, failures)
        if not isinstance(resolved, dict):
            failures.append(f"{case.describe()}\n  load_config returned {type(resolved).__name__}, not a dict")
        elif case.same_as and resolved != self.expected[case.same_as]:
            failures.append(f"{case.describe()}\n  resolves differently from {case.same_as}, which it restates")
        if b"python/" in case.content:
            failures.append(f"{case.describe()}\n  resolved, though it carries a python/ object tag")
        if case.must_be_rejected:
            failures.append(f"{case.describe()}\n  resolved, though it holds a key that no section or registry "
                            f"declares: an unknown key must be an error")
        if isinstance(resolved, dict):
            failures += self._round_trip(case, resolved)
        self.stats.valid += 1
        return "valid"

    def _round_trip(self, case, resolved: dict) -> list[str]:
        """A valid config, written as dlcli writes RUN/config.yaml, reads back as the same config."""
        from dlcli.config import dump_config, parse_yaml, resolve_config

        self.stats.round_trips += 1
        try:
            text = dump_config(resolved)
            back = parse_yaml(text)[0]
            if _comparable(back) != _comparable(resolved):
                return [f"{case.describe()}\n  dump_config does not read back as the same config:\n{text[:2000]}"]
            if _comparable(resolve_config(back, {}, "config.yaml")) != _comparable(resolved):
                return [f"{case.describe()}\n  dump_config reads back, but resolves to another config:\n{text[:2000]}"]
        except Exception as err:  # noqa: BLE001 - a dump that does not load back is the bug looked for
            return [f"{case.describe()}\n  the written config.yaml does not load back: {type(err).__name__}:\n"
                    f"{format_exception(err)}"]
        return []

    def _cli(self, case, path: Path, outcome: str | None, failures: list[str]) -> None:
        limits = Limits()
        try:
            with limits:
                result = self.runner.invoke(self.app, ["validate", str(path), *case.overrides])
        except KeyboardInterrupt:
            raise
        except BaseException as err:  # noqa: BLE001 - CaseHang, or the runner itself broke
            failures.append(f"{case.describe()}\n  dlcli validate: {type(err).__name__}:\n{format_exception(err)}")
            return
        self._bounded(case, "dlcli validate", limits, failures)
        self.stats.cli_runs += 1
        code, output, stderr = result.exit_code, result.output, result.stderr
        self.stats.cli_exit[code] = self.stats.cli_exit.get(code, 0) + 1
        where = f"{case.describe()}\n  dlcli validate exited {code}"
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            failures.append(f"{where} with {type(result.exception).__name__}:\n{format_exception(result.exception)}")
        elif code not in (0, 2):
            failures.append(f"{where}; expected 0 or 2. Output:\n{output[-2000:]}")
        if "Traceback" in output:
            failures.append(f"{where}: a traceback reached the output:\n{output[-2000:]}")
        if code == 2 and not (stderr.startswith("error:") or USAGE_ERROR.search(stderr)):
            failures.append(f"{where} without an `error:` message on stderr:\n{output[-2000:]}")
        options = any(o.startswith("-") for o in case.overrides)  # click reads `--help` as the option
        if outcome == "rejected" and code != 2 and not options:
            failures.append(f"{where}, but load_config rejected the config")


@pytest.fixture(scope="session")
def fuzz(fuzz_dir, canary_dir, warm_cli, fuzz_stats) -> FuzzRunner:
    from dlcli.config import load_config

    configs = Path(__file__).resolve().parents[2] / "configs"
    expected = {p.name: load_config(p) for p in configs.glob("*.yaml")}
    runner, app = warm_cli
    return FuzzRunner(fuzz_dir, canary_dir, runner, app, fuzz_stats, expected)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    stats = config.stash.get(_STATS, None)
    if stats is not None and stats.cases:
        for line in stats.lines():
            terminalreporter.write_line(line)
