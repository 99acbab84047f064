"""A true drop-in (issue #10) and clear argument errors (issue #9, item 10).

References are real torchvision (v1 on PIL images, as the default loader gives them; v2 on
tensors) and Pillow. Tolerances: uint8 output within 1 level on every pixel; after ToTensor +
Normalize, |diff| <= 1 / (255 * std) + 1e-6 per channel; bfloat16 adds its rounding (2**-8 of the
value). Tests that need torchvision are skipped with the reason when it is not importable.
"""
import os
import pathlib

import numpy as np
import pytest

import fastprep as fp
from conftest import HERE, MEAN, STD, pil_eval_reference, pil_rgb, psnr, tv_center_crop_box, tv_resize_size
from fastprep._checks import check_epoch as _check_epoch, check_seed as _check_seed

LARGE = os.path.join(HERE, "data", "photos", "06_1023x767_420.jpg")
NORM_TOL = (1.0 / (255.0 * np.array(STD)) + 1e-6).reshape(3, 1, 1)


def _tv():
    tv = pytest.importorskip("torchvision", reason="torchvision is not installed (pip install torchvision)")
    import torch  # noqa: F401

    return tv


def _torch():
    return pytest.importorskip("torch", reason="torch is not installed (pip install torch)")


def _pil_eval(im, resize, crop):
    """torchvision v1's Resize(resize) + CenterCrop(crop) on a PIL image, as a numpy array."""
    from PIL import Image

    w, h = im.size
    nh, nw = tv_resize_size(h, w, resize)
    r = im.resize((nw, nh), Image.BILINEAR)
    t, l = tv_center_crop_box(nh, nw, crop, crop)
    return np.asarray(r.crop((l, t, l + crop, t + crop)))


def _decode_jpeg(path):
    import warnings

    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    with warnings.catch_warnings():  # torchvision 0.29 deprecates its image decoding in favour of torchcodec
        warnings.simplefilter("ignore", DeprecationWarning)
        return decode_jpeg(read_file(path), mode=ImageReadMode.RGB)


# --- 1. exact by default -----------------------------------------------------------------------


def test_exact_is_the_default():
    assert fp.Compose([fp.Resize(8)]).exact is True
    assert fp.Compose([fp.Resize(8)], exact=False).exact is False


def test_from_torchvision_default_is_exact_on_a_large_photo():
    """Resize(128) / CenterCrop(112) of a 1023x767 photo: fast mode decodes at 1/2 scale in the
    DCT domain (and differs from torchvision); the default must not."""
    tv = _tv()
    T = tv.transforms
    ref_t = T.Compose([T.Resize(128), T.CenterCrop(112), T.ToTensor(), T.Normalize(MEAN, STD)])
    ref = ref_t(pil_rgb(LARGE)).numpy()

    t = fp.from_torchvision(ref_t)
    assert t.exact is True
    got, prm = t.batch([LARGE], return_params=True)
    assert prm[0]["decode_scale"] == 1.0
    assert np.all(np.abs(got[0] - ref) <= NORM_TOL), np.abs(got[0] - ref).max()

    fast = fp.from_torchvision(ref_t, exact=False)
    assert fast.exact is False
    got_fast, prm_fast = fast.batch([LARGE], return_params=True)
    assert prm_fast[0]["decode_scale"] < 1.0  # the shortcut did trigger
    assert not np.all(np.abs(got_fast[0] - ref) <= NORM_TOL)  # so fast mode is not torchvision's pixels


def test_compose_default_is_exact_uint8_vs_pil():
    ref = pil_eval_reference(LARGE, resize=128, crop=112)
    got = fp.Compose([fp.Resize(128), fp.CenterCrop(112)], dtype="uint8", layout="HWC")(LARGE)
    assert np.abs(got.astype(int) - ref).max() <= 1
    fast = fp.Compose([fp.Resize(128), fp.CenterCrop(112)], exact=False, dtype="uint8", layout="HWC")(LARGE)
    assert np.abs(fast.astype(int) - ref).max() > 1
    assert psnr(fast, ref) >= 40.0  # the documented bound of fast mode


# --- 2. the inputs and outputs a torchvision user has ------------------------------------------


