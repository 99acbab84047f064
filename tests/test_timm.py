"""timm's transform classes that fastprep converts by identity (the start of issue 32): timm's
RandomResizedCropAndInterpolation, MaybeToTensor, MaybePILToTensor and ToNumpy, so that
``timm.data.create_transform`` converts: its eval recipe whole and within torchvision's
tolerance of timm's own output, its train recipe fused up to timm's RandomErasing."""
import numpy as np
import pytest

import fastprep as fp

timm_data = pytest.importorskip("timm.data")
torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402

STD = np.array([0.229, 0.224, 0.225]).reshape(3, 1, 1)


def test_timm_eval_transform_converts_whole_and_matches_timm(photos):
    tt = timm_data.create_transform(224, is_training=False)
    t = fp.from_torchvision(tt)
    assert isinstance(t, fp.Compose)
    assert [type(o).__name__ for o in t.transforms] == ["Resize", "CenterCrop", "ToTensor", "Normalize"]
    tol = 1.0 / (255.0 * STD) + 1e-6  # one level: PIL's resampling against fastprep's exact mode
    for p in photos:
        with Image.open(p) as im:
            want = tt(im.convert("RGB")).numpy()
        got = t(p)
        assert got.shape == want.shape and np.all(np.abs(got - want) <= tol), p


def test_timm_prefetcher_transform_is_uint8_chw(photos):
    """With use_prefetcher timm ends its recipe with MaybePILToTensor (ToNumpy in older timm): CHW
    uint8 levels, normalised on the GPU by timm's prefetcher; both convert to those, within one
    level of timm's."""
    from timm.data.transforms import ToNumpy

    tt = timm_data.create_transform(224, is_training=False, use_prefetcher=True)
    assert type(tt.transforms[-1]).__name__ in ("MaybePILToTensor", "ToNumpy")
    T = pytest.importorskip("torchvision.transforms")
    for recipe in (tt, T.Compose(list(tt.transforms[:-1]) + [ToNumpy()])):
        t = fp.from_torchvision(recipe)
        assert isinstance(t, fp.Compose) and t.dtype == "uint8" and t.layout == "CHW", recipe
        for p in photos[:4]:
            with Image.open(p) as im:
                want = np.asarray(recipe(im.convert("RGB")))
            got = np.asarray(t(p))
            assert got.shape == want.shape == (3, 224, 224)
            assert np.abs(got.astype(int) - want.astype(int)).max() <= 1, p


def test_timm_train_transform_fuses_whole(photos):
    tt = timm_data.create_transform(224, is_training=True, scale=(0.3, 1.0), interpolation="bicubic")
    t = fp.from_torchvision(tt)
    assert isinstance(t, fp.Compose)
    rrc = t.transforms[0]
    assert isinstance(rrc, fp.RandomResizedCrop) and rrc.scale == (0.3, 1.0) and rrc.interpolation == "bicubic"
    # replay: timm's resized crop (PIL's bicubic) of the recorded box on the PIL image. Bicubic
    # crops, some upscaled, are within 1 level but for rare values (measured: 1e-5 of them, up to
    # 4 levels); bilinear ones within 1 level everywhere
    geo = fp.Compose([rrc], dtype="uint8", layout="HWC")
    out, params = geo.batch(photos * 2, seed=2, return_params=True)
    from torchvision.transforms import functional as F1

    over, total = 0, 0
    for p, o, q in zip(photos * 2, out, params):
        top, left, h, w = q["box"]
        with Image.open(p) as im:
            want = np.asarray(F1.resized_crop(im.convert("RGB"), top, left, h, w, [224, 224],
                                              interpolation=F1.InterpolationMode.BICUBIC))
        d = np.abs(o.astype(int) - want.astype(int))
        assert d.max() <= 4, p
        over, total = over + int((d > 1).sum()), total + d.size
    assert over / total < 1e-4
    # with timm's RandomErasing (fused too: test_timm_random_erasing_converts_and_replays)
    h = fp.from_torchvision(timm_data.create_transform(224, is_training=True, re_prob=0.25, re_mode="pixel",
                                                       re_count=2), strict=True)
    assert isinstance(h, fp.Compose) and isinstance(h.transforms[-1], fp.RandomErasing)
    assert h.batch(photos[:2], seed=1).shape == (2, 3, 224, 224)


