"""Faults of the offline tools (issue #9 items 4, 8, 10; #10 item 5): write errors (file size
limit, disk full) end with a clear error and never hang; a second run into the same OUT is
refused; names that are not valid UTF-8 round-trip; a truncated shard is a ReadError, not a
SIGBUS; output folders are created or refused before the pass.

Process-level faults (rlimits, signals) run in a subprocess with a generous timeout, so that a
hang fails the test instead of blocking the suite; nothing here depends on timing."""
import base64
import errno
import fcntl
import json
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastprep as fp
from fastprep import cli
from fastprep import io as _offline
from fastprep.offline import _jobs
from fastprep.data import _shards
from fastprep.offline import _npy as _preprocess, _stats
from fastprep.data import index_source
from fastprep.offline import OutputLockedError, preprocess
from fastprep.data import ShardDataset

SIZE = 48
REPO = os.path.dirname(os.path.dirname(os.path.abspath(fp.__file__)))
TIMEOUT = 180  # a hang fails the test; a normal run takes about a second

# Runs the CLI with SIGXFSZ back at its default action (which kills the process at the file size
# limit), so that the tests also check that the tools ignore it while they write.
_CLI = ("import signal, sys\n"
        "from fastprep import cli\n"
        "if hasattr(signal, 'SIGXFSZ'):\n"
        "    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n"
        "sys.exit(cli.main(sys.argv[1:]))\n")


def run_cli(*args, fsize=None, cwd=None):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONDONTWRITEBYTECODE="1")

    def limit():
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([sys.executable, "-c", _CLI, *args], capture_output=True, text=True, env=env,
                          timeout=TIMEOUT, preexec_fn=limit, cwd=cwd)


def run_py(code):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=TIMEOUT)


def in_thread(fn, timeout=TIMEOUT):
    """Runs fn() in a thread; returns its exception (or None). Fails if it does not end."""
    box = {}

    def run():
        try:
            fn()
        except BaseException as e:  # noqa: BLE001
            box["error"] = e

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(timeout)
    assert not th.is_alive(), "hung"
    return box.get("error")


@pytest.fixture
def bad_first_tree(tree, photos):
    """tree + two undecodable files sorted first: with shard_size 4 and on_error skip, shard 0
    holds 2 samples and shards 1, 2 hold 4, so a file size limit between the two sizes fails in
    the middle of the run, after shard 0 is finished."""
    for i, name in enumerate(("00_bad1.jpg", "00_bad2.jpg")):
        with open(photos[i], "rb") as f:
            open(os.path.join(tree, "a", name), "wb").write(f.read()[:100])
    return tree


def shard_bytes(count, size=SIZE):
    return _preprocess._NPY_HEADER + count * 3 * size * size


def tmp_files(top):
    return [os.path.join(r, f) for r, _, fs in os.walk(top) for f in fs if f.endswith(".tmp")]


def same_output(a, b):
    da, db = ShardDataset(a), ShardDataset(b)
    assert len(da) == len(db) and da.names == db.names and da.failed == db.failed
    assert np.array_equal(da.read(range(len(da))), db.read(range(len(db))))
    assert np.array_equal(da.labels, db.labels) and da.classes == db.classes and da.stats == db.stats


# ---------------------------------------------------------------------------------------------- write errors

