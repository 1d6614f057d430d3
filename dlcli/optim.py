"""Optimizers and learning-rate schedulers."""

from __future__ import annotations

from dlcli.registry import Arg, Bool, Float, FloatList, Int, IntList, Optional, Registry, Str

OPTIMIZERS = Registry("optimizer", meta_keys=("fused", "capturable", "state_slots"))
SCHEDULERS = Registry("scheduler", meta_keys=("interval", "length_dependent", "needs_metric"))

def _lr(default: float) -> Arg:
    """`known_as`: Keras' names for an argument are answered with a did-you-mean."""
    return Arg("lr", Float(min=0.0, min_open=True), default, "learning rate", known_as=("learning_rate",))


def _eps(default: float) -> Arg:
    return Arg("eps", Float(min=0.0, min_open=True), default, "added to the denominator", known_as=("epsilon",))


_LR = _lr(1e-3)
_BETAS = Arg("betas", FloatList(2), [0.9, 0.999], "decay of the moment estimates", known_as=("beta_1", "beta_2"))
_WD = Arg("weight_decay", Float(min=0.0), 0.0, "L2 penalty (decoupled for adamw)")


# Optimizers: `build(args, params, **implementation)`. meta["fused"]: torch has a fused
# (one-kernel) implementation, asked for on CUDA, and the builder takes `fused`.
# meta["capturable"]: a CUDA graph can capture its step (trainer.cuda_graphs), and the
# builder takes `capturable`. The builder takes no keyword its meta does not declare.
# meta["state_slots"]: (args) -> the values it keeps per parameter (Adam's two moments), for
# the memory estimate of training (dlcli.memory).

def build_optimizer(cfg: dict, params, device, capturable: bool = False):
    """The config's optimizer over `params`: the fused implementation on CUDA where it has one;
    `capturable` keeps its state on the device for a CUDA graph (only for an optimizer that
    declares it: graph_blockers refuses the others first)."""
    spec = cfg["optimizer"]
    entry = OPTIMIZERS.get(spec["type"])
    if capturable and not entry.meta["capturable"]:
        raise ValueError(f"optimizer {entry.name} cannot be captured in a CUDA graph")
    implementation = {}
    if entry.meta["fused"]:
        implementation["fused"] = device.type == "cuda"
    if entry.meta["capturable"]:
        implementation["capturable"] = capturable
    return entry.build({k: v for k, v in spec.items() if k != "type"}, params, **implementation)


def _implementation_kwargs(params, fused: bool, capturable: bool = False) -> dict:
    """torch's keywords for the fused (one-kernel) implementation when asked for and all
    `params` are on CUDA, and for `capturable` (the step count kept on the device, so a
    CUDA graph can replay the step)."""
    kwargs = {"fused": True} if fused and all(p.is_cuda for p in params) else {}
    if capturable:
        kwargs["capturable"] = True
    return kwargs


@OPTIMIZERS.register("adam", help="Adam", aliases=("Adam",),
                     args=(_LR, _BETAS, _eps(1e-8),
                           _WD, Arg("amsgrad", Bool(), False, "use the AMSGrad variant")),
                     fused=True, capturable=True,
                     state_slots=lambda args: int(2 + args["amsgrad"]))
def build_adam(args, params, fused=False, capturable=False):
    import torch

    params = list(params)
    return torch.optim.Adam(params, lr=args["lr"], betas=tuple(args["betas"]), eps=args["eps"],
                            weight_decay=args["weight_decay"], amsgrad=args["amsgrad"],
                            **_implementation_kwargs(params, fused, capturable))


@OPTIMIZERS.register("adamw", help="Adam with decoupled weight decay", aliases=("AdamW",),
                     args=(_LR, _BETAS, _eps(1e-8),
                           Arg("weight_decay", Float(min=0.0), 0.01, "decoupled weight decay"),
                           Arg("amsgrad", Bool(), False, "use the AMSGrad variant")),
                     fused=True, capturable=True,
                     state_slots=lambda args: int(2 + args["amsgrad"]))
