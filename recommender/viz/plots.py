"""Pictures of a track: waveform, mel spectrogram, MFCCs, chroma, taggram.

Every function takes an audio file or a waveform (``sr=`` required), returns
a :class:`matplotlib.figure.Figure` and, with ``out=``, saves it (PNG, or any
format matplotlib knows from the file extension; written to a temporary file
then renamed, so a half-written picture never appears).

Figures are drawn with matplotlib's Agg canvas directly
(:class:`matplotlib.figure.Figure` + ``FigureCanvasAgg``): no pyplot, no
global backend switch, no window — safe in servers, threads and notebooks
(a notebook shows a returned Figure as usual).  matplotlib is imported only
when a picture is asked for.

Analysis parameters: audio at 22050 Hz (:data:`recommender.descriptors.DESCRIPTOR_SR`),
STFT n_fft 2048 / hop 512 (chroma: n_fft 4096), 128 mel bands, 20 MFCCs —
the settings of :mod:`recommender.descriptors`.  Long tracks are averaged
down to at most :data:`MAX_COLUMNS` time columns per picture.

Examples
--------
>>> from recommender.viz import plots
>>> fig = plots.spectrogram("song.mp3", out="song_mel.png")      # doctest: +SKIP
>>> plots.plot("song.mp3", kind="taggram", out="song_tags.png")  # doctest: +SKIP
"""

from __future__ import annotations

import os

import numpy as np

from .._utils import PITCH_CLASSES, atomic_write, check_choice, check_int
from ..descriptors import DESCRIPTOR_SR, load_for_descriptors
from ..errors import ParameterError
from . import KINDS  # the picture kinds of plot(), defined matplotlib-free in recommender.viz

__all__ = ["KINDS", "plot", "waveform", "spectrogram", "mfcc", "chroma", "taggram", "figure", "save"]

#: Time columns drawn at most (longer inputs are averaged over frames).
MAX_COLUMNS = 2400
N_FFT = 2048
HOP_LENGTH = 512
CHROMA_N_FFT = 4096
N_MELS = 128
N_MFCC = 20
DPI = 100
#: Display labels of the pitch classes (:data:`recommender._utils.PITCH_CLASSES` with a real sharp sign).
_PITCHES = [p.replace("#", "\u266f") for p in PITCH_CLASSES]


# --------------------------------------------------------------------------
# the figure factory (every picture of the package is drawn through these two)


