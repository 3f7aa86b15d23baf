"""Is there anything to hear?  The ``audio_flag`` of a track.

A file of digital silence, or of a hiss far below anything audible, holds
no music: no tempo, key or genre can be claimed for it (a tempo estimator
finds "beats" in noise, a tagger still ranks its 50 tags).  Such tracks are
flagged, and the flag is what every consumer (``describe``, ``classify``,
the catalog) reports instead of those values.

Flags (:func:`audio_flag`, on the *whole* track)
------------------------------------------------
``'silent'``
    the peak sample is below :data:`SILENT_PEAK_DBFS` = −120 dBFS (10⁻⁶ of
    full scale): every sample is 0, or a few LSBs of 24-bit audio (its LSB is
    −138 dBFS).  16-bit dither (±1 LSB, −90 dBFS) is *not* silent.
``'inaudible'``
    not silent, but no 400-ms block of the K-weighted signal (75 % overlap,
    the BS.1770 *momentary* loudness) reaches :data:`INAUDIBLE_LUFS` = −70
    LUFS, the absolute gate of ITU-R BS.1770-4 / EBU R128: below it a block
    does not count as programme at all, so the integrated loudness of such a
    track is undefined (``loudness_db`` is NaN).
``None``
    anything else.  A track with a few seconds of music and then silence is
    not flagged: one loud block is enough.

Measured (case 07 of issue #16, decoded at 22050 Hz): digital silence peak
−inf dBFS → ``'silent'``; the "−90 dBFS" hiss peak −82.8 dBFS, loudest block
−93.2 LUFS → ``'inaudible'``; 3 s of music then 37 s of zeros −21.2 LUFS and
the two normal songs −22.6 / −22.5 LUFS → ``None``.  The 99 tracks of the
game-soundtrack dev set have peaks of −11 dBFS or more and their loudest
block between −24.6 and −6.4 LUFS: none is flagged, with a margin of 45 LU;
their largest log-mel value (below) is 4.9 to 6.2.

The CNN's log-mel patches give a cheaper, coarser test
(:func:`patches_look_flagged`): a track whose every patch value is below
:data:`PATCH_LOGMEL_MAX` may be flagged, and is then confirmed on the
decoded file (:func:`file_audio_flag`).
"""

from __future__ import annotations

import math

import numpy as np

from ._base import DESCRIPTOR_SR
from .loudness import _loudness_blocks

__all__ = [
    "SILENT_PEAK_DBFS",
    "INAUDIBLE_LUFS",
    "PATCH_LOGMEL_MAX",
    "AUDIO_FLAGS",
    "audio_flag",
    "flag_from_levels",
    "file_audio_flag",
    "probe_audio_flag",
    "flag_of_descriptors",
    "patches_look_flagged",
]

#: Peak level (dBFS) under which a track is ``'silent'``.
SILENT_PEAK_DBFS = -120.0
#: Momentary loudness (LUFS, 400-ms K-weighted blocks) that some block must
#: reach for a track not to be ``'inaudible'``: the BS.1770-4 absolute gate.
INAUDIBLE_LUFS = -70.0
#: The values :attr:`audio_flag` takes besides ``None``.
AUDIO_FLAGS = ("silent", "inaudible")
#: Largest value of musicnn's log-mel (``log10(1 + 10000 * mel)``) in patches
#: that may hold only silence or inaudible sound: white noise at −53 dBFS or a
#: 1 kHz sine at −63 dBFS reach it, music reaches 4.9-6.2 (dev set), the −90 dBFS hiss of
#: case 07 gives exactly 0 (below float16's range).  Deliberately generous: a
#: track under it is only a candidate, confirmed by :func:`file_audio_flag`.
PATCH_LOGMEL_MAX = 0.5

_SILENT_PEAK = 10.0 ** (SILENT_PEAK_DBFS / 20.0)
# momentary loudness = -0.691 + 10 log10(block mean square)
_GATE_MS = 10.0 ** ((INAUDIBLE_LUFS + 0.691) / 10.0)


def flag_from_levels(peak: float, max_block_ms: float) -> str | None:
    """The flag of audio whose peak and loudest block are known.

    Parameters
    ----------
    peak : float
        Largest absolute sample value (full scale 1).
    max_block_ms : float
        Largest mean square of the K-weighted signal over 400-ms blocks
        (:func:`~recommender.descriptors.loudness._loudness_blocks`); 0 when
        there are no blocks.

    Returns
    -------
    {'silent', 'inaudible'} or None
    """
    if not peak >= _SILENT_PEAK:  # NaN-safe: no samples at all is silent
        return "silent"
    if not max_block_ms > _GATE_MS:  # as the gate of loudness_lufs: strictly above
        return "inaudible"
    return None


