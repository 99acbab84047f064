"""fastprep.data: datasets and the Loader.

Indexing a source into a Dataset (_datasets: ImageFolder, flat folders, file lists, sequences, tar
shards through fastprep.io; Note [Labels]), the Loader (_loader: epochs, sharding, the producer
thread, the buffer ring, resume), reading preprocessed npy shards (_shards), batch mixing
(_mix: MixUp, CutMix; _timm_mix: timm's Mixup) and the built-in sample images (_samples).
"""
from ._datasets import IMG_EXTENSIONS, Dataset, LabelError, index_for_job, index_source, warn_skipped
from ._loader import ErrorLog, Loader
from ._mix import CutMix, MixChoice, MixUp, check_mix, mix_batch, mix_key
from ._timm_mix import TimmMixup
from ._samples import sample_paths
from ._shards import ShardDataset, ShardTruncatedError, is_shard_dir

__all__ = ["IMG_EXTENSIONS", "Dataset", "LabelError", "index_for_job", "index_source", "warn_skipped", "ErrorLog",
           "Loader", "CutMix", "MixUp", "MixChoice", "TimmMixup", "check_mix", "mix_batch", "mix_key", "sample_paths",
           "ShardDataset", "ShardTruncatedError", "is_shard_dir"]
