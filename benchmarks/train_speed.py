"""Training speed of the seed config, paired in one run: dlcli against the
hand-written resident-tensor loop and the idiomatic torchvision DataLoader loop
(same model, optimizer, batch, epochs and data). Each contestant runs in its
own process (its peak RSS is its own), in alternating order over the repeats,
so that a noisy machine slows every contestant alike.

    python benchmarks/train_speed.py                       # CPU, 10 epochs, all three
    python benchmarks/train_speed.py --epochs 2 --repeats 2
    python benchmarks/train_speed.py --device cuda --workers 4
    python benchmarks/train_speed.py --device cuda --contestants graph,dlcli --override trainer.cuda_graphs=true

Contestants: dlcli (configs/mnist_cnn.yaml), hand (resident tensors, batches by index),
dataloader (torchvision MNIST + DataLoader), graph (CUDA only: the hand loop's step
captured in one CUDA graph: the practical limit, 0.14 s/epoch on an H200 in the project's
peer measurements).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

from _contestants import launch, steady  # this folder is sys.path[0] when the script runs


def run(contestant: str, args) -> dict:
    options = ["--epochs", str(args.epochs), "--device", args.device, "--workers", str(args.workers)]
    for override in args.override:
        options += ["--override", override]
    return launch(contestant, options, args.timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for the idiomatic loop")
    parser.add_argument("--contestants", default="hand,dlcli,dataloader")
    parser.add_argument("--override", action="append", default=[], help="dlcli override, e.g. trainer.cuda_graphs=true")
    parser.add_argument("--timeout", type=int, default=3600)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    names = args.contestants.split(",")
    results: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(args.repeats):
        for name in (names if r % 2 == 0 else list(reversed(names))):
            result = run(name, args)
            results[name].append(result)
            print(f"  repeat {r + 1} {name}: epochs {['%.2f' % s for s in result['epoch_seconds']]} "
                  f"acc {result['test_accuracy']:.4f} rss {result['peak_rss_mb']:.0f} MB", flush=True)
    base_name = "hand" if "hand" in names else names[0]
    base = statistics.median(steady(x["epoch_seconds"]) for x in results[base_name])
    print(f"\nmachine: {platform.processor() or platform.machine()}, {args.device}, epochs {args.epochs}, "
          f"repeats {args.repeats}")
    print(f"{'contestant':<12}{'s/epoch':>9}{'first':>8}{'train s':>9}{'e2e s':>8}{'samples/s':>11}"
          f"{'peak RSS MB':>13}{'test acc':>10}{'x ' + base_name:>10}")
    summary = {}
    for name in names:
        per_epoch = statistics.median(steady(x["epoch_seconds"]) for x in results[name])
        first = statistics.median(x["epoch_seconds"][0] for x in results[name])
        rss = max(x["peak_rss_mb"] for x in results[name])
        acc = statistics.median(x["test_accuracy"] for x in results[name])
        training = statistics.median(sum(x["epoch_seconds"]) for x in results[name])
        end_to_end = statistics.median(x["end_to_end_seconds"] for x in results[name])
        summary[name] = {"s_per_epoch": per_epoch, "first_epoch_s": first, "training_s": training,
                         "end_to_end_s": end_to_end, "peak_rss_mb": rss, "test_accuracy": acc,
                         "ratio": per_epoch / base}
        print(f"{name:<12}{per_epoch:>9.2f}{first:>8.2f}{training:>9.2f}{end_to_end:>8.2f}{60000 / per_epoch:>11,.0f}"
              f"{rss:>13.0f}{acc:>10.4f}{per_epoch / base:>10.3f}")
    print("s/epoch: median epoch after the first; train s: all epochs; e2e s: data loading, set-up, training "
          "and the test evaluation, after the imports")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
