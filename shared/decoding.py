"""Decoding defaults belong to the bundle they were tuned for: config.json's "decoding" section.

A value is taken from, first to last: the request (RecognitionConfig, where it has the field), the
server's SEEDASR_* setting when one is set, and the bundle's config.json, which states every knob. KNOBS is the one
table of them: names, types, ranges, which a request may set, help; settings and request checks are made from it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

DECODING_KEY = "decoding"


class BundleConfigError(ValueError):
    """A bundle's config.json is missing, or its decoding section names a knob twice over or not at all."""


@dataclass(frozen=True)
class Knob:
    """One decoding knob: its name (config.json's key, the SEEDASR_<NAME> setting, the RecognitionConfig field where
    `request`), its type and range, and what it does. The settings' fields, the request checks and the bundle reader
    are all made from KNOBS; docs/decoding.md tables them with both bundles' values (tests/unit/test_docs.py)."""

    name: str
    kind: type
    help: str
    low: Optional[float] = None  # inclusive, or exclusive with low_open
    high: Optional[float] = None  # inclusive
    low_open: bool = False
    request: bool = False  # a request's RecognitionConfig may set it
    choices: tuple[str, ...] = ()
    pattern: str = ""

    def check(self, value: float) -> float:
        """value, or ValueError naming the knob and its range (NaN is outside every range)."""
        low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
        if not (low_ok and (self.high is None or value <= self.high)) or value != value:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            raise ValueError(f"{self.name} must be in {'(' if self.low_open else '['}{lo}, {hi}], got {value}")
        return value


KNOBS: tuple[Knob, ...] = (
    Knob("beam_size", int, "hypotheses kept per step without context", 1, 32, request=True),
    Knob("context_beam_size", int, "beam with a context stream; 0 = beam_size", 0, 32),
    Knob("nbest", int, "alternatives returned", 1, 32, request=True),
    Knob("context_weight", float, "alpha of the joint beam search: the context stream's share", 0, 1, request=True),
    Knob("ctc_weight", float, "CTC prefix scores against the LM's; 0 = no CTC head", 0, 1),
    Knob("context_budget", int, "context tokens given to the decoder", 0, 4096),
    Knob("context_prune_k", int, "the context stream chooses among the context-free stream's top k tokens", 1, 1024),
    Knob("bias_bonus", float, "per token of a context phrase spelled whole; 0 = off", 0, 50, request=True),
    Knob("correction_margin", float, "nats a corrected context phrase may cost; 0 = off", 0, 100, request=True),
    Knob("correction_min_similarity", float, "how alike a span must be to a context phrase to be tried", 0, 1,
         low_open=True),
    Knob("correction_margin_zh", float, "nats a Chinese phrase put in place of a sound-alike run may cost; 0 = off",
         0, 100),
    Knob("oov_penalty", float, "per word outside the lexicon and the context; 0 = off", 0, 50, request=True),
    Knob("word_lm_weight", float, "word n-gram LM weight; 0 = off", 0, 5),
    Knob("word_bonus", float, "per finished word, with the word LM", -20, 20),
    Knob("draft_margin", float, "nats by which a stream's final must rank an interim's token first to keep it "
         "without a beam; 0 = off", 0, 100),
    Knob("segment_s", float, "longest window of long audio (s)", 1, 30, low_open=True),
    Knob("length_norm", bool, "rank ended hypotheses by score per token"),
    Knob("lm_int8", bool, "the decoder's output layer in int8"),
    Knob("lm_blocks", str, "with lm_int8, the decoder blocks' linears in int8, bf16 or fp32",
         choices=("int8", "bf16", "fp32")),
    Knob("encoder_warps", str, "comma-separated filterbank warps in [0.5, 2] (test-time VTLN); 1 = off",
         pattern=r"^\s*[0-9.]+(\s*,\s*[0-9.]+)*\s*$"),
    Knob("encoder_int8", bool, "the ONNX encoder engine runs encoder.int8.onnx"),
    Knob("language_windows", str, "encoder window (s) per language, as fr:30,de:30; the others keep the model's "
         "window_s", pattern=r"^\s*$|^\s*[a-z]{2,3}\s*:\s*[0-9.]+(\s*,\s*[a-z]{2,3}\s*:\s*[0-9.]+)*\s*$"),
    Knob("confidence_weights", str, "word-confidence regression: weights of least token log-prob, entropy, n-best "
         "agreement, then bias (training/eval/calibrate.py); empty = uncalibrated",
         pattern=r"^\s*$|^\s*-?[0-9.]+(\s*,\s*-?[0-9.]+){3}\s*$"),
)
KNOB = {k.name: k for k in KNOBS}


