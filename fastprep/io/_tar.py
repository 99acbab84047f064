"""WebDataset tar shards as a dataset source.

A source names shards as ``"data/train-{000000..000127}.tar"`` (brace ranges and ``{a,b}``
alternatives, as WebDataset and ``braceexpand``), a glob (``"data/*.tar"``), one ``.tar`` path, a
list of them, or a directory holding only ``.tar`` shards. Members are grouped into samples as
WebDataset does: the key is the member path up to the first dot of its base name, the rest is the
field (``a/b/n01440764_10026.jpg`` -> key ``a/b/n01440764_10026``, field ``jpg``). A sample's image
is its ``jpg``/``jpeg``/``png``/``webp`` (or other image-extension) member, its label the ``cls``
member (integer text) or a ``json`` member's ``"label"``.

Note [Tar members]
~~~~~~~~~~~~~~~~~~
Each shard is indexed once: a walk over the 512-byte headers (ustar, GNU long names, pax
``path``/``size`` records) that never reads a member's data except the small ``cls``/``json``
ones. The index (member names, data offsets and sizes, parsed labels) is cached under the user
cache (``$FASTPREP_CACHE_DIR``, else ``$XDG_CACHE_HOME/fastprep``, else ``~/.cache/fastprep``),
keyed by the shard's real path and checked against its identity (Note [Tar index identity]), so the 1,000 shards of
an ImageNet copy are indexed once per machine, not once per job. A sample is then a
:class:`TarMember` ``(shard, offset, size, member)``: the native reader reads exactly those bytes
with ``pread``, so a global shuffle stays a true permutation of all samples and every image is
read once. Positional reads rather than a memory map: a shard truncated or replaced while a
Loader runs gives that sample a ReadError naming the shard and member; a memory map would kill
the process with SIGBUS. Compressed tars (``.tar.gz`` ...) have no member offsets and are refused.

Bad input. A corrupt header, a shard cut inside a member, a key that comes back later in its
shard (members of one sample must be adjacent, as WebDataset requires), a sample without an
image, an unreadable label, or a sample without a label in a labeled dataset: under
``on_error="raise"`` a :class:`TarFormatError` naming the shard and member; otherwise the sample
is left out and recorded in ``Dataset.skipped`` (a corrupt header ends that shard's index there,
keeping the samples before it).
"""
import concurrent.futures as cf
import glob
import hashlib
import json
import os
import re
from typing import NamedTuple

from .._errors import DecodeError
from .._util import cache_root
from ._files import open_regular

__all__ = ["TarMember", "TarFormatError", "expand_shards", "tar_source", "index_tars"]

_INDEX_FORMAT = "fastprep-tar-index/2"
_COMPRESSED = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst")
_LABEL_FIELDS = ("cls", "json")
_MAX_LABEL_BYTES = 1 << 20  # a cls/json member bigger than this is not a label
_BLOCK = 512
_ZERO = bytes(_BLOCK)


class TarFormatError(DecodeError):
    """A tar shard (or one of its samples) cannot be used: ``source`` is ``shard`` or
    ``shard:member``, ``reason`` says why."""


class TarMember(NamedTuple):
    """One image inside a tar shard: the native reader reads ``size`` bytes at ``offset``."""
    shard: str
    offset: int
    size: int
    member: str

    def __str__(self):
        return f"{self.shard}:{self.member}"


# ---------------------------------------------------------------------------------------------- sources

_BRACE = re.compile(r"\{([^{}]*)\}")
_MAX_BRACE_RANGE = 10_000_000  # a typo such as {0..1000000000000} must not exhaust memory


