"""Non-English dev sets (evaluation only): Mandarin, Cantonese, Spanish, French, German, a language-ID mix and a
Mandarin context set, each a folder with manifest.jsonl and 16 kHz mono PCM_16 wavs under wav/.

    python -m training.data.languages --out data/dev_zh_kokoro --language zh --count 120 --seed 401
    python -m training.data.languages --out data/dev_yue_espeak --language yue --count 60 --seed 402
    python -m training.data.languages --out data/dev_es_pico --language es --count 120 --seed 403  # also fr, de
    python -m training.data.languages --out data/dev_lid --lid --count 200 --seed 406
    python -m training.data.languages --out data/context_zh --context-zh --count 100 --seed 407

Sentences are short assistant turns (2-5 s) from templates written here, with people, cities and streets from
Faker (zh_CN, es_ES, fr_FR, de_DE) and numbers written as people write them ("3点", "a las 7", "um 8 Uhr").
`text` is that written reference (Chinese in simplified characters with Chinese punctuation, Cantonese in Hong
Kong characters); `spoken` is what the voice was given: the same words, with Chinese numbers as characters
("明天上午3点" is given as "明天上午三点", read by the project's Chinese normaliser, so that a transcript is
scored against the numbers the voice said). Numbers whose Chinese reading is ambiguous (2: 二 or 两) are not drawn.

Voices (the engine and voice of each row are in `voice`, a voice conversion in `aug`):
  zh   Kokoro-82M (training/data/kokoro.py) speaking Mandarin from misaki's Chinese G2P (pypinyin -> IPA with
       Kokoro's tone arrows), blended speakers 300-349 (`kokoro:zh-317`); the context set uses 350-399. Training
       draws 0-95 and the tuning sets 201-205, so no run has heard these speakers.
  yue  espeak-ng `yue` (unintelligible to Whisper base: CER above 1 at every rate tried; reported, not tuned on).
  es, fr, de  SVOX pico (es-ES, fr-FR, de-DE) for two thirds of the rows; a third in a second voice: Kokoro
       blends 300-349 speaking Spanish from espeak-ng's IPA (`kokoro:es-317`), and for French and German (which
       Kokoro speaks badly) pico converted to a male voice (training/data/augment.py change_voice, tag in `aug`).
       espeak-ng's es / fr / de voices only with --espeak-share: Whisper base WER 0.7-1.1 on them.
  en   (language-ID set only) espeak-ng en-us / en-gb variants and Kokoro English speakers 300-349; never flite slt
       nor festival, which are kept for the English dev sets. English sentences come from training/data/commands.py.

Rows: id, audio, text, spoken, voice, duration, aug ([]), language, entities (names, places and products the
sentence says) as training/data/synth.py writes them; --context-zh rows add history, hotwords, prompt, keywords,
distractor and context_entities as training/data/context_eval.py does (a third are distractor rows whose
context entities the utterance does not say). The language-ID set keeps only utterances of 2-5 s.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from faker import Faker
from num2words import num2words
from scipy.signal import resample_poly

from shared.audio import TARGET_RATE
from shared.text import normalize_text
from training.data.augment import change_voice
from training.data.kokoro import KOKORO_RATE, _model, ensure_model, speaker_style
from training.data.synth import _PICO_ENGINES, pico_tts, tts
from training.data.text import pin_hash_seed

LANGUAGES = ("zh", "yue", "es", "fr", "de")
LID_LANGUAGES = ("en", "zh", "es", "fr", "de")
DEFAULTS = {"zh": (120, 401), "yue": (60, 402), "es": (120, 403), "fr": (120, 404), "de": (120, 405),
            "lid": (200, 406), "context_zh": (100, 407)}  # (count, seed)
ZH_SPEAKERS = range(300, 350)  # Kokoro blends no training or tuning run draws (training 0-95, tune sets 201-205)
CONTEXT_ZH_SPEAKERS = range(350, 400)
KOKORO_RATES = (135, 165)  # Kokoro speed 0.89-1.0: Whisper base followed its Mandarin better than at 1.0-1.1
EDGE_SILENCE = 0.2  # seconds of silence around Kokoro's speech (it starts on the first phoneme; Whisper lost a few)
PICO_VOICES = {"es": "es-ES", "fr": "fr-FR", "de": "de-DE"}
# es / fr / de: a third of the rows in a second voice: Kokoro blends speak Spanish well (Whisper base WER about 0.14)
# but French (0.55) and German (0.4-0.6: no German in Kokoro) badly, so those get pico converted to a male voice
SECOND_VOICE_SHARE = 1 / 3
VARIETY = {"es": "kokoro", "fr": "pico-vc", "de": "pico-vc"}
# espeak-ng es / fr / de: Whisper base WER 0.7-1.1 at any rate or variant tried, so none by default (--espeak-share)
ESPEAK_SHARE = 0.0
ESPEAK_VARIANTS = ["", "+m1", "+m3", "+m5", "+f1", "+f2", "+f4"]
EN_ESPEAK_VOICES = ["en-us", "en-gb"]
LID_SECONDS = (2.0, 5.0)
LID_TRIES = 8  # sentences tried per language-ID row before the row is given up
FAKER_LOCALES = {"zh": "zh_CN", "yue": "zh_CN", "es": "es_ES", "fr": "fr_FR", "de": "de_DE"}
_MAX_TOKENS = 500  # Kokoro's style table has 510 rows, one per token count

# ---------------------------------------------------------------------------------------------------------------
# templates: {slot} names a Slots method (each occurrence a fresh draw)

TEMPLATES: dict[str, list[str]] = {
    "zh": [
        "请给{name}打电话。", "明天上午{hour}提醒我去{city}。", "把音量调到{small}。", "今天{city}的天气怎么样？",
        "给{name}发消息，说我晚上{hour}到。", "导航到{street}{num}号。", "把空调温度调到{temp}。",
        "下午{hour}和{name}开会。", "提醒我{date}交电费。", "给{name}转{money}。", "帮我订一张{date}去{city}的机票。",
        "把客厅的灯调到{pct}。", "从{city}开车到{city}要多久？", "帮我查一下{name}的电话号码。", "播放{year}的热门歌曲。",
        "设一个早上{half}的闹钟。", "{name}的生日是{date}。", "在购物清单里加{small}瓶牛奶。", "定一个{minutes}的计时器。",
        "晚上{hour}给{name}回电话。", "查一下去{city}的火车票。", "告诉{name}我会晚到{minutes}。", "{city}明天会下雨吗？",
        "我这个月在外卖上花了多少钱？", "帮我订{small}个人的位子，晚上{half}。", "{street}附近有停车场吗？",
        "把卧室的温度设成{temp}。", "{date}下午{hour}提醒我去取快递。", "我到{city}的航班几点起飞？",
        "给{name}发一条微信。", "打开厨房的灯，亮度调到{pct}。", "离{street}还有多远？",
    ],
    "yue": [
        "唔該幫我打電話俾{name}。", "聽日朝早{hour}叫醒我。", "將音量較到{small}。", "今日{city}天氣點呀？",
        "今晚{hour}同{name}食飯。", "提我{date}交電費。", "去{city}要幾耐？", "幫我開冷氣，較到{temp}。",
        "我想訂{small}張戲飛。", "{name}幾點到呀？", "幫我搵下{city}有冇茶餐廳。", "聽晚{half}提我覆{name}電話。",
        "幫我發個訊息俾{name}。", "而家去{city}塞唔塞車？", "設定一個{minutes}嘅計時器。", "幫我買{small}盒雞蛋。",
        "{name}聽日生日。", "我想搭{hour}嘅船去{city}。", "將客廳盞燈較暗啲。", "幫我睇下{date}有冇約。",
    ],
    "es": [
        "Llama a {name} a las {hour}.", "Pon una alarma a las {hour} y media.", "¿Qué tiempo hace hoy en {city}?",
        "Recuérdame llamar a {first} mañana a las {hour}.", "Sube el volumen al {pct}.",
        "Dile a {first} que llego en {minutes} minutos.", "Pon un temporizador de {minutes} minutos.",
        "¿Cuánto se tarda en llegar a {city}?", "Reserva una mesa para {small} personas a las {hour}.",
        "Añade {small} botellas de agua a la lista.", "Llévame a {street} número {num}.", "Envía {money} a {name}.",
        "¿A qué hora sale el tren para {city}?", "Pon la calefacción a {temp} grados.",
        "Apunta una reunión con {name} el {date}.", "¿Va a llover mañana en {city}?", "Baja las luces del salón al {pct}.",
        "Busca vuelos a {city} para el {date}.", "¿Cuál es el teléfono de {name}?", "Pon canciones de {year}.",
        "Recuérdame pagar la luz el {date}.", "¿Qué restaurantes hay cerca de {street}?",
        "Manda un mensaje a {first}: nos vemos a las {hour}.", "Compra {small} entradas para el cine.",
    ],
    "fr": [
        "Appelle {name} à {hour} heures.", "Mets un réveil à {hour} heures et demie.", "Quel temps fait-il à {city} ?",
        "Rappelle-moi d'appeler {first} demain à {hour} heures.", "Monte le volume à {pct}.",
        "Dis à {first} que j'arrive dans {minutes} minutes.", "Lance un minuteur de {minutes} minutes.",
        "Combien de temps pour aller à {city} ?", "Réserve une table pour {small} personnes à {hour} heures.",
        "Ajoute {small} bouteilles d'eau à la liste.", "Emmène-moi au {num} {street}.", "Envoie {money} à {name}.",
        "À quelle heure part le train pour {city} ?", "Mets le chauffage à {temp} degrés.",
        "Note une réunion avec {name} le {date}.", "Est-ce qu'il va pleuvoir demain à {city} ?",
        "Baisse les lumières du salon à {pct}.", "Cherche des vols pour {city} le {date}.",
        "Quel est le numéro de {name} ?", "Joue des chansons de {year}.", "Rappelle-moi de payer l'électricité le {date}.",
        "Quels restaurants y a-t-il près de {street} ?", "Écris à {first} : on se voit à {hour} heures.",
        "Achète {small} places de cinéma.",
    ],
    "de": [
        "Ruf {name} um {hour} Uhr an.", "Stell einen Wecker auf {hour} Uhr.", "Wie ist das Wetter heute in {city}?",
        "Erinnere mich, morgen um {hour} Uhr {first} anzurufen.", "Stell die Lautstärke auf {pct}.",
        "Sag {first}, dass ich in {minutes} Minuten da bin.", "Stell einen Timer auf {minutes} Minuten.",
        "Wie lange fahre ich nach {city}?", "Reservier einen Tisch für {small} Personen um {hour} Uhr.",
        "Setz {small} Flaschen Wasser auf die Einkaufsliste.", "Navigiere zur {street} {num}.", "Schick {money} an {name}.",
        "Wann fährt der nächste Zug nach {city}?", "Stell die Heizung auf {temp} Grad.",
        "Trag ein Treffen mit {name} am {date} ein.", "Regnet es morgen in {city}?",
        "Dimm das Licht im Wohnzimmer auf {pct}.", "Such Flüge nach {city} am {date}.",
        "Wie ist die Nummer von {name}?", "Spiel Lieder aus dem Jahr {year}.",
        "Erinnere mich am {date} an die Stromrechnung.", "Welche Restaurants gibt es in der {street}?",
        "Schreib {first}: Wir sehen uns um {hour} Uhr.", "Kauf {small} Kinokarten für heute Abend.",
    ],
}

MONTHS = {
    "es": ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
           "noviembre", "diciembre"],
    "fr": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre",
           "décembre"],
    "de": ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November",
           "Dezember"],
}
# fr_FR's Faker makes its city names up ("Leroynec"): real French cities instead
FR_CITIES = ["Lyon", "Marseille", "Toulouse", "Nantes", "Bordeaux", "Lille", "Rennes", "Strasbourg", "Grenoble",
             "Montpellier", "Dijon", "Angers", "Nîmes", "Reims", "Brest", "Limoges", "Tours", "Amiens", "Perpignan",
             "Metz", "Besançon", "Orléans", "Rouen", "Caen", "Nancy", "Avignon", "Poitiers", "La Rochelle", "Annecy"]
HK_PLACES = ["旺角", "銅鑼灣", "沙田", "尖沙咀", "荃灣", "元朗", "西貢", "將軍澳", "屯門", "大埔", "觀塘", "中環", "上水",
             "灣仔", "北角", "長洲", "赤柱", "天水圍", "馬鞍山", "太子", "深水埗", "黃大仙", "鰂魚涌", "油麻地"]


@dataclass
class Slot:
    written: str
    spoken: str
    entity: bool = False


def zh_spoken(written: str) -> str:
    """A Chinese slot as said: its digits in Chinese numerals, as the project's Chinese normaliser reads them."""
    return normalize_text(written, "zh").replace(" ", "") if re.search(r"\d", written) else written


