"""MultiView: several augmented views of each image from one decode (SimCLR's two, DINO's two
global and several local crops), each view a Compose with its own ops, output size and random
stream (Note [Multi-view decode] in csrc/pipeline/pipeline.h)."""
import threading

import numpy as np

from .. import _core
from .._checks import check_indices, check_policy, check_seed
from ._color import ColorJitter, RandomGrayscale, RandomSolarize
from ._compose import Compose, _as_output, batch_arguments, run_native
from ._container import RandomApply
from ._geometry import RandomHorizontalFlip, RandomResizedCrop
from ._misc import GaussianBlur, Normalize, PILGaussianBlur, ToTensor
from ._op import Op

__all__ = ["MultiView"]

_DECODER_OPTIONS = ("max_pixels", "strict", "allow_truncated", "apply_exif_orientation", "splice_restarts")


class MultiView:
    """Several views of every image, each a :class:`Compose`, from one decode per image.

    ``MultiView([view, view])`` is SimCLR's pair, ``MultiView([global_1, global_2] + [local] * 8)``
    DINO's multi-crop. Each image is decoded once: the region every view reads, at the largest
    scale any view needs; then each view resamples its crop and runs its ops.

    Randomness: view ``v`` of a sample draws with the seed :meth:`view_seed` ``(seed, v)`` (view 0
    with ``seed`` itself), so a view's pixels depend neither on the other views nor on how many
    there are, and view ``v`` equals ``views[v].batch(items, seed=MultiView.view_seed(seed, v))``
    byte for byte (in exact mode; in fast mode a view may be resampled from a finer DCT scale than
    it would pick alone). Two equal views (``[view, view]``) therefore draw differently.

    Args:
        views: Composes (or lists of ops, each made a Compose with its defaults); at most 64.
            They must agree on the decoder options (max_pixels, strict, allow_truncated,
            apply_exif_orientation, splice_restarts), have a fixed output size and one crop per sample.
        stack: :meth:`batch` returns one array ``(N, V, ...)`` instead of a list of V arrays (all
            views must then have one shape and dtype).
        on_error: default policy of :meth:`batch`: "raise", "skip" or "zeros" (for every view).
    """

    def __init__(self, views, *, stack=False, on_error="raise"):
        if isinstance(views, (Compose, Op)) or not isinstance(views, (list, tuple)):
            raise TypeError(f"MultiView takes a list of views (Composes), got {type(views).__name__}")
        views = [Compose(v) if isinstance(v, (list, tuple)) else v for v in views]
        if not 1 <= len(views) <= 64:
            raise ValueError(f"MultiView needs 1 to 64 views, got {len(views)}")
        for k, v in enumerate(views):
            if not isinstance(v, Compose) or type(v).__name__ == "HybridCompose":
                raise TypeError(f"view {k} must be a fused fp.Compose, got {type(v).__name__}: a view with a Python "
                                "remainder cannot share the decode (run it as its own Compose)")
            if v.output_size is None:
                raise ValueError(f"view {k} has no fixed output size: end it with a crop (or Resize((h, w)))")
            if v.crops_per_sample != 1:
                raise ValueError(f"view {k} has {v.crops_per_sample} crops per sample (FiveCrop/TenCrop): "
                                 "use one view per crop")
            for opt in _DECODER_OPTIONS:
                if getattr(v, opt) != getattr(views[0], opt):
                    raise ValueError(f"views decode the image once, so they must agree on {opt}: view 0 has "
                                     f"{getattr(views[0], opt)!r}, view {k} {getattr(v, opt)!r}")
        self.views = views
        self.stack = bool(stack)
        if self.stack and len({(v.output_shape(), v.dtype) for v in views}) != 1:
            raise ValueError("stack=True needs views of one output shape and dtype")
        self.on_error = check_policy(on_error)
        self._local = threading.local()

    # Decoder options (run_native reads them here): the first view's, which all share.
    max_pixels = property(lambda self: self.views[0].max_pixels)
    strict = property(lambda self: self.views[0].strict)
    allow_truncated = property(lambda self: self.views[0].allow_truncated)
    apply_exif_orientation = property(lambda self: self.views[0].apply_exif_orientation)

    def __reduce__(self):
        return (MultiView, (self.views,), {"stack": self.stack, "on_error": self.on_error})

    def __setstate__(self, state):
        self.stack, self.on_error = state["stack"], state["on_error"]

    def __repr__(self):
        inner = ",\n".join("    " + repr(v).replace("\n", "\n    ") for v in self.views)
        return f"MultiView([\n{inner}\n]" + (", stack=True" if self.stack else "") + ")"

    def __len__(self):
        return len(self.views)

    def with_options(self, **options):
        """A new MultiView whose views have some Compose options changed (``exact``,
        ``apply_exif_orientation``, ...)."""
        return MultiView([v.with_options(**options) for v in self.views], stack=self.stack, on_error=self.on_error)

    @staticmethod
    def view_seed(seed, view):
        """The seed view ``view`` of a sample draws with when the MultiView runs with ``seed``."""
        return int(_core.view_seed(check_seed(seed), int(view)))

    @property
    def last_seed(self):
        """The seed of the last :meth:`batch` or call on this thread (see Compose.last_seed)."""
        return getattr(self._local, "seed", None)

    @property
    def output_shapes(self):
        """Per view, the shape of one sample's output."""
        return [v.output_shape() for v in self.views]

    def __call__(self, data, seed=None, epoch=0):
        """One image -> a list with one array (or tensor) per view."""
        if isinstance(data, (list, tuple)):
            raise TypeError(f"MultiView() takes one image, got a {type(data).__name__}: use .batch(items) for several")
        out = self.batch([data], seed=seed, epoch=epoch, threads=1)
        return out[0] if self.stack else [o[0] for o in out]

    def batch(self, items, seed=None, threads=None, out=None, return_params=False, epoch=0, on_error=None,
              indices=None):
        """A list of images -> a list of V arrays ``(N, ...)``, one per view, as DINO's and
        SimCLR's training loops take them (``stack=True``: one ``(N, V, ...)`` array).

        The arguments are :meth:`Compose.batch`'s; ``out`` is a list of V buffers (or, with
        ``stack``, one). ``return_params`` also returns, per view, the list of per-sample params
        dicts; each has ``"view"``, and ``"decode_sessions"`` (how many times the sample's JPEG
        was decoded for all its views: 1; 0 for other formats and arrays).
        """
        _, natives, seed, epoch, policy, torch_input = batch_arguments(self, items, seed, epoch, on_error)
        want_torch = [v._want_torch(torch_input) for v in self.views]
        n = len(natives)
        keys = list(range(n)) if indices is None else check_indices(indices)
        if len(keys) != n:
            raise ValueError(f"indices must have one entry per item: {len(keys)} for {n} items")
        arrs, results = self._outputs(n, out)
        stacked_out = self._stack_out(n, out)  # checked before the run, filled after it
        pos = np.arange(n, dtype=np.int64)
        params, errors = self.execute(_core.Items(natives), natives, pos, pos, keys, arrs, None,
                                      self.views[0].engine(threads), seed, epoch, want_params=return_params)
        failed = set()
        for i in sorted(errors):
            if policy == "raise":
                raise errors[i]
            failed.add(i)
            for v in range(len(self.views)):
                if params is not None:
                    params[v][i]["error"] = str(errors[i])
                    params[v][i]["error_reason"] = errors[i].reason
                if policy == "zeros":
                    arrs[v][i] = 0
        if params is not None:
            for v, pv in enumerate(params):
                for k, d in zip(keys, pv):
                    d["seed"], d["epoch"], d["index"], d["view"] = self.view_seed(seed, v), epoch, k, v
        if results is None:
            results = [view._wrap(a, t) for view, a, t in zip(self.views, arrs, want_torch)]
        if policy == "skip" and failed:
            keep = [i for i in range(n) if i not in failed]
            for a in arrs:
                a[: len(keep)] = a[keep]
            results = [r[: len(keep)] for r in results]
            if params is not None:
                params = [[p[i] for i in keep] for p in params]
        if self.stack:
            results = self._stacked(arrs, len(results[0]), want_torch[0], stacked_out)
        return (results, params) if return_params else results

    def _outputs(self, n, out):
        """Per view, the array the native pass writes, and the caller's results (None: wrap them).
        With ``stack`` the views are written apart and stacked after (a copy)."""
        if out is None or self.stack:
            return [np.empty((n,) + v.output_shape(), v.np_dtype) for v in self.views], None
        if not isinstance(out, (list, tuple)) or len(out) != len(self.views):
            raise ValueError(f"out must be a list of {len(self.views)} buffers, one per view")
        pairs = [_as_output(o, (n,) + v.output_shape(), v.np_dtype, v.dtype) for o, v in zip(out, self.views)]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def _stack_out(self, n, out):
        """With ``stack``: the caller's ``(N, V, ...)`` buffer and the result over it, checked."""
        if not self.stack or out is None:
            return None
        shape = (n, len(self.views)) + self.views[0].output_shape()
        return _as_output(out, shape, self.views[0].np_dtype, self.views[0].dtype)

    def _stacked(self, arrs, n, want_torch, stacked_out):
        """The first n samples of every view as one (n, V, ...) array (into the caller's buffer)."""
        if stacked_out is not None:
            arr, result = stacked_out
            for v, a in enumerate(arrs):
                arr[:n, v] = a[:n]
            return result if n == len(arr) else result[:n]
        stacked = np.stack([a[:n] for a in arrs], 1)
        return self.views[0]._wrap(stacked, want_torch)

    # --- the self-supervised recipes: their papers' parameters, their official code's ops -----

    @classmethod
    def simclr(cls, size=224, strength=1.0, blur=True, **options):
        """SimCLR's two views (Chen et al., ICML 2020, appendix A): RandomResizedCrop(size,
        scale=(0.08, 1)), flip, ``RandomApply([ColorJitter(0.8 s, 0.8 s, 0.8 s, 0.2 s)], p=0.8)``
        with s = ``strength``, RandomGrayscale(0.2), and on ImageNet a Gaussian blur with p=0.5,
        sigma in [0.1, 2.0] and a kernel 10% of the size (odd), then ToTensor; no normalisation (as
        the paper's code). torchvision's ops and arithmetic, as the PyTorch ports use them.
        ``options`` go to each view's Compose (dtype, exact, ...)."""
        s = float(strength)
        k = int(0.1 * size) // 2 * 2 + 1
        ops = [RandomResizedCrop(size, scale=(0.08, 1.0)), RandomHorizontalFlip(),
               RandomApply([ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8), RandomGrayscale(0.2)]
        if blur:
            ops.append(RandomApply([GaussianBlur(k, (0.1, 2.0))], p=0.5))
        view = Compose(ops + [ToTensor()], **options)
        return cls([view, view])

    @classmethod
    def moco_v2(cls, size=224, **options):
        """MoCo v2's two views (Chen et al. 2020, "Improved Baselines with Momentum Contrastive
        Learning"; facebookresearch/moco ``main_moco.py --aug-plus``): RandomResizedCrop(size,
        scale=(0.2, 1)), ``RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8)``,
        RandomGrayscale(0.2), its own PIL GaussianBlur (radius uniform in [0.1, 2.0]) with p=0.5,
        flip, ToTensor, ImageNet Normalize. The blur is Pillow's (PILGaussianBlur); ColorJitter is
        torchvision v2's arithmetic (the official code runs v1 on PIL images, whose ImageEnhance
        blends round differently)."""
        view = Compose([RandomResizedCrop(size, scale=(0.2, 1.0)),
                        RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), RandomGrayscale(0.2),
                        PILGaussianBlur((0.1, 2.0), p=0.5), RandomHorizontalFlip(), ToTensor(),
                        Normalize("imagenet")], **options)
        return cls([view, view])

    @classmethod
    def byol(cls, size=224, **options):
        """BYOL's two asymmetric views (Grill et al., NeurIPS 2020, table 6): RandomResizedCrop(size,
        scale=(0.08, 1)), flip, ``RandomApply([ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8)``,
        RandomGrayscale(0.2), Gaussian blur (sigma in [0.1, 2.0], kernel 23 at 224) with p=1.0 in
        the first view and 0.1 in the second, solarization (threshold 0.5: level 128) with p=0.0
        and 0.2, ToTensor, ImageNet Normalize; torchvision's ops and arithmetic."""
        k = int(0.1 * size) // 2 * 2 + 1

        def view(blur_p, solarize_p):
            ops = [RandomResizedCrop(size, scale=(0.08, 1.0)), RandomHorizontalFlip(),
                   RandomApply([ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8), RandomGrayscale(0.2),
                   RandomApply([GaussianBlur(k, (0.1, 2.0))], p=blur_p)]
            if solarize_p:
                ops.append(RandomSolarize(128, p=solarize_p))
            return Compose(ops + [ToTensor(), Normalize("imagenet")], **options)

        return cls([view(1.0, 0.0), view(0.1, 0.2)])

    @classmethod
    def dino(cls, global_size=224, local_size=96, local_crops=8, global_scale=(0.4, 1.0), local_scale=(0.05, 0.4),
             **options):
        """DINO's multi-crop (Caron et al., ICCV 2021; facebookresearch/dino
        ``DataAugmentationDINO``): two global crops (RandomResizedCrop(global_size,
        scale=global_scale, bicubic)) and ``local_crops`` local ones (local_size, local_scale,
        bicubic), each with flip, ``RandomApply([ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8)`` and
        RandomGrayscale(0.2); its own PIL GaussianBlur (radius in [0.1, 2.0]) with p=1.0 on the
        first global crop, 0.1 on the second (which also gets its Solarization: ImageOps.solarize,
        p=0.2) and 0.5 on the local crops; ToTensor, ImageNet Normalize. The blur is Pillow's and
        the solarization PIL's (threshold 128); ColorJitter is torchvision v2's arithmetic."""
        def view(size, scale, blur_p, solarize_p=0.0):
            ops = [RandomResizedCrop(size, scale=scale, interpolation="bicubic"), RandomHorizontalFlip(),
                   RandomApply([ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8), RandomGrayscale(0.2),
                   PILGaussianBlur((0.1, 2.0), p=blur_p)]
            if solarize_p:
                ops.append(RandomSolarize(128, p=solarize_p))
            return Compose(ops + [ToTensor(), Normalize("imagenet")], **options)

        local = view(local_size, local_scale, 0.5)
        return cls([view(global_size, global_scale, 1.0), view(global_size, global_scale, 0.1, 0.2)]
                   + [local] * int(local_crops))

    def execute(self, native_items, raw_items, picks, slots, keys, arrs, size, engine, seed, epoch,
                want_params=True, cancel=None):
        """The Loader's entry point (Compose.execute's, with one output array per view): runs
        picks[i] into arrs[v][slots[i]] for every view v from one decode. Returns (per view, the
        params per position, or None; {position: DecodeError})."""
        outputs = [(a, v.output_size) for a, v in zip(arrs, self.views)]
        return run_native([v._plan for v in self.views], outputs, [v._params for v in self.views], self,
                          native_items, raw_items, picks, slots, keys, engine, seed, epoch, want_params, cancel)
