"""How a sample is named in messages."""
import os

from ._tar import TarMember


def display_name(item, index):
    if isinstance(item, (str, TarMember)):
        return str(item)
    if isinstance(item, os.PathLike):
        return os.fspath(item)
    return f"<item {index}>"
