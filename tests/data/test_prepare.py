"""dlcli.data.prepare: what the trainer gets from loaded splits (here: data.subset)."""

from __future__ import annotations

import pytest
import torch

from dlcli.config import config_from_text
from tests.samples import prepared
from dlcli.errors import DataError

IMAGES = """
name: subset
seed: {seed}
model:
  input_shape: [3, 4, 4]
  layers: [flatten, {{dense: 3}}]
data: {{dataset: image_folder, path: {path}, test_path: {path}, val_split: 0, subset: {subset},
        test_subset: {subset}}}
trainer: {{device: cpu}}
"""


@pytest.fixture
def grouped(make_image_folder):
    """40 images of class a, then 30 of b, then 20 of c: stored class folder after class folder."""
    colours = {"a": (255, 0, 0), "b": (0, 255, 0), "c": (0, 0, 255)}
    return make_image_folder({name: [(4, 4, colour)] * count
                              for (name, colour), count in zip(colours.items(), (40, 30, 20))})


def _prepare(path, subset, seed=0):
    return prepared(config_from_text(IMAGES.format(path=path, subset=subset, seed=seed)), torch.device("cpu"))


def test_subset_draws_across_the_whole_set_not_the_first_samples(grouped):
    data = _prepare(grouped, 30)
    for split in (data.train, data.test):
        labels = split.y.tolist()
        assert len(labels) == 30 and labels == sorted(labels)  # stored order kept
        assert set(labels) == {0, 1, 2}  # the first 30 would all be class a
    assert _prepare(grouped, 30).train.y.tolist() == data.train.y.tolist()  # seeded
    assert any(_prepare(grouped, 30, seed=s).train.y.tolist() != data.train.y.tolist() for s in (1, 2, 3))


def test_subset_as_large_as_the_set_keeps_it_all(grouped):
    assert len(_prepare(grouped, 90).train) == len(_prepare(grouped, 1000).train) == 90


def test_subset_of_other_data_is_the_first_samples(make_npz):
    import numpy as np

    path = make_npz(x=np.arange(50, dtype=np.float32).reshape(50, 1), y=np.arange(50) % 2,
                    x_test=np.arange(20, dtype=np.float32).reshape(20, 1), y_test=np.arange(20) % 2)
    cfg = config_from_text(f"""
model: {{input_shape: [1], layers: [{{dense: 2}}]}}
data: {{dataset: npz, path: {path}, val_split: 0, normalize: false, subset: 10, test_subset: 5}}
trainer: {{device: cpu}}
""")
    data = prepared(cfg, torch.device("cpu"))
    assert data.train.x.flatten().tolist() == list(range(10)) and data.test.x.flatten().tolist() == list(range(5))


EMBEDDING = """
name: ids
model: {{input_shape: [6], layers: [{{embedding: {{input_dim: 50, output_dim: 4}}}}, {{gru: 4}}, {{dense: 2}}]}}
data: {{dataset: npz, path: {path}, batch_size: 8}}
trainer: {{epochs: 1, device: cpu, progress: none, out_dir: {out}}}
"""


def test_whole_number_floats_are_ids_for_an_embedding(make_npz, tmp_path):
    """A CSV's columns come as floats: whole numbers are taken as the ids they are."""
    import numpy as np

    ids = np.arange(96).reshape(16, 6) % 50
    path = make_npz(x=ids.astype(np.float32), y=np.arange(16) % 2)
    data = prepared(config_from_text(EMBEDDING.format(path=path, out=tmp_path)), torch.device("cpu"))
    assert data.train.x.dtype == torch.int64 and data.train.x.tolist() == ids.tolist()
    assert data.normalization is None


def test_predict_refuses_ids_the_embedding_has_no_vector_for(make_npz, tmp_path):
    import numpy as np

    from dlcli.errors import DataError
    from dlcli.predict import predict
    from dlcli.train import train

    ids = np.arange(96).reshape(16, 6) % 50
    run = train(config_from_text(EMBEDDING.format(path=make_npz(x=ids, y=np.arange(16) % 2), out=tmp_path)))
    assert len(predict(run["run_dir"], [make_npz("fine.npz", x=ids[:2])]).rows) == 2
    ids[1, 4] = 60
    with pytest.raises(DataError, match=r"bad.npz: model.layers\[0\] \(embedding\) takes ids 0 to 49 \(input_dim: "
                                        r"50\), received 60 in sample 1 at position 4"):
        predict(run["run_dir"], [make_npz("bad.npz", x=ids[:2])])


SERIES = """
model: {{input_shape: [{window}, 1], layers: [flatten, {{dense: 1}}]}}
data: {{dataset: csv, path: {path}, target: next, window: {window}, val_split: {val_split}, normalize: false}}
loss: mse
trainer: {{device: cpu}}
"""


@pytest.fixture
def series(make_csv):
    """30 rows: column t is the row number, so a window's first value says where it starts."""
    return make_csv([["t", "next"]] + [[i, i + 1] for i in range(30)])


