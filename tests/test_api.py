import threading

import numpy as np
import pytest

import fastprep as fp
from conftest import MEAN, STD

EVAL = [fp.Resize(256), fp.CenterCrop(224), fp.ToTensor(), fp.Normalize(MEAN, STD)]
TRAIN = [fp.RandomResizedCrop(224, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)), fp.RandomHorizontalFlip(0.5),
         fp.ToTensor(), fp.Normalize(MEAN, STD)]


def test_inputs_bytes_path_array_agree(photos):
    t = fp.Compose(EVAL)
    p = photos[0]
    data = open(p, "rb").read()
    a = t(data)
    assert a.shape == (3, 224, 224) and a.dtype == np.float32 and a.flags.c_contiguous
    assert np.array_equal(a, t(p))
    import pathlib

    assert np.array_equal(a, t(pathlib.Path(p)))
    assert np.array_equal(a, t(bytearray(data)))
    assert np.array_equal(a, t(np.frombuffer(data, np.uint8)))
    from conftest import pil_rgb

    assert np.array_equal(fp.Compose(EVAL, exact=True)(np.asarray(pil_rgb(p))), fp.Compose(EVAL, exact=True)(p))


def test_batch_shapes_and_thread_independence(photos):
    t = fp.Compose(TRAIN)
    a = t.batch(photos, seed=11, threads=1)
    b = t.batch(photos, seed=11, threads=2)
    c = t.batch(photos, seed=11, threads=7)
    assert a.shape == (len(photos), 3, 224, 224)
    assert np.array_equal(a, b) and np.array_equal(a, c)
    assert not np.array_equal(a, t.batch(photos, seed=12))
    assert not np.array_equal(a, t.batch(photos, seed=11, epoch=1))
    assert not np.array_equal(t.batch(photos[:2], seed=None), t.batch(photos[:2], seed=None))


def test_keys_not_slots_drive_randomness(photos):
    t = fp.Compose(TRAIN)
    full = t.batch(photos, seed=3)
    part = t.batch(photos[4:6], seed=3, indices=[4, 5])
    assert np.array_equal(full[4:6], part)


def test_return_params(photos):
    t = fp.Compose(TRAIN)
    xb, params = t.batch(photos, seed=0, return_params=True)
    assert len(params) == len(photos)
    for prm in params:
        top, left, h, w = prm["box"]
        H, W = prm["source_size"]
        assert 0 <= top and 0 <= left and top + h <= H and left + w <= W and h > 0 and w > 0
        assert isinstance(prm["flip"], bool)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "uint8"])
def test_dtypes(photos, dtype):
    base = fp.Compose([fp.Resize(64), fp.CenterCrop(56), fp.ToTensor(), fp.Normalize("imagenet")])
    ref = base(photos[0])
    if dtype == "uint8":
        t = fp.Compose([fp.Resize(64), fp.CenterCrop(56), fp.ToTensor()], dtype="uint8")
        got = t(photos[0])
        assert got.dtype == np.uint8 and got.shape == (3, 56, 56)
        lv = fp.Compose([fp.Resize(64), fp.CenterCrop(56), fp.ToTensor()])(photos[0])
        assert np.array_equal(got, np.round(lv * 255).astype(np.uint8))
        return
    t = fp.Compose([fp.Resize(64), fp.CenterCrop(56), fp.ToTensor(), fp.Normalize("imagenet")], dtype=dtype)
    got = t(photos[0])
    if dtype == "float16":
        assert got.dtype == np.float16
        assert np.array_equal(got, ref.astype(np.float16))  # numpy rounds to nearest even too
    else:
        assert got.dtype == np.uint16  # bfloat16 bit patterns
        as_f32 = (got.astype(np.uint32) << 16).view(np.float32)
        assert np.all(np.abs(as_f32 - ref) <= np.abs(ref) * 2.0 ** -8 + 1e-30)


def test_bfloat16_matches_torch(photos):
    torch = pytest.importorskip("torch")
    t = fp.Compose([fp.Resize(64), fp.CenterCrop(56), fp.ToTensor(), fp.Normalize("imagenet")])
    ref = torch.from_numpy(t(photos[1])).to(torch.bfloat16)
    out = torch.empty((1, 3, 56, 56), dtype=torch.bfloat16)
    tb = fp.Compose([fp.Resize(64), fp.CenterCrop(56), fp.ToTensor(), fp.Normalize("imagenet")], dtype="bfloat16")
    r = tb.batch([photos[1]], out=out)
    assert r is out
    assert torch.equal(out[0], ref)


