"""The scripts in examples/ run end to end, each in a subprocess with a small configuration, and
print what they promise: a finite loss and a byte-identical resume (train_imagenet), the shards
and normalized batches (preprocess_tar_shards), Ray's results equal to the single-process ones
(ray_preprocess), timm's loop on fastprep.timm.create_loader (train_timm). Each script checks its own invariants with asserts; these tests read its output."""
import glob
import math
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(REPO, "examples")
TIMEOUT = 600  # generous: a hang fails the test, a slow machine does not


def run_example(name, *args, code=None):
    """Runs examples/<name> (or ``code`` with python -c) from a neutral folder; fastprep is found
    through PYTHONPATH too, so a source checkout works (Ray's workers inherit it as well)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable] + (["-c", code] if code else [os.path.join(EXAMPLES, name)]) + [str(a) for a in args]
    r = subprocess.run(cmd, cwd=EXAMPLES, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    return r


def check_ok(r):
    assert r.returncode == 0, f"exit status {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"
    return r.stdout


def test_readme_names_every_example():
    with open(os.path.join(EXAMPLES, "README.md")) as f:
        readme = f.read()
    scripts = sorted(os.path.basename(p) for p in glob.glob(os.path.join(EXAMPLES, "*.py")))
    assert scripts == ["multicrop_dino.py", "preprocess_tar_shards.py", "ray_preprocess.py", "train_imagenet.py",
                       "train_timm.py"]
    for s in scripts:
        assert s in readme, s


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.torchvision
@pytest.mark.parametrize("mix", [False, True], ids=["plain", "mix"])
def test_train_imagenet(tmp_path, mix):
    pytest.importorskip("torch", reason="the training example needs torch: pip install torch torchvision")
    pytest.importorskip("torchvision", reason="the training example needs torchvision: pip install torchvision")
    args = ["--epochs", 2, "--batch-size", 4, "--size", 64, "--workdir", tmp_path] + (["--mix"] if mix else [])
    out = check_ok(run_example("train_imagenet.py", *args))
    losses = [float(x) for x in re.findall(r"^epoch \d+: loss (\S+)", out, re.M)]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses), out
    # 32 training images in batches of 4: a checkpoint after batch 4 of 8, then 3 batches compared
    m = re.search(r"^resume ok: the (\d+) batches after the mid-epoch checkpoint are identical$", out, re.M)
    assert m and int(m.group(1)) == 3, out
    assert (tmp_path / "checkpoint.pt").is_file()
    assert len(list((tmp_path / "tiny-imagefolder" / "train").glob("class_*/*.jpg"))) == 32


@pytest.mark.torch
def test_train_timm():
    """timm's train loop on fastprep.timm.create_loader: RandAugment, RandomErasing, the
    prefetcher, FastCollateMixup, mixup switched off in the second epoch."""
    pytest.importorskip("torch", reason="the timm example needs torch: pip install torch timm")
    pytest.importorskip("timm", reason="the timm example needs timm: pip install timm")
    out = check_ok(run_example("train_timm.py", "--epochs", 2, "--mixup-off-epoch", 1))
    epochs = re.findall(r"^epoch (\d+): loss (\S+), (\d+) batches in \S+ s, mixup (on|off)$", out, re.M)
    assert [(int(e), int(b), m) for e, _, b, m in epochs] == [(0, 4, "on"), (1, 4, "off")], out
    assert all(math.isfinite(float(x)) for _, x, _, _ in epochs), out
    assert "done: 2 epoch(s), 64 images, model resnet10t, 4 classes" in out, out


@pytest.mark.torch
def test_multicrop_dino():
    pytest.importorskip("torch", reason="the DINO example needs torch: pip install torch")
    out = check_ok(run_example("multicrop_dino.py", "--steps", 3, "--local-crops", 3))
    losses = [float(x) for x in re.findall(r"^step \d+: loss (\S+)", out, re.M)]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses), out
    assert re.search(r"^done: 3 steps, \d+ images, .* \(5 views each, one decode per image\)$", out, re.M), out


def test_preprocess_tar_shards(tmp_path):
    shards = tmp_path / "shards"
    args = ["--count", 20, "--shard-size", 8, "--size", 96, "--crop", 64, "--batch-size", 8, "--out", shards]
    out = check_ok(run_example("preprocess_tar_shards.py", *args))
    assert "preprocess: 20 images in 3 shards (20 written, 0 failed)" in out, out
    assert sorted(p.name for p in shards.glob("*.tar")) == [f"shard-{k:06d}.tar" for k in range(3)]
    assert re.search(r"^stats over 20 images: fp\.Normalize\(mean=\[", out, re.M), out
    batches = re.findall(r"^batch \d+: images \((\d+), 3, 64, 64\) \S*float32, labels \(\d+,\), "
                         r"mean (\S+) std (\S+)$", out, re.M)
    assert [int(n) for n, _, _ in batches] == [8, 8, 4], out
    # normalized with the data's own mean/std: centred near 0, spread near 1
    assert all(abs(float(m)) < 0.5 and 0.5 < float(s) < 2.0 for _, m, s in batches), out
    assert "epoch done: 20 images in 3 batches" in out
    # a rerun into the same folder resumes: nothing is written again
    out = check_ok(run_example("preprocess_tar_shards.py", *args))
    assert "preprocess: 20 images in 3 shards (0 written, 0 failed)" in out, out


@pytest.mark.slow
def test_ray_preprocess(tmp_path):
    pytest.importorskip("ray", reason="the Ray example needs Ray: pip install 'fastprep[ray]'")
    npy = tmp_path / "npy"
    args = ["--count", 20, "--shard-size", 8, "--chunk-size", 8, "--size", 64, "--batch-size", 8, "--out", npy]
    out = check_ok(run_example("ray_preprocess.py", *args))
    assert "ray preprocess: 20 images in 3 npy shards, samples (3, 64, 64) uint8, 0 failed" in out, out
    assert "(identical to compute_stats)" in out, out
    assert len(list(npy.glob("images_*.npy"))) == 3 and (npy / "index.json").is_file()
    assert "read back 20 samples in 3 batches" in out, out


def test_ray_preprocess_without_ray_says_how_to_install(tmp_path):
    # As if Ray were not installed: `import ray` raises ImportError.
    script = os.path.join(EXAMPLES, "ray_preprocess.py")
    code = ("import runpy, sys; sys.modules['ray'] = None; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    r = run_example(None, script, "--out", tmp_path / "npy", code=code)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "pip install 'fastprep[ray]'" in r.stderr
    assert not (tmp_path / "npy").exists()
