"""The offline tools' files, each defined once in fastprep._formats: round trips, versions (files
without one read as version 1, newer ones are refused naming the file and both versions), missing
keys named; the native JPEG encoder behind ``preprocess --format jpeg`` (no Pillow needed); the
shared helpers of fastprep._util."""
import glob
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastprep as fp
from fastprep import _util, cli
from fastprep import io as _offline
from fastprep.offline import _jobs
from fastprep.data import index_source
from fastprep.io import (VERSION, FormatError, JpegIndex, RunRecord, ShardEntry, ShardIndex, ShardMeta,
                               StatsRecord, read_index)
from fastprep.offline import preprocess
from fastprep.data import ShardDataset, is_shard_dir

SIZE = 32
REPO = os.path.dirname(os.path.dirname(os.path.abspath(fp.__file__)))
LATIN1 = os.fsdecode(b"caf\xe9.jpg")  # a name that is not valid UTF-8 (surrogate escapes)
TRANSFORM = {"name": "eval", "size": 32, "ops": ["Resize(size=36)", "CenterCrop(size=(32, 32))"], "dtype": "uint8",
             "layout": "CHW", "color": "RGB", "exact": True, "output_size": [32, 32]}


def _records():
    failed = [{"index": 3, "file": "b/" + LATIN1, "error": "Premature end of JPEG file"}]
    moments = {"kind": "levels", "images": 4, "pixels": 4096, "s1": [1, 2, 3], "s2": [4, 5, 6]}
    stats = {"images": 4, "mean": [0.5, 0.25, 0.125], "std": [0.1, 0.2, 0.3], "mean_255": [127.5, 63.75, 31.875],
             "std_255": [25.5, 51.0, 76.5], "normalize": "fp.Normalize(mean=[...], std=[...])"}
    return {
        "run": RunRecord(count=12, files_sha1="ab" * 20, transform=TRANSFORM, format="npy", shard_size=4),
        "shard": ShardMeta(shard=1, start=4, stop=8, count=3, on_error="skip", moments=moments, failed=failed,
                           kept=[4, 5, 7]),
        "shard_full": ShardMeta(shard=0, start=0, stop=4, count=4, on_error="raise", moments=moments),
        "npy": ShardIndex(shape=(3, 32, 32), dtype="uint8", transform=TRANSFORM, layout="CHW", count=7,
                          shards=[ShardEntry("images_00000.npy", "labels_00000.npy", 4, 0, 0, 4),
                                  ShardEntry("images_00001.npy", "labels_00001.npy", 3, 4, 4, 8)],
                          source="/data/" + LATIN1, source_count=8, classes=["a", os.fsdecode(b"cl\xe9")],
                          class_to_idx={"a": 0, os.fsdecode(b"cl\xe9"): 1}, on_error="skip", shard_size=4,
                          stats=stats, failed=failed, files=["a/x.jpg", "a/" + LATIN1] + [f"a/{i}.jpg" for i in range(5)]),
        "jpeg": JpegIndex(files=["a/x.jpg", "a/" + LATIN1], labels=[0, 1], transform=TRANSFORM, quality=90,
                          source="/data/src", source_count=3, classes=["a"], class_to_idx={"a": 0}, on_error="skip",
                          sources=["a/x.png", "a/" + LATIN1], failed=failed),
        "stats": StatsRecord(images=4, channels=["R", "G", "B"], transform=TRANSFORM, mean=stats["mean"],
                             std=stats["std"], mean_255=stats["mean_255"], std_255=stats["std_255"],
                             source="/data/" + LATIN1, pixels_per_channel=4096, on_error="skip",
                             std_definition="population", seconds=1.5, images_per_second=2.7, failed=failed,
                             normalize=stats["normalize"], pca={"eigenvalues": [3.0, 2.0, 1.0]}),
    }


RECORDS = sorted(_records())


