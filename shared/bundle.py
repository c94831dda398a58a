"""Model bundles: one folder with config.json, model.safetensors, tokenizer.model,
encoder.onnx (optional), encoder.plan (optional, GPU), lexicon.txt (optional: the decoder's word
list, shared/model/lexicon.py), word_lm.arpa.gz (optional: the word n-gram LM fused in beam search,
shared/model/word_lm.py) and MODEL_CARD.md.

A bundle whose encoder or decoder started from a pretrained one (`whisper`) does not copy the weights it
left as they were: config.json's `encoder_weights` / `decoder_weights` name the installed package file by
sha256, load_bundle reads that part from there (shared/model/whisper_weights.py) and puts the bundle's own
tensors of it, those that training changed (none when it was frozen, the top blocks when only those were
tuned, an upcycled decoder's routers), over it."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from shared.bundle_store import DEFAULT_BUNDLE, REPO_ROOT, default_bundle_dir
from shared.decoding import DECODING_KEY, DecodingDefaults
from shared.model.asr import ASRConfig, SeedASR, decoder_config_class, encoder_kind
from shared.model.converter import ConverterConfig
from shared.model.moe_lm import MoeConfig
from shared.tokenizer import Tokenizer

__all__ = ["DEFAULT_BUNDLE", "REPO_ROOT", "BundleError", "default_bundle_dir", "load_bundle", "read_bundle", "save_bundle"]


class BundleError(RuntimeError):
    pass


def config_to_dict(cfg: ASRConfig) -> dict[str, Any]:
    return asdict(cfg)


def config_from_dict(d: dict[str, Any]) -> ASRConfig:
    lm = dict(d["lm"])
    moe = lm.pop("moe", None)

    def pick(cls: type, values: dict[str, Any]) -> Any:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    encoder_type = d.get("encoder_type", "luise_conformer")  # bundles before the registry hold a conformer
    decoder_type = d.get("decoder_type", "moe_lm")  # and an MoE LM
    lm_class = decoder_config_class(decoder_type)
    return ASRConfig(
        encoder=pick(encoder_kind(encoder_type).config, d["encoder"]),
        encoder_type=encoder_type,
        converter=pick(ConverterConfig, d["converter"]),
        lm=lm_class(**{**{k: v for k, v in lm.items() if k in {f.name for f in dataclasses.fields(lm_class)}},
                       "moe": pick(MoeConfig, moe) if moe else None}),
        decoder_type=decoder_type,
        window_s=d.get("window_s", 0.0),
        encoder_layers=d.get("encoder_layers"),
        ctc_weight=d.get("ctc_weight", 1.0),
        ctc_blank=d.get("ctc_blank", 3),
    )


def save_bundle(model: SeedASR, tokenizer_file: Path, out: Path, card: str, extra: dict[str, Any] | None = None,
                from_package: bool = False) -> None:
    """extra: config.json's other sections, the "decoding" one stating every knob (from the bundle it was tuned
    for: shared/decoding.py); from_package: reference the pretrained package file for each part started from it (a
    `whisper` encoder, a `whisper` decoder) and keep only that part's tensors that differ from it."""
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"config": config_to_dict(model.cfg), **(extra or {})}
    try:  # every knob, each once: a bundle never falls back to another family's values
        DecodingDefaults(**meta[DECODING_KEY])
    except (KeyError, TypeError) as exc:
        raise BundleError(f"a bundle states every decoding knob (extra[{DECODING_KEY!r}], shared/decoding.py KNOBS): "
                          f"{exc}") from None
    parts = package_parts(model.cfg) if from_package else []
    if from_package and not parts:
        raise BundleError("only a `whisper` encoder or decoder can be read from a package")
    for prefix in parts:
        meta[PACKAGE_KEYS[prefix]] = package_reference()
    (out / "config.json").write_text(json.dumps(meta, indent=2))
    # float16 on disk halves the bundle; load_bundle copies into float32 parameters
    state = {k: (v.half() if v.is_floating_point() else v).detach().contiguous()
             for k, v in model.state_dict().items() if k != "lm.head.weight"}
    if parts:
        changed = changed_package_tensors(model, parts)
        state = {k: v for k, v in state.items() if not k.startswith(tuple(f"{p}." for p in parts)) or k in changed}
    state = drop_copied_experts(state)
    if model.cfg.encoder_layers:  # drop layers above the probed one: they are never run
        keep = model.cfg.encoder_layers
        state = {k: v for k, v in state.items() if not _encoder_layer_above(k, keep)}
    save_file(state, str(out / "model.safetensors"))
    if tokenizer_file.resolve() != (out / "tokenizer.model").resolve():
        (out / "tokenizer.model").write_bytes(tokenizer_file.read_bytes())
    (out / "MODEL_CARD.md").write_text(card)


