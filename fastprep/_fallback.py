"""Non-JPEG formats, decoded by Pillow when it is installed (an optional dependency)."""
import io
import os

import numpy as np

from ._errors import DecodeError, ImageTooLargeError, MissingDependencyError, UnsupportedImageError

_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
]


def sniff(head):
    """Format name from the first bytes ("JPEG", "PNG", "WEBP", ...), or None."""
    head = bytes(head[:16])
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def _pil():
    try:
        from PIL import Image, ImageOps
    except ImportError:
        return None, None
    return Image, ImageOps


def pillow_available():
    return _pil()[0] is not None


def decode(item, source, max_pixels):
    """Decodes a non-JPEG item (path str or bytes-like) to an HxWx3 uint8 array, displayed
    orientation (EXIF applied), alpha dropped as torchvision's default loader does."""
    if isinstance(item, str):
        try:
            with open(item, "rb") as f:
                data = f.read()
        except OSError as e:
            raise DecodeError(source, f"cannot read: {e.strerror or e}") from None
    else:
        data = bytes(memoryview(item).cast("B"))
    fmt = sniff(data)
    Image, ImageOps = _pil()
    if Image is None:
        if fmt is None:
            raise DecodeError(source, "not a JPEG and not a recognized image format")
        raise UnsupportedImageError(
            source, f"{fmt} image needs Pillow to decode: pip install 'fastprep[pil]' (or pip install Pillow)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if max_pixels and w * h > max_pixels:
                raise ImageTooLargeError(source, f"image is {w}x{h} = {w * h} pixels, over the limit of {max_pixels} (max_pixels)")
            im = ImageOps.exif_transpose(im)
            arr = np.asarray(im.convert("RGB"))
    except DecodeError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(source, str(e)) from None
    except Image.UnidentifiedImageError:  # Pillow's message names a BytesIO object, not the file
        what = f"{fmt} signature but unreadable header" if fmt else "not a JPEG and no format Pillow can read"
        raise DecodeError(source, what) from None
    except Exception as e:  # Pillow raises many types (OSError, SyntaxError, ValueError, ...)
        what = fmt or "unrecognized data"
        raise DecodeError(source, f"{what}: {e}") from None
    return np.ascontiguousarray(arr)


def require(module, extra, pip_name=None):
    """Imports an optional dependency or raises MissingDependencyError with the pip command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"{module} is required for this feature: pip install 'fastprep[{extra}]' "
            f"(or pip install {pip_name or module})") from None


def display_name(item, index):
    if isinstance(item, str):
        return item
    if isinstance(item, os.PathLike):
        return os.fspath(item)
    return f"<item {index}>"
