"""What this installation is: its version, native codecs and SIMD levels (a leaf over _core)."""
import os

from . import _core

__version__ = "0.2.0.dev0"


def simd_info():
    """{"cpu": best level of this CPU, "default": level used (FASTPREP_SIMD caps it)}."""
    return {"cpu": _core.cpu_simd().name, "default": _core.default_simd().name}


def build_info():
    """What this installation is: ``version``; ``native_formats`` (the formats decoded natively,
    the others going to Pillow); ``codecs`` (the library and version behind each native decoder,
    None for a format this build has no decoder for); ``simd_compiled`` and ``simd_available``
    (the levels built in, and those this CPU runs), ``simd_default`` (FASTPREP_SIMD caps it);
    ``libraries`` (the file each codec library the native module uses was loaded from: the
    wheel's bundled copies, the system's, or a same-named copy another package loaded first) and
    ``runtime_versions`` (the versions those libraries report, where they can)."""
    info = dict(_core.build_info())
    codecs = info["codecs"]
    info["version"] = __version__
    info["native_formats"] = ["jpeg"] + [f for f in ("png", "webp") if codecs.get(f)]
    info["simd_available"] = [s.name for s in _core.simd_levels()]
    try:
        info["simd_default"] = _core.default_simd().name
    except ValueError as e:  # a bad FASTPREP_SIMD: say so here rather than fail
        info["simd_default"] = f"error: {e}"
    module = _native_module()
    info["libraries"] = _loaded_codec_libraries(module)
    info["runtime_versions"] = _runtime_codec_versions(module)
    return info


def _native_module():
    """ctypes' handle of the native module (its symbols resolve as the module's own), or None."""
    import ctypes

    try:
        return ctypes.CDLL(_core.__file__)
    except OSError:
        return None


# The symbol each codec library is found by, and how to ask it its version at run time.
_CODEC_SYMBOLS = {"libjpeg": "jpeg_CreateDecompress", "libpng16": "png_create_read_struct",
                  "libwebp": "WebPDecode", "libz": "inflate"}


def _loaded_codec_libraries(module):
    """{name: path} of the codec libraries this build's native module uses (Linux, macOS): the
    file each one's symbol resolves to from the module itself (dladdr). That is not always the
    file the build linked: the dynamic loader gives a library whose soname is already loaded (say
    torchvision's bundled libpng16.so.16, imported first) to every later module that needs that
    soname; the wheel's bundled copies have soname of their own and are never shared."""
    import ctypes

    class _DlInfo(ctypes.Structure):
        _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                    ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]

    found = {}
    if module is None:
        return found
    try:
        dladdr = ctypes.CDLL(None).dladdr
        dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    except (OSError, AttributeError):
        return found
    for name, symbol in _CODEC_SYMBOLS.items():
        try:
            addr = ctypes.cast(getattr(module, symbol), ctypes.c_void_p).value
        except AttributeError:  # a codec this build has no decoder for
            continue
        info = _DlInfo()
        if addr and dladdr(addr, ctypes.byref(info)) and info.dli_fname:
            found[name] = os.path.realpath(os.fsdecode(info.dli_fname))
    return found


def _runtime_codec_versions(module):
    """The versions the loaded libpng, libwebp and zlib report (``codecs`` holds the headers' at
    build time; the two differ when another package's copy was loaded first). libjpeg-turbo has
    no run-time version call."""
    import ctypes

    out = {}
    if module is None:
        return out
    try:
        v = int(ctypes.CFUNCTYPE(ctypes.c_uint32)(("png_access_version_number", module))())
        out["libpng16"] = f"{v // 10000}.{v // 100 % 100}.{v % 100}"
    except AttributeError:
        pass
    try:
        v = int(ctypes.CFUNCTYPE(ctypes.c_int)(("WebPGetDecoderVersion", module))())
        out["libwebp"] = f"{v >> 16}.{(v >> 8) & 0xFF}.{v & 0xFF}"
    except AttributeError:
        pass
    try:
        out["libz"] = ctypes.CFUNCTYPE(ctypes.c_char_p)(("zlibVersion", module))().decode()
    except AttributeError:
        pass
    return out
