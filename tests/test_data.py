"""Tests for npvae.run.data: IDX parsing, file search, downloads (from 127.0.0.1 only), preprocessing.

Every test runs with HOME, XDG_CACHE_HOME, NPVAE_DATA_DIR, the system folders and the mirrors
pointed into tmp_path (see ``isolated``), so nothing touches the real user cache, the real
/usr/share/datasets, or the network, unless a test opts in explicitly.
"""

import functools
import gzip
import os
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npvae.run import data
from npvae.core.errors import DataError

# Real MNIST files: the test split bundled with npvae, always; the training labels only where
# $NPVAE_DATA_DIR (read before the tests isolate the environment) holds them, in DIR/mnist.
MNIST_DIR = data.BUNDLED_DIR
USER_MNIST_DIR = Path(os.environ.get("NPVAE_DATA_DIR") or "/nonexistent") / "mnist"
REAL_SYSTEM_DATA_DIRS = data.SYSTEM_DATA_DIRS
TEST_FILES = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


# --- helpers and fixtures ------------------------------------------------------------------


def write_idx(path, array, magic=None, cut=0, extra=b""):
    """Write ``array`` as a uint8 IDX file (gzipped if the name ends in .gz).

    ``magic`` overrides the magic number, ``cut`` drops payload bytes, ``extra`` appends some.
    """
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x00000800 | array.ndim if magic is None else magic
    header = magic.to_bytes(4, "big") + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = array.tobytes()
    raw = header + payload[: len(payload) - cut] + extra
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def fake_split(folder, n=5, prefix="t10k", seed=0, gz=True):
    """Write a small fake split (n images, n labels) into ``folder``; return the arrays."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(Path(folder) / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(Path(folder) / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return images, labels


def digests(path):
    """The md5 and sha256 of a file, in the layout of ``data.CHECKSUMS``."""
    content = Path(path).read_bytes()
    return {"md5": hashlib.md5(content).hexdigest(), "sha256": hashlib.sha256(content).hexdigest()}


def files_in(folder):
    """Names of all files (hidden ones too) under ``folder``; empty if it does not exist."""
    folder = Path(folder)
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Point every place data.py reads or writes into tmp_path, and every mirror nowhere."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NPVAE_DATA_DIR", raising=False)
    for proxy in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):  # 127.0.0.1 directly
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr(data, "SYSTEM_DATA_DIRS", (tmp_path / "system",))
    monkeypatch.setattr(data, "MIRRORS", {name: [] for name in data.DATASETS})
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT", 5)
    return tmp_path


@pytest.fixture
def server(tmp_path):
    """A quiet HTTP server on 127.0.0.1 serving tmp_path/www; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def dead_url():
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def serve_fake_mnist_test(tmp_path, monkeypatch, subdir=""):
    """Put a fake MNIST test split on the server and make the checksum table match it."""
    images, labels = fake_split(tmp_path / "www" / subdir, n=7)
    table = {f: digests(tmp_path / "www" / subdir / f) for f in TEST_FILES}
    monkeypatch.setitem(data.CHECKSUMS, "mnist", table)
    return images, labels


# --- read_idx ------------------------------------------------------------------------------


@pytest.mark.parametrize("filename", ["x-idx3-ubyte.gz", "x-idx3-ubyte"])
def test_read_idx_round_trip(tmp_path, filename):
    images = np.arange(4 * 28 * 28, dtype=np.uint8).reshape(4, 28, 28)
    out = data.read_idx(write_idx(tmp_path / filename, images))
    assert out.dtype == np.uint8 and out.shape == (4, 28, 28)
    np.testing.assert_array_equal(out, images)
    out[0, 0, 0] = 7  # the result is an ordinary, writable array


