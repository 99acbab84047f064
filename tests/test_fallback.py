"""from_torchvision's Python remainder (issue 31, Note [Python remainder]): the longest fusable
prefix is fused, the rest runs per sample in Python in the input type it expects, seeded from
(seed, epoch, sample) with the caller's generators left as they were; strict=True refuses; the
Loader runs the remainder in worker processes. And RandomCrop / Pad against torchvision."""
import random
import warnings

import numpy as np
import pytest

import fastprep as fp

torch = pytest.importorskip("torch")
T = pytest.importorskip("torchvision.transforms")
T2 = pytest.importorskip("torchvision.transforms.v2")
from PIL import Image  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class RandomShade:
    """A user's own random op (PIL images or uint8 tensors): draws from torch's and Python's
    generators, as the ops of real recipes do."""

    def __call__(self, x):
        k = float(torch.rand(1)) * 0.5 + random.random() * 0.5
        if isinstance(x, Image.Image):
            return x.point(lambda v: int(v * k))
        return (x.float() * k).to(x.dtype)


class AddOne:
    """A user's own transform (not torchvision's): runs in Python."""

    def __call__(self, x):
        return x + 1


def convert(tv, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fp.from_torchvision(tv, **kw)


def test_unknown_op_runs_in_python_after_the_fused_prefix(photos):
    tv = T.Compose([T.Lambda(lambda im: im.convert("RGB")), T.RandomResizedCrop(48), T.RandomHorizontalFlip(),
                    RandomShade(), T.ToTensor(), T.Normalize(MEAN, STD)])
    with pytest.warns(UserWarning, match=r"RandomShade.*not a torchvision transform"):
        h = fp.from_torchvision(tv)
    assert isinstance(h, fp.HybridCompose) and h.tail_input == "pil"
    assert [type(o).__name__ for o in h.fused.transforms] == ["RandomResizedCrop", "RandomHorizontalFlip"]
    assert [type(t).__name__ for t in h.remainder] == ["RandomShade", "ToTensor", "Normalize"]
    out, params = h.batch(photos[:4], seed=7, return_params=True)
    assert out.shape == (4, 3, 48, 48) and out.dtype == torch.float32
    # Replay: the fused prefix's output as PIL, then torchvision's remainder seeded as documented.
    from fastprep.transforms._hybrid import seeded_globals, tail_seed

    pre = h.fused.batch(photos[:4], seed=7)
    for i in range(4):
        with seeded_globals(tail_seed(7, 0, i)):
            x = Image.fromarray(np.asarray(pre[i]))
            for t in h.remainder:
                x = t(x)
        assert torch.equal(out[i], x)


def test_remainder_is_deterministic_and_leaves_the_callers_generators(photos):
    h = convert(T2.Compose([T2.RandomResizedCrop(32), RandomShade(), T2.ToDtype(torch.float32,
                                                                                             scale=True)]))
    assert h.tail_input == "tensor"
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(9)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    a = h.batch(photos[:6], seed=3, threads=1)
    b = h.batch(photos[:6], seed=3, threads=2)
    after = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1])
    assert torch.equal(before[0], after[0]) and before[1] == after[1] and np.array_equal(before[2], after[2])
    assert torch.equal(a, b)
    c = h.batch(photos[:6], seed=4)
    assert not torch.equal(a, c)
    one = h(photos[0], seed=3)
    assert torch.equal(one, a[0])


def test_leading_rgb_lambda_is_dropped_and_other_lambdas_run_in_python(photos):
    tv = T.Compose([T.Lambda(lambda im: im.convert("RGB")), T.Resize(40), T.CenterCrop(32), T.ToTensor()])
    t = convert(tv)
    assert isinstance(t, fp.Compose)  # everything fused
    tv = T.Compose([T.Resize(40), T.CenterCrop(32), T.Lambda(lambda im: im.rotate(90)), T.ToTensor()])
    h = convert(tv)
    assert [type(o).__name__ for o in h.transforms] == ["Resize", "CenterCrop"]
    ref = T.Compose([T.Lambda(lambda im: im.rotate(90)), T.ToTensor()])(Image.fromarray(
        np.asarray(h.fused(photos[0]))))
    assert torch.equal(h(photos[0]), ref)


