import numpy as np
import pytest
import soundfile as sf

from alignjax import AlignjaxInputError, StimulusMismatchError
from extractors.audio import AudioError, expected_length, list_stimuli, load_audio

from extract_helpers import SR, write_tone


def test_mono_mix_resample_and_duration(tmp_path):
    p = write_tone(tmp_path / "st.wav", 440, 0.5, sr=44100, channels=2, subtype="FLOAT")
    w = load_audio(p, sample_rate=SR)
    assert w.dtype == np.float32 and w.ndim == 1
    assert w.shape[0] == expected_length(p, sample_rate=SR) == int(np.ceil(0.5 * 44100 * SR / 44100))
    # mean of channels (amplitudes 0.25 and 0.5) -> 0.375; resampling keeps the 440 Hz tone
    assert abs(np.abs(w[1000:-1000]).max() - 0.375) < 0.01
    spec = np.abs(np.fft.rfft(w))
    assert abs(np.argmax(spec) * SR / w.shape[0] - 440) < 3
    cropped = load_audio(p, sample_rate=SR, duration=0.25)
    np.testing.assert_array_equal(cropped, w[:4000])
    padded = load_audio(p, sample_rate=SR, duration=1.0)
    assert padded.shape == (16000,) and not padded[8000:].any()
    np.testing.assert_array_equal(padded[:8000], w)


def test_8k_file_is_upsampled(tmp_path):
    p = write_tone(tmp_path / "lo.wav", 300, 0.5, sr=8000)
    w = load_audio(p, sample_rate=SR)
    assert w.shape == (8000,)
    assert abs(np.argmax(np.abs(np.fft.rfft(w))) * SR / 8000 - 300) < 3


def test_flac_and_ogg(tmp_path):
    x = 0.3 * np.sin(2 * np.pi * 220 * np.arange(SR // 2) / SR)
    sf.write(str(tmp_path / "a.flac"), x, SR)
    sf.write(str(tmp_path / "b.ogg"), x, SR)
    ids = [s.id for s in list_stimuli(tmp_path)]
    assert ids == ["a", "b"]
    for s in list_stimuli(tmp_path):
        assert np.corrcoef(load_audio(s.path, sample_rate=SR)[:7000], x[:7000])[0, 1] > 0.95


@pytest.mark.parametrize("content,match", [
    (b"", "empty"),
    (b"this is not audio at all" * 10, "cannot be decoded"),
])
def test_bad_files(tmp_path, content, match):
    p = tmp_path / "bad.wav"
    p.write_bytes(content)
    with pytest.raises(AudioError, match=match):
        load_audio(p, sample_rate=SR)
    assert issubclass(AudioError, AlignjaxInputError)


def test_truncated_and_header_only_wav(tmp_path):
    good = write_tone(tmp_path / "good.wav", seconds=0.5)
    data = good.read_bytes()
    (tmp_path / "hdr.wav").write_bytes(data[:44])  # header, no samples
    with pytest.raises(AudioError):
        load_audio(tmp_path / "hdr.wav", sample_rate=SR)
    (tmp_path / "cut.wav").write_bytes(data[:20])  # cut inside the header
    with pytest.raises(AudioError):
        load_audio(tmp_path / "cut.wav", sample_rate=SR)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav", sample_rate=SR)


def test_listing_folder_and_csv(tmp_path):
    (tmp_path / "sub").mkdir()
    write_tone(tmp_path / "b.wav")
    write_tone(tmp_path / "sub" / "a.wav")
    (tmp_path / "notes.txt").write_text("ignored")
    assert [s.id for s in list_stimuli(tmp_path)] == ["b", "sub/a"]
    csv = tmp_path / "stim.csv"
    csv.write_text("id,path,label\nx,b.wav,dog\ny,sub/a.wav,cat\n")
    st = list_stimuli(csv)
    assert [s.id for s in st] == ["x", "y"] and st[1].labels == {"label": "cat"}
    assert st[1].path == tmp_path / "sub" / "a.wav"


def test_duplicate_ids(tmp_path):
    write_tone(tmp_path / "a.wav")
    sf.write(str(tmp_path / "a.flac"), np.zeros(100), SR)
    with pytest.raises(StimulusMismatchError, match="duplicate"):
        list_stimuli(tmp_path)
    csv = tmp_path / "s.csv"
    csv.write_text("id,path\nq,a.wav\nq,a.flac\n")
    with pytest.raises(StimulusMismatchError, match="duplicate"):
        list_stimuli(csv)


def test_bad_sources(tmp_path):
    with pytest.raises(AudioError, match="no audio files"):
        list_stimuli(tmp_path)
    with pytest.raises(AudioError, match="does not exist"):
        list_stimuli(tmp_path / "missing")
    csv = tmp_path / "s.csv"
    csv.write_text("name,file\na,b.wav\n")
    with pytest.raises(AudioError, match="'id'"):
        list_stimuli(csv)


def test_channels_each_refuses_stimuli_with_differing_channel_counts(tmp_path):
    from alignjax.errors import InvalidOptionError
    from extractors.run import extract

    t = np.linspace(0, 0.5, SR // 2, endpoint=False)
    sf.write(tmp_path / "quad.wav", np.stack([np.sin(2 * np.pi * f * t) for f in
                                               (220, 330, 440, 550)], 1), SR)
    sf.write(tmp_path / "mono.wav", np.sin(2 * np.pi * 220 * t), SR)
    out = tmp_path / "store"
    with pytest.raises(InvalidOptionError, match=r"1 channel\(s\): .*mono.wav.*4 channel\(s\): "
                                                 r".*quad.wav"):
        extract("mel", list_stimuli(tmp_path), out, channels="each", progress=False)
    assert not out.exists()         # refused before any work