def test_read_idx_labels(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    np.testing.assert_array_equal(data.read_idx(write_idx(tmp_path / "l.gz", labels)), labels)


def corrupt_gzip(path, how):
    """Damage a gzip file: cut it short, flip a byte of its deflate stream, or replace it."""
    content = bytearray(path.read_bytes())
    if how == "truncated":
        content = content[: len(content) // 2]
    elif how == "flipped":
        content[len(content) // 2] ^= 0xFF
    else:
        content = bytearray(b"<html>404 not found</html>")
    path.write_bytes(bytes(content))


@pytest.mark.parametrize("how", ["truncated", "flipped", "not-gzip"])
def test_read_idx_corrupt_gzip(tmp_path, how):
    rng = np.random.default_rng(0)
    path = write_idx(tmp_path / "bad-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)))
    corrupt_gzip(path, how)
    with pytest.raises(DataError, match="gzip") as info:
        data.read_idx(path)
    assert str(path) in str(info.value)
    assert "Delete the file and download it again" in str(info.value)


@pytest.mark.parametrize(
    "magic",
    [0x00000D03, 0x00000903, 0x12340803, 0x00000800, 0x03080000],  # float, sbyte, junk, 0-d, LE
)
def test_read_idx_wrong_magic(tmp_path, magic):
    path = write_idx(tmp_path / "m-idx3-ubyte", np.zeros((2, 28, 28)), magic=magic)
    with pytest.raises(DataError, match="magic number") as info:
        data.read_idx(path)
    assert str(path) in str(info.value)
    assert "Delete the file" in str(info.value)


@pytest.mark.parametrize("cut, extra", [(1, b""), (784, b""), (0, b"\x00"), (0, b"junk")])
def test_read_idx_wrong_size(tmp_path, cut, extra):
    path = write_idx(tmp_path / "s-idx3-ubyte.gz", np.zeros((3, 28, 28)), cut=cut, extra=extra)
    with pytest.raises(DataError, match="wrong size") as info:
        data.read_idx(path)
    assert str(path) in str(info.value)
    assert f"holds {3 * 784 - cut + len(extra)}" in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\x00\x00", b"\x00\x00\x08\x03\x00\x00"])
def test_read_idx_short_header(tmp_path, content):
    path = tmp_path / "short"
    path.write_bytes(content)
    with pytest.raises(DataError, match="short") as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        data.read_idx(tmp_path / "nope.gz")


# --- load: validation and search order -----------------------------------------------------


def test_load_from_data_dir(tmp_path):
    images, labels = fake_split(tmp_path / "d")
    out_images, out_labels = data.load("mnist", "test", data_dir=tmp_path / "d", download=False)
    np.testing.assert_array_equal(out_images, images)
    np.testing.assert_array_equal(out_labels, labels)
    assert out_images.dtype == out_labels.dtype == np.uint8


def test_load_accepts_raw_files_and_train_split(tmp_path):
    images, _ = fake_split(tmp_path / "d", n=3, prefix="train", gz=False)
    out, _ = data.load("fashion-mnist", "train", data_dir=str(tmp_path / "d"), download=False)
    np.testing.assert_array_equal(out, images)


def test_search_order(tmp_path, monkeypatch):
    """data_dir, then $NPVAE_DATA_DIR, then the user cache, then the system folder."""
    places = {
        "data_dir": tmp_path / "arg",
        "env": tmp_path / "env",
        "cache": tmp_path / "cache" / "npvae" / "mnist",
        "system": tmp_path / "system" / "mnist",
    }
    for n, folder in enumerate(places.values(), start=1):
        fake_split(folder, n=n)  # the number of examples tells where a split came from
    monkeypatch.setenv("NPVAE_DATA_DIR", str(places["env"]))
    for n, name in enumerate(places, start=1):
        kwargs = {"data_dir": places["data_dir"]} if name == "data_dir" else {}
        images, _ = data.load("mnist", "test", download=False, **kwargs)
        assert len(images) == n, name
        for file in places[name].iterdir():  # remove this place; the next one should win
            file.unlink()
        if name == "env":
            monkeypatch.delenv("NPVAE_DATA_DIR")


def test_data_dir_per_dataset_subfolders(tmp_path):
    """One data folder can hold both datasets, which share file names, in subfolders."""
    fake_split(tmp_path / "d" / "mnist", n=2)
    fake_split(tmp_path / "d" / "fashion-mnist", n=3)
    assert len(data.load("mnist", "test", data_dir=tmp_path / "d", download=False)[0]) == 2
    assert len(data.load("fashion-mnist", "test", data_dir=tmp_path / "d", download=False)[0]) == 3


def test_folder_with_only_one_of_the_two_files_is_skipped(tmp_path):
    fake_split(tmp_path / "d", n=2)
    (tmp_path / "d" / "t10k-labels-idx1-ubyte.gz").unlink()
    fake_split(tmp_path / "cache" / "npvae" / "mnist", n=4)
    assert len(data.load("mnist", "test", data_dir=tmp_path / "d", download=False)[0]) == 4


def test_user_cache_respects_xdg_and_home(tmp_path, monkeypatch):
    assert data.cache_dir("mnist") == tmp_path / "cache" / "npvae" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.cache_dir("mnist") == tmp_path / "home" / ".cache" / "npvae" / "mnist"


@pytest.mark.parametrize("name, split, valid", [("cifar", "test", "mnist, fashion-mnist"),
                                                 ("mnist", "val", "train, test")])
def test_load_unknown_name_or_split(name, split, valid):
    with pytest.raises(DataError, match=valid):
        data.load(name, split)


def test_load_count_mismatch_names_both_files(tmp_path):
    folder = tmp_path / "d"
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((5, 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(4))
    with pytest.raises(DataError, match="5 images") as info:
        data.load("mnist", "test", data_dir=folder, download=False)
    message = str(info.value)
    assert str(folder / "t10k-images-idx3-ubyte.gz") in message
    assert str(folder / "t10k-labels-idx1-ubyte.gz") in message


@pytest.mark.parametrize("images_shape, labels_shape, bad_file", [
    ((5, 28, 27), (5,), "t10k-images"),
    ((5, 784), (5,), "t10k-images"),
    ((5, 28, 28), (5, 1), "t10k-labels"),
])
def test_load_wrong_shapes(tmp_path, images_shape, labels_shape, bad_file):
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros(images_shape))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(labels_shape))
    with pytest.raises(DataError, match="expected") as info:
        data.load("mnist", "test", data_dir=tmp_path, download=False)
    assert bad_file in str(info.value)


def test_load_missing_without_download_explains_the_fix(tmp_path):
    with pytest.raises(DataError) as info:
        data.load("mnist", "test", download=False)
    message = str(info.value)
    for needed in TEST_FILES + [str(tmp_path / "cache" / "npvae" / "mnist"), "--data-dir",
                                "NPVAE_DATA_DIR", str(tmp_path / "system" / "mnist")]:
        assert needed in message


def test_load_dataset_gives_flat_floats(tmp_path):
    images, labels = fake_split(tmp_path, n=6)
    x, y = data.load_dataset("mnist", "test", data_dir=tmp_path, download=False)
    assert x.shape == (6, 784) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(y, labels)
    x64, _ = data.load_dataset("mnist", "test", data_dir=tmp_path, dtype=np.float64)
    assert x64.dtype == np.float64


# --- real data -----------------------------------------------------------------------------


@pytest.mark.skipif(not (MNIST_DIR / TEST_FILES[0]).exists(), reason="no MNIST test split")
def test_real_mnist_test_split():
    images, labels = data.load("mnist", "test", data_dir=MNIST_DIR, download=False)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert set(np.unique(labels)) == set(range(10))
    assert images.max() == 255 and images.min() == 0
    for filename in TEST_FILES:
        assert digests(MNIST_DIR / filename) == data.CHECKSUMS["mnist"][filename]


@pytest.mark.skipif(not (USER_MNIST_DIR / "train-labels-idx1-ubyte.gz").exists(),
                    reason="no MNIST training labels in $NPVAE_DATA_DIR/mnist")
def test_real_mnist_train_labels():
    path = USER_MNIST_DIR / "train-labels-idx1-ubyte.gz"
    assert digests(path) == data.CHECKSUMS["mnist"]["train-labels-idx1-ubyte.gz"]
    labels = data.read_idx(path)
    assert labels.shape == (60000,) and set(np.unique(labels)) == set(range(10))


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="dataset-fashion-mnist absent"
)
def test_fashion_mnist_from_system_folder(monkeypatch):
    monkeypatch.setattr(data, "SYSTEM_DATA_DIRS", REAL_SYSTEM_DATA_DIRS)
    for split, n in [("train", 60000), ("test", 10000)]:
        images, labels = data.load("fashion-mnist", split, download=False)
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (n,) and set(np.unique(labels)) == set(range(10))


# --- downloads (127.0.0.1 only) ------------------------------------------------------------


def test_download_lands_in_cache(tmp_path, monkeypatch, server, capsys):
    images, labels = serve_fake_mnist_test(tmp_path, monkeypatch)
    monkeypatch.setitem(data.MIRRORS, "mnist", [server])
    out_images, out_labels = data.load("mnist", "test")
    np.testing.assert_array_equal(out_images, images)
    np.testing.assert_array_equal(out_labels, labels)
    cache = tmp_path / "cache" / "npvae" / "mnist"
    assert files_in(cache) == sorted(TEST_FILES)  # and no temporary files
    assert "downloading" in capsys.readouterr().err
    data.load("mnist", "test", download=False)  # the second time it is found in the cache


def test_download_into_data_dir(tmp_path, monkeypatch, server):
    serve_fake_mnist_test(tmp_path, monkeypatch)
    monkeypatch.setitem(data.MIRRORS, "mnist", [server])
    data.load("mnist", "test", data_dir=tmp_path / "d")
    assert files_in(tmp_path / "d" / "mnist") == sorted(TEST_FILES)
    assert files_in(tmp_path / "cache") == []


def test_download_only_fetches_missing_files(tmp_path, monkeypatch, server):
    serve_fake_mnist_test(tmp_path, monkeypatch)
    monkeypatch.setitem(data.MIRRORS, "mnist", [server])
    cache = tmp_path / "cache" / "npvae" / "mnist"
    cache.mkdir(parents=True)
    (cache / TEST_FILES[0]).write_bytes((tmp_path / "www" / TEST_FILES[0]).read_bytes())
    (tmp_path / "www" / TEST_FILES[0]).unlink()  # the server no longer has it
    images, _ = data.load("mnist", "test")
    assert len(images) == 7


@pytest.mark.parametrize("damage", ["flipped", "truncated"])
def test_corrupt_download_is_rejected_and_leaves_nothing(tmp_path, monkeypatch, server, damage):
    serve_fake_mnist_test(tmp_path, monkeypatch)
    corrupt_gzip(tmp_path / "www" / TEST_FILES[0], damage)
    monkeypatch.setitem(data.MIRRORS, "mnist", [server])
    with pytest.raises(DataError, match="checksum mismatch") as info:
        data.load("mnist", "test")
    assert TEST_FILES[0] in str(info.value)
    assert files_in(tmp_path / "cache") == []


@pytest.mark.parametrize("first", ["closed port", "404"])
def test_download_falls_through_to_next_mirror(tmp_path, monkeypatch, server, dead_url, first):
    images, _ = serve_fake_mnist_test(tmp_path, monkeypatch, subdir="good")
    bad = dead_url if first == "closed port" else server + "missing/"
    monkeypatch.setitem(data.MIRRORS, "mnist", [bad, server + "good"])
    out, _ = data.load("mnist", "test")
    np.testing.assert_array_equal(out, images)
    assert files_in(tmp_path / "cache" / "npvae" / "mnist") == sorted(TEST_FILES)


def test_offline_error_names_files_folder_and_flag(tmp_path, monkeypatch, server, dead_url):
    monkeypatch.setitem(data.MIRRORS, "mnist", [dead_url, server + "missing/"])
    with pytest.raises(DataError) as info:
        data.load("mnist", "test")
    message = str(info.value)
    cache = tmp_path / "cache" / "npvae" / "mnist"
    for needed in [TEST_FILES[0], TEST_FILES[1], str(cache), "--data-dir", "NPVAE_DATA_DIR",
                   "could not download", dead_url, "404"]:
        assert needed in message
    assert files_in(cache) == []


# --- preprocessing -------------------------------------------------------------------------

pixels = st.integers(1, 20).flatmap(
    lambda n: st.lists(st.integers(0, 255), min_size=n * 4, max_size=n * 4).map(
        lambda v: np.array(v, dtype=np.uint8).reshape(-1, 2, 2)
    )
)


@settings(deadline=None, max_examples=50)
@given(images=pixels, dtype=st.sampled_from([np.float16, np.float32, np.float64]))
def test_to_float_range_shape_dtype(images, dtype):
    x = data.to_float(images, dtype=dtype)
    assert x.dtype == dtype and x.shape == (len(images), 4)
    assert 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(np.rint(x.astype(np.float64) * 255), images.reshape(-1, 4))


def test_to_float_default_and_endpoints():
    x = data.to_float(np.array([[[0, 255]]], dtype=np.uint8))
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, [[0.0, 1.0]])


def test_to_float_rejects_non_uint8_and_non_float_dtype():
    with pytest.raises(TypeError, match="uint8"):
        data.to_float(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(TypeError, match="floating"):
        data.to_float(np.zeros((2, 4), dtype=np.uint8), dtype=np.int32)


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float16, np.float32, np.float64]))
def test_binarize_dtype_values_and_reproducibility(seed, dtype):
    x = np.random.default_rng(seed).random((8, 16)).astype(dtype)
    b = data.binarize(x, np.random.default_rng(seed))
    assert b.dtype == dtype and b.shape == x.shape
    assert set(np.unique(b)) <= {0, 1}
    np.testing.assert_array_equal(b, data.binarize(x, np.random.default_rng(seed)))


