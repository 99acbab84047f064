import gc
import os
import shutil
import threading

import numpy as np
import pytest

import fastprep as fp

TRAIN = [fp.RandomResizedCrop(32), fp.RandomHorizontalFlip(), fp.ToTensor(), fp.Normalize("imagenet")]


@pytest.fixture(scope="module")
def tree(tmp_path_factory, photos):
    """ImageFolder tree: 3 classes, 20 files, plus a non-image file that must be ignored."""
    root = tmp_path_factory.mktemp("tree")
    for i in range(20):
        cls = ["dog", "cat", "zebra"][i % 3]
        os.makedirs(root / cls, exist_ok=True)
        shutil.copy(photos[i % len(photos)], root / cls / f"img_{i:02d}.jpg")
    (root / "cat" / "notes.txt").write_text("not an image")
    return str(root)


def _collect(loader):
    xs, ys = [], []
    for x, y in loader:
        xs.append(np.array(x, copy=True))
        ys.append(np.array(y, copy=True))
    return np.concatenate(xs), np.concatenate(ys)


def _native_threads():
    return len(os.listdir("/proc/self/task"))


def test_imagefolder_labels_match_torchvision(tree):
    tv = pytest.importorskip("torchvision")
    L = fp.Loader(tree, fp.Compose(TRAIN), batch_size=4, backend="numpy")
    ref = tv.datasets.ImageFolder(tree)
    assert L.classes == ref.classes and L.class_to_idx == ref.class_to_idx
    assert [str(p) for p in L.dataset.items] == [p for p, _ in ref.samples]
    assert L.dataset.labels.tolist() == [y for _, y in ref.samples]


def test_batches_identical_across_thread_counts(tree):
    out = []
    for threads in (1, 2, 3):
        L = fp.Loader(tree, fp.Compose(TRAIN), batch_size=6, threads=threads, seed=4, backend="numpy")
        L.set_epoch(2)
        out.append(_collect(L))
    for x, y in out[1:]:
        assert np.array_equal(x, out[0][0]) and np.array_equal(y, out[0][1])


