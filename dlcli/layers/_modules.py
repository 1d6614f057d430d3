"""The torch modules behind the layers: thin subclasses of the PyTorch ones, so
the state_dict keys are the familiar `conv2d.weight`, `dense.bias`."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcli.activations import build_activation


class Conv(nn.Module):
    """Placeholder so `Conv(rank, ...)` returns the right subclass."""

    def __new__(cls, rank: int, *args, **kwargs):
        return (Conv1d if rank == 1 else Conv2d)(*args, **kwargs)


def _conv_class(base):
    class _Conv(base):
        def __init__(self, in_channels, filters, kernel_size, *, stride, padding, dilation, bias, activation,
                     asymmetric_pads=None):
            super().__init__(in_channels, filters, kernel_size, stride=stride, padding=padding,
                             dilation=dilation, bias=bias)
            self.activation_name = activation
            self.act = build_activation(activation)
            # F.pad wants the last axis first: (left, right, top, bottom)
            self.pads = None if asymmetric_pads is None else tuple(p for pair in reversed(asymmetric_pads) for p in pair)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.pads is not None:
                x = F.pad(x, self.pads)
            return self.act(super().forward(x))

    _Conv.__name__ = _Conv.__qualname__ = base.__name__
    return _Conv


Conv1d = _conv_class(nn.Conv1d)
Conv2d = _conv_class(nn.Conv2d)


class Dense(nn.Linear):
    """nn.Linear with an optional activation."""

    def __init__(self, in_features: int, units: int, *, bias: bool, activation: str | None):
        super().__init__(in_features, units, bias=bias)
        self.activation_name = activation
        self.act = build_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


class ActivatedPool(nn.Module):
    """A max-pool followed by the activation of the convolution before it.

    For a non-decreasing activation f, maxpool(f(x)) == f(maxpool(x)) exactly, and
    the gradients are the same; applying f after the pool touches 4x fewer values
    (2x2 windows) forward and backward. No parameters: state_dict keys are unchanged.
    """

    def __init__(self, pool: nn.Module, activation: str):
        super().__init__()
        self.pool = pool
        self.activation_name = activation
        self.act = build_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.pool(x))


class PaddedPool(nn.Module):
    """A pool over its input padded unevenly, (before, after) per spatial axis, as Keras's
    `same` pads where torch's own padding (the same on both sides) cannot: with -inf for a
    max, and for an average with the padded positions left out of each window's count."""

    def __init__(self, pool: nn.Module, pads: list[tuple[int, int]], kind: str):
        super().__init__()
        self.pool, self.kind = pool, kind
        self.pads = tuple(p for pair in reversed(pads) for p in pair)  # F.pad: the last axis first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "max":
            return self.pool(F.pad(x, self.pads, value=float("-inf")))
        covered = self.pool(F.pad(torch.ones_like(x[:1, :1]), self.pads))  # (1, 1, *out): the share of real values
        return self.pool(F.pad(x, self.pads)) / covered

    def extra_repr(self) -> str:
        return f"kind={self.kind}, pads={self.pads}"


class Reshape(nn.Module):
    def __init__(self, target_shape: tuple[int, ...]):
        super().__init__()
        self.target_shape = tuple(target_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.target_shape)

    def extra_repr(self) -> str:
        return f"target_shape={self.target_shape}"


class Permute(nn.Module):
    """Keras's Permute: `dims` numbers the sample axes from 1, so they are also the tensor's
    axes after the batch (axis 0), which stays first."""

    def __init__(self, dims: tuple[int, ...]):
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, *self.dims)  # (B, steps, features) -> (B, features, steps) for dims (2, 1)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class GlobalPool(nn.Module):
    def __init__(self, kind: str, rank: int):
        super().__init__()
        self.kind, self.rank = kind, rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2)  # (B, C, positions)
        return x.amax(dim=2) if self.kind == "max" else x.mean(dim=2)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, rank={self.rank}"


class Embedding(nn.Embedding):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.long())


class _RecurrentOutput:
    """Batch-first RNN that returns every step or the top layer's final state."""

    return_sequences: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, F)
        out, state = super().forward(x)
        if self.return_sequences:
            return out  # (B, T, dirs * H)
        h_n = state[0] if isinstance(state, tuple) else state  # (layers * dirs, B, H)
        dirs = 2 if self.bidirectional else 1
        return h_n[-dirs:].transpose(0, 1).reshape(x.shape[0], -1)  # (B, dirs * H)


class RNN(_RecurrentOutput, nn.RNN):
    pass


class LSTM(_RecurrentOutput, nn.LSTM):
    pass


class GRU(_RecurrentOutput, nn.GRU):
    pass


def recurrent_module(kind: str, input_size: int, args: dict) -> nn.Module:
    cls = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}[kind]
    module = cls(input_size, args["units"], num_layers=args["num_layers"], batch_first=True,
                 bidirectional=args["bidirectional"], dropout=args["dropout"] if args["num_layers"] > 1 else 0.0)
    module.return_sequences = args["return_sequences"]
    return module