def expand_braces(pattern):
    """``a{00..02}b{x,y}`` -> [a00bx, a00by, a01bx, ...] (WebDataset / braceexpand shard syntax;
    a range keeps the zero padding of its bounds)."""
    m = _BRACE.search(pattern)
    if not m:
        return [pattern]
    head, body, tail = pattern[:m.start()], m.group(1), pattern[m.end():]
    r = re.fullmatch(r"(-?\d+)\.\.(-?\d+)", body)
    if r:
        a, b = r.group(1), r.group(2)
        lo, hi = int(a), int(b)
        if abs(hi - lo) >= _MAX_BRACE_RANGE:
            raise ValueError(f"{pattern!r}: the range {{{a}..{b}}} names {abs(hi - lo) + 1:,} shards (at most "
                             f"{_MAX_BRACE_RANGE:,} per range)")
        width = max(len(a), len(b)) if (len(a) > 1 and a.startswith("0")) or (len(b) > 1 and b.startswith("0")) else 0
        step = 1 if hi >= lo else -1
        choices = [str(v).zfill(width) for v in range(lo, hi + step, step)]
    elif "," in body:
        choices = body.split(",")
    else:  # not a brace expression: keep it literally
        return [head + "{" + body + "}" + t for t in expand_braces(tail)]
    rest = expand_braces(tail)
    if len(choices) * len(rest) > _MAX_BRACE_RANGE:
        raise ValueError(f"{pattern!r} names {len(choices) * len(rest):,} shards (at most {_MAX_BRACE_RANGE:,})")
    return [head + c + t for c in choices for t in rest]


def _looks_like_tar(path):
    return path.lower().endswith(".tar")


def _refuse_compressed(path):
    if path.lower().endswith(_COMPRESSED):
        raise ValueError(f"{path!r}: compressed tar shards cannot be read at random offsets (fastprep shuffles "
                         "globally and reads each member where it lies); decompress them, e.g. gunzip, or "
                         "write uncompressed shards (JPEG/PNG/WebP members do not compress anyway)")


def expand_shards(source):
    """The shard paths a tar source names, in order, or None when ``source`` is not a tar source.
    Raises FileNotFoundError for a pattern that matches nothing or a named shard that is missing."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if _BRACE.search(path) and not os.path.exists(path):
            paths = expand_braces(path)
            if len(paths) > 1 or paths[0] != path:
                return _existing_shards(paths, f"named by {path!r}")
        if glob.has_magic(path) and not os.path.exists(path):
            paths = sorted(glob.glob(path))
            if not paths:
                if _looks_like_tar(path):
                    raise FileNotFoundError(f"no shard matches {path!r}")
                return None
            for p in paths:
                _refuse_compressed(p)
            return paths if all(_looks_like_tar(p) for p in paths) else None
        _refuse_compressed(path)
        if os.path.isdir(path):
            return _shard_dir(path)
        if _looks_like_tar(path):
            if not os.path.exists(path):
                raise FileNotFoundError(f"tar shard {path!r} does not exist")
            return [path]
        return None
    if isinstance(source, (list, tuple)) and source and isinstance(source[0], (str, os.PathLike)):
        # a list of a million image paths is not looked at past its first entry
        if not os.fsdecode(os.fspath(source[0])).lower().endswith((".tar",) + _COMPRESSED):
            return None
        if all(isinstance(p, (str, os.PathLike)) for p in source):
            return _existing_shards([os.fsdecode(os.fspath(p)) for p in source], "listed")
    return None


def _existing_shards(paths, how):
    """``paths`` when they all name .tar files, None when one does not (not a tar source); a
    compressed or missing shard raises."""
    for p in paths:
        _refuse_compressed(p)
    if not all(_looks_like_tar(p) for p in paths):
        return None
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of the {len(paths)} shards {how} do not exist, first: {missing[0]!r}")
    return paths


def _shard_dir(path):
    """A directory whose only files (hidden ones, index.json and run.json aside) are ``.tar`` shards,
    without sub-folders: its shards in name order. Anything else is not a tar source."""
    shards = []
    with os.scandir(path) as it:
        for e in it:
            if e.name.startswith(".") or e.name in ("index.json", "run.json"):  # `preprocess --format tar` writes them
                continue
            if e.is_dir() or not _looks_like_tar(e.name):
                return None
            shards.append(e.path)
    return sorted(shards) or None


def tar_source(source):
    """True when ``source`` names tar shards (see :func:`expand_shards`); never raises."""
    try:
        return expand_shards(source) is not None
    except (OSError, ValueError):
        return True  # a tar source with a problem: index_tars reports it


# ---------------------------------------------------------------------------------------------- one shard

def _cache_dir():
    return os.path.join(cache_root(), "tar-index")


def _number(field):
    if field[:1] and field[0] & 0x80:  # GNU base-256 (sizes of 8 GiB and more)
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    return int(text, 8) if text else 0


def _checksum_ok(h):
    want = _number(h[148:156])
    if want == sum(h) - sum(h[148:156]) + 256:  # the checksum field counts as eight spaces
        return True
    return want == sum(b - 256 if b > 127 else b for b in h[:148] + h[156:]) + 256  # old signed writers


def _pax(data):
    """The records ("LEN key=value\\n") of a pax extended header; stops at the first malformed one."""
    out, pos = {}, 0
    while pos < len(data):
        sp = data.find(b" ", pos)
        if sp < 0:
            break
        try:
            n = int(data[pos:sp])
        except ValueError:
            break
        if n <= sp - pos:
            break
        rec = data[sp + 1:pos + n - 1]  # without the trailing newline
        k, _, v = rec.partition(b"=")
        out[k.decode("utf-8", "replace")] = v
        pos += n
    return out


def _label_of(field, data):
    """(label or None, problem or None) of a cls/json member's bytes."""
    if field == "cls":
        try:
            return int(data.decode("ascii").strip()), None
        except (UnicodeDecodeError, ValueError):
            return None, f"cls member is not an integer: {data[:40]!r}"
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        return None, f"json member is not valid JSON ({e})"
    v = obj.get("label") if isinstance(obj, dict) else None
    if v is None:
        return None, None  # a json without a label is metadata, not an error
    if isinstance(v, bool) or not isinstance(v, int):
        return None, f"json member's \"label\" is not an integer: {v!r}"
    return v, None


