"""Dataset indexing: a folder, a file list or in-memory items -> (items, labels, classes).

Shared by ``fastprep stats``, ``fastprep preprocess`` and the Loader. Directories are listed with
``os.scandir``: ``DirEntry.is_dir()`` answers from the directory entry's type (no ``stat`` call
except for symlinks and file systems that do not report types), and files are never checked one
by one, so indexing 100,000 files costs about as much as listing them.

Sources accepted by :func:`index_source`:

* an ImageFolder directory (``root/<class>/**/<file>``): classes, ``class_to_idx``, accepted
  extensions and sample order exactly as ``torchvision.datasets.ImageFolder``;
* a flat directory of images (no sub-folders): unlabeled, label -1;
* a text or CSV file list, one ``path,label`` per line (also ``path<TAB>label``, Caffe-style
  ``path label`` or just ``path``); relative paths are resolved against the list file's folder;
  a header line is allowed, ``#`` starts a comment line; labels are integers or class names;
* a sequence of paths, of ``(path, label)`` pairs, of bytes objects or of ``(bytes, label)``;
* WebDataset tar shards: ``"train-{000000..000127}.tar"``, a glob, a ``.tar`` path, a list of
  them or a folder of only ``.tar`` files (``_tar``: members indexed once, read in place).
"""
import csv
import errno
import io
import os
import stat
import warnings

import numpy as np

from ._fallback import path_str
from ._tar import TarMember, expand_shards, index_tars

__all__ = ["IMG_EXTENSIONS", "Dataset", "index_source", "index_for_job", "warn_skipped"]

# torchvision.datasets.folder.IMG_EXTENSIONS, compared case-insensitively.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

UNLABELED = -1
_LIST_EXTENSIONS = (".txt", ".csv", ".tsv", ".lst", ".list")
_TAR_EXTENSIONS = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst")


def _is_tar(path):
    if path.lower().endswith(_TAR_EXTENSIONS):
        return True
    try:  # sniff regular files only: reading a pipe (a file list from `<(...)`) would consume it
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
    except OSError:
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    return len(head) == 512 and head[257:262] == b"ustar"
_HEADER_NAMES = {"path", "file", "filename", "file_name", "filepath", "file_path", "image", "img", "image_path",
                 "image_id", "name", "fname", "src", "source"}


class Dataset:
    """An indexed dataset.

    Attributes:
        items: list of str paths (or bytes-like objects for in-memory sources).
        labels: np.int64 array, one per item; -1 means unlabeled.
        classes: list of class names (index = label).
        class_to_idx: dict class name -> label.
        names: list of str, a stable relative name per item ("cat/001.jpg"), unique.
        root: the directory the names are relative to, or None.
        kind: "imagefolder", "flat", "list", "sequence" or "tar".
        skipped: [(name, reason)] of the samples left out while indexing (tar shards under
            on_error other than "raise").
    """

    def __init__(self, items, labels, classes=(), class_to_idx=None, names=None, root=None, kind="sequence",
                 skipped=()):
        self.items = list(items)
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(self.labels) != len(self.items):
            raise ValueError(f"{len(self.items)} items but {len(self.labels)} labels")
        self.classes = list(classes)
        self.class_to_idx = dict(class_to_idx) if class_to_idx is not None else {c: i for i, c in
                                                                                 enumerate(self.classes)}
        self.names = list(names) if names is not None else [f"{i:08d}" for i in range(len(self.items))]
        self.root = root
        self.kind = kind
        self.skipped = list(skipped)

    def __len__(self):
        return len(self.items)

    @property
    def samples(self):
        """[(item, label)], as torchvision's ``ImageFolder.samples``."""
        return list(zip(self.items, self.labels.tolist()))

    @property
    def labeled(self):
        return bool(len(self.labels)) and bool((self.labels >= 0).all())

    def subset(self, indices):
        idx = [int(i) for i in indices]
        return Dataset([self.items[i] for i in idx], self.labels[idx], self.classes, self.class_to_idx,
                       [self.names[i] for i in idx], self.root, self.kind)

    def __repr__(self):
        where = f", root={self.root!r}" if self.root else ""
        return f"Dataset({self.kind}, {len(self)} items, {len(self.classes)} classes{where})"


