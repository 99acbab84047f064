"""batch() without out= draws its output from the Compose's pool (Note [Output pool] in
fastprep/_pool.py): a dropped batch's memory is reused, a live one never is."""
import gc

import numpy as np
import pytest

import fastprep as fp
from fastprep.transforms import OutputPool


def _train():
    return fp.Compose([fp.RandomResizedCrop(64), fp.RandomHorizontalFlip(), fp.ToTensor(), fp.Normalize("imagenet")])


def test_pooled_batch_equals_batch_into_out(photos):
    t = _train()
    ref = np.empty((len(photos), 3, 64, 64), np.float32)
    t.batch(photos, seed=3, out=ref)
    for _ in range(3):  # the second and third come from recycled blocks
        got = t.batch(photos, seed=3)
        assert got.flags.c_contiguous and got.flags.writeable and got.dtype == np.float32
        np.testing.assert_array_equal(got, ref)
        del got
        gc.collect()


def test_dropped_batch_memory_is_reused(photos):
    t = _train()
    a = t.batch(photos, seed=0)
    ptr = a.ctypes.data
    del a
    gc.collect()
    assert len(t._pool) == 1
    b = t.batch(photos, seed=1)
    assert b.ctypes.data == ptr
    assert len(t._pool) == 0


def test_live_batch_and_views_are_never_overwritten(photos):
    t = _train()
    a = t.batch(photos, seed=0)
    keep = a.copy()
    view = a[2:5, 1]
    b = t.batch(photos, seed=1)  # a is alive: b must get other memory
    assert b.ctypes.data != a.ctypes.data
    np.testing.assert_array_equal(a, keep)
    del a
    gc.collect()
    c = t.batch(photos, seed=2)  # the view still holds a's block
    np.testing.assert_array_equal(view, keep[2:5, 1])
    assert not np.shares_memory(c, view) and not np.shares_memory(c, b)
    del view
    gc.collect()
    d = t.batch(photos, seed=3)  # now a's block is free again
    np.testing.assert_array_equal(c, t.batch(photos, seed=2))
    assert not np.shares_memory(d, c) and not np.shares_memory(d, b)


def test_torch_tensor_keeps_the_block(photos):
    torch = pytest.importorskip("torch")
    t = fp.Compose(_train().transforms, backend="torch")
    x = t.batch(photos, seed=0)
    assert isinstance(x, torch.Tensor)
    keep = x.clone()
    gc.collect()
    y = t.batch(photos, seed=1)
    assert y.data_ptr() != x.data_ptr()
    assert torch.equal(x, keep)


def test_pool_keeps_at_most_two_blocks_and_only_reuses_exact_sizes():
    pool = OutputPool(keep=2)
    arrs = [pool.take((4, 8), np.float32) for _ in range(4)]
    ptrs = [a.ctypes.data for a in arrs]
    del arrs
    gc.collect()
    assert len(pool) == 2
    other = pool.take((3, 8), np.float32)  # different size: a new block
    assert other.ctypes.data not in ptrs
    same = pool.take((8, 4), np.float32)  # same byte count: reused
    assert same.ctypes.data in ptrs and same.shape == (8, 4)
    assert len(pool) == 1
    pool.clear()
    assert len(pool) == 0


def test_pool_outlives_nothing_it_does_not_own():
    """A lease outliving its pool just frees its block (no error at collection)."""
    pool = OutputPool()
    a = pool.take((16,), np.uint8)
    a[:] = 7
    del pool
    gc.collect()
    assert int(a.sum()) == 7 * 16
