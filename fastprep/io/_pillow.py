"""The Pillow fallback: formats without a native decoder (BMP, GIF, TIFF, animated WebP, and PNG
or WebP in a build without their libraries), decoded by Pillow when it is installed (an optional
dependency), as torchvision's default loader decodes them."""
import io
import threading
import warnings

import numpy as np

from .._errors import DecodeError, ImageTooLargeError, MissingDependencyError, UnsupportedImageError
from ._files import read_file, read_member
from ._tar import TarMember

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


_PIL_LOCK = threading.Lock()
_PIL = []  # [(Image, ImageOps)] once Pillow is imported and initialised; [] before


def _native_formats():
    from .. import _core

    codecs = _core.build_info()["codecs"]
    return frozenset(f.upper() for f in ("png", "webp") if codecs.get(f))


_NATIVE = _native_formats()  # the optional formats this build decodes natively (fixed at build time)
_NOT_BUILT = {"PNG": "libpng-dev and zlib1g-dev", "WEBP": "libwebp-dev"}


def _pil():
    """(PIL.Image, PIL.ImageOps), or (None, None) without Pillow. Imported, and its format
    plugins registered (``Image.init()``), once, under a lock: Pillow's lazy plugin registry
    (``preinit``/``init`` on the first ``open``) is module state that several decoding threads
    would otherwise fill at the same time. After the first call this is a list lookup."""
    if _PIL:
        return _PIL[0]
    with _PIL_LOCK:
        if not _PIL:
            try:
                from PIL import Image, ImageOps
            except ImportError:
                return None, None
            Image.init()
            _PIL.append((Image, ImageOps))
    return _PIL[0]


def pillow_available():
    return _pil()[0] is not None


def pillow_image(arr):
    """An HxWx3 (or HxW) uint8 array as a PIL image ("RGB" or "L"), for transforms that take PIL."""
    Image = _pil()[0]
    if Image is None:
        raise MissingDependencyError("this transform takes PIL images: pip install pillow")
    arr = np.ascontiguousarray(arr)
    return Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)


def decode(item, source, max_pixels, apply_exif_orientation=False):
    """Decodes an item without a native decoder (path str or bytes-like) to an HxWx3 uint8 array,
    as torchvision's default loader does (``Image.open(f).convert("RGB")``: alpha dropped, EXIF
    orientation not applied); ``apply_exif_orientation`` turns it as ``ImageOps.exif_transpose``."""
    return decode_oriented(item, source, max_pixels, apply_exif_orientation)[0]


def decode_oriented(item, source, max_pixels, apply_exif_orientation=False):
    """As :func:`decode`, and the EXIF orientation applied (1: none)."""
    if isinstance(item, str):
        data = read_file(item, source)
    elif isinstance(item, TarMember):
        data = read_member(item, source)
    elif isinstance(item, bytes):
        data = item
    else:
        data = bytes(memoryview(item).cast("B"))
    if len(data) == 0:
        raise DecodeError(source, "empty file (0 bytes)" if isinstance(item, str) else "empty data (0 bytes)")
    fmt = sniff(data)
    if fmt in _NOT_BUILT and fmt not in _NATIVE:
        # Once per process and place (the warnings module's default filter).
        warnings.warn(f"this build of fastprep has no native {fmt} decoder (its headers were missing when it was "
                      f"built): {fmt} files are decoded by Pillow, several times slower; install {_NOT_BUILT[fmt]} "
                      "(Debian/Ubuntu) and reinstall fastprep, or install the binary wheel, which bundles it "
                      "(fastprep.build_info() lists the native formats)", UserWarning, stacklevel=2)
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
            orientation = 1
            if apply_exif_orientation:
                orientation = int(im.getexif().get(0x0112, 1) or 1)
                orientation = orientation if 1 <= orientation <= 8 else 1
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
    return np.ascontiguousarray(arr), orientation
