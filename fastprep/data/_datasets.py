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
  them or a folder of only ``.tar`` files (``fastprep.io``: members indexed once, read in place).
"""
import csv
import errno
import io
import os
import re
import stat
import warnings

import numpy as np

from ..io import FormatError, TarIndex, TarMember, expand_shards, index_tars, path_str

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
        cut: [(shard, reason)] of the tar shards whose index stops early (a corrupt header or a
            truncation): their later members, however many, are not in the dataset.
        labeled: whether the samples carry labels (then any int64 is a label, negative ones
            included; Note [Labels]); unlabeled samples have label -1.
    """

    def __init__(self, items, labels, classes=(), class_to_idx=None, names=None, root=None, kind="sequence",
                 skipped=(), labeled=None, cut=()):
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
        self.cut = list(cut)
        # Given by the indexer; inferred (every label >= 0) for a Dataset built by hand.
        self._labeled = None if labeled is None else bool(labeled)

    def __len__(self):
        return len(self.items)

    @property
    def samples(self):
        """[(item, label)], as torchvision's ``ImageFolder.samples``."""
        return list(zip(self.items, self.labels.tolist()))

    @property
    def labeled(self):
        if getattr(self, "_labeled", None) is not None:
            return self._labeled
        return bool(len(self.labels)) and bool((self.labels >= 0).all())

    def subset(self, indices):
        idx = [int(i) for i in indices]
        return Dataset([self.items[i] for i in idx], self.labels[idx], self.classes, self.class_to_idx,
                       [self.names[i] for i in idx], self.root, self.kind, labeled=self.labeled)

    def __setstate__(self, state):  # a Dataset pickled by an earlier version
        state.setdefault("cut", [])
        self.__dict__.update(state)

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
        items, labels, names, skipped, cut, root, labeled = index_tars(shards, exts, on_error=on_error)
        return Dataset(items, labels, names=names, root=root, kind="tar", skipped=skipped, labeled=labeled,
                       classes=_tar_classes(shards) if labeled else (), cut=cut)
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


def _tar_classes(shards):
    """The class names of tar shards that ``fastprep preprocess --format tar`` wrote: its
    index.json beside them holds them (a Loader over such shards used to have no classes)."""
    folders = {os.path.dirname(os.path.abspath(p)) for p in shards}
    if len(folders) != 1:
        return []
    index = os.path.join(folders.pop(), "index.json")
    if not os.path.isfile(index):
        return []
    try:
        rec = TarIndex.read(index)
    except (FormatError, OSError, ValueError):
        return []
    return list(getattr(rec, "classes", None) or [])


def index_for_job(source, extensions=None, on_error="raise"):
    """index_source() for the Loader and the offline jobs: the samples left out while indexing
    (tar shards under on_error other than "raise") are reported in one warning."""
    ds = index_source(source, extensions=extensions, on_error=on_error)
    if ds.skipped or getattr(ds, "cut", None):
        warn_skipped(ds.skipped, stacklevel=4, cut=getattr(ds, "cut", ()))
    return ds


def warn_skipped(skipped, stacklevel=3, cut=()):
    """One warning for what was left out while indexing tar shards: samples (``Dataset.skipped``)
    and shards whose index stops early (``Dataset.cut``: how many samples they held after that
    point is unknown, so they are not counted as one sample)."""
    parts = []
    if skipped:
        first = "; ".join(f"{n}: {r}" for n, r in skipped[:3])
        more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
        parts.append(f"{len(skipped)} sample(s) left out: {first}{more} (dataset.skipped)")
    if cut:
        first = "; ".join(f"{n}: {r}" for n, r in list(cut)[:3])
        more = f" (and {len(cut) - 3} more)" if len(cut) > 3 else ""
        parts.append(f"{len(cut)} shard(s) cut short, every member after the damage lost (how many samples is "
                     f"unknown): {first}{more} (dataset.cut)")
    warnings.warn("while indexing the tar shards, " + "; ".join(parts), UserWarning, stacklevel=stacklevel)


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
        return Dataset(items, np.full(len(items), UNLABELED, np.int64), [], {}, top_images, path, "flat",
                       labeled=False)

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
    return Dataset(items, np.asarray(labels, np.int64), classes, class_to_idx, names, path, "imagefolder",
                   labeled=True)


# ---------------------------------------------------------------------------------------------- lists

_INT = re.compile(r"[+-]?\d+\Z")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+|nan|inf|infinity)\Z", re.IGNORECASE)
_I64 = (-2**63, 2**63 - 1)


def _is_int(s):
    return isinstance(s, str) and bool(_INT.match(s.strip()))


class LabelError(ValueError):
    """A file list or sequence whose labels break the rules (Note [Labels]); the message names
    the line (or item) and the reason."""


# Note [Labels]
# The labels of a file list or a sequence of (item, label) pairs, decided once for all:
#   * integer labels are taken as they are, negative ones included (-100 is PyTorch's ignore
#     index); nothing is sized by the largest one (a label of 3,000,000,000 costs nothing), and
#     such a dataset has no class names (``classes`` is empty: the labels are the classes);
#   * string labels are class names, mapped to 0, 1, ... in sorted order (``classes``);
#   * a list whose labels mix integers and names, where some rows have a label and others none,
#     with a float label ("1.0"), an integer outside int64, or a row with more than two fields
#     (an unquoted comma in a path) is refused: LabelError naming the line and the reason;
#   * an empty list is refused: a Loader of length 0 would train on nothing, silently.
# Samples without any label (no list column, a plain sequence of paths) are unlabeled: label -1
# and ``Dataset.labeled`` False.


