"""dlcli.layers: every registered layer (and every alias) builds, runs, and has the shape
its infer function promises. Parametrized over the registry itself."""

from __future__ import annotations

import pytest
import torch
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dlcli.config import resolve_config
from dlcli.errors import ConfigError
from dlcli.layers import CHANNELS_FIRST, LAYERS, ShapeError
from dlcli.model import build_model, plan_model
from dlcli.registry import check_args

# Sample shapes of each rank that MNIST fits (image, rows as steps, flat), so every layer can be
# checked inside a whole validated config. A layer must accept at least one of them.
CANDIDATE_SHAPES = [(1, 28, 28), (28, 28), (784,)]
BATCH = 3


def example_layer(entry) -> tuple[object, dict]:
    """The entry's own `example` (what `dlcli list-layers NAME` shows): (YAML item, resolved args)."""
    (item,) = yaml.safe_load(entry.example)
    given = {} if isinstance(item, str) else next(iter(item.values()))
    if not isinstance(given, dict):
        given = {entry.args[0].name: given}
    args, problems = check_args(entry, given)
    assert not problems, f"the example of {entry.name} is invalid: {problems}"
    return item, args


def accepted_shapes(entry) -> list[tuple]:
    _, args = example_layer(entry)
    shapes = []
    for shape in CANDIDATE_SHAPES:
        try:
            out = entry.infer(args, shape)
        except ShapeError:
            continue
        if all(n >= 1 for n in out):
            shapes.append(shape)
    return shapes


def _cases():
    for entry in LAYERS:
        shapes = accepted_shapes(entry)
        for shape in shapes:
            yield pytest.param(entry.name, entry.name, shape, id=f"{entry.name}-{'x'.join(map(str, shape))}")
        for alias in entry.aliases:  # an alias resolves to the same entry: one shape is enough
            yield pytest.param(alias, entry.name, shapes[0] if shapes else None, id=f"{alias}")


def config_with_layer(written: str, canonical: str, shape: tuple) -> dict:
    """A whole resolved config: the layer as its example writes it (under `written`), then flatten, dense."""
    item, _ = example_layer(LAYERS.get(canonical))
    layer = written if isinstance(item, str) else {written: next(iter(item.values()))}
    data = {"model": {"input_shape": list(shape), "layers": [layer, "flatten", {"dense": {"units": 10}}]},
            "data": "mnist"}
    # guards off: mnist is only a stand-in for data of `shape` here (as [28, 28] it would be images read row
    # by row, a sequence that channels-first 1-D layers are refused on)
    return resolve_config(data, {}, f"<{written}>", guards=False)


def sample_input(entry, args: dict, shape: tuple) -> torch.Tensor:
    if entry.meta.get("int_input"):
        return torch.randint(0, args["input_dim"], (BATCH, *shape))
    return torch.randn(BATCH, *shape)


@pytest.mark.parametrize("entry", LAYERS.entries(), ids=LAYERS.names())
def test_every_layer_fits_a_sample_shape(entry):
    assert entry.family, f"{entry.name} has no family"
    assert entry.infer is not None and entry.example.startswith(f"- {entry.name}")
    assert accepted_shapes(entry), f"{entry.name} takes none of {CANDIDATE_SHAPES}: add a shape to the test"


@pytest.mark.parametrize("written, canonical, shape", list(_cases()))
def test_layer_builds_runs_and_matches_its_inferred_shape(written, canonical, shape):
    torch.manual_seed(0)
    cfg = config_with_layer(written, canonical, shape)
    layer_cfg = cfg["model"]["layers"][0]
    assert layer_cfg["type"] == canonical
    model = build_model(cfg)
    planned = [(None, None, layer.input_shape, layer.output_shape) for layer in plan_model(cfg).layers]
    assert len(model) == len(planned) == 3
    x = sample_input(LAYERS.get(canonical), layer_cfg, shape)
    with torch.no_grad():
        for module, (_, _, shape_in, shape_out) in zip(model, planned):
            assert tuple(x.shape[1:]) == shape_in
            x = module(x)
            assert tuple(x.shape) == (BATCH, *shape_out), f"{module}: inferred {shape_out}, got {tuple(x.shape)}"
    assert torch.isfinite(x).all()


@pytest.mark.parametrize("shape", [(4,), (3, 5), (2, 5, 5), (2, 3, 4, 4)])
def test_batchnorm_every_rank(shape):
    entry = LAYERS.get("batchnorm")
    args, _ = check_args(entry, {})
    module = entry.build(args, shape)
    out = module(torch.randn(BATCH, *shape))
    assert tuple(out.shape[1:]) == entry.infer(args, shape)


def test_final_state_of_a_bidirectional_stack():
    entry = LAYERS.get("gru")
    args, _ = check_args(entry, {"units": 6, "num_layers": 2, "bidirectional": True, "dropout": 0.1})
    assert entry.infer(args, (7, 5)) == (12,)
    out = entry.build(args, (7, 5))(torch.randn(BATCH, 7, 5))
    assert tuple(out.shape) == (BATCH, 12)
    args["return_sequences"] = True
    out = entry.build(args, (7, 5))(torch.randn(BATCH, 7, 5))
    assert tuple(out.shape) == (BATCH, 7, 12) == (BATCH, *entry.infer(args, (7, 5)))