def test_v2_pipeline_on_decode_jpeg_tensors(photos):
    """The torchvision v2 idiom: decode_jpeg -> v2 ops; fastprep takes the same CHW tensor and
    returns a tensor, equal to torchvision within the tolerance and to the path input."""
    _tv()
    import torch
    from torchvision.transforms import v2

    ref_t = v2.Compose([v2.ToImage(), v2.Resize(256, antialias=True), v2.CenterCrop(224),
                        v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])
    t = fp.from_torchvision(ref_t)
    for p in photos:
        img = _decode_jpeg(p)
        assert img.ndim == 3 and img.shape[0] == 3  # CHW
        ref = ref_t(img)
        got = t(img)
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float32 and got.shape == ref.shape
        assert np.all(np.abs(got.numpy() - ref.numpy()) <= NORM_TOL), p
        from_path = t(p)
        assert isinstance(from_path, np.ndarray)
        assert np.abs(from_path - got.numpy()).max() <= NORM_TOL.max(), p  # libjpeg-turbo decodes alike


def test_tensor_layouts_agree(photos):
    """CHW (torchvision's convention), HWC (unambiguous: C last, first dim not 1/3/4), HxW."""
    _tv()
    t = fp.Compose([fp.Resize(64), fp.CenterCrop(56)], dtype="uint8", layout="HWC")
    ref = pil_eval_reference(photos[0], 64, 56)
    chw = _decode_jpeg(photos[0])
    a = t(chw)
    b = t(chw.permute(1, 2, 0))  # HWC view, not contiguous
    c = t(chw.permute(1, 2, 0).contiguous())
    for x in (a, b, c):
        assert np.abs(x.numpy().astype(int) - ref).max() <= 1
    gray = chw[0]  # HxW: the red channel as a gray image
    g_ref = _pil_eval(pil_rgb(photos[0]).getchannel(0), 64, 56)
    g = t(gray).numpy()
    assert g.shape == (56, 56, 3) and np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 0], g[..., 2])
    assert np.abs(g[..., 0].astype(int) - g_ref).max() <= 1
    assert np.array_equal(t(gray[None]).numpy(), g)  # 1xHxW


def test_ambiguous_and_wrong_tensors_raise():
    torch = _torch()
    t = fp.Compose([fp.Resize(8), fp.CenterCrop(8)])
    with pytest.raises(ValueError, match="CxHxW"):
        t(torch.zeros((5, 6, 7), dtype=torch.uint8))
    with pytest.raises(TypeError, match="uint8"):
        t(torch.zeros((3, 6, 7), dtype=torch.float32))
    with pytest.raises(ValueError, match="batch"):
        t(torch.zeros((2, 3, 6, 7), dtype=torch.uint8))


