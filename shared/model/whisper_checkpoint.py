"""A Whisper checkpoint a user already has, of any size, read into CTranslate2's variable names.

Two forms are read:
- a CTranslate2 folder (what faster-whisper loads): model.bin, config.json, tokenizer.json; float32, float16 or
  int8 weights (int8 ones are scaled back to floats with their per-row `weight_scale`);
- an OpenAI `.pt` (what `whisper.load_model` downloads): {"dims": ..., "model_state_dict": ...}. It carries no
  tokenizer: the multilingual one of every size up to large-v2 (51,865 tokens) is the installed base package's;
  other vocabularies need their tokenizer.json given.

Sizes come from the weights (layers, widths, mel bins, vocabulary) and the stored head counts, so tiny to large-v3
read alike. English-only (`.en`) checkpoints are refused: their decoding starts without a language token.
    read_checkpoint(path) -> WhisperCheckpoint(tensors in CTranslate2 names, encoder and decoder configs, ...)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

from shared.bundle_store import sha256_of
from shared.model import whisper_weights as ww
from shared.model.whisper_decoder import WhisperDecoderConfig
from shared.model.whisper_encoder import WhisperEncoderConfig

MULTILINGUAL_VOCAB = 51865  # tiny to large-v2: the base package's tokenizer.json fits them all


class CheckpointError(ValueError):
    pass


@dataclasses.dataclass
class WhisperCheckpoint:
    source: Path
    format: str  # "ctranslate2" | "openai"
    sha256: str  # of model.bin or of the .pt
    tensors: dict[str, np.ndarray]  # CTranslate2 names: "encoder/layer_0/self_attention/linear_0/weight", ...
    encoder: WhisperEncoderConfig
    decoder: WhisperDecoderConfig
    tokenizer_json: Path
    alignment_heads: list[tuple[int, int]]  # (block, head); [] when the checkpoint names none

    def card_line(self) -> str:
        enc, dec = self.encoder, self.decoder
        return (f"{self.format} checkpoint {self.source.name}, sha256 {self.sha256}: encoder {enc.n_layers} x "
                f"{enc.d_model} ({enc.n_heads} heads, {enc.n_mels} mel bins), decoder {dec.n_layers} x {dec.d_model} "
                f"({dec.n_heads} heads, {dec.vocab_size} tokens)")


def read_checkpoint(source: Path, tokenizer_json: Optional[Path] = None) -> WhisperCheckpoint:
    """source: a CTranslate2 folder or an OpenAI .pt file. Raises CheckpointError with what is wrong."""
    source = Path(source)
    if source.is_dir():
        model_bin = source / "model.bin"
        if not model_bin.is_file():
            raise CheckpointError(f"{source} has no model.bin: give a CTranslate2 Whisper folder or an OpenAI .pt file")
        try:
            tensors = dequantize(ww.read_ct2(model_bin))
        except (ww.WhisperWeightsError, ValueError, IndexError) as err:  # struct errors are ValueErrors
            raise CheckpointError(f"{model_bin} is not a CTranslate2 model this build reads: {err}") from err
        config = json.loads((source / "config.json").read_text()) if (source / "config.json").is_file() else {}
        heads = [(int(b), int(h)) for b, h in config.get("alignment_heads", [])]
        tokenizer_json = tokenizer_json or (source / "tokenizer.json" if (source / "tokenizer.json").is_file() else None)
        fmt, digest = "ctranslate2", sha256_of(model_bin)
    elif source.is_file():
        tensors, heads, fmt, digest = _read_openai(source), [], "openai", sha256_of(source)
    else:
        raise CheckpointError(f"{source} does not exist")
    encoder, decoder = configs_from_tensors(tensors)
    if decoder.vocab_size < MULTILINGUAL_VOCAB:
        raise CheckpointError(f"{source} is an English-only Whisper ({decoder.vocab_size} tokens): a multilingual "
                              "checkpoint is needed (its decoding starts with a language token)")
    if tokenizer_json is None:
        if decoder.vocab_size != MULTILINGUAL_VOCAB:
            raise CheckpointError(f"{source} has {decoder.vocab_size} tokens and no tokenizer.json beside it: give "
                                  "the tokenizer.json of its model")
        tokenizer_json = ww.ct2_model_dir() / "tokenizer.json"
    return WhisperCheckpoint(source, fmt, digest, tensors, encoder, decoder, Path(tokenizer_json), heads)


def dequantize(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """int8 weights with a per-row `<name>_scale` (CTranslate2's int8 and int8_float16) back to float32."""
    out = {}
    for name, value in tensors.items():
        if name.endswith("_scale") and name[: -len("_scale")] in tensors:
            continue
        scale = tensors.get(f"{name}_scale")
        if value.dtype == np.int8 and scale is not None:
            value = value.astype(np.float32) / scale.astype(np.float32).reshape(-1, *([1] * (value.ndim - 1)))
        out[name] = value
    return out


def configs_from_tensors(tensors: dict[str, np.ndarray]) -> tuple[WhisperEncoderConfig, WhisperDecoderConfig]:
    try:
        conv1 = tensors["encoder/conv1/weight"]  # (d_model, n_mels, 3)
        embed = tensors["decoder/embeddings/weight"]  # (vocab, d_model)
        enc_layers = _count_layers(tensors, "encoder")
        dec_layers = _count_layers(tensors, "decoder")
        enc_heads, dec_heads = int(tensors["encoder/num_heads"]), int(tensors["decoder/num_heads"])
        ff = tensors["encoder/layer_0/ffn/linear_0/weight"].shape[0]
        text_ctx = tensors["decoder/position_encodings/encodings"].shape[0]
    except KeyError as err:
        raise CheckpointError(f"not a Whisper checkpoint: it has no {err.args[0]}") from err
    d_model = conv1.shape[0]
    if d_model % enc_heads or embed.shape[1] % dec_heads:
        raise CheckpointError(f"widths {d_model}/{embed.shape[1]} do not split into {enc_heads}/{dec_heads} heads")
    encoder = WhisperEncoderConfig(n_mels=conv1.shape[1], d_model=d_model, n_heads=enc_heads, n_layers=enc_layers,
                                   ff_mult=ff // d_model)
    decoder = WhisperDecoderConfig(vocab_size=embed.shape[0], d_model=embed.shape[1], n_heads=dec_heads,
                                   n_layers=dec_layers, ff_mult=ff // d_model, max_tokens=text_ctx)
    return encoder, decoder


def _count_layers(tensors: dict[str, np.ndarray], part: str) -> int:
    n = 0
    while f"{part}/layer_{n}/ffn/linear_0/weight" in tensors:
        n += 1
    if not n:
        raise CheckpointError(f"not a Whisper checkpoint: no {part} layers")
    return n


def _read_openai(path: Path) -> dict[str, np.ndarray]:
    import torch

    try:  # weights only: a .pt from elsewhere must not run code while it loads
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a file that is not a checkpoint
        raise CheckpointError(f"{path} is not a PyTorch checkpoint this build reads: {err}") from err
    if not isinstance(checkpoint, dict) or "dims" not in checkpoint or "model_state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not an OpenAI Whisper checkpoint (no 'dims' and 'model_state_dict')")
    dims = checkpoint["dims"]
    state = {k: v.float().numpy() for k, v in checkpoint["model_state_dict"].items()}
    return openai_to_ct2(state, int(dims["n_audio_head"]), int(dims["n_text_head"]))


def openai_to_ct2(state: dict[str, np.ndarray], audio_heads: int, text_heads: int) -> dict[str, np.ndarray]:
    """OpenAI Whisper's state dict -> CTranslate2's names, as its converter writes them: query, key and value
    fused in one linear (the key has no bias: zeros in its slice), cross-attention's key and value fused."""
    out: dict[str, np.ndarray] = {"encoder/num_heads": np.array(audio_heads, np.int16),
                                  "decoder/num_heads": np.array(text_heads, np.int16)}

    def linear(dst: str, src: str) -> None:
        out[f"{dst}/weight"], out[f"{dst}/bias"] = state[f"{src}.weight"], state[f"{src}.bias"]

    def norm(dst: str, src: str) -> None:
        out[f"{dst}/gamma"], out[f"{dst}/beta"] = state[f"{src}.weight"], state[f"{src}.bias"]

    def fused(dst: str, src: str, names: tuple[str, ...]) -> None:
        out[f"{dst}/weight"] = np.concatenate([state[f"{src}.{n}.weight"] for n in names])
        out[f"{dst}/bias"] = np.concatenate([state.get(f"{src}.{n}.bias", np.zeros(state[f"{src}.{n}.weight"].shape[0],
                                                                               np.float32)) for n in names])

    try:
        for conv in ("conv1", "conv2"):
            linear(f"encoder/{conv}", f"encoder.{conv}")
        out["encoder/position_encodings/encodings"] = state["encoder.positional_embedding"]
        norm("encoder/layer_norm", "encoder.ln_post")
        out["decoder/embeddings/weight"] = state["decoder.token_embedding.weight"]
        out["decoder/position_encodings/encodings"] = state["decoder.positional_embedding"]
        norm("decoder/layer_norm", "decoder.ln")
        for part in ("encoder", "decoder"):
            i = 0
            while f"{part}.blocks.{i}.attn.query.weight" in state:
                src, dst = f"{part}.blocks.{i}", f"{part}/layer_{i}"
                fused(f"{dst}/self_attention/linear_0", f"{src}.attn", ("query", "key", "value"))
                linear(f"{dst}/self_attention/linear_1", f"{src}.attn.out")
                norm(f"{dst}/self_attention/layer_norm", f"{src}.attn_ln")
                if part == "decoder":
                    linear(f"{dst}/attention/linear_0", f"{src}.cross_attn.query")
                    fused(f"{dst}/attention/linear_1", f"{src}.cross_attn", ("key", "value"))
                    linear(f"{dst}/attention/linear_2", f"{src}.cross_attn.out")
                    norm(f"{dst}/attention/layer_norm", f"{src}.cross_attn_ln")
                linear(f"{dst}/ffn/linear_0", f"{src}.mlp.0")
                linear(f"{dst}/ffn/linear_1", f"{src}.mlp.2")
                norm(f"{dst}/ffn/layer_norm", f"{src}.mlp_ln")
                i += 1
    except KeyError as err:
        raise CheckpointError(f"not an OpenAI Whisper state dict: it has no {err.args[0]}") from err
    return out


def source_reference(ckpt: WhisperCheckpoint, licence: str) -> dict[str, Any]:
    """What a bundle's config.json and card record of where its weights came from."""
    return {"format": ckpt.format, "file": ckpt.source.name, "sha256": ckpt.sha256, "licence": licence}