def test_layout_and_color(photos):
    chw = fp.Compose([fp.Resize(32), fp.CenterCrop(32), fp.ToTensor()])(photos[0])
    hwc = fp.Compose([fp.Resize(32), fp.CenterCrop(32), fp.ToTensor()], layout="HWC")(photos[0])
    bgr = fp.Compose([fp.Resize(32), fp.CenterCrop(32), fp.ToTensor()], color="BGR")(photos[0])
    gray = fp.Compose([fp.Resize(32), fp.CenterCrop(32), fp.ToTensor()], color="GRAY")(photos[0])
    assert np.array_equal(hwc.transpose(2, 0, 1), chw)
    assert np.array_equal(bgr[::-1], chw)
    assert gray.shape == (1, 32, 32)
    lv = np.round(chw * 255).astype(np.int64)
    want = (lv[0] * 19595 + lv[1] * 38470 + lv[2] * 7471 + 0x8000) >> 16
    assert np.array_equal(np.round(gray[0] * 255).astype(np.int64), want)
    assert np.array_equal(fp.Compose([fp.Resize(32), fp.CenterCrop(32), fp.Grayscale(), fp.ToTensor()])(photos[0]), gray)


def test_presets(photos):
    u8 = fp.Compose([fp.Resize(32), fp.CenterCrop(32)], dtype="uint8", layout="CHW")(photos[0]).astype(np.float32)
    def run(preset):
        return fp.Compose([fp.Resize(32), fp.CenterCrop(32), fp.ToTensor(), fp.Normalize(preset)])(photos[0])
    m = np.array(MEAN, np.float32)[:, None, None]
    s = np.array(STD, np.float32)[:, None, None]
    np.testing.assert_allclose(run("imagenet"), (u8 / 255 - m) / s, atol=1e-5)
    np.testing.assert_allclose(run("inception"), u8 / 255 * 2 - 1, atol=1e-5)
    np.testing.assert_allclose(run("unit"), u8 / 255, atol=1e-6)
    m255 = np.array([123.675, 116.28, 103.53], np.float32)[:, None, None]
    s255 = np.array([58.395, 57.12, 57.375], np.float32)[:, None, None]
    np.testing.assert_allclose(run("imagenet255"), (u8 - m255) / s255, atol=1e-5)
    caffe = run("caffe")
    np.testing.assert_allclose(caffe, u8[::-1] - np.array([103.939, 116.779, 123.68], np.float32)[:, None, None],
                               atol=1e-4)
    with pytest.raises(ValueError, match="BGR"):
        fp.Compose([fp.ToTensor(), fp.Normalize("caffe")], color="RGB")


