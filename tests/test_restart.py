"""Restart-indexed JPEGs: the lossless rewrite (`fastprep optimize`, Note [Lossless restart rewrite])
and the decoder's splice of the intervals a crop reads (Note [Restart splicing]).

The reference for every pixel is the file decoded the usual way: Pillow for the rewrite (the
rewritten file must decode to the original's bytes) and fastprep's own decode path with
``splice_restarts=False`` for the splice (the same file, the same pixels, byte for byte)."""
import io
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

import fastprep as fp
from fastprep import _core


def photo(w, h, seed=0):
    """A noisy, detailed test image (entropy-coded data of photo-like size)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([255 * x / max(w - 1, 1), 255 * y / max(h - 1, 1), 128 + 100 * np.sin(x / 5 + y / 7)], -1)
    img += rng.normal(0, 20, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def encode(img, subsampling=420, quality=90, restart=0):
    return bytes(_core.encode_jpeg(img, quality, subsampling, False, restart))


def pil_jpeg(img, **kw):
    b = io.BytesIO()
    Image.fromarray(img).save(b, "JPEG", **kw)
    return b.getvalue()


def pixels(data):
    im = Image.open(io.BytesIO(data))
    return np.asarray(im.convert("RGB")), im


def rewrite(data, n=2, **kw):
    out, interval, cols, progressive = _core.transcode_jpeg(data, n, **kw)
    return bytes(out), interval, cols, progressive


def with_exif(img, orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    return pil_jpeg(img, exif=e.tobytes(), quality=90)


def _cmyk(im):
    b = io.BytesIO()
    Image.fromarray(im).convert("CMYK").save(b, "JPEG", quality=90)
    return b.getvalue()


KINDS = {
    "420": lambda im: encode(im, 420),
    "422": lambda im: encode(im, 422),
    "444": lambda im: encode(im, 444),
    "440": lambda im: encode(im, 440),
    "411": lambda im: encode(im, 411),
    "gray": lambda im: encode(np.ascontiguousarray(im[..., 1]), 444),
    "cmyk": _cmyk,
    "progressive": lambda im: pil_jpeg(im, progressive=True, quality=90),
}


SIZES = [(1, 1), (7, 9), (16, 16), (17, 33), (130, 97), (333, 250)]


# ---------------------------------------------------------------------------------------------- rewrite

@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("size", SIZES)
def test_rewrite_is_lossless(kind, size):
    src = KINDS[kind](photo(*size, seed=size[0]))
    out, interval, cols, progressive = rewrite(src, 2)
    assert progressive == (kind == "progressive")
    a, ima = pixels(src)
    b, imb = pixels(out)
    assert ima.mode == imb.mode and ima.size == imb.size
    np.testing.assert_array_equal(a, b)
    if kind == "cmyk":  # the raw CMYK values too, not only their RGB conversion
        np.testing.assert_array_equal(np.asarray(ima), np.asarray(imb))
    layout = _core.restart_layout(out)
    assert layout is not None and layout["interval"] == interval and cols % interval == 0
    assert layout["mcus_per_row"] == cols
    assert layout["intervals"] == layout["mcu_rows"] * cols // interval


@pytest.mark.parametrize("cols,target,want", [(32, 2, 2), (21, 2, 3), (25, 2, 1), (31, 4, 31), (31, 2, 1),
                                              (24, 4, 4), (30, 4, 5), (3, 4, 3), (28, 8, 7), (29, 8, 29)])
def test_interval_divides_the_row(cols, target, want):
    """The interval written is the divisor of the MCU row closest to the target within
    [target / 2, 2 * target] (the larger on a tie), else the whole row."""
    img = photo(16 * cols - 5, 40)
    _, interval, got_cols, _ = rewrite(encode(img, 420), target)
    assert got_cols == cols and interval == want


def test_rewrite_keeps_metadata_and_drops_it_on_request():
    img = photo(120, 80)
    e = Image.Exif()
    e[0x0112] = 6
    icc = b"\0\0\0\x10fake icc profile" * 40
    b = io.BytesIO()
    Image.fromarray(img).save(b, "JPEG", quality=90, exif=e.tobytes(), icc_profile=icc, comment=b"hello")
    src = b.getvalue()
    out, *_ = rewrite(src, 2)
    im = Image.open(io.BytesIO(out))
    assert im.getexif().get(0x0112) == 6 and im.info.get("icc_profile") == icc
    assert im.info.get("comment") == b"hello"
    np.testing.assert_array_equal(pixels(src)[0], pixels(out)[0])
    stripped, *_ = rewrite(src, 2, keep_metadata=False)
    im = Image.open(io.BytesIO(stripped))
    assert im.getexif().get(0x0112) is None and "icc_profile" not in im.info and "comment" not in im.info
    np.testing.assert_array_equal(pixels(src)[0], pixels(stripped)[0])


def test_rewrite_refuses_what_it_cannot_keep_exact():
    img = photo(64, 48)
    good = encode(img)
    with pytest.raises(ValueError, match="not a JPEG"):
        _core.transcode_jpeg(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(ValueError, match="JPEG rewrite"):
        _core.transcode_jpeg(good[: len(good) // 2])  # truncated: libjpeg warns, nothing is rewritten
    with pytest.raises(ValueError, match="max_pixels"):
        _core.transcode_jpeg(good, max_pixels=100)


# ---------------------------------------------------------------------------------------------- splice

def test_splice_decodes_to_the_blocks_it_covers():
    img = photo(333, 250)
    src, interval, cols, _ = rewrite(encode(img, 420), 2)
    full = pixels(src)[0]
    sub = bytes(_core.splice_jpeg(src, 3, 9, 2 * interval, 5 * interval))
    got = pixels(sub)[0]
    assert got.shape == (6 * 16, 3 * interval * 16, 3)
    want = full[48:144, 32 * interval:80 * interval]
    # inside, every pixel; at the cut edges the chroma upsampling replicates instead
    np.testing.assert_array_equal(got[1:-1, 1:-1], want[1:-1, 1:-1])
    with pytest.raises(ValueError, match="interval boundaries"):
        _core.splice_jpeg(src, 0, 1, 1, 3) if interval > 1 else _core.splice_jpeg(src, 0, 99, 0, 1)


def _pipelines():
    return {
        "rrc": [fp.RandomResizedCrop(64, scale=(0.02, 0.5)), fp.RandomHorizontalFlip()],
        "rrc_norm": [fp.RandomResizedCrop(48), fp.ToTensor(), fp.Normalize([0.5] * 3, [0.2] * 3)],
        "corner": [fp.RandomCrop(40)],
        "eval": [fp.Resize(80), fp.CenterCrop(64)],
        "bicubic": [fp.RandomResizedCrop(40, scale=(0.05, 0.3), interpolation="bicubic")],
    }


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("name", sorted(_pipelines()))
def test_spliced_decode_equals_the_full_path(name, exact):
    """Every sampling factor, gray, CMYK, 1-MCU images, crops touching each edge (RandomCrop over
    many seeds reaches every corner), DCT scaling (exact=False): byte for byte."""
    files = []
    for kind in ("420", "422", "444", "440", "411", "gray", "cmyk"):
        for k, (w, h) in enumerate([(333, 250), (250, 333), (97, 130), (40, 41), (16, 16), (8, 8)]):
            if name == "corner" and min(w, h) < 40:
                continue
            files.append(rewrite(KINDS[kind](photo(w, h, seed=k)), 1 + k % 3)[0])
    ops = _pipelines()[name]
    a = fp.Compose(ops, exact=exact)
    b = fp.Compose(ops, exact=exact, splice_restarts=False)
    spliced = 0
    for seed in range(4):
        x, params = a.batch(files, seed=seed, return_params=True, threads=2)
        y = b.batch(files, seed=seed, threads=2)
        np.testing.assert_array_equal(x, y)
        spliced += sum(p["spliced_bytes"] > 0 for p in params)
    assert spliced > len(files)  # the splice did run (the 1-MCU images cannot be cut)


def test_spliced_decode_with_exif_orientation():
    img = photo(333, 250)
    files = [rewrite(with_exif(img, o), 2)[0] for o in range(1, 9)]
    ops = [fp.RandomResizedCrop(48, scale=(0.05, 0.4))]
    a = fp.Compose(ops, apply_exif_orientation=True)
    b = fp.Compose(ops, apply_exif_orientation=True, splice_restarts=False)
    for seed in range(3):
        x, params = a.batch(files, seed=seed, return_params=True)
        np.testing.assert_array_equal(x, b.batch(files, seed=seed))
        assert all(p["spliced_bytes"] > 0 for p in params)
        assert [p["orientation"] for p in params] == list(range(1, 9))


def test_spliced_multiview_union():
    files = [rewrite(encode(photo(400, 300, seed=s)), 2)[0] for s in range(6)]
    views = [fp.Compose([fp.RandomResizedCrop(64, scale=(0.05, 0.2))]) for _ in range(3)]
    mv = fp.MultiView(views)
    ref = fp.MultiView([v.with_options(splice_restarts=False) for v in views])
    out, params = mv.batch(files, seed=5, return_params=True)
    for x, y in zip(out, ref.batch(files, seed=5)):
        np.testing.assert_array_equal(x, y)
    assert all(p["spliced_bytes"] > 0 for view in params for p in view)


def test_files_on_disk_large_and_small(tmp_path):
    """A file larger than the first read (128 KiB) is read whole for the splice; the same bytes
    from memory and from disk give the same pixels."""
    big = rewrite(encode(photo(1400, 1000), 444, quality=98), 2)[0]
    assert len(big) > 128 << 10
    small = rewrite(encode(photo(300, 200)), 2)[0]
    paths = []
    for i, d in enumerate([big, small]):
        p = tmp_path / f"{i}.jpg"
        p.write_bytes(d)
        paths.append(str(p))
    ops = [fp.RandomResizedCrop(64, scale=(0.01, 0.1))]
    x, params = fp.Compose(ops).batch(paths, seed=1, return_params=True)
    y = fp.Compose(ops, splice_restarts=False).batch([big, small], seed=1)
    np.testing.assert_array_equal(x, y)
    assert all(0 < p["spliced_bytes"] < len(big) // 2 for p in params[:1])


def _markers(data, lo=0xD0, hi=0xD7):
    start = data.index(b"\xff\xda")
    return [i for i in range(start, len(data) - 1) if data[i] == 0xFF and lo <= data[i + 1] <= hi]


def _hostile(src):
    rst = _markers(src)
    out = {}
    b = bytearray(src)
    b[rst[3] + 1] = 0xD0 + (((b[rst[3] + 1] - 0xD0) + 2) & 7)  # out of order
    out["out_of_order"] = bytes(b)
    out["missing"] = src[:rst[5]] + src[rst[5] + 2:]  # one marker fewer
    out["extra"] = src[:rst[5]] + b"\xff\xd0" + src[rst[5]:]
    out["truncated"] = src[: rst[-1] + 40]
    dri = src.index(b"\xff\xdd")
    b = bytearray(src)
    b[dri + 4:dri + 6] = (7).to_bytes(2, "big")  # a DRI that does not divide the row
    out["dri_not_dividing"] = bytes(b)
    b = bytearray(src)
    b[dri + 4:dri + 6] = (0).to_bytes(2, "big")
    out["dri_zero"] = bytes(b)
    b = bytearray(src)
    b[dri + 4:dri + 6] = (1).to_bytes(2, "big")  # claims far more intervals than there are markers
    out["dri_lies"] = bytes(b)
    out["no_eoi"] = src[:-2]
    return out


@pytest.mark.filterwarnings("ignore:.*damaged image data decoded anyway")
@pytest.mark.parametrize("strict", [True, False])
def test_hostile_restart_data_falls_back(strict):
    """Restart data that is not exactly what the header promises is never spliced: the file
    takes the usual path, which decodes it or fails the same way as before."""
    src = rewrite(encode(photo(384, 300)), 2)[0]
    assert _core.restart_layout(src)["interval"] == 2
    ops = [fp.RandomResizedCrop(48, scale=(0.05, 0.3))]
    a = fp.Compose(ops, strict=strict)
    b = fp.Compose(ops, strict=strict, splice_restarts=False)
    for name, data in _hostile(src).items():
        assert _core.restart_layout(data) is None, name
        ra = a.batch([data], seed=2, on_error="skip", return_params=True)
        rb = b.batch([data], seed=2, on_error="skip")
        assert len(ra[0]) == len(rb), name
        if len(rb):
            np.testing.assert_array_equal(ra[0], rb, err_msg=name)
            assert ra[1][0]["spliced_bytes"] == 0


def test_random_corruption_never_crashes():
    """Bytes flipped anywhere in a restart-indexed file: a sample decodes (a full output, the
    splice taken or not) or fails with a DecodeError naming the sample, never more (the ASan job
    runs this file too). Both outcomes occur, and so does a splice of a damaged file."""
    src = rewrite(encode(photo(300, 200)), 2)[0]
    rng = np.random.default_rng(0)
    c = fp.Compose([fp.RandomResizedCrop(32, scale=(0.05, 0.3))])
    decoded = failed = spliced = 0
    for t in range(150):
        b = bytearray(src)
        for _ in range(int(rng.integers(1, 6))):
            i = int(rng.integers(2, len(b)))
            b[i] = int(rng.choice([0xFF, 0xD0 + int(rng.integers(0, 8)), int(rng.integers(0, 256))]))
        try:
            out, params = c.batch([bytes(b)], seed=t, return_params=True)
        except fp.DecodeError as e:
            assert "item 0" in str(e) or "sample 0" in str(e), e
            failed += 1
            continue
        assert out.shape == (1, 32, 32, 3) and out.dtype == np.uint8
        decoded += 1
        spliced += params[0]["spliced_bytes"] > 0
    assert decoded and failed and spliced, (decoded, failed, spliced)


# ---------------------------------------------------------------------------------------------- the tools

def _tree(root):
    os.makedirs(root / "cat", exist_ok=True)
    os.makedirs(root / "dog", exist_ok=True)
    files = {
        "cat/a.jpg": encode(photo(200, 150, 1)),
        "cat/b.jpg": pil_jpeg(photo(150, 200, 2), progressive=True, quality=85),
        "dog/c.jpeg": with_exif(photo(180, 120, 3), 6),
        "dog/d.png": None,
        "dog/notes.txt": b"not an image\n",
        "dog/broken.jpg": encode(photo(100, 100, 4))[:900],
    }
    b = io.BytesIO()
    Image.fromarray(photo(50, 40, 5)).save(b, "PNG")
    files["dog/d.png"] = b.getvalue()
    for k, v in files.items():
        (root / k).write_bytes(v)
    return files


def test_optimize_folder(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    files = _tree(src)
    res = fp.optimize(str(src), str(out), progress=False)
    assert res["rewritten"] == 3 and res["progressive"] == 1 and res["copied"] == 2
    assert [k for k, _ in res["kept"]] == [os.path.join("dog", "broken.jpg")]
    for k, v in files.items():
        got = (out / k).read_bytes()
        if k.endswith((".png", ".txt")) or k.endswith("broken.jpg"):
            assert got == v
        else:
            np.testing.assert_array_equal(pixels(got)[0], pixels(v)[0])
            assert _core.restart_layout(got) is not None
    assert Image.open(out / "dog/c.jpeg").getexif().get(0x0112) == 6
    again = fp.optimize(str(src), str(out), progress=False)
    assert again["resumed"] == len(files) and again["rewritten"] == 0
    with pytest.raises(FileExistsError, match="different"):
        fp.optimize(str(src), str(out), restart_mcus=4, progress=False)
    # the optimized folder is a drop-in source: the same samples and labels, the same pixels
    a, b = fp.index_source(str(src)), fp.index_source(str(out))
    assert a.classes == b.classes and a.labels.tolist() == b.labels.tolist() and len(a) == len(b) == 5
    ops = [fp.RandomResizedCrop(32)]
    ok = [i for i, n in enumerate(a.names) if "broken" not in n]
    np.testing.assert_array_equal(fp.Compose(ops).batch([a.items[i] for i in ok], seed=3),
                                  fp.Compose(ops).batch([b.items[i] for i in ok], seed=3))


def test_optimize_cli_and_tar_shards(tmp_path):
    from fastprep.cli import main

    members = [("x/0001.jpg", encode(photo(120, 90, 1))), ("x/0001.cls", b"3"),
               ("x/0002.jpg", pil_jpeg(photo(90, 120, 2), progressive=True)), ("x/0002.cls", b"1")]
    shard = tmp_path / "train-000000.tar"
    with tarfile.open(shard, "w") as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), 1234567
            tf.addfile(ti, io.BytesIO(data))
    out = tmp_path / "out"
    assert main(["optimize", str(shard), str(out), "--quiet"]) == 0
    with tarfile.open(out / shard.name) as tf:
        got = [(ti.name, ti.mtime, tf.extractfile(ti).read()) for ti in tf]
    assert [g[0] for g in got] == [m[0] for m in members] and all(g[1] == 1234567 for g in got)
    for (name, data), (_, _, new) in zip(members, got):
        if name.endswith(".cls"):
            assert new == data
        else:
            np.testing.assert_array_equal(pixels(new)[0], pixels(data)[0])
            assert _core.restart_layout(new) is not None
    # the shards load as before
    ds = fp.index_source(str(out / shard.name))
    assert len(ds) == 2 and ds.labels.tolist() == [3, 1]


def test_optimize_file_list(tmp_path):
    src = tmp_path / "src"
    _tree(src)
    lst = tmp_path / "list.csv"
    lst.write_text(f"{src}/cat/a.jpg,cat\n{src}/dog/c.jpeg,dog\n")
    out = tmp_path / "out"
    res = fp.optimize(str(lst), str(out), progress=False)
    assert res["rewritten"] == 2
    rows = (out / "files.csv").read_text().splitlines()
    assert rows == ["cat/a.jpg,cat", "dog/c.jpeg,dog"]
    ds = fp.index_source(str(out / "files.csv"))
    assert len(ds) == 2


@pytest.mark.parametrize("fmt", ["jpeg", "tar"])
def test_preprocess_writes_restart_markers(tmp_path, fmt):
    src = tmp_path / "src"
    _tree(src)
    (src / "dog" / "broken.jpg").unlink()
    (src / "dog" / "notes.txt").unlink()
    for n, expect in [(None, True), (0, False)]:
        out = tmp_path / f"out{n}"
        kw = {} if n is None else {"restart_mcus": n}
        fp.preprocess(str(src), str(out), format=fmt, size=64, transform="resize", progress=False, **kw)
        if fmt == "jpeg":
            datas = [p.read_bytes() for p in out.rglob("*.jpg")]
        else:
            with tarfile.open(next(out.glob("*.tar"))) as tf:
                datas = [tf.extractfile(ti).read() for ti in tf if ti.name.endswith(".jpg")]
        assert datas and all((_core.restart_layout(d) is not None) == expect for d in datas)


def test_automatic_interval_follows_the_bytes_per_mcu():
    """restart_mcus=-1 (fastprep optimize's "auto"): about 200 bytes of entropy-coded data per
    interval, so a smooth image gets longer intervals than a detailed one of the same size."""
    y, x = np.mgrid[0:256, 0:512]
    smooth = np.stack([x // 2, y, (x + y) // 4], -1).astype(np.uint8)
    detailed = photo(512, 256)
    _, iv_smooth, cols, _ = rewrite(encode(smooth, quality=75), -1)
    _, iv_detailed, _, _ = rewrite(encode(detailed, quality=95), -1)
    assert cols == 32 and iv_smooth > iv_detailed >= 1
    with pytest.raises(ValueError, match="restart_mcus"):
        _core.transcode_jpeg(encode(detailed), -2)
    assert fp.offline.DEFAULT_OPTIMIZE_RESTART == "auto"


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io to count bytes read")
def test_large_file_is_read_only_to_the_end_of_its_image(tmp_path):
    """A restart-indexed JPEG over the first read (128 KiB), followed by 40 MB of (sparse)
    padding: the splice reads the file in chunks only until its scan ends (Note [Bounded
    reads]), and the pixels are the usual path's."""
    data = rewrite(encode(photo(1400, 1000), 444, quality=98), 2)[0]
    assert len(data) > 128 << 10
    big = tmp_path / "padded.jpg"
    with open(big, "wb") as f:
        f.write(data)
        f.truncate(len(data) + (40 << 20))
    t = fp.Compose([fp.RandomResizedCrop(64, scale=(0.01, 0.05))])

    def rchar():
        with open("/proc/self/io") as f:
            return int(next(x for x in f if x.startswith("rchar:")).split()[1])
    t.batch([data], threads=1)
    before = rchar()
    out, params = t.batch([str(big)] * 3, threads=1, seed=4, return_params=True)
    read = rchar() - before
    assert all(p["spliced_bytes"] > 0 for p in params)
    assert read < 3 * (len(data) + (256 << 10)), read  # the image, and less than a chunk past it
    np.testing.assert_array_equal(out, fp.Compose([fp.RandomResizedCrop(64, scale=(0.01, 0.05))],
                                                  splice_restarts=False).batch([data] * 3, threads=1, seed=4))
