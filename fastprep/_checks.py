"""Argument checks shared by Compose, the Loader and the offline tools: each raises a ValueError
or TypeError naming the argument."""
import numbers
import os
import secrets

import numpy as np


def check_policy(p):
    if p not in ("raise", "skip", "zeros"):
        raise ValueError(f"on_error must be 'raise', 'skip' or 'zeros', got {p!r}")
    return p


def fresh_seed():
    return secrets.randbits(63)


_U64 = 2**64


def _check_u64(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int in [0, 2**64), got {type(value).__name__} {value!r}")
    value = int(value)
    if not 0 <= value < _U64:
        raise ValueError(f"{name} must be an int in [0, 2**64), got {value}")
    return value


def check_seed(seed, name="seed"):
    """A random seed: a Python or numpy int with 0 <= seed < 2**64 -> Python int. ValueError
    naming ``name`` otherwise (None is the caller's business: it means fresh entropy)."""
    return _check_u64(seed, name)


def check_epoch(epoch):
    """An epoch number: a Python or numpy int with 0 <= epoch < 2**64 -> Python int."""
    return _check_u64(epoch, "epoch")


def check_max_pixels(max_pixels):
    """max_pixels: None or 0 (no limit), or an int in [1, 2**63) -> int (0 = no limit)."""
    if max_pixels is None:
        return 0
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, numbers.Integral) or not 0 <= max_pixels < 2**63:
        raise ValueError(f"max_pixels must be None or 0 (no limit) or an int in [1, 2**63), got {max_pixels!r}")
    return int(max_pixels)


MAX_THREADS = 1024


def check_threads(threads):
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"threads must be None (all usable cores) or an int in [1, {MAX_THREADS}], got {threads!r}")
    return int(threads)


def check_indices(indices):
    if isinstance(indices, np.ndarray) and indices.dtype.kind in "iu":
        keys = indices.reshape(-1)
        if keys.size and (keys.min() < 0 or keys.max() >= 2**63):
            raise ValueError("indices must be ints in [0, 2**63)")
        return [int(k) for k in keys]
    keys = []
    for k in indices:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 0 <= k < 2**63:
            raise ValueError(f"indices must be ints in [0, 2**63), got {k!r}")
        keys.append(int(k))
    return keys


def check_items(items):
    """batch() takes a list: a lone path, bytes or image is refused (a str would be iterated
    character by character)."""
    one = None
    if isinstance(items, (str, os.PathLike)):
        one = "a path"
    elif isinstance(items, (bytes, bytearray, memoryview)):
        one = "encoded bytes"
    elif is_pil_image(items):
        one = "a PIL image"
    elif (is_torch_tensor(items) and items.ndim <= 1) or (
            isinstance(items, np.ndarray) and (items.ndim == 0 or (items.ndim == 1 and items.dtype == np.uint8))):
        one = "a 1-D array (encoded bytes of one image)"
    elif hasattr(items, "read"):
        one = "a file object"
    if one is not None:
        raise TypeError(f"batch() takes a list of images, got {one} ({type(items).__name__}): "
                        "pass a list, e.g. t.batch([x]), or call t(x) for one image")
    if not hasattr(items, "__iter__"):
        raise TypeError(f"batch() takes a list of images, got {type(items).__name__}")


def _is_instance_of(x, module, name):
    """isinstance(x, module.name) without importing or even looking up ``module``: the class is
    matched by identity of (module, name) along ``type(x).__mro__``. Looking the module up in
    ``sys.modules`` is not safe under threads: another thread may be importing it, and a
    partially initialized module does not have the class yet (issue 28: "partially initialized
    module 'PIL.Image' has no attribute 'Image'")."""
    for cls in type(x).__mro__:
        if cls.__name__ == name and cls.__module__ == module:
            return True
    return False


def is_torch_tensor(x):
    return _is_instance_of(x, "torch", "Tensor")


def is_pil_image(x):
    return _is_instance_of(x, "PIL.Image", "Image")