def test_encoded_bytes_tensor(photos):
    torch = _torch()
    data = open(photos[1], "rb").read()
    t = fp.Compose([fp.Resize(64), fp.CenterCrop(56)], dtype="uint8", layout="HWC")
    got = t(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    assert isinstance(got, torch.Tensor)
    assert np.abs(got.numpy().astype(int) - pil_eval_reference(photos[1], 64, 56)).max() <= 1


def test_pil_inputs(photos):
    """PIL images as torchvision's default loader gives them (convert("RGB")); other modes are
    converted the same way (alpha dropped; "L" gives three equal channels)."""
    from PIL import Image

    t = fp.Compose([fp.Resize(64), fp.CenterCrop(56)], dtype="uint8", layout="HWC")
    for p in photos[:4]:
        im = pil_rgb(p)
        ref = pil_eval_reference(p, 64, 56)
        got = t(im)
        assert isinstance(got, np.ndarray) and np.abs(got.astype(int) - ref).max() <= 1
        rgba = im.copy()
        rgba.putalpha(Image.linear_gradient("L").resize(im.size))
        assert np.abs(t(rgba).astype(int) - ref).max() <= 1
    lum = pil_rgb(photos[0]).convert("L")
    assert np.abs(t(lum).astype(int) - _pil_eval(lum.convert("RGB"), 64, 56)).max() <= 1
    pal = pil_rgb(photos[2]).quantize(64)  # mode "P"
    ref_p = np.asarray(pal.convert("RGB").resize((64, 64), Image.BILINEAR))
    assert np.abs(fp.Compose([fp.Resize((64, 64))], dtype="uint8")(pal).astype(int) - ref_p).max() <= 1
    xb = t.batch([pil_rgb(p) for p in photos[:3]])
    assert xb.shape == (3, 56, 56, 3)
    for x, p in zip(xb, photos[:3]):
        assert np.abs(x.astype(int) - pil_eval_reference(p, 64, 56)).max() <= 1


def test_v1_pipeline_on_pil_images(photos):
    tv = _tv()
    import torch

    T = tv.transforms
    ref_t = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
    t = fp.from_torchvision(ref_t)
    ims = [pil_rgb(p) for p in photos]
    xb = t.batch(ims)
    assert isinstance(xb, np.ndarray)
    for x, im in zip(xb, ims):
        assert np.all(np.abs(x - ref_t(im).numpy()) <= NORM_TOL)
    tb = fp.from_torchvision(ref_t, backend="torch").batch(ims[:2])
    assert isinstance(tb, torch.Tensor) and tb.shape == (2, 3, 224, 224)


def test_return_types(photos):
    torch = _torch()
    ops = [fp.Resize(32), fp.CenterCrop(32), fp.ToTensor()]
    p = photos[0]
    pix = np.asarray(pil_rgb(p))
    tens = torch.from_numpy(pix.copy()).permute(2, 0, 1)
    t = fp.Compose(ops)
    assert isinstance(t(p), np.ndarray) and isinstance(t(pix), np.ndarray)
    assert isinstance(t(tens), torch.Tensor)
    assert isinstance(t.batch([p, p]), np.ndarray)
    assert isinstance(t.batch([p, tens]), torch.Tensor)  # any tensor item -> tensor
    assert isinstance(t.batch(tens[None].expand(2, -1, -1, -1)), torch.Tensor)  # NCHW uint8 tensor
    assert isinstance(fp.Compose(ops, backend="numpy")(tens), np.ndarray)
    assert isinstance(fp.Compose(ops, backend="torch")(p), torch.Tensor)
    assert isinstance(fp.Compose(ops, backend="torch").batch([p]), torch.Tensor)
    buf = np.empty((1, 3, 32, 32), np.float32)
    assert fp.Compose(ops, backend="torch").batch([p], out=buf) is buf  # out= comes back as given
    with pytest.raises(ValueError, match="backend"):
        fp.Compose(ops, backend="jax")


def test_bfloat16_comes_back_as_torch_bfloat16(photos):
    tv = _tv()
    import torch

    T = tv.transforms
    ref_t = T.Compose([T.Resize(64), T.CenterCrop(56), T.ToTensor(), T.Normalize(MEAN, STD)])
    t = fp.from_torchvision(ref_t, dtype="bfloat16", backend="torch")
    ref = ref_t(pil_rgb(photos[0])).numpy()
    for got in (t(photos[0]), t.batch([photos[0]])[0]):
        assert isinstance(got, torch.Tensor) and got.dtype == torch.bfloat16 and got.shape == (3, 56, 56)
        g = got.float().numpy()
        assert np.all(np.abs(g - ref) <= NORM_TOL + np.abs(ref) * 2.0 ** -8)
    # numpy has no bfloat16: without torch output the bits come back as uint16
    bits = fp.Compose([fp.ToTensor()], dtype="bfloat16")(np.full((2, 2, 3), 255, np.uint8))
    assert bits.dtype == np.uint16 and np.all(bits == 0x3F80)  # 1.0 in bfloat16


# --- 3. Grayscale(num_output_channels=3) --------------------------------------------------------


@pytest.mark.parametrize("first", [False, True], ids=["gray_after_resize", "gray_before_resize"])
def test_grayscale3_vs_torchvision(photos, first):
    """torchvision: convert("L") then three equal channels. fastprep converts while writing the
    output, after the resize: the order changes rounding only (1 level)."""
    tv = _tv()
    T = tv.transforms
    geo = [T.Resize(256), T.CenterCrop(224)]
    ops = [T.Grayscale(3)] + geo if first else geo + [T.Grayscale(3)]
    ref_t = T.Compose(ops + [T.PILToTensor()])
    t = fp.from_torchvision(ref_t)
    assert t.channels == 3
    for p in photos:
        ref = ref_t(pil_rgb(p)).numpy()
        got = t(p)
        assert got.shape == ref.shape == (3, 224, 224)
        assert np.abs(got.astype(int) - ref).max() <= 1, p
        assert np.array_equal(got[0], got[1]) and np.array_equal(got[0], got[2])


def test_v2_uint8_pipelines_on_tensors(photos):
    """v2 ops without ToDtype on a decode_jpeg tensor give a CHW uint8 tensor; so does the fused
    equivalent, within the resize's 1 level (v2's Grayscale converts with v2's luma arithmetic)."""
    _tv()
    import torch
    from torchvision.transforms import v2

    geo = [v2.Resize(256, antialias=True), v2.CenterCrop(224)]
    for ops, tol in ((geo, 1), (geo + [v2.Grayscale(3)], 1)):
        ref_t = v2.Compose(ops)
        t = fp.from_torchvision(ref_t)
        for p in photos[:5]:
            img = _decode_jpeg(p)
            ref, got = ref_t(img), t(img)
            assert isinstance(got, torch.Tensor) and got.dtype == torch.uint8
            assert got.shape == ref.shape == (3, 224, 224)
            assert (got.int() - ref.int()).abs().max().item() <= tol, (p, ops)


def test_grayscale3_normalized_per_channel(photos):
    tv = _tv()
    T = tv.transforms
    ref_t = T.Compose([T.Resize(256), T.CenterCrop(224), T.Grayscale(num_output_channels=3), T.ToTensor(),
                       T.Normalize(MEAN, STD)])
    t = fp.from_torchvision(ref_t)
    hwc = fp.from_torchvision(ref_t, layout="HWC")
    for p in photos[:5]:
        ref = ref_t(pil_rgb(p)).numpy()
        got = t(p)
        assert np.all(np.abs(got - ref) <= NORM_TOL), p
        assert np.all(np.abs(hwc(p).transpose(2, 0, 1) - ref) <= NORM_TOL), p


def test_grayscale_channels_argument():
    assert fp.Compose([fp.Grayscale(3)]).channels == 3
    assert fp.Compose([fp.Grayscale()]).channels == 1
    for bad in (0, 2, 4, True, "3"):
        with pytest.raises(ValueError, match="num_output_channels"):
            fp.Grayscale(bad)
    with pytest.raises(ValueError, match="Grayscale"):
        fp.Compose([fp.Grayscale(3)], color="RGB")


# --- 4. argument errors -------------------------------------------------------------------------

T8 = [fp.Resize(8), fp.CenterCrop(8)]


@pytest.mark.parametrize("one", ["a.jpg", b"\xff\xd8\xff", bytearray(b"xx"), pathlib.Path("a.jpg"),
                                 np.zeros(10, np.uint8)], ids=["str", "bytes", "bytearray", "path", "array1d"])
def test_batch_of_one_thing_is_refused(one):
    with pytest.raises(TypeError, match="list"):
        fp.Compose(T8).batch(one)


def test_call_with_a_list_is_refused(photos):
    with pytest.raises(TypeError, match="batch"):
        fp.Compose(T8)([photos[0], photos[1]])


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "3", True, np.float64(2.0)])
def test_bad_seed(photos, seed):
    t = fp.Compose(T8)
    with pytest.raises(ValueError, match="seed"):
        t(photos[0], seed=seed)
    with pytest.raises(ValueError, match="seed"):
        t.batch([photos[0]], seed=seed)