def test_epochs_reshuffle_and_are_reproducible(tree):
    L = fp.Loader(tree, fp.Compose(TRAIN), batch_size=5, seed=1, backend="numpy")
    a0 = L.indices(0)
    assert sorted(a0.tolist()) == list(range(20))
    assert not np.array_equal(a0, L.indices(1))
    assert np.array_equal(a0, fp.Loader(tree, fp.Compose(TRAIN), seed=1, backend="numpy").indices(0))
    x0, y0 = _collect(L)
    assert L.epoch == 0
    L.set_epoch(0)
    x0b, _ = _collect(L)  # the same epoch pinned again: same data
    assert np.array_equal(x0, x0b)
    x1, y1 = _collect(L)  # the next iteration advances to epoch 1 by itself
    assert L.epoch == 1
    assert sorted(y0.tolist()) == sorted(y1.tolist()) and not np.array_equal(x0, x1)
    assert len(L) == 4


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("world", [2, 3, 7])
def test_distributed_shards_disjoint_and_complete(tree, world, drop_last):
    shards = [fp.Loader(tree, fp.Compose(TRAIN), seed=9, rank=r, world_size=world, drop_last=drop_last,
                        backend="numpy").indices(3) for r in range(world)]
    lens = {len(s) for s in shards}
    assert len(lens) == 1
    allidx = np.concatenate(shards)
    if drop_last:
        assert len(set(allidx.tolist())) == len(allidx) == (20 // world) * world
    else:
        assert set(allidx.tolist()) == set(range(20))
        assert len(allidx) == -(-20 // world) * world  # padded as DistributedSampler
    if world == 3 and not drop_last:
        try:
            from torch.utils.data import DistributedSampler
        except ImportError:
            return
        ds = list(range(20))
        ref = [list(DistributedSampler(ds, num_replicas=3, rank=r, shuffle=False)) for r in range(3)]
        ours = [fp.Loader(tree, fp.Compose(TRAIN), shuffle=False, rank=r, world_size=3, backend="numpy").indices(0)
                .tolist() for r in range(3)]
        assert ours == ref


def test_held_batch_is_never_overwritten(tree):
    L = fp.Loader(tree, fp.Compose(TRAIN), batch_size=2, prefetch=2, backend="numpy")
    it = iter(L)
    held, held_copy = [], []
    for x, y in it:
        held.append((x, y))
        held_copy.append((x.copy(), y.copy()))
    for (x, y), (xc, yc) in zip(held, held_copy):
        assert np.array_equal(x, xc) and np.array_equal(y, yc)
    assert L.stats()["ring_slots"] >= len(held)


def test_steady_state_reuses_buffers(tree):
    """30 batches over 6 epochs are served from a handful of slots: nothing is allocated per batch
    once references are released. The bound is 1 slot being filled + `prefetch` queued + the
    consumer's current and next batch."""
    L = fp.Loader(tree, fp.Compose(TRAIN), batch_size=4, prefetch=2, backend="numpy")
    batches = 0
    for epoch in range(6):
        L.set_epoch(epoch)
        for x, y in L:
            batches += 1
    st = L.stats()
    assert batches == 30 and st["batches"] == 30
    assert st["allocated_slots"] == st["ring_slots"] <= 2 + 3


def test_torch_backend_and_dtypes(tree):
    torch = pytest.importorskip("torch")
    L = fp.Loader(tree, fp.Compose(TRAIN, dtype="bfloat16"), batch_size=8, backend="torch", seed=0)
    x, y = next(iter(L))
    assert x.dtype == torch.bfloat16 and x.shape == (8, 3, 32, 32) and y.dtype == torch.int64
    ref = fp.Loader(tree, fp.Compose(TRAIN), batch_size=8, backend="torch", seed=0)
    xf, _ = next(iter(ref))
    assert torch.allclose(x.float(), xf, rtol=2 ** -7, atol=1e-6)


def test_dlpack_export(tree):
    L = fp.Loader(tree, fp.Compose(TRAIN), batch_size=4, backend="numpy")
    x, y = next(iter(L))
    z = np.from_dlpack(x)
    assert np.shares_memory(z, x) and np.array_equal(z, x)


def _bad_tree(tmp_path, photos, n_good=9, bad_at=(3,)):
    root = tmp_path / "bad"
    (root / "a").mkdir(parents=True)
    for i in range(n_good + len(bad_at)):
        if i in bad_at:
            (root / "a" / f"{i:02d}.jpg").write_bytes(open(photos[0], "rb").read()[:300])
        else:
            shutil.copy(photos[i % len(photos)], root / "a" / f"{i:02d}.jpg")
    return str(root)


def test_on_error_raise(tmp_path, photos):
    root = _bad_tree(tmp_path, photos)
    L = fp.Loader(root, fp.Compose(TRAIN), batch_size=4, shuffle=False, backend="numpy")
    it = iter(L)
    with pytest.raises(fp.DecodeError, match="03.jpg") as ei:
        next(it)
    assert ei.value.index == 3
    x, y = next(it)  # the loader goes on with the next batch
    assert len(x) == 4
    x, y = next(it)
    assert len(x) == 2
    with pytest.raises(StopIteration):
        next(it)

def test_on_error_skip_keeps_batches_full(tmp_path, photos):
    root = _bad_tree(tmp_path, photos, n_good=10, bad_at=(1, 5))
    L = fp.Loader(root, fp.Compose(TRAIN), batch_size=4, shuffle=False, on_error="skip", backend="numpy", seed=0)
    sizes = [len(x) for x, _ in L]
    assert sizes == [4, 4, 2]
    assert sorted(os.path.basename(L.dataset.items[i]) for i, _ in L.errors) == ["01.jpg", "05.jpg"]
    xs, ys = _collect(L)
    assert xs.shape[0] == 10
    # the good samples are all there, each with the crop keyed by its own dataset index
    t = fp.Compose(TRAIN)
    keep = [i for i in range(12) if i not in (1, 5)]
    ref = t.batch([L.dataset.items[i] for i in keep], seed=0, epoch=L.epoch, indices=keep)  # 2nd iteration: epoch 1
    # a failed slot is refilled by the next sample, so order differs: match rows as a multiset
    ours = sorted(r.tobytes() for r in xs)
    theirs = sorted(r.tobytes() for r in ref)
    assert ours == theirs


def test_on_error_zeros(tmp_path, photos):
    root = _bad_tree(tmp_path, photos)
    L = fp.Loader(root, fp.Compose(TRAIN), batch_size=10, shuffle=False, on_error="zeros", backend="numpy")
    x, y = next(iter(L))
    assert np.all(x[3] == 0) and not np.all(x[2] == 0) and len(L.errors) == 1


def test_break_and_del_stop_threads(tree):
    gc.collect()
    before_py = threading.active_count()
    before_native = _native_threads()
    L = fp.Loader(tree, fp.Compose(TRAIN), batch_size=2, threads=3, backend="numpy")
    for i, (x, y) in enumerate(L):
        if i == 1:
            break
    del x, y
    gc.collect()
    assert not [t for t in threading.enumerate() if t.name == "fastprep-loader" and t.is_alive()]
    it = iter(L)
    next(it)
    del it
    assert not [t for t in threading.enumerate() if t.name == "fastprep-loader" and t.is_alive()]
    del L
    gc.collect()
    assert threading.active_count() == before_py
    assert _native_threads() == before_native


def test_pin_memory_true_without_cuda_warns(tree):
    """As DataLoader: pin_memory=True on a machine without CUDA warns and does not pin (issue #10)."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.warns(UserWarning, match="pin_memory=True but no CUDA"):
        L = fp.Loader(tree, fp.Compose(TRAIN), pin_memory=True)
    assert L.pin_memory is False
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        fp.Loader(tree, fp.Compose(TRAIN), device="cuda")
    assert fp.Loader(tree, fp.Compose(TRAIN)).pin_memory is False


def _cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: pinned-memory and GPU-feed paths run on a GPU machine")
    return torch


def test_cuda_pinned_buffers(tree):
    _cuda()
    L = fp.Loader(tree, fp.Compose(TRAIN), batch_size=4)
    x, y = next(iter(L))
    assert L.pin_memory and x.is_pinned()


def test_cuda_device_feed_matches_cpu(tree):
    torch = _cuda()
    cpu = fp.Loader(tree, fp.Compose(TRAIN), batch_size=4, seed=3, pin_memory=False, backend="torch")
    gpu = fp.Loader(tree, fp.Compose(TRAIN), batch_size=4, seed=3, device="cuda")
    held = []
    for (xc, yc), (xg, yg) in zip(cpu, gpu):
        assert xg.is_cuda and yg.is_cuda
        held.append((xg, xc.clone()))
        torch.cuda.synchronize()
        assert torch.equal(xg.cpu(), xc) and torch.equal(yg.cpu(), yc)
    for xg, xc in held:  # held GPU batches stay intact while later ones were produced
        assert torch.equal(xg.cpu(), xc)


# ---------------------------------------------------------------------------------------------- issue #10

def test_each_iteration_advances_the_epoch(tree):
    """As DataLoader reshuffles on every iteration: without set_epoch, epoch k's order and crops
    are those of set_epoch(k), so the rule stays a pure function of (seed, epoch)."""
    L = fp.Loader(tree, fp.Compose(TRAIN), batch_size=6, seed=2, backend="numpy")
    assert L.next_epoch == 0
    auto = [_collect(L) for _ in range(3)]
    assert L.epoch == 2 and L.next_epoch == 3
    assert not np.array_equal(auto[0][0], auto[1][0])
    pinned = fp.Loader(tree, fp.Compose(TRAIN), batch_size=6, seed=2, backend="numpy")
    for e in (2, 0, 1):
        pinned.set_epoch(e)
        x, y = _collect(pinned)
        assert np.array_equal(x, auto[e][0]) and np.array_equal(y, auto[e][1])
    pinned.set_epoch(7)  # pins the next iteration; the one after continues from there
    _collect(pinned)
    assert pinned.epoch == 7 and pinned.next_epoch == 8


def test_seed_none_draws_and_records_entropy(tree):
    L = fp.Loader(tree, fp.Compose(TRAIN), batch_size=20, seed=None, backend="numpy")
    M = fp.Loader(tree, fp.Compose(TRAIN), batch_size=20, seed=None, backend="numpy")
    assert isinstance(L.seed, int) and 0 <= L.seed < 2 ** 64 and L.seed != M.seed
    replay = fp.Loader(tree, fp.Compose(TRAIN), batch_size=20, seed=L.seed, backend="numpy")
    assert np.array_equal(_collect(L)[0], _collect(replay)[0])


def test_dataloader_vocabulary(tree):
    L = fp.Loader(tree, fp.Compose(TRAIN), batch_size=4, num_workers=3, persistent_workers=True, backend="numpy",
                  prefetch_factor=3, collate_fn=lambda x, y: {"x": x * 2, "y": y})
    assert L.threads == 3 and L.prefetch == 3
    assert fp.Loader(tree, fp.Compose(TRAIN), num_workers=0).threads == 1
    batches = list(L)
    assert len(batches) == 5 and set(batches[0]) == {"x", "y"}
    L.set_epoch(0)
    ref = fp.Loader(tree, fp.Compose(TRAIN), batch_size=4, backend="numpy", seed=L.seed)
    x0 = next(iter(ref))[0]
    assert np.array_equal(batches[0]["x"], x0 * 2)
    with pytest.warns(UserWarning, match="worker_init_fn is never called"):
        fp.Loader(tree, fp.Compose(TRAIN), worker_init_fn=lambda i: None)


def test_sampler_gives_the_order(tree):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DistributedSampler

    ds = list(range(20))
    samplers = [DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=5) for r in range(2)]
    loaders = [fp.Loader(tree, fp.Compose(TRAIN), batch_size=3, sampler=s, backend="numpy") for s in samplers]
    for epoch in (0, 1):
        seen = []
        for L, s in zip(loaders, samplers):
            L.set_epoch(epoch)
            ys = _collect(L)[1]
            s.set_epoch(epoch)
            order = list(s)
            assert ys.tolist() == L.dataset.labels[order].tolist()
            seen += order
        assert sorted(seen) == ds
    assert len(loaders[0]) == 4
    del torch