def scan_shard(path):
    """Walks one shard's headers: {"names", "offsets", "sizes", "labels": {i: label},
    "problems": [[member or None, reason]]} (see the module docstring)."""
    names, offsets, sizes, labels, problems = [], [], [], {}, []
    last_header = 0
    with open_regular(path, error=TarFormatError) as (fd, st):
        end, pos, long_name, pax = st.st_size, 0, None, {}
        while True:
            if pos + _BLOCK > end:
                if pos < end:
                    problems.append([None, f"ends inside a header at byte {pos} (the shard is truncated)", True])
                break
            h = os.pread(fd, _BLOCK, pos)
            if len(h) < _BLOCK:
                problems.append([None, f"ends inside a header at byte {pos} (the shard shrank while indexed)", True])
                break
            if h == _ZERO:
                break  # end-of-archive marker
            try:
                if not _checksum_ok(h):
                    raise ValueError("bad header checksum")
                size = int(pax["size"]) if "size" in pax else _number(h[124:136])
                if size < 0:
                    raise ValueError(f"negative member size {size}")
            except ValueError as e:
                what = "not a tar file" if pos == 0 else f"corrupt header at byte {pos}"
                problems.append([None, f"{what} ({e}); the members after it are not indexed", True])
                break
            kind = h[156:157]
            name = long_name
            if name is None and "path" in pax:
                name = os.fsdecode(pax["path"])
            if name is None:
                name = h[0:100].split(b"\0", 1)[0]
                if h[257:262] == b"ustar" and h[345] != 0:
                    name = h[345:500].split(b"\0", 1)[0] + b"/" + name
                name = name.decode("utf-8", "surrogateescape")
            data = pos + _BLOCK
            if data + size > end:
                problems.append([name, f"member data [{data}, {data + size}) runs past the end of the shard "
                                       f"({end} bytes): the shard is truncated", True])
                break
            nxt = data + (size + _BLOCK - 1) // _BLOCK * _BLOCK
            if kind in (b"L", b"x"):
                payload = os.pread(fd, min(size, _MAX_LABEL_BYTES), data)
                if kind == b"L":
                    long_name = os.fsdecode(payload.split(b"\0", 1)[0])
                else:
                    pax = _pax(payload)
                pos = nxt
                continue
            if kind in (b"0", b"\0", b"7"):  # regular files; directories, links, devices are not samples
                last_header = pos
                i = len(names)
                names.append(name)
                offsets.append(data)
                sizes.append(size)
                field = _field(name)[1]
                if field in _LABEL_FIELDS:
                    if size > _MAX_LABEL_BYTES:
                        labels[i] = [None, f"{field} member is {size} bytes, not a label"]
                    else:
                        labels[i] = list(_label_of(field, os.pread(fd, size, data)))
            long_name, pax = None, {}
            pos = nxt
        return {"format": _INDEX_FORMAT, **_identity(fd, st, last_header), "names": names,
                "offsets": offsets, "sizes": sizes, "labels": {str(k): v for k, v in labels.items()},
                "problems": problems}


