"""Starting and resuming training runs: data, trainer, run directory, callbacks.

    summary = train(cfg, callbacks=[progress])          # a new run
    summary = resume("runs/mnist_cnn/20261126-120000")  # continue where it stopped

A new run is set up and fitted in `run`, a resume refused or taken up in `resume`; the loop is
`trainer`, its step `step`, the extras around it `callbacks`.
"""

from dlcli.interrupts import SecondSignal, TrainingInterrupted
from dlcli.train.callbacks import Callback
from dlcli.train.resume import resume
from dlcli.train.run import RunHandle, run_start, train
from dlcli.train.trainer import Trainer

__all__ = ["train", "resume", "run_start", "Trainer", "TrainingInterrupted", "SecondSignal", "Callback", "RunHandle"]
