#!/usr/bin/env bash
# Everything that needs a GPU, in one call on a lent GPU machine (see README, Benchmarks):
# the CUDA tests, then the paired training-speed benchmark on the device.
#   bash benchmarks/gpu_check.sh            # writes logs under $OUT (or ./gpu-results)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
OUT="${OUT:-gpu-results}"; mkdir -p "$OUT"
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
python3 -m pytest -q -p no:cacheprovider tests/train/test_cuda.py tests/train/test_warmup.py 2>&1 | tee "$OUT/cuda_tests.log" | tail -15
# streamed image folders on the GPU (pinned copies) against the data held on the device
python3 -m pytest -q -p no:cacheprovider tests/data/test_stream.py -k cuda -rs 2>&1 | tee "$OUT/cuda_stream_tests.log" | tail -6
# the seed config: default path against the hand-written loop and the idiomatic 4-worker DataLoader loop
python3 benchmarks/train_speed.py --device cuda --epochs 10 --workers 4 --json "$OUT/gpu_default.json" 2>&1 | tee "$OUT/gpu_default.log"
# the opt-in fast path: the whole step in a CUDA graph, against the hand-written CUDA-graph limit
python3 benchmarks/train_speed.py --device cuda --epochs 10 --repeats 3 --contestants graph,dlcli \
  --override trainer.cuda_graphs=true --json "$OUT/gpu_graphs.json" 2>&1 | tee "$OUT/gpu_graphs.log"
# where the fast path's first epoch and the set-up spend their time (phase by phase), then the default path's
python3 benchmarks/first_epoch.py --device cuda --override trainer.cuda_graphs=true 2>&1 | tee "$OUT/first_epoch_graphs.log"
python3 benchmarks/first_epoch.py --device cuda 2>&1 | tee "$OUT/first_epoch_default.log"
# the RNN config on the GPU: accuracy after its configured epochs
python3 -m dlcli train configs/mnist_lstm.yaml trainer.device=cuda trainer.out_dir=/tmp/gpu-runs 2>&1 | tee "$OUT/lstm.log" | tail -6
