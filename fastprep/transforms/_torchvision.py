"""from_torchvision: the fused equivalent of a torchvision v1 or v2 Compose. Which torchvision
ops convert, and how, is declared by each op class (``Op.torchvision`` / ``Op.converts`` /
``Op.from_torchvision``, _op.py).

Note [Conversion by identity]
An op is converted only when it is torchvision's own class: ``type(op)`` is the very object
``torchvision.transforms.<Name>`` (v1) or ``torchvision.transforms.v2.<Name>`` names, for the
names an op class lists in ``Op.torchvision``; an op class converts other libraries' classes only
through ``Op.converts``, which names them by class object or "module.Class" path and is matched
by identity the same way. A class of
another library with a torchvision name (timm's ``ToTensor`` gives 0-255 floats, its
``RandomErasing`` and ``RandAugment`` differ), and a user's subclass that overrides what the op
does, are not torchvision's op: converting them by name would be silently wrong, so they are
refused with their module and class named.
"""
from ._compose import Compose
from ._misc import ToTensor
from ._op import converter_for, registered_ops, target_name

_CONTAINERS = ("Compose",)


def torchvision_name(op):
    """The public torchvision name of ``op``'s class when it is torchvision's own class (v1 or
    v2, Note [Conversion by identity]), else None. Imports nothing that is not imported already
    unless ``op`` comes from torchvision."""
    cls = type(op)
    if not cls.__module__.startswith("torchvision.transforms"):
        return None
    import importlib

    name = cls.__name__
    for module in ("torchvision.transforms", "torchvision.transforms.v2"):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        if getattr(mod, name, None) is cls:
            return name
    return None


def _describe(op):
    cls = type(op)
    try:
        shown = repr(op)
    except Exception:  # a third-party repr may itself fail
        shown = f"<{cls.__name__} object>"
    return f"{cls.__module__}.{cls.__qualname__} ({shown})"


def _convert(op, out, state):
    name = torchvision_name(op)
    if name in _CONTAINERS:
        for t in op.transforms:
            _convert(t, out, state)
        return
    cls = converter_for(op)
    if cls is None:
        fusable = sorted({tv for c in registered_ops().values() for tv in c.torchvision}
                         | {target_name(t) for c in registered_ops().values() for t in c.converts})
        if name is None:
            why = (f"it is not torchvision's {type(op).__name__}" if type(op).__name__ in fusable else
                   "it is not a torchvision transform")
            raise ValueError(f"cannot convert {_describe(op)}: {why} (fastprep converts torchvision's own classes, "
                             f"matched by module and class, never by name); fastprep fuses torchvision's "
                             f"{', '.join(fusable)}")
        raise ValueError(f"cannot fuse torchvision op {_describe(op)}: fastprep fuses {', '.join(fusable)}")
    out.extend(cls.from_torchvision(op, state))


def _is_v2(op):
    if type(op).__module__.startswith("torchvision.transforms.v2"):
        return True
    return any(_is_v2(t) for t in getattr(op, "transforms", ()) or ())


def from_torchvision(transform, **kwargs):
    """Builds the fused fastprep Compose equivalent to a torchvision (v1 or v2) transform.

    The result gives torchvision's pixels (``exact=True``, within 1 uint8 level); pass
    ``exact=False`` for fast mode (DCT-domain downscaling of large images while decoding, PSNR
    >= 40 dB). Other keyword arguments go to Compose (dtype, backend, apply_exif_orientation,
    ...). Only torchvision's own classes convert (Note [Conversion by identity]); raises
    ValueError naming the first op that cannot be fused, with its module and class.
    """
    kwargs.setdefault("exact", True)
    ops, state = [], {}
    _convert(transform, ops, state)
    has_tensor = any(isinstance(o, ToTensor) for o in ops)
    if _is_v2(transform) and not has_tensor:
        kwargs.setdefault("layout", "CHW")  # v2 ops on tensors keep torchvision's CHW uint8 images
    if state.get("uint8_tensor") and "dtype" not in state and not has_tensor:
        kwargs.setdefault("layout", "CHW")  # PILToTensor/ToImage give CHW uint8 tensors
    if "dtype" in state:
        kwargs.setdefault("dtype", state["dtype"])
        if state["dtype"] == "uint8":
            kwargs.setdefault("layout", "CHW")
    return Compose(ops, **kwargs)
