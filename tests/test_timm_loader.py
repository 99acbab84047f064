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
