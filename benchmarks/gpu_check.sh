#!/usr/bin/env bash
# Everything that needs a GPU, in one call on a lent GPU machine (see README, Speed): the
# paired training-speed benchmarks first (issue #5's figures), then the phase-by-phase
# first epoch, the CUDA tests, and the LSTM config.
#   bash benchmarks/gpu_check.sh            # writes 7 files under $OUT (or ./gpu-results)
# A device call returns at most 8 files and runs at most 600 s: each step has its own time
# limit (about 300 s expected in all, 600 s at the limits), so one hang cannot take the rest.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
OUT="${OUT:-gpu-results}"; mkdir -p "$OUT"
{ nvidia-smi -L; python3 -c "import torch, torchvision, typer, rich, yaml, PIL, numpy
print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'numpy', numpy.__version__,
      torch.cuda.get_device_name(0))"; } 2>&1 | tee "$OUT/cuda_tests.log"
# the opt-in fast path: the whole step in a CUDA graph, against the hand-written CUDA-graph limit
timeout 140 python3 benchmarks/train_speed.py --device cuda --epochs 10 --repeats 3 --contestants graph,dlcli \
  --timeout 60 --override trainer.cuda_graphs=true --json "$OUT/gpu_graphs.json" 2>&1 | tee "$OUT/gpu_graphs.log"
# the seed config: default path against the hand-written loop and the idiomatic 4-worker DataLoader loop
timeout 150 python3 benchmarks/train_speed.py --device cuda --epochs 10 --workers 4 --timeout 100 \
  --json "$OUT/gpu_default.json" 2>&1 | tee "$OUT/gpu_default.log"
# where the set-up and the first epoch spend their time, phase by phase: fast path, then default path
timeout 45 python3 benchmarks/first_epoch.py --device cuda --override trainer.cuda_graphs=true 2>&1 \
  | tee "$OUT/first_epoch.log"
timeout 45 python3 benchmarks/first_epoch.py --device cuda 2>&1 | tee -a "$OUT/first_epoch.log"
# the CUDA tests (skips are listed with their reasons: a row of s would hide an unusable GPU)
timeout 110 python3 -m pytest -rs -p no:cacheprovider tests/train/test_cuda.py tests/train/test_warmup.py 2>&1 \
  | tee -a "$OUT/cuda_tests.log" | tail -15
# streamed image folders on the GPU (pinned copies) against the data held on the device
timeout 40 python3 -m pytest -rs -p no:cacheprovider tests/data/test_stream.py -k cuda 2>&1 \
  | tee -a "$OUT/cuda_tests.log" | tail -6
# the RNN config on the GPU: accuracy after its configured epochs
timeout 70 python3 -m dlcli train configs/mnist_lstm.yaml trainer.device=cuda trainer.out_dir=/tmp/gpu-runs 2>&1 \
  | tee "$OUT/lstm.log" | tail -6
