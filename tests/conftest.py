import glob
import os

# torchvision's tensor warps build their sampling grid with a float32 matrix product (affine_grid's
# bmm), which MKL computes with fused multiply-adds on AVX-512 CPUs and without them elsewhere: the
# same call gives different ties for nearest sampling on different machines (up to 0.4% of pixels
# moved by one source pixel). The references are pinned to MKL's reproducible (unfused) path, the
# float32 arithmetic fastprep's warps reproduce; set before torch is imported anywhere.
os.environ.setdefault("MKL_CBWR", "COMPATIBLE")
import numpy as np
import pytest

import fastprep as fp

HERE = os.path.dirname(__file__)
PHOTOS = sorted(glob.glob(os.path.join(HERE, "data", "photos", "*.jpg")))
SIMD_LEVELS = [s.name for s in fp._core.simd_levels()]  # every level this CPU runs, scalar first
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@pytest.fixture
def tree(tmp_path, photos):
    """The committed photos in a 3-class ImageFolder tree (classes a, b, c)."""
    import shutil

    root = tmp_path / "src"
    for i, p in enumerate(photos):
        cls = "a" if i < 4 else "b" if i < 7 else "c"
        os.makedirs(root / cls, exist_ok=True)
        shutil.copy(p, root / cls / os.path.basename(p))
    return str(root)


@pytest.fixture(scope="session", autouse=True)
def _tar_index_cache(tmp_path_factory):
    """Tar shard indexes go to a per-session folder, not the user's ~/.cache (subprocesses inherit it)."""
    os.environ["FASTPREP_CACHE_DIR"] = str(tmp_path_factory.mktemp("fastprep-cache"))


@pytest.fixture(scope="session")
def photos():
    assert len(PHOTOS) >= 10, "tests/data/photos is missing"
    return PHOTOS


def pil_rgb(path):
    """What torchvision's default loader (datasets.folder.pil_loader) gives: convert("RGB"), no
    EXIF orientation applied."""
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


def tv_resize_size(h, w, size):
    """torchvision's output size for Resize(int): shorter side = size, longer truncated."""
    if w <= h:
        return int(size * h / w), size
    return size, int(size * w / h)


def tv_center_crop_box(h, w, ch, cw):
    return int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))


def pil_eval_reference(path, resize=256, crop=224, resample=None):
    """torchvision v1 eval transform (Resize(resize) + CenterCrop(crop)) on PIL, as uint8 HWC."""
    from PIL import Image

    im = pil_rgb(path)
    w, h = im.size
    nh, nw = tv_resize_size(h, w, resize)
    r = im.resize((nw, nh), Image.BILINEAR if resample is None else resample)
    t, l = tv_center_crop_box(nh, nw, crop, crop)
    return np.asarray(r.crop((l, t, l + crop, t + crop)))


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def native_status(data):
    """The native pass's status for one encoded file (ok, error, or not_jpeg: left to Pillow)."""
    from fastprep import _core

    t = fp.Compose([fp.Resize((4, 4))], dtype="uint8")
    b = _core.Batch(t._plan, _core.Items([data]), [0], [0], [0], 0, 0)
    b.set_output(np.empty((1,) + t.output_shape(), np.uint8), 4, 4)
    b.run(_core.Engine(1))
    return _core.SampleStatus(int(b.status()[0]))


NATIVE_FORMATS = fp.build_info()["native_formats"]


def needs_native(fmt):
    """Skips a test of the native decoder of `fmt` in a build without it (its headers were missing
    when fastprep was built: those files go to Pillow, tests/test_install.py checks that)."""
    return pytest.mark.skipif(fmt not in NATIVE_FORMATS,
                              reason=f"this build has no native {fmt.upper()} decoder (built without its headers)")
