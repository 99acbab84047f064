"""Faults a long-running job meets (issue #9): exit and Ctrl-C with a live iterator, fork, two
iterators of one loader, slot ownership under exceptions, unbounded reads, scratch growth,
silent loss while indexing, argument errors.

Exit, signal and fork cases run in a subprocess with a generous timeout: a hang fails the test
(TimeoutExpired) instead of stalling the suite; none of them depends on timing to pass.
"""
import gc
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import fastprep as fp
from fastprep import _core, _fallback
from fastprep.data import index_source

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(HERE)
TRAIN = [fp.RandomResizedCrop(32), fp.RandomHorizontalFlip(), fp.ToTensor()]
EVAL = [fp.Resize(40), fp.CenterCrop(32)]


def run_py(code, timeout=120, **kw):
    """Runs code in a fresh interpreter; a hang fails the test through TimeoutExpired."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT, **kw)


def assert_no_abort(r):
    assert r.returncode != -signal.SIGABRT and r.returncode != 134, r.stderr
    assert "terminate called" not in r.stderr, r.stderr


# ---------------------------------------------------------------------------------------------- exit

@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_exit_with_live_iterator_does_not_abort(backend):
    if backend == "torch":
        pytest.importorskip("torch")
    r = run_py(f"""
        import glob, fastprep as fp
        f = sorted(glob.glob('tests/data/photos/*.jpg')) * 40
        L = fp.Loader(f, fp.Compose([fp.RandomResizedCrop(224), fp.ToTensor()]), batch_size=64, threads=2,
                      backend={backend!r})
        it = iter(L)
        next(it)
        print("exiting", flush=True)
    """)
    assert_no_abort(r)
    assert r.returncode == 0 and "exiting" in r.stdout, r.stderr


# _KEYBOARD_INTERRUPT: the children of the Ctrl-C tests install Python's SIGINT handler themselves.
# A shell that starts the test run in the background (`cmd &`) leaves SIGINT ignored, and Python
# then keeps it ignored instead of raising KeyboardInterrupt, so the signal would test nothing.


def test_ctrl_c_while_waiting_for_a_batch_does_not_abort():
    code = """
        import glob, signal, sys, fastprep as fp
        signal.signal(signal.SIGINT, signal.default_int_handler)  # see _KEYBOARD_INTERRUPT
        f = sorted(glob.glob('tests/data/photos/*.jpg')) * 200
        L = fp.Loader(f, fp.Compose([fp.RandomResizedCrop(224), fp.ToTensor()]), batch_size=256, threads=2,
                      backend="numpy", prefetch=1)
        it = iter(L)
        next(it)
        print("ready", flush=True)
        for _ in it:  # SIGINT lands while waiting for a batch or in between
            pass
        print("finished the epoch before the signal", flush=True)
    """
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert p.stdout.readline().strip() == "ready"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    r = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    assert_no_abort(r)
    if "finished the epoch" not in out:  # the signal arrived in time: a KeyboardInterrupt exit
        assert "KeyboardInterrupt" in err and p.returncode in (1, -signal.SIGINT, 130), err


def test_exit_while_a_daemon_thread_runs_a_batch():
    """A user's own daemon thread inside a native batch when the interpreter exits (Note [GIL at
    exit]): the process exits normally. An object whose __del__ runs during module teardown
    holds finalization open for 2 s, so batches (a few hundred ms each) certainly end while the
    interpreter is finalizing: re-taking the GIL then is what used to abort."""
    r = run_py("""
        import glob, threading, time, fastprep as fp
        f = sorted(glob.glob('tests/data/photos/*.jpg')) * 3
        t = fp.Compose([fp.Resize(256), fp.CenterCrop(224), fp.ToTensor()])
        started = threading.Event()
        def work():
            while True:
                started.set()
                t.batch(f, threads=2)
        class SlowTeardown:
            def __del__(self, sleep=time.sleep):
                sleep(2.0)
        keep = SlowTeardown()
        threading.Thread(target=work, daemon=True).start()
        started.wait()
        print("exiting", flush=True)
    """)
    assert_no_abort(r)
    assert r.returncode == 0 and "exiting" in r.stdout, r.stderr


# ---------------------------------------------------------------------------------------------- fork

def test_compose_pool_rebuilt_after_fork():
    r = run_py("""
        import glob, os, numpy as np, fastprep as fp
        f = sorted(glob.glob('tests/data/photos/*.jpg'))
        t = fp.Compose([fp.RandomResizedCrop(64), fp.ToTensor()])
        a = t.batch(f, threads=2, seed=1)
        pid = os.fork()
        if pid == 0:
            b = t.batch(f, threads=2, seed=1)
            os._exit(0 if np.array_equal(a, b) and t._engine(2).rebuilds == 1 else 3)
        _, st = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(st))
        assert np.array_equal(a, t.batch(f, threads=2, seed=1)) and t._engine(2).rebuilds == 0
    """, timeout=120)
    assert r.returncode == 0 and "child 0" in r.stdout, r.stdout + r.stderr


def test_fork_while_a_loader_is_running():
    """The parent's loader is mid-epoch (its pool may be inside a batch, its locks held) when a
    child is forked: the parent's iterator raises in the child instead of hanging, and a new
    iteration in the child delivers the whole epoch, equal to the parent's."""
    r = run_py("""
        import glob, os, numpy as np, fastprep as fp
        f = sorted(glob.glob('tests/data/photos/*.jpg')) * 8
        L = fp.Loader(f, fp.Compose([fp.RandomResizedCrop(48), fp.ToTensor()]), batch_size=8, threads=2,
                      backend="numpy", seed=3)
        it = iter(L)
        first = next(it)[0].copy()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                next(it)
                code = 4
            except RuntimeError as e:
                code = 0 if "before fork" in str(e) else 5
            L.set_epoch(0)
            xs = np.concatenate([x.copy() for x, _ in L])
            os._exit(code if xs.shape[0] == len(f) and np.array_equal(xs[:8], first) else 6)
        rest = [x.copy() for x, _ in it]
        _, st = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(st), len(rest))
    """, timeout=180)
    assert r.returncode == 0 and "child 0 9" in r.stdout, r.stdout + r.stderr