def test_reshape_of_the_wrong_size():
    entry = LAYERS.get("reshape")
    args, _ = check_args(entry, {"target_shape": [5, 5]})
    with pytest.raises(ShapeError, match=r"reshape cannot turn \(1, 28, 28\) \(784 values\) into \(5, 5\) "
                                         r"\(25 values\)"):
        entry.infer(args, (1, 28, 28))


def test_embedding_needs_ids():
    entry = LAYERS.get("embedding")
    args, _ = check_args(entry, {"input_dim": 10, "output_dim": 4})
    with pytest.raises(ShapeError, match=r"embedding expects a sequence of integer ids \(steps,\)"):
        entry.infer(args, (28, 28))


@pytest.mark.parametrize("shape, dims", [((7, 5), [2, 1]), ((7, 5), [1, 2]), ((2, 3, 4), [3, 1, 2]),
                                         ((2, 3, 4, 5), [4, 2, 3, 1]), ((6,), [1])])
def test_permute_is_torch_permute_after_the_batch_axis(shape, dims):
    entry = LAYERS.get("permute")
    args, problems = check_args(entry, {"dims": dims})
    assert not problems
    x = torch.randn(BATCH, *shape)
    out = entry.build(args, shape)(x)
    expected = torch.permute(x, (0, *dims))  # Keras numbers the sample axes from 1: the tensor's own numbers
    assert tuple(out.shape[1:]) == entry.infer(args, shape) == tuple(shape[d - 1] for d in dims)
    assert torch.equal(out, expected)


def test_permute_of_the_wrong_rank():
    entry = LAYERS.get("permute")
    args, _ = check_args(entry, {"dims": [2, 1]})
    with pytest.raises(ShapeError, match=r"permute dims \[2, 1\] orders 2 axes but its input \(1, 28, 28\) has 3; "
                                         r"expected a permutation of 1..3 \(the batch axis is not numbered\)"):
        entry.infer(args, (1, 28, 28))


# Keras's 1-D layers are channels-last; these dlcli ones are channels-first, as in PyTorch.
CHANNELS_FIRST_1D = {"conv1d", "maxpool1d", "avgpool1d", "global_maxpool1d", "global_avgpool1d", "batchnorm"}


def test_the_channels_first_1d_layers_declare_it_and_what_they_would_do_to_a_sequence():
    declared = {entry.name for entry in LAYERS if entry.meta.get("layout") == CHANNELS_FIRST}
    assert declared == CHANNELS_FIRST_1D
    for name in declared:
        _, args = example_layer(LAYERS.get(name))
        does = LAYERS.get(name).meta["on_sequence"].format(steps=28, features=16, **args)
        assert does.startswith("would ") and "Keras's" in does and "the steps" in does


def test_one_layout_fact_says_which_layers_read_channels():
    """`layout` alone says it (there is no second `channels_first` flag to keep in step): the 1-D
    layers and batchnorm, and the 2-D convolution and pools, on which a channels-last input is blamed."""
    from dlcli.layers import reads_channels

    assert "channels_first" not in LAYERS.meta_keys
    assert {entry.name for entry in LAYERS if reads_channels(entry)} == CHANNELS_FIRST_1D | {
        "conv2d", "maxpool2d", "avgpool2d", "global_maxpool2d", "global_avgpool2d"}


@pytest.mark.parametrize("name", sorted(CHANNELS_FIRST_1D))
def test_a_channels_first_layer_on_a_sequence_is_refused_and_a_permute_fixes_it(name):
    def config(*between):
        item, _ = example_layer(LAYERS.get(name))
        layers = [{"lstm": {"units": 16, "return_sequences": True}}, *between, item, "flatten", {"dense": 10}]
        return {"model": {"input_shape": [28, 28], "layers": layers}, "data": "mnist"}

    with pytest.raises(ConfigError, match=rf"model.layers\[1\]: {name}: its input \(28, 16\) is a sequence "
                                          rf"\(steps, features\), from the lstm at model.layers\[0\] "
                                          rf"\(return_sequences\), but {name} is channels-first, .* HINT: put "
                                          rf"`- permute: \[2, 1\]` before it, to give it \(16, 28\)"):
        resolve_config(config(), {}, "<sequence>")
    cfg = resolve_config(config({"permute": [2, 1]}), {}, "<sequence>")
    x = torch.randn(BATCH, 28, 28)
    assert tuple(build_model(cfg).eval()(x).shape) == (BATCH, 10)


# --- shape inference against torch, over many argument combinations ------------------------

def assert_inference_matches_torch(entry, args: dict, shape: tuple) -> None:
    """The inferred output shape is the one torch gives (arguments that fit no shape are skipped)."""
    try:
        expected = entry.infer(args, shape)
    except ShapeError:
        assume(False)
    out = entry.build(args, shape)(torch.randn(2, *shape))
    assert tuple(out.shape[1:]) == tuple(expected)


