"""Pieces every training stage shares: manifests, a feature cache, batching, SpecAugment,
checkpoints that resume, loss logs and plots."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Optional, cast

import numpy as np
import torch
from tqdm import tqdm

from shared.audio import read_audio_file
from shared.features import encoder_features
from shared.model.asr import encoder_kind, pad_to_window


def train_device() -> torch.device:
    """SEEDASR_TRAIN_DEVICE (default cpu; cuda on a GPU machine): where the training stages run."""
    device = torch.device(os.environ.get("SEEDASR_TRAIN_DEVICE", "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("SEEDASR_TRAIN_DEVICE=cuda but torch sees no CUDA device")
    if device.type == "cpu":
        torch.set_num_threads(2)  # this machine's two cores; more threads only thrash
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


DEVICE = train_device()


def device_name() -> str:
    """What a stage trained on, for the model card."""
    if DEVICE.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(DEVICE)}"
    return f"cpu: {torch.get_num_threads()} threads"


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A state dict on the CPU, so stage outputs load anywhere."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _features_of(path: str, kind: str = "fbank", window_s: float = 0.0) -> np.ndarray:
    return encoder_features(pad_to_window(read_audio_file(path), window_s), kind)[0].astype(np.float16)


class FrameCache:
    """Frames (T, F) of every row in one float16 array on disk, with each row's (start, end) offsets."""

    freq_masks = 2  # SpecAugment band masks per utterance (feature_batches with augment)
    rows: list[dict[str, Any]]
    data: np.ndarray
    offsets: list[tuple[int, int]]

    def _load(self, path: Path) -> bool:
        index = path.with_suffix(".json")
        if path.exists() and index.exists() and json.loads(index.read_text())["n"] == len(self.rows):
            self.data = np.load(path, mmap_mode="r")
            self.offsets = json.loads(index.read_text())["offsets"]
            return True
        return False

    def _store(self, chunks: list[np.ndarray], path: Path) -> None:
        """chunks: one (T, F) array per row, in row order."""
        ends = np.cumsum([len(c) for c in chunks]).tolist()
        self.offsets = [(e - len(c), e) for c, e in zip(chunks, ends)]
        self.data = np.concatenate(chunks)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, self.data)
        path.with_suffix(".json").write_text(json.dumps({"n": len(self.rows), "offsets": self.offsets}))

    def __len__(self) -> int:
        return len(self.rows)

    def feats(self, i: int) -> np.ndarray:
        a, b = self.offsets[i]
        return np.asarray(self.data[a:b], dtype=np.float32)


class FeatureCache(FrameCache):
    """All utterances' encoder input features in one float16 array, built once per manifest and feature
    kind (shared/features.py encoder_features: normalised fbank for LUISE, Whisper's log-mel)."""

    def __init__(self, manifest: str | Path, max_seconds: float = 20.0, kind: str = "fbank", window_s: float = 0.0) -> None:
        """window_s: each audio zero-padded to whole windows first (shared/model/asr.py pad_to_window), as a bundle
        with that window serves it."""
        manifest = Path(manifest)
        self.rows = [r for r in read_manifest(manifest) if r.get("duration", 0) <= max_seconds]
        suffix = ".feats" if kind == "fbank" else f".{kind}"  # fbank keeps the name earlier runs cached under
        suffix += f".window{window_s:g}s" if window_s > 0 else ""
        cache = manifest.with_suffix(suffix + ".npy")
        if self._load(cache):
            return
        paths = [row["audio"] for row in self.rows]
        # Fresh single-threaded workers: forked ones inherit BLAS thread pools, and 16 forked workers
        # made only 100 utterances/s on a 16-core machine (one process makes 700 here).
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
        with get_context("spawn").Pool(os.cpu_count() or 1) as pool:
            chunks = list(tqdm(pool.imap(partial(_features_of, kind=kind, window_s=window_s), paths, chunksize=64),
                               total=len(paths),
                               desc=f"{kind} {manifest.parent.name}"))
        self._store(chunks, cache)


