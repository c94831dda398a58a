"""LUISE self-supervised pretraining: BERT-style masked prediction of discrete frame labels.

    python -m training.ssl.luise --iteration 1   # labels: random-projection quantizer (BEST-RQ)
    python -m training.ssl.luise --iteration 2   # labels: k-means of an iteration-1 middle layer
    python -m training.ssl.luise --probe         # pick the layer kept for SFT

Labels are per encoder frame (4 stacked fbank frames). Masked input spans are replaced with
noise; cross-entropy is taken on masked frames only. Audio transcripts are never read here.
"""

from __future__ import annotations

import argparse
import json
import random

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from shared.model.conformer import ConformerConfig, ConformerEncoder
from training.common import (
    DEVICE,
    Checkpointer,
    FeatureCache,
    TimeBudget,
    cpu_state,
    device_name,
    feature_batches,
    lr_at,
)
from training.recipe import Recipe, model_config

STACK = 4  # fbank frames per encoder frame


class RandomProjectionQuantizer(nn.Module):
    """Frozen random projection + random codebook; label = nearest code (cosine)."""

    def __init__(self, d_in: int, d_code: int = 16, n_codes: int = 1024, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("proj", torch.nn.init.xavier_uniform_(torch.empty(d_in, d_code), generator=g))
        self.register_buffer("codes", F.normalize(torch.randn(n_codes, d_code, generator=g), dim=-1))

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        """(B, T, d_in) -> labels (B, T)."""
        proj, codes = self.get_buffer("proj"), self.get_buffer("codes")
        z = F.normalize(stacked @ proj, dim=-1)
        return (z @ codes.T).argmax(-1)


def stack_frames(feats: torch.Tensor) -> torch.Tensor:
    """(B, T, F) -> (B, ceil(T/4), 4F), aligned with the encoder's 4x subsampling."""
    b, t, f = feats.shape
    pad = (-t) % STACK
    return F.pad(feats, (0, 0, 0, pad)).reshape(b, (t + pad) // STACK, STACK * f)


def mask_spans(feats: torch.Tensor, lengths: torch.Tensor, rng: random.Random, p: float = 0.02, span: int = 20):
    """Replace random spans with noise. Returns masked feats and the encoder-frame mask (B, T/4)."""
    x = feats.clone()
    frame_mask = torch.zeros(feats.shape[0], (feats.shape[1] + STACK - 1) // STACK, dtype=torch.bool)
    for i, n in enumerate(lengths.tolist()):
        for start in range(0, n):
            if rng.random() < p:
                end = min(n, start + span)
                x[i, start:end] = torch.randn(end - start, feats.shape[2]) * 0.1
                frame_mask[i, start // STACK : (end + STACK - 1) // STACK] = True
    return x, frame_mask


class KMeansLabeler:
    """Nearest-centroid labels from an intermediate layer of the iteration-1 encoder."""

    def __init__(self, encoder: ConformerEncoder, layer: int, centroids: torch.Tensor) -> None:
        self.encoder, self.layer, self.centroids = encoder.eval(), layer, centroids

    @torch.no_grad()
    def __call__(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.encoder(feats, lengths, n_layers=self.layer)
        return torch.cdist(hidden, self.centroids[None]).argmin(-1)


def fit_kmeans(encoder: ConformerEncoder, layer: int, cache: FeatureCache, k: int, n_batches: int = 30) -> torch.Tensor:
    rng = random.Random(0)
    vecs = []
    with torch.no_grad():
        for i, batch in enumerate(feature_batches(cache, 8000, rng, augment=False)):
            if i >= n_batches:
                break
            hidden, lens = encoder(batch.feats.to(DEVICE), batch.lengths.to(DEVICE), n_layers=layer)
            valid = torch.arange(hidden.shape[1], device=DEVICE)[None] < lens[:, None]
            vecs.append(hidden[valid])
    x = torch.cat(vecs)
    x = x[torch.randperm(len(x), device=x.device)[:20000]]
    cent = x[torch.randperm(len(x), device=x.device)[:k]].clone()
    for _ in range(15):  # Lloyd iterations
        assign = torch.cdist(x, cent).argmin(-1)
        for j in range(k):
            members = x[assign == j]
            if len(members):
                cent[j] = members.mean(0)
    return cent


def conformer_config(vocab_size: int) -> ConformerConfig:
    """LUISE is the conformer encoder: SSL pretrains that one (a whisper encoder comes pretrained)."""
    cfg = model_config(vocab_size).encoder
    assert isinstance(cfg, ConformerConfig)
    return cfg


def train_iteration(iteration: int, recipe: Recipe) -> None:
    work = recipe.work_dir
    cfg = conformer_config(recipe.vocab_size)
    cache = FeatureCache(recipe.train_manifest)
    encoder = ConformerEncoder(cfg).to(DEVICE)
    if iteration == 1:
        labeler = RandomProjectionQuantizer(STACK * cfg.n_mels).to(DEVICE)
        n_labels, budget_cfg = 1024, recipe.ssl1

        def labels_of(feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            return labeler(stack_frames(feats))
    else:
        first = torch.load(work / "ssl1_final.pt", map_location="cpu")
        teacher = ConformerEncoder(cfg).to(DEVICE)
        teacher.load_state_dict(first)
        encoder.load_state_dict(first)  # warm start: iteration 2 refines iteration 1
        layer = cfg.n_layers // 2
        cent_file = work / "kmeans.pt"
        if cent_file.exists():
            cent = torch.load(cent_file).to(DEVICE)
        else:
            cent = fit_kmeans(teacher, layer, cache, recipe.kmeans_clusters)
            torch.save(cent.cpu(), cent_file)
        kmeans = KMeansLabeler(teacher, layer, cent)
        n_labels, budget_cfg = recipe.kmeans_clusters, recipe.ssl2
        labels_of = kmeans
    head = nn.Linear(cfg.d_model, n_labels).to(DEVICE)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=budget_cfg.peak_lr, weight_decay=0.01)
    both = nn.ModuleDict({"encoder": encoder, "head": head})
    ckpt = Checkpointer(work / f"ssl{iteration}.pt")
    state = ckpt.load(both, opt)
    step, log = state["step"], state["log"]
    budget = TimeBudget(budget_cfg.minutes, state.get("elapsed", 0.0))
    rng = random.Random(step + iteration)
    bar = tqdm(desc=f"ssl{iteration}", initial=step)
    while budget.left():
        for batch in feature_batches(cache, budget_cfg.max_frames, rng, augment=False):
            if not budget.left():
                break
            masked, frame_mask = mask_spans(batch.feats, batch.lengths, rng)  # on the CPU: many small spans
            batch, masked, frame_mask = batch.to(DEVICE), masked.to(DEVICE), frame_mask.to(DEVICE)
            targets = labels_of(batch.feats, batch.lengths)
            encoder.train()
            hidden, lens = encoder(masked, batch.lengths)
            valid = torch.arange(hidden.shape[1], device=DEVICE)[None] < lens[:, None]
            sel = frame_mask[:, : hidden.shape[1]] & valid
            if not sel.any():
                continue
            loss = F.cross_entropy(head(hidden[sel]), targets[:, : hidden.shape[1]][sel])
            for g in opt.param_groups:
                g["lr"] = lr_at(step, budget.progress, budget_cfg.peak_lr, 100)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            step += 1
            log.append((step, float(loss)))
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss):.3f}")
            ckpt.maybe_save(both, opt, step, log, budget.elapsed)
    ckpt.maybe_save(both, opt, step, log, budget.elapsed, force=True)
    torch.save(cpu_state(encoder), work / f"ssl{iteration}_final.pt")
    (work / f"ssl{iteration}_stats.json").write_text(json.dumps({
        "steps": step, "minutes": budget_cfg.minutes, "device": device_name(), "final_loss": log[-1][1] if log else None}))


def probe(recipe: Recipe, steps: int = 60) -> int:
    """Linear CTC probe per layer on a transcribed subset; the layer with the lowest loss wins."""
    from shared.tokenizer import Tokenizer

    work = recipe.work_dir
    tok = Tokenizer(work / "tokenizer.model")
    cfg = conformer_config(recipe.vocab_size)
    encoder = ConformerEncoder(cfg)
    encoder.load_state_dict(torch.load(work / "ssl2_final.pt", map_location="cpu"))
    encoder.to(DEVICE).eval()
    cache = FeatureCache(recipe.train_manifest)
    rng = random.Random(3)
    batches = []
    with torch.no_grad():
        for i, batch in enumerate(feature_batches(cache, 6000, rng, augment=False)):
            if i >= 12:
                break
            hidden, lens = encoder(batch.feats.to(DEVICE), batch.lengths.to(DEVICE), return_all=True)
            batches.append((hidden, lens, [tok.encode(r["text"]) for r in batch.rows]))
    held_out = max(1, len(batches) // 5)
    train_b, eval_b = batches[: len(batches) - held_out] or batches, batches[-held_out:]
    results = {}
    for layer in range(cfg.n_layers):
        head = nn.Linear(cfg.d_model, tok.vocab_size + 1).to(DEVICE)
        opt = torch.optim.Adam(head.parameters(), lr=3e-3)
        for s in range(steps):
            hidden, lens, tgts = train_b[s % len(train_b)]
            loss = _ctc(head, hidden[layer], lens, tgts, tok.vocab_size)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            losses = [float(_ctc(head, h[layer], ln, t, tok.vocab_size)) for h, ln, t in eval_b]
            results[layer + 1] = sum(losses) / len(losses)
    # The lower half is never kept: SFT needs the depth, and the probe is short.
    best = min((k for k in results if k > cfg.n_layers // 2), key=lambda k: results[k])
    (work / "probe.json").write_text(json.dumps({"ctc_loss_by_layer": results, "best_layer": best}, indent=2))
    print("probe:", results, "-> layer", best)
    return best


def _ctc(head: nn.Linear, hidden: torch.Tensor, lens: torch.Tensor, tgts: list[list[int]], blank: int) -> torch.Tensor:
    logp = head(hidden).log_softmax(-1).transpose(0, 1)
    flat = torch.tensor([t for tg in tgts for t in tg], device=hidden.device)
    tlens = torch.tensor([len(t) for t in tgts], device=hidden.device)
    return F.ctc_loss(logp, flat, lens, tlens, blank=blank, zero_infinity=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iteration", type=int, choices=[1, 2])
    ap.add_argument("--probe", action="store_true")
    args = ap.parse_args()
    recipe = Recipe.from_env()
    if args.probe:
        probe(recipe)
    else:
        train_iteration(args.iteration, recipe)


if __name__ == "__main__":
    main()