def _needs_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the fork-after-CUDA case runs on a GPU machine")


def test_fork_after_cuda_child_unpinned_and_device_loader_raises():
    """Found on an H100 machine: the parent pinned its ring (CUDA initialised), so a child forked
    while the loader was running failed with CUDA's bare "initialization error" from the
    producer thread. Now the child's ring is plain memory (the whole epoch, equal to the
    parent's), and a device="cuda" loader says why it cannot run there.

    No torch arithmetic runs in the child (nor in the parent before the fork): torch's CPU ops
    use OpenMP, and GNU OpenMP hangs in a child forked after its pool started, with or without
    fastprep. The comparisons go through numpy."""
    _needs_cuda()
    r = run_py("""
        import glob, os, numpy as np, torch, fastprep as fp
        f = sorted(glob.glob('tests/data/photos/*.jpg')) * 8
        t = fp.Compose([fp.RandomResizedCrop(48), fp.ToTensor()])
        L = fp.Loader(f, t, batch_size=8, threads=2, seed=3)
        G = fp.Loader(f, t, batch_size=8, threads=2, seed=3, device="cuda")
        it = iter(L)
        x0 = next(it)[0]
        assert L.pin_memory and x0.is_pinned()
        first = x0.numpy().copy()
        g = next(iter(G))[0]
        assert g.is_cuda and np.array_equal(g.cpu().numpy(), first)
        assert fp.Loader(f, t, backend="numpy").pin_memory is False  # numpy backend: CUDA untouched
        pid = os.fork()
        if pid == 0:
            code = 0
            L.set_epoch(0)
            xs = [x.numpy().copy() for x, _ in L]
            # (no tensor.is_pinned() here: it would ask CUDA, which this child cannot use)
            if sum(len(x) for x in xs) != len(f) or not np.array_equal(xs[0], first) or L.pin_memory:
                code = 6
            for _ in range(2):  # and again: the loader stays unusable in this child
                try:
                    iter(G)
                    code = code or 7
                except RuntimeError as e:
                    code = code or (0 if "initialised CUDA" in str(e) and "spawn" in str(e) else 8)
            os._exit(code)
        rest = [x.numpy().copy() for x, _ in it]
        _, st = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(st), len(rest))
    """, timeout=300)
    assert r.returncode == 0 and "child 0 9" in r.stdout, r.stdout + r.stderr


def test_multiprocessing_fork_pool_uses_prebuilt_compose():
    r = run_py("""
        import glob, multiprocessing as mp, numpy as np, fastprep as fp
        f = sorted(glob.glob('tests/data/photos/*.jpg'))
        t = fp.Compose([fp.Resize(40), fp.CenterCrop(32), fp.ToTensor()])
        ref = t.batch(f, threads=2)
        def work(i):
            return t.batch(f[i:i + 2], threads=2)
        with mp.get_context("fork").Pool(2) as pool:
            parts = pool.map(work, range(0, len(f), 2))
        assert np.array_equal(np.concatenate(parts), ref)
        print("ok")
    """, timeout=180)
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr


