"""MNIST and Fashion-MNIST: find the IDX files, download them if needed, and preprocess.

An IDX file is a big-endian header followed by raw bytes (LeCun et al., the MNIST page):
a 4-byte magic number ``0x000008NN`` (0x08 = unsigned byte, NN = number of dimensions), then
NN 4-byte dimension sizes, then ``prod(dims)`` bytes of data in C order.

Files are looked for, in order, in:

1. the ``data_dir`` argument (the ``--data-dir`` flag),
2. ``$NPVAE_DATA_DIR``,
3. the user cache, ``~/.cache/npvae/<name>`` (``$XDG_CACHE_HOME`` is respected),
4. the system folder ``/usr/share/datasets/<name>`` (Debian's ``dataset-fashion-mnist``).

A folder named by the user (1 or 2) that holds the files, but an unusable copy of one (a broken
link, a folder in a file's place), is an error: the search never moves on to another copy.

For 1 and 2 both ``<dir>/<name>/`` and ``<dir>/`` itself are searched. MNIST and Fashion-MNIST
use the same file names, so one data folder can serve both through per-dataset subfolders.
Only if no folder holds the files are they downloaded, into ``<data_dir>/<name>`` if a data
folder was given and into the user cache otherwise. Downloads are verified against the
checksums of the canonical files; local files are checked by structure only (Debian
re-compressed its copy, so its ``.gz`` checksums differ).

A whole run's data (``load_run_data``) comes from one of four sources: the data set's train
and test files; its test files alone, a fifth held out for testing (``--test-split-only``); the
MNIST test split bundled inside npvae (``load_bundled``), split the same way, which is what
MNIST falls back to when its training images can be neither found nor downloaded; or a user's
own ``.npy``/``.npz`` file (``load_array_file``), split the same way.

Shapes: N examples, D = 28 * 28 = 784 pixels.
"""

import contextlib
import dataclasses
import gzip
import hashlib
import http.client
import math
import operator
import os
import sys
import tempfile
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np

from npvae.core.errors import DataError

__all__ = [
    "read_idx",
    "load",
    "load_dataset",
    "to_float",
    "binarize",
    "train_val_split",
    "search_dirs",
    "cache_dir",
    "load_bundled",
    "load_array_file",
    "load_run_data",
    "load_test_data",
    "hold_out_test",
]

DATASETS = ("mnist", "fashion-mnist")
SPLITS = {"train": "train", "test": "t10k"}  # split -> file-name prefix
IMAGE_SHAPE = (28, 28)
N_CLASSES = 10  # both data sets: the digits 0-9, or ten kinds of clothing

# Checksums of the canonical (upstream) .gz files, which is what every public mirror serves.
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte.gz": {
            "md5": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "sha256": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        },
        "train-labels-idx1-ubyte.gz": {
            "md5": "d53e105ee54ea40749a09fcbcd1e9432",
            "sha256": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        },
        "t10k-images-idx3-ubyte.gz": {
            "md5": "9fb629c4189551a2d022fa330f9573f3",
            "sha256": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        },
        "t10k-labels-idx1-ubyte.gz": {
            "md5": "ec29112dd5afa0611ce80d1b7f02629c",
            "sha256": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": {"md5": "8d4fb7e6c68d591d4c3dfef9ec88bf0d"},
        "train-labels-idx1-ubyte.gz": {"md5": "25c81989df183df01b3e8a0aad5dffbe"},
        "t10k-images-idx3-ubyte.gz": {"md5": "bef4ecab320f06d8554ea6380940ec79"},
        "t10k-labels-idx1-ubyte.gz": {"md5": "bb300cfdad3c16e7a12a480ee83cd310"},
    },
}

# Tried in order, per file. Tests replace these with a local server.
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
}

SYSTEM_DATA_DIRS = (Path("/usr/share/datasets"),)  # searched last; tests replace it
DOWNLOAD_TIMEOUT = 30  # seconds per network operation, so a dead mirror never hangs us

