"""A warm `python -m dlcli` for the kill trials.

Started once as `python _cli_server.py`, it imports dlcli and torch (about 3 s on a
small machine), then forks one child per request. The child runs `dlcli/__main__.py`
with runpy and `sys.argv = ["dlcli", *argv]`, which is what `python -m dlcli ARGV`
does once the interpreter is up; so a trial costs its run, not the import. The
server runs no torch operation before it forks (no thread pool to inherit).

Protocol on stdin/stdout, one JSON object per line:
    {"argv": [...], "cwd": DIR, "out": FILE, "err": FILE,
     "pause_in_writes_s": S, "frozen_time": "20261126-120000"}   ->  {"pid": PID}
    {"wait": PID}                                                 ->  {"rc": RC}
RC is the exit status, or minus the signal that killed the child. The server reaps
a child only when asked, so its pid stays valid for os.kill until then.

Test instruments (in the child only, nothing in dlcli changes):
    pause_in_writes_s  every atomic write (checkpoints, metrics.csv, summary) pauses
                       this long after its temporary file is written, before the fsync
                       and rename: the `.last.pt.*.tmp` file is there to be seen.
    frozen_time        datetime.now() in dlcli.runs returns this instant: runs started
                       together get the same timestamp.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import time
import traceback


def _instrument(request: dict) -> None:
    pause = request.get("pause_in_writes_s")
    if pause:
        import dlcli.checkpoint
        import dlcli.runs

        original = dlcli.checkpoint.atomic_write_bytes

        def paused_write(path, write):
            def write_then_pause(handle):
                write(handle)
                handle.flush()
                time.sleep(pause)

            original(path, write_then_pause)

        dlcli.checkpoint.atomic_write_bytes = dlcli.runs.atomic_write_bytes = paused_write
    frozen = request.get("frozen_time")
    if frozen:
        import datetime as real

        import dlcli.runs

        class FrozenDatetime(real.datetime):
            @classmethod
            def now(cls, tz=None):
                return cls.strptime(frozen, "%Y%m%d-%H%M%S")

        dlcli.runs.datetime = FrozenDatetime


def _child(request: dict) -> None:
    code = 1
    try:
        os.chdir(request["cwd"])
        for fd, name, flags in ((0, os.devnull, os.O_RDONLY),
                                (1, request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                (2, request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
            new = os.open(name, flags, 0o644)
            os.dup2(new, fd)
            os.close(new)
        _instrument(request)
        sys.argv = ["dlcli", *request["argv"]]
        try:
            runpy.run_module("dlcli", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # noqa: BLE001 - report anything, then leave without running the server's code
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def main() -> None:
    import torch  # noqa: F401  (the point: import once)
    import torch._dynamo  # noqa: F401  (torch.optim imports it on first use: 2-3 s)

    import dlcli.cli  # noqa: F401
    import dlcli.cli._progress  # noqa: F401
    import dlcli.data.images  # noqa: F401
    import dlcli.data.targets  # noqa: F401
    import dlcli.data.prepare  # noqa: F401
    import dlcli.train  # noqa: F401

    reply = sys.stdout
    print(json.dumps({"ready": True}), file=reply, flush=True)
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        request = json.loads(line)
        if "wait" in request:
            _, status = os.waitpid(request["wait"], 0)
            rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            print(json.dumps({"rc": rc}), file=reply, flush=True)
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(json.dumps({"pid": pid}), file=reply, flush=True)


if __name__ == "__main__":
    main()
