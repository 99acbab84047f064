import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastprep as fp
from fastprep import cli
from fastprep.data import index_source
from fastprep.offline import preprocess
from fastprep.data import ShardDataset, is_shard_dir

SIZE = 48
REPO = os.path.dirname(os.path.dirname(os.path.abspath(fp.__file__)))


def reference(items, dtype="uint8", layout="CHW", size=SIZE, transform="eval"):
    ops = ([fp.Resize(int(size / 0.875)), fp.CenterCrop(size)] if transform == "eval"
           else [fp.Resize((size, size))])
    if dtype != "uint8":
        ops.append(fp.ToTensor())
    return fp.Compose(ops, dtype=dtype, layout=layout).batch(items)


def run_cli(*args, env=None):
    e = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "fastprep", *args], capture_output=True, text=True, env=e,
                          timeout=120)


@pytest.mark.parametrize("dtype,layout", [("uint8", "CHW"), ("float16", "HWC"), ("float32", "CHW")])
def test_round_trip(tree, tmp_path, dtype, layout):
    out = str(tmp_path / "out")
    res = preprocess(tree, out, size=SIZE, dtype=dtype, layout=layout, shard_size=4, batch_size=3, threads=2,
                     progress=False)
    ds = index_source(tree)
    ref = reference(ds.items, dtype, layout)
    assert res["images"] == 10 and res["shards"] == 3 and res["failed"] == []
    index = json.load(open(os.path.join(out, "index.json")))
    assert index["files"] == ds.names and index["classes"] == ["a", "b", "c"]
    assert index["class_to_idx"] == ds.class_to_idx and index["shape"] == list(ref.shape[1:])
    assert [s["count"] for s in index["shards"]] == [4, 4, 2]
    # plain numpy, memory-mapped
    parts = [np.load(os.path.join(out, s["images"]), mmap_mode="r") for s in index["shards"]]
    assert all(isinstance(p, np.memmap) for p in parts)
    assert np.array_equal(np.concatenate(parts), ref)
    labels = np.concatenate([np.load(os.path.join(out, s["labels"])) for s in index["shards"]])
    assert labels.dtype == np.int64 and np.array_equal(labels, ds.labels)
    # ShardDataset
    sd = ShardDataset(out)
    assert len(sd) == 10 and sd.shape == ref.shape and sd.dtype == ref.dtype
    assert np.array_equal(sd.labels, ds.labels) and sd.classes == ds.classes
    assert sd.spec["name"] == "eval" and sd.spec["dtype"] == dtype and sd.spec["layout"] == layout
    assert np.array_equal(sd.read(range(10)), ref)
    perm = np.random.default_rng(1).permutation(10)
    out_buf = np.empty((10,) + ref.shape[1:], ref.dtype)
    assert sd.read(perm, out=out_buf) is out_buf and np.array_equal(out_buf, ref[perm])
    assert np.array_equal(sd.read([9, 0, 9, 5]), ref[[9, 0, 9, 5]])
    assert np.array_equal(sd.read([5, 6, 7]), ref[5:8]) and np.array_equal(sd.read([-1]), ref[-1:])
    buf = np.zeros((6,) + ref.shape[1:], ref.dtype)  # Loader style: rows of a bigger slot buffer
    sd.read([7, 2, 0], out=buf, positions=[5, 0, 3])
    assert np.array_equal(buf[[5, 0, 3]], ref[[7, 2, 0]]) and not buf[[1, 2, 4]].any()
    sd.read([4, 5], out=buf, positions=[1, 2])
    assert np.array_equal(buf[1:3], ref[4:6])
    assert is_shard_dir(out) and not is_shard_dir(tree)
    img, label = sd[3]
    assert np.array_equal(img, ref[3]) and label == ds.labels[3]
    with pytest.raises(IndexError):
        sd.read([10])
    # stats of the written data
    axes = (0, 2, 3) if layout == "CHW" else (0, 1, 2)
    scale = 255.0 if dtype == "uint8" else 1.0
    want = ref.astype(np.float64).mean(axis=axes) / scale
    assert np.allclose(index["stats"]["mean"], want, rtol=1e-9, atol=0)
    assert np.allclose(index["stats"]["std"], ref.astype(np.float64).std(axis=axes) / scale, rtol=1e-9, atol=0)