@pytest.mark.slow
def test_file_size_limit_mid_run_then_resume(bad_first_tree, tmp_path):
    args = ["preprocess", bad_first_tree, None, "--size", str(SIZE), "--shard-size", "4", "--on-error", "skip",
            "--threads", "2", "--quiet"]
    clean = str(tmp_path / "clean")
    args[2] = clean
    assert run_cli(*args).returncode == 0
    out = str(tmp_path / "out")
    args[2] = out
    limit = (shard_bytes(2) + shard_bytes(4)) // 2
    r = run_cli(*args, fsize=limit)
    assert r.returncode == 1, (r.returncode, r.stderr)  # not killed by SIGXFSZ (-25), not hung
    assert "images_00001.npy" in r.stderr and "too large" in r.stderr and "rerun" in r.stderr
    assert "Traceback" not in r.stderr
    files = set(os.listdir(out))
    assert {"images_00000.npy", "labels_00000.npy", "shard_00000.json"} <= files
    assert "images_00001.npy" not in files and "index.json" not in files and not tmp_files(out)
    for f in ("images_00000.npy", "labels_00000.npy", "shard_00000.json"):  # the finished shard is intact
        assert open(os.path.join(out, f), "rb").read() == open(os.path.join(clean, f), "rb").read()
    r = run_cli(*args)  # the limit lifted: resumes
    assert r.returncode == 0, r.stderr
    assert "1 resumed" in r.stdout and "2 written" in r.stdout
    same_output(out, clean)
    assert json.load(open(os.path.join(out, "index.json")))["files"] == \
        json.load(open(os.path.join(clean, "index.json")))["files"]


@pytest.mark.parametrize("nth", [1, 3])
def test_disk_full_in_writer_thread_does_not_hang(tree, tmp_path, monkeypatch, nth):
    """ENOSPC on the nth shard's images file. One sample per shard: the decoder runs ahead and waits
    for a free shard buffer, the state that deadlocked when the writer kept its buffer after an
    error."""
    clean = str(tmp_path / "clean")
    preprocess(tree, clean, size=SIZE, shard_size=1, batch_size=1, threads=1, progress=False)
    real_write = os.write
    calls = []

    def write(fd, data):  # the first write into the nth shard's images file fails
        if threading.current_thread().name == "fastprep-shard-writer":
            if os.readlink(f"/proc/self/fd/{fd}").endswith(f"images_{nth - 1:05d}.npy.tmp"):
                calls.append(1)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    out = str(tmp_path / "out")
    err = in_thread(lambda: preprocess(tree, out, size=SIZE, shard_size=1, batch_size=1, threads=1,
                                       progress=False))
    monkeypatch.setattr(os, "write", real_write)
    assert isinstance(err, _offline.WriteError) and err.errno == errno.ENOSPC, repr(err)
    assert calls == [1]
    bad = f"images_{nth - 1:05d}.npy"
    assert err.filename == os.path.join(out, bad) and "No space" in str(err) and bad in str(err)
    files = set(os.listdir(out))
    assert {f"images_{k:05d}.npy" for k in range(nth - 1)} <= files and bad not in files
    assert not tmp_files(out) and "index.json" not in files
    res = preprocess(tree, out, size=SIZE, shard_size=1, batch_size=1, threads=1, progress=False)
    assert res["shards_resumed"] == nth - 1 and res["shards_written"] == 10 - (nth - 1)
    same_output(out, clean)


@pytest.mark.parametrize("target", ["run.json", "labels_00001.npy", "shard_00001.json", "images_00001.npy",
                                    "index.json"])
def test_disk_full_on_every_kind_of_file(tree, tmp_path, monkeypatch, capsys, target):
    """ENOSPC on the rename of each kind of file preprocess writes: a clear CLI error naming it,
    exit 1, no .tmp left, no hang; a rerun completes."""
    real_replace = os.replace

    def replace(src, dst, *a, **k):
        if os.path.basename(dst) == target:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    out = str(tmp_path / "out")
    args = ["preprocess", tree, out, "--size", str(SIZE), "--shard-size", "4", "--threads", "1", "--quiet"]
    box = {}
    assert in_thread(lambda: box.setdefault("rc", cli.main(args))) is None
    assert box["rc"] == 1
    err = capsys.readouterr().err
    assert f"cannot write {os.path.join(out, target)}: No space left on device" in err
    assert not tmp_files(out) and "index.json" not in os.listdir(out)
    monkeypatch.setattr(os, "replace", real_replace)
    assert cli.main(args) == 0
    assert len(ShardDataset(out)) == 10


