"""The JSON files the offline tools write, each defined once.

=====================  ==========================================  =====================
file                   record                                      written by
=====================  ==========================================  =====================
OUT/index.json         :class:`ShardIndex` (``--format npy``)      ``fastprep preprocess``
OUT/index.json         :class:`JpegIndex` (``--format jpeg``)      ``fastprep preprocess``
OUT/shard_NNNNN.json   :class:`ShardMeta`                          ``fastprep preprocess``
OUT/run.json           :class:`RunRecord`                          ``fastprep preprocess``
``stats --out`` FILE   :class:`StatsRecord`                        ``fastprep stats``
=====================  ==========================================  =====================

Every record is a dataclass holding Python values (file names as ``str``, a name that is not
valid UTF-8 with its surrogate escapes, as ``os.listdir`` gives it), with ``to_json()`` /
``from_json(d, path)`` for the on-disk dict and ``write(path)`` / ``read(path)`` for the file.
``to_json`` stores names losslessly (the readable text, plus ``<key>_b64`` for the names that are
not valid UTF-8; see ``_atomic``).

Versions. Every file carries ``"version"`` (now :data:`VERSION`). A file without one was written
by an older fastprep and reads as version 1; a file with a newer version than this fastprep knows
is refused with a :class:`FormatError` naming the file and both versions. Keys a reader does not
know are ignored; a required key that is missing is a FormatError naming the file and the key.
"""
import dataclasses
import json
import numbers
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional, Tuple

from . import _atomic

VERSION = 1


class FormatError(ValueError):
    """A fastprep JSON file that cannot be read: not JSON, not the expected kind of file, a
    required key missing, or written by a newer fastprep. ``path`` is the file."""

    def __init__(self, path, message):
        super().__init__(message)
        self.path = path

    def __reduce__(self):
        return (type(self), (self.path, self.args[0]))


def _where(path):
    return _atomic.display(path) if path is not None else "<json>"


class _Fields:
    """The dict of a file being read: ``req(key)`` raises a FormatError naming the file and the
    key when it is missing; ``opt(key, default)``; ``sub(key)`` for the entries of a list of dicts."""

    def __init__(self, d, path, what, prefix=""):
        if not isinstance(d, dict):
            raise FormatError(path, f"{_where(path)}: {prefix or what} is not a JSON object")
        self.d, self.path, self.what, self.prefix = d, path, what, prefix

    def req(self, key):
        try:
            return self.d[key]
        except KeyError:
            raise FormatError(self.path, f"{_where(self.path)}: required key {self.prefix + key!r} is missing (the "
                                         f"{self.what} is damaged, or was not written by fastprep)") from None

    def opt(self, key, default=None):
        v = self.d.get(key, default)
        return default if v is None else v

    def entries(self, key):
        items = self.req(key)
        if not isinstance(items, list):
            raise FormatError(self.path, f"{_where(self.path)}: {self.prefix + key!r} is not a list")
        return [_Fields(x, self.path, self.what, f"{self.prefix}{key}[{i}].") for i, x in enumerate(items)]


def check_version(d, path, what):
    """The file's version (1 when absent: written by an older fastprep); a FormatError when it is
    newer than this fastprep reads, or not a version at all."""
    v = d.get("version", 1) if isinstance(d, dict) else 1
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise FormatError(path, f"{_where(path)}: 'version' is {v!r}, not a format version")
    if v > VERSION:
        raise FormatError(path, f"{_where(path)}: this {what} is format version {int(v)}, written by a newer "
                                f"fastprep; this fastprep reads version {VERSION} and older: upgrade fastprep "
                                "(pip install -U fastprep) to read it")
    return int(v)


