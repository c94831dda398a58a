"""Synthesise (audio, text) manifests with espeak-ng, flite, SVOX pico, Kokoro and Piper, with voice conversion and augmentation.

    python -m training.data.synth --out data/train --hours 8 --split train
    python -m training.data.synth --out data/dev --split dev      # reserved voices, held-out accents
    python -m training.data.synth --out data/train --count 36000 --plan-only  # texts + voices only
    python -m training.data.synth --out data/train --from-plan    # render data/train/jobs.jsonl

Planning needs the text sources (Faker, wordfreq, fortunes); rendering needs only the TTS engines,
so a plan made here can be rendered on a bigger machine.

Training never uses flite `slt` or any festival voice: `TRAIN_VOICES` cannot name them, and
`check_training_voice` refuses them at run time as well.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from shared.audio import TARGET_RATE, decode_audio
from training.data.augment import augment, change_voice, lpc_vocode, pad_edges
from training.data.kokoro import KOKORO_ACCENTS, KOKORO_SPEAKERS, ensure_model, kokoro_tts
from training.data.piper_voice import PIPER_VOICES, piper_tts
from training.data.text import fortune_stream, pin_hash_seed, sentence_stream

ESPEAK_TRAIN_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-gbclan", "en-gb-x-rp"]
ESPEAK_HELDOUT_ACCENTS = ["en-us-nyc", "en-gb-x-gbcwmd"]
ESPEAK_VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5",
                   "+klatt", "+klatt2", "+croak", "+whisper"]
FLITE_TRAIN_VOICES = ["kal", "kal16", "awb", "rms"]
# SVOX pico (PyPI `ttspico`, Apache-2.0): two female speakers, a real female voice beside the
# pitch-shifted male ones; the reserved flite slt is female too.
PICO_TRAIN_VOICES = ["en-US", "en-GB"]
# Kokoro (training/data/kokoro.py): blended neural speakers, natural where every other engine is
# not; about 2 CPU-s per utterance, some 40 times the others, hence a small share (a ninth run with
# 13% of 12,000 utterances spent four fifths of its synthesis time on them, and did not beat this mix).
KOKORO_SHARE = 0.08
# Piper (training/data/piper_voice.py): a recorded American man through VITS, the one human voice
# of the mix (the reserved ked is an American man too); cheap (0.05 CPU-s per audio second), and
# voice conversion makes women and other men of it.
PIPER_SHARE = 0.2
# Share of training utterances whose voice is converted first (augment.change_voice): new speakers
# were the largest gain of every run. Two thirds go to the other sex (female voices from flite's male
# ones, for the reserved slt), the rest to a new speaker of the same sex (more male voices, for ked).
VOICE_CONVERSION_SHARE = 0.45
CROSS_SEX_SHARE = 2 / 3
# Default share of training utterances resynthesised through an LPC vocoder (augment.lpc_vocode)
# after any conversion: every reserved voice is a vocoder (ked residual-excited LPC diphones, slt HTS and
# clustergen), and the shipped model lost 4 points on vocoded training voices.
VOCODE_SHARE = 0.3
# Default share of training utterances given extra silence at both edges (augment.pad_edges) before
# the chain, so added noise covers it: serving keeps up to 0.5 s at the edges of a turn (shared/recognition.py
# segment_audio) and the shipped model, trained without it, loses 4.8 WER points (data/tune 20.4 -> 25.2%)
# to a VAD-ended turn's 0.6 s tail.
EDGE_PAD_SHARE = 0.5
EVAL_VOICES = ("flite:slt", "festival:cmu_us_slt_arctic_hts", "festival:ked_diphone")
RESERVED = set(EVAL_VOICES)


def eval_set_args(doc: str, count: int, seed: int, other_voices: str) -> tuple[argparse.Namespace, list[str]]:
    """The command line of an evaluation set's maker (--out, --count, --seed, --voices) -> its arguments and voices,
    the reserved ones unless --voices names others (other_voices: what such a set is for)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--count", type=int, default=count)
    ap.add_argument("--seed", type=int, default=seed)
    ap.add_argument("--voices", default=",".join(EVAL_VOICES),
                    help=f"comma-separated voices, used in turn (default: the reserved evaluation voices; {other_voices})")
    args = ap.parse_args()
    return args, [v.strip() for v in args.voices.split(",") if v.strip()]


def check_training_voice(voice: str) -> None:
    if voice in RESERVED or voice.startswith("festival:"):
        raise ValueError(f"voice {voice} is reserved for evaluation and must never be trained on")


@dataclass
class Job:
    uid: str
    text: str
    entity: str
    voice: str  # "espeak:en-gb+f2", "flite:kal", "pico:en-US", "kokoro:us-17", "piper:joe", "festival:ked_diphone"
    rate: int  # espeak words per minute (pico: mapped to its percent scale)
    pitch: int  # espeak 0..99 (pico: mapped to its percent scale)
    seed: int
    out_dir: str
    augment: bool
    noise_snr: float | None = None
    edge_pad_share: float = 0.0  # chance of augment.pad_edges (training jobs)
    vocode_share: float = 0.0  # chance of augment.lpc_vocode (training jobs)