def test_jpeg_format_file_size_limit(tree, tmp_path):
    out = str(tmp_path / "jpeg")
    args = ["preprocess", tree, out, "--format", "jpeg", "--transform", "resize", "--size", "100", "--threads",
            "2", "--quiet"]
    r = run_cli(*args, fsize=1024)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "too large" in r.stderr and ".jpg" in r.stderr and "Traceback" not in r.stderr
    assert not tmp_files(out) and "index.json" not in os.listdir(out)
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert len(index_source(out)) == 10 and not tmp_files(out)


# ---------------------------------------------------------------------------------------------- lock

@pytest.mark.slow
def test_second_run_into_the_same_out_is_refused(tree, tmp_path):
    out = tmp_path / "out"
    os.makedirs(out)
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running preprocess holds it
        r = run_cli("preprocess", tree, str(out), "--size", str(SIZE), "--quiet")
        assert r.returncode == 2 and "in use by another fastprep preprocess" in r.stderr, r.stderr
        assert os.listdir(out) == [".lock"]  # nothing touched
        r = run_cli("preprocess", tree, str(out), "--format", "jpeg", "--quiet")
        assert r.returncode == 2 and "in use" in r.stderr
        with pytest.raises(OutputLockedError, match="in use"):  # a second open file in this process too
            preprocess(tree, str(out), size=SIZE, progress=False)
    finally:
        os.close(fd)
    r = run_cli("preprocess", tree, str(out), "--size", str(SIZE), "--quiet")
    assert r.returncode == 0, r.stderr
    # released at exit, even by a crash (os._exit in the middle of a shard)
    out2 = str(tmp_path / "out2")
    e = dict(os.environ, FASTPREP_TEST_KILL_AFTER_SHARDS="1",
             PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "fastprep", "preprocess", tree, out2, "--size", str(SIZE),
                        "--shard-size", "3", "--quiet"], capture_output=True, text=True, env=e, timeout=TIMEOUT)
    assert r.returncode == 75
    assert run_cli("preprocess", tree, out2, "--size", str(SIZE), "--shard-size", "3", "--quiet").returncode == 0


# ---------------------------------------------------------------------------------------------- names

@pytest.fixture
def latin1_tree(tree, photos):
    """tree + a file b"caf\\xe9.jpg" (Latin-1, not UTF-8), a class folder b"cl\\xe9", and an
    undecodable b"bad\\xff.jpg"."""
    root = os.fsencode(tree)
    shutil.copy(photos[0], os.path.join(root, b"a", b"caf\xe9.jpg"))
    os.makedirs(os.path.join(root, b"cl\xe9"))
    shutil.copy(photos[1], os.path.join(root, b"cl\xe9", b"x.jpg"))
    with open(photos[2], "rb") as f:
        open(os.path.join(root, b"b", b"bad\xff.jpg"), "wb").write(f.read()[:100])
    return tree


def test_non_utf8_names_npy(latin1_tree, tmp_path, capsys):
    ds = index_source(latin1_tree)
    out = str(tmp_path / "out")
    args = ["preprocess", latin1_tree, out, "--size", str(SIZE), "--shard-size", "4", "--on-error", "skip",
            "--quiet"]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "bad\\xff.jpg" in err  # printed readably
    raw = open(os.path.join(out, "index.json"), "rb").read()
    index = json.loads(raw.decode("utf-8"))  # valid UTF-8 JSON
    i = ds.names.index(os.fsdecode(b"a/caf\xe9.jpg"))
    assert index["files"][i] == "a/caf\\xe9.jpg"
    assert base64.b64decode(index["files_b64"][str(i)]) == b"a/caf\xe9.jpg"
    assert index["failed"][0]["file"] == "b/bad\\xff.jpg"
    assert base64.b64decode(index["failed"][0]["file_b64"]) == b"b/bad\xff.jpg"
    assert base64.b64decode(index["classes_b64"][str(index["classes"].index("cl\\xe9"))]) == b"cl\xe9"
    sd = ShardDataset(out)
    keep = [n for n in ds.names if not n.startswith("b/bad")]
    assert sd.names == keep and os.fsencode(sd.names[i]) == b"a/caf\xe9.jpg"
    assert sd.failed[0]["file"] == os.fsdecode(b"b/bad\xff.jpg")
    assert sd.classes == ds.classes and sd.class_to_idx == ds.class_to_idx
    assert cli.main(args) == 0 and "already complete" in capsys.readouterr().out  # no failure on rerun


