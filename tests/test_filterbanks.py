"""The NumPy mel and chroma filterbanks equal librosa's (issue #20: no librosa,
hence no numba compilation, on the analysis path)."""

import subprocess
import sys

import numpy as np
import pytest

from recommender.errors import ParameterError
from recommender.features.frontend import chroma_filterbank, mel_basis, mel_filterbank

librosa = pytest.importorskip("librosa")


@pytest.mark.parametrize("kw", [
    dict(sr=16000, n_fft=512, n_mels=96),
    dict(sr=22050, n_fft=2048, n_mels=128),
    dict(sr=22050, n_fft=1024, n_mels=40, fmin=50.0, fmax=8000.0),
    dict(sr=44100, n_fft=4096, n_mels=64, fmin=1500.0),
])
def test_mel_filterbank_equals_librosa(kw):
    ours = mel_filterbank(**kw)
    theirs = librosa.filters.mel(**kw, htk=False, norm="slaney")
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("kw", [
    dict(sr=22050, n_fft=4096, n_chroma=12, tuning=0.0, ctroct=3.0, octwidth=1.0, base_c=True),
    dict(sr=22050, n_fft=2048),
    dict(sr=16000, n_fft=1024, tuning=0.3, octwidth=None, base_c=False),
    dict(sr=22050, n_fft=2048, n_chroma=24),
])
def test_chroma_filterbank_equals_librosa(kw):
    ours = chroma_filterbank(**kw)
    theirs = librosa.filters.chroma(**kw)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


def test_mel_basis_is_the_frontend_bank():
    assert mel_basis().shape == (96, 257)
    np.testing.assert_array_equal(mel_basis(), librosa.filters.mel(sr=16000, n_fft=512, n_mels=96))


@pytest.mark.parametrize("kw", [dict(sr=0, n_fft=512, n_mels=96), dict(sr=16000, n_fft=512, n_mels=0),
                                dict(sr=16000, n_fft=512, n_mels=10, fmin=9000.0)])
def test_mel_filterbank_rejects_bad_parameters(kw):
    with pytest.raises(ParameterError, match="sr="):
        mel_filterbank(**kw)


def test_chroma_filterbank_rejects_bad_parameters():
    with pytest.raises(ParameterError, match="n_chroma=0"):
        chroma_filterbank(sr=22050, n_fft=2048, n_chroma=0)


def test_logmel_does_not_import_librosa_or_numba():
    code = ("import sys, numpy as np\n"
            "from recommender.features import frontend\n"
            "frontend.logmel(np.zeros(16000, dtype=np.float32))\n"
            "print(sorted(m for m in ('librosa', 'numba') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
