"""Hours, utterances, voices and vocabulary of manifests.

    python -m training.data.stats data/train/manifest.jsonl data/dev_*/manifest.jsonl
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def manifest_stats(path: Path) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    words = Counter(w for r in rows for w in r["text"].split())
    voices = Counter(r.get("voice", "?").split("+")[0] for r in rows)
    engine_hours: Counter = Counter()
    for r in rows:
        engine_hours[r.get("voice", "?").split(":")[0]] += r["duration"] / 3600

    def tagged_share(*prefixes: str) -> float:
        """Share of rows with an augmentation tag starting with one of prefixes."""
        return round(sum(1 for r in rows if any(t.startswith(prefixes) for t in r.get("aug") or [])) / max(len(rows), 1), 2)

    return {"manifest": str(path), "utterances": len(rows), "hours": round(sum(r["duration"] for r in rows) / 3600, 2),
            "vocabulary": len(words), "running_words": sum(words.values()), "voices": len(voices),
            "augmented_share": round(sum(1 for r in rows if set(r.get("aug") or ["clean"]) - {"clean"}) / max(len(rows), 1), 2),
            "converted_share": tagged_share("vc", "vs"),  # augment.change_voice: "vc" across sexes, "vs" within one
            "vocoded_share": tagged_share("lpc"),  # augment.lpc_vocode
            "edge_padded_share": tagged_share("pad"),  # augment.pad_edges
            "hours_by_engine": {k: round(v, 2) for k, v in engine_hours.most_common()}}


def main() -> None:
    for arg in sys.argv[1:]:
        print(json.dumps(manifest_stats(Path(arg))))


if __name__ == "__main__":
    main()
