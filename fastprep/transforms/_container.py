"""torchvision's containers over fusable ops: RandomApply, RandomChoice, RandomOrder. They hold
ops of the uint8 op sequence (RandomApply also ColorJitter) and only decide, per sample, which
members run and in which order; each member draws its own values on its own stream, and each
container on its own (Note [Op sequence] in csrc/pipeline/plan.h), so wrapping an op in a
container, or adding one, changes no other op's draws."""
import math
import warnings

from .. import _core
from ._args import SequenceOp, prob
from ._color import ColorJitter
from ._op import Op, Stage, register_op


def _members(transforms, what):
    try:
        members = list(transforms)
    except TypeError:
        raise ValueError(f"{what} takes a list of fastprep ops, got {transforms!r}") from None
    if not 1 <= len(members) <= int(_core.MAX_MEMBERS):
        raise ValueError(f"{what} takes 1 to {int(_core.MAX_MEMBERS)} ops, got {len(members)}")
    for m in members:
        if not isinstance(m, Op):
            raise TypeError(f"{what} member {m!r} is not a fastprep op; use fastprep.from_torchvision() for "
                            "torchvision's containers")
    return members


class _Container(Op):
    stage = Stage.UINT8
    unique = False
    kind = 0
    allowed = (SequenceOp,)

    def _set(self, transforms):
        what = type(self).__name__
        self.members = _members(transforms, what)
        for m in self.members:
            if not isinstance(m, self.allowed):
                fusable = ", ".join(sorted(c.__name__ for c in _fusable(self.allowed)))
                raise ValueError(f"{what} cannot fuse {type(m).__name__}: it holds the ops the fused pass can "
                                 f"switch per sample ({fusable})")

    @property
    def sequence(self):
        return any(isinstance(m, SequenceOp) for m in self.members)

    def weights(self):
        return []

    def compile(self, spec, ctx):
        if ctx.inside is not None:
            raise ValueError(f"{type(self).__name__} inside another container cannot be fused")
        if len(ctx.containers) >= int(_core.MAX_CONTAINERS):
            raise ValueError(f"at most {int(_core.MAX_CONTAINERS)} containers per Compose")
        g = len(ctx.containers)
        ctx.slots[id(self)] = g
        ctx.containers.append((self.kind, len(self.members), self.weights()))
        for k, m in enumerate(self.members):
            ctx.inside = (g, k)
            try:
                m.check(ctx)
                m.compile(spec, ctx)
            finally:
                ctx.inside = None
            ctx.ops.append(m)

    def check_output(self, out):
        for m in self.members:
            m.check_output(out)

    def draw(self, rec, slot):
        """What this container drew for one sample (in params["containers"])."""
        raise NotImplementedError

    def __repr__(self):
        extra = "".join(f", {k}={v!r}" for k, v in self.__dict__.items() if k not in ("members", "holds_mixes", "mixes"))
        return f"{type(self).__name__}({getattr(self, 'mixes', self.members)!r}{extra})"

    @classmethod
    def from_torchvision(cls, op, state):
        # state["convert"]: from_torchvision's converter of one op into a list of fastprep ops
        members = [m for t in op.transforms for m in state["convert"](t)]
        return [cls._from_tv(op, members)]


def _fusable(allowed):
    from ._op import registered_ops

    return [c for c in registered_ops().values() if issubclass(c, allowed) and not issubclass(c, _Container)]


@register_op
class RandomApply(_Container):
    """Applies its ops (of the op sequence, or ColorJitter) together with probability p, as
    torchvision's RandomApply; its members still draw their own values."""

    torchvision = ("RandomApply",)
    kind = 0
    allowed = (SequenceOp, ColorJitter)
    params = ("containers (True when applied)",)

    def __init__(self, transforms, p=0.5):
        self._set(transforms)
        self.p = prob(p, "RandomApply")

    def weights(self):
        return [self.p]

    def draw(self, rec, slot):
        return bool(rec["group"][slot])

    @classmethod
    def _from_tv(cls, op, members):
        return cls(members, op.p)


@register_op
class RandomChoice(_Container):
    """Applies one of its ops (of the op sequence), picked with probability proportional to p (default:
    uniform), as torchvision's RandomChoice."""

    torchvision = ("RandomChoice",)
    kind = 1
    params = ("containers (the index picked)",)

    def __init__(self, transforms, p=None):
        items = list(transforms) if isinstance(transforms, (list, tuple)) else None
        # fastprep 0.1 named the Loader's batch-mixing choice RandomChoice: a list of batch mixes
        # (fp.MixUp, fp.CutMix) is still taken, with a warning, and the Loader reads it as
        # fp.MixChoice; a Compose refuses it.
        self.holds_mixes = bool(items) and all(getattr(t, "batch_mix", False) for t in items)
        if self.holds_mixes:
            warnings.warn("fp.RandomChoice of batch mixes is now fp.MixChoice (fp.RandomChoice is torchvision's "
                          "per-sample container of image ops): use fp.MixChoice([...])", FutureWarning, stacklevel=2)
            self.members, self.mixes = [], items
        else:
            self._set(transforms)
        n = len(self.mixes if self.holds_mixes else self.members)
        if p is None:
            p = [1.0] * n
        try:
            p = [float(x) for x in p]
        except (TypeError, ValueError):
            raise ValueError(f"RandomChoice p must be {n} non-negative weights, got {p!r}") from None
        if len(p) != n or any(not (x >= 0 and math.isfinite(x)) for x in p) or sum(p) <= 0:
            raise ValueError(f"RandomChoice p must be {n} non-negative weights, not all 0, got {p!r}")
        self.p = p

    def compile(self, spec, ctx):
        if self.holds_mixes:
            raise ValueError("RandomChoice of batch mixes (MixUp, CutMix) is not an image op: pass it to "
                             "fp.Loader(mix=fp.MixChoice([...]))")
        super().compile(spec, ctx)

    def weights(self):
        return list(self.p)

    def draw(self, rec, slot):
        return int(rec["group"][slot])

    @classmethod
    def _from_tv(cls, op, members):
        return cls(members, op.p)


@register_op
class RandomOrder(_Container):
    """Applies its ops (of the op sequence) in a random order, as torchvision's RandomOrder."""

    torchvision = ("RandomOrder",)
    kind = 2
    params = ("containers (the member order)",)

    def __init__(self, transforms):
        self._set(transforms)

    def draw(self, rec, slot):
        m = int(_core.MAX_MEMBERS)
        return [int(v) for v in rec["group_order"][slot * m:slot * m + len(self.members)]]

    @classmethod
    def _from_tv(cls, op, members):
        return cls(members)


def is_container(op):
    return isinstance(op, _Container)


__all__ = ["RandomApply", "RandomChoice", "RandomOrder", "is_container"]