def test_timm_random_interpolation_replays(photos):
    """timm's interpolation="random" (bilinear or bicubic per sample, random.choice) converts:
    each sample's recorded filter and box, replayed through torchvision's resized_crop on the PIL
    image as timm does, within the tolerance of the fixed filters; both filters come up about
    equally often."""
    from torchvision.transforms import functional as F1

    tt = timm_data.create_transform(224, is_training=True, interpolation="random")
    t = fp.from_torchvision(tt, strict=True)
    rrc = t.transforms[0]
    assert isinstance(rrc, fp.RandomResizedCrop) and rrc.interpolation == "random"
    geo = fp.Compose([rrc], dtype="uint8", layout="HWC")
    out, params = geo.batch(photos * 3, seed=7, return_params=True)
    modes = {"bilinear": F1.InterpolationMode.BILINEAR, "bicubic": F1.InterpolationMode.BICUBIC}
    over, total = 0, 0
    for p, o, q in zip(photos * 3, out, params):
        top, left, h, w = q["box"]
        with Image.open(p) as im:
            want = np.asarray(F1.resized_crop(im.convert("RGB"), top, left, h, w, [224, 224],
                                              interpolation=modes[q["interpolation"]]))
        d = np.abs(o.astype(int) - want.astype(int))
        assert d.max() <= 4, p
        over, total = over + int((d > 1).sum()), total + d.size
    assert over / total < 1e-4
    c = fp.Compose([fp.RandomResizedCrop(16, interpolation="random")], dtype="uint8")
    _, ps = c.batch([np.zeros((40, 50, 3), np.uint8)] * 400, seed=1, return_params=True)
    share = np.mean([q["interpolation"] == "bicubic" for q in ps])
    assert 0.42 < share < 0.58, share


def test_timm_to_tensor_keeps_0_255_floats(photos):
    """timm's ToTensor is pil_to_tensor(img).to(dtype), 0-255 values (not torchvision's [0, 1]):
    it converts to fp.ToTensor(scale=False), and a Normalize after it works on those values as
    torch does; its uint8 dtype gives CHW uint8 levels."""
    from timm.data.transforms import ToTensor as TimmToTensor
    T = pytest.importorskip("torchvision.transforms")

    recipe = T.Compose([T.Resize(256), T.CenterCrop(224), TimmToTensor()])
    t = fp.from_torchvision(recipe)
    assert isinstance(t, fp.Compose) and t.transforms[-1] == fp.ToTensor(scale=False)
    norm = T.Compose([T.Resize(256), T.CenterCrop(224), TimmToTensor(), T.Normalize([120.0, 110, 100], [60.0, 50, 40])])
    tn = fp.from_torchvision(norm)
    u8 = fp.from_torchvision(T.Compose([T.Resize(256), T.CenterCrop(224), TimmToTensor(torch.uint8)]))
    assert u8.dtype == "uint8" and u8.layout == "CHW"
    for p in photos[:4]:
        with Image.open(p) as im:
            want, want_n = recipe(im.convert("RGB")).numpy(), norm(im.convert("RGB")).numpy()
        got = t(p)
        assert got.dtype == np.float32 and got.shape == want.shape == (3, 224, 224)
        assert np.abs(got - want).max() <= 1.0 and want.max() > 1.5  # one level of PIL's resize, 0-255 values
        assert np.abs(tn(p) - want_n).max() <= 1.0 / 40 + 1e-5
        assert np.abs(np.asarray(u8(p)).astype(int) - want.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="Lighting"):
        fp.Compose([fp.Resize(64), fp.CenterCrop(64), fp.ToTensor(scale=False), fp.Lighting(0.1)])
    with pytest.raises(ValueError, match="cannot go with"):
        fp.ToTensor(multiply=True, scale=False)
    assert repr(fp.ToTensor()) == "ToTensor()"


@pytest.mark.parametrize("crop_mode,img_size,crop_pct", [("border", 224, 0.875), ("border", 224, 1.0),
                                                         ("center", (224, 192), 0.9), ("squash", 224, 0.95)])
def test_timm_eval_crop_modes_convert(photos, crop_mode, img_size, crop_pct):
    """create_transform's eval crop modes: "border" (ResizeKeepRatio(longest=1) + CenterCropOrPad
    with timm's mean fill), "center" with a non-square size (ResizeKeepRatio(longest=0) +
    CenterCrop) and "squash" convert whole, within one level of timm's own output (PIL's
    resampling against fastprep's exact mode) and with timm's sizes and padding exactly."""
    tt = timm_data.create_transform(img_size, is_training=False, crop_mode=crop_mode, crop_pct=crop_pct)
    t = fp.from_torchvision(tt)
    assert isinstance(t, fp.Compose), tt
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    tol = 1.0 / (255.0 * STD) + 1e-6
    for p in photos:
        with Image.open(p) as im:
            want = tt(im.convert("RGB")).numpy()
        got = t(p)
        assert got.shape == want.shape == (3, h, w)
        assert np.all(np.abs(got - want) <= tol), (p, float(np.abs(got - want).max()))


