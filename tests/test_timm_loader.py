"""timm's Mixup on the Loader (fp.TimmMixup) and fastprep.timm.create_loader (issue 32): the
mixing against timm's own Mixup / FastCollateMixup given fastprep's recorded draws (exact), the
draws' distribution against timm's, and create_loader's batches against timm's create_loader."""
import numpy as np
import pytest

import fastprep as fp

timm_mixup = pytest.importorskip("timm.data.mixup", reason="pip install timm")
torch = pytest.importorskip("torch")

SETTINGS = [dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.8, switch_prob=0.5, label_smoothing=0.1, num_classes=7),
            dict(mixup_alpha=0.0, cutmix_alpha=0.0, cutmix_minmax=(0.2, 0.8), prob=1.0, label_smoothing=0.0,
                 num_classes=5, correct_lam=False),
            dict(mixup_alpha=0.4, cutmix_alpha=0.0, prob=1.0, label_smoothing=0.2, num_classes=3)]


def _replay(timm_obj, params, monkeypatch):
    """timm's object made to draw what fastprep recorded."""
    if params["mode"] == "batch":
        monkeypatch.setattr(timm_obj, "_params_per_batch", lambda: (params["lam_drawn"], params["use_cutmix"]))
        boxes = [(params["box"], params["lam"])] if params["box"] is not None else []
    else:
        drawn = np.array(params["lam_drawn"], np.float32)
        monkeypatch.setattr(timm_obj, "_params_per_elem",
                            lambda k: (drawn.copy(), np.array(params["use_cutmix"], bool)))
        boxes = [(b, params["lam"][i]) for i, b in enumerate(params["boxes"]) if b is not None]
    it = iter(boxes)
    monkeypatch.setattr(timm_mixup, "cutmix_bbox_and_lam", lambda *a, **k: next(it))


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
@pytest.mark.parametrize("k", range(len(SETTINGS)))
def test_timm_mixup_matches_timms_class(mode, k, monkeypatch):
    kw = dict(SETTINGS[k], mode=mode)
    rng = np.random.default_rng(k)
    labels = rng.integers(0, kw["num_classes"], 8)
    kinds = set()
    for seed in range(6):
        # float32: timm's Mixup after normalisation
        x = rng.standard_normal((8, 3, 12, 10)).astype(np.float32)
        ours = x.copy()
        targets, params = fp.TimmMixup(**kw).apply(ours, labels, "CHW", np.random.default_rng(seed))
        theirs = timm_mixup.Mixup(**kw)
        with monkeypatch.context() as m:
            _replay(theirs, params, m)
            tx, tt = theirs(torch.from_numpy(x.copy()), torch.from_numpy(labels))
        assert np.array_equal(ours, tx.numpy()), params
        assert np.array_equal(targets, tt.numpy()), params
        cuts = [params["use_cutmix"]] if mode == "batch" else \
            [c for c, lam in zip(params["use_cutmix"], params["lam_drawn"]) if lam != 1.0]
        kinds.update("cutmix" if c else "mixup" for c in cuts)
        kinds.add("changed" if not np.array_equal(ours, x) else "same")
        # uint8: timm's FastCollateMixup (its prefetcher collate), rounded half to even
        u = rng.integers(0, 256, (8, 3, 12, 10), dtype=np.uint8)
        ours = u.copy()
        targets, params = fp.TimmMixup(**kw).apply(ours, labels, "CHW", np.random.default_rng(seed))
        theirs = timm_mixup.FastCollateMixup(**kw)
        with monkeypatch.context() as m:
            _replay(theirs, params, m)
            tx, tt = theirs([(u[i].copy(), int(labels[i])) for i in range(8)])
        assert np.array_equal(ours, tx.numpy()), params
        assert np.array_equal(targets, tt.numpy()), params
    assert "changed" in kinds
    assert kinds >= ({"cutmix"} if kw["mixup_alpha"] == 0 else {"mixup"} if kw["cutmix_alpha"] == 0 else
                     {"cutmix", "mixup"}), kinds


def test_timm_mixup_draws_follow_timms():
    """Share of batches mixed, CutMix's share and the lambdas' mean over 3000 batches each."""
    kw = dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.7, switch_prob=0.4, num_classes=10)
    np.random.seed(0)
    theirs = timm_mixup.Mixup(**kw)
    t = [theirs._params_per_batch() for _ in range(3000)]
    mine = fp.TimmMixup(**kw)
    o = []
    for b in range(3000):
        x = np.zeros((2, 1, 8, 8), np.float32)
        _, p = mine.apply(x, [0, 1], "CHW", np.random.default_rng([5, b]))
        o.append((p["lam_drawn"], p["use_cutmix"]))
    for f in (lambda s: np.mean([lam != 1.0 for lam, _ in s]), lambda s: np.mean([c for _, c in s]),
              lambda s: np.mean([lam for lam, _ in s])):
        assert abs(f(o) - f(t)) < 0.035, (f(o), f(t))