def figure(figsize=(10.0, 4.0), *, dpi=DPI, layout="constrained"):
    """A new matplotlib Figure on its own Agg canvas (no pyplot, no global backend).

    Parameters
    ----------
    figsize : (float, float)
        Width and height in inches.
    dpi : int
        Dots per inch (default :data:`DPI`, 100).
    layout : str or None
        matplotlib layout engine (default ``"constrained"``).

    Returns
    -------
    matplotlib.figure.Figure
        Draw on it with ``fig.add_subplot()``; save it with :func:`save`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig



def save(fig, out, *, dpi=DPI) -> str:
    """Save ``fig`` to ``out`` atomically; the format follows the extension (default PNG).

    The picture is written to a temporary file in the same folder, fsynced and
    renamed (:func:`recommender._utils.atomic_write`): a half-written picture
    never appears.  Missing parent folders are created.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    out : path-like
        Destination; ``.png``, ``.svg``, ``.pdf``... (no extension: PNG).
    dpi : int
        Dots per inch of raster formats (default :data:`DPI`).

    Returns
    -------
    str
        The path written.

    Raises
    ------
    OSError
        The folder cannot be created or written.
    """
    out = os.fspath(out)
    ext = os.path.splitext(out)[1].lower().lstrip(".") or "png"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    atomic_write(out, lambda tmp: fig.savefig(tmp, format=ext, dpi=dpi), binary=None)
    return out


# --------------------------------------------------------------------------
# helpers


def _signal(source, sr):
    """(mono float32 waveform at DESCRIPTOR_SR, display name or None, duration in s) of a file or waveform."""
    y, path = load_for_descriptors(source, sr)
    if y.size == 0:
        raise ParameterError("source: holds no audio samples")
    return y, os.path.basename(path) if path else None, y.size / DESCRIPTOR_SR


def _pool_columns(S: np.ndarray, hop_s: float):
    """Average groups of columns so that at most MAX_COLUMNS remain; new hop in seconds."""
    n = S.shape[1]
    f = int(np.ceil(n / MAX_COLUMNS)) if n > MAX_COLUMNS else 1
    if f == 1:
        return S, hop_s
    m = n // f
    head = S[:, : m * f].reshape(S.shape[0], m, f).mean(axis=2)
    if n > m * f:
        head = np.concatenate([head, S[:, m * f :].mean(axis=1, keepdims=True)], axis=1)
    return head, hop_s * f


def _time_axis(ax, duration_s):
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    if duration_s >= 90:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda t, _: f"{int(t // 60)}:{int(round(t % 60)):02d}"))
        ax.set_xlabel("time (m:ss)")
    else:
        ax.set_xlabel("time (s)")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=12, steps=[1, 2, 2.5, 5, 10]))
    ax.set_xlim(0, duration_s)


def _title(ax, what, name, title):
    if title is None:
        title = f"{what} — {name}" if name else what
    ax.set_title(title, loc="left", fontsize=11)


def _finish(fig, out):
    if out is not None:
        save(fig, out)
    return fig


def _stft_power(y, n_fft):
    import librosa

    return np.abs(librosa.stft(y, n_fft=n_fft, hop_length=HOP_LENGTH, center=True)) ** 2


# --------------------------------------------------------------------------
# pictures


def waveform(source, *, sr=None, out=None, title=None, figsize=(10.0, 3.2)):
    """The waveform: min/max envelope (light) and RMS level (dark) over time.

    Parameters
    ----------
    source : path-like or np.ndarray
        Audio file, or waveform ``(n_samples,)`` / ``(n_samples, n_channels)``.
    sr : int, optional
        Sample rate of a waveform (required for arrays).
    out : path-like, optional
        Save the figure there (PNG unless the extension says otherwise).
    title : str, optional
        Default: ``"waveform — <file name>"``.
    figsize : (float, float)
        Inches at 100 dpi.

    Returns
    -------
    matplotlib.figure.Figure
    """
    y, name, dur = _signal(source, sr)
    sr_ = DESCRIPTOR_SR
    fig = figure(figsize)
    ax = fig.add_subplot()
    n_bins = min(y.size, 2 * MAX_COLUMNS)
    per = max(1, y.size // n_bins)
    m = y.size // per
    blocks = y[: m * per].reshape(m, per)
    t = (np.arange(m) + 0.5) * per / sr_
    if per > 1:
        ax.fill_between(t, blocks.min(axis=1), blocks.max(axis=1), color="#9ecae1", lw=0, label="peak")
        rms = np.sqrt(np.mean(blocks.astype(np.float64) ** 2, axis=1))
        ax.fill_between(t, -rms, rms, color="#2171b5", lw=0, label="RMS")
        ax.legend(loc="upper right", fontsize=8, frameon=False, ncols=2)
    else:
        ax.plot(t, blocks[:, 0], color="#2171b5", lw=0.8)
    peak = float(np.max(np.abs(y))) or 1.0
    ax.set_ylim(-1.05 * peak, 1.05 * peak)
    ax.axhline(0.0, color="0.4", lw=0.5)
    ax.set_ylabel("amplitude (full scale = 1)")
    _time_axis(ax, dur)
    ax.grid(axis="x", color="0.85", lw=0.5)
    _title(ax, "waveform", name, title)
    return _finish(fig, out)


def _mel_db(y):
    import librosa

    S = librosa.feature.melspectrogram(S=_stft_power(y, N_FFT), sr=DESCRIPTOR_SR, n_fft=N_FFT, n_mels=N_MELS)
    return librosa.power_to_db(S, ref=np.max(S) if np.max(S) > 0 else 1.0, top_db=80.0)


def spectrogram(source, *, sr=None, out=None, title=None, figsize=(10.0, 4.0), cmap="magma"):
    """Mel spectrogram in dB (128 bands, 0-11 kHz; 0 dB = the loudest bin, 80 dB range).

    Parameters are those of :func:`waveform` (plus ``cmap``).  The frequency
    axis is on the mel scale, labelled in Hz.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import librosa

    y, name, dur = _signal(source, sr)
    S, hop_s = _pool_columns(_mel_db(y), HOP_LENGTH / DESCRIPTOR_SR)
    fmax = DESCRIPTOR_SR / 2
    m_lo, m_hi = 0.0, float(librosa.hz_to_mel(fmax))
    fig = figure(figsize)
    ax = fig.add_subplot()
    im = ax.imshow(S, origin="lower", aspect="auto", cmap=cmap, interpolation="nearest",
                   extent=[0, S.shape[1] * hop_s, m_lo, m_hi], vmin=-80, vmax=0)
    ticks = [f for f in (0, 100, 250, 500, 1000, 2000, 4000, 8000) if f <= fmax]
    ax.set_yticks([float(librosa.hz_to_mel(f)) for f in ticks])
    ax.set_yticklabels([f"{f // 1000}k" if f >= 1000 else str(f) for f in ticks])
    ax.set_ylabel("frequency (Hz, mel scale)")
    _time_axis(ax, dur)
    cb = fig.colorbar(im, ax=ax, format="%+.0f dB", pad=0.01)
    cb.set_label("level (dB re. max)")
    _title(ax, "mel spectrogram", name, title)
    return _finish(fig, out)