def test_val_split_of_windows_is_the_last_ones_after_a_gap(series):
    """26 windows of 4 rows: the last 6 (round(26 * 0.25)) validate, in order; the 4 before them
    are dropped, so that no training window reads or predicts a row a validation window reads."""
    cfg = config_from_text(SERIES.format(path=series, window=4, val_split=0.25))
    data = prepared(cfg, torch.device("cpu"))
    starts = {name: split.x[:, 0, 0].tolist() for name, split in (("train", data.train), ("val", data.val))}
    assert starts["val"] == [20.0, 21.0, 22.0, 23.0, 24.0, 25.0]
    assert starts["train"] == [float(i) for i in range(16)]
    last_training_row = 15 + 4  # window 15 reads rows 15..18 and predicts row 19
    assert last_training_row < starts["val"][0]
    assert prepared(cfg, torch.device("cpu")).val.x.tolist() == data.val.x.tolist()  # no seed involved


def test_val_split_of_windows_too_short_for_the_gap_is_a_clear_error(series):
    cfg = config_from_text(SERIES.format(path=series, window=10, val_split=0.5))
    with pytest.raises(DataError, match=r"data\.val_split: 0\.5 of 20 samples leaves 10 for validation and 0 for "
                                        r"training \(after dropping the 10 windows between them, which share rows "
                                        r"with both: data\.window: 10\); both need at least 1"):
        prepared(cfg, torch.device("cpu"))


def test_val_split_of_other_data_is_the_seeded_random_holdout(make_npz):
    """Unchanged for data that is not windows over time: the same samples as before."""
    import numpy as np

    path = make_npz(x=np.arange(40, dtype=np.float32).reshape(40, 1), y=np.arange(40) % 2)
    cfg = config_from_text(f"""
seed: 7
model: {{input_shape: [1], layers: [{{dense: 2}}]}}
data: {{dataset: npz, path: {path}, val_split: 0.25, normalize: false}}
trainer: {{device: cpu}}
""")
    data = prepared(cfg, torch.device("cpu"))
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(7))
    assert data.val.x.flatten().tolist() == perm[:10].float().tolist()
    assert data.train.x.flatten().tolist() == perm[10:].float().tolist()


def test_split_seed_fixes_the_data_s_random_choices_across_run_seeds(make_npz, grouped):
    """A seed sweep compares runs on one validation split and one image-folder sample when
    data.split_seed is set; left at null, each seed draws its own (as before)."""
    import numpy as np

    path = make_npz(x=np.arange(40, dtype=np.float32).reshape(40, 1), y=np.arange(40) % 2)
    text = """
seed: {seed}
model: {{input_shape: [1], layers: [{{dense: 2}}]}}
data: {{dataset: npz, path: {path}, val_split: 0.25, normalize: false, split_seed: {split}}}
trainer: {{device: cpu}}
"""

    def val(seed, split):
        data = prepared(config_from_text(text.format(seed=seed, path=path, split=split)), torch.device("cpu"))
        return data.val.x.flatten().tolist()

    assert val(1, 5) == val(2, 5) == val(5, "null") != val(6, "null")
    fixed = [prepared(config_from_text(IMAGES.format(path=grouped, subset=30, seed=seed), "images.yaml",
                                           ["data.split_seed=4"]), torch.device("cpu"))
             for seed in (0, 1)]
    drawn = [_prepare(grouped, 30, seed) for seed in (0, 1)]  # no split_seed: each seed its own sample
    assert not torch.equal(drawn[0].train.x, drawn[1].train.x)
    assert torch.equal(fixed[0].train.x, fixed[1].train.x) and torch.equal(fixed[0].test.x, fixed[1].test.x)


VALIDATION_DATA = """
name: xval
model: {{input_shape: [3], layers: [{{dense: 2}}]}}
data: {{dataset: npz, path: {path}, batch_size: 8, val_split: {val_split}, subset: 10}}
trainer: {{epochs: 1, device: cpu, progress: none, out_dir: {out}}}
"""


@pytest.fixture
def with_x_val(make_npz):
    """16 training samples and 6 validation samples (x_val, y_val: Keras's validation_data)."""
    import numpy as np

    rng = np.random.default_rng(0)
    return make_npz(x=rng.random((16, 3)), y=np.arange(16) % 2, x_val=rng.random((6, 3)), y_val=np.arange(6) % 2)


def test_npz_x_val_is_the_validation_split_of_training(with_x_val, tmp_path):
    from dlcli.train import train

    cfg = config_from_text(VALIDATION_DATA.format(path=with_x_val, val_split=0, out=tmp_path))
    data = prepared(cfg, torch.device("cpu"))
    assert len(data.train) == 10 and len(data.val) == 6  # data.subset leaves the named split whole
    summary = train(cfg)
    assert summary["monitor"] == "val_loss" and summary["best"] is not None  # validated every epoch