def test_look_alike_classes_run_in_python_never_converted_by_name(photos):
    timm_aa = pytest.importorskip("timm.data.auto_augment")
    # timm's RandAugment shares torchvision's name, not its algorithm (its ops, magnitudes, PIL):
    # it converts as timm's (fp.TimmRandAugment), and where it cannot be fused (its warps resample
    # nearest) it runs in Python, never as torchvision's RandAugment
    ra = timm_aa.rand_augment_transform("rand-m9-mstd0.5", {"interpolation": 0})
    tv = T.Compose([T.Resize(40), T.CenterCrop(32), ra, T.ToTensor()])
    with pytest.warns(UserWarning, match="timm's RandAugment with PIL filter 0"):
        h = fp.from_torchvision(tv)
    assert h.remainder[0] is ra  # timm's own object, run as it is
    assert tuple(h(photos[0]).shape) == (3, 32, 32)
    with pytest.raises(ValueError, match="timm.*RandAugment"):
        fp.from_torchvision(tv, strict=True)
    ra = timm_aa.rand_augment_transform("rand-m9-mstd0.5", {})
    t = fp.from_torchvision(T.Compose([T.Resize(40), T.CenterCrop(32), ra, T.ToTensor()]))
    assert [type(o).__name__ for o in t.transforms] == ["Resize", "CenterCrop", "TimmRandAugment", "ToTensor"]


def test_strict_refuses_with_the_nearest_equivalent():
    with pytest.raises(ValueError, match="ScaleJitter.*nearest fastprep equivalent: fp.RandomResize"):
        fp.from_torchvision(T2.Compose([T2.Resize(8), T2.ScaleJitter((8, 8))]), strict=True)
    with pytest.raises(ValueError, match="not a torchvision transform"):
        fp.from_torchvision(T.Compose([T.Resize(8), AddOne()]), strict=True)


def test_an_order_the_fused_pass_cannot_do_falls_back_there(photos):
    tv = T2.Compose([T2.Resize((40, 40)), T2.GaussianBlur(5), T2.ColorJitter(0.4)])
    h = convert(tv)
    assert [type(t).__name__ for t in h.remainder] == ["ColorJitter"]
    assert "ColorJitter after GaussianBlur" in h.reasons[0]
    assert h(photos[0]).shape == (3, 40, 40)


def test_transform_errors_name_the_file(photos):
    def boom(x):
        raise RuntimeError("nope")

    h = convert(T.Compose([T.Resize((16, 16)), T.Lambda(boom)]))
    with pytest.raises(fp.TransformError, match=r"photo.*Lambda raised RuntimeError: nope"):
        h.batch(photos[:2])


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_runs_the_remainder_like_batch(photos, workers):
    h = convert(T2.Compose([T2.RandomResizedCrop(32), RandomShade(),
                            T2.ToDtype(torch.float32, scale=True)]))
    pairs = [(p, i % 3) for i, p in enumerate(photos[:10])]
    loader = fp.Loader(pairs, h, batch_size=4, seed=11, shuffle=False, python_workers=workers, threads=2)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    batches = [(x.clone(), y.clone()) for x, y in loader]
    assert torch.equal(state, torch.get_rng_state())
    assert [len(y) for _, y in batches] == [4, 4, 2]
    ref = h.batch(photos[:10], seed=11, indices=list(range(10)), epoch=0)
    assert torch.equal(torch.cat([x for x, _ in batches]), ref)


def test_loader_remainder_errors_name_the_file(photos):
    def boom(x):
        raise ValueError("bad")

    h = convert(T.Compose([T.Resize((16, 16)), T.Lambda(boom)]))
    loader = fp.Loader([(p, 0) for p in photos[:4]], h, batch_size=2, python_workers=1)
    with pytest.raises(fp.TransformError, match="photo"):
        next(iter(loader))


def test_mix_choice_rename_keeps_the_loader_working(photos):
    with pytest.warns(FutureWarning):
        mix = fp.RandomChoice([fp.MixUp(0.2), fp.CutMix(1.0)])
    t = fp.Compose([fp.Resize((16, 16)), fp.ToTensor()])
    loader = fp.Loader([(p, i % 2) for i, p in enumerate(photos[:4])], t, batch_size=4, mix=mix, num_classes=2)
    x, y = next(iter(loader))
    assert y.shape == (4, 2)


# ---- RandomCrop and Pad -------------------------------------------------------------------


@pytest.mark.parametrize("kw", [dict(padding=4), dict(padding=(1, 2)), dict(padding=(0, 1, 2, 3)),
                                dict(pad_if_needed=True), dict()])