def mfcc(source, *, sr=None, out=None, title=None, figsize=(10.0, 4.0), cmap="coolwarm"):
    """MFCCs over time (20 coefficients, as :mod:`recommender.descriptors`).

    Each coefficient is standardised over the track (its mean subtracted,
    divided by its standard deviation), so that the level coefficient 0,
    much larger than the others, does not swamp the colours; the colour
    scale runs from -3 to +3 standard deviations.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import librosa

    y, name, dur = _signal(source, sr)
    M = librosa.feature.mfcc(S=_mel_db(y), n_mfcc=N_MFCC)
    sd = M.std(axis=1, keepdims=True)
    M = (M - M.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    M, hop_s = _pool_columns(M, HOP_LENGTH / DESCRIPTOR_SR)
    lim = 3.0
    fig = figure(figsize)
    ax = fig.add_subplot()
    im = ax.imshow(M, origin="lower", aspect="auto", cmap=cmap, interpolation="nearest",
                   extent=[0, M.shape[1] * hop_s, -0.5, N_MFCC - 0.5], vmin=-lim, vmax=lim)
    ax.set_yticks(range(0, N_MFCC, 2))
    ax.set_ylabel("MFCC coefficient")
    _time_axis(ax, dur)
    cb = fig.colorbar(im, ax=ax, pad=0.01)
    cb.set_label("standardised value (SD)")
    _title(ax, "MFCC", name, title)
    return _finish(fig, out)


def chroma(source, *, sr=None, out=None, title=None, figsize=(10.0, 3.6), cmap="viridis"):
    """Chromagram: energy of the 12 pitch classes over time (each frame scaled to max 1).

    Uses ``librosa.feature.chroma_stft`` with ``tuning=0.0`` (A4 = 440 Hz;
    librosa's tuning estimation is not used) and a 4096-point STFT.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import librosa

    y, name, dur = _signal(source, sr)
    C = librosa.feature.chroma_stft(S=_stft_power(y, CHROMA_N_FFT), sr=DESCRIPTOR_SR, n_fft=CHROMA_N_FFT,
                                    hop_length=HOP_LENGTH, tuning=0.0)
    C, hop_s = _pool_columns(C, HOP_LENGTH / DESCRIPTOR_SR)
    fig = figure(figsize)
    ax = fig.add_subplot()
    im = ax.imshow(C, origin="lower", aspect="auto", cmap=cmap, interpolation="nearest",
                   extent=[0, C.shape[1] * hop_s, -0.5, 11.5], vmin=0, vmax=1)
    ax.set_yticks(range(12))
    ax.set_yticklabels(_PITCHES)
    ax.set_ylabel("pitch class")
    _time_axis(ax, dur)
    cb = fig.colorbar(im, ax=ax, pad=0.01)
    cb.set_label("relative energy")
    _title(ax, "chroma", name, title)
    return _finish(fig, out)


def _tag_matrix(source, sr, model, top):
    """(starts_s, patch_s, tags, P (n_tags x n_patches), name) for the taggram."""
    import pandas as pd

    from ..features import frontend as features
    from ..analysis.tagging import Classification

    if isinstance(source, Classification):
        tl, name = source.timeline, os.path.basename(source.path) if source.path else "track"
        starts = np.asarray(tl.index, dtype=np.float64)
        patch_s = features.PATCH_SECONDS
    elif isinstance(source, pd.DataFrame):  # a profiles.timeline() frame
        from ..analysis.profiles import timeline_tags

        tags = timeline_tags(source)
        if not tags or "start_s" not in source.columns:
            raise ParameterError("source: a DataFrame must be a recommender.profiles.timeline() result")
        tl = source.set_index("start_s")[tags]
        starts = np.asarray(tl.index, dtype=np.float64)
        patch_s = float((source["end_s"] - source["start_s"]).median()) if len(source) else features.PATCH_SECONDS
        p = source.attrs.get("path")
        name = os.path.basename(p) if p else "track"
    else:
        from ..analysis.tagging import classify

        if isinstance(source, (str, os.PathLike)):
            if sr is not None:
                raise ParameterError("sr: only for waveforms; a file is decoded at its own rate")
            c = classify(source, model=model)
            name = os.path.basename(os.fspath(source))
        else:
            if sr is None:
                raise ParameterError("sr=None: give the sample rate of the waveform")
            c = classify(source, sr=sr, model=model)
            name = "waveform"
        tl = c.timeline
        starts = np.asarray(tl.index, dtype=np.float64)
        patch_s = features.PATCH_SECONDS
    if len(tl) == 0:
        raise ParameterError("source: no analysed patches to draw")
    mean = tl.mean(axis=0).sort_values(ascending=False, kind="stable")
    tags = [str(t) for t in mean.index[:top]]
    P = tl[tags].to_numpy(dtype=np.float64).T
    return starts, patch_s, tags, P, name


def taggram(source, *, sr=None, top=10, model=None, out=None, title=None, figsize=None, cmap="viridis"):
    """Taggram: probability of the ``top`` most likely tags over time (tags × time heatmap).

    One column per 3-s network patch (as musicnn's taggram); tags sorted
    from the most likely over the whole track (top row) down.

    Parameters
    ----------
    source : path-like, np.ndarray, Classification or DataFrame
        Audio (classified with ``model``), a :func:`recommender.classify`
        result, or a :func:`recommender.profiles.timeline` frame.
    sr : int, optional
        Sample rate of a waveform.
    top : int
        Number of tags shown.
    model : TagModel, str or None
        Default: the shipped MSD musicnn.
    out, title, figsize, cmap
        As in :func:`waveform`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    top = check_int("top", top)
    starts, patch_s, tags, P, name = _tag_matrix(source, sr, model, top)
    dur = float(starts[-1] + patch_s)
    fig = figure(figsize or (10.0, 1.2 + 0.3 * len(tags)))
    ax = fig.add_subplot()
    # cell i spans from patch i's start to patch i+1's (sampled tracks, whose
    # patches leave gaps, show each patch stretched up to the next one)
    edges = np.concatenate([starts, [starts[-1] + patch_s]])
    rows = np.arange(len(tags) + 1) - 0.5
    im = ax.pcolormesh(edges, rows, P, cmap=cmap, vmin=0.0, vmax=max(float(np.max(P)), 1e-6), shading="flat")
    ax.set_yticks(range(len(tags)))
    ax.set_yticklabels(tags)
    ax.set_ylim(len(tags) - 0.5, -0.5)  # most likely tag on top
    ax.set_ylabel("tag")
    _time_axis(ax, dur)
    cb = fig.colorbar(im, ax=ax, pad=0.01)
    cb.set_label("probability")
    _title(ax, "taggram", name, title)
    return _finish(fig, out)


_FUNCS = {"waveform": waveform, "spectrogram": spectrogram, "mfcc": mfcc, "chroma": chroma, "taggram": taggram}


def plot(source, *, kind, out=None, **kwargs):
    """Draw one picture of a track: ``kind`` is one of :data:`KINDS`.

    Parameters
    ----------
    source : path-like or np.ndarray
        Audio file or waveform (give ``sr=`` for waveforms).
    kind : {'waveform', 'spectrogram', 'mfcc', 'chroma', 'taggram'}
    out : path-like, optional
        Where to save the picture (PNG).
    **kwargs
        Passed to the picture's function (``sr``, ``title``, ``top``...).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> for kind in KINDS:                                           # doctest: +SKIP
    ...     plot("song.mp3", kind=kind, out=f"song_{kind}.png")
    """
    check_choice("kind", kind, KINDS)
    return _FUNCS[kind](source, out=out, **kwargs)
