"""fastprep.bench: `fastprep bench`, fastprep against torchvision v2, torchvision v1 (PIL), DALI and
libjpeg-turbo's bare decode on the same in-memory files, timed in interleaved rounds (_run)."""
from ._run import (DEFAULT_REPEAT, DEFAULT_VS, FORMATS, JITTER, MODES, PEERS, add_arguments, format_table,
                   library_versions, machine_info, main, plot, run_bench)

__all__ = ["DEFAULT_REPEAT", "DEFAULT_VS", "FORMATS", "JITTER", "MODES", "PEERS", "add_arguments", "format_table",
           "library_versions", "machine_info", "main", "plot", "run_bench"]
