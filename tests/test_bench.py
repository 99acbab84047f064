"""`fastprep bench` end to end, in subprocesses: it never hangs, names the files it cannot read,
reports both fastprep modes. No timing assertions: every run uses --repeat 1 on a few photos,
and each subprocess has a timeout so that a hang fails the test instead of the suite."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import fastprep as fp
from conftest import PHOTOS

TIMEOUT = 300  # generous: a hang fails the test, a slow machine does not


def _run(args, cwd, timeout=TIMEOUT, code=None):
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "fastprep", "bench"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(cmd + list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def _has(mod):
    try:
        return importlib.util.find_spec(mod) is not None
    except (ImportError, ValueError):
        return False


@pytest.fixture
def folder(tmp_path):
    """3 good photos, one corrupt .jpg (a JPEG header then garbage) and one empty .jpg."""
    root = tmp_path / "imgs"
    root.mkdir()
    for p in PHOTOS[:3]:
        shutil.copy(p, root / os.path.basename(p))
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"garbage!" * 8)
    (root / "empty.jpg").write_bytes(b"")
    return root


def _names(rep):
    return sorted(os.path.basename(x["file"]) for x in rep["excluded"])


def test_ceiling_skips_and_names_bad_files(folder, tmp_path):
    out = tmp_path / "r.json"
    r = _run([str(folder), "--vs", "ceiling", "--repeat", "1", "--json", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "corrupt.jpg" in r.stderr and "empty.jpg" in r.stderr
    rep = json.loads(out.read_text())
    assert rep["files"] == 3 and rep["files_found"] == 5
    assert _names(rep) == ["corrupt.jpg", "empty.jpg"]
    rows = {(x["pipeline"], x["threads"]) for x in rep["results"]}
    assert rows == {("fastprep-exact", 1), ("fastprep-fast", 1), ("ceiling", 1)}
    assert rep["failed"] == [] and rep["speedup_reference"] == "fastprep-exact"
    exact = next(x for x in rep["results"] if x["pipeline"] == "fastprep-exact")
    assert exact["fastprep_speedup"] == 1.0 and exact["mode"] == "exact"
    assert "fastprep exact" in r.stdout and "fastprep fast" in r.stdout and "2 undecodable left out" in r.stdout


def test_modes_narrow(folder, tmp_path):
    out = tmp_path / "r.json"
    r = _run([str(folder), "--vs", "", "--modes", "fast", "--repeat", "1", "--limit", "3", "--json", str(out)],
             tmp_path)
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert [x["pipeline"] for x in rep["results"]] == ["fastprep-fast"] and rep["excluded"] == []


def test_on_error_raise_names_the_file(folder, tmp_path):
    r = _run([str(folder), "--vs", "ceiling", "--repeat", "1", "--on-error", "raise"], tmp_path)
    assert r.returncode != 0
    assert "cannot decode" in r.stderr and "corrupt.jpg" in r.stderr
    assert "Traceback" not in r.stderr


def test_no_decodable_file_is_an_error(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 40)
    (root / "b.jpg").write_bytes(b"")
    r = _run([str(root), "--vs", "ceiling", "--repeat", "1"], tmp_path)
    assert r.returncode != 0
    assert "a.jpg" in r.stderr and "b.jpg" in r.stderr and "nothing to time" in r.stderr
    assert "Traceback" not in r.stderr


def test_help_lists_defaults(tmp_path):
    r = subprocess.run([sys.executable, "-m", "fastprep", "bench", "--help"], capture_output=True, text=True,
                       timeout=TIMEOUT, env=dict(os.environ, COLUMNS="200"))
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for opt in ("--transform", "--threads", "--vs", "--modes", "--exact", "--size", "--limit", "--repeat",
                "--on-error", "--timeout", "--quiet", "--json", "--plot"):
        assert opt in text
    assert text.count("(default:") >= 14
    for d in ("(default: eval)", "(default: 1)", "(default: exact,fast)", "(default: 224)", "(default: 5)",
              "(default: skip)", "(default: ceiling,torchvision,pil,dali)"):
        assert d in text, d


@pytest.mark.slow
@pytest.mark.torchvision
@pytest.mark.skipif(not (_has("torch") and _has("torchvision")), reason="torchvision is not installed")
def test_torchvision_1_and_2_threads_skip_bad_files(folder, tmp_path):
    out = tmp_path / "r.json"
    r = _run([str(folder), "--vs", "torchvision", "--threads", "1,2", "--repeat", "1", "--json", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "corrupt.jpg" in r.stderr and "empty.jpg" in r.stderr
    rep = json.loads(out.read_text())
    assert _names(rep) == ["corrupt.jpg", "empty.jpg"] and rep["failed"] == []
    rows = {(x["pipeline"], x["threads"]) for x in rep["results"]}
    assert {("torchvision", 1), ("torchvision", 2), ("fastprep-exact", 2), ("fastprep-fast", 2)} <= rows


@pytest.mark.torchvision
@pytest.mark.skipif(not (_has("torch") and _has("torchvision") and _has("PIL")),
                    reason="torchvision or Pillow is not installed")
@pytest.mark.slow
def test_peer_failing_while_timed_is_reported_not_hung(folder, tmp_path):
    """A PNG named .jpg: fastprep decodes it (through Pillow), torchvision's decode_jpeg cannot.
    The pre-pass is told torchvision reads it, so the DataLoader peer (2 workers) meets it while
    timed: it must be reported as FAILED naming the file, and fastprep still reports."""
    from PIL import Image

    os.remove(folder / "empty.jpg")
    os.remove(folder / "corrupt.jpg")
    Image.new("RGB", (300, 260), (200, 30, 60)).save(folder / "png.jpg", format="PNG")
    out = tmp_path / "r.json"
    code = textwrap.dedent("""
        import sys
        from fastprep import cli
        from fastprep.bench import _run as _bench
        _bench._PEER_DECODE["torchvision"] = lambda: (lambda d: None)
        sys.exit(cli.main(["bench"] + sys.argv[1:]))
    """)
    r = _run([str(folder), "--vs", "torchvision", "--threads", "2", "--repeat", "1", "--json", str(out)],
             tmp_path, code=code)
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert rep["excluded"] == [] and rep["files"] == 4
    failed = [f for f in rep["failed"] if f["pipeline"] == "torchvision"]
    assert failed and "png.jpg" in failed[0]["error"], (r.stdout, r.stderr)
    assert "FAILED" in r.stdout and "png.jpg" in r.stdout
    assert {x["pipeline"] for x in rep["results"]} == {"fastprep-exact", "fastprep-fast"}


@pytest.mark.torchvision
@pytest.mark.skipif(not (_has("torch") and _has("torchvision") and _has("PIL")),
                    reason="torchvision or Pillow is not installed")
@pytest.mark.slow
def test_file_only_a_peer_cannot_read_is_left_out(folder, tmp_path):
    from PIL import Image

    Image.new("RGB", (300, 260), (200, 30, 60)).save(folder / "png.jpg", format="PNG")
    out = tmp_path / "r.json"
    r = _run([str(folder), "--vs", "torchvision", "--repeat", "1", "--json", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert _names(rep) == ["corrupt.jpg", "empty.jpg", "png.jpg"] and rep["files"] == 3
    png = next(x for x in rep["excluded"] if x["file"].endswith("png.jpg"))
    assert list(png["reasons"]) == ["torchvision"]


def test_missing_peer_names_the_command(monkeypatch):
    from fastprep.bench import _run as _bench

    monkeypatch.setitem(_bench.NEEDS, "pil", (("torch", "torch"), ("no_such_module_fp", "Pillow")))
    missing = _bench.missing_modules("pil")
    assert [m for m, _, _ in missing] == ["no_such_module_fp"] or not _has("torch")
    hint = _bench.install_hint("pil", missing)
    assert hint.endswith("pip install Pillow") or not _has("torch")
    assert "not installed" in hint


def test_train_jitter_recipe_is_the_same_on_both_sides():
    """--transform train-jitter: fastprep and torchvision run train + ColorJitter(0.4, 0.4, 0.4, 0.1)."""
    import fastprep as fp
    from fastprep.bench import _run as _bench

    ops = _bench._compose("train-jitter", 32, True).transforms
    assert [type(o).__name__ for o in ops] == ["RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter", "ToTensor",
                                               "Normalize"]
    assert ops[2] == fp.ColorJitter(*_bench.JITTER)
    assert not any(type(o).__name__ == "ColorJitter" for o in _bench._compose("train", 32, True).transforms)


@pytest.mark.slow
@pytest.mark.parametrize("fmt, ceiling", [("png", "libpng decode (ceiling)"), ("webp", "libwebp decode (ceiling)")])
def test_png_and_webp_formats(folder, tmp_path, fmt, ceiling):
    """--format png/webp re-encodes the photos in memory: fastprep decodes them natively, the
    ceiling is the format's own library, DALI is skipped, bad files are still named."""
    pytest.importorskip("PIL", reason="--format png/webp re-encodes with Pillow: pip install Pillow")
    out = tmp_path / "r.json"
    vs = "ceiling,torchvision,dali" if _has("torchvision") else "ceiling,dali"
    r = _run([str(folder), "--format", fmt, "--vs", vs, "--modes", "exact", "--repeat", "1", "--json", str(out)],
             tmp_path)
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert rep["format"] == fmt and rep["files"] == 3 and _names(rep) == ["corrupt.jpg", "empty.jpg"]
    rows = {x["pipeline"] for x in rep["results"]}
    assert "fastprep-exact" in rows and rep["failed"] == []
    assert "dali" in rep["skipped"] and fmt in rep["skipped"]["dali"]
    if fmt in fp.build_info()["native_formats"]:
        assert "ceiling" in rows and ceiling in r.stdout
    else:  # a build without that codec: no ceiling to time, said so
        assert "no native" in rep["skipped"]["ceiling"]
    assert f"3 files as {fmt.upper()}" in r.stdout
    if _has("torchvision"):
        assert "torchvision" in rows and "decode_image" in r.stdout
