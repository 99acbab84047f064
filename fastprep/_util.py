"""Small helpers shared by the package: the default thread count, the eval resize convention and
the one progress bar. Imports no other fastprep module (any module can import it)."""
import os
import sys
import time


def default_threads():
    """The cores this process may run on (its CPU affinity), else os.cpu_count(), else 1."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cache_root():
    """fastprep's cache folder (the tar indexes, the built-in sample set): $FASTPREP_CACHE_DIR,
    else $XDG_CACHE_HOME/fastprep, else ~/.cache/fastprep. ($FASTPREP_CACHE, the sample set's
    earlier name for it, is still honoured.)"""
    base = os.environ.get("FASTPREP_CACHE_DIR") or os.environ.get("FASTPREP_CACHE")
    if not base:
        base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                            "fastprep")
    return base


def eval_resize(size):
    """The resize before CenterCrop(size) in the 256/224 (crop fraction 0.875) eval convention:
    224 -> 256."""
    return int(size / 0.875)


def _isatty(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def _hms(s):
    s = int(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


def _rate(r):
    return f"{r:,.0f}" if r >= 10 or r == 0 else f"{r:.2g}"


class Progress:
    """A one-line progress bar with rate and ETA, on stderr by default.

    ``enabled``: None shows it only when the stream is a terminal. On a terminal (or when
    ``log_every`` is None) the bar is redrawn in place at most every 0.1 s; otherwise, when
    ``log_every`` is a number of seconds, a plain line is printed that often, so that a log shows
    the run is alive. ``stage(text, total)`` prints a line and starts a new bar, ``write(line)``
    prints a line without garbling the bar, ``update(n, desc)`` advances it (and renames it), and
    ``close()`` leaves the finished bar on its own line.
    """

    _BAR = 24
    _REDRAW = 0.1

    def __init__(self, total=None, desc="", unit="img", stream=None, enabled=None, initial=0, log_every=None):
        self.stream = stream or sys.stderr
        tty = _isatty(self.stream)
        self.enabled = tty if enabled is None else bool(enabled)
        self.redraw = tty or log_every is None
        self.log_every = log_every
        self._width = 0
        self._drawn = False  # a bar is on the current line
        self._start(total, desc, unit, initial)
        if self.enabled and self.redraw and self.total is not None:
            self._draw()

    def _start(self, total, desc, unit, initial=0):
        self.total = None if total is None else int(total)
        self.desc, self.unit = desc, unit
        self.n = self.initial = int(initial)
        self.t0 = self._last = time.perf_counter()

    def stage(self, text, total, unit=None):
        """Prints ``text`` on a line of its own, then starts a new bar of ``total`` steps."""
        self.close()
        self.write(text)
        self._start(total, "", unit or self.unit)

    def write(self, line):
        if self.enabled:
            self._clear()
            self.stream.write(line + "\n")
            self.stream.flush()

    def update(self, n=1, desc=None):
        self.n += int(n)
        if desc is not None:
            self.desc = desc
        if not self.enabled or self.total is None:
            return
        now = time.perf_counter()
        if self.redraw:
            if now - self._last >= self._REDRAW or self.n >= self.total:
                self._draw(now)
        elif now - self._last >= self.log_every and self.n < self.total:
            self._last = now
            self.stream.write(self._line(now) + "\n")
            self.stream.flush()

    def _line(self, now):
        el = now - self.t0
        done = self.n - self.initial
        rate = done / el if el > 0 and done > 0 else 0.0
        frac = self.n / self.total if self.total else 1.0
        eta = (self.total - self.n) / rate if rate > 0 else None
        full = int(round(self._BAR * min(frac, 1.0)))
        desc = f"{self.desc} " if self.desc else ""
        return (f"{desc}{frac * 100:5.1f}% |{'#' * full}{'.' * (self._BAR - full)}| {self.n}/{self.total} "
                f"[{_hms(el)}<{_hms(eta) if eta is not None else '?'}, {_rate(rate)} {self.unit}/s]")

    def _draw(self, now=None):
        now = now or time.perf_counter()
        self._last = now
        line = self._line(now)
        pad = max(0, self._width - len(line))
        self._width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self._drawn = True

    def _clear(self):
        if self._drawn:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._drawn = False
            self._width = 0

    def close(self):
        """Draws the bar a last time and ends its line (a no-op when nothing is drawn)."""
        if self.enabled and self._drawn:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
            self._width = 0

    @property
    def elapsed(self):
        return time.perf_counter() - self.t0