def load_json(path, what="file"):
    """The parsed JSON object in ``path``; a FormatError naming the file when it is not JSON or
    not an object (an OSError when it cannot be read)."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        d = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(path, f"{_where(path)} is not valid JSON ({e}): the {what} is damaged") from None
    if not isinstance(d, dict):
        raise FormatError(path, f"{_where(path)}: the {what} is not a JSON object")
    return d


class _Record:
    """to_json()/from_json() + write()/read() for a dataclass record."""

    WHAT: ClassVar[str] = "file"

    def to_json(self):  # pragma: no cover - every record defines it
        raise NotImplementedError

    @classmethod
    def _from_fields(cls, f, version):  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def from_json(cls, d, path=None):
        version = check_version(d, path, cls.WHAT)
        return cls._from_fields(_Fields(d, path, cls.WHAT), version)

    @classmethod
    def read(cls, path):
        return cls.from_json(load_json(path, cls.WHAT), path)

    def write(self, path):
        """Atomic write (``path.tmp`` renamed into place); a WriteError naming ``path`` on failure."""
        _atomic.atomic_write_json(os.fspath(path), self.to_json())


def _source_to_json(source):
    return {"source": None} if source is None else _atomic.path_fields("source", source)


def _source_from_json(f):
    text = f.opt("source")
    return None if text is None else _atomic.name_from_json(text, f.opt("source_b64"))


def _classes_to_json(classes, class_to_idx):
    fields = _atomic.names_fields("classes", [str(c) for c in classes])
    c2i = None
    if class_to_idx is not None:
        c2i = {_atomic.name_to_json(str(c))[0]: int(i) for c, i in class_to_idx.items()}
    fields["class_to_idx"] = c2i
    return fields


def _classes_from_json(f):
    texts = f.opt("classes", [])
    classes = _atomic.names_from_json(texts, f.opt("classes_b64"))
    c2i = f.opt("class_to_idx")
    if c2i is not None:
        text_to_class = dict(zip(texts, classes))  # keys are the classes' JSON text
        c2i = {text_to_class.get(k, k): int(v) for k, v in c2i.items()}
    return classes, c2i


# ---------------------------------------------------------------------------------------------- run.json

@dataclass
class RunRecord(_Record):
    """OUT/run.json: the fingerprint of a preprocess run (any ``--format``), written first and
    compared on a rerun (a rerun with another fingerprint is refused). ``differences`` compares
    everything but the version, so a run.json of an older fastprep still resumes. ``quality`` is
    the JPEG quality of ``jpeg`` and ``tar`` runs (0, and absent from the file, for npy)."""

    WHAT: ClassVar[str] = "run.json"

    count: int
    files_sha1: str
    transform: Dict[str, Any]
    format: str = "npy"
    shard_size: int = 0
    quality: int = 0
    version: int = VERSION

    def to_json(self):
        out = {"format": self.format, "version": VERSION, "count": int(self.count), "files_sha1": self.files_sha1,
               "shard_size": int(self.shard_size), "transform": self.transform}
        if self.quality:
            out["quality"] = int(self.quality)
        return out

    @classmethod
    def _from_fields(cls, f, version):
        return cls(count=int(f.req("count")), files_sha1=f.req("files_sha1"), transform=f.req("transform"),
                   format=f.req("format"), shard_size=int(f.req("shard_size")), quality=int(f.opt("quality", 0)),
                   version=version)

    def differences(self, other):
        """The keys (sorted) in which two fingerprints differ, the version aside."""
        a, b = _canonical(self.to_json()), _canonical(other.to_json())
        return sorted(k for k in set(a) | set(b) if k != "version" and a.get(k) != b.get(k))


def _canonical(obj):
    """The value as JSON gives it back (tuples -> lists, numpy scalars -> numbers)."""
    return json.loads(json.dumps(obj, default=_atomic.json_default))


# ---------------------------------------------------------------------------------------------- shard_NNNNN.json

@dataclass
class ShardMeta(_Record):
    """OUT/shard_NNNNN.json: shard ``shard``'s source range [start, stop), its sample count, the
    failures in that range, its exact moments (``_stats`` ``to_json`` form) and, when some files
    were left out (on_error="skip"), ``kept``: the source indices of its samples."""

    WHAT: ClassVar[str] = "shard file"

    shard: int
    start: int
    stop: int
    count: int
    on_error: str
    moments: Dict[str, Any]
    failed: List[Dict[str, Any]] = field(default_factory=list)
    kept: Optional[List[int]] = None
    version: int = VERSION

    def to_json(self):
        d = {"version": VERSION, "shard": int(self.shard), "start": int(self.start), "stop": int(self.stop),
             "count": int(self.count), "on_error": self.on_error, "failed": _atomic.failures_to_json(self.failed),
             "moments": self.moments}
        if self.kept is not None:
            d["kept"] = [int(i) for i in self.kept]
        return d

    @classmethod
    def _from_fields(cls, f, version):
        kept = f.opt("kept")
        return cls(shard=int(f.req("shard")), start=int(f.req("start")), stop=int(f.req("stop")),
                   count=int(f.req("count")), on_error=f.req("on_error"), moments=f.req("moments"),
                   failed=_atomic.failures_from_json(f.req("failed")),
                   kept=None if kept is None else [int(i) for i in kept], version=version)

    def source_indices(self):
        """The source indices of the shard's samples, in order."""
        return self.kept if self.kept is not None else list(range(self.start, self.stop))