@pytest.mark.parametrize("v2", [False, True])
def test_random_crop_replays_through_torchvision(kw, v2):
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)] * 3 + [rng.integers(0, 256, (30, 37, 3),
                                                                                 dtype=np.uint8)] * 3
    size = 32 if (kw.get("padding") or kw.get("pad_if_needed")) else 16
    tvop = (T2 if v2 else T).RandomCrop(size, **kw)
    t = fp.from_torchvision((T2 if v2 else T).Compose([tvop, (T2 if v2 else T).PILToTensor()]))
    assert isinstance(t, fp.Compose)
    pad = list(t.transforms[0].padding or (0, 0, 0, 0))  # left, top, right, bottom
    for i, img in enumerate(imgs):
        o, p = t.batch([img], seed=5, indices=[i], return_params=True)
        oy, ox = p[0]["crop_offset"]
        x = torch.from_numpy(img).permute(2, 0, 1)
        left, top, right, bottom = pad
        if kw.get("pad_if_needed"):
            h, w = x.shape[1] + top + bottom, x.shape[2] + left + right
            top, bottom = top + max(0, size - h), bottom + max(0, size - h)
            left, right = left + max(0, size - w), right + max(0, size - w)
        padded = torch.nn.functional.pad(x, (left, right, top, bottom))
        want = padded[:, oy + top:oy + top + size, ox + left:ox + left + size]
        assert torch.equal(torch.from_numpy(np.asarray(o[0])), want)
        assert -top <= oy <= padded.shape[1] - size - top


@pytest.mark.parametrize("mode, fill", [("constant", 0), ("constant", (7, 100, 255)), ("edge", 0), ("reflect", 0),
                                        ("symmetric", 0)])
def test_padding_modes_replay_through_torchvision(mode, fill, photos):
    """RandomCrop(32, padding=4, padding_mode=...) with flips, and Pad then CenterCrop after a
    resize, identical to torchvision's pad and crop (Note [Padding modes])."""
    from torchvision.transforms.v2 import functional as F2

    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    t = fp.from_torchvision(T2.Compose([T2.RandomCrop(32, padding=4, padding_mode=mode, fill=fill),
                                        T2.RandomHorizontalFlip(), T2.ColorJitter(0.4)]))
    plain = fp.Compose([fp.RandomCrop(32, padding=4, padding_mode=mode, fill=fill), fp.RandomHorizontalFlip()],
                       dtype="uint8", layout="CHW")
    assert isinstance(t, fp.Compose)
    for i in range(12):
        o, p = plain.batch([x], seed=1, indices=[i], return_params=True)
        oy, ox = p[0]["crop_offset"]
        padded = F2.pad(torch.from_numpy(x).permute(2, 0, 1), [4, 4, 4, 4], fill=list(fill) if isinstance(
            fill, tuple) else fill, padding_mode=mode)
        want = padded[:, oy + 4:oy + 36, ox + 4:ox + 36]
        if p[0]["flip"]:
            want = want.flip(-1)
        assert np.array_equal(o[0], want.numpy()), (i, p[0])
    t = fp.from_torchvision(T2.Compose([T2.Resize((30, 40)), T2.Pad((3, 5, 7, 2), fill=fill, padding_mode=mode),
                                        T2.CenterCrop((35, 47))]))
    resized = fp.Compose([fp.Resize((30, 40))], dtype="uint8", layout="CHW")(photos[0])
    want = F2.center_crop(F2.pad(torch.from_numpy(resized), [3, 5, 7, 2], fill=list(fill) if isinstance(
        fill, tuple) else fill, padding_mode=mode), [35, 47])
    assert np.array_equal(t(photos[0]), want.numpy())


def test_random_crop_offsets_are_uniform():
    img = np.zeros((32, 32, 3), np.uint8)
    t = fp.Compose([fp.RandomCrop(32, padding=4)], dtype="uint8")
    _, params = t.batch([img] * 4000, seed=1, return_params=True)
    offs = np.array([p["crop_offset"] for p in params])
    assert offs.min() == -4 and offs.max() == 4
    counts = np.bincount(offs[:, 0] + 4, minlength=9)
    assert counts.min() > 4000 / 9 * 0.75