def audio_flag(y, sr: int = DESCRIPTOR_SR) -> str | None:
    """``'silent'``, ``'inaudible'`` or ``None`` for a mono waveform (see the module notes).

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,), float
        Mono waveform, full scale 1 (not checked: see
        :func:`~recommender.descriptors.as_mono`).
    sr : int
        Sample rate of ``y`` (Hz).

    Returns
    -------
    {'silent', 'inaudible'} or None
        An empty waveform is ``'silent'``.

    Examples
    --------
    >>> import numpy as np
    >>> audio_flag(np.zeros(22050, np.float32))
    'silent'
    >>> audio_flag(np.full(22050, 1e-5, np.float32))  # -100 dBFS
    'inaudible'
    >>> audio_flag(0.1 * np.sin(np.arange(22050, dtype=np.float32) / 3))
    """
    y = np.asarray(y, dtype=np.float32)
    if y.size == 0:
        return "silent"
    peak = float(np.max(np.abs(y)))
    if peak < _SILENT_PEAK:
        return "silent"
    ms = _loudness_blocks(y, int(sr))
    return flag_from_levels(peak, float(ms.max()) if ms.size else 0.0)


def file_audio_flag(path) -> str | None:
    """:func:`audio_flag` of a whole file, decoded at :data:`DESCRIPTOR_SR`.

    The confirmation of the cheap tests on excerpts or CNN patches: a full
    decode (about 30 ms of CPU per minute of audio for FLAC/MP3), run only
    for the rare tracks those tests flag.

    Raises
    ------
    recommender.errors.AudioError
        The file cannot be decoded.
    """
    from ..io import audio

    return audio_flag(audio.load(path, sr=DESCRIPTOR_SR), DESCRIPTOR_SR)


#: Excerpts (and their length in seconds) :func:`probe_audio_flag` decodes first.
_PROBE_EXCERPTS, _PROBE_S = 4, 2.5


def probe_audio_flag(path) -> str | None:
    """:func:`file_audio_flag`, cheaply: a few excerpts first, the whole file only if they are quiet.

    Decodes :data:`_PROBE_EXCERPTS` excerpts of 2.5 s spread over the file
    (centred at 1/8, 3/8, 5/8, 7/8); if one of them is not flagged, the
    file is not either (``None``, ~5 ms of CPU).  Otherwise, and for files
    of at most 10 s or of unknown length, the whole file is decoded.  The
    answer is always :func:`file_audio_flag`'s.

    Raises
    ------
    recommender.errors.AudioError
        The file cannot be decoded.
    """
    from ..io import audio

    inf = audio.info(path)
    span = _PROBE_EXCERPTS * _PROBE_S
    if np.isfinite(inf.duration_s) and inf.duration_s > span:
        sr = inf.sr_native
        starts = [(i + 0.5) / _PROBE_EXCERPTS * (inf.duration_s - _PROBE_S) for i in range(_PROBE_EXCERPTS)]
        for w in audio.load_windows(path, starts, round(_PROBE_S * sr), sr=sr):
            if audio_flag(np.asarray(w, dtype=np.float32), sr) is None:
                return None
    return file_audio_flag(path)


def flag_of_descriptors(d: dict, path=None) -> str | None:
    """The flag of a track from its descriptor record (:mod:`recommender.descriptors`).

    ``d["audio_flag"]`` when the record has it (:func:`~recommender.descriptors.describe_at`).
    Otherwise ``loudness_db`` tells: it is a number exactly when some 400-ms
    block passes the -70 LUFS gate, i.e. when the analysed audio is not
    flagged; when it is NaN/None the flag is measured on the whole file
    (``path``: a full decode, only for such tracks), or, with no file,
    ``'silent'`` if ``rms_mean`` is 0 and ``'inaudible'`` otherwise.

    Parameters
    ----------
    d : dict
        A record of :func:`~recommender.descriptors.describe_file` (whole
        file, or excerpts confirmed on it) or :func:`~recommender.descriptors.describe`.
    path : str or os.PathLike, optional
        The file the record describes.

    Returns
    -------
    {'silent', 'inaudible'} or None

    Raises
    ------
    recommender.errors.AudioError
        ``path`` had to be decoded and could not be.
    """
    if "audio_flag" in d:
        return d["audio_flag"]
    loud = d.get("loudness_db")
    if loud is not None and not math.isnan(loud):
        return None
    if path is not None:
        return file_audio_flag(path)
    return "silent" if not (d.get("rms_mean") or 0.0) > 0.0 else "inaudible"


def patches_look_flagged(max_logmel: float) -> bool:
    """Whether patches whose largest log-mel value is ``max_logmel`` may hold no audible sound.

    Parameters
    ----------
    max_logmel : float
        Largest value over all the CNN's patches of a track (musicnn
        front end, ``log10(1 + 10000 * mel)``); NaN or -inf for no patches.

    Returns
    -------
    bool
        ``True`` when the track is a candidate for a flag (below
        :data:`PATCH_LOGMEL_MAX`); confirm with :func:`file_audio_flag` or
        :func:`audio_flag` of the whole signal.
    """
    return not float(max_logmel) >= PATCH_LOGMEL_MAX  # NaN (no patches) is a candidate