# Note [Tar index identity]
# A cached index is used only for the same file with the same content. Path, size and mtime are not
# enough: shards come in 10240-byte records, so a replaced shard often has the same size, and a copy
# can keep the mtime. The cache also keys on the inode and ctime (a rename-over or a rewrite in
# place changes them), and on a hash of the shard's first 512-byte block and of its last member's
# header block, which are read again and checked every time the cached index is used (two 512-byte
# reads per shard).
_IDENTITY = ("size", "mtime_ns", "ino", "ctime_ns", "head_sha1", "tail_offset", "tail_sha1")


def _block_sha1(fd, offset):
    return hashlib.sha1(os.pread(fd, _BLOCK, offset)).hexdigest()


def _identity(fd, st, tail_offset):
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino, "ctime_ns": st.st_ctime_ns,
            "head_sha1": _block_sha1(fd, 0), "tail_offset": int(tail_offset), "tail_sha1": _block_sha1(fd, tail_offset)}


def _same_shard(real, idx):
    """Whether the cached index ``idx`` describes the file at ``real`` now (Note [Tar index identity])."""
    try:
        with open_regular(real, error=TarFormatError) as (fd, st):
            now = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino, "ctime_ns": st.st_ctime_ns}
            if any(idx.get(k) != v for k, v in now.items()):
                return False
            tail = idx.get("tail_offset")
            if not isinstance(tail, int) or not 0 <= tail <= max(0, st.st_size - _BLOCK):
                return False
            return idx.get("head_sha1") == _block_sha1(fd, 0) and idx.get("tail_sha1") == _block_sha1(fd, tail)
    except TarFormatError:
        return False


def _cache_file(real):
    return os.path.join(_cache_dir(), hashlib.sha1(os.fsencode(real)).hexdigest() + ".json")


