"""ResNet-50 training steps on a GPU fed by ``fp.Loader(device="cuda")`` (issue #14, item 7).

    python benchmarks/bench_gpu_feed.py corpus/imagenet_like --threads 1,2,4,8,16 \
        [--rounds 2] [--steps 30] [--dataloader 4,8,16] [--json out.json]

In one process, each round measuring every configuration once (rounds interleave them; the
figures are medians over rounds):

- ``ceiling``: the training step on one batch that stays on the GPU: what the GPU does with no
  input pipeline at all;
- ``fastprep``: the same step fed by fp.Loader(device="cuda", threads=T) with the train recipe
  (RandomResizedCrop 224, flip, Normalize), for each T: images/s, that over the ceiling, and the
  wait fraction (the loop's time inside ``next()`` over its wall time);
- ``loader``: fp.Loader alone at each T, batches copied to the GPU and nothing else: what the
  CPU side delivers;
- ``dataloader``: torch DataLoader(num_workers=T, pin_memory=True) + torchvision v2 (decode_jpeg,
  RandomResizedCrop, flip, ToDtype, Normalize) feeding the same step.

The step is what a mixed-precision ImageNet run does: ResNet-50 (torchvision, random weights),
channels_last, bf16 autocast, SGD with momentum, cross-entropy on random labels. fastprep's batch
is written HWC (``layout="HWC"``), which viewed as NCHW is already channels_last: no transpose
on either side. The images are the corpus's photos, listed over and over to fill the epochs
(read from the page cache after the first pass, as a warm dataset).
"""
import argparse
import glob
import json
import os
import statistics
import time

import fastprep as fp

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def make_step(torch, batch):
    import torchvision

    model = torchvision.models.resnet50(num_classes=1000).cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(x, y):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def as_nchw(torch, x):
    """fastprep HWC batch (N, H, W, C) -> an NCHW view in channels_last memory (no copy)."""
    return x.permute(0, 3, 1, 2)


def timed_loop(torch, it, step, steps, warmup, to_input):
    """Runs warmup + steps training steps from iterator `it`; returns (img/s, wait fraction)."""
    for _ in range(warmup):
        x, y = next(it)
        step(to_input(x), y)
    torch.cuda.synchronize()
    wait = 0.0
    n = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        a = time.perf_counter()
        x, y = next(it)
        wait += time.perf_counter() - a
        step(to_input(x), y)
        n += x.shape[0]
    torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    return n / wall, wait / wall


def forever(loader):
    while True:
        yield from loader


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("--threads", default="1,2,4,8,16")
    ap.add_argument("--dataloader", default="", help="worker counts for DataLoader + torchvision v2 ('' = skip)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--dtype", default="float32", help="fastprep output dtype (float32, float16, bfloat16)")
    ap.add_argument("--json")
    a = ap.parse_args()

    import torch

    torch.backends.cudnn.benchmark = True
    files = sorted(glob.glob(os.path.join(a.corpus, "*.jpg")))
    need = a.batch * (a.steps + a.warmup + 2)
    items = [(files[i % len(files)], i % 1000) for i in range(max(need, len(files)))]
    threads = [int(t) for t in a.threads.split(",") if t]
    workers = [int(t) for t in a.dataloader.split(",") if t]
    step = make_step(torch, a.batch)
    recipe = fp.Compose([fp.RandomResizedCrop(224), fp.RandomHorizontalFlip(), fp.ToTensor(), fp.Normalize(MEAN, STD)],
                        dtype=a.dtype, layout="HWC")
    out = {"device": torch.cuda.get_device_name(), "cpus": os.cpu_count(), "torch": torch.__version__,
           "batch": a.batch, "steps": a.steps, "dtype": a.dtype, "images": len(files), "rounds": []}

    # The ceiling's batch: one real batch, kept on the GPU.
    x0, y0 = next(iter(fp.Loader(items, recipe, batch_size=a.batch, threads=max(threads), device="cuda")))
    x0 = as_nchw(torch, x0).contiguous(memory_format=torch.channels_last)
    y0 = y0.long()

    def ceiling():
        def it():
            while True:
                yield x0, y0
        return timed_loop(torch, it(), step, a.steps, a.warmup, lambda x: x)

    def fastprep_feed(t, with_model=True):
        L = fp.Loader(items, recipe, batch_size=a.batch, threads=t, device="cuda", drop_last=True, seed=t)
        it = forever(L)
        if with_model:
            r = timed_loop(torch, it, lambda x, y: step(x, y.long()), a.steps, a.warmup, lambda x: as_nchw(torch, x))
        else:
            r = timed_loop(torch, it, lambda x, y: None, a.steps * 2, a.warmup, lambda x: x)
        del it, L
        return r

    def dataloader_feed(w):
        from bench_loader import tv_v2_train_dataset  # the same peer as the Loader benchmark's

        dl = torch.utils.data.DataLoader(tv_v2_train_dataset(items), batch_size=a.batch, shuffle=True,
                                         num_workers=w, pin_memory=True, drop_last=True, persistent_workers=True,
                                         prefetch_factor=4, worker_init_fn=lambda _: torch.set_num_threads(1))

        def to_gpu():
            for x, y in forever(dl):
                yield x.cuda(non_blocking=True), y.cuda(non_blocking=True)

        return timed_loop(torch, to_gpu(), lambda x, y: step(x, y), a.steps, a.warmup,
                          lambda x: x.contiguous(memory_format=torch.channels_last))

    for rnd in range(a.rounds):
        row = {"ceiling": ceiling()[0], "fastprep": {}, "loader": {}, "dataloader": {}}
        for t in threads:
            row["fastprep"][t] = fastprep_feed(t)
            row["loader"][t] = fastprep_feed(t, with_model=False)[0]
        for w in workers:
            row["dataloader"][w] = dataloader_feed(w)
        out["rounds"].append(row)
        print(f"round {rnd}: {json.dumps(row)}", flush=True)

    med = statistics.median
    R = out["rounds"]
    ceil = med(r["ceiling"] for r in R)
    print(f"\n{out['device']}, {out['cpus']} CPUs, torch {out['torch']}, batch {a.batch}, {a.dtype}, "
          f"{a.rounds} rounds (medians)")
    print(f"GPU ceiling (batch kept on the GPU): {ceil:.0f} img/s")
    print("| feed | threads | loader alone img/s | training img/s | / ceiling | wait fraction |")
    print("|---|---:|---:|---:|---:|---:|")
    summary = {"ceiling": ceil, "fastprep": {}, "dataloader": {}}
    for t in threads:
        ips = med(r["fastprep"][t][0] for r in R)
        wf = med(r["fastprep"][t][1] for r in R)
        alone = med(r["loader"][t] for r in R)
        summary["fastprep"][t] = {"train_img_s": ips, "wait": wf, "loader_img_s": alone,
                                  "of_ceiling": med(r["fastprep"][t][0] / r["ceiling"] for r in R)}
        print(f"| fp.Loader | {t} | {alone:.0f} | {ips:.0f} | {summary['fastprep'][t]['of_ceiling']:.2f} | {wf:.2f} |")
    for w in workers:
        ips = med(r["dataloader"][w][0] for r in R)
        wf = med(r["dataloader"][w][1] for r in R)
        summary["dataloader"][w] = {"train_img_s": ips, "wait": wf,
                                    "of_ceiling": med(r["dataloader"][w][0] / r["ceiling"] for r in R)}
        print(f"| DataLoader + tv v2 | {w} | | {ips:.0f} | {summary['dataloader'][w]['of_ceiling']:.2f} | {wf:.2f} |")
    out["summary"] = summary
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
