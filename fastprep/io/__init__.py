"""fastprep.io: reading what fastprep reads and writing its files, the layer above the leaves.

Files as the native reader reads them (_files), WebDataset tar shards (_tar), the Pillow fallback
for the formats without a native decoder (_pillow), the on-disk formats of the offline tools
(_formats, one versioned record each) and the file helpers they write with (_atomic: atomic
writes, lossless names, failure records). Other subpackages import these names from here.
"""
from ._atomic import (WriteError, atomic_write_bytes, atomic_write_json, check_writable_dir, display, failure,
                      failures_from_json, failures_to_json, ignore_sigxfsz, json_default, make_dirs, name_from_json,
                      name_to_json, names_fields, names_from_json, names_to_json, npy_bytes, path_fields, print_failures,
                      remove_quietly, write_error)
from ._files import MAX_FILE_BYTES, open_regular, path_str, read_file, read_member
from ._formats import (INDEX_FORMATS, VERSION, FormatError, JpegIndex, RunRecord, ShardEntry, ShardIndex, ShardMeta,
                       StatsRecord, TarIndex, check_version, load_json, read_index)
from ._items import display_name
from ._pillow import decode, decode_oriented, pillow_available, pillow_image, sniff
from ._tar import (TarFormatError, TarMember, expand_braces, expand_shards, index_shard, index_tars, scan_shard,
                   tar_source)

__all__ = [
    "WriteError", "atomic_write_bytes", "atomic_write_json", "check_writable_dir", "display", "failure",
    "failures_from_json", "failures_to_json", "ignore_sigxfsz", "json_default", "make_dirs", "name_from_json",
    "name_to_json", "names_fields", "names_from_json", "names_to_json", "npy_bytes", "path_fields", "print_failures",
    "remove_quietly", "write_error", "MAX_FILE_BYTES", "open_regular", "path_str", "read_file", "read_member",
    "INDEX_FORMATS", "VERSION", "FormatError", "JpegIndex", "RunRecord", "ShardEntry", "ShardIndex", "ShardMeta",
    "StatsRecord", "TarIndex", "check_version", "load_json", "read_index", "display_name", "decode",
    "decode_oriented", "pillow_available", "pillow_image", "sniff", "TarFormatError", "TarMember", "expand_braces", "expand_shards",
    "index_shard", "index_tars", "scan_shard", "tar_source",
]