def build_adamw(args, params, fused=False, capturable=False):
    import torch

    params = list(params)
    return torch.optim.AdamW(params, lr=args["lr"], betas=tuple(args["betas"]), eps=args["eps"],
                             weight_decay=args["weight_decay"], amsgrad=args["amsgrad"],
                             **_implementation_kwargs(params, fused, capturable))


def _nesterov_needs_momentum(args: dict) -> list:
    """torch refuses Nesterov momentum without momentum, or with dampening."""
    if not args["nesterov"]:
        return []
    problems = []
    if args["momentum"] <= 0:
        problems.append(("nesterov", f"Nesterov momentum needs momentum > 0 (e.g. momentum: 0.9); received: "
                                     f"momentum {args['momentum']:g}"))
    if args["dampening"] != 0:
        problems.append(("dampening", f"Nesterov momentum needs dampening 0; received: {args['dampening']:g}"))
    return problems


@OPTIMIZERS.register("sgd", help="stochastic gradient descent, with optional (Nesterov) momentum",
                     aliases=("SGD",), cross_check=_nesterov_needs_momentum,
                     args=(_lr(0.01),
                           Arg("momentum", Float(min=0.0, max=1.0), 0.0, "momentum factor"),
                           Arg("nesterov", Bool(), False, "Nesterov momentum (needs momentum > 0 and dampening 0)"),
                           Arg("dampening", Float(min=0.0, max=1.0), 0.0, "dampening for momentum"), _WD),
                     fused=True, capturable=True,
                     state_slots=lambda args: int(args["momentum"] > 0))
def build_sgd(args, params, fused=False, capturable=False):
    """torch's SGD keeps no step count, so its step is captured as it is: `capturable`
    needs no keyword of torch."""
    import torch

    params = list(params)
    return torch.optim.SGD(params, lr=args["lr"], momentum=args["momentum"], nesterov=args["nesterov"],
                           dampening=args["dampening"], weight_decay=args["weight_decay"],
                           **_implementation_kwargs(params, fused))


@OPTIMIZERS.register("rmsprop", help="RMSprop", aliases=("RMSprop",),
                     args=(_LR, Arg("rho", Float(min=0.0, max=1.0, max_open=True), 0.9,
                                    "decay of the squared-gradient average (Keras rho, torch alpha)"),
                           Arg("momentum", Float(min=0.0, max=1.0), 0.0, "momentum factor"),
                           _eps(1e-7),
                           Arg("centered", Bool(), False, "normalize by the gradient's variance"), _WD),
                     fused=False, capturable=False,
                     state_slots=lambda args: int(1 + (args["momentum"] > 0) + args["centered"]))
def build_rmsprop(args, params):
    import torch

    return torch.optim.RMSprop(list(params), lr=args["lr"], alpha=args["rho"], momentum=args["momentum"],
                               eps=args["eps"], centered=args["centered"], weight_decay=args["weight_decay"])


@OPTIMIZERS.register("adagrad", help="Adagrad", aliases=("Adagrad",),
                     args=(_lr(0.01),
                           _eps(1e-10), _WD),
                     fused=False, capturable=False,
                     state_slots=lambda args: 1)
def build_adagrad(args, params):
    import torch

    return torch.optim.Adagrad(list(params), lr=args["lr"], eps=args["eps"], weight_decay=args["weight_decay"])


# Schedulers: meta["interval"] is "epoch" (stepped after each epoch) or "step"
# (after each optimizer step). `build(args, optimizer, steps_per_epoch, epochs)`.
# meta["length_dependent"]: the schedule's shape depends on the total length of the run
# (epochs x steps_per_epoch), so a resume with another trainer.epochs recomputes it.
# meta["needs_metric"]: stepped with the watched metric's value; build also takes `mode`
# ("min" or "max": which way that metric improves), which the trainer knows.

@SCHEDULERS.register("step", help="multiply the LR by gamma every step_size epochs", aliases=("StepLR",),
                     args=(Arg("step_size", Int(min=1), help="epochs between decays", example=10),
                           Arg("gamma", Float(min=0.0, min_open=True), 0.1, "decay factor")), interval="epoch")