@pytest.mark.slow
def test_torch_dataloader_fork_workers_use_prebuilt_compose():
    pytest.importorskip("torch")
    r = run_py("""
        import glob, numpy as np, torch, fastprep as fp
        f = sorted(glob.glob('tests/data/photos/*.jpg'))
        t = fp.Compose([fp.Resize(40), fp.CenterCrop(32), fp.ToTensor()])
        ref = t.batch(f, threads=2)  # the pool exists before the workers fork
        class DS(torch.utils.data.Dataset):
            def __len__(self): return len(f)
            def __getitem__(self, i): return t.batch([f[i]], threads=2)[0]
        dl = torch.utils.data.DataLoader(DS(), batch_size=5, num_workers=2, multiprocessing_context="fork")
        got = torch.cat(list(dl)).numpy()
        assert np.array_equal(got, ref)
        print("ok")
    """, timeout=240)
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr


# ---------------------------------------------------------------------------------------------- iterators

def _reference(L, t, epoch):
    order = L.indices(epoch)
    return t.batch([L.dataset.items[i] for i in order], seed=L.seed, epoch=epoch, indices=order)


def test_two_live_iterators_never_share_slots(photos):
    files = list(photos) * 3
    t = fp.Compose(TRAIN)
    L = fp.Loader(files, t, batch_size=4, threads=2, seed=5, backend="numpy", prefetch=2)
    it1, it2 = iter(L), iter(L)
    assert (it1.epoch, it2.epoch) == (0, 1)  # each iteration is its own epoch
    got1, got2, held = [], [], []
    for (x1, _), (x2, _) in zip(it1, it2):
        held.append((x1, x2))
        got1.append(x1.copy())
        got2.append(x2.copy())
    ref1, ref2 = _reference(L, t, 0), _reference(L, t, 1)
    assert np.array_equal(np.concatenate(got1), ref1)
    assert np.array_equal(np.concatenate(got2), ref2)
    # the held batches were never overwritten by the other iterator
    assert np.array_equal(np.concatenate([a for a, _ in held]), ref1)
    assert np.array_equal(np.concatenate([b for _, b in held]), ref2)


# ---------------------------------------------------------------------------------------------- ownership

def test_a_kept_slice_of_a_numpy_batch_is_never_overwritten(photos):
    """Keeping only x[0] (numpy slices point at the memory's owner, not at the batch array) still
    holds the batch's buffer."""
    files = list(photos) * 4
    t = fp.Compose(TRAIN)
    L = fp.Loader(files, t, batch_size=4, threads=2, seed=1, backend="numpy", prefetch=1)
    kept = [(x[0], x[1:3].reshape(-1)) for x, _ in L]
    ref = _reference(L, t, 0)
    assert np.array_equal(np.stack([a for a, _ in kept]), ref[::4])
    assert np.array_equal(np.concatenate([b for _, b in kept]), ref.reshape(10, 4, -1)[:, 1:3].reshape(-1))
    assert L.stats()["ring_slots"] >= 10


def test_closed_iterator_stops(photos):
    L = fp.Loader(list(photos), fp.Compose(EVAL), batch_size=2, backend="numpy")
    it = iter(L)
    next(it)
    it.close()
    with pytest.raises(StopIteration):
        next(it)


def test_ring_stays_bounded_when_fallback_files_fail(tmp_path, photos):
    """2% of the files fail through the Pillow fallback path with on_error='skip' and the
    garbage collector off: a DecodeError's traceback must not keep slots alive, so the ring
    stays at the steady-state bound (prefetch queued + one being filled + the consumer's current
    and next batch) instead of growing every epoch."""
    files = []
    for i in range(100):
        if i in (17, 63):
            p = tmp_path / f"bad_{i}.jpg"
            p.write_bytes(b"" if i == 17 else b"this is not an image at all")
        else:
            p = photos[i % len(photos)]
        files.append(str(p))
    prefetch = 2
    L = fp.Loader(files, fp.Compose(TRAIN), batch_size=8, threads=2, backend="numpy", on_error="skip",
                  prefetch=prefetch)
    gc.collect()
    gc.disable()
    try:
        for _ in range(5):
            n = sum(len(x) for x, _ in L)
            assert n == 98
    finally:
        gc.enable()
    assert len(L.errors) == 2 and L.errors.failures == 10  # one record per failing sample, with a count
    assert L.stats()["ring_slots"] <= prefetch + 3


# ---------------------------------------------------------------------------------------------- reads

def _special_files(tmp_path):
    zero = tmp_path / "zero.jpg"
    os.symlink("/dev/zero", zero)
    rnd = tmp_path / "urandom.png"
    os.symlink("/dev/urandom", rnd)
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    d = tmp_path / "folder.jpg"
    d.mkdir()
    return {"zero.jpg": "character device", "urandom.png": "character device", "fifo.png": "FIFO",
            "folder.jpg": "directory"}