@pytest.mark.parametrize("kind", RECORDS)
def test_round_trip(kind, tmp_path):
    rec = _records()[kind]
    d = json.loads(json.dumps(rec.to_json()))  # through JSON text: what the file holds
    assert d["version"] == VERSION
    assert type(rec).from_json(d) == rec
    path = str(tmp_path / "f.json")
    rec.write(path)
    raw = open(path, "rb").read()
    raw.decode("utf-8")  # valid UTF-8 even with names that are not
    assert type(rec).read(path) == rec
    if kind in ("npy", "jpeg"):
        assert read_index(path) == rec
    assert not os.path.exists(path + ".tmp")


def test_names_stored_losslessly(tmp_path):
    rec = _records()["npy"]
    d = rec.to_json()
    assert d["files"][1] == "a/caf\\xe9.jpg" and d["files_b64"] == {"1": "YS9jYWbpLmpwZw=="}
    assert d["source_b64"] and d["failed"][0]["file_b64"] and d["classes_b64"]
    assert d["class_to_idx"] == {"a": 0, "cl\\xe9": 1}
    back = ShardIndex.from_json(json.loads(json.dumps(d)))
    assert os.fsencode(back.files[1]) == b"a/caf\xe9.jpg" and back.class_to_idx == rec.class_to_idx


@pytest.mark.parametrize("kind", RECORDS)
def test_file_without_version_reads_as_version_1_and_unknown_keys_are_ignored(kind, tmp_path):
    rec = _records()[kind]
    d = rec.to_json()
    del d["version"]  # as an older fastprep wrote it
    d["some_future_key"] = {"x": 1}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(d))
    got = type(rec).read(str(path))
    assert got == rec and got.version == 1


@pytest.mark.parametrize("kind", RECORDS)
def test_newer_version_is_refused(kind, tmp_path):
    rec = _records()[kind]
    d = rec.to_json()
    d["version"] = VERSION + 1
    path = tmp_path / "new.json"
    path.write_text(json.dumps(d))
    with pytest.raises(FormatError) as ei:
        type(rec).read(str(path))
    msg = str(ei.value)
    assert str(path) in msg and f"version {VERSION + 1}" in msg and f"version {VERSION}" in msg
    assert "newer fastprep" in msg and ei.value.path == str(path)
    assert isinstance(ei.value, ValueError)


@pytest.mark.parametrize("kind,key", [("run", "files_sha1"), ("shard", "moments"), ("shard_full", "count"),
                                      ("npy", "shards"), ("npy", "dtype"), ("jpeg", "files"), ("stats", "mean")])
def test_missing_key_is_named(kind, key, tmp_path):
    rec = _records()[kind]
    d = rec.to_json()
    del d[key]
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(d))
    with pytest.raises(FormatError) as ei:
        type(rec).read(str(path))
    msg = str(ei.value)
    assert str(path) in msg and repr(key) in msg and "missing" in msg


def test_missing_key_in_a_shard_entry_and_bad_json(tmp_path):
    d = _records()["npy"].to_json()
    del d["shards"][1]["images"]
    path = tmp_path / "index.json"
    path.write_text(json.dumps(d))
    with pytest.raises(FormatError, match=r"'shards\[1\]\.images' is missing"):
        ShardIndex.read(str(path))
    path.write_text('{"format": "fastprep-shards", ')
    with pytest.raises(FormatError, match="not valid JSON") as ei:
        ShardIndex.read(str(path))
    assert str(path) in str(ei.value)
    path.write_text("[1, 2]")
    with pytest.raises(FormatError, match="not a JSON object"):
        read_index(str(path))
    path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(FormatError, match="not a fastprep index"):
        read_index(str(path))
    path.write_text(json.dumps(_records()["jpeg"].to_json()))
    with pytest.raises(FormatError, match="index it as a source"):
        ShardIndex.read(str(path))