def index_shard(path, fields, cache=True):
    """One shard's samples: {"members", "offsets", "sizes", "labels", "problems"} (see
    :func:`_group`), from the cache when the shard is unchanged (Note [Tar members])."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError as e:
        raise TarFormatError(path, f"cannot open: {e.strerror or e}") from None
    cfile = _cache_file(real)
    idx = None
    if cache:
        try:
            with open(cfile, "rb") as f:
                idx = json.load(f)
            if not (isinstance(idx, dict) and idx.get("format") == _INDEX_FORMAT and idx.get("path") == real
                    and _same_shard(real, idx)):
                idx = None
        except (OSError, ValueError, AttributeError):
            idx = None
    if idx is not None and idx.get("fields") == fields:
        return idx["samples"]
    if idx is None:
        idx = scan_shard(real)
        idx["path"] = real
    idx["fields"], idx["samples"] = fields, _group(idx, fields)
    if cache and idx["size"] == st.st_size and idx["mtime_ns"] == st.st_mtime_ns and idx["ino"] == st.st_ino:
        tmp = f"{cfile}.{os.getpid()}.tmp"
        try:  # the cache is an optimisation: a read-only or full cache folder just means no cache
            os.makedirs(os.path.dirname(cfile), exist_ok=True)
            with open(tmp, "w") as f:
                json.dump(idx, f, separators=(",", ":"))
            os.replace(tmp, cfile)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return idx["samples"]


def _field(name):
    """(key, field) of a member name, as WebDataset splits it."""
    slash = name.rfind("/") + 1
    dot = name.find(".", slash)
    if dot < 0:
        return name, ""
    return name[:dot], name[dot + 1:].lower()


# ---------------------------------------------------------------------------------------------- dataset

def _group(idx, fields):
    """A shard's scan grouped into samples: the image member's name, offset and size and the label
    (-1: none) of each sample, and the problems ([member or None, reason]) in shard order."""
    members, offsets, sizes, labels, problems = [], [], [], [], [list(p) for p in idx["problems"]]
    groups, order, last, closed = {}, [], None, set()
    names = idx["names"]
    for i, name in enumerate(names):
        slash = name.rfind("/") + 1
        dot = name.find(".", slash)
        if dot < 0:
            continue  # no field: not part of any sample (WebDataset ignores it as well)
        key, field = name[:dot], name[dot + 1:].lower()
        g = groups.get(key)
        if g is None:
            g = groups[key] = {}
            order.append(key)
        elif key in closed or key != last or field in g:  # the first sample keeps the key
            if key not in closed:
                why = (f"repeats the field {field!r} of sample {key!r}" if field in g else
                       f"sample {key!r} comes back after other samples (a sample's members must be adjacent)")
                problems.append([name, f"duplicate key: {why}"])
            closed.add(key)
            last = None
            continue
        g[field] = i
        last = key
    for key in order:
        g = groups[key]
        image = next((g[f] for f in fields if f in g), None)
        if image is None:
            problems.append([key, f"sample has no image member (fields: {', '.join(sorted(g)) or 'none'})"])
            continue
        label, bad = None, None
        for f in _LABEL_FIELDS:
            if f in g:
                label, bad = idx["labels"].get(str(g[f]), [None, None])
                if bad is not None:
                    bad = f"{names[g[f]]}: {bad}"
                    break
                if label is not None:
                    break
        if bad is not None:
            problems.append([key, bad])
            continue
        members.append(names[image])
        offsets.append(idx["offsets"][image])
        sizes.append(idx["sizes"][image])
        labels.append(None if label is None else int(label))  # any integer, negative ones included
    return {"members": members, "offsets": offsets, "sizes": sizes, "labels": labels, "problems": problems}


def index_tars(paths, extensions, on_error="raise", threads=8, cache=True):
    """Indexes the shards ``paths`` into (items, labels, names, skipped, root). See the module
    docstring for the grouping and the bad-input rules."""
    fields = [e.lstrip(".").lower() for e in extensions]
    with cf.ThreadPoolExecutor(max(1, min(threads, len(paths)))) as ex:  # cold storage: overlap the reads
        shards = list(ex.map(lambda p: index_shard(p, fields, cache), paths))
    dirs = [os.path.dirname(os.path.abspath(p)) for p in paths]
    root = os.path.commonpath(dirs) if dirs else None
    items, labels, names, skipped, cut = [], [], [], [], []

    def problem(where, reason, rest_lost=False):
        if on_error == "raise":
            raise TarFormatError(where, reason)
        (cut if rest_lost else skipped).append((where, reason))

    for path, sh in zip(paths, shards):
        for member, reason, *rest_lost in sh["problems"]:
            problem(f"{path}:{member}" if member else path, reason, bool(rest_lost and rest_lost[0]))
        prefix = (os.path.relpath(os.path.abspath(path), root) if root else path) + "/"
        items += map(TarMember, [path] * len(sh["members"]), sh["offsets"], sh["sizes"], sh["members"])
        names += [prefix + m for m in sh["members"]]
        labels += sh["labels"]
    if any(v is not None for v in labels) and any(v is None for v in labels):
        keep = []
        for j, v in enumerate(labels):
            if v is None:
                problem(str(items[j]), "sample has no label (no cls member, no \"label\" in its json) but other "
                                       "samples of the dataset have one")
            else:
                keep.append(j)
        items, labels, names = [items[j] for j in keep], [labels[j] for j in keep], [names[j] for j in keep]
    if not items:
        lost = len(skipped) + len(cut)
        raise TarFormatError(paths[0] if len(paths) == 1 else f"{len(paths)} shards",
                             "no sample with an image member" + (f" ({lost} problems)" if lost else ""))
    labeled = labels[0] is not None
    labels = [v if labeled else -1 for v in labels]
    return items, labels, names, skipped, cut, root, labeled
