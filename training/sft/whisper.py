"""SFT and context SFT of a `whisper` bundle (Whisper's encoder + its text decoder upcycled to a MoE) on our
synthetic speech, Seed-ASR's stages over a pretrained encoder:

    python -m training.sft.whisper --stage sft --bundle bundles/default --train data/train_whisper \
        --work runs/whisper_sft --tuned-layers 1 --minutes 30           # top encoder blocks train, decoder frozen
    python -m training.sft.whisper --stage context_sft --bundle runs/whisper_sft/bundle \
        --train data/train_whisper --work runs/whisper_csft --minutes 30  # the decoder's experts and routers train

SFT: audio is padded to the bundle's windows as serving pads it (shared/model/asr.py pad_to_window), and the
residual stream below the tuned blocks is cached once per work folder (training/common.py EncoderOutputCache), so a
step runs only the top blocks and the decoder. Context SFT: the encoder is frozen and its outputs cached; the
decoder's MoE feed-forwards (the upcycled experts, copies of Whisper's MLPs until now, and their routers) train with
the load-balancing loss on a mix of rows with and without dialogue context, the context given as serving gives it
(shared/context.py: assembled, then context_text as Whisper's <|startofprev|> prompt); an entity row has its entity in
the context 3 times in 4, among distractors.

Targets are the transcripts as Whisper starts a sentence (a capital first letter; our manifests hold normalised
lower-case text) after the prompt, then <|endoftext|>. A stage resumes from its checkpoint and ends by writing
WORK/bundle: the source bundle with what trained, which save_bundle stores as the tensors that differ from the
Whisper package.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from tqdm import tqdm

from shared.bundle import load_bundle, save_bundle
from shared.context import assemble_context, context_text
from shared.decoding import DECODING_KEY
from shared.model.asr import SeedASR, encoder_kind
from shared.model.moe_lm import load_balancing_loss
from shared.model.whisper_decoder import WhisperDecoder, WhisperTokens
from shared.model.whisper_encoder import WhisperEncoder, padding_mask
from shared.tokenizer import Tokenizer
from training.common import (
    Checkpointer,
    EncoderOutputCache,
    FeatBatch,
    FeatureCache,
    TimeBudget,
    device_name,
    feature_batches,
    lr_at,
)
from training.data.contexts import dialogue_context
from training.data.text import EntityFaker
from training.recipe import CONTEXT_BUDGET

IGNORE = -100  # label of the prompt's positions and the padding


def sentence_case(text: str) -> str:
    """'did you reply' -> 'Did you reply': how Whisper starts a transcript (the decoder stays frozen, so the
    targets follow its style where our text allows)."""
    text = text.strip()
    return text[:1].upper() + text[1:]


def target_batch(tokens: WhisperTokens, texts: list[str], max_tokens: int,
                 contexts: Optional[Sequence[Optional[str]]] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """texts (and each row's context text or None) -> inputs (B, L) = prompt + text ids, labels (B, L) = the next
    token at each text position and <|endoftext|> after the last, IGNORE over the prompt and padding."""
    prompts = [tokens.prompt(previous=c) for c in contexts] if contexts else [tokens.prompt()] * len(texts)
    rows = [(p + tokens.encode(sentence_case(t)) + [tokens.eot])[:max_tokens] for p, t in zip(prompts, texts)]
    length = max(len(r) for r in rows) - 1
    inputs = torch.full((len(rows), length), tokens.eot)
    labels = torch.full((len(rows), length), IGNORE)
    for i, (p, r) in enumerate(zip(prompts, rows)):
        inputs[i, : len(r) - 1] = torch.tensor(r[:-1])
        labels[i, len(p) - 1 : len(r) - 1] = torch.tensor(r[len(p) :])
    return inputs, labels


def contexts_for(rows: list[dict], tok: Tokenizer, rng: random.Random, ents: EntityFaker, share: float) -> list[Optional[str]]:
    """A context text for `share` of the rows (None for the rest): an entity row's entity is in it 3 times in 4."""
    out: list[Optional[str]] = []
    for row in rows:
        if rng.random() >= share:
            out.append(None)
            continue
        entity = (row.get("entities") or [None])[0]
        keep = entity if entity and rng.random() < 0.75 else None
        ctx = dialogue_context(rng, ents, keep, rng.randint(0 if keep else 1, 4))
        out.append(context_text(tok, assemble_context(tok, ctx, CONTEXT_BUDGET).token_ids) or None)
    return out


def moe_parameters(decoder: WhisperDecoder) -> list[torch.nn.Parameter]:
    """The decoder's MoE feed-forwards: every block's experts and router."""
    if decoder.cfg.moe is None:
        raise SystemExit("context SFT trains the decoder's experts: this bundle's decoder has no MoE")
    return [p for n, p in decoder.named_parameters() if ".ff." in n]


def tuned_parameters(encoder: WhisperEncoder, layers: int) -> list[torch.nn.Parameter]:
    """The top `layers` blocks and the final LayerNorm (everything else stays frozen)."""
    if not 0 < layers <= len(encoder.layers):
        raise SystemExit(f"--tuned-layers {layers}: the encoder has {len(encoder.layers)} blocks")
    return [p for blk in encoder.layers[len(encoder.layers) - layers :] for p in blk.parameters()] + list(
        encoder.norm.parameters())


def batch_loss(model: SeedASR, tokens: WhisperTokens, batch: FeatBatch, start: Optional[int],
               contexts: Optional[Sequence[Optional[str]]] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced cross-entropy of the batch's transcripts given its cached frames (B, T', D): the stream below
    block `start` (run through the blocks above), or the encoder's output (start None); and the load-balancing
    loss of the decoder's routers (0 without a MoE)."""
    assert isinstance(model.encoder, WhisperEncoder) and isinstance(model.lm, WhisperDecoder)
    frames, lengths = batch.feats, batch.lengths
    if start is not None:
        frames, lengths = model.encoder.upper(frames, lengths, start)
    audio, audio_lens = model.converter(frames, lengths)
    inputs, labels = target_batch(tokens, [r["text"] for r in batch.rows], model.lm.cfg.max_tokens, contexts)
    mask = padding_mask(audio_lens, audio.shape[1])
    logits, _, routers = model.lm.run(inputs, model.lm.audio_keys(audio), mask)  # (B, L, V)
    ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
    moe = model.lm.cfg.moe
    aux = load_balancing_loss(routers, moe.n_experts, moe.top_k) if moe and routers else ce.new_zeros(())
    return ce, aux


@torch.no_grad()
def held_out_loss(model: SeedASR, tokens: WhisperTokens, cache: EncoderOutputCache, rows: list[int],
                  start: Optional[int], max_frames: int, context: Optional[Callable[[list[dict]], list]] = None) -> float:
    """Mean cross-entropy over the held-out rows of the cache (the same rows, and contexts, at every call)."""
    model.eval()
    losses = [float(batch_loss(model, tokens, b, start, context(b.rows) if context else None)[0])
              for b in feature_batches(cache, max_frames, random.Random(0), augment=False, only=rows)]
    return sum(losses) / max(1, len(losses))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=["sft", "context_sft"], default="sft")
    ap.add_argument("--bundle", type=Path, default=Path("bundles/default"))
    ap.add_argument("--train", type=Path, required=True, help="a manifest folder (training/data/synth.py)")
    ap.add_argument("--work", type=Path, default=Path("runs/whisper_sft"))
    ap.add_argument("--tuned-layers", type=int, default=1, help="SFT: the encoder's top blocks that train")
    ap.add_argument("--context-share", type=float, default=0.5, help="context SFT: rows given a context")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--peak-lr", type=float, default=5e-5)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--max-frames", type=int, default=4000, help="padded encoder frames per batch (500 per 10 s)")
    ap.add_argument("--held-out", type=int, default=64, help="rows kept out of training to watch the loss on")
    args = ap.parse_args()
    model, tok, meta = load_bundle(args.bundle)
    if model.cfg.encoder_type != "whisper" or model.cfg.decoder_type != "whisper":
        raise SystemExit(f"{args.bundle} is not a whisper bundle (encoder {model.cfg.encoder_type}, decoder "
                         f"{model.cfg.decoder_type}); training/sft/train.py trains LUISE + MoE LM bundles")
    from shared.model import whisper_weights as ww

    tokens = WhisperTokens(ww.ct2_model_dir() / "tokenizer.json")
    assert isinstance(model.encoder, WhisperEncoder) and isinstance(model.lm, WhisperDecoder)
    sft = args.stage == "sft"
    trained = tuned_parameters(model.encoder, args.tuned_layers) if sft else moe_parameters(model.lm)
    start = len(model.encoder.layers) - args.tuned_layers if sft else None
    for p in model.parameters():
        p.requires_grad = False
    for p in trained:
        p.requires_grad = True
    features = FeatureCache(args.train / "manifest.jsonl", kind=encoder_kind("whisper").features,
                            window_s=model.cfg.window_s)
    name = f"encoder_hidden{start}.npy" if start is not None else "encoder_out.npy"
    cache = EncoderOutputCache(features, model.encoder, args.work / name, resume_at=start)
    held = list(range(min(args.held_out, len(cache) // 10)))
    train_rows = list(range(len(held), len(cache)))
    share = 0.0 if sft else args.context_share

    def held_contexts(rows: list[dict]) -> list[Optional[str]]:
        return contexts_for(rows, tok, random.Random(rows[0]["id"]), EntityFaker(3), share)

    context = None if sft else held_contexts
    opt = torch.optim.AdamW(trained, lr=args.peak_lr, weight_decay=0.01)
    ckpt = Checkpointer(args.work / f"{args.stage}.pt")
    state = ckpt.load(model, opt)
    step, log = state["step"], state["log"]
    if step == 0:
        log.append((0, None, held_out_loss(model, tokens, cache, held, start, args.max_frames, context)))
    budget = TimeBudget(args.minutes, state.get("elapsed", 0.0))
    rng, ents = random.Random(step + 7), EntityFaker(500 + step)
    aux_weight = model.lm.cfg.moe.aux_loss_weight if model.lm.cfg.moe and not sft else 0.0
    bar = tqdm(desc=f"whisper {args.stage}", initial=step)
    while budget.left():
        # no SpecAugment: zeroed spans of Whisper's residual stream are no masked speech but outlier frames (the
        # loss went from 0.9 to 5.1 on the same rows); the synthesis already varies voice, noise and vocoder
        for batch in feature_batches(cache, args.max_frames, rng, augment=False, only=train_rows):
            if not budget.left():
                break
            model.train()
            ce, aux = batch_loss(model, tokens, batch, start, contexts_for(batch.rows, tok, rng, ents, share))
            for g in opt.param_groups:
                g["lr"] = lr_at(step, budget.progress, args.peak_lr, args.warmup)
            opt.zero_grad()
            (ce + aux_weight * aux).backward()
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
            opt.step()
            step += 1
            log.append((step, ce.item(), None))
            bar.update(1)
            bar.set_postfix(ce=f"{ce.item():.3f}", aux=f"{aux.item():.3f}")
            ckpt.maybe_save(model, opt, step, log, budget.elapsed)
        log.append((step, None, held_out_loss(model, tokens, cache, held, start, args.max_frames, context)))
        print(f"step {step}: held-out loss {log[-1][2]:.4f}", flush=True)
    ckpt.maybe_save(model, opt, step, log, budget.elapsed, force=True)
    model.eval()
    out = args.work / "bundle"
    what = (f"the encoder's top {args.tuned_layers} block(s) trained, the decoder frozen" if sft else
            f"the decoder's experts and routers trained, {share:.0%} of rows with a dialogue context, the encoder frozen")
    card = (args.bundle / "MODEL_CARD.md").read_text() if (args.bundle / "MODEL_CARD.md").exists() else ""
    card += (f"\n## {args.stage} (training/sft/whisper.py)\n\n{what}: {budget.elapsed / 60:.0f} min ({step} steps, "
             f"{device_name()}) on {len(train_rows)} utterances of {args.train}; held-out loss {log[0][2]:.4f} -> "
             f"{log[-1][2]:.4f}.\n")
    save_bundle(model, args.bundle / "tokenizer.model", out, card,
                {"name": meta.get("name", "seedasr-mesh-whisper"), "stage": args.stage,
                 **({"languages": meta["languages"]} if "languages" in meta else {}), DECODING_KEY: meta[DECODING_KEY]},
                from_package=True)
    (args.work / f"{args.stage}_stats.json").write_text(json.dumps({
        "steps": step, "minutes": budget.elapsed / 60, "held_out_loss": [x for _, _, x in log if x is not None]}))
    print(f"bundle {out}: held-out loss {log[0][2]:.4f} -> {log[-1][2]:.4f}")


if __name__ == "__main__":
    main()