class EncoderOutputCache(FrameCache):
    """A frozen encoder's outputs (T', D) for every utterance of a FeatureCache, in one float16 array
    computed once per work folder, so that stages training converter + LM over a pretrained encoder
    (recipe encoder_lr_scale 0) never run it again. feature_batches then yields encoder frames, and
    `speech_of` sends them straight to the converter.

    With `resume_at` (recipe encoder_tuned_layers) the cache holds the residual stream below the blocks that
    train, `encoder.lower(..., resume_at)`, and `speech_of` runs the encoder's `upper` blocks on it first."""

    def __init__(self, features: FeatureCache, encoder: torch.nn.Module, path: Path, max_frames: int = 12_000,
                 resume_at: Optional[int] = None) -> None:
        self.rows = features.rows
        self.resume_at = resume_at
        # SpecAugment's band masks zero channels; of a residual stream (a few channels carry most of its
        # magnitude) that is not a masked band but a different input, so such a cache is masked in time only
        self.freq_masks = 2 if resume_at is None else 0
        if self._load(path):
            return
        outputs: dict[int, np.ndarray] = {}
        encoder.eval()
        # with resume_at the encoder is one split into lower/upper blocks (WhisperEncoder)
        encode = encoder if resume_at is None else partial(cast(Any, encoder).lower, n_layers=resume_at)
        batches = list(feature_batches(features, max_frames, random.Random(0), augment=False))  # rows found by index
        with torch.no_grad():
            for batch in tqdm(batches, desc=f"encoder outputs {path.parent.name}"):
                enc, enc_lens = encode(batch.feats.to(DEVICE), batch.lengths.to(DEVICE))
                for k, i in enumerate(batch.index):
                    outputs[i] = enc[k, : int(enc_lens[k])].half().cpu().numpy()
        self._store([outputs[i] for i in range(len(self.rows))], path)


def tuned_encoder_start(recipe: Any, model: Any) -> Optional[int]:
    """The first encoder block that trains when the recipe tunes only the top `encoder_tuned_layers` of a
    pretrained encoder, else None (the whole encoder trains, or none of it)."""
    k = getattr(recipe, "encoder_tuned_layers", 0)
    if not k or recipe.encoder_lr_scale <= 0:
        return None
    encoder = model.encoder
    n = len(getattr(encoder, "layers", []))
    if not hasattr(encoder, "upper"):
        raise SystemExit(f"encoder_tuned_layers needs an encoder split into lower/upper blocks (whisper), not "
                         f"{model.cfg.encoder_type}")
    if model.cfg.encoder_layers not in (None, n):
        raise SystemExit(f"encoder_tuned_layers needs all {n} encoder blocks kept, not {model.cfg.encoder_layers}")
    if not 0 < k <= n:
        raise SystemExit(f"encoder_tuned_layers {k}: the encoder has {n} blocks")
    return n - k


def encoder_trainable(recipe: Any, model: Any) -> list[torch.nn.Parameter]:
    """The encoder parameters a stage trains: none (lr scale 0), the top blocks and final norm, or all."""
    if recipe.encoder_lr_scale <= 0:
        return []
    start = tuned_encoder_start(recipe, model)
    if start is None:
        return list(model.encoder.parameters())
    return [p for blk in model.encoder.layers[start:] for p in blk.parameters()] + list(model.encoder.norm.parameters())


def training_cache(recipe: Any, model: Any) -> FrameCache:
    """The stage's input: encoder frames when the recipe keeps a pretrained encoder frozen, the residual stream
    below the tuned blocks when it tunes only the top ones, else features."""
    features = FeatureCache(recipe.train_manifest, kind=encoder_kind(recipe.encoder_type).features)
    start = tuned_encoder_start(recipe, model)
    if start is not None:
        return EncoderOutputCache(features, model.encoder, recipe.work_dir / f"encoder_hidden{start}.npy", resume_at=start)
    if recipe.encoder_lr_scale > 0:
        return features
    return EncoderOutputCache(features, model.encoder, recipe.work_dir / "encoder_out.npy")


