"""Training speed of every shipped config, paired: dlcli against the plain PyTorch loop a
user would write for the same config (benchmarks/_contestants.py: dlcli and plain).

    python benchmarks/config_speed.py                            # every configs/*.yaml, CPU, 2 epochs
    python benchmarks/config_speed.py --epochs 2 --repeats 2
    python benchmarks/config_speed.py --configs configs/mnist_lstm.yaml --subset 6000

dlcli: load_config + dlcli.train.train, as `dlcli train` runs it; its epoch seconds are
read from metrics.jsonl. plain: the config's layers built plainly (build_model(cfg,
fuse=False), no channels_last), the same loss, optimizer, lr, scheduler and grad_clip,
the same batch size and number of training samples (data.subset, then data.val_split
held out), the data as one resident normalized tensor, and a standard zero_grad /
forward / loss / backward / step loop.

What is timed, on both sides: the training batches of an epoch. dlcli measures an
epoch's seconds before its validation pass and checkpoint, so these are outside its
figure, as the plain loop has none; dlcli's figure does include what it does per batch
besides the step (running loss and metric sums, the NaN check). dlcli's test
evaluation is switched off (trainer.evaluate_test=false): it is outside the epochs.

Each contestant runs in its own process, in alternating order over the repeats, so that
a noisy machine slows both alike. s/epoch is the median over the repeats of the median
epoch after the first (warm-up) one; first is the first epoch's. sys s and faults are
the kernel's share of those epochs (system CPU seconds, minor page faults): on glibc a
process whose allocator keeps handing large blocks back to the OS and faulting them in
again runs slower for that alone, whichever contestant it is; a high figure there marks
a row as allocator noise rather than a difference between the loops.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path

from _contestants import launch, steady  # this folder is sys.path[0] when the script runs

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONTESTANTS = ("plain", "dlcli")


def run(contestant: str, config: Path, args) -> dict:
    options = ["--config", str(config), "--epochs", str(args.epochs), "--device", args.device]
    if args.subset:
        options += ["--subset", str(args.subset)]
    if contestant == "dlcli":
        options += ["--override", "trainer.evaluate_test=false"]
        for override in args.override:
            options += ["--override", override]
    return launch(contestant, options, args.timeout, f"{contestant} {config.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", type=Path,
                        help="config files (default: every configs/*.yaml)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--subset", type=int, help="train both on the first N training samples only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--override", action="append", default=[], help="dlcli override, e.g. trainer.fuse=false")
    parser.add_argument("--timeout", type=int, default=3600)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.epochs < 1 or args.repeats < 1:
        parser.error("--epochs and --repeats must be at least 1")
    configs = args.configs or sorted((REPO / "configs").glob("*.yaml"))
    results: dict[str, dict[str, list[dict]]] = {}
    for config in configs:
        results[config.name] = {name: [] for name in CONTESTANTS}
        for r in range(args.repeats):
            for name in (CONTESTANTS if r % 2 == 0 else tuple(reversed(CONTESTANTS))):
                result = run(name, config, args)
                results[config.name][name].append(result)
                print(f"  {config.name} repeat {r + 1} {name}: epochs "
                      f"{['%.3f' % s for s in result['epoch_seconds']]} sys "
                      f"{['%.2f' % s for s in result['epoch_sys_seconds']]} faults {result['epoch_minor_faults']} "
                      f"({result['train_samples']} samples)", flush=True)
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.device}, "
          f"epochs {args.epochs}, repeats {args.repeats}, subset {args.subset or 'all'}"
          + (f", dlcli overrides {' '.join(args.override)}" if args.override else ""))
    print(f"{'config':<22}{'contestant':<12}{'samples':>9}{'s/epoch':>10}{'first':>9}{'samples/s':>11}"
          f"{'sys s':>8}{'faults':>12}{'dlcli/plain':>13}")
    summary: dict[str, dict] = {}
    for config, by_name in results.items():
        rows = {}
        for name in CONTESTANTS:
            runs = by_name[name]
            rows[name] = {"s_per_epoch": statistics.median(steady(x["epoch_seconds"]) for x in runs),
                          "first_epoch_s": statistics.median(x["epoch_seconds"][0] for x in runs),
                          "train_samples": runs[0]["train_samples"],
                          "sys_s_per_epoch": statistics.median(steady(x["epoch_sys_seconds"]) for x in runs),
                          "faults_per_epoch": statistics.median(steady(x["epoch_minor_faults"]) for x in runs)}
        ratio = rows["dlcli"]["s_per_epoch"] / rows["plain"]["s_per_epoch"]
        for name in CONTESTANTS:
            row = rows[name]
            print(f"{config:<22}{name:<12}{row['train_samples']:>9}{row['s_per_epoch']:>10.3f}"
                  f"{row['first_epoch_s']:>9.3f}{row['train_samples'] / row['s_per_epoch']:>11,.0f}"
                  f"{row['sys_s_per_epoch']:>8.2f}{row['faults_per_epoch']:>12,.0f}"
                  f"{(f'{ratio:.3f}' if name == 'dlcli' else ''):>13}")
        summary[config] = {**rows, "ratio": ratio}
    print("timed: the training batches of each epoch (dlcli: metrics.jsonl seconds, which leave out its "
          "validation pass and checkpoint; plain: no validation). s/epoch, sys s, faults: median epoch after "
          "the first")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": {**vars(args), "configs": [str(c) for c in configs]},
                                               "results": results, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