@pytest.mark.parametrize("epoch", [-1, 2**64, 0.5, None])
def test_bad_epoch(photos, epoch):
    t = fp.Compose(T8)
    with pytest.raises(ValueError, match="epoch"):
        t(photos[0], epoch=epoch)
    with pytest.raises(ValueError, match="epoch"):
        t.batch([photos[0]], epoch=epoch)


def test_seed_range_ends_work(photos):
    t = fp.Compose([fp.RandomResizedCrop(8)])
    for s in (0, 2**64 - 1, np.uint64(2**64 - 1), np.int32(7)):
        assert t(photos[0], seed=s, epoch=2**64 - 1).shape == (8, 8, 3)


def test_check_seed_helpers():
    assert _check_seed(np.uint64(2**64 - 1)) == 2**64 - 1 and type(_check_seed(np.int64(5))) is int
    assert _check_seed(0) == 0 and _check_epoch(np.int16(3)) == 3 and type(_check_epoch(np.int16(3))) is int
    with pytest.raises(ValueError, match="shuffle_seed"):
        _check_seed(-5, name="shuffle_seed")
    with pytest.raises(ValueError, match="seed"):
        _check_seed(None)
    with pytest.raises(ValueError, match="epoch"):
        _check_epoch(2**64)


@pytest.mark.parametrize("op,size", [(fp.Resize, 2**31), (fp.Resize, 0), (fp.Resize, -3), (fp.Resize, 1.5),
                                     (fp.Resize, True), (fp.Resize, "256"), (fp.Resize, (224, 0)),
                                     (fp.Resize, (2**40, 8)), (fp.CenterCrop, 0), (fp.CenterCrop, (0, 0)),
                                     (fp.CenterCrop, 2**31), (fp.CenterCrop, (8, 8.0)),
                                     (fp.RandomResizedCrop, 0), (fp.RandomResizedCrop, 2**31),
                                     (fp.RandomResizedCrop, (8, -8)), (fp.RandomResizedCrop, (1, 2, 3))])
