"""Encoder engines: the same contract over torch, ONNX Runtime (CPU default) and TensorRT (GPU).

encode(feats (T, F) float32) -> EncoderOutput(speech (S, D_lm), ctc_logp (S, V)); encode_batch(feats
(B, T, F)) -> one EncoderOutput per row, for rows of one length (the same audio under several warps). `cancelled`,
when given, is asked during the run: ONNX Runtime then stops between two nodes (EncodeCancelled), so that an
interim nobody waits for any more leaves the cores to the final that replaced it; torch and TensorRT finish the run.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

import numpy as np
import torch

from shared.model.asr import EncoderWithConverter, SeedASR


@dataclass
class EncoderOutput:
    speech: np.ndarray  # (S, D_lm) float32
    ctc_logp: np.ndarray  # (S, V) float32


Cancelled = Optional[Callable[[], bool]]
WATCH_S = 0.005  # how often a run's caller is asked whether it is still there


class EncodeCancelled(Exception):
    """The caller went away while its audio was being encoded; the run was stopped."""


class EncoderEngine(Protocol):
    name: str

    def encode(self, feats: np.ndarray, cancelled: Cancelled = None) -> EncoderOutput: ...

    def encode_batch(self, feats: np.ndarray, cancelled: Cancelled = None) -> list[EncoderOutput]: ...


class TorchEncoder:
    name = "torch"

    def __init__(self, model: SeedASR) -> None:
        self.module = EncoderWithConverter(model).eval()

    def encode(self, feats: np.ndarray, cancelled: Cancelled = None) -> EncoderOutput:
        return self.encode_batch(feats[None])[0]

    @torch.inference_mode()
    def encode_batch(self, feats: np.ndarray, cancelled: Cancelled = None) -> list[EncoderOutput]:
        lengths = torch.full((feats.shape[0],), feats.shape[1])
        speech, lens, ctc = self.module(torch.from_numpy(np.ascontiguousarray(feats)), lengths)
        return [EncoderOutput(speech[i, : int(lens[i])].numpy(), ctc[i].numpy()) for i in range(len(feats))]


class OnnxEncoder:
    name = "onnxruntime"

    def __init__(self, path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        # idle pool threads sleep instead of spinning: 2 threads encode a 10 s window in 96 ms instead of 168 for 8%
        # more CPU (spinning: 92 ms for 23% more), so a second thread costs a throughput server little
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def encode(self, feats: np.ndarray, cancelled: Cancelled = None) -> EncoderOutput:
        return self.encode_batch(feats[None], cancelled)[0]

    def encode_batch(self, feats: np.ndarray, cancelled: Cancelled = None) -> list[EncoderOutput]:
        import onnxruntime as ort

        lengths = np.full((feats.shape[0],), feats.shape[1], dtype=np.int64)
        options = ort.RunOptions()
        with _terminated_when(cancelled, options):
            try:
                speech, lens, ctc = self.session.run(None, {"feats": feats.astype(np.float32), "lengths": lengths},
                                                     options)
            except Exception:
                if options.terminate:
                    raise EncodeCancelled("the encode was stopped: its caller went away") from None
                raise
        return [EncoderOutput(speech[i, : int(lens[i])], ctc[i]) for i in range(len(feats))]


@contextlib.contextmanager
def _terminated_when(cancelled: Cancelled, options: Any) -> Iterator[None]:
    """While the block runs, a watcher asks `cancelled` every WATCH_S and sets the run's terminate flag on yes."""
    if cancelled is None:
        yield
        return
    if cancelled():  # gone already: the run stops at its first node
        options.terminate = True
    done = threading.Event()

    def watch() -> None:
        while not done.wait(WATCH_S):
            if cancelled():
                options.terminate = True
                return

    watcher = threading.Thread(target=watch, name="encode-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()


class TensorRTEncoder:
    """Runs a serialized TensorRT engine (built by training/export/tensorrt.py) on the GPU via torch."""

    name = "tensorrt"

    def __init__(self, path: Path) -> None:
        import tensorrt as trt

        self.trt = trt
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(path.read_bytes())
        self.context = self.engine.create_execution_context()

    def encode(self, feats: np.ndarray, cancelled: Cancelled = None) -> EncoderOutput:
        inputs = {"feats": torch.from_numpy(feats)[None].cuda(), "lengths": torch.tensor([feats.shape[0]]).cuda()}
        for name, tensor in inputs.items():
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        outputs = {}
        for name in ("speech", "speech_lens", "ctc_logp"):
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = torch.int64 if name == "speech_lens" else torch.float32
            outputs[name] = torch.empty(shape, dtype=dtype, device="cuda")
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        stream = torch.cuda.current_stream()
        self.context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        n = int(outputs["speech_lens"][0])
        return EncoderOutput(outputs["speech"][0, :n].cpu().numpy(), outputs["ctc_logp"][0].cpu().numpy())

    def encode_batch(self, feats: np.ndarray, cancelled: Cancelled = None) -> list[EncoderOutput]:
        return [self.encode(f) for f in feats]  # one row at a time: the engine's profile allows batch <= 4


def engine_kind(kind: str, bundle_dir: Path) -> str:
    """kind: auto | torch | onnx | tensorrt. auto picks TensorRT on a GPU with a plan, else ONNX, else torch."""
    if kind != "auto":
        return kind
    if (bundle_dir / "encoder.plan").exists() and torch.cuda.is_available():
        return "tensorrt"
    return "onnx" if (bundle_dir / "encoder.onnx").exists() else "torch"


def make_encoder_engine(kind: str, model: Optional[SeedASR], bundle_dir: Path, threads: int = 0,
                        int8: bool = False) -> EncoderEngine:
    """kind as engine_kind takes it; `model` (its encoder half at least) is needed by the torch engine only.
    `int8`: the ONNX engine reads encoder.int8.onnx (training/export/onnx_export.py --int8)."""
    plan, onnx_file = bundle_dir / "encoder.plan", bundle_dir / ("encoder.int8.onnx" if int8 else "encoder.onnx")
    kind = engine_kind(kind, bundle_dir)
    if kind == "tensorrt":
        return TensorRTEncoder(plan)
    if kind == "onnx":
        if not onnx_file.exists():
            raise FileNotFoundError(f"{onnx_file} is missing; export it with `python -m training.export.onnx_export "
                                    f"--bundle {bundle_dir}{' --int8' if int8 else ''}`")
        return OnnxEncoder(onnx_file, threads)
    if kind == "torch":
        if model is None:
            raise ValueError("the torch encoder engine needs the model's encoder half loaded")
        return TorchEncoder(model)
    raise ValueError(f"unknown encoder engine {kind!r}; use auto, torch, onnx or tensorrt")