def index_source(source, extensions=None, layout="auto", on_error="raise"):
    """Indexes ``source`` (see the module docstring) into a :class:`Dataset`.

    Args:
        extensions: accepted file name endings for directories (default ``IMG_EXTENSIONS``),
            matched case-insensitively. File lists and sequences are never filtered.
        layout: for directories: "auto" (ImageFolder when there are class sub-folders, flat when
            there are none; a folder holding both images and non-hidden sub-folders is ambiguous
            and raises), "imagefolder" (top-level files ignored, as torchvision) or "flat" (only
            the top-level files).
        on_error: tar shards only: "raise" (a corrupt shard, a sample without an image or label,
            a duplicate key raise TarFormatError) or anything else (those samples are left out
            and listed in ``Dataset.skipped``).
    """
    if isinstance(source, Dataset):
        return source
    exts = _extensions(extensions)
    shards = expand_shards(source)
    if shards is not None:
        items, labels, names, skipped, root = index_tars(shards, exts, on_error=on_error)
        return Dataset(items, labels, names=names, root=root, kind="tar", skipped=skipped)
    if isinstance(source, (str, os.PathLike)):
        path = path_str(source, "dataset source")
        if os.path.isdir(path):
            return _index_directory(path, exts, layout)
        if not os.path.exists(path):
            raise FileNotFoundError(f"dataset source {path!r} does not exist")
        if path.lower().endswith(exts) and not path.lower().endswith(_LIST_EXTENSIONS):
            return _from_pairs([(path, None)], kind="sequence")  # one image file
        if _is_tar(path):
            raise ValueError(f"{path!r} is a tar archive without the .tar name: rename it to .tar to read it as a "
                             "WebDataset shard")
        return _index_list_file(path)
    if isinstance(source, (bytes, bytearray, memoryview)):
        raise TypeError("pass a sequence of encoded images ([data]), not a single bytes object")
    try:
        seq = list(source)
    except TypeError:
        raise TypeError(f"cannot index {type(source).__name__}: pass a directory, a file list, or a sequence "
                        "of paths, (path, label) pairs or bytes") from None
    pairs = []
    for i, el in enumerate(seq):
        if isinstance(el, TarMember):
            item, label = el, None
        elif isinstance(el, tuple) or (isinstance(el, list) and len(el) == 2):
            if len(el) != 2:
                raise ValueError(f"item {i}: expected (item, label), got a {len(el)}-tuple")
            item, label = el
        else:
            item, label = el, None
        if isinstance(item, os.PathLike):
            item = os.fspath(item)
        if not isinstance(item, (str, bytes, bytearray, memoryview, np.ndarray, TarMember)):
            raise TypeError(f"item {i}: expected a path or encoded bytes, got {type(item).__name__}")
        pairs.append((item, label))
    return _from_pairs(pairs, kind="sequence")


def index_for_job(source, extensions=None, on_error="raise"):
    """index_source() for the Loader and the offline jobs: the samples left out while indexing
    (tar shards under on_error other than "raise") are reported in one warning."""
    ds = index_source(source, extensions=extensions, on_error=on_error)
    if ds.skipped:
        warn_skipped(ds.skipped, stacklevel=4)
    return ds


def warn_skipped(skipped, stacklevel=3):
    """One warning for the samples left out while indexing (``Dataset.skipped``)."""
    first = "; ".join(f"{n}: {r}" for n, r in skipped[:3])
    more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
    warnings.warn(f"{len(skipped)} sample(s) left out while indexing the tar shards: {first}{more}; the full "
                  "list is in dataset.skipped", UserWarning, stacklevel=stacklevel)


def _extensions(extensions):
    if extensions is None:
        return IMG_EXTENSIONS
    if isinstance(extensions, str):
        extensions = (extensions,)
    return tuple(e.lower() if e.startswith(".") or not e else "." + e.lower() for e in extensions)


# ---------------------------------------------------------------------------------------------- directories

def _scan(path):
    """(sub-directory entries, file names) of one directory, classified from the entry types."""
    dirs, files = [], []
    with os.scandir(path) as it:
        for e in it:
            try:
                is_dir = e.is_dir()  # follows symlinks, as os.walk
            except OSError:
                is_dir = False
            (dirs if is_dir else files).append(e if is_dir else e.name)
    return dirs, files