def test_non_utf8_names_jpeg_and_stats(latin1_tree, tmp_path, capsys):
    out = str(tmp_path / "jpeg")
    assert cli.main(["preprocess", latin1_tree, out, "--format", "jpeg", "--transform", "resize", "--size", "64",
                     "--on-error", "skip", "--quiet"]) == 0
    assert b"caf\xe9.jpg" in os.listdir(os.path.join(os.fsencode(out), b"a"))  # the byte name is kept
    assert b"x.jpg" in os.listdir(os.path.join(os.fsencode(out), b"cl\xe9"))
    index = json.loads(open(os.path.join(out, "index.json"), "rb").read().decode("utf-8"))
    got = _offline.names_from_json(index["files"], index.get("files_b64"))
    assert os.fsdecode(b"a/caf\xe9.jpg") in got and got == index_source(out).names
    assert _offline.failures_from_json(index["failed"])[0]["file"] == os.fsdecode(b"b/bad\xff.jpg")
    capsys.readouterr()
    js = str(tmp_path / "stats.json")
    assert cli.main(["stats", latin1_tree, "--size", "32", "--on-error", "skip", "--out", js, "--quiet"]) == 0
    res = json.loads(open(js, "rb").read().decode("utf-8"))
    assert base64.b64decode(res["failed"][0]["file_b64"]) == b"b/bad\xff.jpg"
    assert res["failed"][0]["file"] == "b/bad\\xff.jpg"


# ---------------------------------------------------------------------------------------------- truncated shards

def test_truncated_shard_is_an_exception_not_sigbus(tree, tmp_path):
    out = str(tmp_path / "out")
    preprocess(tree, out, size=SIZE, shard_size=4, progress=False)
    code = f"""
import os, numpy as np, fastprep as fp
from fastprep.data import ShardDataset, ShardTruncatedError
out = {out!r}
ds = ShardDataset(out)
whole = ds.read(range(len(ds)))                      # the shard files are open now
path = os.path.join(out, "images_00001.npy")
os.truncate(path, 4096)                              # header only: the data pages are gone
for idx in ([4, 5], [7, 0, 5], list(range(len(ds)))):
    try:
        ds.read(idx)
    except ShardTruncatedError as e:
        assert isinstance(e, fp.ReadError) and isinstance(e, fp.DecodeError), type(e).__mro__
        assert e.source == path and "truncated" in str(e), str(e)
    else:
        raise SystemExit("no error for " + str(idx))
assert np.array_equal(ds.read([0, 9, 8]), whole[[0, 9, 8]])   # the other shards still read
try:
    ShardDataset(out).read([6])                      # a fresh dataset: checked when the file is opened
except ShardTruncatedError as e:
    assert "truncated" in str(e) and "images_00001.npy" in str(e)
else:
    raise SystemExit("no error on open")
L = fp.Loader(out, None, batch_size=4, shuffle=False, backend="numpy")
try:
    for _ in L:
        pass
except fp.ReadError as e:
    assert "truncated" in str(e)
else:
    raise SystemExit("the Loader did not raise")
print("alive")
"""
    r = run_py(code)
    assert r.returncode == 0 and "alive" in r.stdout, (r.returncode, r.stdout, r.stderr)
    # a rerun of preprocess notices the truncated shard and rewrites it
    res = preprocess(tree, out, size=SIZE, shard_size=4, progress=False)
    assert res["shards_written"] == 1 and res["shards_resumed"] == 2
    ref = str(tmp_path / "ref")
    preprocess(tree, ref, size=SIZE, shard_size=4, progress=False)
    same_output(out, ref)


