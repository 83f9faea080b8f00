"""CIFAR-10 from wherever it lives, decoded once, cached, split without touching the test set.

Sources (``--data PATH`` or ``CIFAR10_DATA``): Keras' own download (the default); an image
folder or zip laid out as ``train/<class>/*`` and ``test/<class>/*``; an ``.npz`` with
``x_train, y_train, x_test, y_test``; the original ``cifar-10-batches-py`` folder.

The training images come from :func:`load_train`. The test images come only from
:func:`load_test`, which refuses inside a running search (:func:`search_guard`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search import env
from search.config import Config
from search.errors import DataError, TestSplitGuardError

CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
NUM_CLASSES = len(CLASSES)
IMAGE_SHAPE = (32, 32, 3)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
GUARD_ENV = "CIFAR10_SEARCH_ACTIVE"
HOW_TO_POINT = (
    "Point the tool at a local copy with --data PATH or the environment variable "
    "CIFAR10_DATA=PATH: a zip or folder laid out as train/<class>/*.jpg and test/<class>/*.jpg "
    "(like cifar10-jpeg.zip), an .npz with x_train, y_train, x_test, y_test, or the "
    "cifar-10-batches-py folder."
)


# --- sources ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    kind: str  # keras | zip | folder | npz | batches
    path: Path | None  # None for keras

    def __str__(self) -> str:
        return "keras.datasets.cifar10 (download)" if self.path is None else str(self.path)

    def identity(self) -> str:
        """A cheap key that changes when the source changes: sizes and modification times."""
        if self.path is None:
            return "keras"
        h = hashlib.sha1(f"{self.kind}:{self.path.resolve()}".encode())
        for p in _files_under(self.path):
            st = p.stat()
            h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()[:16]

    def checksum(self) -> str:
        """sha256 of the source's bytes (file names too, for a folder): for provenance."""
        if self.path is None:
            root = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
            path = root / "datasets" / "cifar-10-batches-py"
        else:
            path = self.path
        h = hashlib.sha256()
        for p in _files_under(path):
            if path.is_dir():
                h.update(str(p.relative_to(path)).encode())
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        return h.hexdigest()


def _files_under(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())


def resolve_source(path: str | os.PathLike[str] | None = None) -> Source:
    """Pick the source: an explicit path, else ``CIFAR10_DATA``, else Keras' download."""
    raw = path if path not in (None, "") else os.environ.get("CIFAR10_DATA") or None
    if raw is None:
        return Source("keras", None)
    p = Path(raw).expanduser().absolute()  # recorded with runs: valid from any folder
    if not p.exists():
        raise DataError(f"Data path {p} does not exist. {HOW_TO_POINT}")
    if p.is_file():
        if p.suffix == ".npz":
            return Source("npz", p)
        if zipfile.is_zipfile(p):
            return Source("zip", p)
        if p.suffix == ".zip":
            raise DataError(
                f"Data file {p} is not a readable zip (corrupt or truncated). Copy it again "
                f"and check its checksum."
            )
        raise DataError(f"Data file {p} is neither a zip of images nor an .npz. {HOW_TO_POINT}")
    if (p / "data_batch_1").exists():
        return Source("batches", p)
    if (p / "cifar-10-batches-py" / "data_batch_1").exists():
        return Source("batches", p / "cifar-10-batches-py")
    return Source("folder", p)


# --- loading ------------------------------------------------------------------------------


def load_train(source: Source) -> tuple[np.ndarray, np.ndarray]:
    """The 50,000 training images (uint8, N x 32 x 32 x 3) and labels (int64), cached."""
    return _load(source, "train")


