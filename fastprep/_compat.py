"""The module paths of fastprep 0.1, kept as aliases so that what was pickled with 0.1 still loads.

0.1 kept everything in flat private modules (fastprep._ops, fastprep._transforms, ...); a pickle
names a class by its module path (``fastprep._ops.Resize``, ``fastprep._transforms._rebuild_compose``,
``fastprep._datasets.Dataset``, ``fastprep._tar.TarMember``, ...). Each old path is registered
here as a small module whose attributes are the objects' new homes. Nothing in fastprep imports
these aliases; new code imports from ``fastprep`` and its subpackages (CHANGELOG, 0.2).
"""
import sys
import types

from . import data, io, offline, transforms


def _public(package):
    return {k: getattr(package, k) for k in package.__all__}


# Each old module path gets the public names of the subpackage its objects moved to (which cover
# every class a 0.1 pickle can name), plus Compose's old rebuild function.
_ALIASES = {
    "_ops": _public(transforms),
    "_transforms": {**_public(transforms), "_rebuild_compose": transforms.rebuild_compose},
    "_torchvision": _public(transforms),
    "_pool": _public(transforms),
    "_datasets": _public(data),
    "_loader": _public(data),
    "_mix": {**_public(data), "RandomChoice": data.MixChoice},  # renamed MixChoice in 0.2
    "_shards": _public(data),
    "_samples": _public(data),
    "_tar": _public(io),
    "_formats": _public(io),
    "_fallback": _public(io),
    "_io": _public(io),
    "_offline": {**_public(io), **_public(offline)},
    "_preprocess": _public(offline),
    "_stats": _public(offline),
}


def _install():
    package = sys.modules[__name__.rpartition(".")[0]]
    for name, attrs in _ALIASES.items():
        full = f"{package.__name__}.{name}"
        if full in sys.modules:
            continue
        mod = types.ModuleType(full, f"fastprep 0.1's {full}, an alias kept for pickles (fastprep/_compat.py)")
        mod.__dict__.update(attrs)
        sys.modules[full] = mod


_install()