def test_resize_keep_ratio_sizes_are_timms():
    """ResizeKeepRatio's size arithmetic (Python's round, half to even) against timm's get_params
    over many image sizes and both extremes of `longest`, and a middle one."""
    from timm.data.transforms import ResizeKeepRatio as TimmRKR

    rng = np.random.default_rng(0)
    for longest in (0.0, 1.0, 0.3):
        op = fp.ResizeKeepRatio((256, 192), longest=longest)
        c = fp.Compose([op], dtype="uint8")
        for _ in range(60):
            ih, iw = (int(v) for v in rng.integers(16, 900, 2))
            want = TimmRKR.get_params(Image.new("RGB", (iw, ih)), (256, 192), longest)
            got = c(np.zeros((ih, iw, 3), np.uint8))
            assert got.shape[:2] == tuple(want), (ih, iw, longest)
    T = pytest.importorskip("torchvision.transforms")
    with pytest.warns(UserWarning, match="random scale"):  # timm's random draws: run in Python
        h = fp.from_torchvision(T.Compose([TimmRKR(224, random_scale_prob=0.5), T.CenterCrop(224)]))
    assert type(h.remainder[0]).__name__ == "ResizeKeepRatio"


def test_timm_random_erasing_converts_and_replays(photos):
    """timm's RandomErasing (counts, area per rectangle divided by the count, modes const / rand /
    pixel) converts to fp.RandomErasing(count=, value=); its rectangles and fill replay exactly:
    the output equals the same pipeline without it, with timm's assignment of the recorded fill
    to each recorded rectangle."""
    from timm.data.random_erasing import RandomErasing as TimmRE

    T = pytest.importorskip("torchvision.transforms")
    base = [T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    for mode, value in (("const", 0.0), ("rand", "per_channel"), ("pixel", "random")):
        re = TimmRE(1.0, mode=mode, max_count=3, device="cpu")
        t = fp.from_torchvision(T.Compose(base + [re]), strict=True)
        op = t.transforms[-1]
        assert isinstance(op, fp.RandomErasing) and op.count == (1, 3) and op.p == 1.0
        assert op.value == value or op.value == (value,)
        plain = fp.from_torchvision(T.Compose(base), strict=True)
        out, params = t.batch(photos, seed=5, return_params=True)
        ref = plain.batch(photos, seed=5)
        counts = set()
        for o, r, q in zip(out, ref, params):
            rects = q["erase"]
            counts.add(len(rects))
            want = torch.from_numpy(r.copy())
            for (top, left, h, w), fill in zip(rects, op.fill(q, 3)):
                want[:, top:top + h, left:left + w] = torch.from_numpy(np.array(fill))  # timm's assignment
            np.testing.assert_array_equal(o, want.numpy())
        assert counts <= {1, 2, 3} and len(counts) > 1
    # num_splits only leaves a 4D batch's first part clean (timm's prefetcher): on one image, as
    # here, timm erases whatever the splits, and so does the conversion
    split = TimmRE(1.0, num_splits=3, device="cpu")
    t = fp.from_torchvision(T.Compose(base + [split]), strict=True)
    assert t.transforms[-1] == fp.from_torchvision(T.Compose(base + [TimmRE(1.0, device="cpu")])).transforms[-1]
    x = torch.from_numpy(fp.from_torchvision(T.Compose(base)).batch(photos[:1], seed=0)[0].copy())
    assert not torch.equal(split(x.clone()), x)  # timm's own class erases a single image too


def test_timm_random_erasing_draws_like_timm():
    """The rectangles' distribution against timm's own class on the same canvas: the share of
    the image erased and its spread, over 3000 draws each (timm draws with Python's random)."""
    from timm.data.random_erasing import RandomErasing as TimmRE

    import random
    random.seed(0)
    torch.manual_seed(0)
    n = 3000
    re = TimmRE(1.0, mode="pixel", min_count=1, max_count=4, device="cpu")
    theirs = []
    for _ in range(n):
        x = torch.zeros(3, 64, 96)
        re(x)
        theirs.append(float((x != 0).any(0).float().mean()))
    T = pytest.importorskip("torchvision.transforms")
    c = fp.from_torchvision(T.Compose([T.ToTensor(), re]), strict=True)
    z = np.zeros((64, 96, 3), np.uint8)
    ours = [float((o != 0).any(0).mean()) for o in c.batch([z] * n, seed=3)]
    assert abs(np.mean(ours) - np.mean(theirs)) < 0.01, (np.mean(ours), np.mean(theirs))
    assert abs(np.std(ours) - np.std(theirs)) < 0.01, (np.std(ours), np.std(theirs))
