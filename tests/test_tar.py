"""WebDataset tar shards as a source: Loader, Compose, stats and preprocess read them exactly as
the same files in a folder; bad shards fail with the shard and member named, or are skipped."""
import io
import json
import os
import shutil
import tarfile

import numpy as np
import pytest

import fastprep as fp
from fastprep.io import _tar

from conftest import PHOTOS


def add(tf, name, data):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    tf.addfile(ti, io.BytesIO(data))


def write_shard(path, samples, fmt=tarfile.GNU_FORMAT):
    """samples: [(key, {field: bytes})], written with Python's tarfile (not fastprep's writer)."""
    with tarfile.open(path, "w", format=fmt) as tf:
        for key, fields in samples:
            for field, data in fields.items():
                add(tf, f"{key}.{field}", data)
    return str(path)


def png_bytes(photo):
    from PIL import Image

    buf = io.BytesIO()
    with Image.open(photo) as im:
        im.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def shards(tmp_path):
    """The 10 photos (one as PNG) with labels i % 3 in two shards, and the same files in a folder
    as a (path, label) list: [shard paths], [(path, label)]."""
    folder = tmp_path / "files"
    folder.mkdir()
    pairs, samples = [], [[], []]
    for i, p in enumerate(PHOTOS):
        key = os.path.splitext(os.path.basename(p))[0]
        data = png_bytes(p) if i == 3 else open(p, "rb").read()
        ext = "png" if i == 3 else "jpg"
        dst = folder / f"{key}.{ext}"
        dst.write_bytes(data)
        pairs.append((str(dst), i % 3))
        samples[i // 5].append((key, {ext: data, "cls": str(i % 3).encode()}))
    paths = [write_shard(tmp_path / f"train-{k:06d}.tar", samples[k]) for k in range(2)]
    return paths, pairs


TRAIN = [fp.RandomResizedCrop(64), fp.RandomHorizontalFlip(), fp.ColorJitter(0.3, 0.3, 0.3), fp.ToTensor(),
         fp.Normalize("imagenet")]


def test_loader_over_shards_equals_the_same_files(shards):
    paths, pairs = shards
    t = fp.Compose(TRAIN)
    tar = fp.Loader(os.path.join(os.path.dirname(paths[0]), "train-{000000..000001}.tar"), t, batch_size=4,
                    backend="numpy", seed=7)
    folder = fp.Loader(pairs, t, batch_size=4, backend="numpy", seed=7)
    assert len(tar.dataset) == 10 and tar.dataset.kind == "tar"
    assert tar.dataset.labels.tolist() == [i % 3 for i in range(10)]
    for epoch in range(2):
        got = list(tar)
        want = list(folder)
        assert len(got) == len(want) == 3
        for (a, la), (b, lb) in zip(got, want):
            assert np.array_equal(a, b) and np.array_equal(la, lb), f"epoch {epoch}"


def test_source_forms_name_the_same_samples(shards, tmp_path):
    paths, _ = shards
    d = os.path.dirname(paths[0])
    want = fp.index_source(paths).names
    assert want[0] == "train-000000.tar/00_500x375_420.jpg" and len(want) == 10
    only = tmp_path / "only"  # a folder of only shards (the fixture's folder also holds the loose files)
    only.mkdir()
    for p in paths:
        shutil.copy(p, only)
    for src in (os.path.join(d, "train-{000000..000001}.tar"), os.path.join(d, "train-{000000,000001}.tar"),
                os.path.join(d, "train-*.tar"), str(only), [os.fspath(p) for p in paths]):
        got = fp.index_source(src)
        assert got.names == want, src
    with pytest.warns(UserWarning, match="class folder"):  # shards beside a class folder: not a tar source
        assert fp.index_source(d).kind == "imagefolder"
    one = fp.index_source(paths[1])
    assert one.names == ["train-000001.tar/" + n.split("/", 1)[1] for n in want[5:]]
    assert _tar.expand_braces("a{08..11}b{x,y}") == ["a08bx", "a08by", "a09bx", "a09by", "a10bx", "a10by",
                                                     "a11bx", "a11by"]
    with pytest.raises(FileNotFoundError, match="000002"):
        fp.index_source(os.path.join(d, "train-{000000..000002}.tar"))
    with pytest.raises(ValueError, match="at most"):
        fp.index_source(os.path.join(d, "train-{0..99999999999}.tar"))
    with pytest.raises(FileNotFoundError, match="no shard matches"):
        fp.index_source(os.path.join(d, "val-*.tar"))
    gz = tmp_path / "x.tar.gz"
    gz.write_bytes(b"\x1f\x8b")
    with pytest.raises(ValueError, match="compressed tar shards"):
        fp.index_source(str(gz))


def test_compose_batch_reads_members_in_place(shards):
    paths, pairs = shards
    ds = fp.index_source(paths)
    t = fp.Compose([fp.Resize(80), fp.CenterCrop(64), fp.ToTensor()])
    got = t.batch(ds.items, seed=1)
    want = t.batch([p for p, _ in pairs], seed=1)
    assert np.array_equal(got, want)
    m = ds.items[3]
    assert isinstance(m, fp.TarMember) and m.member.endswith(".png") and str(m) == f"{paths[0]}:{m.member}"


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_long_names_and_json_labels(tmp_path, fmt):
    data = open(PHOTOS[0], "rb").read()
    deep = "d" * 60 + "/" + "e" * 60  # a 120-character directory: ustar prefix, GNU 'L', pax path
    samples = [(f"{deep}/s{i}", {"jpg": data, "json": json.dumps({"label": i, "w": 1}).encode()}) for i in range(3)]
    path = write_shard(tmp_path / "long.tar", samples, fmt)
    ds = fp.index_source(path)
    assert ds.labels.tolist() == [0, 1, 2]
    assert [m.member for m in ds.items] == [f"{deep}/s{i}.jpg" for i in range(3)]
    assert all(m.size == len(data) for m in ds.items)
    t = fp.Compose([fp.Resize(32), fp.CenterCrop(32), fp.ToTensor()])
    assert np.array_equal(t.batch(ds.items), t.batch([data] * 3))


def test_index_is_cached_and_invalidated_by_a_change(shards, monkeypatch):
    paths, _ = shards
    first = fp.index_source(paths[0]).names
    calls = []
    real_scan = _tar.scan_shard
    monkeypatch.setattr(_tar, "scan_shard", lambda p: calls.append(p) or real_scan(p))
    assert fp.index_source(paths[0]).names == first
    assert calls == [], "an unchanged shard must come from the cache"
    with tarfile.open(paths[0], "a", format=tarfile.GNU_FORMAT) as tf:  # a new sample appended
        add(tf, "zz.jpg", open(PHOTOS[0], "rb").read())
        add(tf, "zz.cls", b"2")
    again = fp.index_source(paths[0])
    assert len(calls) == 1 and again.names == first + ["train-000000.tar/zz.jpg"]


def test_truncated_shard_names_shard_and_member(shards):
    paths, _ = shards
    size = os.path.getsize(paths[1])
    ds = fp.index_source(paths[1])
    last = ds.items[-1]
    with open(paths[1], "r+b") as f:  # cut inside the last image's data
        f.truncate(last.offset + last.size // 2)
    with pytest.raises(fp.TarFormatError) as ei:
        fp.index_source(paths)
    assert paths[1] in str(ei.value) and last.member in str(ei.value) and "truncated" in str(ei.value)
    assert os.path.getsize(paths[1]) < size
    with pytest.warns(UserWarning, match="1 shard.s. cut short.*how many samples is unknown"):
        loader = fp.Loader(paths, fp.Compose(TRAIN), batch_size=3, backend="numpy", on_error="skip")
    assert len(loader.dataset) == 9  # the four samples before the cut are kept
    # a cut shard is not counted as one skipped sample (issue 28): it is in dataset.cut
    assert loader.dataset.skipped == [] and len(loader.dataset.cut) == 1
    assert last.member in loader.dataset.cut[0][0]
    batches = list(loader)
    assert [len(b[0]) for b in batches] == [3, 3, 3]


def test_not_a_tar_and_corrupt_header(tmp_path, shards):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(fp.TarFormatError, match="not a tar file"):
        fp.index_source(str(junk))
    paths, _ = shards
    ds = fp.index_source(paths[0])
    raw = bytearray(open(paths[0], "rb").read())
    hdr = ds.items[2].offset - 512  # the third image's header
    raw[hdr:hdr + 4] = b"\xff\xfe\xfd\xfc"
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(raw))
    with pytest.raises(fp.TarFormatError, match="corrupt header"):
        fp.index_source(str(bad))
    kept = fp.index_source(str(bad), on_error="skip")
    assert [m.member for m in kept.items] == [m.member for m in ds.items[:2]]
    assert "corrupt header" in kept.cut[0][1] and kept.skipped == []


@pytest.mark.parametrize("case", ["no_image", "duplicate", "repeated_field", "missing_label", "bad_cls"])
def test_bad_samples_raise_or_are_skipped(tmp_path, case):
    data = open(PHOTOS[0], "rb").read()
    good = [(f"k{i}", {"jpg": data, "cls": b"1"}) for i in range(4)]
    bad_key = "k9"
    if case == "no_image":
        extra = [(bad_key, {"txt": b"caption only", "cls": b"0"})]
    elif case == "missing_label":
        extra = [(bad_key, {"jpg": data})]
    elif case == "bad_cls":
        extra = [(bad_key, {"jpg": data, "cls": b"dog"})]
    else:
        extra = [(bad_key, {"jpg": data, "cls": b"0"})]
    samples = good[:2] + extra + good[2:]
    if case == "duplicate":  # k9 comes back after other samples
        samples.append((bad_key, {"jpg": data}))
    path = write_shard(tmp_path / "s.tar", samples)
    if case == "repeated_field":
        with tarfile.open(path, "a", format=tarfile.GNU_FORMAT) as tf:  # appended: k9.jpg twice in a row
            add(tf, "k3.jpg", data)
    with pytest.raises(fp.TarFormatError) as ei:
        fp.index_source(path)
    assert path in str(ei.value)
    with pytest.warns(UserWarning, match="left out"):
        loader = fp.Loader(path, fp.Compose(TRAIN), batch_size=2, backend="numpy", on_error="skip")
    names = [m.member for m in loader.dataset.items]
    skipped = " ".join(n for n, _ in loader.dataset.skipped)
    if case == "repeated_field":
        assert "k3" in skipped and len(names) == 5  # k3's first sample kept, the repeat left out
    elif case == "duplicate":
        assert bad_key in skipped and names.count(f"{bad_key}.jpg") == 1
    else:
        assert bad_key in skipped and f"{bad_key}.jpg" not in names and len(names) == 4
    sizes = [len(x) for x, _ in loader]  # batches stay full: the left-out samples leave no hole
    assert sizes == [2] * (len(names) // 2) + [1] * (len(names) % 2)


def test_unlabeled_shards_give_minus_one(tmp_path):
    data = open(PHOTOS[1], "rb").read()
    path = write_shard(tmp_path / "u.tar", [(f"u{i}", {"jpg": data}) for i in range(3)])
    ds = fp.index_source(path)
    assert ds.labels.tolist() == [-1, -1, -1] and not ds.skipped


def test_shard_truncated_between_epochs(shards):
    paths, _ = shards
    t = fp.Compose([fp.Resize(48), fp.CenterCrop(48), fp.ToTensor()])
    loader = fp.Loader(paths, t, batch_size=5, shuffle=False, backend="numpy", on_error="skip", timeout=60)
    strict = fp.Loader(paths, t, batch_size=5, shuffle=False, backend="numpy", timeout=60)
    assert sum(len(x) for x, _ in loader) == 10
    with open(paths[1], "r+b") as f:
        f.truncate(1024)
    got = list(loader)
    assert sum(len(x) for x, _ in got) == 5  # shard 0's samples; batches refilled, none lost silently
    assert len(loader.errors) == 5
    assert all(paths[1] in m and "past the end" in m for _, m in loader.errors)
    it = iter(strict)
    next(it)
    with pytest.raises(fp.ReadError) as ei:
        next(it)
    assert paths[1] in str(ei.value)
    os.remove(paths[1])
    with pytest.raises(fp.ReadError, match="cannot open"):
        fp.Compose([fp.Resize(48), fp.CenterCrop(48)]).batch([loader.dataset.items[7]])


def test_stats_and_preprocess_over_shards_equal_the_folder(shards, tmp_path):
    paths, pairs = shards
    lst = tmp_path / "files.txt"
    lst.write_text("".join(f"{p},{label}\n" for p, label in pairs))
    a = fp.compute_stats(paths, size=64, threads=2)
    b = fp.compute_stats(str(lst), size=64, threads=2)
    assert a["mean"] == b["mean"] and a["std"] == b["std"] and a["images"] == 10
    fp.preprocess(paths, tmp_path / "npy_tar", size=64, shard_size=4, progress=False)
    fp.preprocess(str(lst), tmp_path / "npy_dir", size=64, shard_size=4, progress=False)
    x = fp.ShardDataset(tmp_path / "npy_tar")
    y = fp.ShardDataset(tmp_path / "npy_dir")
    assert len(x) == len(y) == 10
    for k in range(3):
        name = f"images_{k:05d}.npy"
        assert np.array_equal(np.load(tmp_path / "npy_tar" / name), np.load(tmp_path / "npy_dir" / name))


def test_preprocess_format_tar_writes_webdataset_shards(shards, tmp_path):
    paths, pairs = shards
    lst = tmp_path / "files.txt"
    lst.write_text("".join(f"{p},{label}\n" for p, label in pairs))
    out = tmp_path / "wds"
    res = fp.preprocess(str(lst), out, format="tar", transform="resize", size=96, shard_size=4, progress=False)
    assert res["images"] == 10 and res["shards"] == 3
    names = sorted(os.listdir(out))
    assert names == [".lock", "index.json", "run.json", "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    with tarfile.open(out / "shard-000000.tar") as tf:  # read back with Python's tarfile
        members = tf.getnames()
        assert members == ["00_500x375_420.jpg", "00_500x375_420.cls", "01_375x500_420.jpg", "01_375x500_420.cls",
                           "02_333x500_420.jpg", "02_333x500_420.cls", "03_640x427_420.jpg", "03_640x427_420.cls"]
        assert tf.extractfile("02_333x500_420.cls").read() == b"2"
        jpg = tf.extractfile("03_640x427_420.jpg").read()
    from PIL import Image

    with Image.open(io.BytesIO(jpg)) as im:
        assert min(im.size) == 96 and im.format == "JPEG"
    # the jpeg format's bytes for the same file are the tar member's bytes
    fp.preprocess(str(lst), tmp_path / "jpg", format="jpeg", transform="resize", size=96, progress=False)
    files = json.loads((tmp_path / "jpg" / "index.json").read_text())["files"]
    assert files[3].endswith("03_640x427_420.jpg") and (tmp_path / "jpg" / files[3]).read_bytes() == jpg
    ds = fp.index_source(str(out))  # the output folder is a tar source (index.json aside)
    assert ds.labels.tolist() == [i % 3 for i in range(10)] and len(ds) == 10
    idx = json.loads((out / "index.json").read_text())
    assert idx["format"] == "fastprep-tar" and idx["shards"] == names[3:] and idx["count"] == 10
    # a rerun resumes: a removed shard is rewritten byte-identical, the others are kept
    before = (out / "shard-000001.tar").read_bytes()
    os.remove(out / "shard-000001.tar")
    res2 = fp.preprocess(str(lst), out, format="tar", transform="resize", size=96, shard_size=4, progress=False)
    assert res2["shards_resumed"] == 2 and res2["written"] == 4
    assert (out / "shard-000001.tar").read_bytes() == before
    assert json.loads((out / "index.json").read_text()) == idx  # the resumed shards' files listed as before
    with open(out / "shard-000002.tar", "r+b") as f:  # a damaged shard of an earlier run is written again
        f.truncate(700)
    res3 = fp.preprocess(str(lst), out, format="tar", transform="resize", size=96, shard_size=4, progress=False)
    assert res3["shards_resumed"] == 2 and res3["written"] == 2 and json.loads((out / "index.json").read_text()) == idx
    # a rerun at another size (or quality, or shard size) is refused: it would keep the 96-px shards
    for changed in (dict(size=64, shard_size=4), dict(size=96, shard_size=4, quality=70), dict(size=96, shard_size=5)):
        with pytest.raises(FileExistsError, match="different preprocessing run"):
            fp.preprocess(str(lst), out, format="tar", transform="resize", progress=False, **changed)
    os.remove(out / "run.json")  # outputs without a record of how they were made: refused too
    with pytest.raises(FileExistsError, match="no run.json"):
        fp.preprocess(str(lst), out, format="tar", transform="resize", size=96, shard_size=4, progress=False)
    res4 = fp.preprocess(str(lst), out, format="tar", transform="resize", size=64, shard_size=4, progress=False,
                         overwrite=True)
    assert res4["written"] == 10 and (out / "shard-000001.tar").read_bytes() != before


def test_preprocess_format_tar_failures(shards, tmp_path):
    paths, pairs = shards
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0not a jpeg")
    items = [p for p, _ in pairs[:3]] + [str(broken)] + [p for p, _ in pairs[3:5]]
    with pytest.raises(fp.DecodeError, match="broken.jpg"):
        fp.preprocess(items, tmp_path / "o1", format="tar", shard_size=4, progress=False)
    res = fp.preprocess(items, tmp_path / "o2", format="tar", shard_size=4, progress=False, on_error="skip")
    assert res["images"] == 5 and [f["index"] for f in res["failed"]] == [3]
    with tarfile.open(tmp_path / "o2" / "shard-000000.tar") as tf:
        assert len(tf.getnames()) == 3  # unlabeled: .jpg only; the failed file left out
    with pytest.raises(ValueError, match="zeros"):
        fp.preprocess(items, tmp_path / "o3", format="tar", on_error="zeros", progress=False)


def test_index_without_a_usable_cache_folder_still_works(shards, tmp_path, monkeypatch):
    """The cache is an optimisation: a cache folder that cannot be created (here under a regular
    file, which fails even for root) means indexing from the shards every time, not an error."""
    paths, _ = shards
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    monkeypatch.setenv("FASTPREP_CACHE_DIR", str(blocker / "cache"))
    calls = []
    real_scan = _tar.scan_shard
    monkeypatch.setattr(_tar, "scan_shard", lambda p: calls.append(p) or real_scan(p))
    first = fp.index_source(paths)
    second = fp.index_source(paths)
    assert len(first) == 10 and second.names == first.names
    assert len(calls) == 4  # both shards scanned both times: nothing was cached
    assert sorted(os.listdir(tmp_path)) == sorted(["a-file", "files", "train-000000.tar", "train-000001.tar"])


def test_tar_member_pickles_and_reads_with_pillow_fallback(tmp_path):
    import pickle

    from PIL import Image

    buf = io.BytesIO()
    with Image.open(PHOTOS[2]) as im:
        im.convert("RGB").save(buf, format="BMP")
    path = write_shard(tmp_path / "bmp.tar", [("b0", {"bmp": buf.getvalue()})])
    ds = fp.index_source(path)
    m = pickle.loads(pickle.dumps(ds.items[0]))
    assert m == ds.items[0] and isinstance(m, fp.TarMember)
    t = fp.Compose([fp.Resize(40), fp.CenterCrop(40), fp.ToTensor()])
    assert np.array_equal(t.batch([m]), t.batch([buf.getvalue()]))


@pytest.mark.parametrize("stop_after", [1, 2])
def test_resume_over_shards_with_skip_and_ranks(shards, stop_after):
    paths, _ = shards
    with open(paths[1], "r+b") as f:  # one member unreadable at run time: a skipped file in the state
        m = fp.index_source(paths[1]).items[2]
        f.seek(m.offset)
        f.write(b"\0" * 64)
    kw = dict(batch_size=2, seed=3, backend="numpy", on_error="skip", rank=1, world_size=2, threads=2)

    def run(loader):
        return [(x.copy(), y.copy()) for x, y in loader]

    full = run(fp.Loader(paths, fp.Compose(TRAIN), **kw))
    a = fp.Loader(paths, fp.Compose(TRAIN), **kw)
    it = iter(a)
    got = [(x.copy(), y.copy()) for _, (x, y) in zip(range(stop_after), it)]
    state = json.loads(json.dumps(a.state_dict()))
    del it
    b = fp.Loader(paths, fp.Compose(TRAIN), **kw)
    b.load_state_dict(state)
    rest = run(b)
    assert len(got + rest) == len(full)
    assert all(np.array_equal(x1, x2) and np.array_equal(y1, y2) for (x1, y1), (x2, y2) in zip(got + rest, full))
    other = fp.Loader(paths[:1], fp.Compose(TRAIN), **kw)
    with pytest.raises(ValueError, match="another dataset"):
        other.load_state_dict(state)
