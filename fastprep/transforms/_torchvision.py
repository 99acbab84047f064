"""from_torchvision: the fused equivalent of a torchvision v1 or v2 Compose, with what cannot be
fused run in Python after it (a HybridCompose, Note [Python remainder] in _hybrid.py). Which
torchvision ops convert, and how, is declared by each op class (``Op.torchvision`` /
``Op.converts`` / ``Op.from_torchvision``, _op.py).

Note [Conversion by identity]
An op is converted only when it is torchvision's own class: ``type(op)`` is the very object
``torchvision.transforms.<Name>`` (v1) or ``torchvision.transforms.v2.<Name>`` names, for the
names an op class lists in ``Op.torchvision``; an op class converts other libraries' classes only
through ``Op.converts``, which names them by class object or "module.Class" path and is matched
by identity the same way (timm's RandomResizedCropAndInterpolation, MaybeToTensor,
MaybePILToTensor and ToNumpy, which compute what torchvision's classes do, and timm's ToTensor
and RandomErasing, as ``fp.ToTensor(scale=False)`` and ``fp.RandomErasing(count=, value=)``,
convert so). A class of another library with a torchvision name (timm's ``RandAugment`` differs
from torchvision's), and a
user's subclass that overrides what the op does, are not torchvision's op: converting them by
name would be silently wrong, so they run in Python as they are (the warning names their module
and class), or are refused with ``strict=True``.
"""
import numpy as np

from ._compose import Compose
from ._misc import ToTensor
from ._multiview import MultiView
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
    state["convert"] = lambda t: _converted(t, state)  # containers convert their members with it
    out.extend(cls.from_torchvision(op, state))


def _converted(op, state):
    out = []
    _convert(op, out, state)
    return out


def _is_v2(op):
    if type(op).__module__.startswith("torchvision.transforms.v2"):
        return True
    return any(_is_v2(t) for t in getattr(op, "transforms", ()) or ())


# The nearest fastprep equivalent of torchvision ops that are not fused (named in strict refusals).
_NEAREST = {
    # not fused: what comes closest
    "ScaleJitter": "fp.RandomResize then fp.RandomCrop", "RandomIoUCrop": "fp.RandomResizedCrop",
    "Lambda": "fp.register_op for a fused op of your own", "LinearTransformation": "fp.Normalize(mode='whiten')",
    # fused, with limits on their arguments
    "RandomCrop": "fp.RandomCrop with integer fill levels, and a crop larger than twice a mirrored padding",
    "Pad": "fp.Pad with integer fill levels",
    "RandomRotation": "fp.RandomRotation about the centre, expand=False",
}


def _nearest(op):
    name = type(op).__name__
    hint = _NEAREST.get(name)
    if hint is None and name in registered_ops():
        hint = f"torchvision's own {name} (fp.{name})"
    return f"; nearest fastprep equivalent: {hint}" if hint else ""


def _steps(transform):
    """The transforms of a recipe in order, torchvision Composes (v1, v2) flattened."""
    if torchvision_name(transform) in _CONTAINERS:
        return [s for t in transform.transforms for s in _steps(t)]
    return [transform]


def _is_rgb_conversion(t):
    """A ``Lambda`` (or any callable) that only converts a PIL image to RGB, e.g.
    ``Lambda(lambda im: im.convert("RGB"))``: fastprep's decoders always give RGB, so at the start of
    a recipe it is a no-op. Decided by trying it: an RGB image comes back equal, a gray one as RGB."""
    if torchvision_name(t) != "Lambda":
        return False
    try:
        from PIL import Image
    except ImportError:
        return False
    rgb = Image.fromarray(np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 7, "RGB")
    gray = Image.fromarray(np.arange(6, dtype=np.uint8).reshape(2, 3) * 9, "L")
    try:
        a, b = t(rgb.copy()), t(gray.copy())
    except Exception:
        return False
    return (isinstance(a, Image.Image) and a.mode == "RGB" and a.size == rgb.size
            and np.array_equal(np.asarray(a), np.asarray(rgb)) and isinstance(b, Image.Image) and b.mode == "RGB"
            and np.array_equal(np.asarray(b), np.asarray(gray.convert("RGB"))))


def _short_reason(t, error):
    """Why ``t`` runs in Python, in a few words (the warning names every such transform)."""
    name = torchvision_name(t)
    if converter_for(t) is None and name not in _CONTAINERS:
        if name is not None:
            return f"fastprep does not fuse torchvision's {name}"
        if type(t).__name__ in registered_ops():
            return f"not torchvision's own {type(t).__name__} (converted by identity, never by name)"
        return "not a torchvision transform"
    return str(error)