def test_binarize_mean_matches_probabilities():
    p = np.linspace(0, 1, 11, dtype=np.float32)
    x = np.tile(p, (20000, 1))  # (N, D): each column has one probability
    b = data.binarize(x, np.random.default_rng(1))
    np.testing.assert_allclose(b.mean(axis=0), p, atol=0.02)  # 4 standard errors at worst
    assert b[:, 0].max() == 0 and b[:, -1].min() == 1  # p = 0 and p = 1 are exact


def test_binarize_uses_only_the_given_generator():
    state = np.random.get_state()
    data.binarize(np.full((4, 4), 0.5), np.random.default_rng(0))
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]
    with pytest.raises(TypeError, match="Generator"):
        data.binarize(np.full((4, 4), 0.5), 0)
    with pytest.raises(TypeError, match="floating"):
        data.binarize(np.ones((4, 4), dtype=np.uint8), np.random.default_rng(0))


@settings(deadline=None, max_examples=50)
@given(n=st.integers(1, 50), data_=st.data())
def test_train_val_split_sizes_and_disjointness(n, data_):
    n_val = data_.draw(st.integers(0, n - 1))
    seed = data_.draw(st.integers(0, 2**32 - 1))
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)  # (N, 3) ids
    y = np.arange(n) * 10
    x_tr, y_tr, x_va, y_va = data.train_val_split(x, y, n_val, np.random.default_rng(seed))
    assert len(x_tr) == len(y_tr) == n - n_val and len(x_va) == len(y_va) == n_val
    assert x_tr.dtype == x_va.dtype == np.float32
    ids_tr, ids_va = x_tr[:, 0].astype(int), x_va[:, 0].astype(int)
    assert set(ids_tr).isdisjoint(ids_va) and set(ids_tr) | set(ids_va) == set(range(n))
    np.testing.assert_array_equal(y_tr, ids_tr * 10)  # labels stay with their examples
    np.testing.assert_array_equal(y_va, ids_va * 10)
    again = data.train_val_split(x, y, n_val, np.random.default_rng(seed))
    np.testing.assert_array_equal(again[2], x_va)


@pytest.mark.parametrize("n_val", [-1, 10, 11])
def test_train_val_split_rejects_bad_n_val(n_val):
    with pytest.raises(ValueError, match="n_val"):
        data.train_val_split(np.zeros((10, 2)), np.zeros(10), n_val, np.random.default_rng(0))


def test_train_val_split_rejects_length_mismatch():
    with pytest.raises(ValueError, match="examples"):
        data.train_val_split(np.zeros((10, 2)), np.zeros(9), 2, np.random.default_rng(0))