class Slots:
    """Slot makers for one language; one seeded rng and Faker, so that a seed means one data set."""

    def __init__(self, language: str, seed: int) -> None:
        self.lang = language
        self.rng = random.Random(f"{language}-{seed}")
        self.faker = Faker(FAKER_LOCALES[language])
        self.faker.seed_instance(seed)
        self.chinese = language in ("zh", "yue")

    def _num(self, written: str) -> Slot:
        return Slot(written, zh_spoken(written) if self.chinese else written)

    def _int(self, low: int, high: int) -> int:
        """low..high; in Chinese without 2, 2xx and 2xxx (said 二 or 两: the reference could not say which)."""
        while True:
            n = self.rng.randint(low, high)
            if not (self.chinese and (n == 2 or 200 <= n < 300 or 2000 <= n < 3000)):
                return n

    def _named(self, value: str) -> Slot:
        return Slot(value, value, entity=True)

    def _hk(self, value: str) -> str:
        return _opencc("s2hk").convert(value) if self.lang == "yue" else value

    # names and places ------------------------------------------------------------------------------------------
    def name(self) -> Slot:
        if self.chinese:
            return self._named(self._hk(str(self.faker.name())))
        for _ in range(20):
            last = str(self.faker.last_name())
            if " " not in last:
                break
        return self._named(f"{self.faker.first_name()} {last}")

    def first(self) -> Slot:
        return self._named(str(self.faker.first_name()))

    def city(self) -> Slot:
        if self.lang == "yue":
            return self._named(self.rng.choice(HK_PLACES))
        if self.lang == "fr":
            return self._named(self.rng.choice(FR_CITIES))
        if self.lang == "zh":
            return self._named(str(self.faker.city_name()))
        return self._named(str(self.faker.city()))

    def street(self) -> Slot:
        for _ in range(20):
            value = str(self.faker.street_name())
            if not re.search(r"\d|[A-Z]{2}", value) and len(value.split()) <= 4:
                return self._named(value)
        return self._named(str(self.faker.street_name()))

    # numbers ---------------------------------------------------------------------------------------------------
    def hour(self) -> Slot:
        h = self.rng.randint(3, 11) if self.chinese else self.rng.randint(3, 12)
        if self.chinese:
            unit = "點" if self.lang == "yue" else "点"
            minute = self.rng.choice(["", "", "", "15分", "30分", "45分"]) if self.lang == "zh" else ""
            return self._num(f"{h}{unit}{minute}")
        return self._num(str(h))

    def half(self) -> Slot:
        h = self.rng.randint(5, 11)  # "早上7点半", "晚上9点半"
        return self._num(f"{h}{'點' if self.lang == 'yue' else '点'}半")

    def small(self) -> Slot:
        return self._num(str(self.rng.choice([3, 4, 5, 6, 7, 8, 9, 10, 12, 15])))

    def num(self) -> Slot:
        return self._num(str(self._int(3, 180)))

    def minutes(self) -> Slot:
        m = self.rng.choice([5, 10, 15, 20, 25, 30, 40, 45])
        return self._num(f"{m}分鐘" if self.lang == "yue" else f"{m}分钟" if self.lang == "zh" else str(m))

    def pct(self) -> Slot:
        p = self.rng.choice([10, 15, 25, 30, 35, 40, 45, 50, 60, 65, 70, 75, 80, 85, 90])
        return self._num(f"{p}%" if self.chinese else f"{p} %")

    def temp(self) -> Slot:
        t = self.rng.randint(16, 28)
        return self._num(f"{t}度" if self.chinese else str(t))

    def year(self) -> Slot:
        y = self.rng.randint(1975, 2019)
        return self._num(f"{y}年" if self.chinese else str(y))

    def money(self) -> Slot:
        amount = self._int(11, 990) if self.rng.random() < 0.7 else self.rng.choice([1000, 1500, 3000, 5000])
        if self.chinese:
            return self._num(f"{amount}元")
        return self._num(f"{amount} euros" if self.lang != "de" else f"{amount} Euro")

    def date(self) -> Slot:
        month, day = self.rng.randint(1, 12), self.rng.randint(3, 28)
        if self.lang == "zh":
            return self._num(f"{month}月{day}号")
        if self.lang == "yue":
            return self._num(f"{month}月{day}號")
        name = MONTHS[self.lang][month - 1]
        if self.lang == "de":  # "am 14. März" is said "am vierzehnten März" (the voices read "vierzehn. März")
            return Slot(f"{day}. {name}", f"{num2words(day, lang='de', to='ordinal')}n {name}")
        return self._num({"es": f"{day} de {name}", "fr": f"{day} {name}"}[self.lang])


