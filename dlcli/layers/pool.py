"""Pooling: windowed max/average pooling and global pooling (channels first)."""

from __future__ import annotations

from dlcli.layers._registry import CHANNELS_FIRST, CHANNELS_FIRST_2D, LAYERS, ShapeError, expect_rank, fmt_shape
from dlcli.registry import Arg, IntTuple, Optional, Str


def _pool_length(length: int, k: int, s: int, padding: str) -> int:
    if padding == "same":  # as Keras: padded so that every position starts a window every s steps
        return -(-length // s)
    return (length - k) // s + 1


def _ceil_mode_length(length: int, k: int, s: int) -> int:
    """torch's output length with ceil_mode=True and no padding (0: it refuses the window)."""
    if length < k:
        return 0
    n = -(-(length - k) // s) + 1
    return n - 1 if n > 1 and (n - 1) * s >= length else n  # no window starts past the end


def _pool_shape(kind: str, rank: int):
    what = "(channels, length)" if rank == 1 else "(channels, height, width)"

    def infer(args, shape):
        name = f"{kind}pool{rank}d"
        hint = "a pooling after a flatten or dense? pooling needs the spatial axes" if len(shape) < rank + 1 else ""
        expect_rank(name, shape, (rank + 1,), what, hint)
        strides = args["strides"] or args["pool_size"]
        out = []
        for axis, length in enumerate(shape[1:]):
            n = _pool_length(length, args["pool_size"][axis], strides[axis], args["padding"])
            if n < 1:
                raise ShapeError(f"{name} window {fmt_shape(args['pool_size'])} is larger than its input "
                                 f"{fmt_shape(shape)}")
            out.append(n)
        return (shape[0], *out)

    return infer


def _pool_args(rank: int):
    return (Arg("pool_size", IntTuple(rank), 2, "window size: an int or one per spatial axis"),
            Arg("strides", Optional(IntTuple(rank)), None, "step of the window (default: pool_size)"),
            Arg("padding", Str(("valid", "same")), "valid",
                "valid (windows inside the input) or same (padded as Keras does: output ceil(size / strides); "
                "the padding never wins a max and does not count in an average)"))


def _build_pool(kind: str, rank: int):
    def build(args, shape):
        import torch.nn as nn

        from dlcli.layers._modules import PaddedPool
        from dlcli.layers.conv import same_padding

        cls = getattr(nn, f"{'Max' if kind == 'max' else 'Avg'}Pool{rank}d")
        sizes, strides = args["pool_size"], args["strides"] or args["pool_size"]
        if args["padding"] == "valid":
            return cls(sizes, stride=strides)
        lengths = shape[1:]
        pads = [same_padding(n, k, s) for n, k, s in zip(lengths, sizes, strides)]
        if all(before == 0 and _ceil_mode_length(n, k, s) == _pool_length(n, k, s, "same")
               for (before, _), n, k, s in zip(pads, lengths, sizes, strides)):
            return cls(sizes, stride=strides, ceil_mode=True)  # the same windows: the last ones cut at the end
        if all(before == after for before, after in pads):
            extra = {} if kind == "max" else {"count_include_pad": False}
            return cls(sizes, stride=strides, padding=tuple(before for before, _ in pads), **extra)
        return PaddedPool(cls(sizes, stride=strides), pads, kind)

    return build


def _on_sequence(rank: int, does: str) -> dict:
    """The layout declaration of a pool: a 1-D one says what it would do to a sequence."""
    return {"layout": CHANNELS_FIRST, "on_sequence": does} if rank == 1 else {"layout": CHANNELS_FIRST_2D}


for _kind, _keras, _verb in (("max", "MaxPooling", "take the maximum of"), ("avg", "AveragePooling", "average")):
    for _rank in (1, 2):
        _name = f"{_kind}pool{_rank}d"
        _aliases = (f"{_keras}{_rank}D",) + ((f"MaxPool{_rank}D", f"max_pooling{_rank}d") if _kind == "max"
                                             else (f"AvgPool{_rank}D", f"average_pooling{_rank}d"))
        _does = (f"would {_verb} windows of {{pool_size[0]}} along the {{features}} features of each of the "
                 f"{{steps}} steps, where Keras's {_keras}1D pools along the steps")
        LAYERS.register(_name, help=f"{'maximum' if _kind == 'max' else 'average'} over each {_rank}-D window",
                        family="pool", aliases=_aliases, infer=_pool_shape(_kind, _rank), args=_pool_args(_rank),
                        example=f"- {_name}: {{pool_size: 2}}", takes_activation=_kind == "max",
                        **_on_sequence(_rank, _does))(_build_pool(_kind, _rank))


def _global_shape(name: str, rank: int):
    def infer(args, shape):
        what = "(channels, length)" if rank == 1 else "(channels, height, width)"
        expect_rank(name, shape, (rank + 1,), what)
        return (shape[0],)

    return infer


def _build_global(kind: str, rank: int):
    def build(args, shape):
        from dlcli.layers._modules import GlobalPool

        return GlobalPool(kind, rank)

    return build


for _kind, _keras, _verb in (("max", "GlobalMaxPooling", "take the maximum"),
                             ("avg", "GlobalAveragePooling", "average")):
    for _rank in (1, 2):
        _name = f"global_{_kind}pool{_rank}d"
        _does = (f"would {_verb} over the {{features}} features of each of the {{steps}} steps, giving ({{steps}},), "
                 f"where Keras's {_keras}1D works over the steps, giving ({{features}},)")
        LAYERS.register(_name, help=f"{'maximum' if _kind == 'max' else 'average'} over all positions: "
                                    f"one value per channel", family="pool",
                        aliases=(f"{_keras}{_rank}D",), infer=_global_shape(_name, _rank),
                        example=f"- {_name}",
                        **_on_sequence(_rank, _does))(_build_global(_kind, _rank))