_UBYTE_MAGIC = 0x00000800  # | ndim
_REFETCH = "Delete the file and download it again (or reinstall the package that provided it)."


# --- reading IDX files ---------------------------------------------------------------------


def read_idx(path):
    """Read an unsigned-byte IDX file, gzip-compressed (``.gz``) or raw.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    array : uint8 array with the shape given in the file header, e.g. (N, 28, 28) or (N,)

    Raises
    ------
    DataError
        If the file is missing, a truncated or corrupt gzip stream, has a wrong magic number,
        or holds more or fewer bytes than its header promises.
    """
    path = Path(path)
    return _parse_idx(_read_bytes(path), path)


def _read_bytes(path):
    """The file's bytes, decompressed if its name ends in ``.gz``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found.") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: truncated or corrupt gzip data ({exc}). {_REFETCH}") from exc


def _parse_idx(data, path):
    """Check the IDX header of ``data`` and return its payload as a uint8 array."""
    if len(data) < 4:
        raise DataError(f"{path}: {len(data)} bytes is too short for an IDX file. {_REFETCH}")
    magic = int.from_bytes(data[:4], "big")
    ndim = magic & 0xFF
    if ndim == 0 or magic != _UBYTE_MAGIC | ndim:
        raise DataError(
            f"{path}: wrong magic number 0x{magic:08X}; an unsigned-byte IDX file starts with "
            f"0x000008NN (NN = number of dimensions, e.g. 0x00000803 for images). "
            f"The file is corrupt or not an IDX file. {_REFETCH}"
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(f"{path}: IDX header cut short ({len(data)} bytes). {_REFETCH}")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected, actual = math.prod(dims), len(data) - header_size
    if expected == 0:
        raise DataError(f"{path}: the IDX header gives shape {dims}, which holds no examples. "
                        f"{_REFETCH}")
    if actual != expected:
        raise DataError(
            f"{path}: wrong size; the header gives shape {dims}, i.e. {expected} bytes of data, "
            f"but the file holds {actual}. {_REFETCH}"
        )
    pixels = np.frombuffer(data, dtype=np.uint8, offset=header_size)
    return pixels.reshape(dims).copy()  # a writable array that owns its memory


# --- finding the files ---------------------------------------------------------------------


def cache_dir(name):
    """The user cache folder for dataset ``name``: ``$XDG_CACHE_HOME/npvae/<name>``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"  # XDG: ignore relative
    return root / "npvae" / name


def search_dirs(name, data_dir=None):
    """The folders searched for dataset ``name``, in order (see the module docstring)."""
    folders = []
    for user_dir in (data_dir, os.environ.get("NPVAE_DATA_DIR")):
        if user_dir:
            user_dir = Path(user_dir).expanduser()
            folders += [user_dir / name, user_dir]
    folders.append(cache_dir(name))
    folders += [Path(root) / name for root in SYSTEM_DATA_DIRS]
    return folders


def _file_names(name, split):
    """The canonical (images, labels) file names of a split; validates name and split."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; valid names are: {', '.join(DATASETS)}.")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; valid splits are: {', '.join(SPLITS)}.")
    prefix = SPLITS[split]
    return [f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"]


def _locate(folder, filename, strict=False):
    """``folder/filename`` or its un-gzipped twin, whichever is a file, else None.

    strict : for a folder the user named, a path that exists but is no readable file (a
        broken link, a link loop, a folder) is a DataError, not a reason to look elsewhere.
    """
    for path in (folder / filename, folder / filename.removesuffix(".gz")):
        if path.is_file():
            return path
        if strict and os.path.lexists(path):
            raise DataError(f"{path} is not a readable file (a broken link, a link loop or a "
                            f"folder), in a folder you named; fix or remove it. npvae does not "
                            f"fall back to another copy, so that the train and test files come "
                            f"from the same place.")
    return None


def _find(folders, filenames, strict=()):
    """Paths of all ``filenames`` in the first folder that holds them all, else None.
    Folders in ``strict`` are the user's: an unusable file there is an error (``_locate``)."""
    for folder in folders:
        paths = [_locate(folder, f, folder in strict) for f in filenames]
        if all(paths):
            return paths
    return None


