"""fastprep for timm users (the ``[timm]`` extra: ``pip install 'fastprep[timm]'``).

:func:`create_loader` takes ``timm.data.create_loader``'s arguments and returns a loader that
timm's training loop can use as it uses timm's: it builds timm's own ``create_transform`` from the
same arguments and converts it (``fp.from_torchvision``: timm's classes by identity, RandAugment,
AutoAugment and AugMix in Pillow's arithmetic), runs it on fastprep's native Loader, and yields what
timm's loader yields:

* ``use_prefetcher=True`` (timm's default): uint8 batches from the fused pass, mixed by timm's
  ``FastCollateMixup`` (``collate_fn``) as fp.TimmMixup, then on ``device``: to ``img_dtype``,
  normalised with ``mean * 255`` / ``std * 255`` and erased by timm's own ``RandomErasing``, as
  timm's ``PrefetchLoader`` does;
* ``use_prefetcher=False``: normalised float32 CPU batches with integer labels (timm's loop moves
  them and applies its ``mixup_fn``); a ``collate_fn`` that is timm's ``Mixup`` mixes them here.

The loader has ``len``, ``sampler.set_epoch`` (timm calls it in distributed runs), ``dataset``
and ``mixup_enabled``. timm is imported only when :func:`create_loader` runs.
"""
import numbers
import os

from ._errors import MissingDependencyError

__all__ = ["create_loader", "TimmLoader"]

PIP = "pip install 'fastprep[timm]' (or pip install timm)"
IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)


def _timm():
    try:
        import timm.data
    except ImportError:
        raise MissingDependencyError(f"fastprep.timm needs timm: {PIP}") from None
    return timm


def _source(dataset):
    """fastprep's Loader source for ``dataset``: a folder (ImageFolder layout), a list of paths or
    (path, label), timm's ImageDataset (its reader's samples) or torchvision's ImageFolder."""
    if isinstance(dataset, (str, os.PathLike, list, tuple)):
        return dataset
    reader = getattr(dataset, "reader", None)
    samples = getattr(reader, "samples", None)
    if samples is None:
        samples = getattr(dataset, "samples", None)
    if samples is None:
        raise TypeError(f"create_loader needs a folder, a list of (path, label), timm's ImageDataset of a folder or "
                        f"torchvision's ImageFolder; got {type(dataset).__name__} (an IterableImageDataset or a "
                        "reader without files: use fp.Loader on tar shards instead)")
    return [(str(p), int(t)) for p, t in samples]