def test_resize_square_and_list_source(tree, tmp_path):
    ds = index_source(tree)
    lst = tmp_path / "files.csv"
    lst.write_text("path,label\n" + "".join(f"{os.path.relpath(p, tmp_path)},{c}\n"
                                              for p, c in zip(ds.items, ds.labels)))
    out = str(tmp_path / "out")
    preprocess(str(lst), out, transform="resize", size=40, shard_size=64, progress=False)
    sd = ShardDataset(out)
    assert np.array_equal(sd.read(range(len(sd))), reference(ds.items, size=40, transform="resize"))
    assert np.array_equal(sd.labels, ds.labels)


@pytest.mark.slow
def test_resume_after_kill(tree, tmp_path):
    out = str(tmp_path / "out")
    args = ["preprocess", tree, out, "--size", str(SIZE), "--shard-size", "3", "--threads", "2", "--quiet"]
    r = run_cli(*args, env={"FASTPREP_TEST_KILL_AFTER_SHARDS": "1"})
    assert r.returncode == 75, r.stderr
    files = set(os.listdir(out))
    assert {"images_00000.npy", "labels_00000.npy", "shard_00000.json", "run.json"} <= files
    assert "images_00001.npy" not in files and "images_00001.npy.tmp" in files  # half-written, not final
    assert "index.json" not in files
    assert is_shard_dir(out)
    with pytest.raises(FileNotFoundError, match="unfinished"):
        ShardDataset(out)
    before = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in files if f.endswith("00000.npy")}
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert "1 resumed" in r.stdout and "3 written" in r.stdout
    files = set(os.listdir(out))
    assert not any(f.endswith(".tmp") for f in files)
    assert {f"images_{k:05d}.npy" for k in range(4)} <= files and "index.json" in files
    assert {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in before} == before  # not rewritten
    sd = ShardDataset(out)
    ds = index_source(tree)
    assert np.array_equal(sd.read(range(len(sd))), reference(ds.items)) and np.array_equal(sd.labels, ds.labels)
    r = run_cli(*args)  # complete: nothing to do
    assert r.returncode == 0 and "already complete" in r.stdout
    # a different configuration in the same OUT is refused, unless --overwrite
    r = run_cli("preprocess", tree, out, "--size", "32", "--shard-size", "3", "--quiet")
    assert r.returncode == 2 and "different preprocessing run" in r.stderr
    assert cli.main(["preprocess", tree, out, "--size", "32", "--shard-size", "3", "--quiet", "--overwrite"]) == 0
    assert ShardDataset(out).sample_shape == (3, 32, 32)


@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_skip_moves_later_batches_of_a_shard_down(tree, tmp_path, photos, batch_size):
    """Several batches per shard and an undecodable file in the middle: the writer streams each
    shard's final rows while it is decoded, so the kept rows of every later batch must move down
    before they are handed over (rows of 6912 bytes: writes end mid-page)."""
    bad = os.path.join(tree, "a", "01z_truncated.jpg")
    with open(photos[3], "rb") as f:
        open(bad, "wb").write(f.read()[:3000])
    ds = index_source(tree)
    bad_i = ds.names.index("a/01z_truncated.jpg")
    assert 0 < bad_i % 6 < 5  # inside a shard, not at its ends
    out = str(tmp_path / "out")
    res = preprocess(tree, out, size=SIZE, shard_size=6, batch_size=batch_size, threads=2, on_error="skip",
                     progress=False)
    keep = [i for i in range(len(ds)) if i != bad_i]
    assert res["images"] == 10 and [f["index"] for f in res["failed"]] == [bad_i]
    sd = ShardDataset(out)
    assert np.array_equal(sd.read(range(10)), reference([ds.items[i] for i in keep]))
    assert np.array_equal(sd.labels, ds.labels[keep])
    index = json.load(open(os.path.join(out, "index.json")))
    assert [s["count"] for s in index["shards"]] == [5, 5]
    for s in index["shards"]:  # the .npy files are plain numpy, of exactly their size
        arr = np.load(os.path.join(out, s["images"]))
        assert arr.shape[0] == s["count"]