def test_special_files_are_read_errors_not_hangs(tmp_path):
    kinds = _special_files(tmp_path)
    r = run_py(f"""
        import fastprep as fp
        t = fp.Compose([fp.Resize(32), fp.CenterCrop(32)])
        for name in {sorted(kinds)!r}:
            path = {str(tmp_path)!r} + "/" + name
            try:
                t(path)
            except fp.ReadError as e:
                print(name, "|", e)
    """, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = dict(ln.split(" | ", 1) for ln in r.stdout.strip().splitlines())
    assert sorted(lines) == sorted(kinds)
    for name, kind in kinds.items():
        assert name in lines[name] and kind in lines[name] and "not a regular file" in lines[name]


def test_fallback_reader_is_bounded(tmp_path):
    kinds = _special_files(tmp_path)
    for name, kind in kinds.items():
        with pytest.raises(fp.ReadError, match=kind):
            _fallback.read_file(str(tmp_path / name))
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(1000))
    with pytest.raises(fp.ImageTooLargeError, match="over the"):
        _fallback.read_file(str(big), limit=512)
    assert _fallback.read_file(str(big), limit=1008) == big.read_bytes()
    with pytest.raises(fp.ReadError, match="cannot open"):
        _fallback.read_file(str(tmp_path / "missing.png"))


# ---------------------------------------------------------------------------------------------- scratch

@pytest.mark.slow
def test_scratch_of_a_huge_rotated_photo_is_released():
    """An EXIF-rotated 48 MP photo shown turned under exact=True needs ~400 MB of scratch (the
    decoded rectangle an eval crop reads is most of the image, and its rotation); the worker
    releases it after the sample (Note [Scratch])."""
    pytest.importorskip("PIL")
    r = run_py("""
        import io, numpy as np, fastprep as fp
        from PIL import Image
        from fastprep import _core
        def rss():
            with open('/proc/self/statm') as f:
                return int(f.read().split()[1]) * 4096
        h, w = 6000, 8000
        img = np.zeros((h, w, 3), np.uint8)
        img[:, :, 0] = (np.arange(w) % 251).astype(np.uint8)[None]
        img[:, :, 1] = (np.arange(h) % 241).astype(np.uint8)[:, None]
        data = bytes(_core.encode_jpeg(img, 80))
        del img
        im = Image.open(io.BytesIO(data)); exif = Image.Exif(); exif[0x0112] = 6
        buf = io.BytesIO(); im.save(buf, 'JPEG', quality=80, exif=exif.tobytes()); data = buf.getvalue()
        del im, buf
        t = fp.Compose([fp.Resize(256), fp.CenterCrop(224)], exact=True, apply_exif_orientation=True)
        small = bytes(_core.encode_jpeg(np.full((300, 400, 3), 128, np.uint8), 90))
        t.batch([small], threads=1)
        before = rss()
        out = t.batch([data], threads=1)
        assert out.shape == (1, 224, 224, 3)
        after = rss()
        print("grew_mb", (after - before) / 2**20)
    """, timeout=180)
    assert r.returncode == 0, r.stderr
    grew = float(r.stdout.split()[-1])
    assert grew < 64, f"RSS grew by {grew:.0f} MB after one huge photo"


# ---------------------------------------------------------------------------------------------- indexing

def test_unreadable_class_folder_raises(tmp_path, photos, monkeypatch):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        shutil.copy(photos[0], tmp_path / c / "x.jpg")
    real = os.scandir
    bad = str(tmp_path / "b")

    def scandir(path="."):
        if os.fspath(path) == bad:
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(PermissionError, match="cannot list .*b.*Permission denied"):
        index_source(str(tmp_path))


def test_path_over_the_os_limit_raises(tmp_path, photos):
    (tmp_path / "a").mkdir()
    shutil.copy(photos[0], tmp_path / "a" / "x.jpg")
    # a chain of folders whose full path is longer than PATH_MAX, built relative to a dir fd
    fd = os.open(tmp_path / "a", os.O_RDONLY)
    try:
        for _ in range(25):
            name = "d" * 200
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        with open(os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "wb") as f:
            f.write(open(photos[0], "rb").read())
    finally:
        os.close(fd)
    with pytest.raises(OSError, match="longer than the OS allows"):
        index_source(str(tmp_path))
    shutil.rmtree(tmp_path / "a", ignore_errors=True)


def test_symlink_loop_is_reported_not_duplicated(tmp_path, photos):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        shutil.copy(photos[0], tmp_path / c / "x.jpg")
    os.symlink(str(tmp_path), tmp_path / "a" / "loop")
    with pytest.warns(UserWarning, match="loop"):
        ds = index_source(str(tmp_path))
    assert sorted(ds.names) == ["a/x.jpg", "b/x.jpg"]
    assert ds.labels.tolist() == [0, 1]


