"""SentencePiece tokenizer with the prompt's special symbols."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

SPECIAL_SYMBOLS = ["<ctx>", "</ctx>", "<speech>", "</speech>", "<turn>"]


class Tokenizer:
    def __init__(self, model_file: str | Path) -> None:
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.bos_id, self.eos_id, self.pad_id = self.sp.bos_id(), self.sp.eos_id(), self.sp.pad_id()
        self.ctx_id, self.ctx_end_id, self.speech_id, self.speech_end_id, self.turn_id = (
            self.sp.piece_to_id(s) for s in SPECIAL_SYMBOLS
        )
        self.special_ids = {self.bos_id, self.eos_id, self.pad_id, self.ctx_id, self.ctx_end_id,
                            self.speech_id, self.speech_end_id, self.turn_id}

    @property
    def vocab_size(self) -> int:
        return int(self.sp.get_piece_size())

    def encode(self, text: str) -> list[int]:
        return list(self.sp.encode(text))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.sp.decode([i for i in ids if i not in self.special_ids]))

    def id_to_piece(self, i: int) -> str:
        return str(self.sp.id_to_piece(i))


def train_tokenizer(sentences: Iterable[str], prefix: str | Path, vocab_size: int) -> Tokenizer:
    """Unigram model with byte fallback, so unseen characters (and later Chinese) still encode."""
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        byte_fallback=True,
        user_defined_symbols=SPECIAL_SYMBOLS,
        unk_id=0, bos_id=1, eos_id=2, pad_id=3,
        input_sentence_size=2_000_000,
        shuffle_input_sentence=True,
        num_threads=2,
        minloglevel=2,
    )
    return Tokenizer(f"{prefix}.model")