@lru_cache(maxsize=2)
def _opencc(config: str) -> Any:
    import opencc

    return opencc.OpenCC(f"{config}.json")


_SLOT = re.compile(r"\{(\w+)\}")


@dataclass
class Utterance:
    text: str  # written reference
    spoken: str  # what the voice is given
    language: str
    entities: list[str] = field(default_factory=list)


def fill(template: str, slots: Slots, fixed: dict[str, Slot] | None = None) -> Utterance:
    """The written and spoken forms of one template; `fixed` gives slots their value (the context set's {e})."""
    filled: list[Slot] = []

    def make(m: re.Match[str]) -> str:
        filled.append(fixed[m.group(1)] if fixed and m.group(1) in fixed else getattr(slots, m.group(1))())
        return f"\0{len(filled) - 1}\0"

    skeleton = _SLOT.sub(make, template)

    def render(pick: Callable[[Slot], str]) -> str:
        return re.sub(r"\0(\d+)\0", lambda m: pick(filled[int(m.group(1))]), skeleton)

    return Utterance(render(lambda s: s.written), render(lambda s: s.spoken), slots.lang,
                     [s.written for s in filled if s.entity])


def sentences(language: str, seed: int) -> Iterator[Utterance]:
    """Endless sentences of one language, each template used once per shuffled round."""
    rng, slots = random.Random(f"templates-{language}-{seed}"), Slots(language, seed)
    order: list[str] = []
    while True:
        if not order:
            order = rng.sample(TEMPLATES[language], len(TEMPLATES[language]))
        yield fill(order.pop(), slots)


