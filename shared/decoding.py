"""Decoding defaults belong to the bundle they were tuned for: config.json's "decoding" section.

A value is taken from, first to last: the request (RecognitionConfig, where it has the field), the
server's SEEDASR_* setting when one is set, the bundle's config.json, and the fallbacks below (the
values the shipped bundles were tuned to; bundles/default/TUNING.md has the tables).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DECODING_KEY = "decoding"


@dataclass(frozen=True)
class DecodingDefaults:
    beam_size: int = 12
    # the beam when the search has a context stream (0: beam_size): two streams run twice the decoder rows, and a
    # wider beam lets hypotheses without the context's phrase outrank it (bundles/default/TUNING.md)
    context_beam_size: int = 0
    nbest: int = 4
    context_weight: float = 0.9  # alpha of the joint beam search
    ctc_weight: float = 0.4  # CTC prefix scores against the LM's
    context_budget: int = 96  # context tokens
    context_prune_k: int = 128  # the context pass chooses among the context-free pass's top k tokens
    bias_bonus: float = 4.0  # per token of a context phrase spelled out whole
    correction_margin: float = 12.0  # nats of CTC log-likelihood a corrected phrase may cost
    correction_min_similarity: float = 0.6
    oov_penalty: float = 4.0  # per word outside the lexicon and the context
    word_lm_weight: float = 0.3
    word_bonus: float = 1.0
    segment_s: float = 8.0  # longest window of long audio
    length_norm: bool = False  # rank ended hypotheses by score per token (shared/model/beam_search.py)
    lm_int8: bool = True  # the decoder's output layer in int8 ...
    lm_blocks: str = "int8"  # ... and its blocks' linears in int8, bf16 or fp32 (shared/model/quantize.py)
    encoder_warps: str = "1"  # comma-separated filterbank warps (test-time VTLN); "1" = off
    encoder_int8: bool = False  # the ONNX engine runs the int8 copy of the encoder (encoder.int8.onnx)
    # word confidence: logistic regression weights of (least token log-prob, mean token entropy, n-best agreement) and
    # its bias, comma-separated, fitted on a calibration set (training/eval/calibrate.py); "" = uncalibrated (the least
    # likely token's probability)
    confidence_weights: str = ""

    @classmethod
    def from_bundle(cls, bundle_dir: Path | str) -> DecodingDefaults:
        """The bundle's "decoding" section, which states every knob: an unknown key is an error, not a silent typo,
        and so is a missing one (no value falls back to another family's without anyone seeing it)."""
        path = Path(bundle_dir) / "config.json"
        section = json.loads(path.read_text()).get(DECODING_KEY, {}) if path.exists() else {}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown, missing = sorted(set(section) - names), sorted(names - set(section))
        if unknown:
            raise ValueError(f"{path}: unknown decoding settings {unknown}; known: {sorted(names)}")
        if missing and path.exists():
            raise ValueError(f"{path}: its \"{DECODING_KEY}\" section states no {missing}: a bundle states every knob "
                             "(docs/decoding.md)")
        return dataclasses.replace(cls(), **section)

    def overridden(self, settings: Any) -> DecodingDefaults:
        """The same with every server setting of the same name that is set (not None) taking its place."""
        changes = {f.name: getattr(settings, f.name) for f in dataclasses.fields(self)
                   if getattr(settings, f.name, None) is not None}
        return dataclasses.replace(self, **changes)

    @property
    def confidence(self) -> tuple[float, ...]:
        """confidence_weights as numbers (empty when unset)."""
        if not self.confidence_weights.strip():
            return ()
        weights = tuple(float(w) for w in self.confidence_weights.split(","))
        if len(weights) != 4:
            raise ValueError(f"confidence_weights holds 3 weights and a bias, got {self.confidence_weights!r}")
        return weights

    @property
    def warps(self) -> tuple[float, ...]:
        return tuple(float(w) for w in self.encoder_warps.split(","))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def bundle_languages(bundle_dir: Path | str) -> tuple[str, ...]:
    """The languages the bundle's model knows (config.json "languages", its model's codes in its order); a bundle
    that lists none is English only."""
    path = Path(bundle_dir) / "config.json"
    listed = json.loads(path.read_text()).get("languages") if path.exists() else None
    return tuple(str(code) for code in listed) if listed else ("en",)


def languages_for(settings: Any) -> tuple[str, ...]:
    from shared.bundle_store import default_bundle_dir

    return bundle_languages(Path(settings.model) if settings.model else default_bundle_dir())


def decoding_for(settings: Any) -> DecodingDefaults:
    """What a server decodes with: its bundle's defaults under its settings."""
    from shared.bundle_store import default_bundle_dir

    return DecodingDefaults.from_bundle(Path(settings.model) if settings.model else default_bundle_dir()).overridden(settings)