def _label_kind(label, where):
    """("int", value) or ("name", str) of one label; LabelError otherwise."""
    if isinstance(label, (bool, np.bool_)):
        raise LabelError(f"{where}: label {label!r} is a bool; labels are integers or class names")
    if isinstance(label, (int, np.integer)):
        v = int(label)
    elif isinstance(label, str):
        text = label.strip()
        if not text:
            raise LabelError(f"{where}: empty label")
        if not _INT.match(text):
            if _FLOAT.match(text):
                raise LabelError(f"{where}: label {label!r} is a number with a fraction or exponent; labels are "
                                 "integers or class names (write it as an integer)")
            return "name", text
        v = int(text)
    elif isinstance(label, (float, np.floating)):
        raise LabelError(f"{where}: label {label!r} is a float; labels are integers or class names")
    else:
        raise LabelError(f"{where}: label {label!r} ({type(label).__name__}) is neither an integer nor a class name")
    if not _I64[0] <= v <= _I64[1]:
        raise LabelError(f"{where}: label {v} does not fit a 64-bit integer")
    return "int", v


def _split_line(line, where):
    """One list line -> (path, label or None)."""
    if "," in line or "\t" in line:
        delim = "," if "," in line else "\t"
        try:
            row = next(csv.reader(io.StringIO(line), delimiter=delim, strict=True))
        except csv.Error as e:
            raise LabelError(f"{where}: {e}") from None
        row = [c.strip() for c in row]
        if len(row) > 2:
            raise LabelError(f"{where}: {len(row)} fields where a list has path{delim}label; quote a path that holds "
                             f"a {'comma' if delim == ',' else 'tab'} (\"a,b.jpg\"{delim}label)")
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
    rows, where = [], []
    for k, ln in enumerate(lines, 1):
        s = ln.strip()
        if not s or s.startswith("#"):
            continue
        w = f"{path}, line {k}"
        rows.append(_split_line(s, w))
        where.append(w)
    if rows:
        p0, l0 = rows[0]
        if p0.lower() in _HEADER_NAMES or (l0 is not None and not _is_int(l0) and not os.path.splitext(p0)[1]):
            rows, where = rows[1:], where[1:]
    if not rows:
        raise LabelError(f"{path}: the file list names no image")
    pairs = []
    for (p, label), w in zip(rows, where):
        if not p:
            raise LabelError(f"{w}: empty path")
        pairs.append((p if os.path.isabs(p) else os.path.join(base, p), label))
    ds = _from_pairs(pairs, kind="list", names=[_clean_name(p) for p, _ in rows], where=where)
    ds.root = base
    return ds


def _clean_name(p):
    p = p.replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p.lstrip("/")


def _from_pairs(pairs, kind, names=None, where=None):
    """[(item, label or None)] -> Dataset, by the rules of Note [Labels]. ``where``: how to name
    each pair in an error (default "item i")."""
    if not pairs:
        raise LabelError("the dataset has no sample")
    where = where or [f"item {i}" for i in range(len(pairs))]
    first_labeled = first_unlabeled = None
    values = []
    first_of = {}
    for i, (_, lbl) in enumerate(pairs):
        if lbl is None:
            if first_unlabeled is None:
                first_unlabeled = i
            values.append(None)
            continue
        if first_labeled is None:
            first_labeled = i
        lkind, v = _label_kind(lbl, where[i])
        first_of.setdefault(lkind, i)
        if len(first_of) > 1:
            a, b = first_of["int"], first_of["name"]
            j = max(a, b)
            raise LabelError(f"{where[j]}: label {pairs[j][1]!r} is {'an integer' if j == a else 'a class name'} but "
                             f"{where[min(a, b)]}'s label {pairs[min(a, b)][1]!r} is "
                             f"{'a class name' if j == a else 'an integer'}; a list's labels are all integers or all "
                             "class names")
        values.append(v)
    if first_labeled is not None and first_unlabeled is not None:
        j = max(first_labeled, first_unlabeled)
        raise LabelError(f"{where[j]}: {'no label' if j == first_unlabeled else 'a label'}, but "
                         f"{where[min(first_labeled, first_unlabeled)]} has "
                         f"{'one' if j == first_unlabeled else 'none'}; label every sample or none")
    labeled = first_labeled is not None
    if not labeled:
        labels = np.full(len(pairs), UNLABELED, np.int64)
        classes = []
    elif "int" in first_of:
        labels = np.asarray(values, np.int64)
        classes = []  # integer labels are their own classes: no table sized by the largest
    else:
        classes = sorted(set(values))
        idx = {c: i for i, c in enumerate(classes)}
        labels = np.asarray([idx[v] for v in values], np.int64)
    items = [it for it, _ in pairs]
    if names is None:
        names = _names_for(items)
    return Dataset(items, labels, classes, None, names, None, kind, labeled=labeled)


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
