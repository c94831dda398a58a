"""Word times and word confidences for a Whisper-style decoder's transcripts, from one teacher-forced pass.

Times follow Whisper's own word timestamps: the cross-attention of the alignment heads (the heads whose
attention tracks the audio, listed in the model's config) is normalised per head over the tokens, median
filtered over the frames and averaged; dynamic time warping then finds the monotonic path through it, and
a word starts at the frame where the path reaches its first token. Confidence reads the same pass's token
posteriors under the search's own mix of the context-free and context-conditioned streams (alpha), so a
word the context made likely scores as the search saw it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from scipy.ndimage import median_filter

from shared.model.lexicon import WORD_START
from shared.model.whisper_decoder import KV, WhisperDecoder
from shared.model.whisper_search import allowed_logp

MEDIAN_FILTER_FRAMES = 7  # Whisper's medfilt_width
START_SHARE = 0.5  # a word starts where its attention first reaches this share of its peak (word_start)


@dataclass
class AlignedWord:
    word: str  # as written, punctuation attached
    start_s: float
    end_s: float
    min_logp: float  # log-probability of its least likely token (confidence reads it: shared/recognition.py)
    entropy: float  # mean entropy (nats) of the decoder's distribution over its tokens


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cost (N, T) -> the monotonic path from (0, 0) to (N-1, T-1) of least total cost, as (rows, cols), each (P,).
    Steps go down (next token, same frame), right (next frame) or diagonally, as in Whisper's alignment. A turn's
    matrix is a few dozen tokens by at most a few hundred frames: plain loops over Python floats."""
    n, t = cost.shape
    inf = float("inf")
    total = [[inf] * (t + 1) for _ in range(n + 1)]
    move = [[0] * (t + 1) for _ in range(n + 1)]  # 0 diagonal, 1 from the token above, 2 from the frame before
    total[0][0] = 0.0
    rows_cost = cost.tolist()
    for i in range(1, n + 1):
        above, here, row_cost, row_move = total[i - 1], total[i], rows_cost[i - 1], move[i]
        for j in range(1, t + 1):
            d, u, left = above[j - 1], above[j], here[j - 1]
            if d <= u and d <= left:
                here[j], row_move[j] = row_cost[j - 1] + d, 0
            elif u <= left:
                here[j], row_move[j] = row_cost[j - 1] + u, 1
            else:
                here[j], row_move[j] = row_cost[j - 1] + left, 2
    i, j, rows, cols = n, t, [], []
    while i > 0 and j > 0:
        rows.append(i - 1)
        cols.append(j - 1)
        step = move[i][j]
        if step == 0:
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    return np.array(rows[::-1]), np.array(cols[::-1])