_PICO_ENGINES: dict = {}  # one engine per language per worker process


def pico_tts(language: str, text: str, rate: int, pitch: int) -> np.ndarray:
    """SVOX pico in-process: 16 kHz int16 PCM -> float32 (N,). rate/pitch use the espeak scales."""
    import ttspico

    if language not in _PICO_ENGINES:
        _PICO_ENGINES[language] = ttspico.TtsEngine(language)
    engine = _PICO_ENGINES[language]
    engine.rate = int(np.interp(rate, [120, 210], [80, 130]))
    engine.pitch = int(np.interp(pitch, [25, 80], [85, 120]))
    pcm = engine.speak(text)
    if not pcm:
        raise ValueError(f"pico produced no audio for {text!r}")
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0


def tts(voice: str, text: str, rate: int, pitch: int, seed: int = 0) -> np.ndarray:
    """One utterance, float32 (N,) at TARGET_RATE; seed draws the neural engines' sampling noise (piper)."""
    engine, name = voice.split(":", 1)
    if engine == "piper":
        return piper_tts(name, text, rate, seed)
    if engine == "pico":
        return pico_tts(name, text, rate, pitch)
    if engine == "kokoro":
        return kokoro_tts(name, text, rate)
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        if engine == "espeak":
            cmd = ["espeak-ng", "-v", name, "-s", str(rate), "-p", str(pitch), "-w", tmp.name, text]
        elif engine == "flite":
            cmd = ["flite", "-voice", name, "-t", text, "-o", tmp.name]
        elif engine == "festival":
            cmd = ["text2wave", "-eval", f"(voice_{name})", "-o", tmp.name]
        else:
            raise ValueError(f"unknown engine {engine}")
        subprocess.run(cmd, input=text.encode() if engine == "festival" else None, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        return decode_audio(Path(tmp.name).read_bytes())


def run_job(job: Job) -> dict | None:
    try:
        samples = tts(job.voice, job.text, job.rate, job.pitch, job.seed)
    except (subprocess.SubprocessError, ValueError, RuntimeError):
        return None
    rng = np.random.default_rng(job.seed)
    tags: list[str] = []
    if job.augment:
        # conversion draws from its own stream so the augmentation chain's draws stay as they were
        vc_rng, vc_tag = np.random.default_rng([job.seed, 2]), ""
        if vc_rng.random() < VOICE_CONVERSION_SHARE:
            samples, vc_tag = change_voice(samples, vc_rng, cross_sex=vc_rng.random() < CROSS_SEX_SHARE)
        lpc_rng, lpc_tag = np.random.default_rng([job.seed, 4]), ""
        if lpc_rng.random() < job.vocode_share:
            samples, lpc_tag = lpc_vocode(samples, lpc_rng)
        pad_rng, pad_tag = np.random.default_rng([job.seed, 3]), ""
        if pad_rng.random() < job.edge_pad_share:
            samples, pad_tag = pad_edges(samples, pad_rng)
        samples, tags = augment(samples, rng)
        tags = [t for t in (vc_tag, lpc_tag, pad_tag) if t] + tags
    elif job.noise_snr is not None:
        from training.data.augment import add_noise

        samples = add_noise(samples, rng, job.noise_snr, color="pink")
        tags = [f"pink{job.noise_snr:g}dB"]
    path = Path(job.out_dir) / "wav" / f"{job.uid}.wav"
    sf.write(path, samples, TARGET_RATE, subtype="PCM_16")
    row = {"id": job.uid, "audio": str(path), "text": job.text, "voice": job.voice,
           "duration": round(len(samples) / TARGET_RATE, 3), "aug": tags}
    if job.entity:
        row["entities"] = [job.entity]
    return row


def train_voice(rng: random.Random, piper_share: float = PIPER_SHARE) -> str:
    # the rest keeps its old proportions (espeak 32 : flite 28 : pico 32); piper_share 0 draws as runs before it
    draw, rest = rng.random(), (1 - KOKORO_SHARE - piper_share) / 0.92
    if draw < KOKORO_SHARE:
        voice = f"kokoro:{rng.choice(sorted(KOKORO_ACCENTS))}-{rng.randrange(KOKORO_SPEAKERS)}"
    elif draw < KOKORO_SHARE + piper_share:
        voice = "piper:" + rng.choice(sorted(PIPER_VOICES))
    # espeak adds accents; flite's and pico's voices are closer to the reserved ones
    elif draw < KOKORO_SHARE + piper_share + 0.32 * rest:
        voice = "espeak:" + rng.choice(ESPEAK_TRAIN_ACCENTS) + rng.choice(ESPEAK_VARIANTS)
    elif draw < KOKORO_SHARE + piper_share + 0.6 * rest:
        voice = "flite:" + rng.choice(FLITE_TRAIN_VOICES)
    else:
        voice = "pico:" + rng.choice(PICO_TRAIN_VOICES)
    check_training_voice(voice)
    return voice


def make_jobs(split: str, out_dir: str, count: int, seed: int, voices: list[str] | None, noise_snr: float | None,
              edge_pad_share: float = EDGE_PAD_SHARE, piper_share: float = PIPER_SHARE,
              text_source: str = "mix", vocode_share: float = VOCODE_SHARE) -> list[Job]:
    rng = random.Random(seed)
    stream = (fortune_stream if text_source == "fortunes" else sentence_stream)(seed, dev=split != "train")
    jobs = []
    for i in range(count):
        text, entity = next(stream)
        voice = voices[i % len(voices)] if voices else train_voice(rng, piper_share)
        if split == "train":
            check_training_voice(voice)
        jobs.append(Job(f"{Path(out_dir).name}-{i:06d}", text, entity, voice, rng.randint(120, 210),
                        rng.randint(25, 80), seed * 1_000_003 + i, out_dir, augment=split == "train",
                        noise_snr=noise_snr, edge_pad_share=edge_pad_share if split == "train" else 0.0,
                        vocode_share=vocode_share if split == "train" else 0.0))
    return jobs


def synthesise(jobs: list[Job], manifest: Path, workers: int) -> None:
    Path(jobs[0].out_dir, "wav").mkdir(parents=True, exist_ok=True)
    done = set()
    if manifest.exists():  # resume: keep what is there, make only what is missing
        done = {json.loads(line)["id"] for line in manifest.read_text().splitlines() if line.strip()}
    todo = [j for j in jobs if j.uid not in done]
    if any(j.voice.startswith("kokoro:") for j in todo):
        ensure_model()
    hours = 0.0
    with Pool(workers) as pool, manifest.open("a") as out:
        for row in tqdm(pool.imap(run_job, todo, chunksize=8), total=len(todo), desc=manifest.name):
            if row:
                hours += row["duration"] / 3600
                out.write(json.dumps(row) + "\n")
                out.flush()
    print(f"{manifest}: +{len(todo)} utterances, +{hours:.2f} h")


def main() -> None:
    pin_hash_seed()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--split", choices=["train", "dev"], default="train")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--voices", default="", help="comma-separated engine:voice list (default: training voices)")
    ap.add_argument("--noise-snr", type=float, default=None, help="add pink noise at this SNR (dev sets)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--edge-pad-share", type=float, default=EDGE_PAD_SHARE,
                    help="share of training utterances given extra silence at the edges (0 reproduces runs before it)")
    ap.add_argument("--piper-share", type=float, default=PIPER_SHARE,
                    help="share of training utterances spoken by Piper (0 reproduces runs before it)")
    ap.add_argument("--vocode-share", type=float, default=VOCODE_SHARE,
                    help="share of training utterances resynthesised through an LPC vocoder (0 reproduces runs before it)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--text", choices=["mix", "fortunes"], default="mix",
                    help="the sentence mix of training/data/text.py, or its fortunes only (a tuning set like the dev sets)")
    ap.add_argument("--plan-only", action="store_true", help="write OUT/jobs.jsonl and stop")
    ap.add_argument("--from-plan", action="store_true", help="render OUT/jobs.jsonl")
    args = ap.parse_args()
    voices = [v for v in args.voices.split(",") if v] or None
    plan = Path(args.out) / "jobs.jsonl"
    if args.from_plan:
        jobs = [Job(**json.loads(line)) for line in plan.read_text().splitlines() if line.strip()]
        for job in jobs:
            if job.augment:
                check_training_voice(job.voice)
    else:
        if not 0.0 <= args.edge_pad_share <= 1.0:
            ap.error(f"--edge-pad-share must be within 0..1, got {args.edge_pad_share}")
        if not 0.0 <= args.vocode_share <= 1.0:
            ap.error(f"--vocode-share must be within 0..1, got {args.vocode_share}")
        if not 0.0 <= args.piper_share <= 1.0 - KOKORO_SHARE:
            ap.error(f"--piper-share must be within 0..{1 - KOKORO_SHARE:g}, got {args.piper_share}")
        jobs = make_jobs(args.split, args.out, args.count, args.seed, voices, args.noise_snr, args.edge_pad_share,
                         args.piper_share, args.text, args.vocode_share)
    if args.plan_only:
        plan.parent.mkdir(parents=True, exist_ok=True)
        plan.write_text("".join(json.dumps(asdict(j)) + "\n" for j in jobs))
        print(f"{plan}: {len(jobs)} jobs")
        return
    synthesise(jobs, Path(args.out) / "manifest.jsonl", args.workers)


if __name__ == "__main__":
    main()
