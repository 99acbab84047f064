"""fastprep.ray on a real local Ray cluster (ray.init(num_cpus=2)): the map_batches UDF gives each
file exactly what Compose.batch gives it under its sample key, whatever the batching; the Ray
preprocess writes the CLI's files byte for byte; the Ray stats equal compute_stats."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="fastprep.ray needs Ray: pip install 'fastprep[ray]'")
pytest.importorskip("ray.data", reason="fastprep.ray needs Ray Data: pip install 'fastprep[ray]'")

import fastprep as fp  # noqa: E402
import fastprep.ray as fpr  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(fp.__file__)))
# Ray Data warns about its own deprecated settings when it reads its context.
pytestmark = pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray\..*")
SIZE = 40


@pytest.fixture(scope="module")
def cluster():
    # Workers import fastprep from this checkout (they inherit the environment of ray.init).
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = REPO + (os.pathsep + old if old else "")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


@pytest.fixture
def folder(tmp_path, photos):
    d = tmp_path / "flat"
    d.mkdir()
    for p in photos:
        shutil.copy(p, d / os.path.basename(p))
    return str(d)


def _train():
    return fp.Compose([fp.RandomResizedCrop(SIZE, scale=(0.1, 1.0)), fp.RandomHorizontalFlip(0.5), fp.ToTensor(),
                       fp.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])


def test_map_batches_keyed_by_path(cluster, folder):
    t = _train()
    seed, epoch = 7, 3

    def run(batch_size, blocks, udf):
        ds = ray.data.read_binary_files(folder, include_paths=True, override_num_blocks=blocks)
        if udf == "actor":  # the class form: one Compose and native pool per actor
            ds = ds.map_batches(fpr.Transform, fn_constructor_args=(t,),
                                fn_constructor_kwargs={"seed": seed, "epoch": epoch}, batch_size=batch_size,
                                num_cpus=1, compute=ray.data.ActorPoolStrategy(size=1), batch_format="numpy")
        else:  # an instance: run as tasks
            ds = ds.map_batches(fpr.Transform(t, seed=seed, epoch=epoch), batch_size=batch_size, num_cpus=1,
                                batch_format="numpy")
        return {r["path"]: r["image"] for r in ds.take_all()}

    a = run(3, 1, "actor")
    b = run(7, 5, "task")
    assert len(a) == 10 and set(a) == set(b)
    for path, img in a.items():
        with open(path, "rb") as f:
            want = t.batch([f.read()], seed=seed, epoch=epoch, indices=[fpr.sample_key(path)])[0]
        assert img.dtype == np.float32 and img.shape == (3, SIZE, SIZE)
        assert img.tobytes() == want.tobytes(), path  # exactly Compose.batch under the file's key
        assert b[path].tobytes() == img.tobytes(), path  # whatever the batch size and block split
    # the key drives the draws: the same bytes under another key crop elsewhere
    p0 = sorted(a)[0]
    with open(p0, "rb") as f:
        other = t.batch([f.read()], seed=seed, epoch=epoch, indices=[fpr.sample_key(p0 + "x")])[0]
    assert other.tobytes() != a[p0].tobytes()


def test_map_batches_webdataset(cluster, tmp_path, photos):
    """read_webdataset(decoder=None): the "jpg" column, keyed by "__key__", labels carried."""
    import io
    import tarfile

    (tmp_path / "wds").mkdir()
    with tarfile.open(tmp_path / "wds" / "shard-000000.tar", "w") as tf:
        for i, p in enumerate(photos):
            for name, data in ((f"s{i:03d}.jpg", open(p, "rb").read()), (f"s{i:03d}.cls", str(i % 3).encode())):
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    t = fp.Compose([fp.RandomResizedCrop(24), fp.RandomVerticalFlip()], dtype="uint8")
    ds = ray.data.read_webdataset(str(tmp_path / "wds"), decoder=None)
    rows = ds.map_batches(fpr.Transform(t, column="jpg", key_column="__key__", seed=1), batch_size=4,
                          batch_format="numpy").take_all()
    assert sorted(r["__key__"] for r in rows) == [f"s{i:03d}" for i in range(len(photos))]
    for r in rows:
        i = int(r["__key__"][1:])
        assert "jpg" not in r and r["cls"] == str(i % 3).encode()
        want = t.batch([photos[i]], seed=1, indices=[fpr.sample_key(r["__key__"])])[0]
        assert r["image"].tobytes() == want.tobytes()


def test_udf_threads_follow_num_cpus(cluster):
    t = fp.Compose([fp.Resize((8, 8))], dtype="uint8")

    @ray.remote
    def pool_threads():
        return fpr.Transform(t)._pool_threads()

    assert ray.get(pool_threads.options(num_cpus=2).remote()) == 2
    assert ray.get(pool_threads.options(num_cpus=1).remote()) == 1
    assert fpr.Transform(t, threads=3)._pool_threads() == 3


def test_udf_errors_and_policies(photos):
    """The UDF as a plain callable (no cluster needed): errors name the key, skip drops the row
    from every column, zeros keeps it black."""
    t = fp.Compose([fp.Resize((16, 16))], dtype="uint8")
    data = [open(p, "rb").read() for p in photos[:4]]
    data[2] = b"not an image"
    batch = {"bytes": np.array(data, dtype=object), "path": np.array(photos[:4]), "label": np.arange(4)}
    with pytest.raises(fp.DecodeError) as ei:
        fpr.Transform(t)(batch)
    assert ei.value.source == photos[2] and ei.value.reason and photos[2] in str(ei.value)
    with pytest.warns(UserWarning, match="1 undecodable row") as w:
        out = fpr.Transform(t, on_error="skip")(batch)
    assert photos[2] in str(w[0].message)  # no silent loss: the dropped row is named
    assert set(out) == {"path", "label", "image"} and list(out["label"]) == [0, 1, 3]
    assert list(out["path"]) == [photos[i] for i in (0, 1, 3)] and out["image"].shape == (3, 16, 16, 3)
    with pytest.warns(UserWarning, match="zero-filled"):
        out = fpr.Transform(t, on_error="zeros", output_column="x")(batch)
    assert out["x"].shape == (4, 16, 16, 3) and not out["x"][2].any() and out["x"][3].any()
    with pytest.raises(ValueError, match="include_paths=True"):
        fpr.Transform(t)({"bytes": batch["bytes"]})
    with pytest.raises(ValueError, match="fixed output size"):
        fpr.Transform(fp.Compose([fp.Resize(16)], dtype="uint8"), on_error="zeros")
    # int ids are keys as they are; strings hash to 63 bits
    assert fpr.sample_key(5) == 5 and 0 <= fpr.sample_key("a/b.jpg") < 2 ** 63
    assert fpr.sample_key("a/b.jpg") == fpr.sample_key(b"a/b.jpg") != fpr.sample_key("a/c.jpg")


def _files(d):
    # OUT/.lock holds the pid of the process that ran (the lock, not output): left out.
    return {n: open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d)) if n != ".lock"}


def test_preprocess_same_files_as_cli(cluster, tree, tmp_path, photos):
    bad = os.path.join(tree, "b", "05b_truncated.jpg")  # a failure inside a shard, under skip
    with open(photos[3], "rb") as f:
        open(bad, "wb").write(f.read()[:3000])
    cli_out, ray_out = str(tmp_path / "cli"), str(tmp_path / "ray")
    args = ["--size", str(SIZE), "--shard-size", "3", "--batch-size", "2", "--on-error", "skip", "--quiet"]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "fastprep", "preprocess", tree, cli_out, *args], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    res = fpr.preprocess(tree, ray_out, size=SIZE, shard_size=3, batch_size=2, on_error="skip", progress=False)
    assert res["images"] == 10 and res["shards"] == 4 and res["shards_written"] == 4
    assert [f["file"] for f in res["failed"]] == ["b/05b_truncated.jpg"]
    want = _files(cli_out)
    assert "index.json" in want and "images_00003.npy" in want and "run.json" in want
    assert _files(ray_out) == want  # every file, byte for byte (index.json and run.json included)
    # resume: a lost shard is rewritten alone, the rest kept
    os.remove(os.path.join(ray_out, "images_00001.npy"))
    res = fpr.preprocess(tree, ray_out, size=SIZE, shard_size=3, batch_size=2, on_error="skip", progress=False)
    assert res["shards_written"] == 1 and res["shards_resumed"] == 3 and _files(ray_out) == want
    res = fpr.preprocess(tree, ray_out, size=SIZE, shard_size=3, batch_size=2, on_error="skip", progress=False)
    assert res["already_complete"] and _files(ray_out) == want


def test_preprocess_tar_same_shards_as_cli(cluster, tree, tmp_path, photos):
    bad = os.path.join(tree, "c", "00_truncated.jpg")  # a failure inside a shard, under skip
    with open(photos[3], "rb") as f:
        open(bad, "wb").write(f.read()[:3000])
    cli_out, ray_out = str(tmp_path / "cli"), str(tmp_path / "ray")
    args = ["--format", "tar", "--transform", "resize", "--size", "48", "--shard-size", "4", "--on-error", "skip",
            "--quiet"]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "fastprep", "preprocess", tree, cli_out, *args], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    res = fpr.preprocess(tree, ray_out, format="tar", transform="resize", size=48, shard_size=4, on_error="skip",
                         progress=False)
    assert res["images"] == 10 and res["shards"] == 3 and res["written"] == 10
    assert [f["file"] for f in res["failed"]] == ["c/00_truncated.jpg"]
    want = _files(cli_out)
    assert sorted(want) == ["index.json", "run.json", "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert _files(ray_out) == want  # every shard and the index, byte for byte
    os.remove(os.path.join(ray_out, "shard-000001.tar"))  # resume: the lost shard alone is rewritten
    res = fpr.preprocess(tree, ray_out, format="tar", transform="resize", size=48, shard_size=4, on_error="skip",
                         progress=False)
    assert res["shards_resumed"] == 2 and res["written"] == 3 and _files(ray_out) == want  # 4 items, 1 failed


def test_preprocess_raise_names_file(cluster, tree, tmp_path):
    bad = os.path.join(tree, "c", "zz_bad.jpg")
    open(bad, "wb").write(b"\xff\xd8\xff\xe0 not a jpeg")
    out = str(tmp_path / "raise")
    with pytest.raises(fp.DecodeError) as ei:
        fpr.preprocess(tree, out, size=SIZE, shard_size=4, progress=False)
    assert ei.value.source == "c/zz_bad.jpg" and ei.value.index == 10 and ei.value.reason
    assert "index.json" not in os.listdir(out) and not any(n.endswith(".tmp") for n in os.listdir(out))
    with pytest.raises(ValueError, match="npy"):
        fpr.preprocess(tree, out, format="jpeg")


def test_stats_equal_compute_stats(cluster, tree, photos):
    with open(photos[0], "rb") as f:
        open(os.path.join(tree, "a", "00b_cut.jpg"), "wb").write(f.read()[:2000])
    want = fp.compute_stats(tree, size=SIZE, pca=True, per_pixel=True, on_error="skip", batch_size=4,
                            progress=False)
    got = fpr.stats(tree, size=SIZE, pca=True, per_pixel=True, on_error="skip", chunk_size=3, batch_size=2,
                    progress=False)
    assert want["images"] == 10 and len(want["failed"]) == 1
    timing = {"seconds", "images_per_second"}  # wall-clock: the only fields that may differ
    assert set(got) == set(want)
    assert {k: v for k, v in got.items() if k not in timing | {"per_pixel_arrays"}} == \
        {k: v for k, v in want.items() if k not in timing | {"per_pixel_arrays"}}
    for k in ("mean", "std"):
        assert got["per_pixel_arrays"][k].tobytes() == want["per_pixel_arrays"][k].tobytes()


def test_missing_ray_message(monkeypatch, tree, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    for call in (lambda: fpr.preprocess(tree, str(tmp_path / "o")), lambda: fpr.stats(tree)):
        with pytest.raises(ImportError, match=r"pip install 'fastprep\[ray\]'") as ei:
            call()
        assert isinstance(ei.value, fp.MissingDependencyError)
    assert not os.path.exists(tmp_path / "o")  # refused before anything was written