_EXPERT = re.compile(r"\.experts\.(\d+)\.")


def drop_copied_experts(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Leave out every expert tensor equal to expert 0's (an upcycled decoder's experts start as copies of one
    MLP: a large checkpoint's bundle would store its MLPs once per expert); load_bundle copies them back."""
    def first(key: str) -> str:
        return _EXPERT.sub(".experts.0.", key, count=1)

    return {k: v for k, v in state.items()
            if not ((m := _EXPERT.search(k)) and m.group(1) != "0" and first(k) in state and torch.equal(v, state[first(k)]))}


def restore_copied_experts(state: dict[str, torch.Tensor], wanted: Iterable[str]) -> dict[str, torch.Tensor]:
    """The expert tensors drop_copied_experts left out, as copies of expert 0's."""
    out = dict(state)
    for key in wanted:
        if key not in out and _EXPERT.search(key) and (src := _EXPERT.sub(".experts.0.", key, count=1)) in state:
            out[key] = state[src]
    return out


def _encoder_layer_above(key: str, keep: int) -> bool:
    parts = key.split(".")
    return key.startswith("encoder.layers.") and int(parts[2]) >= keep


def read_bundle(path: Path | str | None = None) -> tuple[ASRConfig, Tokenizer, dict[str, Any]]:
    """A bundle's model config, tokenizer and config.json, without its weights (what a process that runs
    the encoder through ONNX or TensorRT needs). Raises BundleError with a clear message."""
    root = Path(path) if path else default_bundle_dir()
    for name in ("config.json", "model.safetensors", "tokenizer.model"):
        if not (root / name).is_file():
            raise BundleError(f"model bundle {root} lacks {name}; `make setup` fetches the default bundle's files, "
                              "`make train` makes one, SEEDASR_MODEL points at another")
    meta = json.loads((root / "config.json").read_text())
    cfg = config_from_dict(meta["config"])
    if cfg.encoder_layers:
        cfg.encoder.n_layers = cfg.encoder_layers
    return cfg, Tokenizer(root / "tokenizer.model"), meta


def load_bundle(path: Path | str | None = None, half: str = "all") -> tuple[SeedASR, Tokenizer, dict[str, Any]]:
    """Load a bundle for inference (eval mode, no grad): the whole model, or only its encoder or decoder
    half (SeedASR.build), reading only that half's weights. Raises BundleError with a clear message."""
    root = Path(path) if path else default_bundle_dir()
    cfg, tokenizer, meta = read_bundle(root)
    model = SeedASR.build(cfg, half)
    # first: the bundle's own tensors of these parts go over the package's
    parts = [p for p, key in PACKAGE_KEYS.items() if key in meta and model.in_half(f"{p}.", half)]
    for prefix in parts:
        load_package_part(model, prefix, meta[PACKAGE_KEYS[prefix]], root)
    with safe_open(str(root / "model.safetensors"), framework="pt") as weights:  # only this half's tensors are read
        state = {k: weights.get_tensor(k) for k in weights.keys() if model.in_half(k, half)}
    state = restore_copied_experts(state, model.state_dict().keys())
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if m != "lm.head.weight"]
    missing = [m for m in missing if not m.startswith(tuple(f"{p}." for p in parts))]
    if missing or unexpected:
        raise BundleError(f"bundle {root} does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.eval()
    return model, tokenizer, meta


# A part of the model that can start from the pretrained package -> its config.json key
PACKAGE_KEYS = {"encoder": "encoder_weights", "lm": "decoder_weights"}
PACKAGE_PREFIX = {"encoder": "encoder", "lm": "decoder"}  # our part -> its variables' prefix in the CTranslate2 file


def package_parts(cfg: ASRConfig) -> list[str]:
    """The state-dict prefixes of cfg's parts that the Whisper package holds."""
    return [p for p, is_whisper in (("encoder", cfg.encoder_type == "whisper"), ("lm", cfg.decoder_type == "whisper"))
            if is_whisper]


def package_reference() -> dict[str, Any]:
    from shared.model import whisper_weights as ww

    return {"format": "ctranslate2", "packages": [f"{p.replace('_', '-')}=={ww.PACKAGE_VERSION}" for p in ww.PACKAGES],
            "sha256": ww.MODEL_SHA256, "licence": ww.LICENCE}


def _load_part(module: torch.nn.Module, prefix: str, tensors: dict[str, Any]) -> None:
    from shared.model.whisper_decoder import WhisperDecoder, load_ct2_decoder
    from shared.model.whisper_encoder import WhisperEncoder, load_ct2_encoder

    if prefix == "encoder" and isinstance(module, WhisperEncoder):
        load_ct2_encoder(module, tensors)
    elif prefix == "lm" and isinstance(module, WhisperDecoder):
        load_ct2_decoder(module, tensors)
    else:
        raise BundleError(f"the Whisper package has no weights for a {type(module).__name__} ({prefix})")


def changed_package_tensors(model: SeedASR, parts: list[str]) -> set[str]:
    """State-dict keys of model's `parts` whose values are not the package's (what a bundle must store). A part's
    pristine copy is built afresh: an upcycled decoder's router (random at the start) always counts as changed."""
    from shared.model import whisper_weights as ww

    pristine = SeedASR.build(model.cfg)
    changed: set[str] = set()
    for prefix in parts:
        module = getattr(pristine, prefix)
        _load_part(module, prefix, ww.read_ct2(ww.ct2_model_dir() / "model.bin", f"{PACKAGE_PREFIX[prefix]}/"))
        ours = getattr(model, prefix).state_dict()
        changed |= {f"{prefix}.{k}" for k, v in module.state_dict().items() if not torch.equal(v, ours[k].to(v.dtype).cpu())}
    return changed



def load_package_part(model: SeedASR, prefix: str, ref: dict[str, Any], root: Path) -> None:
    """Fill model.<prefix> (encoder or lm) from the installed weights package that ref pins by sha256."""
    from shared.model import whisper_weights as ww

    if ref.get("sha256") != ww.MODEL_SHA256:
        raise BundleError(f"bundle {root} wants {prefix} weights {ref.get('sha256')}; this build reads only "
                          f"{ww.MODEL_SHA256} ({', '.join(ref.get('packages', []))})")
    try:
        model_bin = ww.ct2_model_dir() / "model.bin"
        if (got := ww.sha256_of(model_bin)) != ww.MODEL_SHA256:
            raise BundleError(f"{model_bin} has sha256 {got}, bundle {root} pins {ww.MODEL_SHA256}; delete it to rebuild")
        _load_part(getattr(model, prefix), prefix, ww.read_ct2(model_bin, f"{PACKAGE_PREFIX[prefix]}/"))
    except ww.WhisperWeightsError as err:
        raise BundleError(f"bundle {root}: {err}") from err