def _user_dirs(name, data_dir=None):
    """The folders the user named (``data_dir``, ``$NPVAE_DATA_DIR``), as ``search_dirs``
    lists them."""
    return [d for d in search_dirs(name, data_dir)
            if d != cache_dir(name) and d.parent not in SYSTEM_DATA_DIRS]


# --- downloading ---------------------------------------------------------------------------


def _download_all(name, filenames, folder):
    """Download the files missing from ``folder``; return the paths of all of them.
    A folder made for the download is removed again if the download fails."""
    made = [d for d in (folder, *folder.parents) if not d.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the folder {folder}: {exc}") from exc
    try:
        for filename in filenames:
            if _locate(folder, filename) is None:
                _download_file(MIRRORS.get(name, []), filename, CHECKSUMS[name][filename],
                               folder)
    except BaseException:
        for d in made:  # only empty folders are removed: a file downloaded before stays
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    return [_locate(folder, f) for f in filenames]


def _download_file(mirrors, filename, checksums, folder):
    """Try each mirror in turn until one serves ``filename`` with the right checksums."""
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + filename
        try:
            _fetch_verified(url, folder / filename, checksums)
            return
        except (OSError, ValueError, http.client.HTTPException) as exc:  # ValueError: DataError
            failures.append(f"{url}: {exc}")
    reasons = "; ".join(failures) or "no mirrors configured"  # one line, however many mirrors
    raise DataError(f"could not download {filename}: {reasons}.")


def _fetch_verified(url, dest, checksums):
    """Download ``url`` to a temporary file next to ``dest``; move it into place if verified.

    On any failure the temporary file is deleted, so no partial file is ever left behind.
    """
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        hashes = {algo: hashlib.new(algo) for algo in checksums}
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
                print(f"npvae: downloading {url}", file=sys.stderr, flush=True)  # connected
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    for h in hashes.values():
                        h.update(chunk)
        _check_digests(hashes, checksums, "the download is corrupt or the mirror serves a "
                                          "different file")
        os.replace(tmp, dest)
    except BaseException:  # also on Ctrl-C
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_digests(hashes, checksums, cause):
    """Raise a DataError if any hash object in ``hashes`` differs from ``checksums``."""
    for algo, h in hashes.items():
        if h.hexdigest() != checksums[algo]:
            raise DataError(f"{algo} checksum mismatch (got {h.hexdigest()}, expected "
                            f"{checksums[algo]}); {cause}")


def _how_to_fix(name, split, filenames, folders, target):
    """The help text for missing files: which files, where we looked, where to put them."""
    searched = "\n".join(f"  {folder}" for folder in folders)
    source = f" (e.g. from {MIRRORS[name][0]})" if MIRRORS.get(name) else ""
    return (
        f"The {name} {split} split needs the files {' and '.join(filenames)} "
        f"(gzipped or not). Searched:\n{searched}\n"
        f"Download them{source} and put them in {target}, or pass --data-dir DIR "
        f"(or set NPVAE_DATA_DIR=DIR) to point at a folder that holds them."
    )


# --- loading -------------------------------------------------------------------------------


def load(name, split, data_dir=None, download=True):
    """Load a split of MNIST or Fashion-MNIST as raw pixels and labels.

    Parameters
    ----------
    name : "mnist" or "fashion-mnist"
    split : "train" or "test"
    data_dir : str or Path, optional
        Folder searched first (``<data_dir>/<name>`` and ``<data_dir>``); downloads go to
        ``<data_dir>/<name>``. Without it, downloads go to the user cache.
    download : bool
        Download the files from the public mirrors if no folder holds them.

    Returns
    -------
    images : (N, 28, 28) uint8 array
    labels : (N,) uint8 array
    """
    filenames = _file_names(name, split)
    folders = search_dirs(name, data_dir)
    paths = _find(folders, filenames, strict=_user_dirs(name, data_dir))
    if paths is None:
        target = Path(data_dir).expanduser() / name if data_dir else cache_dir(name)
        help_text = _how_to_fix(name, split, filenames, folders, target)
        if not download:
            raise DataError(f"{name} {split} files not found (download=False).\n{help_text}")
        try:
            paths = _download_all(name, filenames, target)
        except DataError as exc:
            raise DataError(f"{exc}\n{help_text}") from exc
    return _read_pair(*paths)


def _read_pair(images_path, labels_path):
    """Read an images file and a labels file and check that they belong together."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(
            f"{images_path}: expected images of shape (N, 28, 28), got {images.shape}. "
            "Is this an images file?"
        )
    if labels.ndim != 1:
        raise DataError(
            f"{labels_path}: expected labels of shape (N,), got {labels.shape}. "
            "Is this a labels file?"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
            "labels; the two files must come from the same split. Replace the wrong one."
        )
    return images, labels


def load_dataset(name, split, data_dir=None, download=True, dtype=np.float32):
    """Load a split as flat float pixels in [0, 1] and uint8 labels.

    Returns
    -------
    x : (N, D) array of ``dtype``, D = 784
    labels : (N,) uint8 array
    """
    images, labels = load(name, split, data_dir=data_dir, download=download)
    return to_float(images, dtype=dtype), labels


# --- the bundled MNIST test split, and a user's own arrays -----------------------------------

# MNIST's test split (10,000 images; LeCun, Cortes and Burges, CC BY-SA 3.0) ships inside npvae,
# the canonical files byte for byte, so that the main job runs without a network.
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "datasets" / "mnist"  # npvae/datasets
TEST_FRACTION = 5  # the protocol of training on one split: a fifth of it is held out for testing
MIN_EXAMPLES = 10  # a user's file must hold enough to split off a test set


def load_bundled():
    """MNIST's test split as bundled with npvae: (N, 28, 28) uint8 images, (N,) uint8 labels.

    Both files are checked against the canonical SHA-256 at every load."""
    paths = []
    for filename in _file_names("mnist", "test"):
        path = BUNDLED_DIR / filename
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise DataError(f"the MNIST file bundled with npvae, {path}, cannot be read "
                            f"({exc.strerror or exc}); reinstall npvae.") from exc
        sha256 = CHECKSUMS["mnist"][filename]["sha256"]
        _check_digests({"sha256": hashlib.sha256(content)}, {"sha256": sha256},
                       f"the MNIST file bundled with npvae, {path}, is damaged; reinstall npvae")
        paths.append(path)
    return _read_pair(*paths)


def hold_out_test(x, y, rng):
    """Split one set of examples into train and test: a fifth, at random, is held out.

    x : (N, ...) array, y : (N,) array or None, rng : Generator (its permutation decides).
    Returns x_train, y_train, x_test, y_test (N - N//5 and N//5 examples; y parts None
    without y). For MNIST's 10,000 test images: 8,000 to train on, 2,000 to test on.
    """
    order = rng.permutation(len(x))  # (N,)
    n_test = max(1, len(x) // TEST_FRACTION)
    test, train = order[:n_test], order[n_test:]
    return x[train], None if y is None else y[train], x[test], None if y is None else y[test]


def load_array_file(path, dtype=np.float32):
    """A user's own data: x (N, D) of ``dtype`` in [0, 1] and labels y (N,) int64 or None.

    path : an ``.npy`` file holding x, or an ``.npz`` holding ``x`` and optionally ``y``.
    x is (N, D), or (N, H, W) images, which are flattened to (N, H·W); its values must be
    floats in [0, 1] (divide 8-bit pixels by 255 first). Read without pickle.
    """
    x, y, _ = load_array_file_with_shape(path, dtype)
    return x, y


def image_shape_of(x):
    """The (H, W) of the images in x: its last two axes for (N, H, W), a square for (N, D)
    with D = s², else None (vectors of no known shape)."""
    if x.ndim == 3:
        return tuple(int(n) for n in x.shape[1:])
    side = math.isqrt(x.shape[1])
    return (side, side) if side * side == x.shape[1] else None


def load_array_file_with_shape(path, dtype=np.float32):
    """``load_array_file``'s x and y, and the images' shape (H, W) (``image_shape_of``)."""
    path = Path(path)
    try:
        _check_numpy_signature(path)
        loaded = np.load(path, allow_pickle=False)  # an array (.npy) or an NpzFile (.npz)
        if isinstance(loaded, np.ndarray):
            x, y = loaded, None
        else:
            with loaded:
                x, y = _npz_arrays(loaded, path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found.") from None
    except DataError:  # readable, but without x: _npz_arrays says so, and how to fix it
        raise
    except (OSError, ValueError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        what = ("holds a Python object array, which only pickle can read (npvae does not "
                "unpickle)" if "allow_pickle" in str(exc) else f"is truncated or corrupt ({exc})")
        raise DataError(f"{path} {what}; save plain arrays with np.save(path, x) or "
                        f"np.savez(path, x=x, y=y).") from exc
    checked = _checked_x(x, path, dtype)
    return checked, _checked_y(y, len(x), path), image_shape_of(x)


NUMPY_SIGNATURES = (b"\x93NUMPY", b"PK\x03\x04", b"PK\x05\x06")  # .npy, .npz (a zip archive)


def _check_numpy_signature(path):
    """A DataError unless ``path`` starts as an .npy or an .npz file does (a text or CSV file,
    say, which numpy would take for a pickle)."""
    with open(path, "rb") as f:
        start = f.read(6)
    if not start.startswith(NUMPY_SIGNATURES):
        raise DataError(f"{path} is not a NumPy file (.npy or .npz): it starts with "
                        f"{start!r}. For text or CSV data, load it with np.loadtxt and save it "
                        f"with np.save(path, x) or np.savez(path, x=x, y=y).")


def _npz_arrays(npz, path):
    """(x, y or None) of an .npz file, or a DataError naming the keys it holds."""
    if "x" not in npz.files:
        raise DataError(f"{path} holds the arrays {', '.join(npz.files) or '(none)'}, but not "
                        f"'x'; save it with np.savez(path, x=x) (and y=labels, optionally).")
    return npz["x"], (npz["y"] if "y" in npz.files else None)


def _checked_x(x, path, dtype):
    """x as (N, D) of ``dtype``, or a DataError saying what is wrong and how to fix it."""
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{path}: x has dtype {x.dtype}; npvae needs floats in [0, 1]. For "
                        f"8-bit pixels save x.astype(np.float32) / 255.")
    if x.ndim not in (2, 3) or 0 in x.shape[1:]:
        raise DataError(f"{path}: x has shape {x.shape}; expected (N, D) vectors or (N, H, W) "
                        f"images.")
    if len(x) < MIN_EXAMPLES:
        raise DataError(f"{path}: x holds {len(x)} examples; npvae needs at least "
                        f"{MIN_EXAMPLES}, a fifth of which it holds out for testing.")
    x = x.reshape(len(x), -1).astype(dtype, copy=False)  # (N, D)
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        bad = "NaN or infinite values" if not np.isfinite(x).all() else \
            f"values in [{x.min():g}, {x.max():g}]"
        raise DataError(f"{path}: x has {bad}; npvae needs values in [0, 1] (scale the data, "
                        f"e.g. (x - x.min()) / (x.max() - x.min())).")
    return x


def _checked_y(y, n, path):
    """Labels as (N,) int64 in [0, C), or None; a DataError if they do not fit x."""
    if y is None:
        return None
    if not np.issubdtype(y.dtype, np.integer) or y.shape != (n,) or (n and y.min() < 0):
        raise DataError(f"{path}: y must be {n} integer labels ≥ 0, one per example of x (shape "
                        f"({n},)); it has dtype {y.dtype} and shape {y.shape}.")
    return y.astype(np.int64)


@dataclasses.dataclass
class RunData:
    """The data of a run: float pixels in [0, 1] and labels, for training and testing.

    source : "files" (the data set's train and test files), "test-split" (its test files
        alone, a fifth held out), "bundled" (the MNIST test split inside npvae, likewise) or
        the path of a user's file (likewise).
    """

    x_train: np.ndarray  # (N, D)
    y_train: object  # (N,) labels, or None
    x_test: np.ndarray  # (M, D)
    y_test: object  # (M,) labels, or None
    source: str
    origin: str  # where the examples come from, in words, e.g. "mnist test split only"
    image_shape: object = (28, 28)  # (H, W) of the images, or None for vectors of no shape
    name: str = "mnist"  # the data's name for titles: the data set, or the file's name

    @property
    def description(self):
        """e.g. "mnist: train 60,000 / test 10,000 examples"."""
        return f"{self.origin}: train {len(self.x_train):,} / test {len(self.x_test):,} examples"


FALLBACK_NOTICE = (
    "npvae: the MNIST training images are not on this machine and could not be downloaded, "
    "so this run uses the MNIST test split that comes with npvae: {n_train:,} images to train "
    "on, {n_test:,} held out for testing (published MNIST numbers train on 60,000). For the "
    "full set, run once with internet access, or put the four MNIST files in a folder and "
    "pass --data-dir DIR. --no-fallback turns this fallback into an error.")


def load_run_data(name="mnist", data_dir=None, source="files", fallback=True, seed=0,
                  dtype=np.float32):
    """The data of a training run (see ``RunData``), the same every time for the same arguments.

    source : "files", "test-split", "bundled", or the path of an .npy/.npz file.
    fallback : with source "files" and name "mnist", if the training files can be neither
        found nor downloaded, use the bundled test split instead and print FALLBACK_NOTICE to
        stderr; the returned source then says "bundled". False re-raises the DataError.
    seed : seeds the hold-out of a single-split source (``hold_out_test``).
    """
    if source == "files":
        try:
            x_train, y_train = load_dataset(name, "train", data_dir=data_dir, dtype=dtype)
            x_test, y_test = load_dataset(name, "test", data_dir=data_dir, dtype=dtype)
            return RunData(x_train, y_train, x_test, y_test, "files", name, name=name)
        except DataError as exc:
            if not (fallback and name == "mnist"):
                raise
            _check_named_files(name, data_dir)  # an unreadable file you named is no fallback
            why = str(exc).splitlines()[0]  # e.g. "could not download ...: <url>: <reason>."
        data = load_run_data(name, data_dir, "bundled", seed=seed, dtype=dtype)
        print(f"npvae: {why}", file=sys.stderr, flush=True)  # offline: this line and the notice
        print(FALLBACK_NOTICE.format(n_train=len(data.x_train), n_test=len(data.x_test)),
              file=sys.stderr, flush=True)
        return data
    if source == "test-split" and name == "mnist" and not _test_files_on_disk(name, data_dir):
        images, y = load_bundled()  # the same canonical files, shipped inside npvae
        x, what = to_float(images, dtype), "mnist test split only (the copy bundled with npvae)"
    elif source == "test-split":
        x, y = load_dataset(name, "test", data_dir=data_dir, dtype=dtype)
        what = f"{name} test split only"
    elif source == "bundled":
        images, y = load_bundled()
        x, what = to_float(images, dtype), "mnist test split bundled with npvae"
    else:
        x, y, shape = load_array_file_with_shape(source, dtype)
        what = f"{source}"
    x_train, y_train, x_test, y_test = hold_out_test(x, y, np.random.default_rng(seed))
    if source in ("test-split", "bundled"):
        return RunData(x_train, y_train, x_test, y_test, str(source), what, name=name)
    return RunData(x_train, y_train, x_test, y_test, str(source), what, shape, Path(source).name)


def _check_named_files(name, data_dir=None):
    """A DataError naming the first of the data set's files, in a folder the user named
    (``--data-dir``, ``$NPVAE_DATA_DIR``), that cannot be read: a truncated or corrupt file
    there is the user's to fix, not a reason to train on the bundled copy instead."""
    for folder in _user_dirs(name, data_dir):
        for split in SPLITS:
            for filename in _file_names(name, split):
                path = _locate(folder, filename, strict=True)
                if path is None:
                    continue
                try:
                    read_idx(path)
                except DataError as exc:
                    raise DataError(f"{exc} It is in a folder you named; npvae does not fall "
                                    f"back to the MNIST copy bundled with it while a file you "
                                    f"pointed at cannot be read: fix or remove it.") from None


def _test_files_on_disk(name, data_dir=None):
    """Whether a folder holds the test split's files (an unusable file in a folder the user
    named is a DataError, as in ``load``). MNIST's ``--test-split-only`` uses the bundled copy
    when none does: the same canonical files, so nothing needs downloading."""
    filenames = _file_names(name, "test")
    return _find(search_dirs(name, data_dir), filenames, strict=_user_dirs(name, data_dir)) \
        is not None


def load_test_data(name="mnist", data_dir=None, source="files", seed=0, dtype=np.float32):
    """The test examples of a run's data (``load_run_data``'s x_test, y_test), without loading
    a training split that is not needed: (M, D) floats and (M,) labels (or None)."""
    if source == "files":
        return load_dataset(name, "test", data_dir=data_dir, dtype=dtype)
    run = load_run_data(name, data_dir, source, fallback=False, seed=seed, dtype=dtype)
    return run.x_test, run.y_test


# --- preprocessing -------------------------------------------------------------------------


def to_float(images, dtype=np.float32):
    """Flatten uint8 pixels and scale them to [0, 1]: ``x = images / 255``.

    Parameters
    ----------
    images : (N, 28, 28) or (N, D) uint8 array
    dtype : floating dtype of the result

    Returns
    -------
    x : (N, D) array of ``dtype``
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"to_float expects uint8 pixels, got {images.dtype}")
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"to_float needs a floating dtype, got {np.dtype(dtype)}")
    x = images.reshape(len(images), -1).astype(dtype)  # (N, D)
    x /= 255  # in place, so the dtype is kept
    return x


def binarize(x, rng):
    """Draw binary pixels: ``b ~ Bernoulli(x)``, elementwise, in the dtype of ``x``.

    Call it once for static binarization, or once per epoch for dynamic binarization.

    Parameters
    ----------
    x : (N, D) floating array of probabilities in [0, 1]
    rng : np.random.Generator, the only source of randomness

    Returns
    -------
    b : (N, D) array of 0s and 1s, same dtype as ``x``
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"binarize needs a np.random.Generator, got {type(rng).__name__}")
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"binarize expects floating probabilities, got {x.dtype}")
    if x.size and not (x.min() >= 0 and x.max() <= 1):  # also catches NaN
        raise ValueError(f"binarize needs probabilities in [0, 1], got values in "
                         f"[{np.nanmin(x):g}, {np.nanmax(x):g}]; scale the data first "
                         f"(e.g. pixels / 255).")
    u = rng.random(x.shape)  # (N, D) uniform in [0, 1): P(u < p) = p
    return (u < x).astype(x.dtype)


def train_val_split(x, y, n_val, rng):
    """Split off ``n_val`` random examples as a validation set.

    Parameters
    ----------
    x : (N, ...) array
    y : (N, ...) array, e.g. labels
    n_val : int, 0 <= n_val < N
    rng : np.random.Generator

    Returns
    -------
    x_train, y_train : N - n_val examples
    x_val, y_val : n_val examples
    """
    n, n_val = len(x), operator.index(n_val)
    if len(y) != n:
        raise ValueError(f"x has {n} examples but y has {len(y)}")
    if not 0 <= n_val < n:
        raise ValueError(f"n_val must be in [0, {n}), got {n_val}")
    order = rng.permutation(n)
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]
