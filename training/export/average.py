"""Weight averaging of bundles from one line of continued runs (a "model soup"), exported as a bundle.

    python -m training.export.average --out bundles/default runs/a/bundle runs/b/bundle@2

Each source is a bundle folder, optionally with a weight (`runs/b/bundle@2`). A bundle shipped before
weights left git becomes a folder with `seedasr bundle fetch git:REV:PATH --dir DIR`, whose manifest
then names the commit it came from (recorded beside the source in the averaged config). Every source must have
the same config and tokenizer: runs continued one from another (SEEDASR_INIT_BUNDLE) share both, and
their weights lie close enough that the mean is a model too, better than each run on every dev set
(EVAL.md). The output takes the first source's word list, EVAL.md and plots, and a model card that
names the sources above the first source's card (a bundle already in the output folder keeps its own word
list, EVAL.md and plots); then the ONNX encoder is exported again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from shared.bundle_store import MANIFEST, write_manifest
from training.export.onnx_export import export_onnx, parity

BUNDLE_FILES = ("config.json", "model.safetensors", "tokenizer.model", "MODEL_CARD.md")
KEPT_FILES = ("lexicon.txt", "word_lm.arpa.gz", "EVAL.md", "loss_curves.png", "alpha_sweep.png")


class AverageError(ValueError):
    pass


@dataclass
class Source:
    spec: str  # as given, without the weight
    weight: float
    folder: Path  # the bundle's files (a temporary copy for a git source)
    commit: str  # the commit the folder was fetched from (its manifest's git source), else ""


def parse_spec(spec: str) -> tuple[str, float]:
    """'runs/b/bundle@2' -> ('runs/b/bundle', 2.0); no '@' -> weight 1."""
    name, sep, weight = spec.rpartition("@")
    if not sep:
        return spec, 1.0
    try:
        value = float(weight)
    except ValueError:
        raise AverageError(f"{spec!r}: the weight after '@' must be a number") from None
    if value <= 0:
        raise AverageError(f"{spec!r}: the weight must be positive")
    return name, value


def resolve(spec: str) -> Source:
    """A bundle folder and its weight; the commit its manifest says it was fetched from, if any."""
    name, weight = parse_spec(spec)
    folder = Path(name)
    if not (folder / "model.safetensors").is_file():
        raise AverageError(f"{name!r} is not a bundle folder (no model.safetensors); a bundle in the git history "
                           "becomes one with `seedasr bundle fetch git:REV:PATH --dir DIR`")
    commit = ""
    if (folder / MANIFEST).exists():
        sources = json.loads((folder / MANIFEST).read_text()).get("sources", [])
        commit = next((src.split(":")[1] for src in sources if src.startswith("git:")), "")
    return Source(name, weight, folder, commit)


def average_states(states: list[dict[str, torch.Tensor]], weights: list[float]) -> dict[str, torch.Tensor]:
    """Weighted mean of state dicts with the same keys and shapes, computed in float32 and stored in each
    tensor's own dtype; tensors that are not floating point must be equal in every state."""
    keys = set(states[0])
    for i, state in enumerate(states[1:], 1):
        if set(state) != keys:
            raise AverageError(f"source {i + 1} has other weights than source 1: {sorted(keys ^ set(state))[:3]}")
    total = sum(weights)
    out = {}
    for key, first in states[0].items():
        if any(s[key].shape != first.shape for s in states):
            raise AverageError(f"{key}: shapes differ ({[tuple(s[key].shape) for s in states]})")
        if first.is_floating_point():
            mean = torch.stack([w * s[key].float() for w, s in zip(weights, states)]).sum(0) / total
            out[key] = mean.to(first.dtype).contiguous()
        elif all(torch.equal(s[key], first) for s in states):
            out[key] = first
        else:
            raise AverageError(f"{key}: integer tensors differ between sources")
    return out


def model_card(sources: list[Source], first_card: str) -> str:
    total = sum(s.weight for s in sources)
    rows = [f"| `{s.spec}` | {s.commit[:10] or '-'} | {s.weight / total:.3f} |" for s in sources]
    lines = [
        "# Seed-ASR Mesh default bundle",
        "",
        "## Weight averaging",
        "",
        f"The weights are the weighted mean of {len(sources)} bundles of one line of continued runs",
        "(`python -m training.export.average`, training/export/average.py), made with:",
        "",
        "```",
        "python -m training.export.average --out OUT " + " ".join(
            s.spec if s.weight == 1 else f"{s.spec}@{s.weight:g}" for s in sources),
        "```",
        "",
        "| source | commit | share |",
        "|---|---|---|",
        *rows,
        "",
        "The card of the first source follows (its data and training stages; the sources before it are",
        "named in its own card, one continued run after another).",
        "",
    ]
    body = first_card.split("\n", 1)[1] if first_card.startswith("# ") else first_card
    return "\n".join(lines) + "\n" + body.lstrip("\n")


def average_bundles(specs: list[str], out: Path) -> float:
    """Write the averaged bundle to out (which may be one of the sources); returns the ONNX parity."""
    if len(specs) < 2:
        raise AverageError("give at least two bundles to average")
    sources = [resolve(spec) for spec in specs]
    metas = [json.loads((s.folder / "config.json").read_text()) for s in sources]
    for s, meta in zip(sources[1:], metas[1:]):
        if meta["config"] != metas[0]["config"]:
            raise AverageError(f"{s.spec} has another model config than {sources[0].spec}")
        if (s.folder / "tokenizer.model").read_bytes() != (sources[0].folder / "tokenizer.model").read_bytes():
            raise AverageError(f"{s.spec} has another tokenizer than {sources[0].spec}")
    state = average_states([load_file(str(s.folder / "model.safetensors")) for s in sources],
                           [s.weight for s in sources])
    card = model_card(sources, (sources[0].folder / "MODEL_CARD.md").read_text())
    first = sources[0].folder
    out.mkdir(parents=True, exist_ok=True)
    if first.resolve() != out.resolve():
        shutil.copyfile(first / "tokenizer.model", out / "tokenizer.model")
        for file in KEPT_FILES:  # an existing bundle in out keeps its own
            if (first / file).exists() and not (out / file).exists():
                shutil.copyfile(first / file, out / file)
    meta = {**metas[0], "stage": "average",
            "averaged": [{"source": s.spec, "commit": s.commit, "weight": s.weight} for s in sources]}
    save_file(state, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(meta, indent=2))
    (out / "MODEL_CARD.md").write_text(card)
    export_onnx(out)
    write_manifest(out, [])  # new weights: no store holds them until `seedasr bundle publish`
    return parity(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("sources", nargs="+", help="bundle folders, each optionally @WEIGHT")
    args = ap.parse_args()
    try:
        diff = average_bundles(args.sources, args.out)
    except (AverageError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"bundle {args.out}: mean of {len(args.sources)} bundles, ONNX parity max abs diff {diff:.2e}")


if __name__ == "__main__":
    main()
