"""The uint8 op sequence (issue 31): RandomSolarize, RandomPosterize, RandomEqualize,
RandomAutocontrast, RandomInvert, RandomAdjustSharpness, RandomChannelPermutation, GaussianBlur
and the containers RandomApply, RandomChoice, RandomOrder, against real torchvision:

- each op replayed from ``return_params`` through torchvision v2's functional kernel on
  fastprep's own pre-op output (the same Compose without the op): the per-level ops and the
  permutation identical, GaussianBlur within 1 level (Note [GaussianBlur arithmetic]);
- every SIMD level byte-identical to the scalar reference;
- containers: their recorded picks replayed; wrapping an op in a container, or adding one,
  leaves every op's draws unchanged (Note [Op sequence]);
- the order rules, argument errors and from_torchvision of the SSL recipes.
"""
import pickle

import numpy as np
import pytest

import fastprep as fp
from conftest import SIMD_LEVELS

torch = pytest.importorskip("torch")
tv2 = pytest.importorskip("torchvision.transforms.v2")
tv1 = pytest.importorskip("torchvision.transforms")
from torchvision.transforms.v2 import functional as F2  # noqa: E402

SIZES = ((224, 224), (97, 131), (31, 40), (5, 3))


@pytest.fixture(scope="module")
def crops(photos):
    """uint8 HWC images as fastprep's geometry produces them (odd sizes, a tiny one)."""
    return [fp.Compose([fp.Resize(s)], dtype="uint8", layout="HWC")(photos[i]) for i, s in enumerate(SIZES)]


def chw(img):
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).contiguous()


def run(ops, imgs, seed=3, simd=None, **kw):
    """Each image through Compose(ops) as sample i of one run (images of several sizes)."""
    t = fp.Compose(ops, dtype="uint8", layout="CHW", simd=simd, **kw)
    out, params = [], []
    for i, img in enumerate(imgs):
        o, p = t.batch([img], seed=seed, return_params=True, indices=[i])
        out.append(torch.from_numpy(np.array(o[0])))
        params.append(p[0])
    return out, params


# op, its params key, the torchvision v2 kernel replaying one draw, the tolerance in levels
CASES = {
    "solarize": (lambda: fp.RandomSolarize(128, p=0.5), lambda x, v: F2.solarize(x, 128.0), 0),
    "solarize_low": (lambda: fp.RandomSolarize(0.5, p=1.0), lambda x, v: F2.solarize(x, 0.5), 0),
    "posterize": (lambda: fp.RandomPosterize(3, p=0.5), lambda x, v: F2.posterize(x, 3), 0),
    "equalize": (lambda: fp.RandomEqualize(p=0.5), lambda x, v: F2.equalize(x), 0),
    "autocontrast": (lambda: fp.RandomAutocontrast(p=0.5), lambda x, v: F2.autocontrast(x), 0),
    "invert": (lambda: fp.RandomInvert(p=0.5), lambda x, v: F2.invert(x), 0),
    "sharpness": (lambda: fp.RandomAdjustSharpness(2.0, p=0.5), lambda x, v: F2.adjust_sharpness(x, 2.0), 0),
    "sharpness_blur": (lambda: fp.RandomAdjustSharpness(0.0, p=1.0), lambda x, v: F2.adjust_sharpness(x, 0.0), 0),
    "channel_permutation": (lambda: fp.RandomChannelPermutation(), lambda x, v: F2.permute_channels(x, list(v)), 0),
    "gaussian_blur": (lambda: fp.GaussianBlur(23, (0.1, 2.0)), lambda x, v: F2.gaussian_blur(x, [23, 23], [v, v]), 1),
    "gaussian_blur_rect": (lambda: fp.GaussianBlur((3, 9), (1.5, 4.0)),
                           lambda x, v: F2.gaussian_blur(x, [3, 9], [v, v]), 1),
}


def key_of(op):
    return type(op).key


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_replays_through_torchvision(crops, case):
    make, ref, tol = CASES[case]
    op = make()
    imgs = crops * 4  # several draws per image
    out, params = run([op], imgs, seed=11)
    applied = 0
    for img, o, p in zip(imgs, out, params):
        v = p[key_of(op)]
        on = v is not None and v is not False
        if case.startswith("gaussian_blur") and min(img.shape[:2]) <= 11:
            continue  # torch refuses reflect padding wider than the image: checked below instead
        want = ref(chw(img), v) if on else chw(img)
        d = (o.int() - want.int()).abs()
        assert int(d.max()) <= tol, (case, p)
        if tol:
            assert float((d > 0).float().mean()) < 1e-3, case  # ties only
        applied += on
    assert 0 < applied, case