def build_step(args, optimizer, steps_per_epoch, epochs):
    import torch

    return torch.optim.lr_scheduler.StepLR(optimizer, args["step_size"], gamma=args["gamma"])


@SCHEDULERS.register("multistep", help="multiply the LR by gamma at each milestone epoch",
                     aliases=("MultiStepLR",),
                     args=(Arg("milestones", IntList(min_len=1, max_len=100), help="epochs at which to decay",
                               example=[30, 60]),
                           Arg("gamma", Float(min=0.0, min_open=True), 0.1, "decay factor")), interval="epoch")
def build_multistep(args, optimizer, steps_per_epoch, epochs):
    import torch

    return torch.optim.lr_scheduler.MultiStepLR(optimizer, args["milestones"], gamma=args["gamma"])


@SCHEDULERS.register("exponential", help="multiply the LR by gamma every epoch", aliases=("ExponentialLR",),
                     args=(Arg("gamma", Float(min=0.0, min_open=True), help="decay factor per epoch", example=0.95),),
                     interval="epoch")
def build_exponential(args, optimizer, steps_per_epoch, epochs):
    import torch

    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args["gamma"])


@SCHEDULERS.register("cosine", help="cosine decay from the LR to eta_min over the training steps",
                     aliases=("CosineAnnealingLR", "cosine_decay"),
                     args=(Arg("eta_min", Float(min=0.0), 0.0, "final learning rate"),
                           Arg("warmup_steps", Int(min=0), 0, "linear warmup steps before the decay")),
                     interval="step", length_dependent=True)
def build_cosine(args, optimizer, steps_per_epoch, epochs):
    import math

    import torch

    total, warmup = max(steps_per_epoch * epochs, 1), args["warmup_steps"]
    base = optimizer.param_groups[0]["lr"]
    floor = args["eta_min"] / base

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@SCHEDULERS.register("one_cycle", help="one-cycle policy: warm up to max_lr, then anneal",
                     aliases=("OneCycleLR",),
                     args=(Arg("max_lr", Float(min=0.0, min_open=True), help="peak learning rate", example=0.01),
                           Arg("pct_start", Float(min=0.0, max=1.0, min_open=True, max_open=True), 0.3,
                               "fraction of the steps spent warming up")), interval="step",
                     length_dependent=True)
def build_one_cycle(args, optimizer, steps_per_epoch, epochs):
    import torch

    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args["max_lr"], epochs=epochs,
                                               steps_per_epoch=max(steps_per_epoch, 1),
                                               pct_start=args["pct_start"])


@SCHEDULERS.register("reduce_on_plateau", help="divide the LR when a monitored metric stops improving",
                     aliases=("ReduceLROnPlateau",),
                     args=(Arg("monitor", Optional(Str()), None, "metric to watch (default: trainer.monitor)"),
                           Arg("factor", Float(min=0.0, max=1.0, min_open=True, max_open=True), 0.1,
                               "multiply the LR by this"),
                           Arg("patience", Int(min=0), 10, "epochs without improvement before reducing"),
                           Arg("min_lr", Float(min=0.0), 0.0, "lower bound on the LR")),
                     interval="epoch", needs_metric=True)
def build_plateau(args, optimizer, steps_per_epoch, epochs, *, mode: str):
    """`mode`: which way the watched metric improves (a loss falls, an accuracy rises)."""
    import torch

    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=args["factor"],
                                                      patience=args["patience"], min_lr=args["min_lr"])


@SCHEDULERS.register("linear_warmup", help="raise the LR linearly from start_factor x LR over warmup_steps, "
                                           "then keep it", aliases=("LinearLR",),
                     args=(Arg("warmup_steps", Int(min=1), help="optimizer steps of warmup", example=500),
                           Arg("start_factor", Float(min=0.0, max=1.0, min_open=True), 0.1, "initial LR fraction")),
                     interval="step")
def build_linear_warmup(args, optimizer, steps_per_epoch, epochs):
    import torch

    return torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=args["start_factor"], end_factor=1.0,
                                             total_iters=args["warmup_steps"])
