"""Typed exceptions. Every decode failure names its source and the decoder's reason."""


class _SampleFailure(Exception):
    """What a failure of one sample carries: ``source`` (the file, or the item index for
    in-memory data), ``reason`` and ``index``; the message reads "source (sample i): reason"."""

    def __init__(self, source, reason, index=None):
        self.source = source
        self.reason = reason
        self.index = index
        where = f" (sample {index})" if index is not None else ""
        super().__init__(f"{source}{where}: {reason}")

    def __reduce__(self):  # picklable across processes (Ray, multiprocessing)
        return (type(self), (self.source, self.reason, self.index))


class DecodeError(_SampleFailure, ValueError):
    """An image could not be decoded. ``source`` names the file (or the item index for in-memory
    data), ``reason`` is the decoder's message and ``index`` the position in the batch."""


class UnsupportedImageError(DecodeError):
    """A valid image this build cannot decode (12-bit or lossless JPEG, a format without Pillow)."""


class ImageTooLargeError(DecodeError):
    """The image's dimensions exceed ``max_pixels`` (decompression-bomb guard)."""


class ImageTooSmallError(DecodeError):
    """The image is smaller than a transform needs (a RandomCrop larger than the padded image, as
    torchvision refuses), or a crop window lies in the padding only."""


class ReadError(DecodeError):
    """The file could not be read."""


class AllSamplesFailedError(DecodeError):
    """Every sample of a Loader's epoch failed under ``on_error="skip"``: raised at the end of the
    epoch instead of ending it empty. ``source`` names the epoch."""


class TransformError(_SampleFailure, RuntimeError):
    """A transform run in Python (the remainder of a HybridCompose) raised on a sample.
    ``source`` names the file (or the item index), ``reason`` says which transform and what it
    raised, ``index`` is the sample's index."""


class MissingDependencyError(ImportError):
    """An optional dependency is needed; the message gives the pip command."""


def _kinds():
    from . import _core  # the native enum is the one definition of the codes (csrc/core/common.h)

    K = _core.ErrorKind
    return {K.decode: DecodeError, K.unsupported: UnsupportedImageError, K.too_large: ImageTooLargeError,
            K.io: ReadError, K.invalid: DecodeError, K.too_small: ImageTooSmallError}


def error_for_kind(kind, source, reason, index=None):
    """The exception for a native ``_core.ErrorKind`` (or its integer value)."""
    if isinstance(kind, int):
        from . import _core

        kind = _core.ErrorKind(kind)
    return _kinds().get(kind, DecodeError)(source, reason, index)