def test_bad_sizes(op, size):
    with pytest.raises(ValueError, match=f"{op.__name__} size"):
        op(size)


def test_bad_resize_max_size():
    with pytest.raises(ValueError, match="max_size"):
        fp.Resize(256, max_size=256)
    with pytest.raises(ValueError, match="max_size"):
        fp.Resize(256, max_size=2**31)
    with pytest.raises(ValueError, match="RandomResizedCrop scale"):
        fp.RandomResizedCrop(8, scale=0.5)
    with pytest.raises(ValueError, match="RandomHorizontalFlip p"):
        fp.RandomHorizontalFlip("0.5")


def test_normalize_takes_arrays_and_tensors(photos):
    """torchvision's Normalize takes any sequence; numpy arrays and tensors must work too."""
    tv = _tv()
    import torch

    T = tv.transforms
    ref = T.Compose([T.Resize(64), T.CenterCrop(56), T.ToTensor(), T.Normalize(MEAN, STD)])(pil_rgb(photos[0]))
    ref = ref.numpy()
    geo = [fp.Resize(64), fp.CenterCrop(56), fp.ToTensor()]
    for mean, std in ((np.array(MEAN), np.array(STD)), (torch.tensor(MEAN), torch.tensor(STD)),
                      (np.array(MEAN, np.float32), list(STD))):
        got = fp.Compose(geo + [fp.Normalize(mean, std)])(photos[0])
        assert np.all(np.abs(got - ref) <= NORM_TOL)
    n = fp.Normalize(np.float64(0.5), torch.tensor([0.25]))
    assert n.mean == (0.5, 0.5, 0.5) and n.std == (0.25, 0.25, 0.25)
    assert all(type(v) is float for v in n.mean + n.std)
    # from_torchvision with tensor mean/std (what v2.Normalize keeps is a list; users pass tensors)
    t = fp.from_torchvision(T.Compose([T.Resize(64), T.CenterCrop(56), T.ToTensor(),
                                       T.Normalize(torch.tensor(MEAN), torch.tensor(STD))]))
    assert np.all(np.abs(t(photos[0]) - ref) <= NORM_TOL)


def test_normalize_bad_values():
    with pytest.raises(ValueError, match="mean"):
        fp.Normalize([0.5, 0.5], STD)
    with pytest.raises(ValueError, match="std"):
        fp.Normalize(MEAN, np.ones(4))
    with pytest.raises(ValueError, match="std"):
        fp.Normalize(MEAN, np.ones((3, 1)))
    with pytest.raises(ValueError, match="preset"):
        fp.Normalize("not-a-preset", STD)
    with pytest.raises(ValueError, match="mean"):
        fp.Normalize(["a", "b", "c"], STD)
    with pytest.raises(ValueError, match="std"):
        fp.Normalize(MEAN, [0.2, 0.0, 0.2])
    with pytest.raises(ValueError, match="std"):
        fp.Normalize(MEAN, 1e-40)  # 1 / 1e-40 overflows float32
    with pytest.raises(ValueError, match="std"):
        fp.Normalize(MEAN, 1e-50)  # 0 in float32
    ops = [fp.ToTensor(), fp.Normalize(MEAN, 1e-6)]
    assert fp.Compose(ops).dtype == "float32"  # 1e6: fine in float32
    with pytest.raises(ValueError, match="std"):
        fp.Compose(ops, dtype="float16")  # over 65504
    # 3.4014e38: finite in float32 (max 3.4028e38), rounds to inf in bfloat16 (max 3.3895e38)
    assert np.isfinite(np.float32(1.0) / np.float32(2.94e-39))
    fp.Compose([fp.ToTensor(), fp.Normalize(0.0, 2.94e-39)], dtype="float32")
    with pytest.raises(ValueError, match="std"):
        fp.Compose([fp.ToTensor(), fp.Normalize(0.0, 2.94e-39)], dtype="bfloat16")