def test_timm_mixup_on_the_loader(photos):
    t = fp.Compose([fp.RandomResizedCrop(32), fp.ToTensor(), fp.Normalize("imagenet")])
    mix = fp.TimmMixup(mixup_alpha=0.8, cutmix_alpha=1.0, num_classes=3)
    items = [(p, i % 3) for i, p in enumerate(photos[:8])]
    loader = fp.Loader(items, t, batch_size=4, mix=mix, seed=0, threads=1, drop_last=True)
    batches = list(loader)
    assert len(batches) == 2
    for x, y in batches:
        assert tuple(x.shape) == (4, 3, 32, 32) and tuple(y.shape) == (4, 3)
        assert np.allclose(y.numpy().sum(1), 1.0, atol=1e-6)
    # timm's own object converts to its settings; num_classes must agree
    conv = fp.Loader(items, t, batch_size=4, mix=timm_mixup.Mixup(cutmix_alpha=1.0, num_classes=3), threads=1)
    assert isinstance(conv.mix, fp.TimmMixup) and conv.mix.cutmix_alpha == 1.0
    with pytest.raises(ValueError, match="differs from the TimmMixup"):
        fp.Loader(items, t, batch_size=4, mix=mix, num_classes=4)
    with pytest.raises(ValueError, match="even batch size"):
        x = np.zeros((3, 3, 4, 4), np.float32)
        mix.apply(x, [0, 1, 2], "CHW", np.random.default_rng(0))


def _timm_dataset(photos, tmp_path, classes=2):
    import shutil

    for i, p in enumerate(photos[:8]):
        d = tmp_path / f"c{i % classes}"
        d.mkdir(exist_ok=True)
        shutil.copy(p, d)
    return pytest.importorskip("timm.data").create_dataset("", root=str(tmp_path))


@pytest.mark.parametrize("prefetcher", [True, False])
def test_create_loader_yields_what_timms_loop_expects(photos, tmp_path, prefetcher):
    from fastprep.timm import create_loader

    timm_data = pytest.importorskip("timm.data")
    ds = _timm_dataset(photos, tmp_path)
    mix_cls = timm_mixup.FastCollateMixup if prefetcher else timm_mixup.Mixup
    kw = dict(input_size=(3, 64, 64), batch_size=4, is_training=True, auto_augment="rand-m9-mstd0.5-inc1",
              re_prob=0.25, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), use_prefetcher=prefetcher,
              device=torch.device("cpu"))
    ours = create_loader(ds, collate_fn=mix_cls(cutmix_alpha=1.0, num_classes=2), seed=0, num_workers=1, **kw)
    assert len(ours) == 2 and ours.mixup_enabled
    assert [type(o).__name__ for o in ours.loader.transform.transforms][:3] == \
        ["RandomResizedCrop", "RandomHorizontalFlip", "TimmRandAugment"]
    ours.sampler.set_epoch(3)
    batches = list(ours)
    assert len(batches) == 2
    for x, y in batches:
        assert x.dtype == torch.float32 and tuple(x.shape) == (4, 3, 64, 64)
        assert tuple(y.shape) == (4, 2) and torch.allclose(y.sum(1), torch.ones(4))
    # the same inputs through timm's own loader: the same shapes, dtypes and value ranges
    # (without the prefetcher, timm's train.py applies Mixup in its loop, not as the collate_fn)
    mixup = mix_cls(cutmix_alpha=1.0, num_classes=2)
    theirs = timm_data.create_loader(ds, collate_fn=mixup if prefetcher else None, num_workers=0, **kw)
    tx, ty = next(iter(theirs))
    if not prefetcher:
        tx, ty = mixup(tx, ty)
    assert tx.dtype == x.dtype and tx.shape == x.shape and ty.shape == y.shape
    lo = (0 - 0.5) / 0.2 - 1e-5
    assert float(x.min()) >= min(lo, float(tx.min())) - 1e-5  # erased pixels (const mode) are 0
    ours.mixup_enabled = False
    x, y = next(iter(ours))
    assert sorted(round(float(v), 6) for v in np.unique(y.numpy())) == [0.05, 0.95]  # smoothed one-hot rows, unmixed
    # eval: no mixing, integer labels, timm's centre crop
    ev = create_loader(ds, input_size=(3, 64, 64), batch_size=4, use_prefetcher=prefetcher, device="cpu",
                       num_workers=1)
    assert len(ev) == 2 and not ev.mixup_enabled
    x, y = next(iter(ev))
    assert y.dtype == torch.int64 and tuple(x.shape) == (4, 3, 64, 64)


def test_create_loader_refuses_what_it_cannot_do(photos, tmp_path):
    from fastprep.timm import create_loader

    ds = _timm_dataset(photos, tmp_path)
    for kw, what in ((dict(re_split=True), "re_split"), (dict(num_aug_splits=2), "num_aug_splits"),
                     (dict(distributed=True), "torch.distributed")):
        with pytest.raises(ValueError, match=what):
            create_loader(ds, 64, 4, is_training=True, device="cpu", **kw)
    with pytest.raises(TypeError, match="IterableImageDataset"):
        create_loader(object(), 64, 4, device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (runs on the GPU machine)")
def test_create_loader_on_the_gpu(photos, tmp_path):
    """The prefetcher path on CUDA: batches and targets on the device, normalised there."""
    from fastprep.timm import create_loader

    ds = _timm_dataset(photos, tmp_path)
    loader = create_loader(ds, (3, 64, 64), 4, is_training=True, auto_augment="rand-m9-mstd0.5-inc1", re_prob=0.25,
                           collate_fn=timm_mixup.FastCollateMixup(cutmix_alpha=1.0, num_classes=2),
                           device=torch.device("cuda"), num_workers=1, seed=0)
    for x, y in loader:
        assert x.is_cuda and y.is_cuda and x.dtype == torch.float32 and tuple(y.shape) == (4, 2)
        assert torch.isfinite(x).all() and torch.allclose(y.sum(1), torch.ones(4, device="cuda"))
