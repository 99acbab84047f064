"""A real 2-process torch.distributed (gloo, CPU) run over tar shards: DistributedSampler
semantics (disjoint, equal length, padded or dropped), every sample seen exactly once per epoch
across ranks, and each sample's pixels independent of the number of ranks."""
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap

import pytest

import fastprep as fp

from conftest import PHOTOS

torch = pytest.importorskip("torch", reason="the torch.distributed test needs torch: pip install torch")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("this torch build has no gloo backend", allow_module_level=True)

HERE = os.path.dirname(__file__)

WORKER = textwrap.dedent("""
    import hashlib, json, sys
    import numpy as np
    import torch
    import torch.distributed as dist
    import fastprep as fp

    init, rank, world, source, out, drop_last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], \\
        sys.argv[5], sys.argv[6] == "1"
    seed = None if sys.argv[7] == "none" else int(sys.argv[7])
    dist.init_process_group("gloo", init_method="file://" + init, rank=rank, world_size=world)
    t = fp.Compose([fp.RandomResizedCrop(32), fp.RandomHorizontalFlip(), fp.ToTensor()])
    loader = fp.Loader(source, t, batch_size=2, seed=seed, rank=dist.get_rank(), world_size=dist.get_world_size(),
                       drop_last=drop_last, threads=1, backend="torch")
    result = {"len": len(loader), "seed": loader.seed, "epochs": []}
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        labels, sums = [], []
        for x, y in loader:
            labels += y.tolist()
            sums += [hashlib.sha1(img.numpy().tobytes()).hexdigest() for img in x]
        everyone = [None] * world
        dist.all_gather_object(everyone, labels)  # the collective the training loop would run
        count = torch.tensor([len(labels)])
        dist.all_reduce(count)
        result["epochs"].append({"labels": labels, "sums": sums, "gathered": everyone, "total": int(count)})
    dist.barrier()
    dist.destroy_process_group()
    with open(out, "w") as f:
        json.dump(result, f)
""")


def _shard(path, n):
    """n samples (the photos, cycled) whose label is their index: labels identify samples."""
    with tarfile.open(path, "w") as tf:
        for i in range(n):
            for field, data in (("jpg", open(PHOTOS[i % len(PHOTOS)], "rb").read()), ("cls", str(i).encode())):
                ti = tarfile.TarInfo(f"s{i:04d}.{field}")
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return str(path)


def _run(tmp_path, source, world, drop_last, seed=11):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    init = tmp_path / f"init-{world}-{int(drop_last)}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]))
    outs = [tmp_path / f"rank{r}-{int(drop_last)}.json" for r in range(world)]
    procs = [subprocess.Popen([sys.executable, str(script), str(init), str(r), str(world), source, str(outs[r]),
                               "1" if drop_last else "0", str(seed).lower()], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for r in range(world)]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=180)[0].decode(errors="replace"))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log
    return [json.loads(o.read_text()) for o in outs]


@pytest.mark.parametrize("n, drop_last, seed", [(11, False, 11), pytest.param(11, True, 11, marks=pytest.mark.slow),
                                                pytest.param(12, False, 11, marks=pytest.mark.slow),
                                                pytest.param(11, False, None, marks=pytest.mark.slow)])
def test_two_ranks_see_every_sample_once(tmp_path, n, drop_last, seed):
    # seed=None: rank 0's fresh seed is shared through the process group (Note [Ranks share a seed])
    source = _shard(tmp_path / "data-000000.tar", n)
    ranks = _run(tmp_path, source, 2, drop_last, seed)
    assert ranks[0]["seed"] == ranks[1]["seed"] and (seed is None or ranks[0]["seed"] == seed)
    seed = ranks[0]["seed"]
    per_rank = (n // 2) if drop_last else -(-n // 2)  # the sampler's share (padded, or the remainder dropped)
    batches = per_rank // 2 if drop_last else -(-per_rank // 2)
    per_rank = batches * 2 if drop_last else per_rank  # drop_last also drops each rank's last partial batch
    single = fp.Loader(source, fp.Compose([fp.RandomResizedCrop(32), fp.RandomHorizontalFlip(), fp.ToTensor()]),
                       batch_size=2, seed=seed, threads=1, backend="numpy", shuffle=False)
    for epoch in (0, 1):
        got = [r["epochs"][epoch]["labels"] for r in ranks]
        assert [len(g) for g in got] == [per_rank, per_rank]  # equal length on every rank
        assert ranks[0]["epochs"][epoch]["gathered"] == got and ranks[0]["epochs"][epoch]["total"] == 2 * per_rank
        seen = got[0] + got[1]
        if drop_last:
            assert len(set(seen)) == len(seen) == 2 * per_rank  # disjoint, the remainder dropped
        else:
            assert sorted(set(seen)) == list(range(n))  # every sample at least once ...
            assert len(seen) - len(set(seen)) == (-n) % 2  # ... and only the padding twice
        assert got[0] != got[1]
        assert ranks[0]["len"] == ranks[1]["len"] == batches
        # a sample's pixels depend on (seed, epoch, sample), not on the rank that loaded it
        single.set_epoch(epoch)
        want = {}
        for x, y in single:
            for label, img in zip(y.tolist(), x):
                want[label] = hashlib.sha1(img.tobytes()).hexdigest()
        for r in ranks:
            for label, s in zip(r["epochs"][epoch]["labels"], r["epochs"][epoch]["sums"]):
                assert s == want[label]
    assert ranks[0]["epochs"][0]["labels"] != ranks[0]["epochs"][1]["labels"]  # reshuffled per epoch


def test_ranks_without_a_seed_or_process_group_are_refused(tmp_path):
    source = _shard(tmp_path / "data-000000.tar", 4)
    t = fp.Compose([fp.RandomResizedCrop(32), fp.ToTensor()])
    with pytest.raises(ValueError, match="each rank would draw its own seed"):
        fp.Loader(source, t, batch_size=2, rank=1, world_size=2, backend="numpy")
    # a seed, no shuffling or a sampler of one's own need no shared seed
    assert fp.Loader(source, t, batch_size=2, rank=1, world_size=2, seed=3, backend="numpy").seed == 3
    fp.Loader(source, t, batch_size=2, rank=1, world_size=2, shuffle=False, backend="numpy")
    fp.Loader(source, t, batch_size=2, rank=1, world_size=2, sampler=[0, 2], backend="numpy")