def test_reads_with_few_open_files_and_threads(tree, tmp_path, monkeypatch):
    """Reads through the bounded cache of open shard files, from several threads, equal the data."""
    out = str(tmp_path / "out")
    preprocess(tree, out, size=SIZE, shard_size=1, progress=False)
    ref = ShardDataset(out).read(range(10))
    monkeypatch.setattr(_shards, "_FD_CACHE", 2)
    sd = ShardDataset(out)
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        for _ in range(50):
            idx = rng.integers(0, 10, 7)
            buf = np.zeros((9,) + ref.shape[1:], ref.dtype)
            pos = rng.permutation(9)[:7]
            sd.read(idx, out=buf, positions=pos)
            if not np.array_equal(buf[pos], ref[idx]):
                errors.append(seed)

    ths = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(TIMEOUT)
    assert not errors and len(sd._open) <= 2
    sd2 = pickle.loads(pickle.dumps(sd))
    assert np.array_equal(sd2.read(range(10)), ref) and sd2.names == sd.names
    sd.close()
    assert np.array_equal(sd.read([3, 1]), ref[[3, 1]])


# ---------------------------------------------------------------------------------------------- output folders

def test_stats_out_folder_created_or_refused_before_the_pass(tree, tmp_path, monkeypatch, capsys):
    real = _stats.compute_stats
    seen = {}

    def spy(*a, **k):
        seen["dir_exists"] = os.path.isdir(tmp_path / "new" / "dir")
        return real(*a, **k)

    monkeypatch.setattr(_stats, "compute_stats", spy)
    js = str(tmp_path / "new" / "dir" / "stats.json")
    assert cli.main(["stats", tree, "--size", "32", "--per-pixel", "--out", js, "--quiet"]) == 0
    assert seen["dir_exists"] and os.path.isfile(js) and os.path.isfile(js[:-5] + "_mean.npy")

    def never(*a, **k):
        raise AssertionError("the pass ran")

    monkeypatch.setattr(_stats, "compute_stats", never)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    capsys.readouterr()
    assert cli.main(["stats", tree, "--out", str(blocker / "sub" / "stats.json"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot create the output folder" in err and str(blocker) in err
    assert cli.main(["stats", tree, "--out", str(tmp_path), "--quiet"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_stats_write_error_after_the_pass(tree, tmp_path):
    js = str(tmp_path / "s" / "stats.json")
    r = run_cli("stats", tree, "--size", "64", "--per-pixel", "--out", js, "--quiet", fsize=50000)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "stats_mean.npy" in r.stderr and "too large" in r.stderr and "Traceback" not in r.stderr
    assert "fp.Normalize(mean=" in r.stdout  # the numbers are not lost
    assert not tmp_files(str(tmp_path / "s"))


def test_preprocess_out_folder_created_or_refused_before_the_pass(tree, tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "x" / "y" / "out")
    assert cli.main(["preprocess", tree, out, "--size", "32", "--quiet"]) == 0
    assert len(ShardDataset(out)) == 10

    def never(*a, **k):
        raise AssertionError("the pass ran")

    monkeypatch.setattr(_jobs, "iter_batches", never)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    capsys.readouterr()
    assert cli.main(["preprocess", tree, str(blocker / "out"), "--size", "32", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot create the output folder" in err and str(blocker) in err and "Traceback" not in err


def test_sigxfsz_is_restored(tree, tmp_path):
    if not hasattr(signal, "SIGXFSZ"):
        pytest.skip("no SIGXFSZ")
    code = f"""
import signal
from fastprep import preprocess
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
preprocess({tree!r}, {str(tmp_path / 'out')!r}, size=32, progress=False)
assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_DFL
print("ok")
"""
    r = run_py(code)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