def test_pad_then_center_crop_and_refusals(photos):
    x = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    t = fp.from_torchvision(T2.Compose([T2.Pad((1, 2, 3, 4)), T2.CenterCrop((9, 9))]))
    want = T2.CenterCrop((9, 9))(T2.Pad((1, 2, 3, 4))(torch.from_numpy(x).permute(2, 0, 1)))
    assert torch.equal(torch.from_numpy(np.asarray(t(x))), want)
    h = convert(T2.Compose([T2.RandomCrop(8, padding=4, padding_mode="reflect")]))  # crop <= 2 * padding
    assert isinstance(h, fp.HybridCompose) and "larger than twice the padding" in h.reasons[0]
    h = convert(T2.Compose([T2.RandomCrop(32, padding=4, fill=2.5)]))
    assert isinstance(h, fp.HybridCompose) and "fill=2.5" in h.reasons[0]
    with pytest.raises(ValueError, match="Resize must come first"):
        fp.Compose([fp.Pad(2), fp.Resize(8)])
    with pytest.raises(fp.ImageTooSmallError, match="larger than the"):
        fp.Compose([fp.RandomCrop(64)], dtype="uint8")(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(fp.ImageTooSmallError, match="in the padding only"):
        fp.Compose([fp.Pad((40, 0, 0, 0)), fp.CenterCrop(4)], dtype="uint8")(np.zeros((8, 8, 3), np.uint8))


# ---- FiveCrop and TenCrop ------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda M: M.FiveCrop((20, 16)), lambda M: M.TenCrop((20, 16)),
                                  lambda M: M.TenCrop(21, vertical_flip=True)])
@pytest.mark.parametrize("v2", [False, True])
def test_five_and_ten_crop_equal_torchvisions_tuple(make, v2):
    M = T2 if v2 else T
    rng = np.random.default_rng(3)
    for h, w in ((37, 45), (40, 40), (21, 22)):  # odd and even margins: the centre's rounding
        x = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        t = fp.from_torchvision(M.Compose([make(M)]) if v2 else M.Compose([make(M), M.Lambda(lambda c: c)]))
        if not v2:
            assert isinstance(t, fp.HybridCompose) and t.fused.crops_per_sample in (5, 10)
            crops = t(x)  # the v1 Lambda gets torchvision's tuple of PIL images
            ref = make(M)(Image.fromarray(x))
            assert len(crops) == len(ref)
            for a, b in zip(crops, ref):
                assert np.array_equal(np.asarray(a), np.asarray(b))
            continue
        out = t(x)
        ref = make(M)(torch.from_numpy(x).permute(2, 0, 1))
        assert out.shape[0] == len(ref)
        for k, r in enumerate(ref):
            assert np.array_equal(out[k], r.numpy()), k


def test_ten_crop_batches_and_loader(photos):
    t = fp.Compose([fp.Resize(64), fp.TenCrop(48), fp.ToTensor(), fp.Normalize("imagenet")])
    xb = t.batch(photos[:3], seed=0)
    assert xb.shape == (3, 10, 3, 48, 48)
    one = fp.Compose([fp.Resize(64), fp.CenterCrop(48), fp.ToTensor(), fp.Normalize("imagenet")])
    c = one.batch(photos[:3], seed=0)
    assert np.array_equal(xb[:, 4], c)  # FiveCrop's centre is CenterCrop's window
    loader = fp.Loader([(p, 0) for p in photos[:5]], t, batch_size=2, shuffle=False, backend="numpy")
    got = np.concatenate([x for x, _ in loader])
    assert np.array_equal(got[:3], xb)
    with pytest.raises(fp.ImageTooSmallError, match="bigger than the image"):
        fp.Compose([fp.FiveCrop(100)], dtype="uint8")(np.zeros((50, 50, 3), np.uint8))
    with pytest.raises(ValueError, match="TenCrop's mirrored crops"):
        fp.Compose([fp.TenCrop(8), fp.RandomHorizontalFlip()])


# ---- RandomResize and RandomShortestSize ------------------------------------------------------