@pytest.mark.parametrize("path", ["a\0b.jpg", pathlib.Path("dir\0/x.jpg")], ids=["str", "pathlib"])
def test_nul_in_path(path):
    t = fp.Compose(T8)
    with pytest.raises(ValueError, match="NUL"):
        t(path)
    with pytest.raises(ValueError, match="NUL"):
        t.batch(["ok.jpg", path])


@pytest.mark.parametrize("threads", [-1, 0, 1.5, "2", True, 10**9])
def test_bad_threads(photos, threads):
    with pytest.raises(ValueError, match="threads"):
        fp.Compose(T8).batch([photos[0]], threads=threads)


def test_bad_indices(photos):
    with pytest.raises(ValueError, match="indices"):
        fp.Compose(T8).batch([photos[0]], indices=[-1])
    with pytest.raises(ValueError, match="indices"):
        fp.Compose(T8).batch([photos[0]], indices=[0, 1])


def test_compose_of_a_single_op():
    with pytest.raises(TypeError, match="list"):
        fp.Compose(fp.Resize(8))


def test_conversion_is_by_identity_not_by_name():
    """Issue 28: another library's class with a torchvision name was converted as torchvision's
    (timm's ToTensor gives 0-255 floats: a factor of 255 off); timm's RandAugment and
    RandomErasing died with a raw AttributeError. Now only torchvision's own classes convert."""
    T = pytest.importorskip("torchvision.transforms")

    class ToTensor:  # a look-alike: same name, another module
        def __call__(self, x):
            return x

    class MyResize(T.Resize):  # a user's subclass overriding what Resize does
        def forward(self, img):
            return img

    # strict=True refuses; by default they run in Python, as they are (issue 31)
    with pytest.raises(ValueError, match=r"test_dropin.*ToTensor.*not torchvision's ToTensor"):
        fp.from_torchvision(T.Compose([T.Resize(256), T.CenterCrop(224), ToTensor()]), strict=True)
    with pytest.raises(ValueError, match="MyResize.*not a torchvision transform"):
        fp.from_torchvision(T.Compose([MyResize(256), T.CenterCrop(224)]), strict=True)
    with pytest.warns(UserWarning, match="not torchvision's own ToTensor"):
        h = fp.from_torchvision(T.Compose([T.Resize(256), T.CenterCrop(224), ToTensor()]))
    assert isinstance(h, fp.HybridCompose) and isinstance(h.remainder[0], ToTensor)
    with pytest.warns(UserWarning, match="MyResize.*not a torchvision transform"):
        h = fp.from_torchvision(T.Compose([MyResize(256), T.CenterCrop(224)]))
    assert h.fused.transforms == [] and len(h.remainder) == 2
    timm_transforms = pytest.importorskip("timm.data.transforms")
    timm_aa = pytest.importorskip("timm.data.auto_augment")
    timm_re = pytest.importorskip("timm.data.random_erasing")
    for op, name in ((timm_aa.rand_augment_transform("rand-m9", {"interpolation": 0}), "with PIL filter 0"),
                     (timm_transforms.ResizeKeepRatio(224, random_scale_prob=0.5), "random scale")):
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            fp.from_torchvision(T.Compose([T.Resize(256), T.CenterCrop(224), op]), strict=True)
    # timm's RandomErasing converts as timm's, its num_splits included (per image it erases alike)
    re_split = timm_re.RandomErasing(0.25, num_splits=2, device="cpu")
    t = fp.from_torchvision(T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), re_split]), strict=True)
    assert isinstance(t.transforms[-1], fp.RandomErasing)
    # timm's RandAugment, named like torchvision's, converts as timm's (Pillow's arithmetic)
    ra = timm_aa.rand_augment_transform("rand-m9-mstd0.5", {})
    t = fp.from_torchvision(T.Compose([T.Resize(256), T.CenterCrop(224), ra]), strict=True)
    assert isinstance(t.transforms[-1], fp.TimmRandAugment) and not isinstance(t.transforms[-1], fp.RandAugment)
    # timm's ToTensor and RandomErasing convert by identity, as what they are: 0-255 floats,
    # timm's counts and modes (tests/test_timm.py)
    t = fp.from_torchvision(T.Compose([T.Resize(256), T.CenterCrop(224), timm_transforms.ToTensor()]), strict=True)
    assert t.transforms[-1] == fp.ToTensor(scale=False)
    # torchvision's own classes, v1 and v2, still convert
    v2 = pytest.importorskip("torchvision.transforms.v2")
    assert fp.from_torchvision(T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])).output_size == (224, 224)
    assert fp.from_torchvision(v2.Compose([v2.Resize(256), v2.CenterCrop(224)])).output_size == (224, 224)