def test_run_record_differences_ignore_the_version():
    a = _records()["run"]
    b = RunRecord.from_json({**a.to_json(), "version": 1})
    assert a.differences(b) == []
    c = RunRecord(count=12, files_sha1="cd" * 20, transform=TRANSFORM, format="npy", shard_size=8)
    assert a.differences(c) == ["files_sha1", "shard_size"]


# ---------------------------------------------------------------------------------------------- real outputs

def _strip_versions(out):
    for p in glob.glob(os.path.join(out, "*.json")):
        d = json.load(open(p))
        d.pop("version", None)
        with open(p, "w") as f:
            json.dump(d, f)


def test_output_of_an_older_fastprep_still_reads_and_resumes(tree, tmp_path, capsys):
    out = str(tmp_path / "out")
    args = ["preprocess", tree, out, "--size", str(SIZE), "--shard-size", "4", "--quiet"]
    assert cli.main(args) == 0
    want = ShardDataset(out).read(range(10))
    for name in ("index.json", "run.json", "shard_00000.json"):
        assert json.load(open(os.path.join(out, name)))["version"] == VERSION
    _strip_versions(out)  # as written before files had a version
    sd = ShardDataset(out)
    assert len(sd) == 10 and np.array_equal(sd.read(range(10)), want) and sd.index.version == 1
    assert is_shard_dir(out)
    capsys.readouterr()
    assert cli.main(args) == 0 and "already complete" in capsys.readouterr().out
    os.remove(os.path.join(out, "index.json"))  # unfinished: the shards (no version) are resumed
    os.remove(os.path.join(out, "images_00002.npy"))
    assert cli.main(args) == 0
    assert "2 resumed" in capsys.readouterr().out
    assert np.array_equal(ShardDataset(out).read(range(10)), want)


def test_output_of_a_newer_fastprep_is_refused(tree, tmp_path, capsys):
    out = str(tmp_path / "out")
    args = ["preprocess", tree, out, "--size", str(SIZE), "--shard-size", "4", "--quiet"]
    assert cli.main(args) == 0
    for name in ("index.json", "run.json"):
        p = os.path.join(out, name)
        d = json.load(open(p))
        d["version"] = VERSION + 1
        json.dump(d, open(p, "w"))
    with pytest.raises(FormatError, match=f"format version {VERSION + 1}"):
        ShardDataset(out)
    capsys.readouterr()
    assert cli.main(args) == 2  # a rerun does not overwrite what it cannot read
    err = capsys.readouterr().err
    assert "run.json" in err and f"version {VERSION + 1}" in err and f"version {VERSION}" in err


# ---------------------------------------------------------------------------------------------- JPEG output

def _sampling(data):
    """{component id: (h, v)} from a JPEG's SOF marker."""
    i = 2
    while i < len(data):
        assert data[i] == 0xFF
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            n = data[i + 9]
            comps = data[i + 10:i + 10 + 3 * n]
            return {comps[3 * k]: (comps[3 * k + 1] >> 4, comps[3 * k + 1] & 15) for k in range(n)}
        i += 2 + length
    raise AssertionError("no SOF marker")


