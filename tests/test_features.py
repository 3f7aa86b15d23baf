"""The log-mel front end: musicnn's convention, and block/window equivalence."""

import numpy as np
import pytest

from recommender import features
from recommender.analysis.blocks import _stream_blocks, _waveform_blocks
from recommender.errors import ParameterError


def _signal(seconds=13.3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * features.SR)) / features.SR
    y = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t * (1 + t / 20))
    y += 0.05 * rng.standard_normal(len(t))
    return y.astype(np.float32)


def test_logmel_matches_librosa_recipe():
    librosa = pytest.importorskip("librosa")
    y = _signal()
    ref = librosa.feature.melspectrogram(
        y=y, sr=16000, hop_length=256, n_fft=512, n_mels=96, pad_mode="reflect"
    ).T
    ref = np.log10(10000 * ref.astype(np.float16).astype(np.float32) + 1)
    S = features.logmel(y)
    assert S.shape == ref.shape == (1 + len(y) // 256, 96)
    # float16 quantisation can flip one ulp on a few bins; compare in log domain
    assert np.max(np.abs(S - ref)) < 2e-3
    assert np.mean(np.abs(S - ref)) < 1e-5


def test_no_float16_overflow_on_loud_input():
    y = np.ones(16000 * 4, dtype=np.float32)  # DC at full scale: huge bin 0 power
    y[::2] = -1.0  # and Nyquist
    S = features.logmel(y)
    assert np.all(np.isfinite(S))
    # float32 evaluation: loud bins give large but finite values (> log10(65504))
    assert S.max() > 4.8


def test_window_logmel_equals_slice_of_logmel():
    y = _signal(10.0)
    S = features.logmel(y)
    ypad = np.pad(y, 256, mode="reflect")
    for frame0 in (0, 100, 187, 300):
        w = ypad[frame0 * 256 : frame0 * 256 + features.PATCH_WINDOW_SAMPLES]
        np.testing.assert_array_equal(features.window_logmel(w), S[frame0 : frame0 + 187])


def test_patches_drop_tail_and_repeat_pad_short():
    S = np.arange(500 * 96, dtype=np.float32).reshape(500, 96)
    P = features.patches(S)
    assert P.shape == (2, 187, 96)
    np.testing.assert_array_equal(P[1], S[187:374])
    short = S[:50]
    P = features.patches(short)
    assert P.shape == (1, 187, 96)
    np.testing.assert_array_equal(P[0, 50:100], short)  # repeated, not zero-padded


@pytest.mark.parametrize("seconds", [0.01, 0.5, 2.99, 3.0, 9.0, 30.7])
@pytest.mark.parametrize("block", [1000, 16000, 47872, 100003])
def test_streamed_patches_equal_whole_waveform(seconds, block):
    y = _signal(seconds, seed=1)
    ref = np.concatenate([P for _, P, _ in _waveform_blocks(y, 64)])
    chunks = [y[i : i + block] for i in range(0, len(y), block)]
    got = list(_stream_blocks(chunks, 5))
    P = np.concatenate([b[1] for b in got])
    starts = np.concatenate([b[0] for b in got])
    assert P.shape == ref.shape
    np.testing.assert_allclose(P, ref, atol=1e-6)
    np.testing.assert_allclose(starts, np.arange(len(P)) * features.PATCH_SECONDS)


def test_bad_inputs():
    with pytest.raises(ParameterError, match="mono"):
        features.logmel(np.zeros((10, 2), np.float32))
    with pytest.raises(ParameterError, match="NaN"):
        features.logmel(np.array([0.0, np.nan], np.float32))
    with pytest.raises(ParameterError, match="48128"):
        features.window_logmel(np.zeros(100, np.float32))


def test_periodic_hann_is_scipy_get_window_bit_for_bit():
    import subprocess
    import sys

    import scipy.signal

    from recommender.features.frontend import periodic_hann

    for n in (1, 2, 3, 511, 512, 1024, 2048, 4096, 4097):
        w = periodic_hann(n)
        assert w.dtype == np.float32 and w.shape == (n,) and not w.flags.writeable
        np.testing.assert_array_equal(w, scipy.signal.get_window("hann", n, fftbins=True).astype(np.float32))
    # the log-mel front end does not import scipy.signal (0.7 s of every analysing command's start)
    code = ("import sys, numpy as np; from recommender.features import frontend as F; "
            "F.window_logmel(np.zeros(F.PATCH_WINDOW_SAMPLES, np.float32)); print('scipy.signal' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