@settings(max_examples=80, deadline=None)
@given(rank=st.sampled_from([1, 2]), length=st.integers(1, 12), channels=st.integers(1, 3),
       kernel=st.integers(1, 5), stride=st.integers(1, 3), dilation=st.integers(1, 2),
       padding=st.sampled_from(["valid", "same", 0, 1, 2]))
def test_conv_shape_inference_matches_torch(rank, length, channels, kernel, stride, dilation, padding):
    entry = LAYERS.get(f"conv{rank}d")
    args, problems = check_args(entry, {"filters": 2, "kernel_size": kernel, "strides": stride,
                                        "dilation_rate": dilation, "padding": padding})
    assert not problems
    shape = (channels, *[length + i for i in range(rank)])  # unequal sides catch swapped axes
    assert_inference_matches_torch(entry, args, shape)


@settings(max_examples=80, deadline=None)
@given(kind=st.sampled_from(["max", "avg"]), rank=st.sampled_from([1, 2]), length=st.integers(1, 12),
       pool=st.integers(1, 4), stride=st.one_of(st.none(), st.integers(1, 4)),
       padding=st.sampled_from(["valid", "same"]))
def test_pool_shape_inference_matches_torch(kind, rank, length, pool, stride, padding):
    entry = LAYERS.get(f"{kind}pool{rank}d")
    args, problems = check_args(entry, {"pool_size": pool, "strides": stride, "padding": padding})
    assert not problems
    assert_inference_matches_torch(entry, args, (2, *[length + i for i in range(rank)]))


def keras_same_pool(x, kind: str, sizes: tuple, strides: tuple):
    """Keras's pooling with padding same, by its definition: outputs ceil(n / s) per axis, each
    window at o * s - before (before: half the total padding, rounded down) and cut to the
    input, the max or the mean of what it covers."""
    import itertools
    import math

    import numpy as np

    x = np.asarray(x, dtype=np.float64)  # (B, C, *spatial)
    spatial = x.shape[2:]
    outs = [math.ceil(n / s) for n, s in zip(spatial, strides)]
    befores = [max((o - 1) * s + k - n, 0) // 2 for o, s, k, n in zip(outs, strides, sizes, spatial)]
    y = np.empty(x.shape[:2] + tuple(outs))
    for pos in itertools.product(*[range(o) for o in outs]):
        window = tuple(slice(max(o * s - b, 0), min(o * s - b + k, n))
                       for o, s, b, k, n in zip(pos, strides, befores, sizes, spatial))
        values = x[(slice(None), slice(None), *window)].reshape(*x.shape[:2], -1)
        y[(slice(None), slice(None), *pos)] = values.max(-1) if kind == "max" else values.mean(-1)
    return y


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(["max", "avg"]), rank=st.sampled_from([1, 2]), length=st.integers(1, 9),
       pool=st.integers(1, 4), stride=st.one_of(st.none(), st.integers(1, 4)))
def test_same_pooling_is_keras_same_pooling(kind, rank, length, pool, stride):
    """Values, not only shapes: torch's ceil mode and its own padding agree with Keras only for
    some windows, and the rest go through PaddedPool."""
    entry = LAYERS.get(f"{kind}pool{rank}d")
    args, problems = check_args(entry, {"pool_size": pool, "strides": stride, "padding": "same"})
    assert not problems
    shape = (2, *[length + i for i in range(rank)])
    x = torch.randn(3, *shape, dtype=torch.float64)
    out = entry.build(args, shape)(x)
    expected = keras_same_pool(x, kind, args["pool_size"], args["strides"] or args["pool_size"])
    assert tuple(out.shape[1:]) == entry.infer(args, shape) == expected.shape[1:]
    assert torch.allclose(out, torch.from_numpy(expected), rtol=1e-12, atol=1e-12)


def test_padded_max_pool_after_a_moved_activation_is_exact():
    """trainer.fuse moves a conv's activation after its max-pool: exact with -inf padding too,
    since every window covers at least one real value."""
    cfg_text = """
model:
  input_shape: [1, 7, 6]
  layers:
    - conv2d: {filters: 3, kernel_size: 2, activation: relu}
    - maxpool2d: {pool_size: 3, strides: 2, padding: same}
    - flatten
    - dense: 2
data: {dataset: npz, path: unused.npz}
"""
    from dlcli.config import config_from_text
    from dlcli.layers._modules import ActivatedPool, PaddedPool

    cfg = config_from_text(cfg_text)
    torch.manual_seed(0)
    plain = build_model(cfg).double()
    fused = build_model(cfg, fuse=True).double()
    fused.load_state_dict(plain.state_dict())
    assert isinstance(fused.maxpool2d, ActivatedPool) and isinstance(fused.maxpool2d.pool, PaddedPool)
    x = torch.randn(4, 1, 7, 6, dtype=torch.float64, requires_grad=True)
    a, b = plain(x), fused(x)
    assert torch.equal(a, b)
    (ga,) = torch.autograd.grad(a.square().sum(), x)
    (gb,) = torch.autograd.grad(b.square().sum(), x)
    assert torch.equal(ga, gb)