def english_sentences(seed: int) -> Iterator[Utterance]:
    """English assistant turns of training/data/commands.py (written reference, spoken TTS input)."""
    from training.data.commands import plan

    batch = 0
    while True:
        for cmd in plan(200, seed * 1000 + batch):
            yield Utterance(cmd.text, cmd.say, "en", list(cmd.names))
        batch += 1


# ---------------------------------------------------------------------------------------------------------------
# voices


def speaker_cycle(speakers: range, seed: int) -> Iterator[int]:
    """The speakers in a seeded order, again and again: consecutive utterances never share one."""
    rng = random.Random(f"speakers-{seed}")
    order = rng.sample(list(speakers), len(speakers))
    while True:
        yield from order


@dataclass
class Voice:
    name: str  # "kokoro:zh-317", "pico:fr-FR", "espeak:yue+m3"
    convert: bool = False  # pico through augment.change_voice (another sex): a second speaker of the language
    rate: int = 175  # espeak's words per minute (Kokoro and pico map it to their scales)
    pitch: int = 50


def pick_voice(language: str, rng: random.Random, speakers: Iterator[int], espeak_share: float = ESPEAK_SHARE) -> Voice:
    """The voice of one row. es / fr / de: pico for two thirds of the rows, the second voice of VARIETY for a third
    (or, with espeak_share, espeak-ng for that share: Whisper base cannot follow it)."""
    pitch = rng.randint(35, 65)
    if language == "zh":
        return Voice(f"kokoro:zh-{next(speakers)}", rate=rng.randint(*KOKORO_RATES), pitch=pitch)
    if language == "yue":
        return Voice("espeak:yue" + rng.choice(["", "", "+m3", "+f2"]), rate=rng.randint(135, 165), pitch=pitch)
    if language == "en":
        if rng.random() < 0.5:
            return Voice(f"kokoro:{rng.choice(['us', 'gb'])}-{next(speakers)}", rate=rng.randint(150, 185), pitch=pitch)
        return Voice(f"espeak:{rng.choice(EN_ESPEAK_VOICES)}{rng.choice(ESPEAK_VARIANTS)}", rate=rng.randint(150, 185),
                     pitch=pitch)
    draw = rng.random()
    if draw < espeak_share:
        return Voice(f"espeak:{language}{rng.choice(ESPEAK_VARIANTS)}", rate=rng.randint(140, 170), pitch=pitch)
    if draw < espeak_share + (1 - espeak_share) * SECOND_VOICE_SHARE:
        if VARIETY[language] == "kokoro":
            return Voice(f"kokoro:{language}-{next(speakers)}", rate=rng.randint(*KOKORO_RATES), pitch=pitch)
        return Voice(f"pico:{PICO_VOICES[language]}", convert=True, rate=rng.randint(150, 185), pitch=pitch)
    return Voice(f"pico:{PICO_VOICES[language]}", rate=rng.randint(150, 185), pitch=pitch)


