"""Context evaluation set in a reserved voice (evaluation only).

Keyword rows: the utterance says a rare entity that appears only in the dialogue history or
hotwords. Distractor rows: the history names entities the utterance does not say.
    python -m training.data.context_eval --out data/context_eval --count 150
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from training.data.contexts import dialogue_context_with_entities
from training.data.synth import Job, run_job
from training.data.text import PLAIN, EntityFaker, entity_sentence, fill, is_dev, pin_hash_seed


def main() -> None:
    pin_hash_seed()
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--count", type=int, default=150)
    ap.add_argument("--voice", default="flite:slt")
    ap.add_argument("--seed", type=int, default=4242)
    args = ap.parse_args()
    rng, ents = random.Random(args.seed), EntityFaker(args.seed)
    (args.out / "wav").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(args.count):
        distractor = i % 3 == 2
        if distractor:
            text, entity = fill(rng.choice(PLAIN), rng), ""
            ctx, mentions = dialogue_context_with_entities(rng, ents, None, rng.randint(2, 4))
        else:
            text, entity, _ = entity_sentence(ents, rng)
            while not is_dev(text):  # sentence never seen in training either
                text, entity, _ = entity_sentence(ents, rng)
            ctx, mentions = dialogue_context_with_entities(rng, ents, entity, rng.randint(1, 3))
        job = Job(f"ctx-{i:04d}", text, entity, args.voice, 175, 50, i, str(args.out), augment=False)
        row = run_job(job)
        if row is None:
            continue
        row.update({"history": list(ctx.turns), "hotwords": list(ctx.hotwords), "prompt": ctx.prompt,
                    "keywords": [entity] if entity else [], "distractor": distractor,
                    "context_entities": [m for m in mentions if m != entity]})
        rows.append(row)
    (args.out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} context rows in {args.out}")


if __name__ == "__main__":
    main()
