"""The op registry: every fastprep op is one class (in this package's modules by kind:
_geometry, _color, _auto_augment, _misc; or registered from outside with :func:`register_op`),
and everything about it lives on that class:

- ``stage``: where it runs in the fused pass (:class:`Stage`); the op-order rules derive from it;
- ``not_after`` / ``exclusive``: ops it cannot follow, or coexist with, and the message why;
- ``torchvision`` / ``converts``: the classes it converts from (by identity, Note [Conversion by
  identity] in _torchvision.py), and :meth:`Op.from_torchvision`;
- :meth:`Op.compile`: the native plan fields it sets (``_core.PlanSpec``; a misspelled field is
  an AttributeError, Note [Plan fields] in csrc/pipeline/plan.h);
- :meth:`Op.sample_params`: its per-sample draws, by name, from the native per-sample record.

``Compose`` validation, ``from_torchvision``, the op-order error messages and the README's op
table (:func:`op_table`) all come from here. The random draws themselves happen natively, in
``plan_sample()`` (csrc/pipeline/plan.cpp), each op on its own stream (Note [Random streams]).
"""
import enum

__all__ = ["Stage", "Op", "register_op", "registered_ops", "converter_for", "target_name", "op_table",
           "OutputOptions", "CompileContext", "check_order", "flatten"]


class Stage(enum.IntEnum):
    """Where an op runs in the fused pass, in order. Ops of a later stage cannot precede ops of
    an earlier one. Within UINT8 the order is the fused pass's (flips, warps, auto-augment policies,
    ColorJitter, RandomHSV, grayscale), declared by each op's ``not_after``; ops it allows in either
    order commute (the flips; grayscale may also precede the geometry)."""
    GEOMETRY = 0   # decode, resize and crop: fused into the region decode and the resampler
    UINT8 = 1      # flips and colour on the uint8 image (per sample)
    TENSOR = 2     # ToTensor: levels to float in [0, 1]
    NORMALIZE = 3  # the output table: (x - mean) / std, per channel or per image
    FLOAT = 4      # on the normalised float output (e.g. erasing)


_STAGE_WORDS = {
    Stage.GEOMETRY: "decode/geometry (fused into the resampler)",
    Stage.UINT8: "uint8 flips and colour",
    Stage.TENSOR: "to float",
    Stage.NORMALIZE: "output table",
    Stage.FLOAT: "float output",
}


class Op:
    """Base class of fastprep ops. Subclass it, set the class attributes and implement
    :meth:`compile`, then decorate with :func:`register_op`."""

    stage = None            # a Stage
    torchvision = ()        # torchvision class names this op converts from (v1 and v2 classes)
    converts = ()           # other classes it converts from: the class objects, or "module.Class"
                            # paths (matched by identity, Note [Conversion by identity])
    not_after = {}          # {op name: message} ops this one cannot follow ("{name}" is filled in)
    exclusive = {}          # {op name: message} ops this one cannot coexist with, in any order
    unique = True           # at most once per Compose
    params = ()             # per-sample keys this op adds to return_params (documentation)
    # In the uint8 op sequence (Note [Op sequence] in csrc/pipeline/plan.h): the fixed uint8 ops
    # (warps, policies, colour) cannot follow such an op unless ``commutes_with_sequence``.
    sequence = False
    commutes_with_sequence = False
    # May be written before the geometric ops: the fused result (geometry first) is within the
    # parity tolerance of applying it first (a channel mix commutes with resampling up to rounding).
    may_precede_geometry = False

    def compile(self, spec, ctx):
        """Sets this op's fields on ``spec`` (a ``_core.PlanSpec``); ``ctx`` is a
        :class:`CompileContext` with what earlier ops established."""
        raise NotImplementedError

    def check(self, ctx):
        """Raises ValueError when this op cannot follow what ``ctx`` describes (optional)."""

    def check_output(self, out):
        """Raises ValueError when this op cannot produce the resolved output options ``out``
        (an :class:`OutputOptions`: dtype, layout, color, channels) (optional)."""

    @classmethod
    def from_torchvision(cls, op, state):
        """A torchvision op -> a list of fastprep ops (``state`` carries Compose options, e.g.
        ``state["dtype"]``). The default builds ``cls()`` with no arguments."""
        return [cls()]

    def sample_params(self, rec):
        """This op's per-sample draws from one native ParamRecord (a numpy structured scalar)."""
        return {}

    def slot_params(self, rec, slot):
        """As :meth:`sample_params`, for ops with an entry in the op sequence or the containers
        (``slot``: its index there, None otherwise)."""
        return self.sample_params(rec)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self):
        return hash((type(self).__name__, repr(self)))