# ---------------------------------------------------------------------------------------------------------------
# synthesis


@lru_cache(maxsize=1)
def _zh_g2p() -> Any:
    import jieba
    from misaki import zh

    jieba.setLogLevel(logging.WARNING)
    return zh.ZHG2P()


def zh_phonemes(text: str) -> str:
    """Mandarin text -> Kokoro's phoneme string (misaki: jieba words, pypinyin, IPA with tone arrows)."""
    return str(_zh_g2p()(text)[0]).strip()


# espeak-ng's tied IPA -> Kokoro's letters, as misaki's EspeakG2P maps them for Kokoro's Spanish and French
_ESPEAK_TO_KOKORO = [("a^ɪ", "I"), ("a^ʊ", "W"), ("d^z", "ʣ"), ("d^ʒ", "ʤ"), ("e^ɪ", "A"), ("o^ʊ", "O"), ("ə^ʊ", "Q"),
                     ("s^s", "S"), ("t^s", "ʦ"), ("t^ʃ", "ʧ"), ("ɔ^ɪ", "Y")]


def espeak_phonemes(text: str, espeak_voice: str) -> str:
    """Text -> Kokoro's phoneme string via espeak-ng's IPA (phrases joined with commas, language switches dropped)."""
    out = subprocess.run(["espeak-ng", "-q", "--ipa", "--tie=^", "-v", espeak_voice, text],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    ps = re.sub(r"\([a-z-]+\)", "", ", ".join(line.strip() for line in out.splitlines() if line.strip()))
    for src, dst in _ESPEAK_TO_KOKORO:
        ps = ps.replace(src, dst)
    return ps.replace("^", "").replace("-", "")


def kokoro_speak(speaker: int, phonemes: str, rate: int) -> np.ndarray:
    """Kokoro saying a phoneme string with blended speaker `speaker`: float32 (N,) at TARGET_RATE, with EDGE_SILENCE
    at both ends; rate on espeak's scale (120-210), as training/data/kokoro.py maps it."""
    session, vocab, _ = _model()
    missing = {c for c in phonemes if c not in vocab}
    if missing:
        raise ValueError(f"kokoro: phonemes {sorted(missing)} of {phonemes!r} are not in its vocabulary")
    tokens = [vocab[c] for c in phonemes][:_MAX_TOKENS]
    if not tokens:
        raise ValueError("kokoro: no phonemes")
    style = speaker_style(speaker)[len(tokens) - 1].reshape(1, 256)
    speed = float(np.interp(rate, [120, 210], [0.85, 1.2]))
    audio = session.run(None, {"tokens": np.array([[0, *tokens, 0]], dtype=np.int64), "style": style,
                               "speed": np.array([speed], dtype=np.float32)})[0]
    samples = resample_poly(np.asarray(audio, np.float32).ravel(), TARGET_RATE // 8000, KOKORO_RATE // 8000)
    pad = np.zeros(int(EDGE_SILENCE * TARGET_RATE), np.float32)
    return np.concatenate([pad, samples.astype(np.float32), pad])


def speak(voice: str, text: str, rate: int, pitch: int) -> np.ndarray:
    """One utterance, float32 (N,) at TARGET_RATE: Kokoro's Mandarin and Spanish here, every other voice through
    training/data/synth.py's tts (Kokoro English, pico, espeak-ng)."""
    engine, name = voice.split(":", 1)
    if engine == "kokoro" and name.startswith("zh-"):
        return kokoro_speak(int(name[3:]), zh_phonemes(text), rate)
    if engine == "kokoro" and name.startswith("es-"):
        return kokoro_speak(int(name[3:]), espeak_phonemes(text, "es"), rate)
    if engine == "pico":
        # a fresh engine each time (15 ms): pico's carries state from one utterance to the next (the same text comes
        # out different the second time), and a seed must give the same audio
        _PICO_ENGINES.pop(name, None)
        return pico_tts(name, text, rate, pitch)
    return tts(voice, text, rate, pitch)


@dataclass
class Job:
    uid: str
    utt: Utterance
    voice: Voice
    seed: int  # voice conversion's draws


def render(job: Job, out_dir: Path) -> dict | None:
    """Synthesise one job into out_dir/wav; its manifest row, or None when the engine failed."""
    voice = job.voice
    try:
        samples = speak(voice.name, job.utt.spoken, voice.rate, voice.pitch)
    except (subprocess.SubprocessError, ValueError, RuntimeError) as exc:
        print(f"{voice.name} failed on {job.utt.spoken!r}: {exc}")
        return None
    peak = float(np.abs(samples).max()) if len(samples) else 0.0
    if peak == 0.0:
        print(f"{voice.name} gave silence for {job.utt.spoken!r}")
        return None
    tags: list[str] = []
    if voice.convert:
        from parselmouth.praat import run as praat

        # Praat's own random numbers (its pitch-synchronous resynthesis draws some) from the job's seed too
        praat(f"random_initializeWithSeedUnsafelyButPredictably ({job.seed % 2**31})")
        try:
            samples, tag = change_voice(samples, np.random.default_rng([job.seed, 2]), cross_sex=True)
        finally:
            praat("random_initializeSafelyAndUnpredictably ()")
        tags = [tag] if tag else []
        peak = float(np.abs(samples).max())
    if peak > 0.99:  # Kokoro and the conversion can overshoot: PCM_16 would wrap
        samples = samples * (0.99 / peak)
    path = out_dir / "wav" / f"{job.uid}.wav"
    sf.write(path, samples, TARGET_RATE, subtype="PCM_16")
    row = {"id": job.uid, "audio": str(path), "text": job.utt.text, "spoken": job.utt.spoken, "voice": voice.name,
           "duration": round(len(samples) / TARGET_RATE, 3), "aug": tags, "language": job.utt.language}
    if job.utt.entities:
        row["entities"] = job.utt.entities
    return row


def make_language_set(out: Path, language: str, count: int, seed: int, espeak_share: float = ESPEAK_SHARE) -> list[dict]:
    rng, stream = random.Random(seed), sentences(language, seed)
    speakers = speaker_cycle(ZH_SPEAKERS, seed)
    rows = []
    for i in range(count):
        utt = next(stream)
        voice = pick_voice(language, rng, speakers, espeak_share)
        row = render(Job(f"{out.name}-{i:04d}", utt, voice, seed * 1_000_003 + i), out)
        if row:
            rows.append(row)
    return rows


def make_lid_set(out: Path, count: int, seed: int, espeak_share: float = ESPEAK_SHARE) -> list[dict]:
    """Rows in English, Mandarin, Spanish, French and German in turn (shuffled per round), each 2-5 s."""
    rng = random.Random(seed)
    streams = {lang: english_sentences(seed) if lang == "en" else sentences(lang, seed) for lang in LID_LANGUAGES}
    speakers = speaker_cycle(ZH_SPEAKERS, seed)
    order: list[str] = []
    rows = []
    for i in range(count):
        if not order:
            order = rng.sample(LID_LANGUAGES, len(LID_LANGUAGES))
        lang = order.pop()
        voice = pick_voice(lang, rng, speakers, espeak_share)
        uid = f"{out.name}-{i:04d}"
        for _ in range(LID_TRIES):
            row = render(Job(uid, next(streams[lang]), voice, seed * 1_000_003 + i), out)
            if row and LID_SECONDS[0] <= row["duration"] <= LID_SECONDS[1]:
                rows.append(row)
                break
        else:
            (out / "wav" / f"{uid}.wav").unlink(missing_ok=True)
            print(f"no {lang} sentence of {LID_SECONDS[0]:g}-{LID_SECONDS[1]:g} s for row {i} in {voice.name}")
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Mandarin context set

# surnames and given-name characters with one reading (pypinyin reads them right out of context)
RARE_SURNAMES = ["欧阳", "司马", "诸葛", "上官", "慕容", "皇甫", "令狐", "宇文", "公孙", "轩辕", "端木", "夏侯", "闻人",
                 "濮阳", "亓", "佘", "仝", "禚", "晁", "甄", "蒯", "靳", "扈", "郦", "蔺", "巫", "冼"]
RARE_GIVEN = ["翀", "珺", "昶", "暄", "祎", "喆", "玥", "骞", "翊", "琰", "煜", "璟", "钰", "彧", "淼", "赟", "堃", "晗",
              "笙", "黛", "岚", "沅", "炜", "瑨", "霁", "泓", "漪", "璎", "蘅", "芷", "琮", "韬", "珈", "昀"]
RARE_PLACES = ["婺源", "儋州", "亳州", "邳州", "兖州", "郯城", "盱眙", "黟县", "鄱阳", "邛崃", "涪陵", "衢州", "濉溪",
               "莒县", "鄞州", "郴州", "嵊州", "滁州", "泸沽湖", "丽水", "六安", "乐清", "东阿"]
PRODUCT_BRANDS = ["青鸾", "墨砚", "云栖", "玄鸟", "星槎", "岫玉", "翠微", "鹊桥", "琅嬛", "扶摇", "鲲鹏", "赤霄", "听澜",
                  "栖霞", "望舒", "羲和"]
PRODUCT_KINDS = ["耳机", "手环", "音箱", "扫地机", "咖啡机", "净水器", "平板", "台灯", "电饭煲", "空气炸锅"]

CONTEXT_TEMPLATES: dict[str, list[str]] = {
    "person": ["给{e}打个电话。", "{e}明天几点到？", "帮我给{e}发条消息，说我晚点到。", "下午{hour}和{e}开会。",
               "把{e}的电话号码发给我。", "提醒我明天给{e}回电话。", "{e}的生日是{date}。"],
    "place": ["导航到{e}。", "{e}明天天气怎么样？", "帮我订一张{date}去{e}的火车票。", "从这里到{e}要多久？",
              "{e}附近有什么好吃的？", "查一下{e}的酒店。"],
    "product": ["在购物车里加一个{e}。", "{e}现在多少钱？", "我的{e}什么时候到？", "打开{e}。",
                "把{e}的音量调到{small}。", "{e}的电池还剩多少？"],
}
# plain turns for distractor rows: no name, place or product
PLAIN_ZH = ["把音量调到{small}。", "设一个早上{half}的闹钟。", "定一个{minutes}的计时器。", "明天会下雨吗？",
            "播放一些轻松的音乐。", "现在几点了？", "把客厅的灯关掉。", "提醒我{date}交电费。", "给我讲个笑话。",
            "把空调温度调到{temp}。", "今天有什么新闻？", "下一首歌。"]
ZH_ASSISTANT_TURNS = {
    "person": ["我在你的通讯录里找到了{e}", "你明天要和{e}开会", "{e}给你发了一条消息", "{e}刚才给你打过电话"],
    "place": ["你上次去的是{e}", "离你最近的门店在{e}", "你的航班明天飞{e}", "{e}今天有小雨"],
    "product": ["我已经把{e}加到你的清单里了", "你订的{e}已经发货了", "{e}正在打折", "{e}已经连上了"],
}
ZH_USER_TURNS = ["我想找{e}", "那{e}呢", "晚点提醒我{e}的事", "{e}怎么样", "跟我说说{e}"]
ZH_FILLER_TURNS = ["你想打给谁", "好的，消息要写什么", "好的，还有什么需要帮忙的吗"]
ZH_PROMPTS = ["手机上的语音助手", "车载语音助手", "厨房里的智能音箱", "药店的客服助手", "旅行预订助手", ""]


class RareEntities:
    """Uncommon Chinese names, places and (made-up) product names."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"entities-{seed}")

    def person(self) -> str:
        given = "".join(self.rng.sample(RARE_GIVEN, self.rng.choice([1, 2, 2])))
        return self.rng.choice(RARE_SURNAMES) + given

    def place(self) -> str:
        return self.rng.choice(RARE_PLACES)

    def product(self) -> str:
        return self.rng.choice(PRODUCT_BRANDS) + self.rng.choice(PRODUCT_KINDS)

    def any(self) -> tuple[str, str]:
        kind = self.rng.choice(["person", "person", "place", "product"])
        return getattr(self, kind)(), kind


def zh_dialogue_context(rng: random.Random, ents: RareEntities, entity: tuple[str, str] | None,
                        n_distractors: int) -> tuple[dict, list[str]]:
    """training/data/contexts.py's dialogue context in Mandarin: history turns, hotwords, a prompt, and every entity it
    mentions (for insertion metrics)."""
    mentions = [ents.any() for _ in range(n_distractors)]
    if entity:
        mentions.insert(rng.randint(0, len(mentions)), entity)
    turns: list[str] = []
    hotwords: list[str] = []
    places: list[str] = []  # extra places the assistant named: distractors too
    for name, kind in mentions:
        where = rng.random()
        if where < 0.25:
            hotwords.append(name)
        else:
            turns.append(rng.choice(ZH_ASSISTANT_TURNS[kind] if where < 0.7 else ZH_USER_TURNS).format(e=name))
        if rng.random() < 0.3:
            places.append(ents.place())
            turns.append(rng.choice(ZH_ASSISTANT_TURNS["place"]).format(e=places[-1]))
        if rng.random() < 0.2:
            turns.append(rng.choice(ZH_FILLER_TURNS))
    context = {"history": turns, "hotwords": hotwords, "prompt": rng.choice(ZH_PROMPTS)}
    return context, [m for m, _ in mentions] + places


def make_context_zh_set(out: Path, count: int, seed: int) -> list[dict]:
    """Keyword rows (a rare entity said and held in the hotwords or history) and, every third row, distractor rows
    (the context names entities the utterance does not say), in Kokoro Mandarin speakers 350-399."""
    rng, ents, slots = random.Random(seed), RareEntities(seed), Slots("zh", seed)
    speakers = speaker_cycle(CONTEXT_ZH_SPEAKERS, seed)
    rows = []
    for i in range(count):
        distractor = i % 3 == 2
        if distractor:
            utt = fill(rng.choice(PLAIN_ZH), slots)
            ctx, mentions = zh_dialogue_context(rng, ents, None, rng.randint(2, 4))
            while any(m in utt.text for m in mentions):
                ctx, mentions = zh_dialogue_context(rng, ents, None, rng.randint(2, 4))
            keyword = ""
        else:
            name, kind = ents.any()
            utt = fill(rng.choice(CONTEXT_TEMPLATES[kind]), slots, {"e": Slot(name, name, entity=True)})
            ctx, mentions = zh_dialogue_context(rng, ents, (name, kind), rng.randint(1, 3))
            keyword = name
        voice = Voice(f"kokoro:zh-{next(speakers)}", rate=rng.randint(*KOKORO_RATES))
        row = render(Job(f"{out.name}-{i:04d}", utt, voice, seed * 1_000_003 + i), out)
        if row is None:
            continue
        row.update({**ctx, "keywords": [keyword] if keyword else [], "distractor": distractor,
                    "context_entities": [m for m in mentions if m != keyword]})
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------------------------


def build(out: Path, kind: str, count: int, seed: int, espeak_share: float = ESPEAK_SHARE) -> list[dict]:
    """Make one set (kind: a language of LANGUAGES, "lid" or "context_zh") into out; its rows, also written to
    out/manifest.jsonl."""
    (out / "wav").mkdir(parents=True, exist_ok=True)
    if kind in ("zh", "es", "lid", "context_zh"):
        ensure_model()
    if kind == "lid":
        rows = make_lid_set(out, count, seed, espeak_share)
    elif kind == "context_zh":
        rows = make_context_zh_set(out, count, seed)
    elif kind in LANGUAGES:
        rows = make_language_set(out, kind, count, seed, espeak_share)
    else:
        raise ValueError(f"unknown set {kind!r}")
    (out / "manifest.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return rows


def main() -> None:
    pin_hash_seed()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--language", choices=LANGUAGES, help="one language's dev set")
    which.add_argument("--lid", action="store_true", help="language-ID set: en, zh, es, fr, de in turn, 2-5 s each")
    which.add_argument("--context-zh", action="store_true", help="Mandarin context set (keyword and distractor rows)")
    ap.add_argument("--count", type=int, default=None, help="rows (default: 120; yue 60, lid 200, context-zh 100)")
    ap.add_argument("--seed", type=int, default=None, help="default: 401-405 by language, lid 406, context-zh 407")
    ap.add_argument("--espeak-share", type=float, default=ESPEAK_SHARE,
                    help="es / fr / de rows in espeak-ng voices (default 0: Whisper base cannot follow them)")
    args = ap.parse_args()
    if not 0.0 <= args.espeak_share <= 1.0:
        ap.error(f"--espeak-share must be within 0..1, got {args.espeak_share}")
    kind = "lid" if args.lid else "context_zh" if args.context_zh else args.language
    count, seed = DEFAULTS[kind]
    count = count if args.count is None else args.count
    seed = seed if args.seed is None else args.seed
    start = time.monotonic()
    rows = build(args.out, kind, count, seed, args.espeak_share)
    took = time.monotonic() - start
    langs = sorted({r["language"] for r in rows})
    print(f"{len(rows)} rows ({', '.join(langs)}) in {args.out}: {sum(r['duration'] for r in rows) / 60:.1f} min of audio, "
          f"{took / max(len(rows), 1):.2f} s per utterance")


if __name__ == "__main__":
    main()