def _compose_of(ops, state, v2, kwargs):
    kwargs = dict(kwargs)
    has_tensor = any(isinstance(o, ToTensor) for o in ops)
    if v2 and not has_tensor:
        kwargs.setdefault("layout", "CHW")  # v2 ops on tensors keep torchvision's CHW uint8 images
    if state.get("uint8_tensor") and "dtype" not in state and not has_tensor:
        kwargs.setdefault("layout", "CHW")  # PILToTensor/ToImage give CHW uint8 tensors
    if "dtype" in state:
        kwargs.setdefault("dtype", state["dtype"])
        if state["dtype"] == "uint8":
            kwargs.setdefault("layout", "CHW")
    return Compose(ops, **kwargs)


def from_torchvision(transform, strict=False, **kwargs):
    """Builds the fastprep equivalent of a torchvision (v1 or v2) transform.

    The longest prefix of the recipe that the native pass can do is fused into one
    :class:`Compose`, with torchvision's pixels (``exact=True``, within 1 uint8 level; pass
    ``exact=False`` for fast mode: DCT-domain downscaling of large images while decoding, PSNR
    >= 40 dB). When every transform fuses, that Compose is returned. Otherwise the rest (a
    ``Lambda``, a user's class, a torchvision op fastprep does not fuse) runs per sample in Python
    on the fused output, in the input type it expects (a PIL image for v1 recipes, a uint8 tensor
    for v2, the float tensor after ToTensor), and a :class:`HybridCompose` is returned, with a
    warning naming each transform that runs in Python and why (Note [Python remainder]). A
    leading RGB-conversion ``Lambda`` is dropped (fastprep decodes to RGB).

    Only torchvision's own classes convert (Note [Conversion by identity]): a class of another
    library with a torchvision name runs in Python as it is. ``strict=True`` refuses instead:
    ValueError naming the first transform that cannot be fused, its module and class, why, and
    the nearest fastprep equivalent. Other keyword arguments go to Compose (dtype, backend,
    apply_exif_orientation, ...).

    A list or tuple of recipes (SimCLR's ``[view, view]``, or DINO's ``[global_1, global_2] +
    [local] * 8``: ``DataAugmentationDINO``'s ``global_transfo1``, ``global_transfo2`` and
    ``local_transfo``) becomes a :class:`MultiView` of their conversions, one decode for all;
    each must then fuse whole.
    """
    if isinstance(transform, (list, tuple)):
        return _multi_view(transform, strict, kwargs)
    kwargs.setdefault("exact", True)
    v2 = _is_v2(transform)
    steps = _steps(transform)
    dropped = 0
    while dropped < len(steps) and _is_rgb_conversion(steps[dropped]):
        dropped += 1
    ops, state = [], {}
    fused = None
    for i in range(dropped, len(steps)):
        t = steps[i]
        trial_state = dict(state)
        try:
            new = _converted(t, trial_state)
            trial = _compose_of(ops + new, trial_state, v2, kwargs)
        except (ValueError, TypeError) as e:
            if strict:
                raise ValueError(f"{e}{_nearest(t)}") from None
            return _hybrid(steps, i, ops, state, v2, kwargs, _short_reason(t, e))
        ops, state, fused = ops + new, trial_state, trial
    if fused is None:
        fused = _compose_of(ops, state, v2, kwargs)
    return fused


def _hybrid(steps, cut, ops, state, v2, kwargs, first_why):
    import warnings

    from ._hybrid import HybridCompose

    remainder = steps[cut:]
    has_tensor = any(isinstance(o, ToTensor) for o in ops)
    tail_input = "tensor" if (v2 or has_tensor or state.get("uint8_tensor")) else "pil"
    if tail_input == "pil":
        kwargs = dict(kwargs, layout="HWC", dtype="uint8")
    fused = _compose_of(ops, state, v2, kwargs)
    reasons = [first_why] + [f"after {type(remainder[0]).__name__}, which runs in Python"] * (len(remainder) - 1)
    names = "; ".join(f"{_describe(t)}: {r}" for t, r in zip(remainder, reasons))
    warnings.warn(f"from_torchvision: {len(remainder)} transform(s) run per sample in Python after the fused "
                  f"prefix ({len(ops)} fused op(s)): {names}. Pass strict=True to refuse instead.", UserWarning,
                  stacklevel=3)
    return HybridCompose(fused, remainder, tail_input, reasons)


def _multi_view(recipes, strict, kwargs):
    """from_torchvision of a list of view recipes: a MultiView (Note [Multi-view decode]). Equal
    recipes (the same object) convert once."""
    if not recipes:
        raise ValueError("from_torchvision of a list needs at least one view recipe")
    done, views = {}, []
    for k, r in enumerate(recipes):
        if id(r) not in done:
            try:
                v = from_torchvision(r, strict=True, **kwargs)
            except ValueError as e:
                raise ValueError(f"view {k} of the list cannot be fused whole, and a MultiView shares one decode "
                                 f"between fused views: {e}") from None
            done[id(r)] = v
        views.append(done[id(r)])
    return MultiView(views)
