"""What this installation is: its version, native codecs and SIMD levels (a leaf over _core)."""
import re

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
    ``libraries`` (on Linux, the file each codec library was loaded from: the wheel's bundled
    copies, or the system's)."""
    info = dict(_core.build_info())
    codecs = info["codecs"]
    info["version"] = __version__
    info["native_formats"] = ["jpeg"] + [f for f in ("png", "webp") if codecs.get(f)]
    info["simd_available"] = [s.name for s in _core.simd_levels()]
    try:
        info["simd_default"] = _core.default_simd().name
    except ValueError as e:  # a bad FASTPREP_SIMD: say so here rather than fail
        info["simd_default"] = f"error: {e}"
    info["libraries"] = _loaded_codec_libraries()
    return info


def _loaded_codec_libraries():
    """{name: path} of the codec libraries mapped into this process (Linux /proc/self/maps)."""
    found = {}
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split(None, 5)[-1].strip() if line.count(" ") >= 5 else ""
                m = re.search(r"/(libjpeg|libpng16|libwebp|libz)[-.][^/]*$", path)
                if m and m.group(1) not in found:
                    found[m.group(1)] = path
    except OSError:
        pass
    return found
