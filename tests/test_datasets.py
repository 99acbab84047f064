import os
import numpy as np
import pytest

from fastprep._datasets import IMG_EXTENSIONS, Dataset, index_source


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
    assert ds.classes == ["0", "1", "2", "3"]
    assert ds.names == ["a/1.jpg", "b/2.jpg", "c/3 with space.jpg"]
    lst.write_text("x.jpg\ny.jpg\n")
    ds = index_source(str(lst))
    assert ds.labels.tolist() == [-1, -1] and ds.classes == []


def test_sequences(tmp_path):
    ds = index_source(["/d/a/1.jpg", "/d/b/2.jpg"])
    assert ds.labels.tolist() == [-1, -1] and ds.names == ["a/1.jpg", "b/2.jpg"]
    ds = index_source([("/d/a/1.jpg", 1), ("/d/b/2.jpg", 0)])
    assert ds.labels.tolist() == [1, 0] and ds.classes == ["0", "1"]
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