def test_empty_roots_raise_as_torchvision(tmp_path):
    with pytest.raises(FileNotFoundError, match="Couldn't find any class folder"):
        index_source(str(tmp_path))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="Found no valid file for the classes a, b"):
        index_source(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        fp.Loader(str(tmp_path), fp.Compose(EVAL))


def test_tar_and_binary_sources_are_named(tmp_path, photos):
    import tarfile

    tar = tmp_path / "shard-000000.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(photos[0], arcname="0001.jpg")
    assert [m.member for m in index_source(str(tar)).items] == ["0001.jpg"]  # a shard (tests/test_tar.py)
    plain = tmp_path / "shard_no_ext"
    shutil.copy(tar, plain)
    with pytest.raises(ValueError, match="tar archive without the .tar name"):
        index_source(str(plain))
    with pytest.raises(FileNotFoundError, match="128 shards named by"):
        fp.Loader(str(tmp_path / "train-{000000..000127}.tar"), fp.Compose(EVAL))
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="UTF-8 text file list"):
        index_source(str(binary))


# ---------------------------------------------------------------------------------------------- arguments

@pytest.mark.parametrize("kw, exc, what", [
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": 2 ** 64}, ValueError, "seed"),
    ({"seed": 1.5}, (TypeError, ValueError), "seed"),
    ({"batch_size": "8"}, TypeError, "batch_size"),
    ({"batch_size": 2.7}, TypeError, "batch_size"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"threads": -1}, ValueError, "threads"),
    ({"num_workers": -1}, ValueError, "num_workers"),
    ({"threads": 2, "num_workers": 3}, ValueError, "disagree"),
    ({"prefetch": 0}, ValueError, "prefetch"),
    ({"prefetch_factor": 0}, ValueError, "prefetch_factor"),
    ({"prefetch": 3, "prefetch_factor": 4}, ValueError, "disagree"),
    ({"timeout": -1}, ValueError, "timeout"),
    ({"collate_fn": 3}, TypeError, "collate_fn"),
])
def test_loader_argument_errors_name_the_argument(photos, kw, exc, what):
    with pytest.raises(exc, match=what):
        fp.Loader(list(photos), fp.Compose(EVAL), **kw)


def test_set_epoch_rejects_negative(photos):
    L = fp.Loader(list(photos), fp.Compose(EVAL), backend="numpy")
    with pytest.raises(ValueError, match="epoch"):
        L.set_epoch(-1)


