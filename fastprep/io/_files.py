"""Reading input files the way the native reader does (csrc/pipeline/pipeline.cpp, Note [Bounded
reads]): regular files only, opened non-blocking, never past a size limit; tar members read where
they lie; display names of samples."""
import contextlib
import os
import stat

from .._errors import ImageTooLargeError, ReadError

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


@contextlib.contextmanager
def open_regular(path, source=None, error=ReadError):
    """Yields (fd, stat) of a regular file, opened non-blocking (a FIFO cannot block the open);
    anything else (directory, device such as /dev/zero, FIFO, socket) is refused from fstat before
    a byte is read. Failures raise ``error(source, reason)``; an OSError while the file is in use
    becomes ``error(source, "read failed: ...")``. The descriptor is closed on exit."""
    source = path if source is None else source
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise error(source, f"cannot open: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((name for test, name in _KINDS if test(st.st_mode)), "a special file")
            raise error(source, f"is {kind}, not a regular file")
        yield fd, st
    except OSError as e:
        raise error(source, f"read failed: {e.strerror or e}") from None
    finally:
        os.close(fd)


def path_str(p, what="path"):
    """A str or PathLike (bytes paths too) as a str path, refusing NUL, which no file name can
    hold (the OS would silently cut the name there)."""
    path = os.fspath(p)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if "\0" in path:
        raise ValueError(f"{what} {path!r} contains a NUL character: no file can have that name")
    return path


# The native reader's limit (csrc/pipeline/pipeline.h kMaxFileBytes): no file is read past it.
MAX_FILE_BYTES = 1 << 31

def read_member(m, source=None):
    """The bytes of a tar member (``_tar.TarMember``), read where it lies, as the native reader
    does: refused when the shard no longer holds it (truncated or replaced since indexing)."""
    source = str(m) if source is None else source
    with open_regular(m.shard, source) as (fd, st):
        if m.size > MAX_FILE_BYTES:
            raise ImageTooLargeError(source, f"member is {m.size} bytes, over the {MAX_FILE_BYTES >> 30} GiB limit")
        if m.offset + m.size > st.st_size:
            raise ReadError(source, f"member [{m.offset}, {m.offset + m.size}) lies past the end of the file "
                                    f"({st.st_size} bytes): the shard was truncated or replaced after indexing")
        data = os.pread(fd, m.size, m.offset)
        if len(data) != m.size:
            raise ReadError(source, "the shard shrank while being read")
        return data


def read_file(path, source=None, limit=MAX_FILE_BYTES):
    """The bytes of a regular file of at most ``limit`` bytes, as the native reader reads them:
    opened non-blocking (a FIFO cannot block the open), anything but a regular file refused from
    fstat before a byte is read (so /dev/zero, /dev/urandom or a FIFO can neither grow memory
    without bound nor hang), and never more than ``limit`` bytes read. Raises ReadError (or
    ImageTooLargeError) naming the file."""
    source = path if source is None else source
    if "\0" in path:
        raise ReadError(source, "path contains a NUL character")
    with open_regular(path, source) as (fd, st):
        if st.st_size > limit:
            raise ImageTooLargeError(source, f"file is {st.st_size} bytes, over the {limit >> 30} GiB limit")
        chunks, got = [], 0
        while got <= limit:  # reads up to limit + 1 bytes: a file that grew past it is refused too
            b = os.read(fd, min(1 << 24, limit + 1 - got))
            if not b:
                break
            chunks.append(b)
            got += len(b)
        if got > limit:
            raise ImageTooLargeError(source, f"file grew past the {limit >> 30} GiB limit while being read")
        return b"".join(chunks)