def test_level_to_float_is_the_converted_class_arithmetic():
    """ToTensor (v1 and v2's) divides by 255, v2's ToDtype(scale=True) and ConvertImageDtype multiply
    by float32(1 / 255): one ulp apart on 126 levels. Each conversion gives its class's bytes, for
    every level, with and without Normalize, on both output layouts' kernels."""
    _tv()
    import torch
    import torchvision.transforms as T
    from torchvision.transforms import v2
    from PIL import Image

    lv = np.arange(256, dtype=np.uint8)
    img = np.stack([lv.reshape(16, 16), np.roll(lv, 85).reshape(16, 16), np.roll(lv, 170).reshape(16, 16)], -1)
    pil = Image.fromarray(img)
    chw = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    cases = [(T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)]), pil),
             (T.Compose([T.ToTensor()]), pil),
             (v2.Compose([v2.ToTensor(), v2.Normalize(MEAN, STD)]), pil),
             (v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]), chw),
             (v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]), chw),
             (v2.Compose([v2.ConvertImageDtype(torch.float32), v2.Normalize(MEAN, STD)]), chw),
             (T.Compose([T.ConvertImageDtype(torch.float32)]), chw)]
    multiplies = []
    for tv, x in cases:
        want = tv(x)
        t = fp.from_torchvision(tv)
        multiplies.append(next(o for o in t.transforms if isinstance(o, fp.ToTensor)).multiply)
        got = torch.as_tensor(np.asarray(t(img)))
        assert torch.equal(got, want), (tv, float((got - want).abs().max()))
    assert multiplies == [False, False, False, True, True, True, False]
    div = torch.arange(256).float() / 255
    assert int((div != torch.arange(256).float() * (1 / 255)).sum()) > 100  # the two really differ


def test_grayscale_is_the_converted_class_arithmetic():
    """v2's Grayscale / RandomGrayscale truncate a float32 luma (0.2989, 0.587, 0.114); v1 on PIL
    images is PIL's "L", rounded in fixed point: each conversion gives its class's bytes."""
    _tv()
    import torch
    import torchvision.transforms as T
    from torchvision.transforms import v2
    from PIL import Image

    img = np.random.default_rng(3).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    chw = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    pil = Image.fromarray(img)
    for tv, x, is_v2 in ((v2.Compose([v2.Grayscale(3)]), chw, True), (v2.Compose([v2.RandomGrayscale(1.0)]), chw, True),
                         (v2.Compose([v2.Grayscale(1)]), chw, True),
                         # a sequence op after the conversion: the luma is converted once, not twice
                         (v2.Compose([v2.Grayscale(3), v2.RandomSolarize(100, p=1.0)]), chw, True),
                         (v2.Compose([v2.RandomGrayscale(1.0), v2.RandomInvert(1.0)]), chw, True),
                         (v2.Compose([v2.Grayscale(1), v2.RandomPosterize(3, p=1.0)]), chw, True),
                         (T.Compose([T.Grayscale(3), T.RandomSolarize(100, p=1.0)]), pil, False),
                         (T.Compose([T.Grayscale(3)]), pil, False), (T.Compose([T.RandomGrayscale(1.0)]), pil, False)):
        t = fp.from_torchvision(tv)
        assert t.transforms[0].v2 is is_v2
        want = tv(x)
        want = want if isinstance(want, torch.Tensor) else torch.from_numpy(np.asarray(want)).permute(2, 0, 1)
        got = t(x if is_v2 else img)
        got = got if isinstance(got, torch.Tensor) else torch.from_numpy(np.asarray(got))
        got = got[None] if got.ndim == 2 else got if got.shape[0] in (1, 3) else got.permute(2, 0, 1)
        assert torch.equal(got, want), tv
    pil_l = torch.from_numpy(np.asarray(pil.convert("L")))
    v2_l = v2.functional.rgb_to_grayscale(chw)[0]
    assert int((pil_l != v2_l).sum()) > 100  # the two arithmetics really differ
