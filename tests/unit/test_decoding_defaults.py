"""The bundle owns its decoding defaults (config.json "decoding"); settings override them, requests both."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from seedasr.v1 import common_pb2
from services.decoder.config import beam_config
from shared.decoding import DecodingDefaults, decoding_for
from shared.settings import load_settings
from tests.conftest import ROOT


@pytest.fixture
def bundle(tiny_bundle, tmp_path):
    out = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, out)
    meta = json.loads((out / "config.json").read_text())
    meta["decoding"] = {**meta["decoding"], "beam_size": 6, "context_beam_size": 4, "bias_bonus": 2.5,
                        "segment_s": 5.0}
    (out / "config.json").write_text(json.dumps(meta))
    return out


def test_bundle_defaults_then_settings_then_the_request(bundle, tiny_bundle) -> None:
    plain = decoding_for(load_settings(model=str(bundle)))
    assert (plain.beam_size, plain.bias_bonus, plain.segment_s) == (6, 2.5, 5.0)
    assert plain.oov_penalty == DecodingDefaults.from_bundle(tiny_bundle).oov_penalty
    overridden = decoding_for(load_settings(model=str(bundle), bias_bonus=7.0))
    assert (overridden.beam_size, overridden.bias_bonus) == (6, 7.0)
    assert plain.context_beam_size == 4
    assert decoding_for(load_settings(model=str(bundle), context_beam_size=2)).context_beam_size == 2
    assert beam_config(common_pb2.RecognitionConfig(), overridden).bias_bonus == 7.0
    assert beam_config(common_pb2.RecognitionConfig(bias_bonus=1.0, beam_size=3), overridden).bias_bonus == 1.0


def test_an_unknown_decoding_key_is_an_error(bundle) -> None:
    meta = json.loads((bundle / "config.json").read_text())
    meta["decoding"]["beem_size"] = 3
    (bundle / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="beem_size"):
        DecodingDefaults.from_bundle(bundle)


def test_a_bundle_that_leaves_a_knob_out_is_an_error(bundle) -> None:
    meta = json.loads((bundle / "config.json").read_text())
    del meta["decoding"]["oov_penalty"]
    (bundle / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="oov_penalty"):
        DecodingDefaults.from_bundle(bundle)


def test_the_default_bundle_carries_its_decoding_section_and_tuning_notes() -> None:
    meta = json.loads((ROOT / "bundles" / "default" / "config.json").read_text())
    assert DecodingDefaults.from_bundle(ROOT / "bundles" / "default") == DecodingDefaults(**meta["decoding"])
    table = dict(re.findall(r"^\| (\w+) \| ([^|]+) \|$", (ROOT / "bundles" / "default" / "TUNING.md").read_text(), re.M))
    assert {k: str(v) for k, v in meta["decoding"].items()} == {k: v.strip() for k, v in table.items() if k != "setting"}
