"""Data sources, caching, stratified splits, bad inputs and the test-split guard."""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest
from conftest import make_arrays
from PIL import Image

from search import data
from search.data import CLASSES, DataError, resolve_source, stratified_split
from search.errors import TestSplitGuardError

# --- splits --------------------------------------------------------------------------------


def test_split_is_stratified_disjoint_and_complete():
    y = np.repeat(np.arange(10), 5000)
    tr, va = stratified_split(y, val_size=5000, seed=0)
    assert len(tr) == 45000 and len(va) == 5000
    assert np.bincount(y[va]).tolist() == [500] * 10
    assert np.bincount(y[tr]).tolist() == [4500] * 10
    assert not set(tr) & set(va)
    assert sorted(np.concatenate([tr, va])) == list(range(50000))


def test_split_is_deterministic_and_seeded():
    y = np.repeat(np.arange(10), 300)
    a = stratified_split(y, val_size=500, train_size=1000, seed=3)
    b = stratified_split(y, val_size=500, train_size=1000, seed=3)
    c = stratified_split(y, val_size=500, train_size=1000, seed=4)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(np.sort(a[1]), np.sort(c[1]))


def test_subsets_keep_the_validation_images_fixed():
    y = np.repeat(np.arange(10), 300)
    _, va_big = stratified_split(y, val_size=1000, seed=1)
    tr_small, va = stratified_split(y, val_size=1000, train_size=200, seed=1)
    _, va_small = stratified_split(y, val_size=400, seed=1)
    assert set(va) == set(va_big)  # the training subset does not move the validation set
    assert set(va_small) <= set(va_big)  # a smaller validation set is a subset
    assert np.bincount(y[tr_small]).tolist() == [20] * 10
    assert not set(tr_small) & set(va)


def test_uneven_sizes_are_allocated_exactly():
    y = np.concatenate([np.repeat(np.arange(10), 30), [0, 0, 1]])
    tr, va = stratified_split(y, val_size=7, train_size=33, seed=0)
    assert len(va) == 7 and len(tr) == 33
    assert np.bincount(y[tr], minlength=10).max() - np.bincount(y[tr], minlength=10).min() <= 1


@pytest.mark.parametrize(
    "kw", [dict(val_size=-1), dict(val_size=300), dict(val_size=10, train_size=291)]
)
def test_split_sizes_out_of_range_are_refused(kw):
    with pytest.raises(DataError):
        stratified_split(np.repeat(np.arange(10), 30), **kw)


# --- sources -------------------------------------------------------------------------------


def _image_bytes(img: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt)
    return buf.getvalue()


def write_folder(root, x, y, split="train", fmt="PNG"):
    for i, (img, label) in enumerate(zip(x, y)):
        d = root / split / CLASSES[label]
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:04d}.{fmt.lower()}").write_bytes(_image_bytes(img, fmt))


def write_zip(path, x, y, split="train", fmt="JPEG"):
    with zipfile.ZipFile(path, "w") as zf:
        for i, (img, label) in enumerate(zip(x, y)):
            zf.writestr(f"{split}/{CLASSES[label]}/{i:04d}.jpg", _image_bytes(img, fmt))


def _sorted_by_label(x, y):
    order = np.argsort(y, kind="stable")
    return x[order], y[order]


def test_npz_source(synthetic_npz):
    src = resolve_source(synthetic_npz)
    assert src.kind == "npz"
    x, y = data.load_train(src)
    ref = np.load(synthetic_npz)
    assert np.array_equal(x, ref["x_train"]) and np.array_equal(y, ref["y_train"])
    xt, yt = data.load_test(src)
    assert np.array_equal(xt, ref["x_test"])


def test_npz_labels_shaped_n_by_1_as_keras_gives_them(tmp_path):
    x, y, xt, yt = make_arrays(20, 10)
    p = tmp_path / "k.npz"
    np.savez(p, x_train=x, y_train=y[:, None], x_test=xt, y_test=yt[:, None])
    assert data.load_train(resolve_source(p))[1].shape == (20,)