def _listing_error(path, e):
    """An OSError met while listing a dataset directory, re-raised naming the path: indexing
    never drops a folder silently (torchvision's os.walk would)."""
    msg = f"cannot list {path!r} while indexing the dataset: {e.strerror or e}"
    if e.errno == errno.ENAMETOOLONG:
        msg += " (the path is longer than the OS allows)"
    err = type(e)(e.errno, msg) if e.errno is not None else OSError(msg)
    err.filename = path
    return err


def _is_within(path, parent):
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


def _walk(top, loops):
    """[(root, file names)] in the order of ``sorted(os.walk(top, followlinks=True))``.

    Unlike os.walk, a directory that cannot be listed raises (naming it), and a symlinked
    directory that points at itself or one of its ancestors (a loop, which would index the
    ancestors' other classes again under this one) is skipped and appended to ``loops``."""
    out = []
    stack = [top]
    real_seen = set()  # guards symlink cycles, which would make os.walk recurse until ELOOP
    try:
        real_seen.add(os.path.realpath(top))
    except OSError:
        pass
    while stack:
        root = stack.pop()
        try:
            dirs, files = _scan(root)
        except OSError as e:
            raise _listing_error(root, e) from None
        out.append((root, files))
        for e in dirs:
            if e.is_symlink():
                real = os.path.realpath(e.path)
                if _is_within(os.path.realpath(root), real):
                    loops.append((e.path, real))
                    continue
                if real in real_seen:
                    continue
                real_seen.add(real)
            stack.append(e.path)
    out.sort(key=lambda t: t[0])
    return out


def _index_directory(path, exts, layout):
    if layout not in ("auto", "imagefolder", "flat"):
        raise ValueError(f"layout must be 'auto', 'imagefolder' or 'flat', got {layout!r}")
    try:
        dirs, files = _scan(path)
    except OSError as e:
        raise _listing_error(path, e) from None
    top_images = sorted(f for f in files if f.lower().endswith(exts))
    if layout == "auto":
        visible = [e for e in dirs if not e.name.startswith(".")]
        if visible and top_images:
            raise ValueError(
                f"{path!r} holds both images ({top_images[0]!r}, ...) and sub-folders ({visible[0].name!r}, ...): "
                "pass layout='imagefolder' (class sub-folders; top-level files ignored, as torchvision) "
                "or layout='flat' (top-level images only)")
        layout = "imagefolder" if visible or not top_images and dirs else "flat"
    if layout == "flat":
        if not top_images:
            raise FileNotFoundError(f"Couldn't find any class folder or image file in {path} (extensions: "
                                    f"{', '.join(exts)}).")
        items = [os.path.join(path, f) for f in top_images]
        return Dataset(items, np.full(len(items), UNLABELED, np.int64), [], {}, top_images, path, "flat")

    # torchvision.datasets.folder.find_classes + make_dataset, without a stat per file.
    classes = sorted(e.name for e in dirs)
    if not classes:
        raise FileNotFoundError(f"Couldn't find any class folder in {path}.")
    class_to_idx = {c: i for i, c in enumerate(classes)}
    items, labels, names = [], [], []
    empty, loops = [], []
    for c in classes:
        cdir = os.path.join(path, c)
        n0 = len(items)
        for root, fnames in _walk(cdir, loops):
            for f in sorted(fnames):
                if f.lower().endswith(exts):
                    p = os.path.join(root, f)
                    items.append(p)
                    names.append(os.path.relpath(p, path).replace(os.sep, "/"))
        labels.extend([class_to_idx[c]] * (len(items) - n0))
        if len(items) == n0:
            empty.append(c)
    if loops:
        warnings.warn(f"skipped {len(loops)} symlinked folder(s) that point at their own ancestors (a loop): "
                      + ", ".join(f"{a} -> {b}" for a, b in loops[:3]) + (", ..." if len(loops) > 3 else ""),
                      stacklevel=3)
    if not items:
        raise FileNotFoundError(f"Found no valid file for the classes {', '.join(classes[:10])}"
                                f"{', ...' if len(classes) > 10 else ''} in {path}. Supported extensions are: "
                                f"{', '.join(exts)}")
    if empty:
        # torchvision raises FileNotFoundError here (allow_empty=False); the classes keep their labels.
        warnings.warn(f"{len(empty)} class folder(s) with no image ({', '.join(empty[:5])}"
                      f"{', ...' if len(empty) > 5 else ''}); torchvision's ImageFolder would refuse this folder",
                      stacklevel=3)
    hidden = [c for c in classes if c.startswith(".")]
    if hidden:
        warnings.warn(f"hidden folder(s) {hidden[:3]} are classes (as in torchvision's ImageFolder)", stacklevel=3)
    return Dataset(items, np.asarray(labels, np.int64), classes, class_to_idx, names, path, "imagefolder")