_REGISTRY = {}


def register_op(cls=None, *, replace=False):
    """Registers an :class:`Op` subclass (usable as a class decorator): Compose accepts it,
    from_torchvision converts its torchvision names, and it joins :func:`op_table`. A name
    already registered to another class is an error unless ``replace=True``
    (``@register_op(replace=True)``)."""
    if cls is None:
        return lambda c: register_op(c, replace=replace)
    if not (isinstance(cls, type) and issubclass(cls, Op)):
        raise TypeError(f"register_op takes an Op subclass, got {cls!r}")
    if not isinstance(cls.stage, Stage):
        raise TypeError(f"{cls.__name__}.stage must be a fastprep Stage, got {cls.stage!r}")
    if cls.compile is Op.compile:
        raise TypeError(f"{cls.__name__} must implement compile(spec, ctx)")
    old = _REGISTRY.get(cls.__name__)
    if old is not None and old is not cls and not replace:
        raise ValueError(f"an op named {cls.__name__} is already registered ({old.__module__}.{old.__qualname__}); "
                         "pass replace=True to replace it")
    for tv in cls.torchvision:
        owner = _by_torchvision().get(tv)
        if owner is not None and owner is not cls and not (replace and owner is old):
            raise ValueError(f"torchvision name {tv!r} is already converted by {owner.__name__}")
    for target in cls.converts:
        if not (isinstance(target, type) or (isinstance(target, str) and "." in target)):
            raise TypeError(f"{cls.__name__}.converts holds classes or 'module.Class' paths, got {target!r}")
        for other in _REGISTRY.values():
            if other is not cls and not (replace and other is old) and target in other.converts:
                raise ValueError(f"{target_name(target)} is already converted by {other.__name__}")
    _REGISTRY[cls.__name__] = cls
    return cls


def registered_ops():
    """{name: class} of every registered op, in registration order."""
    return {k: v for k, v in _REGISTRY.items() if not k.startswith("_")}


def _by_torchvision():
    return {tv: cls for cls in _REGISTRY.values() for tv in cls.torchvision}


def target_name(target):
    return f"{target.__module__}.{target.__qualname__}" if isinstance(target, type) else target


def _resolve(path):
    """The class a "module.Class" path names, importing the module only when its top package is
    imported already (an instance of it exists only then), else None."""
    import importlib
    import sys

    module, _, name = path.rpartition(".")
    if module.split(".", 1)[0] not in sys.modules:
        return None
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def converter_for(obj):
    """The registered op class that converts ``obj`` (an instance of torchvision's or another
    library's transform), matched by identity of ``type(obj)`` (Note [Conversion by identity] in
    fastprep/transforms/_torchvision.py), or None."""
    cls = type(obj)
    name = cls.__name__
    for op in _REGISTRY.values():
        targets = list(op.converts) + [f"{m}.{tv}" for tv in op.torchvision
                                       for m in ("torchvision.transforms", "torchvision.transforms.v2")]
        for target in targets:
            if isinstance(target, type):
                if target is cls:
                    return op
            elif target.rpartition(".")[2] == name and _resolve(target) is cls:
                return op
    return None


class OutputOptions:
    """The Compose's output options once resolved: dtype and layout names, color ("RGB", "BGR",
    "GRAY", "YCbCr") and the number of output channels."""

    def __init__(self, dtype, layout, color, channels):
        self.dtype, self.layout, self.color, self.channels = dtype, layout, color, channels


class CompileContext:
    """What the ops before the current one established while a Compose compiles."""

    def __init__(self):
        self.ops = []            # ops compiled so far
        self.has_tensor = False  # ToTensor seen
        self.levels = False      # ToTensor(scale=False): float values 0-255, not [0, 1]
        self.norm = None         # the Normalize op, if any
        self.gray = 0            # output channels of a Grayscale op (0 = none)
        self.interp = None       # interpolation of the resize, if any
        self.want_color = None   # channel order a Normalize preset needs

        # The uint8 op sequence and its containers (Note [Op sequence] in csrc/pipeline/plan.h).
        self.px = []             # (PixOp code, kPixArgs arguments, container, member)
        self.containers = []     # (kind, members, weights)
        self.inside = None       # (container, member) while a container compiles its members
        self.slots = {}          # id(op) -> its entry in px (sequence ops) or containers

    def seen(self, name):
        return any(type(o).__name__ == name for o in self.ops)

    def add_px(self, op, code, args):
        """Appends ``op`` to the uint8 op sequence (inside the current container, if any)."""
        from .. import _core

        args = [float(a) for a in args] + [0.0] * (int(_core.PIX_ARGS) - len(args))
        g, m = self.inside if self.inside is not None else (-1, 0)
        self.slots[id(op)] = len(self.px)
        self.px.append((int(getattr(_core.PixOp, code)), args, g, m))

    def finish(self, spec):
        """Writes the op sequence and its containers onto ``spec``."""
        if self.px:
            spec.px_ops = [e[0] for e in self.px]
            spec.px_args = [a for e in self.px for a in e[1]]
            spec.px_group = [e[2] for e in self.px]
            spec.px_member = [e[3] for e in self.px]
        if self.containers:
            spec.group_kind = [c[0] for c in self.containers]
            spec.group_members = [c[1] for c in self.containers]
            spec.group_p = [w for c in self.containers for w in c[2]]