def test_corrupted_file(tree, tmp_path, photos, capsys):
    bad = os.path.join(tree, "b", "05b_truncated.jpg")
    with open(photos[3], "rb") as f:
        open(bad, "wb").write(f.read()[:3000])
    ds = index_source(tree)
    bad_i = ds.names.index("b/05b_truncated.jpg")
    out = str(tmp_path / "skip")
    assert cli.main(["preprocess", tree, out, "--size", str(SIZE), "--shard-size", "4", "--on-error", "skip",
                     "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "1 file(s) failed" in err and "b/05b_truncated.jpg" in err
    index = json.load(open(os.path.join(out, "index.json")))
    assert [(f["file"], f["index"]) for f in index["failed"]] == [("b/05b_truncated.jpg", bad_i)]
    assert index["failed"][0]["error"]
    keep = [i for i in range(len(ds)) if i != bad_i]
    assert index["files"] == [ds.names[i] for i in keep] and index["count"] == 10
    sd = ShardDataset(out)
    assert np.array_equal(sd.read(range(10)), reference([ds.items[i] for i in keep]))
    assert np.array_equal(sd.labels, ds.labels[keep])
    # zeros: the sample stays, black
    out = str(tmp_path / "zeros")
    preprocess(tree, out, size=SIZE, shard_size=4, on_error="zeros", progress=False)
    sd = ShardDataset(out)
    assert len(sd) == 11 and not sd.read([bad_i]).any() and len(sd.failed) == 1
    # raise: stops, names the file, keeps finished shards
    out = str(tmp_path / "raise")
    r = run_cli("preprocess", tree, out, "--size", str(SIZE), "--shard-size", "4", "--quiet")
    assert r.returncode == 1 and "05b_truncated.jpg" in r.stderr and "--on-error skip" in r.stderr
    assert "images_00000.npy" in os.listdir(out) and "index.json" not in os.listdir(out)


def test_jpeg_tree(tree, tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    out = str(tmp_path / "jpeg")
    res = preprocess(tree, out, transform="resize", size=100, format="jpeg", quality=92, threads=2, progress=False)
    ds = index_source(tree)
    assert res["images"] == 10 and res["written"] == 10
    mirrored = index_source(out)
    assert mirrored.names == ds.names and np.array_equal(mirrored.labels, ds.labels)
    for src, dst in zip(ds.items, mirrored.items):
        want = fp.Compose([fp.Resize(100)], dtype="uint8", layout="HWC")(src)
        with Image.open(dst) as im:
            got = np.asarray(im.convert("RGB"))
        assert got.shape == want.shape and min(got.shape[:2]) == 100
        mse = np.mean((got.astype(float) - want) ** 2)
        assert 10 * np.log10(255 ** 2 / mse) > 30
    index = json.load(open(os.path.join(out, "index.json")))
    assert index["format"] == "fastprep-jpeg" and index["files"] == ds.names and index["quality"] == 92
    t = {f: os.stat(p).st_mtime_ns for f, p in zip(mirrored.names, mirrored.items)}
    os.remove(mirrored.items[0])
    res = preprocess(tree, out, transform="resize", size=100, format="jpeg", quality=92, progress=False)
    assert res["written"] == 1 and res["skipped_existing"] == 9
    again = {f: os.stat(p).st_mtime_ns for f, p in zip(mirrored.names, mirrored.items)}
    assert all(again[f] == t[f] for f in mirrored.names[1:])
    # a rerun with other settings never keeps the earlier images (run.json), unless told to start over
    for changed in (dict(size=64, quality=92), dict(size=100, quality=80)):
        with pytest.raises(FileExistsError, match="different preprocessing run"):
            preprocess(tree, out, transform="resize", format="jpeg", progress=False, **changed)
    res = preprocess(tree, out, transform="resize", size=64, format="jpeg", progress=False, overwrite=True)
    assert res["written"] == 10
    with Image.open(mirrored.items[3]) as im:
        assert min(im.size) == 64


def test_python_m_fastprep():
    r = run_cli("--help")
    assert r.returncode == 0 and "preprocess" in r.stdout and "stats" in r.stdout and "bench" in r.stdout


def test_bench_guard_when_module_missing(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fastprep.bench", None)  # import fails as if the file were absent
    assert cli.main(["bench", "--whatever", "1"]) == 1
    assert "not available" in capsys.readouterr().err


def test_read_into_torch_tensor(tree, tmp_path):
    torch = pytest.importorskip("torch")
    out = str(tmp_path / "out")
    preprocess(tree, out, size=32, shard_size=4, progress=False)
    sd = ShardDataset(out)
    t = torch.zeros((5, 3, 32, 32), dtype=torch.uint8)
    assert sd.read([9, 1, 4], out=t, positions=[4, 0, 2]) is t
    assert np.array_equal(t.numpy()[[4, 0, 2]], sd.read([9, 1, 4]))


@pytest.mark.parametrize("where", ["tmp", "shm"])
def test_write_file_direct_and_fallback(tmp_path, where):
    import mmap

    from fastprep.offline._npy import write_file as _write_file

    d = str(tmp_path) if where == "tmp" else "/dev/shm"
    if not os.path.isdir(d):
        pytest.skip("no /dev/shm")
    buf = mmap.mmap(-1, 3 * 4096)
    data = np.random.default_rng(0).integers(0, 256, 3 * 4096, dtype=np.uint8).tobytes()
    buf[:] = data
    path = os.path.join(d, f"fastprep_write_test_{os.getpid()}.bin")
    try:
        for length in (5000, 8192, 1):
            _write_file(path, buf, length)
            assert open(path, "rb").read() == data[:length]
    finally:
        os.remove(path)


def test_consumer_error_does_not_hang(tree, tmp_path, monkeypatch):
    """An error while the decoder waits for a free shard buffer must not deadlock."""
    import threading

    from fastprep.offline import _stats

    def boom(self, *a, **k):
        import time

        time.sleep(0.5)  # the decoder runs ahead and waits for a third shard buffer
        raise RuntimeError("boom")

    monkeypatch.setattr(_stats.LevelMoments, "add", boom)
    result = {}

    def run():
        try:
            preprocess(tree, str(tmp_path / "out"), size=32, shard_size=1, batch_size=1, threads=1, progress=False)
        except Exception as e:  # noqa: BLE001
            result["error"] = e

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(30)
    assert not th.is_alive(), "preprocess hung"
    assert "boom" in str(result.get("error"))


def test_loader_reads_shards_without_decoding(tree, tmp_path):
    """A preprocessed folder is a Loader source: batches equal the stored samples, labels follow."""
    out = tmp_path / "shards"
    preprocess(tree, str(out), size=SIZE, dtype="uint8", shard_size=4)
    ds = ShardDataset(str(out))
    L = fp.Loader(str(out), None, batch_size=3, shuffle=True, seed=5, backend="numpy")
    assert L.classes == ds.classes
    order = L.indices()
    xs, ys = [], []
    for x, y in L:
        xs.append(x.copy())
        ys.append(y.copy())
    xs, ys = np.concatenate(xs), np.concatenate(ys)
    assert np.array_equal(xs, ds.read(order)) and np.array_equal(ys, ds.labels[order])
    with pytest.raises(ValueError, match="already transformed"):
        fp.Loader(str(out), fp.Compose([fp.CenterCrop(8)]))


def test_raise_mid_shard_leaves_no_tmp_file(tree, tmp_path, photos):
    """A shard whose first batches were already streamed to its .tmp file, then a file that
    fails under on_error="raise": the error names it and no partial file stays behind."""
    bad = os.path.join(tree, "a", "01z_truncated.jpg")
    with open(photos[3], "rb") as f:
        open(bad, "wb").write(f.read()[:3000])
    out = str(tmp_path / "out")
    with pytest.raises(fp.DecodeError, match="01z_truncated"):
        preprocess(tree, out, size=SIZE, shard_size=6, batch_size=1, threads=1, progress=False)
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
