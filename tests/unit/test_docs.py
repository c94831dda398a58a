"""The docs state what the code does: docs/decoding.md's knob table holds every decoding knob with the shipped and
the LUISE bundle's values as their config.json gives them, a server setting of each name and the request field where
there is one; the README names no file outside the repository."""

from __future__ import annotations

import dataclasses

from seedasr.v1 import common_pb2
from shared.decoding import DecodingDefaults
from shared.settings import Settings
from tests.conftest import ROOT


def knob_rows() -> dict[str, list[str]]:
    text = (ROOT / "docs" / "decoding.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 6:
            rows[cells[0].strip("`")] = cells
    return rows


def stated(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value == "":
        return '""'
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_the_knob_table_is_the_bundles_and_the_code() -> None:
    rows = knob_rows()
    assert set(rows) == {f.name for f in dataclasses.fields(DecodingDefaults)}
    shipped = DecodingDefaults.from_bundle(ROOT / "bundles" / "default").as_dict()
    luise = DecodingDefaults.from_bundle(ROOT / "bundles" / "luise").as_dict()
    request_fields = set(common_pb2.RecognitionConfig.DESCRIPTOR.fields_by_name)
    for name, (_, _, ship, ours, setting, field) in rows.items():
        assert ship == stated(shipped[name]), f"{name}: docs say {ship}, bundles/default has {shipped[name]}"
        assert ours == stated(luise[name]), f"{name}: docs say {ours}, bundles/luise has {luise[name]}"
        assert setting == f"`SEEDASR_{name.upper()}`" and name in Settings.model_fields, name
        assert field == "-" and name not in request_fields or field == f"`{name}`" and name in request_fields, name


def test_the_shipped_bundle_states_every_knob() -> None:
    import json

    section = json.loads((ROOT / "bundles" / "default" / "config.json").read_text())["decoding"]
    assert set(section) == {f.name for f in dataclasses.fields(DecodingDefaults)}


def test_the_readme_cites_nothing_outside_the_repository() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "DESIGN.md" not in readme and "../shared" not in readme