# ---------------------------------------------------------------------------------------------- lists

def _is_int(s):
    try:
        int(s)
        return True
    except (TypeError, ValueError):
        return False


def _split_line(line):
    """One list line -> (path, label or None)."""
    if "," in line or "\t" in line:
        row = next(csv.reader(io.StringIO(line), delimiter="," if "," in line else "\t"))
        row = [c.strip() for c in row]
        path = row[0] if row else ""
        label = row[1] if len(row) > 1 and row[1] != "" else None
        return path, label
    parts = line.rsplit(None, 1)
    if len(parts) == 2 and _is_int(parts[1]):  # Caffe-style "path label"
        return parts[0], parts[1]
    return line.strip(), None


def _index_list_file(path):
    base = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            lines = [ln.rstrip("\r\n") for ln in f]
    except UnicodeDecodeError as e:
        raise ValueError(f"{path!r} is neither a directory, an image nor a UTF-8 text file list "
                         f"(byte {e.start}: {e.reason})") from None
    rows = []
    for ln in lines:
        s = ln.strip()
        if not s or s.startswith("#"):
            continue
        rows.append(_split_line(s))
    if rows:
        p0, l0 = rows[0]
        if p0.lower() in _HEADER_NAMES or (l0 is not None and not _is_int(l0) and not os.path.splitext(p0)[1]):
            rows = rows[1:]
    pairs = []
    for p, label in rows:
        if not p:
            raise ValueError(f"{path}: empty path in the file list")
        pairs.append((p if os.path.isabs(p) else os.path.join(base, p), label))
    ds = _from_pairs(pairs, kind="list", names=[_clean_name(p) for p, _ in rows])
    ds.root = base
    return ds


def _clean_name(p):
    p = p.replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p.lstrip("/")


def _from_pairs(pairs, kind, names=None):
    """[(item, label or None)] -> Dataset. Integer labels are kept; class-name labels are mapped
    to sorted class indices."""
    raw = [lbl for _, lbl in pairs]
    present = [lbl for lbl in raw if lbl is not None]
    if not present:
        labels = [UNLABELED] * len(pairs)
        classes = []
    elif all(isinstance(x, (int, np.integer)) or (isinstance(x, str) and _is_int(x)) for x in present):
        labels = [UNLABELED if x is None else int(x) for x in raw]
        top = max(labels)
        classes = [str(i) for i in range(top + 1)] if top >= 0 else []
    else:
        classes = sorted({str(x) for x in present})
        idx = {c: i for i, c in enumerate(classes)}
        labels = [UNLABELED if x is None else idx[str(x)] for x in raw]
    items = [it for it, _ in pairs]
    if names is None:
        names = _names_for(items)
    root = None
    return Dataset(items, np.asarray(labels, np.int64), classes, None, names, root, kind)


def _names_for(items):
    """Unique relative names: paths relative to their common folder, "00000012" for bytes."""
    if not items:
        return []
    paths = [it for it in items if isinstance(it, str)]
    if len(paths) != len(items):
        return [_clean_name(it) if isinstance(it, str) else f"{i:08d}" for i, it in enumerate(items)]
    absn = [os.path.abspath(p) for p in paths]
    try:
        common = os.path.commonpath([os.path.dirname(p) for p in absn])
    except ValueError:  # different drives
        common = ""
    names = [_clean_name(os.path.relpath(p, common) if common else p) for p in absn]
    return names
