"""fastprep.offline: the offline tools, `fastprep stats`, `fastprep preprocess` and `fastprep optimize`
(_optimize: the lossless restart-marker rewrite).

compute_stats (_stats), preprocess (_preprocess; its output formats in _npy, _jpeg and
_tar_shards, the OUT folder in _out) and their shared machinery (_jobs: the transform presets,
DecodeOptions, the prefetching batch iterator). The job steps are public names, so that
fastprep.ray runs them as Ray tasks through the same code: NpyJob / npy_start / write_npy_shards
/ npy_finish, TarJob / tar_start / write_tar_shards / tar_finish, stats_transform / accumulate /
stats_result.
"""
from ._jobs import (POLICIES, TRANSFORMS, DecodeOptions, add_exif_argument, build_transform, chunk_ranges,
                    iter_batches, transform_spec)
from ._jpeg import encode_jpeg
from ._jpeg import DEFAULT_RESTART_MCUS
from ._optimize import DEFAULT_OPTIMIZE_RESTART, optimize
from ._optimize import add_arguments as add_optimize_arguments
from ._optimize import main as optimize_main
from ._npy import NpyJob, npy_finish, npy_start, write_npy_shards
from ._out import OutputLockedError, check_job, check_out_outside_source, output_folder, summary
from ._preprocess import add_arguments as add_preprocess_arguments
from ._preprocess import main as preprocess_main
from ._preprocess import preprocess
from ._stats import (MAX_BATCH, FloatMoments, LevelMoments, accumulate, compute_stats, stats_result,
                     stats_transform)
from ._stats import add_arguments as add_stats_arguments
from ._stats import main as stats_main
from ._tar_shards import TarJob, tar_finish, tar_start, write_tar_shards

__all__ = ["POLICIES", "TRANSFORMS", "DecodeOptions", "add_exif_argument", "build_transform", "chunk_ranges",
           "iter_batches", "transform_spec", "encode_jpeg", "NpyJob", "npy_finish", "npy_start", "write_npy_shards",
           "OutputLockedError", "check_job", "check_out_outside_source", "output_folder", "summary", "preprocess",
           "MAX_BATCH", "FloatMoments", "LevelMoments", "accumulate", "compute_stats", "stats_result",
           "stats_transform", "TarJob", "tar_finish", "tar_start", "write_tar_shards", "add_preprocess_arguments",
           "preprocess_main", "add_stats_arguments", "stats_main", "DEFAULT_RESTART_MCUS", "DEFAULT_OPTIMIZE_RESTART", "optimize",
           "add_optimize_arguments", "optimize_main"]