# ---------------------------------------------------------------------------------------------- index.json

def _check_format(f, want):
    got = f.req("format")
    if got != want:
        hint = (" (a --format jpeg output is a folder of images: index it as a source)"
                if got == JpegIndex.FORMAT else "")
        raise FormatError(f.path, f"{_where(f.path)} is a {got!r} index, not {want}{hint}")


@dataclass
class ShardEntry:
    """One shard in index.json: its images/labels files (relative to OUT), the position of its
    first sample in the dataset, its sample count and its source range."""

    images: str
    labels: str
    count: int
    start: int = 0
    source_start: Optional[int] = None
    source_stop: Optional[int] = None

    def to_json(self):
        return {"images": self.images, "labels": self.labels, "start": int(self.start), "count": int(self.count),
                "source_start": self.source_start, "source_stop": self.source_stop}

    @classmethod
    def from_fields(cls, f):
        ss, st = f.opt("source_start"), f.opt("source_stop")
        return cls(images=f.req("images"), labels=f.req("labels"), count=int(f.req("count")),
                   start=int(f.opt("start", 0)), source_start=None if ss is None else int(ss),
                   source_stop=None if st is None else int(st))


@dataclass
class ShardIndex(_Record):
    """OUT/index.json of ``--format npy``, written last (a folder without it is an unfinished
    run). ``files[i]`` is the source name of sample i; ``failed`` the files left out or
    zero-filled; ``stats`` the mean/std of the stored data (both scales, and the Normalize line)."""

    FORMAT: ClassVar[str] = "fastprep-shards"
    WHAT: ClassVar[str] = "index.json"

    shape: Tuple[int, ...]
    dtype: str
    transform: Dict[str, Any]
    shards: List[ShardEntry]
    layout: Optional[str] = None
    count: Optional[int] = None  # None: the sum of the shard counts
    source: Optional[str] = None
    source_count: Optional[int] = None
    classes: List[str] = field(default_factory=list)
    class_to_idx: Optional[Dict[str, int]] = None
    on_error: Any = None  # a policy, or the sorted list of them when shards were made under several
    shard_size: int = 0
    stats: Optional[Dict[str, Any]] = None
    failed: List[Dict[str, Any]] = field(default_factory=list)
    files: List[str] = field(default_factory=list)
    version: int = VERSION

    def __post_init__(self):
        self.shape = tuple(int(v) for v in self.shape)
        if self.count is None:
            self.count = sum(int(s.count) for s in self.shards)

    def to_json(self):
        return {
            "format": self.FORMAT, "version": VERSION, **_source_to_json(self.source),
            "count": int(self.count), "source_count": self.source_count, "dtype": self.dtype, "layout": self.layout,
            "shape": list(self.shape), "transform": self.transform, **_classes_to_json(self.classes, self.class_to_idx),
            "on_error": self.on_error, "shard_size": int(self.shard_size), "shards": [s.to_json() for s in self.shards],
            "stats": self.stats, "failed": _atomic.failures_to_json(self.failed),
            **_atomic.names_fields("files", self.files),
        }

    @classmethod
    def _from_fields(cls, f, version):
        _check_format(f, cls.FORMAT)
        classes, c2i = _classes_from_json(f)
        count = f.opt("count")
        return cls(shape=tuple(int(v) for v in f.req("shape")), dtype=f.req("dtype"), transform=f.req("transform"),
                   shards=[ShardEntry.from_fields(s) for s in f.entries("shards")], layout=f.opt("layout"),
                   count=None if count is None else int(count), source=_source_from_json(f),
                   source_count=f.opt("source_count"), classes=classes, class_to_idx=c2i,
                   on_error=f.opt("on_error"), shard_size=int(f.opt("shard_size", 0)), stats=f.opt("stats"),
                   failed=_atomic.failures_from_json(f.opt("failed", [])),
                   files=_atomic.names_from_json(f.opt("files", []), f.opt("files_b64")), version=version)