def test_blur_on_images_smaller_than_its_padding_reflects_again(crops):
    img = crops[3]  # 5 x 3, kernel 23
    out, _ = run([fp.GaussianBlur(23, 5.0)], [img])
    # a constant image stays constant; a non-constant one stays within its range
    assert out[0].min() >= int(img.min()) and out[0].max() <= int(img.max())
    flat = np.full((5, 3, 3), 77, np.uint8)
    assert (run([fp.GaussianBlur(23, 5.0)], [flat])[0][0] == 77).all()


def test_v1_gaussian_blur_on_pil_within_one_level(crops):
    from PIL import Image
    from torchvision.transforms import functional as F1

    img = crops[0]
    out, params = run([fp.GaussianBlur(9, (0.5, 3.0))], [img] * 3)
    for o, p in zip(out, params):
        s = p["gaussian_blur"]
        want = np.asarray(F1.gaussian_blur(Image.fromarray(img), [9, 9], [s, s]))
        assert np.abs(o.permute(1, 2, 0).numpy().astype(int) - want.astype(int)).max() <= 1


@pytest.mark.parametrize("simd", SIMD_LEVELS[1:] or ["scalar"])
def test_simd_levels_identical(crops, simd):
    ops = [fp.RandomApply([fp.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8), fp.RandomGrayscale(0.2),
           fp.GaussianBlur(9, (0.1, 2.0)), fp.RandomAdjustSharpness(2.0, 0.5), fp.RandomAutocontrast(0.5),
           fp.RandomEqualize(0.5), fp.RandomSolarize(128, 0.5), fp.RandomChannelPermutation()]
    a, _ = run(ops, crops * 3, simd="scalar")
    b, _ = run(ops, crops * 3, simd=simd)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    # the elastic displacement's blur, and GaussianNoise on the float output
    ops = [fp.ElasticTransform(40.0, (3.0, 5.0)), fp.ToTensor(multiply=True), fp.GaussianNoise(0.0, 0.1),
           fp.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    for layout in ("CHW", "HWC"):
        outs = [fp.Compose(ops, layout=layout, simd=s).batch([crops[0], crops[1]], seed=2) for s in ("scalar", simd)]
        assert np.array_equal(np.asarray(outs[0][0]), np.asarray(outs[1][0]))
        assert np.array_equal(np.asarray(outs[0][1]), np.asarray(outs[1][1]))


def test_order_of_the_sequence_is_the_composes(crops):
    img = crops[1]
    a, _ = run([fp.RandomInvert(1.0), fp.RandomPosterize(2, 1.0)], [img])
    b, _ = run([fp.RandomPosterize(2, 1.0), fp.RandomInvert(1.0)], [img])
    x = chw(img)
    assert torch.equal(a[0], F2.posterize(F2.invert(x), 2))
    assert torch.equal(b[0], F2.invert(F2.posterize(x, 2)))


def test_grayscale_then_sequence_ops(crops):
    """RandomGrayscale before a sequence op: the op sees the gray image (solarize of gray, not gray
    of solarize)."""
    img = crops[0]
    out, params = run([fp.RandomGrayscale(1.0), fp.RandomSolarize(100, 1.0)], [img])
    pre, _ = run([fp.RandomGrayscale(1.0)], [img])
    assert torch.equal(out[0], F2.solarize(pre[0], 100.0))
    g, _ = run([fp.Grayscale(), fp.RandomSolarize(100, 1.0)], [img])
    pg, _ = run([fp.Grayscale()], [img])
    assert torch.equal(g[0], F2.solarize(pg[0], 100.0))


def test_random_apply_replays_and_keeps_member_draws(crops):
    imgs = crops * 8
    blur = fp.GaussianBlur(5, (0.1, 2.0))
    out, params = run([fp.RandomApply([blur, fp.RandomInvert(1.0)], p=0.5)], imgs)
    plain, pparams = run([fp.GaussianBlur(5, (0.1, 2.0)), fp.RandomInvert(1.0)], imgs)
    picks = [p["containers"][0] for p in params]
    assert 0 < sum(picks) < len(picks)
    for img, o, pl, p, pp in zip(imgs, out, plain, params, pparams):
        if p["containers"][0]:
            assert torch.equal(o, pl)  # same draws as the ops outside the container
            assert p["gaussian_blur"] == pp["gaussian_blur"]
        else:
            assert torch.equal(o, chw(img)) and p["gaussian_blur"] is None and p["invert"] is False


def test_random_apply_of_color_jitter_replays(photos):
    """SimCLR's RandomApply([ColorJitter], p=0.8): applied samples equal the plain ColorJitter's,
    the others the geometry-only output; the crop draws do not move."""
    geo = [fp.RandomResizedCrop(64), fp.RandomHorizontalFlip()]
    jit = fp.ColorJitter(0.4, 0.4, 0.2, 0.1)
    items = photos[:6] * 4
    a, pa = run(geo + [fp.RandomApply([jit], p=0.8)], items, seed=9)
    b, pb = run(geo + [jit], items, seed=9)
    g, pg = run(geo, items, seed=9)
    n_on = 0
    for x, y, z, p, q, r in zip(a, b, g, pa, pb, pg):
        assert p["box"] == q["box"] == r["box"] and p["flip"] == r["flip"]
        if p["containers"][0]:
            n_on += 1
            assert torch.equal(x, y) and p["jitter"] == q["jitter"]
        else:
            assert torch.equal(x, z) and p["jitter"]["brightness"] is None
    assert 0.5 < n_on / len(items) < 1.0


def test_random_choice_and_order_replay(crops):
    imgs = crops * 6
    ops = [fp.RandomInvert(1.0), fp.RandomPosterize(2, 1.0), fp.RandomSolarize(60, 1.0)]
    refs = [F2.invert, lambda x: F2.posterize(x, 2), lambda x: F2.solarize(x, 60.0)]
    out, params = run([fp.RandomChoice(ops, p=[1, 2, 1])], imgs)
    picks = [p["containers"][0] for p in params]
    assert set(picks) == {0, 1, 2}
    for img, o, k in zip(imgs, out, picks):
        assert torch.equal(o, refs[k](chw(img)))
    out, params = run([fp.RandomOrder(ops)], imgs)
    orders = [tuple(p["containers"][0]) for p in params]
    assert len(set(orders)) > 2
    for img, o, order in zip(imgs, out, orders):
        x = chw(img)
        for k in order:
            x = refs[k](x)
        assert torch.equal(o, x)


def test_containers_change_no_other_draws(photos):
    """Adding a container (and its members) leaves the crop, flip, jitter and blur draws as they were."""
    base = [fp.RandomResizedCrop(48), fp.RandomHorizontalFlip(), fp.ColorJitter(0.4, 0.4, 0.2, 0.1),
            fp.GaussianBlur(5, (0.1, 2.0))]
    more = base[:3] + [fp.RandomApply([fp.RandomSolarize(128)], p=0.3), base[3],
                       fp.RandomChoice([fp.RandomInvert(1.0), fp.RandomEqualize(1.0)])]
    _, pa = run(base, photos[:5], seed=4)
    _, pb = run(more, photos[:5], seed=4)
    for p, q in zip(pa, pb):
        for k in ("box", "flip", "jitter", "gaussian_blur"):
            assert p[k] == q[k], k


def test_results_depend_only_on_seed_epoch_and_sample(crops):
    ops = [fp.RandomApply([fp.GaussianBlur(7)], p=0.5), fp.RandomSolarize(128), fp.RandomChannelPermutation()]
    t = fp.Compose([fp.Resize((40, 50))] + ops, dtype="uint8", layout="CHW")
    a = t.batch(crops * 4, seed=5, threads=1)
    b = t.batch(crops * 4, seed=5, threads=2)
    c = pickle.loads(pickle.dumps(t)).batch(crops * 4, seed=5, threads=2)
    assert np.array_equal(a, b) and np.array_equal(a, c)


@pytest.mark.parametrize("make, msg", [
    (lambda: fp.Compose([fp.GaussianBlur(5), fp.ColorJitter(0.4)]), "ColorJitter after GaussianBlur"),
    (lambda: fp.Compose([fp.RandomSolarize(128), fp.RandomGrayscale(0.2)]), "RandomGrayscale after RandomSolarize"),
    (lambda: fp.Compose([fp.RandomInvert(), fp.RandAugment()]), "RandAugment after RandomInvert"),
    (lambda: fp.GaussianBlur(4), "odd int"),
    (lambda: fp.GaussianBlur(5, (2.0, 1.0)), "0 < min <= max"),
    (lambda: fp.RandomSolarize(300), r"\[0, 255\]"),
    (lambda: fp.RandomPosterize(9), r"\[0, 8\]"),
    (lambda: fp.RandomAdjustSharpness(-1), ">= 0"),
    (lambda: fp.RandomApply([fp.RandomResizedCrop(3)]), "cannot fuse RandomResizedCrop"),
    (lambda: fp.RandomChoice([fp.ColorJitter(0.4)]), "cannot fuse ColorJitter"),
    (lambda: fp.RandomChoice([fp.RandomInvert()], p=[0]), "not all 0"),
    (lambda: fp.Compose([fp.RandomApply([fp.RandomApply([fp.RandomInvert()])])]), "cannot fuse RandomApply"),
    (lambda: fp.Compose([fp.RandomChannelPermutation()], color="GRAY"), "RGB or BGR"),
])
def test_argument_and_order_errors(make, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        make()


def test_flips_commute_with_the_sequence(crops):
    img = crops[1]
    a, _ = run([fp.GaussianBlur(5, 1.0), fp.RandomHorizontalFlip(1.0)], [img])
    b, _ = run([fp.RandomHorizontalFlip(1.0), fp.GaussianBlur(5, 1.0)], [img])
    assert torch.equal(a[0], b[0])


def test_from_torchvision_converts_ssl_recipes_fused():
    simclr = tv2.Compose([
        tv2.RandomResizedCrop(224), tv2.RandomHorizontalFlip(),
        tv2.RandomApply([tv2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8), tv2.RandomGrayscale(0.2),
        tv2.GaussianBlur(23, (0.1, 2.0)), tv2.ToImage(), tv2.ToDtype(torch.float32, scale=True),
        tv2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    t = fp.from_torchvision(simclr)
    names = [type(o).__name__ for o in t.transforms]
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "RandomApply", "RandomGrayscale", "GaussianBlur",
                     "ToTensor", "Normalize"]
    byol = tv1.Compose([
        tv1.RandomResizedCrop(96), tv1.RandomHorizontalFlip(),
        tv1.RandomApply([tv1.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8), tv1.RandomGrayscale(0.2),
        tv1.RandomApply([tv1.GaussianBlur(23, (0.1, 2.0))], p=0.1), tv1.RandomSolarize(128, p=0.2),
        tv1.RandomChoice([tv1.RandomInvert(1.0), tv1.RandomEqualize(1.0)]),
        tv1.RandomOrder([tv1.RandomPosterize(4, 1.0), tv1.RandomAutocontrast(1.0)]), tv1.ToTensor()])
    t = fp.from_torchvision(byol)
    assert [type(o).__name__ for o in t.transforms][-5:] == ["RandomApply", "RandomSolarize", "RandomChoice",
                                                             "RandomOrder", "ToTensor"]
    assert t.transforms[4].members == [fp.GaussianBlur(23, (0.1, 2.0))]


def test_random_choice_of_batch_mixes_is_the_old_mix_choice():
    with pytest.warns(FutureWarning, match="MixChoice"):
        old = fp.RandomChoice([fp.MixUp(0.2), fp.CutMix(1.0)])
    with pytest.raises(ValueError, match="MixChoice"):
        fp.Compose([old])
    from fastprep.data import check_mix

    mix, _, _ = check_mix(old, 10, 0.0, np.float32)
    assert isinstance(mix, fp.MixChoice) and mix.p == [0.5, 0.5]


def exemplar_reference(img, d):
    """Exemplar-CNN's jitter in float64 numpy: matplotlib's rgb_to_hsv / hsv_to_rgb on RGB / 255,
    S and V raised to a power, scaled and offset (clipped to [0, 1]), the hue shifted (wrapping)."""
    mcolors = pytest.importorskip("matplotlib.colors")
    hsv = mcolors.rgb_to_hsv(img.astype(np.float64) / 255.0)
    for c, key in ((1, "s"), (2, "v")):
        a, m, add = d[key]
        hsv[..., c] = np.clip(hsv[..., c] ** a * m + add, 0.0, 1.0)
    hsv[..., 0] = np.mod(hsv[..., 0] + d["hue"], 1.0)
    return np.floor(mcolors.hsv_to_rgb(hsv) * 255.0 + 0.5).astype(np.uint8)


def test_exemplar_jitter_matches_a_float64_reference(crops):
    imgs = crops[:3] * 4
    out, params = run([fp.ExemplarJitter()], imgs, seed=2)
    powers = []
    for img, o, p in zip(imgs, out, params):
        d = p["exemplar"]
        powers += [d["s"][0], d["v"][0]]
        assert 0.7 <= d["s"][1] <= 1.4 and -0.1 <= d["v"][2] <= 0.1 and -0.1 <= d["hue"] <= 0.1
        want = exemplar_reference(img, d)
        diff = np.abs(o.permute(1, 2, 0).numpy().astype(int) - want.astype(int))
        assert diff.max() <= 1, d
    assert min(powers) < 0.6 and max(powers) > 1.6 and all(0.25 <= a <= 4 for a in powers)  # log-uniform


def test_exemplar_jitter_ranges_are_arguments(crops):
    out, params = run([fp.ExemplarJitter(power=(1, 1), factor=(1, 1), add=(0, 0), hue=(0, 0))], crops[:2])
    for img, o in zip(crops[:2], out):  # the identity, up to the float round trip
        assert np.abs(o.permute(1, 2, 0).numpy().astype(int) - img.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="ExemplarJitter"):
        fp.ExemplarJitter(power=(0, 2))
    with pytest.raises(ValueError, match="RGB or BGR"):
        fp.Compose([fp.ExemplarJitter()], color="GRAY")


def test_photometric_distort_replays_through_torchvisions_transform(crops):
    tv = tv2.RandomPhotometricDistort(p=0.5)
    t = fp.from_torchvision(tv2.Compose([tv]))
    assert isinstance(t, fp.Compose)
    imgs = crops[:3] * 8
    out, params = run(t.transforms, imgs, seed=4)
    seen_before, seen_perm = set(), 0
    for img, o, p in zip(imgs, out, params):
        d = p["photometric"]
        replay = {f"{k}_factor": d[k] for k in ("brightness", "contrast", "saturation", "hue")}
        replay["contrast_before"] = d["contrast_before"]
        replay["channel_permutation"] = None if d["channel_permutation"] is None else torch.tensor(
            d["channel_permutation"])
        want = tv.transform(chw(img), replay)  # torchvision's own application of the draws
        assert int((o.int() - want.int()).abs().max()) <= 1, d
        seen_before.add(d["contrast_before"])
        seen_perm += d["channel_permutation"] is not None
    assert seen_before == {True, False} and 0 < seen_perm < len(imgs)
    with pytest.raises(ValueError, match="cannot be combined"):
        fp.Compose([fp.ColorJitter(0.4), fp.RandomPhotometricDistort()])
    with pytest.raises(ValueError, match="RandomGrayscale after RandomPhotometricDistort"):
        fp.Compose([fp.RandomPhotometricDistort(), fp.RandomGrayscale()])


def test_jpeg_replays_through_torchvision(crops):
    tv = tv2.JPEG((5, 95))
    t = fp.from_torchvision(tv2.Compose([tv]))
    assert isinstance(t, fp.Compose)
    imgs = crops * 3
    out, params = run(t.transforms, imgs, seed=6)
    qualities = set()
    for img, o, p in zip(imgs, out, params):
        q = p["jpeg_quality"]
        qualities.add(q)
        want = tv.transform(chw(img), {"quality": q})  # encode_jpeg + decode_jpeg
        d = (o.int() - want.int()).abs()
        assert int(d.max()) <= 1 and float((d > 0).float().mean()) < 1e-3, q
    assert len(qualities) > 5 and all(5 <= q <= 95 for q in qualities)
    with pytest.raises(ValueError, match="quality"):
        fp.JPEG(0)


@pytest.mark.parametrize("interp, fill", [("bilinear", 0), ("nearest", None), ("bilinear", (10, 200, 30))])
def test_random_perspective_replays_through_torchvision(crops, interp, fill):
    """v2's RandomPerspective: draws replayed through F.perspective with the recorded coefficients;
    a warp: > 1 level on at most 0.5% of pixels, mean absolute difference <= 0.1 level."""
    from torchvision.transforms import InterpolationMode

    tv = tv2.RandomPerspective(0.6, p=0.7, interpolation=InterpolationMode(interp), fill=fill)
    t = fp.from_torchvision(tv2.Compose([tv]))
    assert isinstance(t, fp.Compose)
    imgs = crops[:3] * 4
    out, params = run(t.transforms, imgs, seed=8)
    applied = 0
    for img, o, p in zip(imgs, out, params):
        if p["perspective"] is None:
            assert torch.equal(o, chw(img))
            continue
        c = p["perspective"]["coefficients"]
        applied += 1
        want = F2.perspective(chw(img), None, None, coefficients=c, interpolation=InterpolationMode(interp),
                              fill=list(fill) if isinstance(fill, tuple) else fill)
        d = (o.int() - want.int()).abs()
        assert float((d > 1).float().mean()) <= 0.005 and float(d.float().mean()) <= 0.1, (c, float(d.float().mean()))
    assert 0 < applied < len(imgs)


@pytest.mark.parametrize("interp, fill, alpha, sigma", [("bilinear", 0, 50.0, 5.0), ("nearest", None, 30.0, 3.0),
                                                        ("bilinear", (10, 200, 30), (80.0, 20.0), (4.0, 2.0))])
def test_elastic_transform_replays_through_torchvision(crops, interp, fill, alpha, sigma):
    """v2's ElasticTransform: the recorded seed rebuilds the displacement, and F.elastic with it
    on the pre-op image gives the fused output: a warp, > 1 level on at most 0.5% of pixels."""
    from torchvision.transforms import InterpolationMode

    tv = tv2.ElasticTransform(alpha, sigma, interpolation=InterpolationMode(interp), fill=fill)
    t = fp.from_torchvision(tv2.Compose([tv]))
    assert isinstance(t, fp.Compose)
    op = t.transforms[0]
    assert isinstance(op, fp.ElasticTransform)
    imgs = crops[:2] * 2
    out, params = run(t.transforms, imgs, seed=8)
    seeds = set()
    for img, o, p in zip(imgs, out, params):
        seeds.add(p["elastic_seed"])
        assert p["elastic_size"] == list(img.shape[:2])
        disp = torch.from_numpy(op.displacement(p))
        assert disp.shape == (1, *img.shape[:2], 2) and disp.dtype == torch.float32
        want = F2.elastic(chw(img), disp, interpolation=InterpolationMode(interp),
                          fill=list(fill) if isinstance(fill, tuple) else fill)
        d = (o.int() - want.int()).abs()
        assert float((d > 1).float().mean()) <= 0.005 and float(d.float().mean()) <= 0.1, float(d.float().mean())
        assert float((o.int() - chw(img).int()).abs().float().mean()) > 1.0  # it did warp
    assert len(seeds) == len(imgs)


def test_elastic_transform_v1_on_pil_replays(crops):
    """v1's ElasticTransform (the same draws and scaling in this torchvision) on a PIL image:
    F.elastic_transform with the rebuilt displacement, within the warp tolerance."""
    from PIL import Image
    from torchvision.transforms import functional as F1

    t = fp.from_torchvision(tv1.Compose([tv1.ElasticTransform(40.0, 4.0)]))
    assert isinstance(t, fp.Compose)
    op = t.transforms[0]
    out, params = run(t.transforms, crops[:2], seed=4)
    for img, o, p in zip(crops[:2], out, params):
        want = chw(np.asarray(F1.elastic_transform(Image.fromarray(img), torch.from_numpy(op.displacement(p)),
                                                   fill=0)))  # v1 ElasticTransform's default fill
        d = (o.int() - want.int()).abs()
        assert float((d > 1).float().mean()) <= 0.005 and float(d.float().mean()) <= 0.1


def test_elastic_displacement_is_torchvisions_make_params_of_its_noise(monkeypatch):
    """The displacement is v2's own make_params on the sample's uniform noise: torch.rand is
    handed our two planes (dx, then dy), and torchvision's blur and scaling (by the width for dx,
    the height for dy, on a non-square image) give our displacement to float32 rounding. With
    sigma 0 and alpha = the side (a power of two) the binding returns the noise itself, exactly."""
    h, w, seed = 32, 64, 12345
    noise = fp._core.elastic_displacement(seed, h, w, float(w), float(h), 0.0, 0.0)
    assert noise.min() >= -1.0 and noise.max() < 1.0 and abs(float(noise.mean())) < 0.05
    for alpha, sigma in (((50.0, 50.0), (5.0, 5.0)), ((10.0, 70.0), (2.0, 3.5))):
        planes = [torch.from_numpy((noise[0, :, :, d] + 1) / 2)[None, None] for d in (0, 1)]
        monkeypatch.setattr(torch, "rand", lambda *shape, **kw: planes.pop(0).clone())
        want = tv2.ElasticTransform(alpha, sigma).make_params([torch.zeros(3, h, w, dtype=torch.uint8)])
        monkeypatch.undo()
        assert not planes  # both planes drawn
        got = fp._core.elastic_displacement(seed, h, w, *alpha, *sigma)
        np.testing.assert_allclose(got, want["displacement"].numpy(), rtol=0,
                                   atol=2e-6 * max(alpha) / min(h, w) + 1e-7)


def test_elastic_transform_is_a_warp():
    """One warp per Compose, sigmas both 0 or both > 0, and a huge sigma refused."""
    with pytest.raises(ValueError, match="one warp per Compose"):
        fp.Compose([fp.ElasticTransform(), fp.RandomRotation(10)])
    with pytest.raises(ValueError, match="one warp per Compose"):
        fp.Compose([fp.RandomPerspective(), fp.ElasticTransform()])
    with pytest.raises(ValueError, match="both be 0 or both"):
        fp.ElasticTransform(sigma=(5.0, 0.0))
    with pytest.raises(ValueError, match="at most 127"):
        fp.ElasticTransform(sigma=500.0)
    with pytest.raises(ValueError, match="alpha"):
        fp.ElasticTransform(alpha=-1.0)
    # a tiny image (smaller than the blur's padding) reflects again, and a no-blur warp runs too
    out = fp.Compose([fp.ElasticTransform(50.0, 5.0)], dtype="uint8", layout="HWC")(np.full((5, 3, 3), 77, np.uint8))
    assert out.shape == (5, 3, 3) and out.max() <= 77
    flat = fp.Compose([fp.ElasticTransform(0.0, 0.0)], dtype="uint8", layout="HWC")
    x = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert np.array_equal(flat(x), x)  # alpha 0: the identity grid samples every pixel at its centre
    assert pickle.loads(pickle.dumps(fp.ElasticTransform((3, 4), (2, 2)))).alpha == (3.0, 4.0)


def test_random_perspective_coefficients_are_torchvisions():
    """The drawn corners lie in v2's make_params bounds, and the coefficients solved from them equal
    v2's _get_perspective_coeffs (float64 least squares cast to float32) for the same corners."""
    from torchvision.transforms.v2.functional._geometry import _get_perspective_coeffs

    t = fp.Compose([fp.RandomPerspective(0.9, p=1.0)], dtype="uint8")
    x = np.zeros((61, 80, 3), np.uint8)
    h, w = x.shape[:2]
    bh, bw = int(0.9 * (h // 2)) + 1, int(0.9 * (w // 2)) + 1
    for i in range(30):
        _, p = t.batch([x], seed=1, indices=[i], return_params=True)
        d = p[0]["perspective"]
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = d["endpoints"]
        assert 0 <= x0 < bw and 0 <= y0 < bh and w - bw <= x1 < w and 0 <= y1 < bh
        assert w - bw <= x2 < w and h - bh <= y2 < h and 0 <= x3 < bw and h - bh <= y3 < h
        want = _get_perspective_coeffs([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], d["endpoints"])
        np.testing.assert_allclose(d["coefficients"], want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("case", ["solarize", "posterize", "equalize", "autocontrast", "invert", "sharpness"])
def test_v1_on_pil_within_one_level(crops, case):
    """torchvision v1's functional ops on PIL images (ImageOps, ImageEnhance) against the same
    ops applied with p=1: identical but for AutoContrast's rounding (1 level)."""
    from PIL import Image
    from torchvision.transforms import functional as F1

    op, ref = {"solarize": (fp.RandomSolarize(128, 1.0), lambda im: F1.solarize(im, 128)),
               "posterize": (fp.RandomPosterize(3, 1.0), lambda im: F1.posterize(im, 3)),
               "equalize": (fp.RandomEqualize(1.0), F1.equalize),
               "autocontrast": (fp.RandomAutocontrast(1.0), F1.autocontrast),
               "invert": (fp.RandomInvert(1.0), F1.invert),
               "sharpness": (fp.RandomAdjustSharpness(0.3, 1.0), lambda im: F1.adjust_sharpness(im, 0.3))}[case]
    t = fp.Compose([op], dtype="uint8", layout="HWC")
    for img in crops:
        d = np.abs(t(img).astype(int) - np.asarray(ref(Image.fromarray(img))).astype(int))
        assert d.max() <= 1, case


@pytest.mark.parametrize("layout, extra, norm, clip", [("CHW", [], True, True), ("HWC", [], True, False),
                                                        ("CHW", ["gray"], True, True), ("CHW", [], False, True),
                                                        ("CHW", ["gray", "invert"], True, True)])
def test_gaussian_noise_replays_through_torchvision(crops, monkeypatch, layout, extra, norm, clip):
    """v2's GaussianNoise: the recorded seed rebuilds the N(0, 1) values; v2's own gaussian_noise,
    handed them in place of torch.randn_like, on the pre-noise image gives the same bytes."""
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    tv = [tv2.ToImage()] + ([tv2.RandomGrayscale(1.0)] if extra else []) + (
        [tv2.RandomInvert(1.0)] if "invert" in extra else []) + [
        tv2.ToDtype(torch.float32, scale=True), tv2.GaussianNoise(0.05, 0.2, clip=clip)] + (
        [tv2.Normalize(mean, std)] if norm else [])
    t = fp.from_torchvision(tv2.Compose(tv))
    assert isinstance(t, fp.Compose), t
    ops = t.transforms
    op = next(o for o in ops if isinstance(o, fp.GaussianNoise))
    assert (op.mean, op.sigma, op.clip) == (0.05, 0.2, clip)
    pre_ops = ([fp.RandomGrayscale(1.0, v2=True)] if extra else []) + (
        [fp.RandomInvert(1.0)] if "invert" in extra else [])
    imgs = crops[:3]
    for i, img in enumerate(imgs):
        c = fp.Compose(ops, layout=layout)
        o, p = c.batch([img], seed=5, indices=[i], return_params=True)
        o = torch.from_numpy(np.array(o[0]))
        if layout == "HWC":
            o = o.permute(2, 0, 1)
        pre = chw(fp.Compose(pre_ops, dtype="uint8", layout="HWC")(img)) if pre_ops else chw(img)
        n = torch.from_numpy(op.noise(p[0], tuple(pre.shape)))
        monkeypatch.setattr(torch, "randn_like", lambda x: n.clone())
        want = F2.gaussian_noise(F2.to_dtype(pre, torch.float32, scale=True), 0.05, 0.2, clip)
        if norm:
            want = F2.normalize(want, mean, std)
        monkeypatch.undo()
        assert torch.equal(o, want), float((o - want).abs().max())
    # the values are N(0, 1): mean and spread over one 224 x 224 sample's three planes
    n = op.noise({"noise_seed": 12345}, (3, 224, 224))
    assert abs(float(n.mean())) < 0.01 and abs(float(n.std()) - 1.0) < 0.01


def test_gaussian_noise_rules():
    with pytest.raises(ValueError, match="put ToTensor"):
        fp.Compose([fp.GaussianNoise()])
    # v2's uint8 GaussianNoise (int16 arithmetic) is not fused: it runs in Python, exactly
    with pytest.warns(UserWarning, match="uint8 GaussianNoise"):
        h = fp.from_torchvision(tv2.Compose([tv2.Resize((20, 20)), tv2.GaussianNoise()]))
    assert [type(x).__name__ for x in h.remainder] == ["GaussianNoise"]
    with pytest.raises(ValueError, match="Lighting"):
        fp.Compose([fp.ToTensor(), fp.Lighting(0.1), fp.GaussianNoise()])
    with pytest.raises(ValueError, match="sigma"):
        fp.GaussianNoise(sigma=-1.0)
    # after Normalize it is torchvision's (odd) noise on normalised values: not fused, run in Python
    tv = tv2.Compose([tv2.ToImage(), tv2.ToDtype(torch.float32, scale=True), tv2.Normalize([0.5] * 3, [0.5] * 3),
                      tv2.GaussianNoise()])
    with pytest.warns(UserWarning, match="GaussianNoise"):
        h = fp.from_torchvision(tv)
    assert [type(x).__name__ for x in h.remainder] == ["GaussianNoise"]


def test_pil_gaussian_blur_is_pillows(crops):
    """PILGaussianBlur (DINO's and MoCo v2's GaussianBlur classes): each sample's drawn radius,
    handed to Pillow's ImageFilter.GaussianBlur, gives the same bytes; p and the range hold."""
    from PIL import Image, ImageFilter

    op = fp.PILGaussianBlur((0.1, 2.0), p=0.5)
    imgs = crops * 6
    out, params = run([op], imgs, seed=12)
    radii = []
    for img, o, p in zip(imgs, out, params):
        r = p["pil_gaussian_blur"]
        if r is None:
            assert torch.equal(o, chw(img))
            continue
        radii.append(r)
        want = chw(np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius=r))))
        assert torch.equal(o, want), r
    assert 0 < len(radii) < len(imgs) and all(0.1 <= r <= 2.0 for r in radii)
    rng = np.random.default_rng(1)
    for shape in ((1, 9), (9, 1), (5, 7), (61, 40)):  # images narrower than the box, and big radii
        x = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
        for r in (0.0, 0.3, 1.0, 7.5, 40.0):
            got = fp.Compose([fp.PILGaussianBlur(r)], dtype="uint8", layout="HWC")(x)
            assert np.array_equal(got, np.asarray(Image.fromarray(x).filter(ImageFilter.GaussianBlur(radius=r)))), r
    with pytest.raises(ValueError, match="radius"):
        fp.PILGaussianBlur((2.0, 1.0))
