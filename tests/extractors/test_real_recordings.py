"""Real recordings from Debian packages (installed by .ci/run; skipped when absent)."""

from pathlib import Path

import numpy as np
import pytest

from extractors.audio import list_stimuli, load_audio
from extractors.run import extract

ALSA = Path("/usr/share/sounds/alsa")
FREEDESKTOP = Path("/usr/share/sounds/freedesktop/stereo")
ASTERISK = Path("/usr/share/asterisk/sounds/en")


def _need(path: Path, pkg: str):
    if not path.is_dir() or not any(path.iterdir()):
        pytest.skip(f"{pkg} is not installed ({path} missing)")


def test_freedesktop_stereo_ogg_to_mono(tmp_path):
    _need(FREEDESKTOP, "sound-theme-freedesktop")
    import soundfile as sf

    f = FREEDESKTOP / "bell.oga"
    if not f.is_file():
        f = sorted(FREEDESKTOP.glob("*.oga"))[0]
    info = sf.info(str(f))
    w = load_audio(f, sample_rate=16000)
    assert w.ndim == 1 and np.isfinite(w).all() and np.abs(w).max() > 0.01
    assert abs(w.shape[0] - info.frames * 16000 / info.samplerate) <= 1


def test_real_mixed_rate_set_through_the_store(tmp_path):
    _need(ALSA, "alsa-utils")
    _need(ASTERISK, "asterisk-core-sounds-en-wav")
    csv = tmp_path / "real.csv"
    picks = [ALSA / "Front_Center.wav", ALSA / "Noise.wav", ASTERISK / "activated.wav",
             ASTERISK / "added.wav"]
    csv.write_text("id,path\n" + "".join(f"{p.stem},{p}\n" for p in picks))
    store = extract("silero", csv, tmp_path / "st", layers=["prob", "lstm"], pooling="max",
                    progress=False)
    assert [s.id for s in list_stimuli(csv)] == store.stimulus_ids
    p = dict(zip(store.stimulus_ids, np.asarray(store["prob"])[:, 0]))
    # the 8 kHz telephone prompts and the spoken channel name are speech; Noise.wav is not
    assert p["activated"] > p["Noise"] + 0.3 and p["Front_Center"] > p["Noise"] + 0.3
    mel = extract("spectral:mel", csv, tmp_path / "mel", progress=False)
    assert np.isfinite(mel["logmel"]).all()