@dataclass
class JpegIndex(_Record):
    """OUT/index.json of ``--format jpeg``: ``files[i]`` (relative to OUT) was re-encoded from
    ``sources[i]`` and has label ``labels[i]``; ``failed`` lists the files that could not be."""

    FORMAT: ClassVar[str] = "fastprep-jpeg"
    WHAT: ClassVar[str] = "index.json"

    files: List[str]
    labels: List[int]
    transform: Optional[Dict[str, Any]] = None
    quality: Optional[int] = None
    count: Optional[int] = None  # None: len(files)
    source: Optional[str] = None
    source_count: Optional[int] = None
    classes: List[str] = field(default_factory=list)
    class_to_idx: Optional[Dict[str, int]] = None
    on_error: Optional[str] = None
    sources: List[str] = field(default_factory=list)
    failed: List[Dict[str, Any]] = field(default_factory=list)
    version: int = VERSION

    def __post_init__(self):
        self.labels = [int(v) for v in self.labels]
        if self.count is None:
            self.count = len(self.files)

    def to_json(self):
        return {
            "format": self.FORMAT, "version": VERSION, **_source_to_json(self.source),
            "count": int(self.count), "source_count": self.source_count, "transform": self.transform,
            "quality": self.quality, **_classes_to_json(self.classes, self.class_to_idx), "on_error": self.on_error,
            **_atomic.names_fields("files", self.files), "labels": list(self.labels),
            **_atomic.names_fields("sources", self.sources), "failed": _atomic.failures_to_json(self.failed),
        }

    @classmethod
    def _from_fields(cls, f, version):
        _check_format(f, cls.FORMAT)
        classes, c2i = _classes_from_json(f)
        count, quality = f.opt("count"), f.opt("quality")
        return cls(files=_atomic.names_from_json(f.req("files"), f.opt("files_b64")), labels=f.req("labels"),
                   transform=f.opt("transform"), quality=None if quality is None else int(quality),
                   count=None if count is None else int(count), source=_source_from_json(f),
                   source_count=f.opt("source_count"), classes=classes, class_to_idx=c2i,
                   on_error=f.opt("on_error"), sources=_atomic.names_from_json(f.opt("sources", []),
                                                                                f.opt("sources_b64")),
                   failed=_atomic.failures_from_json(f.opt("failed", [])), version=version)