def test_jpeg_format_needs_no_pillow(tree, tmp_path):
    """--format jpeg with Pillow unimportable: native encoding, 4:2:0 as Pillow wrote, pixels within
    JPEG error of the uint8 resize."""
    out = str(tmp_path / "jpeg")
    code = textwrap.dedent(f"""
        import sys
        sys.modules["PIL"] = None  # `import PIL` (and PIL.Image) now raises ImportError
        from fastprep import cli
        rc = cli.main(["preprocess", {tree!r}, {out!r}, "--format", "jpeg", "--transform", "resize", "--size",
                       "100", "--quality", "95", "--threads", "2", "--quiet"])
        assert sys.modules["PIL"] is None
        sys.exit(rc)
    """)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "10 images" in r.stdout and "Pillow" not in r.stderr
    ds = index_source(tree)
    mirrored = index_source(out)
    assert mirrored.names == ds.names and np.array_equal(mirrored.labels, ds.labels)
    decode = fp.Compose([], dtype="uint8", layout="HWC")
    errors = []
    for src, dst in zip(ds.items, mirrored.items):
        data = open(dst, "rb").read()
        assert data[:3] == b"\xff\xd8\xff"
        assert _sampling(data) == {1: (2, 2), 2: (1, 1), 3: (1, 1)}  # 4:2:0, Pillow's default
        want = fp.Compose([fp.Resize(100)], dtype="uint8", layout="HWC")(src)
        got = decode(dst)
        assert got.shape == want.shape
        errors.append(np.abs(got.astype(np.int16) - want).mean())
    # JPEG error at quality 95 with 4:2:0 chroma: 0.7-2.3 levels on these photos, 4.1 on the one
    # with the most chroma detail (Pillow's encoder gives the very same pixels)
    assert np.mean(errors) < 3 and max(errors) < 6, errors
    index = JpegIndex.read(os.path.join(out, "index.json"))
    assert index.quality == 95 and index.files == ds.names and index.labels == ds.labels.tolist()


def test_encode_jpeg_matches_pillow_settings(photos):
    Image = pytest.importorskip("PIL.Image")
    import io

    from fastprep.offline import encode_jpeg

    img = fp.Compose([fp.Resize(120)], dtype="uint8", layout="HWC")(photos[0])
    ours = encode_jpeg(img, 90)
    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(buf, format="JPEG", quality=90)
    assert _sampling(ours) == _sampling(buf.getvalue())
    a = np.asarray(Image.open(io.BytesIO(ours)).convert("RGB"), np.int16)
    b = np.asarray(Image.open(buf).convert("RGB"), np.int16)
    assert np.abs(a - b).mean() < 0.5  # same tables, sampling and DCT: the same image (0 with libjpeg-turbo)


@pytest.mark.parametrize("quality", [0, 101, 2.5, True])
def test_jpeg_quality_is_checked_first(tree, tmp_path, quality):
    with pytest.raises(ValueError, match="quality"):
        preprocess(tree, str(tmp_path / "out"), format="jpeg", quality=quality, progress=False)


# ---------------------------------------------------------------------------------------------- helpers

def test_failure_reason_comes_from_the_exception(tree, photos):
    bad = os.path.join(tree, "a", "00_truncated.jpg")
    open(bad, "wb").write(open(photos[0], "rb").read()[:500])
    t = _jobs.build_transform("eval", SIZE)
    with pytest.raises(fp.DecodeError) as ei:
        t(bad)
    res = fp.compute_stats(tree, size=SIZE, on_error="skip", progress=False)
    assert [f["error"] for f in res["failed"]] == [ei.value.reason]
    # the batch's structured reason, when it gives one, is taken as is
    assert _jobs.sample_reason(t, bad, 0, 1, {"error": "x (sample 0): y", "error_reason": "y"}) == "y"
    assert _jobs.sample_reason(t, bad, 0, 1, {"error": "whatever"}) == ei.value.reason


def test_util_helpers():
    assert _util.eval_resize(224) == 256 and _util.eval_resize(32) == 36
    assert _util.default_threads() >= 1


def test_eval_resize_is_defined_once():
    """int(size / 0.875) lives in _util.eval_resize only."""
    pkg = os.path.dirname(os.path.abspath(fp.__file__))
    hits = [os.path.basename(p) for p in glob.glob(os.path.join(pkg, "**", "*.py"), recursive=True)
            if "/ 0.875)" in open(p, encoding="utf-8").read()]
    assert hits == ["_util.py"]


def test_one_progress_bar():
    from fastprep.bench import _run as _bench
    from fastprep.offline import _stats

    assert _bench.Progress is _util.Progress and _stats.Progress is _util.Progress
    assert not hasattr(_bench, "_Progress") and not hasattr(_offline, "Progress")
