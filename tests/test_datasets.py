import os
import numpy as np
import pytest

from fastprep.data import IMG_EXTENSIONS, Dataset, index_source


def touch(path, data=b""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def make_tree(root):
    """An ImageFolder tree with the awkward cases: class names that sort by code point, nested
    folders whose os.walk order is by full path, mixed-case and unknown extensions, a folder
    named like an image, symlinks."""
    files = {
        "B/1.jpg", "a/x.JPG", "a/y.Jpeg", "a/z.png", "a/readme.txt", "a/noext", "a/w.jpgx",
        "a/sub/p.jpg", "a/sub-2/q.webp", "a/sub/deeper/r.TIFF", "a/sub b/s.bmp",
        "a b/t.pgm", "a-b/u.ppm", "a_b/v.tif", "10/k.jpg", "9/j.jpeg", "9/.hidden.jpg",
    }
    for f in files:
        touch(os.path.join(root, f))
    os.makedirs(os.path.join(root, "a", "folder.jpg"))  # a directory, not an image
    touch(os.path.join(root, "a", "folder.jpg", "in.jpg"))
    os.symlink(os.path.join(root, "B", "1.jpg"), os.path.join(root, "a_b", "link.jpg"))
    os.symlink(os.path.join(root, "a", "sub"), os.path.join(root, "a_b", "linked_dir"))
    touch(os.path.join(root, "top_level_file.txt"))


@pytest.fixture
def tree(tmp_path):
    root = str(tmp_path / "tree")
    make_tree(root)
    return root


def test_imagefolder_matches_torchvision(tree):
    datasets = pytest.importorskip("torchvision.datasets")
    ref = datasets.ImageFolder(tree, loader=lambda p: p)
    ds = index_source(tree)
    assert ds.kind == "imagefolder"
    assert ds.classes == ref.classes
    assert ds.class_to_idx == ref.class_to_idx
    assert ds.samples == [(p, int(t)) for p, t in ref.samples]
    assert ds.labels.dtype == np.int64
    assert ds.labels.tolist() == ref.targets
    assert len(set(ds.names)) == len(ds)
    assert all(not n.startswith("/") for n in ds.names)


def test_imagefolder_extensions_match_torchvision(tree):
    datasets = pytest.importorskip("torchvision.datasets")
    ref = datasets.DatasetFolder(tree, loader=lambda p: p, extensions=(".png", ".bmp", ".jpg"),
                                 allow_empty=True)
    with pytest.warns(UserWarning, match="no image"):
        ds = index_source(tree, extensions=("png", ".BMP", ".jpg"))
    assert ds.samples == [(p, int(t)) for p, t in ref.samples]
    assert ds.class_to_idx == ref.class_to_idx
    from torchvision.datasets.folder import IMG_EXTENSIONS as TV

    assert tuple(IMG_EXTENSIONS) == tuple(TV)


def test_empty_class_keeps_its_label(tmp_path):
    datasets = pytest.importorskip("torchvision.datasets")
    root = str(tmp_path)
    touch(os.path.join(root, "a", "1.jpg"))
    os.makedirs(os.path.join(root, "b"))
    touch(os.path.join(root, "c", "2.png"))
    with pytest.warns(UserWarning, match="no image"):
        ds = index_source(root)
    ref = datasets.ImageFolder(root, loader=lambda p: p, allow_empty=True)
    assert ds.class_to_idx == ref.class_to_idx == {"a": 0, "b": 1, "c": 2}
    assert ds.samples == [(p, int(t)) for p, t in ref.samples]


def test_no_stat_per_file(tmp_path, monkeypatch):
    root = str(tmp_path)
    for c in range(3):
        for i in range(200):
            touch(os.path.join(root, f"c{c}", f"{i:04d}.jpg"))
    calls = {"stat": 0, "isfile": 0}
    real_stat, real_isfile = os.stat, os.path.isfile

    def stat(*a, **k):
        calls["stat"] += 1
        return real_stat(*a, **k)

    def isfile(*a, **k):
        calls["isfile"] += 1
        return real_isfile(*a, **k)

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(os.path, "isfile", isfile)
    ds = index_source(root)
    assert len(ds) == 600
    assert calls["isfile"] == 0
    assert calls["stat"] < 10, calls


def test_flat_directory(tmp_path):
    root = str(tmp_path)
    for n in ("b.jpg", "a.PNG", "c.txt", "d.jpeg"):
        touch(os.path.join(root, n))
    os.makedirs(os.path.join(root, ".ipynb_checkpoints"))  # hidden folders do not make it an ImageFolder
    ds = index_source(root)
    assert ds.kind == "flat"
    assert [os.path.basename(p) for p in ds.items] == ["a.PNG", "b.jpg", "d.jpeg"]
    assert ds.labels.tolist() == [-1, -1, -1] and ds.classes == [] and not ds.labeled
    assert ds.names == ["a.PNG", "b.jpg", "d.jpeg"]


def test_mixed_directory_is_ambiguous(tmp_path):
    root = str(tmp_path)
    touch(os.path.join(root, "top.jpg"))
    touch(os.path.join(root, "cls", "1.jpg"))
    with pytest.raises(ValueError, match="layout="):
        index_source(root)
    assert [os.path.basename(p) for p in index_source(root, layout="flat").items] == ["top.jpg"]
    ds = index_source(root, layout="imagefolder")
    assert ds.classes == ["cls"] and len(ds) == 1


def test_list_file_csv_with_header_and_class_names(tmp_path):
    root = tmp_path / "data"
    touch(str(root / "imgs" / "x.jpg"))
    lst = root / "lists" / "train.csv"
    os.makedirs(lst.parent)
    lst.write_text("path,label\n../imgs/x.jpg,dog\n# a comment\n\n/abs/y.jpg,cat\n\"../imgs/with,comma.jpg\",dog\n")
    ds = index_source(str(lst))
    assert ds.kind == "list"
    assert ds.items == [os.path.join(str(root / "lists"), "../imgs/x.jpg"), "/abs/y.jpg",
                        os.path.join(str(root / "lists"), "../imgs/with,comma.jpg")]
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    assert ds.labels.tolist() == [1, 0, 1]


def test_list_file_int_labels_caffe_tab_and_unlabeled(tmp_path):
    lst = tmp_path / "l.txt"
    lst.write_text("a/1.jpg 3\nb/2.jpg\t0\nc/3 with space.jpg 1\n")
    ds = index_source(str(lst))
    assert ds.items == [str(tmp_path / "a/1.jpg"), str(tmp_path / "b/2.jpg"), str(tmp_path / "c/3 with space.jpg")]
    assert ds.labels.tolist() == [3, 0, 1]
    assert ds.classes == [] and ds.labeled  # integer labels are their own classes (Note [Labels])
    assert ds.names == ["a/1.jpg", "b/2.jpg", "c/3 with space.jpg"]
    lst.write_text("x.jpg\ny.jpg\n")
    ds = index_source(str(lst))
    assert ds.labels.tolist() == [-1, -1] and ds.classes == [] and not ds.labeled


def test_sequences(tmp_path):
    ds = index_source(["/d/a/1.jpg", "/d/b/2.jpg"])
    assert ds.labels.tolist() == [-1, -1] and ds.names == ["a/1.jpg", "b/2.jpg"]
    ds = index_source([("/d/a/1.jpg", 1), ("/d/b/2.jpg", 0)])
    assert ds.labels.tolist() == [1, 0] and ds.classes == []
    ds = index_source([(b"\xff\xd8", "cat"), (b"\xff\xd8", "ant")])
    assert ds.labels.tolist() == [1, 0] and ds.classes == ["ant", "cat"]
    ds = index_source([b"1", bytearray(b"2")])
    assert ds.items == [b"1", bytearray(b"2")] and ds.names == ["00000000", "00000001"]
    import pathlib

    assert index_source([pathlib.Path("/x/y.jpg")]).items == ["/x/y.jpg"]
    with pytest.raises(TypeError):
        index_source(b"\xff\xd8")
    with pytest.raises(TypeError):
        index_source([1.5])
    assert isinstance(index_source(ds), Dataset)
    with pytest.raises(FileNotFoundError):
        index_source(str(tmp_path / "missing"))


def test_label_rules(tmp_path):
    """Issue 28's label defects, each refused or kept by a documented rule (Note [Labels])."""
    from fastprep.data import LabelError

    lst = tmp_path / "l.csv"

    def index(text):
        lst.write_text(text)
        return index_source(str(lst))

    # a large integer label costs nothing (it used to build a class table sized by it: hang)
    ds = index("a.jpg,3000000000\nb.jpg,-100\nc.jpg,7\n")
    assert ds.labels.tolist() == [3000000000, -100, 7] and ds.classes == [] and ds.labeled
    with pytest.raises(LabelError, match="line 2: label 9223372036854775808 does not fit"):
        index("a.jpg,1\nb.jpg,9223372036854775808\n")
    # one stray string label among integers (used to renumber every other label silently)
    with pytest.raises(LabelError, match=r"line 13: label 'x' is a class name but .*line 1's label '0' is an integer"):
        index("".join(f"{i}.jpg,{i}\n" for i in range(12)) + "z.jpg,x\n")
    # a float label (used to become a class named '1.0')
    with pytest.raises(LabelError, match="line 2: label '1.0' is a number with a fraction"):
        index("a.jpg,0\nb.jpg,1.0\n")
    # an unquoted comma in a path (the row used to be dropped without a word)
    with pytest.raises(LabelError, match="line 2: 3 fields.*quote a path"):
        index("a.jpg,0\nb,c.jpg,1\n")
    # labeled and unlabeled rows mixed
    with pytest.raises(LabelError, match="line 3: no label, but .*line 1 has one"):
        index("a.jpg,0\nb.jpg,1\nc.jpg\n")
    # an empty list (used to give a Loader of length 0)
    with pytest.raises(LabelError, match="names no image"):
        index("# only a comment\n")
    with pytest.raises(LabelError, match="no sample"):
        index_source([])
    # class names in sorted order, whatever the row order
    ds = index("a.jpg,zebra\nb.jpg,ant\nc.jpg,moth\n")
    assert ds.classes == ["ant", "moth", "zebra"] and ds.labels.tolist() == [2, 0, 1]
    # the same rules for sequences, naming the item
    with pytest.raises(LabelError, match="item 1: label 0.5 is a float"):
        index_source([("a.jpg", 0), ("b.jpg", 0.5)])
    with pytest.raises(LabelError, match="item 2: label 'dog' is a class name"):
        index_source([("a.jpg", 0), ("b.jpg", np.int64(1)), ("c.jpg", "dog")])
    assert index_source([("a.jpg", -100), ("b.jpg", np.int32(5))]).labels.tolist() == [-100, 5]


def test_large_label_does_not_hang_the_tools(tmp_path, photos):
    """`path,3000000000` used to hang index_source, the Loader, stats and preprocess while memory
    grew. In a subprocess with a timeout: the Loader, stats and preprocess all run."""
    import shutil
    import subprocess
    import sys
    import textwrap

    for i, p in enumerate(photos[:3]):
        shutil.copy(p, tmp_path / f"{i}.jpg")
    (tmp_path / "list.csv").write_text("0.jpg,3000000000\n1.jpg,-100\n2.jpg,2\n")
    code = textwrap.dedent(f"""
        import fastprep as fp
        src = {str(tmp_path / 'list.csv')!r}
        L = fp.Loader(src, fp.Compose([fp.Resize(32), fp.CenterCrop(32)]), batch_size=3, shuffle=False,
                      backend="numpy")
        x, y = next(iter(L))
        print(y.tolist())
        fp.compute_stats(src, size=32)
        fp.preprocess(src, {str(tmp_path / 'out')!r}, size=32, progress=False)
        print(fp.ShardDataset({str(tmp_path / 'out')!r}).labels.tolist())
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root,
                       env=dict(os.environ, PYTHONPATH=root))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["[3000000000, -100, 2]", "[3000000000, -100, 2]"]