@dataclass(frozen=True)
class DecodingDefaults:
    """A bundle's decoding knobs (KNOBS, in their order), with no fallbacks: from_bundle reads them, save_bundle writes
    the ones it is given (bundles/default/TUNING.md says how the shipped values were tuned)."""

    beam_size: int
    context_beam_size: int  # two streams run twice the decoder rows; a narrower beam keeps the phrase (TUNING.md)
    nbest: int
    context_weight: float
    ctc_weight: float
    context_budget: int
    context_prune_k: int
    bias_bonus: float
    correction_margin: float
    correction_min_similarity: float
    # Chinese phrases replace sound-alike runs (homophones): the speech cannot tell them apart, the prior must, and rare
    # characters cost the decoder several byte tokens each, so a wider margin than English's spelling look-alikes
    correction_margin_zh: float
    oov_penalty: float
    word_lm_weight: float
    word_bonus: float
    # a stream's final follows its latest interim's tokens while the whole turn's audio ranks each first by this
    # margin, and searches the rest with the beam (TUNING.md, "Drafted finals")
    draft_margin: float
    segment_s: float
    length_norm: bool
    lm_int8: bool
    lm_blocks: str
    encoder_warps: str
    encoder_int8: bool
    # Whisper was trained on 30 s windows; a shorter one costs the encoder less and suits English (tuned on it), while
    # other languages may read better in the window the model knows (TUNING.md, "Windows per language")
    language_windows: str
    confidence_weights: str

    def __post_init__(self) -> None:
        _ = self.windows  # a bad value fails when the bundle is read or a setting overrides it, not mid-request

    @classmethod
    def from_bundle(cls, bundle_dir: Path | str) -> DecodingDefaults:
        """The bundle's "decoding" section, which states every knob: an unknown key is an error, not a silent typo,
        and so is a missing one (no value falls back to another family's without anyone seeing it)."""
        path = Path(bundle_dir) / "config.json"
        section = json.loads(path.read_text()).get(DECODING_KEY, {}) if path.exists() else {}
        if not path.exists():
            raise BundleConfigError(f"model bundle {path.parent} lacks config.json, which states its decoding knobs; "
                                    "`make setup` fetches the default bundle")
        unknown, missing = sorted(set(section) - set(KNOB)), sorted(set(KNOB) - set(section))
        if unknown:
            raise BundleConfigError(f"{path}: unknown decoding settings {unknown}; known: {sorted(KNOB)}")
        if missing:
            raise BundleConfigError(f"{path}: its \"{DECODING_KEY}\" section states no {missing}: a bundle states every knob "
                             "(docs/decoding.md)")
        return cls(**section)

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

    @functools.cached_property  # read for every window of every turn: parsed once, when the defaults are made
    def windows(self) -> dict[str, float]:
        """language_windows as {language: seconds}; ValueError unless each is in (0, 30] (Whisper's longest)."""
        out: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in self.language_windows.split(","))):
            code, _, seconds = item.partition(":")
            try:
                window = float(seconds)
            except ValueError:
                raise ValueError(f"language_windows: {item!r} is not language:seconds") from None
            if not 0 < window <= 30:
                raise ValueError(f"language_windows: {code.strip()}'s window must be in (0, 30] s, got {seconds.strip()}")
            out[code.strip()] = window
        return out

    def window_for(self, language: str) -> float:
        """The encoder window (s) for a language code ("fr"); 0 = the model's own window_s (unknown language too)."""
        return self.windows.get(language, 0.0)

    @property
    def warps(self) -> tuple[float, ...]:
        return tuple(float(w) for w in self.encoder_warps.split(","))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def bundle_decoding(bundle_dir: Path | str) -> dict[str, Any]:
    """A bundle's decoding section, checked: what a new bundle of its family states (the Whisper export reads the
    shipped bundle's, the LUISE and tiny bundles the LUISE bundle's), so no number is copied by hand."""
    return DecodingDefaults.from_bundle(bundle_dir).as_dict()


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