def attention_matrix(logits: torch.Tensor, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """logits (H, N, T') the alignment heads' cross-attention logits for N token positions -> the path's cost matrix
    (N, frames): each head's attention over the real frames normalised per frame across tokens, median filtered,
    averaged; and the attention itself averaged over the heads (N, frames)."""
    weights = logits[..., :frames].float().softmax(-1)  # (H, N, F)
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    normalised = ((weights - mean) / (std + 1e-8)).numpy()
    matrix = np.asarray(median_filter(normalised, size=(1, 1, MEDIAN_FILTER_FRAMES), mode="nearest").mean(0))
    return matrix, weights.mean(0).numpy()


def word_start(attention: np.ndarray, first: int, last: int) -> int:
    """attention (F,) of the row that predicts the word's first token, the frames [first, last) the path gave the
    word -> the frame where it starts: the first one that row attends to with at least half its peak. The path hands
    a pause before a word (and the audio before the first word) to that word; its attention does not dwell there.
    (The word's later rows are left out: a trailing "." looks at the silence after the word.) On words with known
    boundaries in training voices (data/tune_word_times): start error median 182 -> 58 ms, 95th percentile 421 ->
    237 ms; the same cut on the ends did not help them."""
    if last <= first or attention.size == 0:
        return first
    row = attention[first:last]  # (last - first,)
    return first + int(np.flatnonzero(row >= START_SHARE * row.max())[0])


def word_spans(pieces: Sequence[str], ids: Sequence[int],
               decode: Optional[Callable[[list[int]], str]] = None) -> list[tuple[int, int]]:
    """Token ids -> [start, end) token index ranges of the words of their text: a piece with the word-start mark
    begins a word, and a word of punctuation only (" -", " ...") stays with the word before it, as written text
    splits at spaces with punctuation attached. With `decode` (a language written without spaces), every character
    of such a script is a word too, as Whisper splits them: a span ends once its tokens decode to whole characters
    and the next token starts another one (a character may take several byte tokens)."""
    spans: list[tuple[int, int]] = []
    for k, i in enumerate(ids):
        piece = pieces[i]
        starts = piece.startswith(WORD_START) or not spans
        if not starts and decode is not None:
            so_far = decode(list(ids[spans[-1][0]:k]))
            nxt = decode([i])
            starts = "\ufffd" not in so_far and bool(so_far) and (_unspaced(so_far[-1]) or (bool(nxt) and _unspaced(nxt[0])))
        if starts:
            spans.append((k, k + 1))
        else:
            spans[-1] = (spans[-1][0], k + 1)
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        # punctuation only? (with decode, read the span's text: a character made of byte tokens has no letter piece)
        text = decode(list(ids[a:b])) if decode is not None else "".join(pieces[i] for i in ids[a:b])
        if merged and not any(c.isalnum() for c in text):
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def _unspaced(char: str) -> bool:
    """A character of a script written without spaces between words (CJK, kana, Thai...); not its punctuation."""
    return ord(char) >= 0x0E00 and char.isalnum()


@torch.inference_mode()
def align_transcripts(decoder: WhisperDecoder, audio_kv: KV, prompts: list[list[int]], alpha: float,
                      texts: list[list[int]], eot: int, pieces: Sequence[str], heads: Sequence[tuple[int, int]],
                      frames: int, frame_s: float, decode: Callable[[list[int]], str],
                      times_for: int = 1, spaced: bool = True) -> list[list[AlignedWord]]:
    """Words with times and confidence features for each transcript in `texts` (token ids, no eot).

    prompts: the search's streams (joint_streams: stream 0 context-free, a second one conditioned on the context)
    mixed by alpha; audio_kv: decoder.audio_keys of one utterance; heads: (block, head) pairs whose attention
    aligns; frames: the encoder frames that hold audio (the rest is padding), frame_s seconds each; pieces: each
    id's text with the word-start mark (WhisperTokens.pieces), decode: ids -> text. Only the first `times_for`
    transcripts get times (the others' words start and end at 0): the warping is most of the cost."""
    if not any(texts):
        return [[] for _ in texts]
    rows: list[list[int]] = []
    for text in texts:
        rows += [[*p, *text, eot] for p in prompts]
    length = max(len(r) for r in rows)
    batch = torch.tensor([r + [eot] * (length - len(r)) for r in rows])  # right-padded: causal, padding comes last
    cross: list[torch.Tensor] = []
    logits = decoder.run(batch[:, :-1], audio_kv, cross_logits=cross)[0]  # (R, L - 1, V)
    logp = allowed_logp(logits.flatten(0, 1), eot, False, None).view_as(logits)
    frames = max(1, min(frames, audio_kv[0][0].shape[2]))
    out: list[list[AlignedWord]] = []
    for t, text in enumerate(texts):
        token_logp = torch.zeros(len(text) + 1)  # the text's tokens and eot
        entropy = torch.zeros(len(text) + 1)
        for s, prompt in enumerate(prompts):
            r, at = t * len(prompts) + s, len(prompt) - 1  # the position that predicts the text's first token
            rows_logp = logp[r, at : at + len(text) + 1]  # (N + 1, V)
            picked = rows_logp.gather(-1, torch.tensor([*text, eot])[:, None])[:, 0]
            weight = (1.0 - alpha if s == 0 else alpha) if len(prompts) > 1 else 1.0
            token_logp += weight * picked
            entropy += weight * -(rows_logp.exp() * rows_logp.nan_to_num(neginf=0.0)).sum(-1)
        jumps = np.zeros(len(text) + 1, dtype=np.int64)
        attention = np.zeros((len(text) + 1, 0))
        if t < times_for:  # times from the context-free stream: its attention reads the audio, not the context
            r, at = t * len(prompts), len(prompts[0]) - 1
            head_logits = torch.stack([cross[b][r, h, at : at + len(text) + 1] for b, h in heads])  # (H, N + 1, T')
            matrix, attention = attention_matrix(head_logits, frames)
            rows_idx, cols = dtw_path(-matrix)
            jumps = cols[np.concatenate([[True], np.diff(rows_idx) > 0])]  # the first frame of each token (row), (N + 1,)
        words = []
        for a, b in word_spans(pieces, text, None if spaced else decode):
            first, last = int(jumps[a]), int(jumps[min(b, len(jumps) - 1)])
            start = word_start(attention[a] if attention.size else attention, first, last)  # no times asked: first
            words.append(AlignedWord(decode(list(text[a:b])).strip(), start * frame_s, last * frame_s,
                                     float(token_logp[a:b].min()), float(entropy[a:b].mean())))
        out.append(words)
    return out