def test_png_folder_source_is_lossless(tmp_path):
    x, y, _, _ = make_arrays(30, 10)
    write_folder(tmp_path / "imgs", x, y)
    src = resolve_source(tmp_path / "imgs")
    assert src.kind == "folder"
    xs, ys = data.load_train(src)
    ex, ey = _sorted_by_label(x, y)  # folders are read class by class
    assert np.array_equal(xs, ex) and np.array_equal(ys, ey)


def test_jpeg_zip_source(tmp_path):
    x, y, _, _ = make_arrays(30, 10)
    write_zip(tmp_path / "c.zip", x, y)
    src = resolve_source(tmp_path / "c.zip")
    assert src.kind == "zip"
    xs, ys = data.load_train(src)
    ex, ey = _sorted_by_label(x, y)
    jpeg = np.stack([np.asarray(Image.open(io.BytesIO(_image_bytes(i, "JPEG")))) for i in ex])
    assert np.array_equal(ys, ey)
    assert np.array_equal(xs, jpeg)  # exactly the pixels Pillow decodes


def test_zip_with_a_top_level_folder(tmp_path):
    x, y, _, _ = make_arrays(20, 10)
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as zf:
        for i, (img, label) in enumerate(zip(x, y)):
            zf.writestr(f"cifar10/train/{CLASSES[label]}/{i}.png", _image_bytes(img, "PNG"))
    assert len(data.load_train(resolve_source(tmp_path / "c.zip"))[0]) == 20


def test_batches_source(tmp_path):
    x, y, xt, yt = make_arrays(50, 10)
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for i in range(5):
        part = slice(i * 10, (i + 1) * 10)
        flat = x[part].transpose(0, 3, 1, 2).reshape(10, -1)
        with open(d / f"data_batch_{i + 1}", "wb") as f:
            pickle.dump({b"data": flat, b"labels": y[part].tolist()}, f)
    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": xt.transpose(0, 3, 1, 2).reshape(10, -1), b"labels": yt.tolist()}, f)
    src = resolve_source(tmp_path)  # the parent folder is found too
    assert src.kind == "batches"
    xs, ys = data.load_train(src)
    assert np.array_equal(xs, x) and np.array_equal(ys, y)
    assert np.array_equal(data.load_test(src)[0], xt)


def test_cache_is_used_and_invalidated_when_the_source_changes(synthetic_npz, monkeypatch):
    src = resolve_source(synthetic_npz)
    data.load_train(src)
    monkeypatch.setattr(data, "_from_npz", lambda *a: pytest.fail("decoded again"))
    x, _ = data.load_train(src)  # from the cache
    assert x.shape == (200, 32, 32, 3)
    monkeypatch.undo()
    x2, y2, xt, yt = make_arrays(40, 10, seed=1)
    np.savez(synthetic_npz, x_train=x2, y_train=y2, x_test=xt, y_test=yt)
    assert data.load_train(resolve_source(synthetic_npz))[0].shape == (40, 32, 32, 3)


def test_env_variable_names_the_source(synthetic_npz, monkeypatch):
    monkeypatch.setenv("CIFAR10_DATA", str(synthetic_npz))
    assert resolve_source(None).path == synthetic_npz
    assert resolve_source(None).kind == "npz"


# --- bad inputs: one clear message each, naming the path and the problem ---------------------


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match=r"nope.zip does not exist.*--data PATH"):
        resolve_source(tmp_path / "nope.zip")


def test_no_internet_says_how_to_point_at_a_local_copy(monkeypatch):
    import keras

    def offline():
        raise Exception(
            "URL fetch failure on https://www.cs.toronto.edu/: Name or service not known"
        )

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(
        DataError, match=r"no internet.*--data PATH or the environment variable CIFAR10_DATA"
    ):
        data.load_train(resolve_source(None))


def test_corrupt_zip(tmp_path):
    p = tmp_path / "bad.zip"
    p.write_bytes(b"PK\x03\x04 this is not really a zip" * 10)
    with pytest.raises(DataError, match=r"bad.zip.*corrupt or truncated"):
        data.load_train(resolve_source(p))