def test_out_buffer_numpy(photos):
    t = fp.Compose(EVAL)
    out = np.full((len(photos), 3, 224, 224), 7, np.float32)
    r = t.batch(photos, out=out)
    assert r is out
    assert np.array_equal(out, t.batch(photos))
    with pytest.raises(ValueError, match="shape"):
        t.batch(photos, out=np.empty((1, 3, 224, 224), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        t.batch(photos, out=np.empty((len(photos), 3, 224, 224), np.float64))
    with pytest.raises(ValueError, match="contiguous"):
        t.batch(photos, out=np.empty((len(photos), 3, 224, 448), np.float32)[..., ::2])


def test_out_buffer_torch(photos):
    torch = pytest.importorskip("torch")
    t = fp.Compose(EVAL)
    out = torch.empty((len(photos), 3, 224, 224))
    assert t.batch(photos, out=out) is out
    assert np.array_equal(out.numpy(), t.batch(photos))


def test_variable_size_resize_only(photos):
    t = fp.Compose([fp.Resize(100), fp.ToTensor()])
    x = t(photos[1])  # 375x500 -> shorter side 100
    assert x.shape == (3, 133, 100)
    outs = t.batch(photos[:2])  # sizes differ: a list (issue 31)
    assert isinstance(outs, list) and outs[1].shape == (3, 133, 100)
    with pytest.raises(ValueError, match="fixed output size"):
        t.batch(photos[:2], out=np.empty((2, 3, 133, 100), np.float32))
    assert t.batch(photos[1:2]).shape == (1, 3, 133, 100)


@pytest.mark.parametrize("ops,msg", [
    ([fp.ToTensor(), fp.Resize(8)], "geometric ops first"),
    ([fp.Normalize(MEAN, STD)], "ToTensor"),
    ([fp.CenterCrop(8), fp.Resize(8)], "Resize must come first"),
    ([fp.RandomResizedCrop(8), fp.CenterCrop(8)], "CenterCrop after"),
    ([fp.Resize(8), fp.RandomResizedCrop(8)], "only resize/crop"),
    ([fp.ToTensor(), fp.RandomHorizontalFlip()], "before ToTensor"),
])
def test_unfusable_orders_raise_at_construction(ops, msg):
    with pytest.raises(ValueError, match=msg):
        fp.Compose(ops)


def test_bad_arguments():
    with pytest.raises(ValueError):
        fp.Normalize((0, 0, 0), (1, 0, 1))
    with pytest.raises(ValueError):
        fp.Compose([fp.ToTensor(), fp.Normalize("imagenet")], dtype="uint8")
    with pytest.raises(ValueError):
        fp.Compose([fp.Resize(8)], dtype="float64")
    with pytest.raises(ValueError):
        fp.RandomResizedCrop(8, scale=(0.5, 0.1))
    with pytest.raises(TypeError):
        fp.Compose([lambda x: x])


def test_concurrent_batches_match_sequential(photos):
    t = fp.Compose(TRAIN)
    want = [t.batch(photos, seed=s, threads=2) for s in range(4)]
    got = [None] * 4
    def work(s):
        got[s] = t.batch(photos, seed=s, threads=2)
    ths = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    for a, b in zip(want, got):
        assert np.array_equal(a, b)


@pytest.mark.slow
def test_rrc_distribution_matches_torchvision_get_params():
    """Same distribution as torchvision's RandomResizedCrop.get_params (including the fallback):
    compare summary statistics of many boxes on images of several shapes."""
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision")
    from PIL import Image

    torch.manual_seed(0)
    for h, w in [(375, 500), (100, 1000), (60, 60)]:
        arr = np.zeros((h, w, 3), np.uint8)
        t = fp.Compose([fp.RandomResizedCrop(8)])
        n = 3000
        _, params = t.batch([arr] * n, seed=1, return_params=True)
        ours = np.array([p["box"] for p in params], np.float64)
        img = Image.fromarray(arr)
        ref = np.array([tv.transforms.RandomResizedCrop.get_params(img, [0.08, 1.0], [3 / 4, 4 / 3])
                        for _ in range(n)], np.float64)
        for col in range(4):
            a, b = ours[:, col], ref[:, col]
            se = np.sqrt(a.var() / n + b.var() / n) + 1e-9
            assert abs(a.mean() - b.mean()) < 5 * se + 0.5, (h, w, col, a.mean(), b.mean())
        area_ours = ours[:, 2] * ours[:, 3] / (h * w)
        area_ref = ref[:, 2] * ref[:, 3] / (h * w)
        assert abs(np.median(area_ours) - np.median(area_ref)) < 0.05


def test_from_torchvision_errors_name_the_op():
    tv = pytest.importorskip("torchvision")
    T = tv.transforms
    # (ColorJitter, GaussianBlur, then ElasticTransform were the example before they became
    # fusable; strict=True refuses what would otherwise run in Python)
    T2 = pytest.importorskip("torchvision.transforms.v2")
    with pytest.raises(ValueError, match="ScaleJitter"):
        fp.from_torchvision(T2.Compose([T2.Resize(8), T2.ScaleJitter((8, 8))]), strict=True)
    t = fp.from_torchvision(T.Compose([T.RandomResizedCrop(32), T.RandomHorizontalFlip(), T.ToTensor(),
                                       T.Normalize(MEAN, STD)]))
    assert [type(o).__name__ for o in t.transforms] == ["RandomResizedCrop", "RandomHorizontalFlip", "ToTensor",
                                                         "Normalize"]


def test_batch_without_seed_draws_fresh_and_can_be_replayed(photos):
    """Issue 28: batch() defaulted to seed=0, so a hand-written loop got the same augmentation
    every call. Now None draws fresh entropy per call; the seed is in the params and last_seed."""
    import threading

    t = fp.Compose([fp.RandomResizedCrop(32), fp.RandomHorizontalFlip(), fp.ToTensor()])
    a, pa = t.batch(photos[:4], return_params=True)
    b = t.batch(photos[:4])
    assert not np.array_equal(a, b)
    seed = pa[0]["seed"]
    assert all(p["seed"] == seed and p["epoch"] == 0 for p in pa) and [p["index"] for p in pa] == [0, 1, 2, 3]
    assert t.last_seed != seed  # the second call drew its own
    assert np.array_equal(t.batch(photos[:4], seed=seed), a)
    assert np.array_equal(t.batch(photos[:4], seed=t.last_seed), t.batch(photos[:4], seed=t.last_seed))
    seen = {}

    def call(k):  # last_seed is per thread: no shared field for two threads to race on
        t.batch(photos[:1], seed=1000 + k)
        seen[k] = t.last_seed

    ths = [threading.Thread(target=call, args=(k,)) for k in range(4)]
    [th.start() for th in ths]
    [th.join() for th in ths]
    assert seen == {k: 1000 + k for k in range(4)}


def test_loader_seed_default_fresh_and_resumable(tree):
    t = fp.Compose([fp.RandomResizedCrop(32), fp.ToTensor()])
    L = fp.Loader(tree, t, batch_size=4, backend="numpy")
    M = fp.Loader(tree, t, batch_size=4, backend="numpy")
    assert L.seed != M.seed
    it = iter(L)
    next(it)
    state = L.state_dict()
    rest = [x for x, _ in it]
    R = fp.Loader(tree, t, batch_size=4, backend="numpy")  # no seed given: adopts the state's
    R.load_state_dict(state)
    assert R.seed == L.seed
    assert all(np.array_equal(x, y) for x, (y, _) in zip(rest, R))
    S = fp.Loader(tree, t, batch_size=4, backend="numpy", seed=L.seed + 1)  # a seed given: refused
    with pytest.raises(ValueError, match="seed"):
        S.load_state_dict(state)
