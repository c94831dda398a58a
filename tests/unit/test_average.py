"""Weight averaging of bundles (training/export/average.py): the mean is exact, sources that do not
belong together are refused with a message, and git sources read the committed bundle."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from shared.bundle import load_bundle
from training.export.average import AverageError, average_bundles, average_states, parse_spec


def _shifted_copy(tiny_bundle: Path, dest: Path, shift: float) -> Path:
    """The tiny bundle with `shift` added to every floating-point weight."""
    shutil.copytree(tiny_bundle, dest)
    state = load_file(str(dest / "model.safetensors"))
    save_file({k: (v.float() + shift).to(v.dtype) if v.is_floating_point() else v for k, v in state.items()},
              str(dest / "model.safetensors"))
    return dest


def test_weighted_mean_of_states() -> None:
    a = {"w": torch.tensor([0.0, 4.0], dtype=torch.float16), "n": torch.tensor([3])}
    b = {"w": torch.tensor([3.0, 1.0], dtype=torch.float16), "n": torch.tensor([3])}
    out = average_states([a, b], [2.0, 1.0])
    assert out["w"].dtype == torch.float16
    assert out["w"].tolist() == [1.0, 3.0]
    assert torch.equal(out["n"], a["n"])
    with pytest.raises(AverageError, match="integer tensors differ"):
        average_states([a, {**b, "n": torch.tensor([4])}], [1.0, 1.0])
    with pytest.raises(AverageError, match="other weights"):
        average_states([a, {"w": b["w"]}], [1.0, 1.0])


def test_spec_weights() -> None:
    assert parse_spec("abc:bundles/default@2") == ("abc:bundles/default", 2.0)
    assert parse_spec("bundles/default") == ("bundles/default", 1.0)
    for bad in ("x@two", "x@0"):
        with pytest.raises(AverageError):
            parse_spec(bad)


def test_average_of_two_bundles_is_a_bundle(tiny_bundle: Path, tmp_path: Path) -> None:
    up = _shifted_copy(tiny_bundle, tmp_path / "up", 0.5)
    out = tmp_path / "avg"
    diff = average_bundles([str(tiny_bundle), f"{up}@3"], out)
    assert diff < 1e-3  # the ONNX encoder was exported again from the averaged weights
    base, avg = load_file(str(tiny_bundle / "model.safetensors")), load_file(str(out / "model.safetensors"))
    key = next(k for k, v in base.items() if v.is_floating_point() and v.numel() > 1)
    torch.testing.assert_close(avg[key].float(), base[key].float() + 0.375, atol=2e-3, rtol=2e-3)
    load_bundle(out)  # loads as a model
    meta = json.loads((out / "config.json").read_text())
    assert meta["stage"] == "average" and [s["weight"] for s in meta["averaged"]] == [1.0, 3.0]
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Weight averaging" in card and "| 0.750 |" in card and "Random weights from" in card  # the first's card


def test_sources_that_do_not_belong_together_are_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(tiny_bundle, other)
    meta = json.loads((other / "config.json").read_text())
    meta["config"]["lm"]["n_heads"] = 4
    (other / "config.json").write_text(json.dumps(meta))
    with pytest.raises(AverageError, match="another model config"):
        average_bundles([str(tiny_bundle), str(other)], tmp_path / "avg")
    with pytest.raises(AverageError, match="at least two"):
        average_bundles([str(tiny_bundle)], tmp_path / "avg")
    with pytest.raises(AverageError, match="not a bundle folder"):
        average_bundles([str(tiny_bundle), str(tmp_path / "missing")], tmp_path / "avg")
    with pytest.raises(AverageError, match="seedasr bundle fetch git:"):
        average_bundles([str(tiny_bundle), "HEAD:bundles/tiny"], tmp_path / "avg")


def test_a_bundle_fetched_from_git_is_averaged_as_a_folder(tiny_bundle: Path, tmp_path: Path) -> None:
    """The committed tiny bundle, fetched into a folder, averaged with the working one leaves the weights,
    records the commit it came from, and the output is pinned by a fresh manifest with no source yet."""
    from shared.bundle_store import fetch, problems, read_manifest

    committed = tmp_path / "committed"
    try:
        fetch("git:HEAD:bundles/tiny", committed)
    except Exception as exc:  # noqa: BLE001 (a copy of the sources without git history)
        pytest.skip(f"no git history: {exc}")
    out = tmp_path / "avg"
    average_bundles([str(tiny_bundle), str(committed)], out)
    base, avg = load_file(str(tiny_bundle / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert all(torch.equal(base[k], avg[k]) for k in base)
    assert len(json.loads((out / "config.json").read_text())["averaged"][1]["commit"]) == 40
    assert problems(out) == [] and read_manifest(out)["sources"] == []


def test_output_folder_keeps_its_own_evaluation(tiny_bundle: Path, tmp_path: Path) -> None:
    first = _shifted_copy(tiny_bundle, tmp_path / "first", 0.0)
    (first / "EVAL.md").write_text("first's")
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "EVAL.md").write_text("existing's")
    average_bundles([str(first), str(tiny_bundle)], existing)
    average_bundles([str(first), str(tiny_bundle)], tmp_path / "new")
    assert (existing / "EVAL.md").read_text() == "existing's"
    assert (tmp_path / "new" / "EVAL.md").read_text() == "first's"
