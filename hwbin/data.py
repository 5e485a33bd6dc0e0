"""Data sets, all as uint8 pixels (N, C, H, W) and int64 labels; nothing is downloaded.

- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1797), pixels 0..16 scaled
  exactly to 0..255, a fixed seeded 80/20 train/test split.
- ``mnist``: MNIST from a local path the user gives (IDX files or an .npz).
- ``fashion-mnist``: Zalando's Fashion-MNIST (60,000 + 10,000 real 28x28 images) from the
  Debian package ``dataset-fashion-mnist`` (installed by scripts/setup.sh), or from
  ``--data-path`` in the same formats as mnist.
- ``shapes``: a procedurally generated segmentation set (squares, discs, triangles on a
  noisy background; label per pixel: 0 background, 1 square, 2 disc, 3 triangle).
"""
from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import HwbinError

DATASETS = ("digits", "mnist", "fashion-mnist", "shapes")
SPLIT_SEED = 20190118
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # where the Debian package puts it


@dataclass
class Dataset:
    name: str
    task: str  # "classify" or "segment"
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    def head(self, train: int | None = None, test: int | None = None) -> "Dataset":
        """The first ``train`` training and ``test`` test images (None: all), so that quick
        runs and tests use a fixed, reproducible slice of a large set."""
        for what, n in (("train", train), ("test", test)):
            if n is not None and n < 1:
                raise HwbinError(f"{what} images: expected at least 1, found {n}")
        return Dataset(self.name, self.task, self.x_train[:train], self.y_train[:train],
                       self.x_test[:test], self.y_test[:test], self.num_classes)


def load_dataset(name: str, path: str | None = None) -> Dataset:
    if name == "digits":
        return load_digits()
    if name == "mnist":
        if not path:
            raise HwbinError("data set 'mnist' needs --data-path (IDX files or an .npz); nothing is downloaded")
        return load_mnist(path)
    if name == "fashion-mnist":
        return load_fashion_mnist(path)
    if name == "shapes":
        return make_shapes()
    raise HwbinError(f"unknown data set {name!r}: expected one of {', '.join(DATASETS)}")


def load_digits() -> Dataset:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = (d.images.astype(np.int64) * 255 + 8) // 16  # 0..16 -> 0..255, exact and monotone
    x = x.astype(np.uint8)[:, None]
    y = d.target.astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    n_test = len(x) // 5
    test, train = order[:n_test], order[n_test:]
    return Dataset("digits", "classify", x[train], y[train], x[test], y[test], 10)


def _read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX file (gzipped or not), its header checked before its data is read
    or inflated (hwbin.limits.MAX_FILE_BYTES)."""
    from .limits import MAX_FILE_BYTES
    from .reading import check_file

    check_file(path, "IDX file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
                raise HwbinError(f"{path}: not an unsigned-byte IDX file (expected magic 0x0008xx)")
            dims_raw = f.read(4 * head[3])
            if len(dims_raw) < 4 * head[3]:
                raise HwbinError(f"{path}: IDX header truncated")
            dims = [int.from_bytes(dims_raw[4 * i:4 * i + 4], "big") for i in range(head[3])]
            count = math.prod(dims) if dims else 0
            if count > MAX_FILE_BYTES:
                raise HwbinError(f"{path}: IDX shape {dims[:4]} holds {count:,} bytes, expected at most "
                                 f"{MAX_FILE_BYTES:,} (hwbin.limits)")
            raw = f.read(count + 1)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise HwbinError(f"{path}: cannot read IDX file ({getattr(e, 'strerror', None) or e})") from None
    if len(raw) != count:
        raise HwbinError(f"{path}: expected {count} data bytes for shape {dims}, found {len(raw)}"
                         + ("" if len(raw) < count else " or more"))
    return np.frombuffer(raw, dtype=np.uint8).reshape(dims)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The four MNIST arrays of an .npz, each entry's size and .npy header checked before it
    is inflated; never unpickled."""
    from .reading import check_file, npy_from_bytes, open_zip, read_member

    check_file(path, ".npz file")
    with open_zip(path, str(path)) as z:
        arrays = {}
        for k in ("x_train", "y_train", "x_test", "y_test"):
            if f"{k}.npy" not in z.NameToInfo:
                raise HwbinError(f"{path}: .npz lacks array '{k}'")
            arrays[k] = npy_from_bytes(read_member(z, f"{k}.npy", str(path)), f"{path}: array '{k}'")
    return arrays