def flatten(ops):
    """``ops`` with each container (an op with ``members``) followed by its members, in order."""
    for op in ops:
        yield op
        members = getattr(op, "members", None)
        if isinstance(op, Op) and members is not None:
            yield from flatten(members)


def check_order(ops):
    """Raises ValueError (TypeError for a non-op) when ``ops`` cannot be fused in this order.
    Every rule comes from the ops' stage, not_after, exclusive and unique declarations."""
    done = []
    for op in flatten(ops):
        if not isinstance(op, Op):
            raise TypeError(f"{op!r} is not a fastprep transform; use fastprep.from_torchvision() for torchvision ops")
        cls = type(op)
        name = cls.__name__
        if _REGISTRY.get(name) is not cls:
            raise TypeError(f"{cls.__module__}.{cls.__qualname__} is not a registered op: decorate it with "
                            "fastprep.register_op")
        for prev in done:
            pname = type(prev).__name__
            if pname in cls.not_after:
                raise ValueError(cls.not_after[pname].format(name=name, prev=pname))
            if pname in cls.exclusive:
                raise ValueError(cls.exclusive[pname].format(name=name, prev=pname))
            if name in type(prev).exclusive:
                raise ValueError(type(prev).exclusive[name].format(name=pname, prev=name))
        seq = next((p for p in done if p.sequence), None)
        if (seq is not None and cls.stage == Stage.UINT8 and not op.sequence and not cls.commutes_with_sequence
                and not getattr(op, "members", None)):
            raise ValueError(f"{name} after {type(seq).__name__} cannot be fused: the fused pass runs {name} before "
                             f"the op sequence ({type(seq).__name__}, GaussianBlur, RandomSolarize, ...); put {name} "
                             "first")
        if cls.unique and any(type(p) is cls for p in done):
            raise ValueError(f"{name} appears twice")
        later = [p for p in done if type(p).stage > cls.stage
                 and not (cls.stage == Stage.GEOMETRY and type(p).may_precede_geometry)]
        if later:
            pname = type(later[0]).__name__
            if cls.stage == Stage.GEOMETRY:
                raise ValueError(f"{name} after {pname} cannot be fused: put geometric ops first "
                                 "(flips and colour ops commute with them)")
            raise ValueError(f"{name} must come before {pname} to be fused ({name} runs at the "
                             f"{_STAGE_WORDS[cls.stage]} stage, {pname} at the {_STAGE_WORDS[type(later[0]).stage]} "
                             "stage)")
        done.append(op)




# ----------------------------------------------------------------------------------------------
# Documentation


def op_table(costs=None, parity=None):
    """The README's op table (markdown), generated from the registry. ``costs`` and ``parity``:
    optional {op name: text} for extra columns (the docs put each op's measured instructions and
    its measured difference from torchvision there)."""
    extra = (" | against torchvision v2 |" if parity else "") + (" | instructions per image |" if costs else "")
    rows = ["| op | what it does | stage | converts from | adds to `return_params`" + (extra or " |"),
            "|---|---|---|---|---|" + ("---|" if parity else "") + ("---:|" if costs else "")]
    for name, cls in _REGISTRY.items():
        if name.startswith("_"):
            continue
        tv = ", ".join([f"`{t}`" for t in cls.torchvision] + [f"`{target_name(t)}`" for t in cls.converts]) or "-"
        params = ", ".join(f"`{p.split(' ', 1)[0]}`" + (f" {p.split(' ', 1)[1]}" if " " in p else "")
                           for p in cls.params) or "-"
        doc = " ".join((cls.__doc__ or "").split())
        first = doc.split(". ")[0].rstrip(".") + "." if doc else ""
        cost = (f" {parity.get(name, '-')} |" if parity else "") + (f" {costs.get(name, '-')} |" if costs else "")
        rows.append(f"| `{name}` | {first.replace('|', '/')} | {_STAGE_WORDS[cls.stage]} | {tv} | {params} |{cost}")
    return "\n".join(rows) + "\n"
