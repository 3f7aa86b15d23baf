"""Chromaprint fingerprints as data: :class:`Fingerprint`, its storage as bytes and
the decompression of fpcalc's compressed form (see :mod:`recommender.io.fingerprint`,
which re-exports everything public here)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError

__all__ = ["ITEM_S", "SILENCE_ITEM", "Fingerprint", "decompress_fingerprint", "fingerprint_from_bytes",
           "fingerprint_to_bytes"]

#: Seconds of audio per Chromaprint item: hop of 1365 samples at 11025 Hz.
ITEM_S = 1365 / 11025

#: The item Chromaprint (algorithm 2, fpcalc's default) gives for digital silence.
SILENCE_ITEM = 627964279  # 0x256DF977



# --------------------------------------------------------------------------- data
@dataclass(frozen=True, eq=False)
class Fingerprint:
    """A raw Chromaprint fingerprint.

    Attributes
    ----------
    items : numpy.ndarray, shape (n_items,), dtype uint32
        One 32-bit sub-fingerprint per :data:`ITEM_S` (0.1238 s) of audio,
        from the start of the file.  ``n_items`` ~ ``8.08 * seconds - 18``
        (of the fingerprinted part); 0 for audio too short to fingerprint.
    duration_s : float
        Duration of the whole file in seconds as fpcalc reports it (an
        integer in fpcalc 1.5); ``nan`` when unknown (e.g. read back from bytes).
    algorithm : int
        Chromaprint's algorithm id: 1 = ``TEST2``, what ``fpcalc -algorithm 2`` (its default) computes.
    """

    items: np.ndarray
    duration_s: float = float("nan")
    algorithm: int = 1

    def __post_init__(self):
        a = np.ascontiguousarray(np.asarray(self.items).astype(np.uint32, copy=False)).reshape(-1)
        a.setflags(write=False)
        object.__setattr__(self, "items", a)
        object.__setattr__(self, "duration_s", float(self.duration_s))
        object.__setattr__(self, "algorithm", int(self.algorithm))

    def __len__(self) -> int:
        return int(self.items.shape[0])

    @property
    def seconds(self) -> float:
        """Audio span covered by the items, in seconds (``n_items * ITEM_S``)."""
        return len(self) * ITEM_S

    def to_bytes(self) -> bytes:
        """Same as :func:`fingerprint_to_bytes`."""
        return fingerprint_to_bytes(self)


def fingerprint_to_bytes(fp) -> bytes:
    """Items as bytes for storage: little-endian ``uint32``, 4 bytes per item.

    Parameters
    ----------
    fp : Fingerprint or array-like of shape (n_items,)

    Returns
    -------
    bytes
        ``4 * n_items`` bytes (empty for an empty fingerprint).
    """
    items = fp.items if isinstance(fp, Fingerprint) else np.asarray(fp)
    return np.ascontiguousarray(items, dtype="<u4").reshape(-1).tobytes()


def fingerprint_from_bytes(blob, *, duration_s: float = float("nan"), algorithm: int = 1) -> Fingerprint:
    """Inverse of :func:`fingerprint_to_bytes`.

    Parameters
    ----------
    blob : bytes, bytearray or memoryview
        ``4 * n_items`` bytes, little-endian ``uint32``.
    duration_s : float
        Stored separately; kept on the result.
    algorithm : int

    Returns
    -------
    Fingerprint

    Raises
    ------
    ParameterError
        If ``blob`` is not bytes-like or its length is not a multiple of 4.
    """
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise ParameterError(f"blob={type(blob).__name__}: must be bytes (a stored fingerprint)")
    if len(blob) % 4:
        raise ParameterError(f"blob of {len(blob)} bytes: length must be a multiple of 4 (uint32 items)")
    items = np.frombuffer(bytes(blob), dtype="<u4").astype(np.uint32)
    return Fingerprint(items, duration_s, algorithm)


# --------------------------------------------------------------------------- decompression
def _unpack_le(data: np.ndarray, width: int) -> np.ndarray:
    """Unsigned ints of ``width`` bits packed LSB-first in ``data`` (uint8)."""
    bits = np.unpackbits(data, bitorder="little")
    k = bits.size // width
    weights = (1 << np.arange(width)).astype(np.int64)
    return bits[: k * width].reshape(k, width).astype(np.int64) @ weights


def decompress_fingerprint(compressed) -> tuple[np.ndarray, int]:
    """Raw items of a compressed Chromaprint fingerprint (fpcalc's default output).

    Parameters
    ----------
    compressed : str or bytes
        URL-safe base64 text, as printed by ``fpcalc`` without ``-raw`` and
        returned by ``acoustid.fingerprint_file``.

    Returns
    -------
    items : numpy.ndarray, shape (n_items,), dtype uint32
    algorithm : int

    Raises
    ------
    ParameterError
        If the text is not a valid compressed fingerprint.

    Notes
    -----
    Format (Chromaprint ``fingerprint_compressor.cpp``): byte 0 = algorithm,
    bytes 1-3 = ``n_items`` big-endian; then, for each item XOR the previous
    one, the gaps between its set bits (1-based, LSB first) ending with a 0,
    as 3-bit values packed LSB-first; gaps >= 7 are written as 7 there and
    the remainder follows as 5-bit values after the 3-bit section.
    """
    if isinstance(compressed, str):
        compressed = compressed.encode("ascii", "replace")
    text = bytes(compressed).strip()
    if not text:
        return np.zeros(0, np.uint32), 1
    try:
        data = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ParameterError("compressed fingerprint: not URL-safe base64") from None
    if len(data) < 4:
        raise ParameterError(f"compressed fingerprint: {len(data)} bytes, shorter than its 4-byte header")
    algorithm = data[0]
    n = int.from_bytes(data[1:4], "big")
    body = np.frombuffer(data, np.uint8, offset=4)
    if n == 0:
        return np.zeros(0, np.uint32), algorithm
    normal = _unpack_le(body, 3)
    zeros = np.flatnonzero(normal == 0)
    if zeros.size < n:
        raise ParameterError(f"compressed fingerprint: header says {n} items, data holds {zeros.size}")
    end = int(zeros[n - 1]) + 1
    normal = normal[:end]
    big = np.flatnonzero(normal == 7)
    if big.size:
        exc = _unpack_le(body[(end * 3 + 7) // 8 :], 5)
        if exc.size < big.size:
            raise ParameterError("compressed fingerprint: truncated (exceptional bits missing)")
        normal[big] += exc[: big.size]
    is_end = normal == 0
    item_of = np.cumsum(is_end) - is_end  # index of the item each value belongs to
    csum = np.cumsum(normal)
    base = np.concatenate(([0], csum[is_end][:-1]))  # running sum where each item starts
    nz = ~is_end
    bitpos = csum[nz] - base[item_of[nz]]  # 1-based bit positions
    if bitpos.size and (bitpos.max() > 32):
        raise ParameterError("compressed fingerprint: bit position beyond 32")
    diff = np.zeros(n, np.uint64)
    np.add.at(diff, item_of[nz], np.left_shift(np.uint64(1), (bitpos - 1).astype(np.uint64)))
    items = np.bitwise_xor.accumulate(diff.astype(np.uint32))
    return items, algorithm