def test_random_shortest_size_and_random_resize_replay_through_torchvision(photos):
    from torchvision.transforms.v2 import functional as F2

    sizes, max_size = (48, 64, 80), 100
    tv = T2.RandomShortestSize(sizes, max_size)
    t = fp.from_torchvision(T2.Compose([tv]))
    assert isinstance(t, fp.Compose)
    outs, params = t.batch(photos[:6], seed=2, return_params=True)  # a list: sizes differ
    assert isinstance(outs, list) and len({o.shape for o in outs}) > 1
    for p, o, path in zip(params, outs, photos):
        x = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
        h, w = x.shape[1:]
        possible = set()
        for s in sizes:  # v2's make_params for each size of the list
            r = min(s / min(h, w), max_size / max(h, w))
            possible.add((int(h * r), int(w * r)))
        assert p["resized"] in possible and o.shape[1:] == p["resized"]
        want = F2.resize(x, list(p["resized"]), antialias=True)
        assert int((torch.from_numpy(np.asarray(o)).int() - want.int()).abs().max()) <= 1
    t = fp.from_torchvision(T2.Compose([T2.RandomResize(40, 90), T2.RandomCrop(32)]))
    xb, params = t.batch(photos[:8], seed=3, return_params=True)
    assert xb.shape == (8, 3, 32, 32)
    shorter = [min(p["resized"]) for p in params]
    assert all(40 <= s < 90 for s in shorter) and len(set(shorter)) > 3


def test_image_dependent_sizes_come_back_as_a_list(photos):
    t = fp.Compose([fp.Resize(40)], dtype="uint8")
    outs = t.batch(photos[:4], threads=2, seed=0)
    assert [o.shape for o in outs] == [t(p, seed=0).shape for p in photos[:4]]
    outs = t.batch(photos[:2] + [b"not an image"], on_error="skip")
    assert len(outs) == 2
    with pytest.raises(fp.DecodeError):
        t.batch(photos[:2] + [b"not an image"], on_error="zeros")


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_padding_modes_beside_center_crop_zeros_and_flips(mode):
    """A CenterCrop larger than the padded image pads further with zeros (torchvision's
    center_crop), whatever Pad's mode; flips mirror the padding with the image."""
    x = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    xt = torch.from_numpy(x).permute(2, 0, 1)
    for tv in (T2.Compose([T2.Pad((1, 2, 3, 4), fill=9 if mode == "constant" else 0, padding_mode=mode),
                           T2.CenterCrop((25, 33))]),
               T2.Compose([T2.Pad((1, 2, 3, 4), padding_mode=mode), T2.RandomHorizontalFlip(1.0),
                           T2.RandomVerticalFlip(1.0)])):
        assert np.array_equal(fp.from_torchvision(tv)(x), tv(xt).numpy())


def test_pad_if_needed_pads_with_the_fill():
    from torchvision.transforms.v2 import functional as F2

    x = np.random.default_rng(1).integers(0, 256, (30, 30, 3), dtype=np.uint8)
    t = fp.Compose([fp.RandomCrop(40, padding=2, pad_if_needed=True, fill=5)], dtype="uint8", layout="CHW")
    for i in range(6):
        o, p = t.batch([x], seed=3, indices=[i], return_params=True)
        oy, ox = p[0]["crop_offset"]
        # v2: padding 2, then pad_if_needed adds 40 - 34 = 6 on both sides: 8 in all
        padded = F2.pad(torch.from_numpy(x).permute(2, 0, 1), [8, 8, 8, 8], fill=5)
        assert np.array_equal(o[0], padded[:, oy + 8:oy + 48, ox + 8:ox + 48].numpy())


def test_random_zoom_out_replays_through_torchvision(photos):
    from torchvision.transforms.v2 import functional as F2

    tv = T2.RandomZoomOut(fill=(10, 20, 30), side_range=(1.0, 2.5), p=0.8)
    t = fp.from_torchvision(T2.Compose([T2.Resize((30, 40)), tv]))
    assert isinstance(t, fp.Compose) and t.output_size is None
    resized = fp.Compose([fp.Resize((30, 40))], dtype="uint8", layout="CHW")(photos[0])
    zoomed = 0
    for i in range(12):
        out, p = t.batch([photos[0]], seed=2, indices=[i], return_params=True)
        left, top, right, bottom = p[0]["zoom_padding"]
        want = tv.transform(torch.from_numpy(resized), {"padding": [left, top, right, bottom]}) if any(
            (left, top, right, bottom)) else torch.from_numpy(resized)
        assert np.array_equal(out[0], want.numpy())
        if any((left, top, right, bottom)):
            zoomed += 1
            h, w = want.shape[1:]
            assert 30 <= h <= 75 and 40 <= w <= 100
    assert 0 < zoomed < 12
    # followed by a crop, one size: batches and the Loader
    t = fp.Compose([fp.Resize((30, 40)), fp.RandomZoomOut(side_range=(1.0, 3.0), p=1.0), fp.CenterCrop(50)])
    assert t.batch(photos[:3], seed=0).shape == (3, 50, 50, 3)  # uint8 HWC