def load_test(source: Source) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 held-out test images. Only the final evaluation may call this."""
    if os.environ.get(GUARD_ENV):
        raise TestSplitGuardError(
            "The test split was requested inside a running search. The search may only see "
            "the training images; evaluate on the test set with cifar10_test.py after retraining."
        )
    return _load(source, "test")


@contextlib.contextmanager
def search_guard() -> Iterator[None]:
    """Inside this block (and in processes started from it) the test split is refused."""
    old = os.environ.get(GUARD_ENV)
    os.environ[GUARD_ENV] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(GUARD_ENV, None)
        else:
            os.environ[GUARD_ENV] = old


def _load(source: Source, split: str) -> tuple[np.ndarray, np.ndarray]:
    if source.kind == "keras":
        return _from_keras(split)
    cache = env.cache_dir() / f"cifar10-{source.kind}-{source.identity()}-{split}.npz"
    if cache.exists():
        try:
            with np.load(cache) as z:
                return z["x"], z["y"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            cache.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    reader = {"zip": _from_zip, "folder": _from_folder, "npz": _from_npz, "batches": _from_batches}
    x, y = reader[source.kind](source.path, split)
    _validate(x, y, source, split)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, x=x, y=y)
    os.replace(tmp, cache)  # atomic: parallel workers never read a half-written cache
    return x, y


def _validate(x: np.ndarray, y: np.ndarray, source: Source, split: str) -> None:
    if x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
        raise DataError(
            f"{source}: {split} images have shape {x.shape}; expected (N, 32, 32, 3) RGB."
        )
    if len(x) != len(y):
        raise DataError(f"{source}: {len(x)} {split} images but {len(y)} labels.")
    if len(x) == 0:
        raise DataError(f"{source}: the {split} split holds no images.")
    bad = (y < 0) | (y >= NUM_CLASSES)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: {int(bad.sum())} {split} label(s) out of range 0-9 "
            f"(the first, at index {i}, is {int(y[i])})."
        )


def _from_keras(split: str) -> tuple[np.ndarray, np.ndarray]:
    import keras

    try:
        (xtr, ytr), (xte, yte) = keras.datasets.cifar10.load_data()
    except Exception as e:  # noqa: BLE001 - any failure of the download means the same to a user
        raise DataError(
            f"Could not download CIFAR-10 with keras.datasets.cifar10.load_data() "
            f"(no internet here?): {e}. {HOW_TO_POINT}"
        ) from None
    x, y = (xtr, ytr) if split == "train" else (xte, yte)
    return np.ascontiguousarray(x, np.uint8), np.asarray(y, np.int64).reshape(-1)


def _from_npz(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path) as z:
            missing = [k for k in (f"x_{split}", f"y_{split}") if k not in z.files]
            if missing:
                raise DataError(
                    f"{path} lacks the array(s) {', '.join(missing)}; an .npz source needs "
                    f"x_train, y_train, x_test and y_test."
                )
            x, y = z[f"x_{split}"], z[f"y_{split}"]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path} is not a readable .npz (corrupt or truncated): {e}.") from None
    if x.dtype != np.uint8:
        if x.min() < 0 or x.max() > 255:
            raise DataError(f"{path}: x_{split} values must lie in 0-255 (uint8 pixels).")
        x = x.astype(np.uint8)
    return np.ascontiguousarray(x), np.asarray(y).reshape(-1).astype(np.int64)


def _from_batches(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for name in names:
        f = path / name
        if not f.exists():
            raise DataError(f"{path} is a cifar-10-batches-py folder without {name}.")
        try:
            with open(f, "rb") as fh:
                d = pickle.load(fh, encoding="bytes")
            xs.append(np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[b"labels"], np.int64))
        except Exception as e:  # noqa: BLE001 - unpickling fails in many ways
            raise DataError(f"{f} is not a readable CIFAR-10 batch: {e}.") from None
    return np.concatenate(xs).transpose(0, 2, 3, 1).copy(), np.concatenate(ys)


_ENTRY = re.compile(r"^(?:(?P<prefix>.*)/)?(?P<split>train|test)/(?P<cls>[^/]+)/(?P<name>[^/]+)$")


def _from_zip(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with zipfile.ZipFile(path) as zf:
            entries = {i.filename: i for i in zf.infolist() if not i.is_dir()}
            chosen = _select(path, entries, split)
            return _decode(path, [(n, lab, lambda n=n: zf.read(entries[n])) for n, lab in chosen])
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise DataError(
            f"{path} is corrupt or truncated ({e}). Copy it again and check its checksum."
        ) from None


def _from_folder(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    entries = {str(p.relative_to(path)).replace(os.sep, "/"): p for p in path.rglob("*")}
    entries = {k: p for k, p in entries.items() if p.is_file()}
    chosen = _select(path, entries, split)
    return _decode(path, [(n, lab, entries[n].read_bytes) for n, lab in chosen])


def _select(root: Path, names: Iterable[str], split: str) -> list[tuple[str, int]]:
    """Image entries of one split with their labels, in class then file-name order."""
    by_class: dict[str, list[str]] = {}
    prefixes = set()
    for name in names:
        m = _ENTRY.match(name)
        if m and m["split"] == split and m["name"].lower().endswith(IMAGE_SUFFIXES):
            by_class.setdefault(m["cls"], []).append(name)
            prefixes.add(m["prefix"])
    if not by_class:
        raise DataError(
            f"{root} holds no {split} images: expected files like {split}/airplane/0000.jpg "
            f"(PNG or JPEG). {HOW_TO_POINT}"
        )
    if len(prefixes) > 1:
        raise DataError(f"{root} holds several {split}/ folders ({sorted(map(str, prefixes))}).")
    unknown = sorted(set(by_class) - set(CLASSES))
    if unknown:
        raise DataError(
            f"{root}: unexpected class folder(s) {split}/{', '.join(unknown)}; the class "
            f"folders must be named {', '.join(CLASSES)}."
        )
    missing = [c for c in CLASSES if c not in by_class]
    if missing:
        raise DataError(
            f"{root}: class folder(s) {', '.join(f'{split}/{c}/' for c in missing)} missing or "
            f"empty; every one of the 10 classes needs its images."
        )
    return [(n, label) for label, c in enumerate(CLASSES) for n in sorted(by_class[c])]


def _decode(
    root: Path, items: list[tuple[str, int, Callable[[], bytes]]]
) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    xs = []
    for name, _, read in items:
        try:
            with Image.open(io.BytesIO(read())) as img:
                if img.size != (32, 32) or img.mode != "RGB":
                    raise DataError(
                        f"{root}: image {name} is {img.size[0]}x{img.size[1]} {img.mode}; "
                        f"every image must be 32x32 RGB."
                    )
                xs.append(np.asarray(img, np.uint8))
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise DataError(f"{root}: image {name} cannot be decoded ({e}).") from None
    return np.stack(xs), np.array([label for _, label, _ in items], np.int64)


# --- splits -------------------------------------------------------------------------------


def _allocate(n: int, counts: np.ndarray) -> np.ndarray:
    """Split n over the classes in proportion to counts (largest remainder, ties by class)."""
    exact = n * counts / counts.sum()
    out = np.floor(exact).astype(int)
    order = np.argsort(-(exact - out), kind="stable")
    out[order[: n - out.sum()]] += 1
    return np.minimum(out, counts)


def stratified_split(
    y: np.ndarray, *, val_size: int, train_size: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified train and validation indices into ``y``.

    The validation images depend only on the seed and ``val_size`` (a smaller validation set
    is a subset of a larger one), and never overlap the training subset, whose size does not
    move them: every trial of a study is judged on the same images.
    """
    y = np.asarray(y)
    if val_size < 0 or val_size >= len(y):
        raise DataError(f"val_size {val_size} must lie in [0, {len(y) - 1}].")
    avail = len(y) - val_size
    if train_size is not None and not 1 <= train_size <= avail:
        raise DataError(
            f"train_size {train_size} must lie in [1, {avail}] with val_size {val_size}."
        )
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in range(NUM_CLASSES)]
    counts = np.array([len(p) for p in per_class])
    n_val = _allocate(val_size, counts)
    rest = counts - n_val
    n_train = _allocate(avail if train_size is None else train_size, rest)
    val = np.concatenate([p[:v] for p, v in zip(per_class, n_val)])
    train = np.concatenate([p[v : v + t] for p, v, t in zip(per_class, n_val, n_train)])
    return rng.permutation(train), rng.permutation(val)


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray  # empty when the run trains on all training images
    y_val: np.ndarray


def train_val(source: Source, *, val_size: int, train_size: int | None, split_seed: int) -> Split:
    x, y = load_train(source)
    tr, va = stratified_split(y, val_size=val_size, train_size=train_size, seed=split_seed)
    return Split(x[tr], y[tr], x[va], y[va])


def split_for(config: Config, source: Source) -> Split:
    """The train/validation split a config names: its sizes and its split seed."""
    return train_val(
        source, val_size=config.val_size, train_size=config.train_size, split_seed=config.split_seed
    )
