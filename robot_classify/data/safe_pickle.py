"""Load PROPS / CIFAR-10 pickles without letting them run code.

A pickle names the callables it wants to build objects with; `pickle.load` imports and
calls whatever it names (`os.system`, `builtins.eval`, ...). These datasets only need
numpy arrays and plain containers, so the unpickler allows exactly the numpy
reconstruction helpers and refuses every other global with `UnsafePickleError`.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core._multiarray_umath", "_reconstruct"),  # the same function, as older numpy pickled it
    ("numpy._core._multiarray_umath", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "bytearray"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # how Python 2 era pickles (CIFAR-10) spell byte strings
}
MAX_PICKLE_BYTES = 1 << 30


class UnsafePickleError(ValueError):
    """The file asked to construct something other than arrays and plain containers."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise UnsafePickleError(f"refusing to load {module}.{name}: dataset pickles may only hold "
                                "numpy arrays, numbers, strings, lists and dicts")


def safe_load(path: str | Path) -> Any:
    """Unpickle `path` allowing only numpy arrays/dtypes and plain containers."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_PICKLE_BYTES:
        raise ValueError(f"{path}: {size} bytes is larger than any dataset batch this loader accepts")
    return safe_loads(path.read_bytes(), source=str(path))


def safe_loads(data: bytes, source: str = "pickle") -> Any:
    """`safe_load` for bytes already read: a pickle inside another file (an object `.npy`)."""
    if len(data) > MAX_PICKLE_BYTES:
        raise ValueError(f"{source}: {len(data)} bytes is larger than any dataset batch this loader accepts")
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{source}: {e}") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError,
            KeyError, MemoryError) as e:
        raise ValueError(f"{source}: not a readable dataset pickle ({type(e).__name__}: {e})") from None