def test_truncated_shard_fails_its_batch_and_the_epoch_goes_on(tmp_path, photos):
    out = str(tmp_path / "shards")
    fp.preprocess([str(p) for p in photos] * 2, out, size=32, shard_size=4, threads=1, progress=False)
    victim = os.path.join(out, "images_00002.npy")  # samples 8..11
    with open(victim, "r+b") as f:
        f.truncate(os.path.getsize(victim) // 2)
    L = fp.Loader(out, batch_size=4, shuffle=False, threads=1, backend="numpy", on_error="skip")
    got, failed = [], 0
    it = iter(L)
    while True:
        try:
            x, _ = next(it)
        except StopIteration:
            break
        except fp.ShardTruncatedError as e:
            assert "images_00002.npy" in str(e)
            failed += 1
            continue
        got.append(len(x))
    assert failed == 1 and got == [4, 4, 4, 4]


# ---------------------------------------------------------------------------------------------- issue 28

@pytest.mark.slow
def test_pillow_lazy_import_is_thread_safe(tmp_path, photos):
    """A batch on one thread takes BMPs through Pillow (imported lazily) while another thread calls
    batch() on JPEGs: the second used to read the half-imported PIL.Image module from sys.modules
    ("partially initialized module 'PIL.Image' has no attribute 'Image'", 5 runs of 5). A fresh
    interpreter each run, so Pillow is imported during the race."""
    pytest.importorskip("PIL")
    from PIL import Image

    for i, p in enumerate(photos[:6]):
        Image.open(p).convert("RGB").save(tmp_path / f"{i}.bmp")
    code = f"""
        import glob, threading, time
        import fastprep as fp
        t = fp.Compose([fp.Resize(64), fp.CenterCrop(64)])
        bmps = sorted(glob.glob({str(tmp_path)!r} + '/*.bmp'))
        jpg = sorted(glob.glob('tests/data/photos/*.jpg'))[0]
        errs, stop = [], []
        def spin():
            while not stop:
                try:
                    t.batch([jpg], threads=1)
                except Exception as e:
                    errs.append(repr(e))
                    return
        th = threading.Thread(target=spin)
        th.start()
        time.sleep(0.05)
        try:
            t.batch(bmps, threads=2)
        except Exception as e:
            errs.append(repr(e))
        stop.append(1)
        th.join()
        print("errors", errs)
    """
    for _ in range(3):
        r = run_py(code)
        assert r.returncode == 0, r.stderr
        assert "errors []" in r.stdout, r.stdout


def test_is_pil_image_never_reads_a_half_imported_module():
    """The type checks match classes by (module, name) along the MRO: a PIL.Image module in
    sys.modules without its Image class yet (another thread importing it) changes nothing."""
    pytest.importorskip("PIL")
    r = run_py("""
        import sys, types
        from PIL import Image
        import numpy as np
        from fastprep._checks import is_pil_image, is_torch_tensor
        im = Image.new("RGB", (2, 2))
        real = sys.modules["PIL.Image"]
        sys.modules["PIL.Image"] = types.ModuleType("PIL.Image")  # as while another thread imports it
        sys.modules["torch"] = types.ModuleType("torch")
        print(is_pil_image(im), is_pil_image(np.zeros(3)), is_torch_tensor(im))
        sys.modules["PIL.Image"] = real
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "False", "False"]


@pytest.mark.slow
def test_preprocess_bmps_on_two_threads(tmp_path, photos):
    """The CLI case of the lazy-import race: `fastprep preprocess` over BMPs (Pillow) and JPEGs
    with --threads 2, a fresh process each time."""
    pytest.importorskip("PIL")
    from PIL import Image

    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    for i, p in enumerate(photos):
        Image.open(p).convert("RGB").save(src / f"{i}.bmp")
        shutil.copy(p, src / f"{i}.jpg")
    for k in range(2):
        r = subprocess.run([sys.executable, "-m", "fastprep", "preprocess", str(tmp_path / "src"),
                            str(tmp_path / f"out{k}"), "--threads", "2", "--size", "32"],
                           capture_output=True, text=True, timeout=300, cwd=ROOT,
                           env=dict(os.environ, PYTHONPATH=ROOT))
        assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io to count bytes read")
def test_padded_jpeg_reads_only_the_image(tmp_path, photos):
    """A JPEG followed by 1.5 GB of (sparse) padding: each thread used to read the whole file (3 GB
    at 2 threads). Now the decoder reads on demand (Note [Bounded reads]): bytes read and memory
    stay of the order of the image itself. Measured in a fresh process: rchar and peak RSS."""
    data = open(photos[0], "rb").read()
    big = tmp_path / "padded.jpg"
    with open(big, "wb") as f:
        f.write(data)
        f.truncate(len(data) + (3 << 29))  # a hole: no disk used
    r = run_py(f"""
        import resource, fastprep as fp
        t = fp.Compose([fp.RandomResizedCrop(64), fp.ToTensor()])
        def rchar():
            with open("/proc/self/io") as f:
                return int(next(l for l in f if l.startswith("rchar:")).split()[1])
        t.batch([{str(photos[1])!r}], threads=2)  # warm up: imports, pools
        before, rss0 = rchar(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = t.batch([{str(big)!r}] * 4, threads=2, seed=1)
        print(rchar() - before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0)
    """, timeout=300)
    assert r.returncode == 0, r.stderr
    read, grew_kb = (int(v) for v in r.stdout.split())
    assert read < 4 * (len(data) + (256 << 10)), read  # the image's bytes (and a chunk) per sample
    assert grew_kb < 64 << 10, grew_kb


def test_empty_file_says_empty(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    t = fp.Compose(EVAL)
    with pytest.raises(fp.DecodeError, match="empty file"):
        t(str(empty))
    with pytest.raises(fp.DecodeError, match="empty data"):
        t(b"")


@pytest.mark.slow
def test_ctrl_c_stops_a_long_batch_promptly():
    """SIGINT during a long Compose.batch: the KeyboardInterrupt is raised from inside the batch
    (Note [Interrupts]), not after it. Checked by what ran, not by time: the batch of 4000
    samples on one thread is stopped long before its end (its samples after the interrupt are
    never run: the output keeps its sentinel there)."""
    r = run_py("""
        import glob, os, signal, threading, numpy as np, fastprep as fp
        signal.signal(signal.SIGINT, signal.default_int_handler)  # see _KEYBOARD_INTERRUPT
        files = sorted(glob.glob('tests/data/photos/*.jpg')) * 400
        t = fp.Compose([fp.Resize(256), fp.CenterCrop(224)], dtype="uint8")
        out = np.full((len(files), 224, 224, 3), 7, np.uint8)
        t.batch(files[:4], threads=1)
        threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        try:
            t.batch(files, threads=1, out=out)
            print("finished")
        except KeyboardInterrupt:
            untouched = int((out.reshape(len(files), -1)[:, :16] == 7).all(axis=1).sum())
            print("interrupted", untouched)
    """, timeout=300)
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    assert words[0] == "interrupted", r.stdout
    assert int(words[1]) > 1000  # most of the batch never ran


@pytest.mark.slow
def test_fastprep_simd_caps_and_names_the_variable():
    best = _core.cpu_simd().name
    def level(value):
        return run_py(f"""
            import os
            os.environ["FASTPREP_SIMD"] = {value!r}
            import fastprep as fp
            print(fp.simd_info()["default"])
            print(fp.Compose([fp.Resize((8, 8))]).simd)
        """)
    r = level(best.upper())  # any case
    assert r.returncode == 0 and r.stdout.split() == [best, best], r.stderr
    r = level("avx2" if best in ("scalar", "sse41", "avx2") else "neon")  # at or above this CPU: its best
    assert r.returncode == 0 and r.stdout.split()[0] == best, r.stderr
    r = level("scalar")
    assert r.stdout.split() == ["scalar", "scalar"], r.stderr
    r = level("avx512")
    assert r.returncode != 0 and "FASTPREP_SIMD='avx512' is not a SIMD level" in r.stderr


def test_argument_errors_name_the_argument():
    import torch

    with pytest.raises(ValueError, match="max_pixels must be"):
        fp.Compose(EVAL, max_pixels=2**70)
    with pytest.raises(ValueError, match="over max_pixels"):
        fp.Compose([fp.Resize(256), fp.CenterCrop(100000)])
    t = fp.Compose([fp.Resize((8, 8)), fp.ToTensor()])
    with pytest.raises(ValueError, match="out requires grad"):
        t.batch([np.zeros((9, 9, 3), np.uint8)], out=torch.zeros((1, 3, 8, 8), requires_grad=True))
    with pytest.raises(ValueError, match="simd must be a level name"):
        fp.Compose(EVAL, simd=2)


def test_random_erasing_value_must_be_finite():
    for bad in (float("nan"), float("inf"), (0.0, float("nan"), 1.0)):
        with pytest.raises(ValueError, match="RandomErasing value must be finite"):
            fp.RandomErasing(value=bad)


def test_replaced_tar_shard_of_the_same_size_is_reindexed(tmp_path, photos):
    """The tar index cache was keyed by path, size and mtime: a shard replaced by another of the
    same size (tar sizes come in 10240-byte records) gave the old shard's images and labels.
    Now inode, ctime and the first and last header blocks are part of the key (Note [Tar index
    identity])."""
    import tarfile

    def shard(path, order, label):
        with tarfile.open(path, "w") as tf:
            for i in order:
                data = open(photos[i], "rb").read()
                for name, payload in ((f"s{i:02d}.jpg", data), (f"s{i:02d}.cls", str(label).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    info.mtime = 0
                    import io as _io
                    tf.addfile(info, _io.BytesIO(payload))

    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    shard(a, [0, 1], 3)
    shard(b, [1, 0], 5)  # same members in another order: the same size
    assert os.path.getsize(a) == os.path.getsize(b)
    target = tmp_path / "train.tar"
    shutil.copy(a, target)
    st = os.stat(target)
    first = fp.index_source(str(target))
    assert first.labels.tolist() == [3, 3] and first.items[0].member == "s00.jpg"
    shutil.copy(b, target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # the same size and mtime
    again = fp.index_source(str(target))
    assert again.labels.tolist() == [5, 5] and again.items[0].member == "s01.jpg"


def test_preprocess_refuses_out_inside_the_source(tmp_path, photos):
    root = tmp_path / "src"
    (root / "a").mkdir(parents=True)
    for p in photos[:2]:
        shutil.copy(p, root / "a")
    with pytest.raises(ValueError, match="lies inside the source folder"):
        fp.preprocess(str(root), str(root / "out"), size=32, progress=False)
    assert not (root / "out").exists()
    fp.preprocess(str(root), str(tmp_path / "out"), size=32, progress=False)  # beside it: fine
    r = subprocess.run([sys.executable, "-m", "fastprep", "preprocess", str(root), str(root / "b" / "out")],
                       capture_output=True, text=True, timeout=120, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode != 0 and "lies inside the source folder" in r.stderr


def test_loader_errors_do_not_grow_across_epochs(tmp_path, photos):
    """One record per failing sample with a count, capped: the same bad files in every epoch used
    to append again (60,000 entries and a 4.9 MB state_dict after 3 epochs of 20k failures)."""
    import json

    from fastprep.data import ErrorLog

    root = tmp_path / "src" / "a"
    root.mkdir(parents=True)
    for i in range(6):
        shutil.copy(photos[i], root / f"{i}.jpg")
    for i in range(30):
        (root / f"bad{i:02d}.jpg").write_bytes(b"\xff\xd8\xff junk")
    L = fp.Loader(str(tmp_path / "src"), fp.Compose(EVAL), batch_size=8, on_error="skip", backend="numpy")
    sizes = []
    for epoch in range(3):
        for _ in L:
            pass
        sizes.append(len(json.dumps(L.state_dict())))
    assert len(L.errors) == 30 and L.errors.failures == 90
    assert all(L.errors.count(i) == 3 for i, _ in L.errors)
    assert sizes[0] == sizes[1] == sizes[2]
    log = ErrorLog()
    for epoch in range(3):
        for i in range(ErrorLog.MAX_RECORDS + 500):
            log.add(i, "bad")
    assert len(log) == ErrorLog.MAX_RECORDS and log.dropped == 3 * 500 and log.failures == 3 * (ErrorLog.MAX_RECORDS + 500)
    M = fp.Loader(str(tmp_path / "src"), fp.Compose(EVAL), batch_size=8, on_error="skip", backend="numpy",
                  seed=L.seed)
    M.load_state_dict(L.state_dict())
    assert list(M.errors) == list(L.errors) and M.errors.count(next(iter(L.errors))[0]) == 3


def test_every_sample_failing_under_skip_is_an_error(tmp_path):
    root = tmp_path / "src" / "a"
    root.mkdir(parents=True)
    for i in range(5):
        (root / f"bad{i}.jpg").write_bytes(b"\xff\xd8\xff junk")
    L = fp.Loader(str(tmp_path / "src"), fp.Compose(EVAL), batch_size=2, on_error="skip", backend="numpy")
    with pytest.raises(fp.AllSamplesFailedError, match="every sample failed.*5 failures"):
        list(L)


def test_one_iterator_shared_by_two_threads(tree):
    """Two threads draining one iterator get every batch once and then StopIteration, never the
    false "producer thread ended" error (issue 28)."""
    import threading

    L = fp.Loader(tree, fp.Compose(EVAL), batch_size=1, backend="numpy", prefetch=1)
    it = iter(L)
    got, errors = [], []

    def drain():
        try:
            for x, _ in it:
                got.append(1)
        except Exception as e:
            errors.append(repr(e))

    ths = [threading.Thread(target=drain) for _ in range(2)]
    [t.start() for t in ths]
    [t.join(60) for t in ths]
    assert errors == [] and len(got) == len(L.dataset)


def test_numpy_loader_does_not_import_torch(tree):
    r = run_py(f"""
        import sys, fastprep as fp
        L = fp.Loader({tree!r}, fp.Compose([fp.Resize(32), fp.CenterCrop(32)]), batch_size=4, backend="numpy")
        x, y = next(iter(L))
        print("torch" in sys.modules, type(x).__module__)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "numpy"]


def test_loader_pickles_and_resumes(tree):
    import pickle

    L = fp.Loader(tree, fp.Compose(TRAIN), batch_size=3, backend="numpy")
    it = iter(L)
    next(it)
    M = pickle.loads(pickle.dumps(L))
    assert M.seed == L.seed and M.classes == L.classes
    rest = [x for x, _ in it]
    assert all(np.array_equal(a, b) for a, (b, _) in zip(rest, M))


def test_dataloader_arguments_accepted_with_a_warning(tree):
    import multiprocessing as mp

    torch = pytest.importorskip("torch")
    with pytest.warns(UserWarning, match="multiprocessing_context is ignored"):
        fp.Loader(tree, fp.Compose(EVAL), multiprocessing_context=mp.get_context("spawn"), backend="numpy")
    with pytest.warns(UserWarning, match="in_order=False is ignored"):
        fp.Loader(tree, fp.Compose(EVAL), in_order=False, backend="numpy")
    g = torch.Generator().manual_seed(7)
    a = fp.Loader(tree, fp.Compose(EVAL), generator=g, backend="numpy").seed
    b = fp.Loader(tree, fp.Compose(EVAL), generator=torch.Generator().manual_seed(7), backend="numpy").seed
    assert a == b  # the seed is drawn from the generator, as DataLoader's base seed
    with pytest.raises(ValueError, match="batch_sampler is not supported"):
        fp.Loader(tree, fp.Compose(EVAL), batch_sampler=[[0, 1]])


def test_loader_over_preprocessed_tar_shards_has_the_classes(tree, tmp_path):
    fp.preprocess(tree, str(tmp_path / "tars"), format="tar", size=32, shard_size=4, progress=False)
    L = fp.Loader(str(tmp_path / "tars"), fp.Compose(EVAL), batch_size=4, backend="numpy")
    assert L.classes == ["a", "b", "c"]
