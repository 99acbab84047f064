"""atheris harness for the Python entry point: Compose(...).batch([data], on_error="raise") may
only ever raise fastprep.DecodeError (or a subclass); anything else, a crash or a hang is a
finding.

    pip install atheris
    python fuzz/make_seeds.py build/fuzz/seeds
    python fuzz/fuzz_decode.py -max_total_time=60 -rss_limit_mb=2048 -timeout=10 build/fuzz/corpus build/fuzz/seeds

Coverage: atheris instruments Python bytecode only. With the regular (gcc) build of fastprep._core
it sees the Python layer (_transforms, the Pillow fallback) and none of the native decoder, so it
is a blind random search there; real native coverage needs the extension built with clang and
-fsanitize=fuzzer-no-link. The CI therefore runs the native libFuzzer harness (fuzz_decode.cc);
this one exercises the Python glue and the Pillow fallback (non-JPEG magic bytes).
"""
import sys

import atheris

with atheris.instrument_imports():
    import numpy as np

    import fastprep as fp

MAX_PIXELS = 20_000_000
PLANS = [
    fp.Compose([fp.Resize(64), fp.CenterCrop(64)], exact=True, dtype="uint8", layout="HWC", max_pixels=MAX_PIXELS),
    fp.Compose([fp.Resize(24), fp.CenterCrop(20), fp.ToTensor(), fp.Normalize("imagenet")], max_pixels=MAX_PIXELS),
    fp.Compose([fp.RandomResizedCrop(48), fp.RandomHorizontalFlip()], dtype="uint8", max_pixels=MAX_PIXELS,
               allow_truncated=True),
    fp.Compose([fp.Resize((37, 91), interpolation="nearest"), fp.Grayscale()], strict=False, max_pixels=MAX_PIXELS),
    fp.Compose([], exact=True, max_pixels=MAX_PIXELS),
]


def test_one_input(data):
    if not data:
        return
    plan = PLANS[data[-1] % len(PLANS)]
    try:
        out = plan.batch([data], on_error="raise", seed=data[-1], threads=1)
    except fp.DecodeError as e:
        assert e.reason, e
        return
    assert out.shape[0] == 1 and np.isfinite(out.astype(np.float32)).all()


def main():
    import warnings

    warnings.simplefilter("ignore")  # allow_truncated and Pillow warn on hostile files, by design
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
