"""Recurrent layers over (steps, features) sequences, batch first."""

from __future__ import annotations

from dlcli.layers._registry import LAYERS, RECURRENT, ShapeError, fmt_shape
from dlcli.registry import Arg, Bool, Float, Int


def _rnn_shape(name: str):
    def infer(args, shape):
        if len(shape) != 2:
            hint = ("an image needs model.input_shape [height, width] (each row one step) or a "
                    "`reshape: {target_shape: [steps, features]}` first" if len(shape) == 3 else
                    "a sequence needs (steps, features); after an embedding or another rnn with "
                    "return_sequences: true")
            raise ShapeError(f"{name} expects a sequence (steps, features), received {fmt_shape(shape)}; {hint}")
        width = args["units"] * (2 if args["bidirectional"] else 1)
        return (shape[0], width) if args["return_sequences"] else (width,)

    return infer


_RNN_ARGS = (Arg("units", Int(min=1), help="size of the hidden state"),
             Arg("num_layers", Int(min=1, max=16), 1, "stacked recurrent layers"),
             Arg("bidirectional", Bool(), False, "also run the sequence backwards; outputs 2 * units"),
             Arg("return_sequences", Bool(), False, "output every step (steps, units) instead of the last"),
             Arg("dropout", Float(min=0.0, max=1.0, max_open=True), 0.0,
                 "dropout between stacked layers (num_layers > 1), as in torch; not Keras's dropout on the inputs"))


def _dropout_needs_stacked_layers(args: dict) -> list:
    """torch's dropout acts between stacked layers only: with one layer it would do nothing,
    and a Keras user's LSTM(dropout=0.2) would silently lose its regularization."""
    if args["dropout"] == 0 or args["num_layers"] > 1:
        return []
    return [("dropout", f"acts only between stacked layers (num_layers > 1), as torch's does, so with one layer "
                        f"it would do nothing; received: dropout {args['dropout']:g} with num_layers 1. HINT: for "
                        f"Keras's dropout on the inputs put `- dropout: {args['dropout']:g}` before this layer")]


def _build_rnn(kind: str):
    def build(args, shape):
        from dlcli.layers._modules import recurrent_module

        return recurrent_module(kind, shape[1], args)

    return build


for _name, _kind, _aliases, _help in (
        ("simple_rnn", "RNN", ("SimpleRNN", "rnn"), "Elman RNN with tanh"),
        ("lstm", "LSTM", ("LSTM",), "long short-term memory"),
        ("gru", "GRU", ("GRU",), "gated recurrent unit")):
    LAYERS.register(_name, help=f"{_help} over (steps, features)", family="recurrent", aliases=_aliases,
                    infer=_rnn_shape(_name), args=_RNN_ARGS, guard=_dropout_needs_stacked_layers,
                    example=f"- {_name}: {{units: 128}}", layout=RECURRENT)(_build_rnn(_kind))

LAYERS.elsewhere("Bidirectional", "give the recurrent layer bidirectional: true instead, e.g. "
                                  "`- lstm: {units: 64, bidirectional: true}` for Keras's Bidirectional(LSTM(64))")