class _Sampler:
    """What timm's train loop touches on ``loader.sampler``: ``set_epoch`` and ``len``."""

    def __init__(self, loader):
        self._loader = loader

    def set_epoch(self, epoch):
        self._loader.set_epoch(epoch)

    def __len__(self):  # this rank's samples per epoch, as DistributedSampler counts them
        L = self._loader
        n, w = len(L.dataset), L.world_size
        return (n // w if L.drop_last else -(-n // w)) if w > 1 else n


class TimmLoader:
    """The loader :func:`create_loader` returns (see the module docstring)."""

    def __init__(self, loader, mix, device, img_dtype, mean, std, random_erasing, prefetcher):
        self.loader = loader
        self._mix = mix
        self.device = device
        self.img_dtype = img_dtype
        self.prefetcher = prefetcher
        self.random_erasing = random_erasing
        self._mean, self._std = mean, std
        self.sampler = _Sampler(loader)

    @property
    def dataset(self):
        return self.loader.dataset

    @property
    def batch_size(self):
        return self.loader.batch_size

    @property
    def mixup_enabled(self):
        return self._mix is not None and self._mix.mixup_enabled

    @mixup_enabled.setter
    def mixup_enabled(self, value):
        if self._mix is not None:
            self._mix.mixup_enabled = bool(value)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        import torch

        mean = std = None
        for x, y in self.loader:
            if not self.prefetcher:
                yield x, y
                continue
            if mean is None:
                c = x.shape[1]
                mean = torch.tensor([v * 255 for v in self._mean][:c], device=self.device).view(1, c, 1, 1)
                std = torch.tensor([v * 255 for v in self._std][:c], device=self.device).view(1, c, 1, 1)
                mean, std = mean.to(self.img_dtype), std.to(self.img_dtype)
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            x = x.to(self.img_dtype).sub_(mean).div_(std)
            if self.random_erasing is not None:
                x = self.random_erasing(x)
            yield x, y

    def set_epoch(self, epoch):
        self.loader.set_epoch(epoch)


def create_loader(dataset, input_size, batch_size, is_training=False, no_aug=False, re_prob=0.0, re_mode="const",
                  re_count=1, re_split=False, train_crop_mode=None, scale=None, ratio=None, hflip=0.5, vflip=0.0,
                  color_jitter=0.4, color_jitter_prob=None, grayscale_prob=0.0, gaussian_blur_prob=0.0,
                  auto_augment=None, num_aug_repeats=0, num_aug_splits=0, interpolation="bilinear",
                  mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD, num_workers=1, distributed=False,
                  crop_pct=None, crop_mode=None, crop_border_pixels=None, collate_fn=None, pin_memory=False,
                  fp16=False, img_dtype=None, device=None, use_prefetcher=True, use_multi_epochs_loader=False,
                  persistent_workers=True, worker_seeding="all", tf_preprocessing=False, seed=None, strict=False,
                  **loader_kwargs):
    """timm's ``create_loader`` on fastprep (see the module docstring). fastprep's own options:
    ``seed`` (augmentation and order are functions of seed, epoch and sample), ``strict`` (refuse
    a transform that cannot be fused whole instead of running its remainder in Python) and any
    further ``fp.Loader`` keyword. ``num_workers`` is the number of native threads.
    ``use_multi_epochs_loader``, ``persistent_workers`` and ``worker_seeding`` have nothing to do
    (fastprep's threads persist and its draws are keyed per sample); ``pin_memory`` is the
    Loader's own choice (pinned when CUDA is there)."""
    _timm()
    import torch
    from timm.data import create_transform

    from . import transforms as _tf
    from .data import Loader, TimmMixup

    for bad, why in ((re_split, "re_split (RandomErasing on part of the batch)"),
                     (num_aug_splits, "num_aug_splits (AugMix's split batches)"),
                     (num_aug_repeats, "num_aug_repeats (timm's RepeatAugSampler)"),
                     (tf_preprocessing, "tf_preprocessing")):
        if bad:
            raise ValueError(f"fastprep.timm.create_loader does not support {why}; use timm's create_loader")
    if isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral) or num_workers < 0:
        raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
    img_dtype = img_dtype or (torch.float16 if fp16 else torch.float32)
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    tt = create_transform(input_size, is_training=is_training, no_aug=no_aug, train_crop_mode=train_crop_mode,
                          scale=scale, ratio=ratio, hflip=hflip, vflip=vflip, color_jitter=color_jitter,
                          color_jitter_prob=color_jitter_prob, grayscale_prob=grayscale_prob,
                          gaussian_blur_prob=gaussian_blur_prob, auto_augment=auto_augment,
                          interpolation=interpolation, mean=mean, std=std, crop_pct=crop_pct, crop_mode=crop_mode,
                          crop_border_pixels=crop_border_pixels, re_prob=re_prob, re_mode=re_mode,
                          re_count=re_count, re_num_splits=0, use_prefetcher=use_prefetcher, separate=False)
    transform = _tf.from_torchvision(tt, strict=strict)
    mix = None
    if collate_fn is not None:
        name = type(collate_fn).__name__
        if name in ("Mixup", "FastCollateMixup") and type(collate_fn).__module__.startswith("timm."):
            mix = TimmMixup.from_timm(collate_fn)
        elif isinstance(collate_fn, TimmMixup):
            mix = collate_fn
        else:
            loader_kwargs["collate_fn"] = collate_fn
    rank, world_size = 0, 1
    if distributed:
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            raise ValueError("distributed=True needs torch.distributed initialised (rank and world size)")
        rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    loader = Loader(_source(dataset), transform, batch_size=batch_size, shuffle=is_training, drop_last=is_training,
                    threads=num_workers or None, seed=seed, rank=rank, world_size=world_size, mix=mix,
                    **loader_kwargs)
    erasing = None
    if use_prefetcher and is_training and not no_aug and re_prob > 0:
        from timm.data.random_erasing import RandomErasing

        erasing = RandomErasing(probability=re_prob, mode=re_mode, max_count=re_count, num_splits=0, device=device)
    return TimmLoader(loader, mix, device, img_dtype, mean, std, erasing, use_prefetcher)
