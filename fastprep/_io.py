"""Opening input files the way the native reader does (csrc/pipeline.cpp read_file)."""
import contextlib
import os
import stat

from ._errors import ReadError

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