@dataclass
class TarIndex(JpegIndex):
    """OUT/index.json of ``--format tar``: as JpegIndex, ``files[i]`` being ``shard/key.jpg``;
    ``shards`` lists the tar files (relative to OUT), ``shard_size`` the samples per shard."""

    FORMAT: ClassVar[str] = "fastprep-tar"

    shards: List[str] = field(default_factory=list)
    shard_size: Optional[int] = None

    def to_json(self):
        return {**super().to_json(), "shards": list(self.shards), "shard_size": self.shard_size}

    @classmethod
    def _from_fields(cls, f, version):
        base = JpegIndex._from_fields.__func__(cls, f, version)
        base.shards = [str(x) for x in f.req("shards")]
        size = f.opt("shard_size")
        base.shard_size = None if size is None else int(size)
        return base


INDEX_FORMATS = {ShardIndex.FORMAT: ShardIndex, JpegIndex.FORMAT: JpegIndex, TarIndex.FORMAT: TarIndex}


def read_index(path):
    """The ShardIndex or JpegIndex in ``path`` (an index.json), by its "format"."""
    d = load_json(path, "index.json")
    check_version(d, path, "index.json")
    fmt = _Fields(d, path, "index.json").req("format")
    cls = INDEX_FORMATS.get(fmt)
    if cls is None:
        raise FormatError(path, f"{_where(path)}: format {fmt!r} is not a fastprep index "
                                f"({' or '.join(INDEX_FORMATS)})")
    return cls.from_json(d, path)


# ---------------------------------------------------------------------------------------------- stats --out

@dataclass
class StatsRecord(_Record):
    """The JSON ``fastprep stats --out FILE`` writes: what ``compute_stats`` returns (less the
    per-pixel arrays, which go to .npy files listed under ``per_pixel``)."""

    WHAT: ClassVar[str] = "stats file"

    images: int
    channels: List[str]
    transform: Dict[str, Any]
    mean: List[float]
    std: List[float]
    mean_255: List[float]
    std_255: List[float]
    source: Optional[str] = None
    pixels_per_channel: Optional[int] = None
    on_error: Optional[str] = None
    std_definition: Optional[str] = None
    seconds: Optional[float] = None
    images_per_second: Optional[float] = None
    failed: List[Dict[str, Any]] = field(default_factory=list)
    normalize: Optional[str] = None
    pca: Optional[Dict[str, Any]] = None
    per_pixel: Optional[Dict[str, Any]] = None
    version: int = VERSION

    _RESULT_KEYS: ClassVar[Tuple[str, ...]] = (
        "images", "pixels_per_channel", "channels", "transform", "on_error", "mean", "std", "mean_255", "std_255",
        "std_definition", "seconds", "images_per_second", "failed", "normalize", "pca", "per_pixel")

    @classmethod
    def from_result(cls, res):
        """From a ``compute_stats`` result (its keys; "per_pixel_arrays" is not stored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in res.items() if k in names and k != "version"})

    def to_json(self):
        src = os.fsdecode(self.source) if isinstance(self.source, bytes) else self.source
        d = {**_source_to_json(None if src is None else str(src)), "version": VERSION}
        for k in self._RESULT_KEYS:
            v = getattr(self, k)
            if k == "failed":
                v = _atomic.failures_to_json(v)
            elif v is None and k in ("pca", "per_pixel"):
                continue  # only when asked for
            d[k] = v
        return d

    @classmethod
    def _from_fields(cls, f, version):
        return cls(images=int(f.req("images")), channels=f.req("channels"), transform=f.req("transform"),
                   mean=f.req("mean"), std=f.req("std"), mean_255=f.req("mean_255"), std_255=f.req("std_255"),
                   source=_source_from_json(f), pixels_per_channel=f.opt("pixels_per_channel"),
                   on_error=f.opt("on_error"), std_definition=f.opt("std_definition"), seconds=f.opt("seconds"),
                   images_per_second=f.opt("images_per_second"),
                   failed=_atomic.failures_from_json(f.opt("failed", [])), normalize=f.opt("normalize"),
                   pca=f.opt("pca"), per_pixel=f.opt("per_pixel"), version=version)
