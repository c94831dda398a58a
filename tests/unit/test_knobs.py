"""One home for each decoding knob: shared/decoding.py KNOBS. Settings, request checks and the bundle reader are made
from it, every shipped bundle states each knob within its range, and no tuned decoding number is written anywhere
else in the code that serves or exports bundles."""

from __future__ import annotations

import ast
import dataclasses
import math
from pathlib import Path

import pytest

from seedasr.v1 import common_pb2
from services.convert import request_decoding
from shared.decoding import KNOBS, DecodingDefaults
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = ("default", "luise", "tiny")
# the code a decoding number could hide in: what serves, and what writes bundles
SERVING = [p for d in ("shared", "services", "seedasr", "training/export") for p in (ROOT / d).rglob("*.py")
           if "_pb2" not in p.name]
# names a decoding number goes by in code (the knobs, and the search configs' own names for them)
NAMES = {k.name for k in KNOBS} | {"alpha", "prune_k", "margin", "min_similarity"}
# (file, name, value) written on purpose: interim results are greedy; ASRConfig.ctc_weight is the CTC head's share of
# the training loss (a model's, not the search's)
ALLOWED = {("shared/strategies.py", "beam_size", 1), ("shared/strategies.py", "nbest", 1),
           ("shared/model/asr.py", "ctc_weight", 1.0)}


def test_the_table_the_defaults_the_settings_and_the_request_agree() -> None:
    assert [k.name for k in KNOBS] == [f.name for f in dataclasses.fields(DecodingDefaults)]
    request_fields = set(common_pb2.RecognitionConfig.DESCRIPTOR.fields_by_name)
    for knob in KNOBS:
        assert (knob.name in request_fields) == knob.request, knob.name
        field = Settings.model_fields[knob.name]
        assert field.default is None and field.description == knob.help, knob.name


@pytest.mark.parametrize("bundle", BUNDLES)
def test_every_shipped_bundle_states_each_knob_within_its_range(bundle: str) -> None:
    defaults = DecodingDefaults.from_bundle(ROOT / "bundles" / bundle)
    for knob in KNOBS:
        value = getattr(defaults, knob.name)
        assert isinstance(value, knob.kind), (bundle, knob.name, value)
        if knob.kind in (int, float):
            knob.check(value)
        if knob.choices:
            assert value in knob.choices, (bundle, knob.name)
    Settings(**defaults.as_dict())  # each value is one the server setting of its name accepts


@pytest.mark.parametrize("knob", [k for k in KNOBS if k.request], ids=lambda k: k.name)
def test_a_request_outside_a_knobs_range_is_refused_by_the_tables_range(knob) -> None:
    defaults = DecodingDefaults.from_bundle(ROOT / "bundles" / "default")
    for bad in (knob.high + 1, math.nan, -1.0):
        if knob.kind is int and (math.isnan(bad) or bad < 0):
            continue  # proto int32: a negative beam is 0 after `or`, NaN cannot be sent
        with pytest.raises(ValueError, match=knob.name):
            request_decoding(common_pb2.RecognitionConfig(**{knob.name: knob.kind(bad) if knob.kind is int else bad}),
                             defaults)


def _numbers(tree: ast.AST) -> list[tuple[str, object, int]]:
    """(name, value, line) of every knob-named keyword argument, default or assignment given a constant number."""
    found: list[tuple[str, object, int]] = []

    def constant(node: ast.AST | None) -> object:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = constant(node.operand)
            return -inner if isinstance(inner, (int, float)) else None
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        return None

    for node in ast.walk(tree):
        pairs: list[tuple[str, ast.AST | None, int]] = []
        if isinstance(node, ast.keyword) and node.arg:
            pairs.append((node.arg, node.value, node.value.lineno))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, (ast.Name, ast.Attribute)):
            pairs.append((getattr(node.target, "id", getattr(node.target, "attr", "")), node.value, node.lineno))
        elif isinstance(node, ast.Assign):
            pairs += [(getattr(t, "id", getattr(t, "attr", "")), node.value, node.lineno) for t in node.targets]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            pairs += [(a.arg, d, d.lineno) for a, d in zip(positional[len(positional) - len(args.defaults):], args.defaults)]
            pairs += [(a.arg, d, d.lineno) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
        for name, value, line in pairs:
            number = constant(value)
            if name in NAMES and number is not None and number != 0:  # 0 is "off", never a tuned value
                found.append((name, number, line))
    return found


def test_no_decoding_number_is_written_outside_the_bundles() -> None:
    stray = []
    for path in SERVING:
        rel = str(path.relative_to(ROOT))
        if rel == "shared/decoding.py":  # the table: ranges, not values
            continue
        for name, value, line in _numbers(ast.parse(path.read_text())):
            if (rel, name, value) not in ALLOWED:
                stray.append(f"{rel}:{line} {name}={value}")
    assert not stray, "decoding numbers belong in a bundle's config.json (shared/decoding.py KNOBS): " + ", ".join(stray)


def test_the_scan_finds_a_number_where_one_is_written() -> None:
    code = "def f(alpha: float = 0.9):\n    return BeamConfig(beam_size=8, bias_bonus=0.0)\nx = Y(margin=-6)\n"
    assert sorted(_numbers(ast.parse(code))) == [("alpha", 0.9, 1), ("beam_size", 8, 2), ("margin", -6, 3)]