def _find(root: Path, stem: str) -> Path:
    for cand in (root / stem, root / (stem + ".gz")):
        if cand.is_file():
            return cand
    raise HwbinError(f"{root}: missing {stem} (or {stem}.gz)")


def load_fashion_mnist(path: str | None = None) -> Dataset:
    """Fashion-MNIST from ``path``, by default the Debian package's folder. Nothing is
    downloaded: a missing package is a one-line error that names it."""
    if path:
        return load_mnist(path, name="fashion-mnist")
    if not (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file():
        raise HwbinError(f"data set 'fashion-mnist': {FASHION_MNIST_DIR} not found; install the Debian package "
                         f"{FASHION_MNIST_PACKAGE} (apt-get install {FASHION_MNIST_PACKAGE}, or make setup) "
                         f"or pass --data-path")
    return load_mnist(str(FASHION_MNIST_DIR), name="fashion-mnist")


def load_mnist(path: str, name: str = "mnist") -> Dataset:
    """MNIST (or a data set in its format) from ``path``: a folder with the four IDX files
    (optionally gzipped), or an .npz with x_train, y_train, x_test, y_test."""
    p = Path(path)
    if not p.exists():
        raise HwbinError(f"{path}: data path does not exist")
    if p.is_file():
        arrays = _read_npz(p)
    elif not p.is_dir():
        raise HwbinError(f"{path}: expected an .npz file or a folder of IDX files, found a special file")
    else:
        arrays = {"x_train": _read_idx(_find(p, "train-images-idx3-ubyte")),
                  "y_train": _read_idx(_find(p, "train-labels-idx1-ubyte")),
                  "x_test": _read_idx(_find(p, "t10k-images-idx3-ubyte")),
                  "y_test": _read_idx(_find(p, "t10k-labels-idx1-ubyte"))}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.dtype != np.uint8 or 0 in x.shape:
            raise HwbinError(f"{path}: x_{split} expected uint8 (N, H, W), found {x.dtype} {x.shape}")
        if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
            raise HwbinError(f"{path}: y_{split} expected {len(x)} integer labels, found {y.dtype} {y.shape}")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise HwbinError(f"{path}: y_{split} expected labels 0..9, found {y.min()}..{y.max()}")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise HwbinError(f"{path}: x_test expected images of {arrays['x_train'].shape[1:]} like x_train, "
                         f"found {arrays['x_test'].shape[1:]}")
    # Copies: np.frombuffer's arrays are read-only, and torch.from_numpy warns about those.
    return Dataset(name, "classify", np.array(arrays["x_train"][:, None]), arrays["y_train"].astype(np.int64),
                   np.array(arrays["x_test"][:, None]), arrays["y_test"].astype(np.int64), 10)


def _shape_mask(kind: int, size: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    if kind == 1:  # square
        return (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
    if kind == 2:  # disc
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    # upward triangle: apex at top, base at bottom
    top, bottom = cy - r, cy + r
    half = (yy - top) / (2 * r) * r
    return (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half)


def make_shapes(n_train: int = 2000, n_test: int = 400, size: int = 16, seed: int = SPLIT_SEED) -> Dataset:
    """1 to 3 shapes per image, random size, position and brightness, on noise."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    x = np.zeros((n, 1, size, size), dtype=np.uint8)
    y = np.zeros((n, size, size), dtype=np.int64)
    for i in range(n):
        img = rng.integers(0, 60, size=(size, size)).astype(np.int64)
        lab = np.zeros((size, size), dtype=np.int64)
        for _ in range(rng.integers(1, 4)):
            kind = int(rng.integers(1, 4))
            r = float(rng.uniform(2.0, 4.5))
            cy, cx = rng.uniform(r, size - r, size=2)
            m = _shape_mask(kind, size, cy, cx, r)
            img[m] = rng.integers(140, 256)
            lab[m] = kind
        x[i, 0] = img.astype(np.uint8)
        y[i] = lab
    return Dataset("shapes", "segment", x[:n_train], y[:n_train], x[n_train:], y[n_train:], 4)