def test_truncated_zip(tmp_path):
    x, y, _, _ = make_arrays(30, 10)
    write_zip(tmp_path / "c.zip", x, y)
    raw = (tmp_path / "c.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"cut.zip.*corrupt or truncated"):
        data.load_train(resolve_source(tmp_path / "cut.zip"))


def test_damaged_member_in_a_zip(tmp_path):
    x, y, _, _ = make_arrays(30, 10)
    write_zip(tmp_path / "c.zip", x, y)
    raw = bytearray((tmp_path / "c.zip").read_bytes())
    raw[200:260] = b"\x00" * 60  # inside the first member's data: its CRC no longer matches
    (tmp_path / "c.zip").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"c.zip.*(corrupt|cannot be decoded)"):
        data.load_train(resolve_source(tmp_path / "c.zip"))


def test_class_folder_missing(tmp_path):
    x, y, _, _ = make_arrays(30, 10)
    keep = y != 3
    write_folder(tmp_path / "imgs", x[keep], y[keep])
    with pytest.raises(DataError, match=r"train/cat/ missing"):
        data.load_train(resolve_source(tmp_path / "imgs"))


def test_image_of_the_wrong_size_is_named(tmp_path):
    x, y, _, _ = make_arrays(20, 10)
    write_folder(tmp_path / "imgs", x, y)
    Image.new("RGB", (40, 32)).save(tmp_path / "imgs/train/dog/big.png")
    with pytest.raises(
        DataError, match=r"train/dog/big.png is 40x32 RGB; every image must be 32x32 RGB"
    ):
        data.load_train(resolve_source(tmp_path / "imgs"))


def test_grayscale_image_is_named(tmp_path):
    x, y, _, _ = make_arrays(20, 10)
    write_folder(tmp_path / "imgs", x, y)
    Image.new("L", (32, 32)).save(tmp_path / "imgs/train/frog/gray.png")
    with pytest.raises(DataError, match=r"train/frog/gray.png is 32x32 L"):
        data.load_train(resolve_source(tmp_path / "imgs"))


def test_file_that_is_not_an_image_is_named(tmp_path):
    x, y, _, _ = make_arrays(20, 10)
    write_folder(tmp_path / "imgs", x, y)
    (tmp_path / "imgs/train/ship/note.png").write_text("hello")
    with pytest.raises(DataError, match=r"train/ship/note.png cannot be decoded"):
        data.load_train(resolve_source(tmp_path / "imgs"))


def test_labels_out_of_range(tmp_path):
    x, y, xt, yt = make_arrays(20, 10)
    y[5] = 12
    p = tmp_path / "bad.npz"
    np.savez(p, x_train=x, y_train=y, x_test=xt, y_test=yt)
    with pytest.raises(
        DataError, match=r"bad.npz: 1 train label\(s\) out of range 0-9.*index 5.*12"
    ):
        data.load_train(resolve_source(p))


def test_npz_missing_arrays(tmp_path):
    p = tmp_path / "half.npz"
    np.savez(p, x_train=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(DataError, match=r"half.npz lacks the array\(s\) y_train"):
        data.load_train(resolve_source(p))


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty holds no train images"):
        data.load_train(resolve_source(tmp_path / "empty"))


def test_unknown_class_folder(tmp_path):
    x, y, _, _ = make_arrays(20, 10)
    write_folder(tmp_path / "imgs", x, y)
    (tmp_path / "imgs/train/zebra").mkdir()
    Image.fromarray(x[0]).save(tmp_path / "imgs/train/zebra/0.png")
    with pytest.raises(DataError, match=r"unexpected class folder\(s\) train/zebra"):
        data.load_train(resolve_source(tmp_path / "imgs"))


# --- the test split is quarantined -----------------------------------------------------------


def test_test_split_refused_inside_a_search(synthetic_npz):
    src = resolve_source(synthetic_npz)
    with data.search_guard():
        data.load_train(src)  # the training images are fine
        with pytest.raises(TestSplitGuardError):
            data.load_test(src)
    assert len(data.load_test(src)[0]) == 50  # and allowed again outside


def test_real_zip_decodes_to_the_standard_split(real_zip):
    src = resolve_source(real_zip)
    x, y = data.load_train(src)
    assert x.shape == (50000, 32, 32, 3) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [5000] * 10
    assert np.allclose(x.mean(axis=(0, 1, 2)) / 255, [0.491, 0.482, 0.447], atol=0.002)
