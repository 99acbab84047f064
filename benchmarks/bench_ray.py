"""fastprep's Ray Data UDF against Compose.batch directly, on the same cores, interleaved in rounds.

Both take every photo of FOLDER (listed --repeat times, so that a run lasts long enough to
show the steady state) through the eval recipe (Resize 256 + CenterCrop 224 + ToTensor +
Normalize, float32 CHW) in batches of --batch-size on --threads native threads:
  direct  Compose.batch(paths) (the native pool reads the files), outputs dropped;
  ray     read_binary_files -> map_batches(fastprep.ray.Transform, one actor of num_cpus=1 with
          --threads threads, so that a CPU slot is left for the read tasks) -> iter_batches on
          the driver (the batches cross the object store, as a training loop would get them).
Each round runs both (the order reversed every other round); a Ray run builds its dataset anew,
so it includes starting its actor. Printed: img/s of each, the median of per-round ray/direct
ratios, ray.init's time, and the rate of the UDF's own calls inside the actor (the rest of a Ray
run is Ray's: reading the files, moving blocks through the object store, the driver's batches).

    python benchmarks/bench_ray.py corpus/imagenet_like [--repeat 5] [--rounds 5] [--dtype uint8]
"""
import argparse
import glob
import os
import statistics
import time

import numpy as np

import fastprep as fp
import fastprep.ray as fpr


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--repeat", type=int, default=5, help="times each file is listed (default 5)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--cpus", type=int, default=2, help="ray.init(num_cpus=...) (default 2)")
    ap.add_argument("--dtype", choices=("float32", "uint8"), default="float32",
                    help="float32: ToTensor + Normalize (default); uint8: the levels, CHW")
    a = ap.parse_args()
    paths = sorted(glob.glob(os.path.join(a.folder, "*.jpg"))) * a.repeat
    n = len(paths)
    ops = [fp.Resize(256), fp.CenterCrop(224)]
    if a.dtype == "float32":
        ops += [fp.ToTensor(), fp.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    t = fp.Compose(ops, dtype=a.dtype, layout="CHW")

    import ray
    import ray.data

    t0 = time.perf_counter()
    ray.init(num_cpus=a.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
             logging_level="ERROR")
    init_s = time.perf_counter() - t0
    ray.data.DataContext.get_current().enable_progress_bars = False

    def direct():
        for i in range(0, n, a.batch_size):
            t.batch(paths[i:i + a.batch_size], threads=a.threads)
        return n

    udf_secs = []

    def on_ray():
        ds = ray.data.read_binary_files(paths, include_paths=True)
        ds = ds.map_batches(_Timed, fn_constructor_args=(t,), fn_constructor_kwargs={"threads": a.threads},
                            batch_size=a.batch_size, num_cpus=1, compute=ray.data.ActorPoolStrategy(size=1),
                            batch_format="numpy")
        got, secs = 0, 0.0
        for b in ds.iter_batches(batch_size=a.batch_size, batch_format="numpy"):
            got += len(b["image"])
            secs += float(b["udf_s"].sum())
        udf_secs.append(secs)
        return got

    ways = {"direct": direct, "ray": on_ray}
    for f in ways.values():  # warm-up (the page cache, Ray's workers)
        f()
    rates = {k: [] for k in ways}
    ratios = []
    for r in range(a.rounds):
        secs = {}
        for k, f in (list(ways.items()) if r % 2 == 0 else list(ways.items())[::-1]):
            s = time.perf_counter()
            got = f()
            secs[k] = time.perf_counter() - s
            assert got == n, (k, got, n)
            rates[k].append(n / secs[k])
        ratios.append(secs["direct"] / secs["ray"])
        print(f"round {r}: direct {rates['direct'][-1]:.0f} img/s, ray {rates['ray'][-1]:.0f} img/s, "
              f"ratio {ratios[-1]:.3f}", flush=True)
    ray.shutdown()
    print(f"{n} images per run ({len(paths) // a.repeat} files x {a.repeat}), {a.threads} threads, "
          f"batch {a.batch_size}, {a.rounds} rounds, ray.init {init_s:.1f} s")
    print("| way | img/s (median) |\n|---|---:|")
    for k in ways:
        print(f"| {k} | {statistics.median(rates[k]):.0f} |")
    print(f"ray / direct: {statistics.median(ratios):.3f} (median of per-round ratios)")
    print(f"the UDF's calls inside the actor: {n / statistics.median(udf_secs[1:]):.0f} img/s")


class _Timed(fpr.Transform):
    """fastprep.ray.Transform plus a column with each row's share of its __call__'s time."""

    def __call__(self, batch):
        s = time.perf_counter()
        out = super().__call__(batch)
        out["udf_s"] = np.full(len(out["image"]), (time.perf_counter() - s) / max(1, len(out["image"])))
        return out


if __name__ == "__main__":
    main()
