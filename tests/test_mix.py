"""Batch mixing in the Loader (issue 13): MixUp / CutMix against torchvision v2's own transforms
given the same lambda (and box), targets against its one-hot mixing (plus timm's label smoothing)."""
import numpy as np
import pytest

import fastprep as fp

torch = pytest.importorskip("torch")
v2 = pytest.importorskip("torchvision.transforms.v2")


def loaders(tree, mix, dtype="float32", layout="CHW", **kw):
    ops = [fp.RandomResizedCrop(40), fp.RandomHorizontalFlip()] + ([fp.ToTensor()] if dtype != "uint8" else [])
    t = fp.Compose(ops, dtype=dtype, layout=layout)
    args = dict(batch_size=4, shuffle=True, seed=3, backend="torch", threads=1)
    return fp.Loader(tree, t, **args), fp.Loader(tree, t, mix=mix, num_classes=3, **args, **kw)


def tv_mix(x0, y0, p, num_classes):
    """torchvision v2's MixUp / CutMix on the unmixed batch, its draws replaced by p's."""
    if p["mix"] == "MixUp":
        op = v2.MixUp(num_classes=num_classes)
        op.make_params = lambda flat: {"lam": p["lam"]}
    else:
        op = v2.CutMix(num_classes=num_classes)
        op.make_params = lambda flat: {"box": p["box"], "lam_adjusted": p["lam"]}
    return op(x0, y0)


@pytest.mark.parametrize("mix", [fp.MixUp(0.8), fp.CutMix(1.0), fp.MixChoice([fp.MixUp(0.2), fp.CutMix(1.0)])])
def test_batches_and_targets_equal_torchvision(tree, mix):
    plain, mixed = loaders(tree, mix)
    seen = set()
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        mixed.set_epoch(epoch)
        for (x0, y0), (x, y) in zip(plain, mixed):
            p = mixed.batch_params()
            seen.add(p["mix"])
            assert 0.0 <= p["lam"] <= 1.0
            rx, ry = tv_mix(x0, y0, p, 3)
            assert x.dtype == torch.float32 and y.dtype == torch.float32 and y.shape == (len(y0), 3)
            assert torch.equal(x, rx)  # the same float32 operations
            assert torch.allclose(y, ry, atol=1e-7)
            assert torch.allclose(y.sum(1), torch.ones(len(y0)))
    if isinstance(mix, fp.MixChoice):
        assert seen == {"MixUp", "CutMix"}


def test_label_smoothing_is_timms(tree):
    plain, mixed = loaders(tree, fp.MixUp(1.0), label_smoothing=0.1)
    for (x0, y0), (x, y) in zip(plain, mixed):
        lam = mixed.batch_params()["lam"]
        oh = torch.nn.functional.one_hot(y0, 3).float()
        sm = oh * (1 - 0.1 + 0.1 / 3) + (1 - oh) * (0.1 / 3)
        ref = sm.roll(1, 0) * (1 - lam) + sm * lam
        assert torch.allclose(y, ref, atol=1e-6)
        assert torch.allclose(y.sum(1), torch.ones(len(y0)), atol=1e-6)


@pytest.mark.parametrize("dtype,layout", [("uint8", "HWC"), ("float32", "HWC"), ("float16", "CHW")])
def test_cutmix_on_any_dtype_and_layout(tree, dtype, layout):
    plain, mixed = loaders(tree, fp.CutMix(), dtype=dtype, layout=layout)
    for (x0, y0), (x, y) in zip(plain, mixed):
        p = mixed.batch_params()
        x1, y1, x2, y2 = p["box"]
        ref = x0.clone()
        if layout == "HWC":
            ref[:, y1:y2, x1:x2] = x0.roll(1, 0)[:, y1:y2, x1:x2]
        else:
            ref[..., y1:y2, x1:x2] = x0.roll(1, 0)[..., y1:y2, x1:x2]
        assert torch.equal(x, ref)


def test_draws_depend_only_on_seed_epoch_and_batch(tree):
    mix = fp.MixChoice([fp.MixUp(), fp.CutMix()])
    runs = []
    for threads in (1, 2):
        t = fp.Compose([fp.RandomResizedCrop(24), fp.ToTensor()])
        L = fp.Loader(tree, t, batch_size=3, seed=5, threads=threads, backend="numpy", mix=mix, num_classes=3)
        L.set_epoch(2)
        runs.append([(x.copy(), y.copy(), L.batch_params()) for x, y in L])
    for (xa, ya, pa), (xb, yb, pb) in zip(*runs):
        assert pa == pb and np.array_equal(xa, xb) and np.array_equal(ya, yb)
    assert len({p["lam"] for _, _, p in runs[0]}) > 1


def test_mix_argument_errors(tree, photos):
    t = fp.Compose([fp.CenterCrop(16)], dtype="uint8")
    with pytest.raises(ValueError, match="float32"):
        fp.Loader(tree, t, mix=fp.MixUp(), num_classes=3)
    tf = fp.Compose([fp.CenterCrop(16), fp.ToTensor()])
    with pytest.raises(ValueError, match="num_classes"):
        fp.Loader(tree, tf, mix=fp.MixUp())
    with pytest.raises(ValueError, match="label_smoothing"):
        fp.Loader(tree, tf, mix=fp.MixUp(), num_classes=3, label_smoothing=1.0)
    with pytest.raises(ValueError, match="mix="):
        fp.Loader(tree, tf, num_classes=3)
    with pytest.raises(ValueError, match="alpha"):
        fp.MixUp(0)
    with pytest.raises(ValueError, match="MixChoice"):
        fp.MixChoice([fp.RandAugment()])
    with pytest.raises(ValueError, match="outside"):
        list(fp.Loader(tree, tf, mix=fp.CutMix(), num_classes=2, backend="numpy"))
    with pytest.raises(ValueError, match="mix= needs labelled samples.*no labels"):
        fp.Loader(photos, tf, mix=fp.CutMix(), num_classes=2, backend="numpy")  # refused before any batch
    # a labelled source with a negative label (say an ignore index): named, not called unlabelled
    with pytest.raises(ValueError, match="label -100 is outside"):
        list(fp.Loader([(p, -100) for p in photos], tf, mix=fp.CutMix(), num_classes=2, backend="numpy"))