def speech_of(model: Any, batch: FeatBatch, cache: FrameCache) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch -> speech (B, S, D_lm), speech_lens (B,): through the encoder, or from cached encoder frames
    (through the tuned top blocks first, when the cache holds the stream below them)."""
    if isinstance(cache, EncoderOutputCache):
        frames, lengths = batch.feats, batch.lengths
        if cache.resume_at is not None:
            frames, lengths = model.encoder.upper(frames, lengths, cache.resume_at)
        speech, speech_lens = model.converter(frames, lengths)
        return speech, speech_lens
    _, speech, speech_lens, _ = model.encode(batch.feats, batch.lengths)
    return speech, speech_lens


def spec_augment(x: torch.Tensor, rng: random.Random, n_time: int = 2, n_freq: int = 2) -> torch.Tensor:
    """x (T, F): zero a few time spans (<= 5% each) and frequency bands (<= 12 bins)."""
    x = x.clone()
    t, f = x.shape
    for _ in range(n_freq):
        w = rng.randint(0, 12)
        s = rng.randint(0, max(0, f - w))
        x[:, s : s + w] = 0
    for _ in range(n_time):
        w = rng.randint(0, max(1, t // 20))
        s = rng.randint(0, max(0, t - w))
        x[s : s + w] = 0
    return x


@dataclass
class FeatBatch:
    feats: torch.Tensor  # (B, T, F)
    lengths: torch.Tensor  # (B,)
    rows: list[dict[str, Any]]
    index: list[int]  # the rows' positions in their cache

    def to(self, device: torch.device) -> FeatBatch:
        return FeatBatch(self.feats.to(device, non_blocking=True), self.lengths.to(device), self.rows, self.index)


def feature_batches(cache: FrameCache, max_frames: int, rng: random.Random, augment: bool,
                    only: Optional[Sequence[int]] = None) -> Iterator[FeatBatch]:
    """One epoch of length-bucketed batches holding at most `max_frames` padded frames, in random order; `only`:
    these rows of the cache (default all)."""
    rows = range(len(cache)) if only is None else only
    order = sorted(rows, key=lambda i: cache.offsets[i][1] - cache.offsets[i][0] + rng.random() * 50)
    batches: list[list[int]] = []
    cur: list[int] = []
    longest = 0
    for i in order:
        n = cache.offsets[i][1] - cache.offsets[i][0]
        if cur and max(longest, n) * (len(cur) + 1) > max_frames:
            batches.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    for idx in batches:
        feats = [torch.from_numpy(cache.feats(i)) for i in idx]
        if augment:
            feats = [spec_augment(f, rng, n_freq=cache.freq_masks) for f in feats]
        lengths = torch.tensor([len(f) for f in feats])
        padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
        yield FeatBatch(padded, lengths, [cache.rows[i] for i in idx], idx)


class Checkpointer:
    """Saves model + optimizer + step every few minutes, and resumes from the last one."""

    def __init__(self, path: Path, every_s: float = 120.0) -> None:
        self.path, self.every_s, self.last = path, every_s, time.time()
        path.parent.mkdir(parents=True, exist_ok=True)

    def load(self, model: torch.nn.Module, opt: torch.optim.Optimizer | None) -> dict[str, Any]:
        if not self.path.exists():
            return {"step": 0, "log": []}
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        if opt is not None and "opt" in state:
            opt.load_state_dict(state["opt"])
        print(f"resumed {self.path} at step {state['step']}")
        return state

    def maybe_save(self, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int, log: list,
                   elapsed: float, force: bool = False) -> None:
        if force or time.time() - self.last > self.every_s:
            tmp = self.path.with_suffix(".tmp")
            state = {"model": cpu_state(model), "opt": opt.state_dict(), "step": step, "log": log, "elapsed": elapsed}
            torch.save(state, tmp)
            tmp.replace(self.path)
            self.last = time.time()


def lr_at(step: int, progress: float, peak: float, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay over the stage's time budget."""
    scale = min(1.0, (step + 1) / warmup)
    return peak * scale * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * min(1.0, progress))))


class TimeBudget:
    """A stage's wall-clock budget that survives restarts (elapsed time is kept in the checkpoint)."""

    def __init__(self, minutes: float, elapsed: float = 0.0) -> None:
        self.total, self.start, self.before = minutes * 60, time.time(), elapsed

    @property
    def elapsed(self) -> float:
        return self.before + time.time() - self.start

    @property
    def progress(self) -> float:
        return self.elapsed / self.total

    def left(self) -> bool:
        return self.elapsed < self.total


def plot_losses(logs: dict[str, list[tuple[int, float]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(logs), figsize=(4 * len(logs), 3))
    for ax, (name, points) in zip(np.atleast_1d(axes), logs.items()):
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, alpha=0.3)
            k = max(1, len(values) // 50)  # a running mean shows the trend under per-batch noise
            if k > 1:
                smooth = np.convolve(values, np.ones(k) / k, mode="valid")
                ax.plot(steps[k - 1 :], smooth)
        ax.set_title(name)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out)


def source_commit(bundle: Path) -> str:
    """The git commit that last changed the bundle's weights ('' outside a git checkout)."""
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%h", "--", str(bundle / "model.safetensors")],
                             capture_output=True, text=True, check=True, timeout=30)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
