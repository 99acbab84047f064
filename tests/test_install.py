"""What an installation is (issue 29): build_info() and --version, the build without an optional
codec (its files go to Pillow, with one warning), and the self-contained wheel.

Two tests check a particular installation and are skipped elsewhere: .ci/run sets
FASTPREP_EXPECT_NATIVE for the source build made with the WebP headers hidden (a fresh machine of
the project's image), and FASTPREP_EXPECT_WHEEL for the wheel installed into a fresh venv with the
compilers, the codec headers and the system's codec libraries hidden.
"""
import ast
import glob
import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastprep as fp
from fastprep import _core

HERE = os.path.dirname(os.path.abspath(__file__))


def test_build_info_names_version_codecs_and_simd():
    b = fp.build_info()
    assert b["version"] == fp.__version__
    assert b["native_formats"][0] == "jpeg" and set(b["native_formats"]) <= {"jpeg", "png", "webp"}
    assert b["codecs"]["jpeg"].startswith(("libjpeg-turbo ", "libjpeg "))
    for fmt in ("png", "webp"):
        assert (b["codecs"][fmt] is not None) == (fmt in b["native_formats"])
    assert "scalar" in b["simd_compiled"] and set(b["simd_available"]) <= set(b["simd_compiled"])
    assert b["simd_default"] in b["simd_available"]
    r = subprocess.run([sys.executable, "-m", "fastprep", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith(f"fastprep {fp.__version__} (native JPEG: ")
    assert b["codecs"]["jpeg"] in r.stdout


def test_every_test_file_has_a_quick_test():
    """The quick tier (pytest -m "not slow") keeps at least one test of every file."""
    for path in sorted(glob.glob(os.path.join(HERE, "test_*.py"))):
        tree = ast.parse(open(path, encoding="utf-8").read())
        module_slow = any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in n.targets)
                          and "slow" in ast.dump(n.value) for n in tree.body)
        def marked_slow(d):  # @pytest.mark.slow itself (a parametrize may mark only some cases slow)
            return isinstance(d, ast.Attribute) and d.attr == "slow"

        quick = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
                 and not any(marked_slow(d) for d in n.decorator_list)]
        assert quick and not module_slow, f"{os.path.basename(path)} has no test in the quick tier"


def _webp(arr):
    from PIL import Image

    b = io.BytesIO()
    Image.fromarray(arr).save(b, "WEBP", quality=90)
    return b.getvalue()


@pytest.mark.skipif(not os.environ.get("FASTPREP_EXPECT_NATIVE"),
                    reason="checks a source build without some codec headers: .ci/run sets FASTPREP_EXPECT_NATIVE")
def test_source_build_without_a_codec_falls_back_to_pillow():
    """Built on a machine without libwebp-dev: the build said so, build_info() says so, and a WebP
    is decoded by Pillow (the pixels Pillow gives) with one warning naming the package."""
    pytest.importorskip("PIL")
    from PIL import Image

    expected = os.environ["FASTPREP_EXPECT_NATIVE"].split(",")
    assert fp.build_info()["native_formats"] == expected
    if "webp" in expected:
        pytest.skip("this build has native WebP")
    rng = np.random.default_rng(0)
    data = _webp(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    t = fp.Compose([], dtype="uint8", layout="HWC")
    with pytest.warns(UserWarning, match="no native WEBP decoder.*libwebp-dev"):
        got = t(data)
    assert np.array_equal(got, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


@pytest.mark.skipif(not os.environ.get("FASTPREP_EXPECT_WHEEL"),
                    reason="checks an installed wheel: .ci/run sets FASTPREP_EXPECT_WHEEL to its venv")
def test_wheel_is_self_contained():
    """The wheel under test is the one installed in that venv, it decodes JPEG, PNG and WebP
    natively, and the codec libraries a process using it maps are the copies bundled in the wheel
    (in a fresh process that imports nothing else that bundles codecs)."""
    venv = os.path.realpath(os.environ["FASTPREP_EXPECT_WHEEL"])
    assert os.path.realpath(fp.__file__).startswith(venv + os.sep), fp.__file__
    assert fp.build_info()["native_formats"] == ["jpeg", "png", "webp"]
    code = textwrap.dedent("""
        import io, json, os, struct, zlib
        import numpy as np
        import fastprep as fp
        from fastprep import _core
        rng = np.random.default_rng(0)
        img = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
        jpeg = bytes(_core.encode_jpeg(img, 90))
        def chunk(t, d):
            return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
        raw = b"".join(b"\\0" + img[y].tobytes() for y in range(16))
        png = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 24, 16, 8, 2, 0, 0, 0))
               + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
        # a lossless WebP with a VP8L header is hard to write by hand: take the one the test passes
        webp = bytes.fromhex(os.environ["WEBP_HEX"])
        status = []
        for data in (jpeg, png, webp):
            b = _core.Batch(fp.Compose([])._plan, _core.Items([data]), [0], [0], [0], 0, 0)
            b.probe(fp.Compose([]).engine(1))
            status.append(int(b.status()[0]))
        print(json.dumps({"status": status, "libraries": fp.build_info()["libraries"],
                          "package": os.path.dirname(os.path.realpath(fp.__file__))}))
    """)
    pytest.importorskip("PIL")  # to write the WebP sample, in this process
    webp = _webp(np.zeros((8, 8, 3), np.uint8))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, WEBP_HEX=webp.hex()), cwd=HERE)
    assert r.returncode == 0, r.stderr
    import json

    out = json.loads(r.stdout)
    ok = int(_core.SampleStatus.ok)
    assert out["status"] == [ok, ok, ok], out
    bundled = os.path.join(os.path.dirname(out["package"]), "fastprep.libs")
    for lib in ("libjpeg", "libpng16", "libwebp"):
        path = out["libraries"].get(lib)
        assert path and os.path.realpath(path).startswith(bundled + os.sep), (lib, path, bundled)
