"""A bundle of Whisper's encoder and upcycled decoder: it stores only what is not the package's, loads
by halves, and recognises with context through AsrCore (the code path of the services)."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors import safe_open

from shared.bundle import load_bundle, save_bundle
from shared.bundle_store import DEFAULT_BUNDLE
from shared.decoding import DECODING_KEY, bundle_decoding
from shared.model.asr import pad_to_window
from shared.model.beam_search import BeamConfig
from tests.conftest import ROOT

SHIPPED_DECODING = {DECODING_KEY: bundle_decoding(DEFAULT_BUNDLE)}  # what a bundle of its family states


@pytest.fixture(scope="module")
def whisper_bundle(tmp_path_factory, whisper_base_encoder_weights, whisper_base_decoder_weights) -> Path:
    from shared.model.asr import SeedASR
    from shared.model.whisper_decoder import load_ct2_decoder
    from shared.model.whisper_encoder import load_ct2_encoder
    from training.export.whisper_bundle import whisper_config

    torch.manual_seed(0)
    model = SeedASR.build(whisper_config(experts=4, top_k=2, window_s=10.0))
    load_ct2_encoder(model.encoder, whisper_base_encoder_weights)
    load_ct2_decoder(model.lm, whisper_base_decoder_weights)
    out = tmp_path_factory.mktemp("whisper") / "bundle"
    save_bundle(model.eval(), ROOT / "bundles" / "tiny" / "tokenizer.model", out, "card", SHIPPED_DECODING,
                from_package=True)
    return out


def test_the_bundle_keeps_only_the_routers(whisper_bundle: Path) -> None:
    meta = json.loads((whisper_bundle / "config.json").read_text())
    assert meta["encoder_weights"]["sha256"] == meta["decoder_weights"]["sha256"]
    with safe_open(str(whisper_bundle / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    assert keys and all(k.startswith("lm.layers.") and k.endswith(".ff.router.weight") for k in keys)


def test_halves_load_what_the_whole_model_holds(whisper_bundle: Path) -> None:
    whole = load_bundle(whisper_bundle)[0].state_dict()
    encoder, decoder = load_bundle(whisper_bundle, "encoder")[0], load_bundle(whisper_bundle, "decoder")[0]
    for half in (encoder, decoder):
        for key, value in half.state_dict().items():
            assert torch.equal(value, whole[key]), key
    assert not any(k.startswith("lm.") for k in encoder.state_dict())
    assert not any(k.startswith("encoder.") for k in decoder.state_dict())


def test_short_audio_is_padded_to_whole_windows() -> None:
    assert len(pad_to_window(np.ones(16_000, np.float32), 10.0)) == 160_000
    assert len(pad_to_window(np.ones(170_000, np.float32), 10.0)) == 320_000
    assert len(pad_to_window(np.ones(16_000, np.float32), 0.0)) == 16_000
    assert len(pad_to_window(np.ones(31 * 16_000, np.float32), 10.0)) == 31 * 16_000  # past Whisper's 30 s


def test_context_names_the_street_the_plain_search_misspells(whisper_bundle: Path) -> None:
    from shared.decoding import DecodingDefaults
    from shared.recognition import AsrCore, OutputConfig

    core = AsrCore(whisper_bundle, engine="torch", threads=2)
    samples, _ = sf.read(ROOT / "samples" / "dialogue" / "user-2.wav", dtype="float32")
    out, ctc_text, words = core.encode(samples)
    assert out.speech.shape == (500, 512) and out.ctc_logp.shape == (500, 1)  # 10 s window at 50 frames/s
    assert ctc_text == "" and words == []
    cfg = BeamConfig(beam_size=4, nbest=4, alpha=0.9, prune_k=128, bias_bonus=2.0, ctc_weight=0.0)
    plain = core.decode(out.speech, [], cfg)
    context = core.tok.encode("your pharmacy on kilbride street closes at six")
    biased = core.decode(out.speech, context, cfg, bias_phrases=["kilbride street"])
    assert "kilbride street" not in plain[0].normalized
    assert biased[0].normalized == "remind me to stop at kilbride street on the way home"
    assert len({e.normalized for e in biased}) == len(biased)  # alternatives differ after normalisation
    # the context as written, with its spellings: the transcript comes out as a person writes it
    written = core.decode(out.speech, context, cfg, bias_phrases=["kilbride street"],
                          context="Your pharmacy on Kilbride Street closes at six.", spellings=["Kilbride", "Street"],
                          output=OutputConfig(audio_s=len(samples) / 16_000, word_times=True,
                                              confidence_weights=DecodingDefaults.from_bundle(whisper_bundle).confidence))
    best = written[0]
    assert best.text == "Remind me to stop at Kilbride Street on the way home."
    assert [w.word for w in best.words] == best.text.split()
    starts = [w.start_s for w in best.words]
    assert starts == sorted(starts) and 0.0 <= starts[0] < 0.5 and 3.0 < best.words[-1].end_s <= 3.7  # 3.6 s of audio
    assert all(0.0 <= w.confidence <= 1.0 for w in best.words) and 0.5 < best.confidence <= 1.0
    assert all(w.start_s == w.end_s == 0.0 for e in written[1:] for w in e.words)  # times for the best only


def test_a_word_list_beside_the_bundle_keeps_the_transcript_to_its_words(whisper_bundle: Path, tmp_path: Path) -> None:
    """lexicon.txt in a whisper bundle: the word lexicon reads Whisper's pieces, and a high out-of-lexicon penalty
    turns the plain search's misspelling into the listed word."""
    import shutil

    from shared.recognition import AsrCore

    bundle = tmp_path / "bundle"
    shutil.copytree(whisper_bundle, bundle)
    words = "remind me to stop at kilbride street on the way home".split()
    (bundle / "lexicon.txt").write_text("\n".join(words) + "\n")
    core = AsrCore(bundle, engine="torch", threads=2)
    assert core.lexicon is not None and len(core.lexicon.pieces) == 51865
    samples, _ = sf.read(ROOT / "samples" / "dialogue" / "user-2.wav", dtype="float32")
    out = core.encode(samples)[0]
    cfg = BeamConfig(beam_size=4, nbest=1, alpha=0.9, prune_k=128, ctc_weight=0.0)
    plain = core.decode(out.speech, [], cfg)[0].normalized
    held = core.decode(out.speech, [], dataclasses.replace(cfg, oov_penalty=20.0))[0].normalized
    assert plain == "remind me to stop at kilride street on the way home"
    assert held == "remind me to stop at kilbride street on the way home"
