"""Small internal helpers shared by every wing (the bottom floor, with :mod:`.errors`).

* parameter checks with one message style — ``"k=0: must be an integer >= 1"``
  (the parameter's name, the value, the rule), raising :class:`ParameterError`
  (scikit-learn's ``check_scalar`` idea, librosa's ``valid_*``);
* :func:`atomic_write` — temporary file in the same folder, fsync, ``os.replace``,
  fsync of the folder: a crash leaves the old file or the new one, never half of one;
* :func:`json_default` — one JSON encoder for NumPy scalars/arrays and paths;
* :func:`sha256_file`, :func:`cpu_count`, :func:`unit_rows`, :data:`PITCH_CLASSES`.

Nothing here changes process state at import.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
import re
import tempfile
from typing import Callable, Iterable

import numpy as np

from .errors import ParameterError

__all__ = [
    "PITCH_CLASSES",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_choice",
    "check_int",
    "check_number",
    "cpu_count",
    "escape_surrogates",
    "fsync_dir",
    "json_default",
    "sha256_file",
    "unit_rows",
]

#: The 12 pitch classes in the spelling every output uses (sharps; Krumhansl/Temperley order).
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


# --------------------------------------------------------------------------- checks
def check_int(name: str, value, *, min: int | None = 1, max: int | None = None, allow_none: bool = False):
    """``value`` as an ``int`` if it is an integer (not a bool) in ``[min, max]``.

    Raises
    ------
    ParameterError
        ``"{name}={value!r}: must be an integer >= {min}"`` (or ``<= max``, or ``in [min, max]``).
    """
    if value is None and allow_none:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer))
    if ok and min is not None and value < min:
        ok = False
    if ok and max is not None and value > max:
        ok = False
    if not ok:
        raise ParameterError(f"{name}={value!r}: must be an integer {_range_rule(min, max)}".rstrip())
    return int(value)


def check_number(name: str, value, *, min: float | None = None, max: float | None = None,
                 min_inclusive: bool = True, max_inclusive: bool = True, allow_none: bool = False):
    """``value`` as a finite ``float`` in the given range.

    Raises
    ------
    ParameterError
        ``"{name}={value!r}: must be a finite number > 0"`` and the like.
    """
    if value is None and allow_none:
        return None
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(float(value))
    if ok and min is not None and (value < min or (not min_inclusive and value == min)):
        ok = False
    if ok and max is not None and (value > max or (not max_inclusive and value == max)):
        ok = False
    if not ok:
        rule = _range_rule(min, max, min_inclusive, max_inclusive)
        raise ParameterError(f"{name}={value!r}: must be a finite number {rule}".rstrip())
    return float(value)


def check_choice(name: str, value, choices: Iterable):
    """``value`` if it is one of ``choices``.

    Raises
    ------
    ParameterError
        ``"{name}={value!r}: must be one of 'a', 'b'"``.
    """
    choices = tuple(choices)
    try:
        ok = value in choices
    except TypeError:
        ok = False
    if not ok:
        raise ParameterError(f"{name}={value!r}: must be one of {', '.join(repr(c) for c in choices)}")
    return value


def _range_rule(lo, hi, lo_inc=True, hi_inc=True) -> str:
    if lo is not None and hi is not None:
        return f"in {'[' if lo_inc else '('}{lo}, {hi}{']' if hi_inc else ')'}"
    if lo is not None:
        return f"{'>=' if lo_inc else '>'} {lo}"
    if hi is not None:
        return f"{'<=' if hi_inc else '<'} {hi}"
    return ""


# --------------------------------------------------------------------------- files
def fsync_dir(folder) -> None:
    """fsync a directory so a rename inside it is durable (no-op where unsupported)."""
    try:
        fd = os.open(os.fspath(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask_perms(p) -> None:
    """mkstemp creates 0600; give the final file the usual umask-based mode."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(p, 0o666 & ~mask)


def atomic_write(path, writer: Callable, *, binary: bool = True, encoding: str = "utf-8",
                 newline: str | None = None) -> None:
    """Write ``path`` all-or-nothing: ``writer(fh)`` fills a temporary file beside it,
    which is fsynced and renamed over ``path``; then the folder is fsynced.

    ``writer`` may also take a path (``writer(tmp_path)``) when called with
    ``binary=None``: for libraries that only write to a file name (matplotlib's
    ``savefig``, Keras' ``save``); the temporary name keeps ``path``'s suffix.

    Raises whatever ``writer`` or the file system raises; the temporary file is
    removed and ``path`` is left as it was.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp" + ext, dir=folder)
    try:
        _umask_perms(tmp)
        if binary is None:
            os.close(fd)
            writer(tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        else:
            mode = "wb" if binary else "w"
            kw = {} if binary else {"encoding": encoding, "newline": newline}
            with os.fdopen(fd, mode, **kw) as fh:
                writer(fh)
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(folder)


def atomic_write_bytes(path, data: bytes) -> None:
    """:func:`atomic_write` of a bytes object."""
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path, text: str, *, encoding: str = "utf-8") -> None:
    """:func:`atomic_write` of a string (UTF-8 by default, newlines as given)."""
    atomic_write(path, lambda fh: fh.write(text), binary=False, encoding=encoding, newline="")


def sha256_file(path, *, chunk_bytes: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_bytes), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- misc
def json_default(obj):
    """``json.dumps(..., default=json_default)``: NumPy scalars and arrays, paths.

    Anything else raises ``TypeError`` (as ``json`` expects), so a wrong value is
    never silently written as its ``str()``.
    """
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


_SURROGATE = re.compile("[\ud800-\udfff]")


def escape_surrogates(text: str) -> str:
    """JSON text made valid UTF-8 whatever file names it holds.

    A file name whose bytes are not UTF-8 is held by Python with lone
    surrogates (PEP 383, :func:`os.fsdecode`: byte 0x96 is ``"\\udc96"``); those,
    and only those, are written as ``\\uXXXX`` escapes. :func:`json.loads`
    reads them back to the same ``str`` and :func:`os.fsencode` turns that
    into the original bytes, so the path still opens the file. Used on the
    output of ``json.dumps(..., ensure_ascii=False)`` by the CLI and the web API.
    """
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def cpu_count() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:  # cgroup v2 CPU quota (containers)
        with open("/sys/fs/cgroup/cpu.max") as fh:
            quota, period = fh.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def unit_rows(X, *, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``X`` (n, d) scaled to unit L2 norm, as contiguous float32 (zero rows stay zero)."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim == 1:
        n = float(np.linalg.norm(X))
        return X / n if n > eps else X.copy()
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.ascontiguousarray(X / np.maximum(norms, eps), dtype=np.float32)


