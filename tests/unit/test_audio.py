import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.audio import AudioError, AudioLimits, decode_audio
from tests.conftest import tone, wav_bytes


def test_wav_flac_and_raw_decode_to_16k_mono() -> None:
    x = tone(1.0, 16_000)
    assert decode_audio(wav_bytes(x)).shape == (16_000,)
    assert decode_audio(wav_bytes(x, fmt="FLAC")).shape == (16_000,)
    y = decode_audio(wav_bytes(tone(1.0, 44_100), rate=44_100, channels=2))
    assert abs(len(y) - 16_000) <= 1
    raw = (x * 32767).astype("<i2").tobytes()
    np.testing.assert_allclose(decode_audio(raw, encoding="pcm_s16le", sample_rate=16_000), x, atol=1e-3)
    z = decode_audio(tone(0.5, 8_000).astype("<f4").tobytes(), encoding="pcm_f32le", sample_rate=8_000)
    assert len(z) == 8_000


@pytest.mark.parametrize(
    "data, kwargs, status, fragment",
    [
        (b"", {}, "INVALID_ARGUMENT", "empty"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", {}, "INVALID_ARGUMENT", "cannot decode"),
        (b"this is not audio at all" * 10, {}, "INVALID_ARGUMENT", "cannot decode"),
        (b"\x00\x01\x02", {"encoding": "pcm_s16le", "sample_rate": 16_000}, "INVALID_ARGUMENT", "multiple"),
        (b"\x00\x00" * 100, {"encoding": "pcm_s16le"}, "INVALID_ARGUMENT", "sample_rate"),
        (b"\x00\x00" * 100, {"encoding": "mp3", "sample_rate": 16_000}, "INVALID_ARGUMENT", "unknown raw"),
        (b"\x00\x00" * 100, {"encoding": "pcm_s16le", "sample_rate": 1_000}, "INVALID_ARGUMENT", "sample rate"),
        (np.full(1600, np.nan, "<f4").tobytes(), {"encoding": "pcm_f32le", "sample_rate": 16_000}, "INVALID_ARGUMENT", "NaN"),
    ],
)
def test_bad_audio_is_rejected_with_status(data: bytes, kwargs: dict, status: str, fragment: str) -> None:
    with pytest.raises(AudioError) as err:
        decode_audio(data, **kwargs)
    assert err.value.status == status and fragment in str(err.value)


def test_limits() -> None:
    long = wav_bytes(tone(3.0))
    with pytest.raises(AudioError) as err:
        decode_audio(long, limits=AudioLimits(max_seconds=2))
    assert err.value.status == "RESOURCE_EXHAUSTED"
    with pytest.raises(AudioError, match="channels"):
        decode_audio(wav_bytes(tone(0.5), channels=4))
    truncated = wav_bytes(tone(1.0))[:30]
    with pytest.raises(AudioError):
        decode_audio(truncated)
    with pytest.raises(AudioError, match="differs"):
        decode_audio(wav_bytes(tone(0.5)), sample_rate=8_000)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    try:
        out = decode_audio(data)
    except AudioError:
        return
    assert out.dtype == np.float32 and np.all(np.isfinite(out))


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=44, max_size=2048), st.integers(0, 40))
def test_corrupted_wav_headers_never_crash(noise: bytes, cut: int) -> None:
    good = wav_bytes(tone(0.1))
    data = good[:cut] + noise + good[cut + len(noise):]
    try:
        decode_audio(data)
    except AudioError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["pcm_s16le", "pcm_f32le"]), st.integers(-10, 200_000), st.integers(-1, 9), st.binary(max_size=4000))
def test_raw_pcm_parameters_never_crash(encoding: str, rate: int, channels: int, data: bytes) -> None:
    try:
        out = decode_audio(data, encoding=encoding, sample_rate=rate, channels=channels)
    except AudioError:
        return
    assert np.all(np.isfinite(out))
