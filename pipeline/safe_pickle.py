"""Reading pickles whose format is fixed by others, without letting them run code.

Data files that arrive as pickles (CIFAR and ImageNet16 batches, the NAS-Bench-201 / NATS-Bench archives)
can name any importable callable, and a planted or swapped file would then run code as whoever prepares
the data. Only `find_class` can reach code, so each format lists the globals it may use, and every other
import is refused, by name, before it happens (README "Security").
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from typing import IO, Any

# A global the format may name -> what to hand back for it (None: the real object, imported normally).
AllowList = Mapping[tuple[str, str], Callable[..., Any] | None]


class AllowListUnpickler(pickle.Unpickler):
    """An unpickler that imports only the globals of `allowed`; `holds` says what the format contains."""

    def __init__(self, handle: IO[bytes], allowed: AllowList, holds: str, *, encoding: str = "ASCII") -> None:
        super().__init__(handle, encoding=encoding)
        self.allowed = allowed
        self.holds = holds

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"refused to import {module}.{name}: {self.holds}")
        replacement = self.allowed[(module, name)]
        return replacement if replacement is not None else super().find_class(module, name)


def restricted_load(handle: IO[bytes], allowed: AllowList, holds: str, *, encoding: str = "ASCII") -> Any:
    """Unpickle one object from `handle` importing nothing outside `allowed`."""
    return AllowListUnpickler(handle, allowed, holds, encoding=encoding).load()