def test_npz_x_val_and_val_split_together_are_refused(with_x_val, tmp_path):
    cfg = config_from_text(VALIDATION_DATA.format(path=with_x_val, val_split=0.2, out=tmp_path))
    with pytest.raises(DataError, match=r"data\.npz: holds a validation split \(x_val, y_val\), and "
                                        r"data\.val_split: 0\.2 asks to hold out another from the training samples; "
                                        r"expected one validation split: set data\.val_split: 0 to validate on "
                                        r"x_val, y_val, or remove them"):
        prepared(cfg, torch.device("cpu"))


def test_monitoring_val_loss_waits_for_the_file_to_say_whether_it_names_a_validation_split(with_x_val, make_npz,
                                                                                          tmp_path):
    """Validation cannot see x_val in an .npz, so it lets trainer.monitor: val_loss through; the
    trainer refuses it where the file names no validation split."""
    import numpy as np

    from dlcli.errors import RunError
    from dlcli.train import train

    def config(path):
        return config_from_text(VALIDATION_DATA.format(path=path, val_split=0, out=tmp_path), "xval.yaml",
                                ["trainer.monitor=val_loss"])

    assert train(config(with_x_val))["monitor"] == "val_loss"
    plain = make_npz("plain.npz", x=np.random.rand(16, 3), y=np.arange(16) % 2)
    with pytest.raises(RunError, match=r"trainer\.monitor: val_loss needs validation data, and npz .*plain\.npz "
                                       r"names none \(no x_val, y_val\); set data\.val_split \(e\.g\. 0\.1\)"):
        train(config(plain))


def test_integer_targets_of_a_regression_are_no_classes(make_npz):
    """Prices in whole dollars under mse: the checkpoint must not carry 36,665 class names."""
    import numpy as np

    path = make_npz(x=np.random.rand(20, 3), y=np.arange(20) * 1000 + 5000)
    cfg = config_from_text(f"model: {{input_shape: [3], layers: [{{dense: 1}}]}}\n"
                           f"data: {{dataset: npz, path: {path}}}\nloss: mse\n")
    data = prepared(cfg, torch.device("cpu"))
    assert data.num_classes is None and data.class_names is None
    assert data.train.y.dtype == torch.float32 and data.train.y.flatten()[:2].tolist() == [5000.0, 6000.0]


# ---- holding data on the GPU (the decisions are made on the CPU; the copies need a GPU) ----

def test_gpu_residency_counts_the_float32_copy_a_uint8_image_set_becomes(monkeypatch):
    """60,000 MNIST images are 47 MB as uint8 but 188 MB on the device (normalized once, float32):
    with 300 MB free they do not fit in half of it."""
    from dlcli.data.prepare import Split, resident_bytes, resident_device

    images = Split(torch.zeros(60000, 1, 28, 28, dtype=torch.uint8), torch.zeros(60000, dtype=torch.uint8))
    assert resident_bytes(images) == 60000 * 784 * 4 + 60000 * 8
    ids = Split(torch.zeros(10, 6, dtype=torch.int32), torch.zeros(10, dtype=torch.int64))
    assert resident_bytes(ids) == 10 * 6 * 4 + 10 * 8  # integer ids are held as stored
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (300 * 2**20, 80 * 2**30))
    assert resident_device([images], cuda) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (400 * 2**20, 80 * 2**30))
    assert resident_device([images], cuda) == cuda


def test_normalizing_chunk_by_chunk_into_one_tensor_gives_the_values_of_the_whole_set_at_once():
    from dlcli.data.prepare import normalized_on

    x = torch.randint(0, 256, (20001, 1, 5, 5), dtype=torch.uint8)
    scale, shift = torch.tensor([1 / 77.5]).view(1, 1, 1), torch.tensor([-0.4242]).view(1, 1, 1)
    out = normalized_on(torch.device("cpu"), x, scale, shift)
    assert out.dtype == torch.float32 and torch.equal(out, torch.addcmul(shift, x.float(), scale))
    assert torch.equal(normalized_on(torch.device("cpu"), x, None, None), x.float())


def test_data_that_no_longer_fit_on_the_gpu_are_held_on_the_cpu(make_npz, monkeypatch):
    """The device filled up between measuring it and copying (another process): the copy runs out
    of memory and the data stay in CPU memory, instead of a traceback before training starts."""
    import numpy as np

    import dlcli.data.prepare as prepare

    path = make_npz(x=np.ones((40, 3), dtype=np.float32), y=np.arange(40) % 2)
    cfg = config_from_text(f"""
model: {{input_shape: [3], layers: [{{dense: 2}}]}}
data: {{dataset: npz, path: {path}, val_split: 0.25}}
trainer: {{device: cpu}}
""")
    homes = []
    copy = prepare.to_device_split

    def full_gpu(split, normalization, view, device, home, out_shape, task):
        homes.append(home.type)
        if home.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return copy(split, normalization, view, device, home, out_shape, task)

    monkeypatch.setattr(prepare, "resident_device", lambda splits, device: torch.device("cuda"))
    monkeypatch.setattr(prepare, "to_device_split", full_gpu)
    data = prepared(cfg, torch.device("cpu"))
    assert homes == ["cuda", "cpu", "cpu"] and data.train.home.type == data.val.home.type == "cpu"
    assert len(data.train) == 30 and len(data.val) == 10
