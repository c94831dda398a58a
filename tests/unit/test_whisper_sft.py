"""SFT of a `whisper` bundle (training/sft/whisper.py) on tiny sizes: targets line up with the prompt, only the
tuned top blocks get gradients, and a few steps on cached lower-block frames lower the loss."""

import random
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from shared.model.asr import ASRConfig, SeedASR
from shared.model.converter import ConverterConfig
from shared.model.moe_lm import MoeConfig
from shared.model.whisper_decoder import WhisperDecoderConfig
from shared.model.whisper_encoder import WhisperEncoder, WhisperEncoderConfig
from training.common import EncoderOutputCache, FeatureCache, feature_batches
from training.sft.whisper import IGNORE, batch_loss, moe_parameters, sentence_case, target_batch, tuned_parameters

VOCAB, EOT = 40, 30


class TinyTokens:
    """WhisperTokens' interface: a word's id is its length; the prompt is two specials."""

    eot = EOT

    def encode(self, text: str) -> list[int]:
        return [min(len(w), EOT - 1) for w in text.split()]

    def prompt(self, language: str = "en", previous: str | None = None) -> list[int]:
        return [33, *self.encode(previous), 31, 32] if previous else [31, 32]


def _model() -> SeedASR:
    torch.manual_seed(0)
    enc = WhisperEncoderConfig(n_mels=80, d_model=32, n_heads=2, n_layers=2, max_frames=600)
    cfg = ASRConfig(encoder=enc, encoder_type="whisper", converter=ConverterConfig(32, 32, 1),
                    lm=WhisperDecoderConfig(vocab_size=VOCAB, d_model=32, n_heads=4, n_layers=2, max_tokens=40,
                                            moe=MoeConfig(2, 1)),
                    decoder_type="whisper", ctc_weight=0.0, window_s=2.0)
    return SeedASR.build(cfg)


def test_sentence_case_capitalises_only_the_first_letter() -> None:
    assert sentence_case(" did you reply to tapani ") == "Did you reply to tapani"
    assert sentence_case("") == ""


def test_targets_are_the_text_and_eot_after_the_prompt() -> None:
    inputs, labels = target_batch(TinyTokens(), ["aa bbb", "c"], max_tokens=40)
    # prompt 31 32, then the words' ids (2 3 | 1) and eot; inputs stop before the last target
    assert inputs.tolist() == [[31, 32, 2, 3], [31, 32, 1, EOT]]
    assert labels.tolist() == [[IGNORE, 2, 3, EOT], [IGNORE, 1, EOT, IGNORE]]
    # a row with context: <|startofprev|> and its words before the prompt, labels only after the prompt
    inputs, labels = target_batch(TinyTokens(), ["aa bbb", "c"], 40, [None, "dd e"])
    assert inputs.tolist() == [[31, 32, 2, 3, EOT, EOT], [33, 2, 1, 31, 32, 1]]
    assert labels.tolist() == [[IGNORE, 2, 3, EOT, IGNORE, IGNORE], [IGNORE] * 4 + [1, EOT]]


def _cache(tmp_path: Path, model: SeedASR, resume_at: int | None) -> EncoderOutputCache:
    rng = np.random.default_rng(0)
    rows = []
    for i, text in enumerate(["aa bbb c", "dddd ee", "f gg hhh", "iiii j"]):
        path = tmp_path / f"{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(8000)).astype(np.float32), 16_000)
        rows.append(f'{{"id": "{i}", "audio": "{path}", "text": "{text}", "duration": 0.5}}')
    (tmp_path / "manifest.jsonl").write_text("\n".join(rows) + "\n")
    features = FeatureCache(tmp_path / "manifest.jsonl", kind="whisper_mel", window_s=model.cfg.window_s)
    assert features.feats(0).shape[0] == 200  # 0.5 s padded to a 2 s window: 200 mel frames
    return EncoderOutputCache(features, model.encoder, tmp_path / f"cache{resume_at}.npy", resume_at=resume_at)


def _train(model: SeedASR, cache: EncoderOutputCache, trained: list, start: int | None, contexts: bool) -> list[float]:
    for p in model.parameters():
        p.requires_grad = False
    for p in trained:
        p.requires_grad = True
    opt = torch.optim.AdamW(trained, lr=3e-3)
    losses = []
    for _ in range(15):
        for batch in feature_batches(cache, 800, random.Random(0), augment=False):
            ctx = ["dd e" if i % 2 else None for i in range(len(batch.rows))] if contexts else None
            ce, aux = batch_loss(model, TinyTokens(), batch, start, ctx)
            opt.zero_grad()
            (ce + 0.01 * aux).backward()
            opt.step()
            losses.append(ce.item())
    return losses


def test_sft_trains_only_the_top_encoder_blocks_and_the_loss_falls(tmp_path: Path) -> None:
    model = _model()
    assert isinstance(model.encoder, WhisperEncoder)
    losses = _train(model, _cache(tmp_path, model, 1), tuned_parameters(model.encoder, 1), 1, False)
    assert losses[-1] < 0.8 * losses[0]
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith(("encoder.layers.1.", "encoder.norm")))


def test_context_sft_trains_only_the_experts_and_routers_and_they_part(tmp_path: Path) -> None:
    model = _model()
    ff = model.lm.layers[0].ff  # type: ignore[index]
    with torch.no_grad():  # upcycled: the experts start as one MLP's copies
        for expert in ff.experts[1:]:
            expert.load_state_dict(ff.experts[0].state_dict())
    losses = _train(model, _cache(tmp_path, model, None), moe_parameters(model.lm), None, True)  # type: ignore[arg-type]
    assert losses[-1] < 0.8 * losses[0]
    assert all(p.grad is None for n, p in model.named_parameters() if ".ff." not in n)
    first, second = (torch.cat([p.flatten() for p in e.parameters()]) for e in ff.experts[:2])
    assert not torch.allclose(first, second)
