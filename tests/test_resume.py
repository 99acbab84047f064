"""Mid-epoch resume (Note [Resume] in fastprep/data/_loader.py): a Loader built with the same
arguments and given state_dict() yields exactly the uninterrupted run's remaining batches, then
the following epochs."""
import json
import os
import shutil

import numpy as np
import pytest

import fastprep as fp


def _transform():
    return fp.Compose([fp.RandomResizedCrop(32), fp.RandomHorizontalFlip(), fp.ColorJitter(0.3, 0.3, 0.3),
                       fp.ToTensor(), fp.Normalize("imagenet")])


def _loader(src, **kw):
    kw = {"batch_size": 3, "seed": 5, "threads": 2, "backend": "numpy", **kw}
    return fp.Loader(src, _transform(), **kw)


def _epochs(loader, n):
    return [[(x.copy(), y.copy()) for x, y in loader] for _ in range(n)]


def _same(a, b):
    """Two lists of (images, labels) batches are identical, batch for batch and byte for byte."""
    return len(a) == len(b) and all(np.array_equal(x1, x2) and np.array_equal(y1, y2)
                                    for (x1, y1), (x2, y2) in zip(a, b))


@pytest.mark.parametrize("stop_after", [0, 1, 2, 4])  # before the first batch, mid-epoch, at the last batch
def test_resume_is_byte_identical(tree, stop_after):
    full = _epochs(_loader(tree), 3)
    a = _loader(tree)
    _epochs(a, 1)  # epoch 0 done
    it = iter(a)  # epoch 1
    got = [(x.copy(), y.copy()) for _, (x, y) in zip(range(stop_after), it)]
    state = json.loads(json.dumps(a.state_dict()))  # JSON round trip
    del it
    b = _loader(tree)
    b.load_state_dict(state)
    rest = [(x.copy(), y.copy()) for x, y in b]
    assert _same(got + rest, full[1])
    assert _same(_epochs(b, 1)[0], full[2])  # and the next epoch as if nothing happened


def test_resume_between_epochs_and_with_mixing(tree):
    mix = dict(mix=fp.MixUp(alpha=1.0), num_classes=3)
    full = _epochs(_loader(tree, **mix), 2)
    a = _loader(tree, **mix)
    _epochs(a, 1)
    state = a.state_dict()
    assert state["epoch"] == 1 and state["cursor"] == 0
    b = _loader(tree, **mix)
    b.load_state_dict(state)
    assert _same(_epochs(b, 1)[0], full[1])
    # mid-epoch: the batch mixing's draws continue from the right batch index
    c = _loader(tree, **mix)
    it = iter(c)
    first = [(x.copy(), y.copy()) for _, (x, y) in zip(range(2), it)]
    s = c.state_dict()
    del it
    d = _loader(tree, **mix)
    d.load_state_dict(s)
    assert _same(first + [(x.copy(), y.copy()) for x, y in d], full[0])


def test_resume_with_skip_and_ranks(tree, photos):
    bad = os.path.join(tree, "a", "00b_truncated.jpg")
    with open(photos[2], "rb") as f:
        open(bad, "wb").write(f.read()[:2500])
    bad_i = fp.Loader(tree, _transform(), backend="numpy").dataset.names.index("a/00b_truncated.jpg")
    # the rank of two whose epoch-0 share holds the truncated file
    rank = next(r for r in (0, 1) if bad_i in _loader(tree, rank=r, world_size=2).indices(0))
    for kw in ({"on_error": "skip"}, {"on_error": "skip", "rank": rank, "world_size": 2}):
        full = _epochs(_loader(tree, **kw), 1)[0]
        ref = _loader(tree, **kw)
        _epochs(ref, 1)
        assert ref.errors, "the truncated file was not met"
        for k in range(1, len(full)):
            a = _loader(tree, **kw)
            it = iter(a)
            got = [(x.copy(), y.copy()) for _, (x, y) in zip(range(k), it)]
            state = a.state_dict()
            del it
            b = _loader(tree, **kw)
            b.load_state_dict(state)
            assert _same(got + [(x.copy(), y.copy()) for x, y in b], full)
            assert b.errors == ref.errors  # the skipped files are part of the state


def test_state_refused_for_another_loader(tree, tmp_path):
    a = _loader(tree)
    state = a.state_dict()
    other = str(tmp_path / "other")
    shutil.copytree(tree, other)
    os.remove(os.path.join(other, "c", sorted(os.listdir(os.path.join(other, "c")))[0]))
    with pytest.raises(ValueError, match="samples"):
        _loader(other).load_state_dict(state)
    with pytest.raises(ValueError, match="batch_size"):
        _loader(tree, batch_size=4).load_state_dict(state)
    with pytest.raises(ValueError, match="transform"):
        fp.Loader(tree, fp.Compose([fp.RandomResizedCrop(32), fp.ToTensor()]), batch_size=3, seed=5,
                  backend="numpy").load_state_dict(state)
    with pytest.raises(ValueError, match="seed"):
        _loader(tree, seed=6).load_state_dict(state)
    with pytest.raises(ValueError, match="not a fastprep Loader state"):
        _loader(tree).load_state_dict({"epoch": 0})
