"""The per-language evaluation: CER for Chinese and WER elsewhere under one normaliser per language, Cantonese
named as Chinese counts as identified, keywords found in Chinese by characters, every way a row is recognised
lands in its own column, and `make eval` routes a non-English set to that table instead of the English one."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from training.eval.context_scoring import keyword_hit, score_context
from training.eval.languages import error_rate, eval_language_set, language_table, lid_table, right_language, set_language


def test_chinese_is_scored_by_characters_and_other_languages_by_words() -> None:
    assert error_rate(["请给王小明打电话。"], ["请给王晓明打电话"], "zh") == pytest.approx(1 / 8)  # one of 8 characters
    assert error_rate(["Llama a María a las 7."], ["llama a maría a las siete"], "es") == 0.0  # accents kept
    assert error_rate(["Ruf Jürgen um 8 Uhr an."], ["ruf jurgen um acht uhr an"], "de") == pytest.approx(1 / 6)  # ü is not u


def test_cantonese_named_as_chinese_is_identified() -> None:
    assert right_language("zh", "yue") and right_language("yue", "yue") and not right_language("zh", "en")


def test_chinese_keywords_are_found_as_runs_of_characters() -> None:
    assert keyword_hit("王小明", "请给王小明打电话", "zh") and not keyword_hit("王晓明", "请给王小明打电话", "zh")
    assert keyword_hit("Kilbride Street", "stop at kilbride street") and not keyword_hit("roy", "a royal visit")
    rows = [{"language": "zh", "text": "导航到鼓浪屿", "keywords": ["鼓浪屿"]},
            {"language": "zh", "text": "今天天气怎么样", "distractor": True, "context_entities": ["鼓浪屿"]}]
    score = score_context(rows, ["导航到鼓浪屿", "今天天气怎么样鼓浪屿"])
    assert score["keyword_recall"] == 1.0 and score["distractor_insertions"] == 1.0


class FakeOurs:
    """Answers the reference, in the row's language when told and Chinese when it must identify."""

    last_cpu_s = 0.5

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.by_audio = {r["audio"]: r for r in rows}

    def recognize(self, audio: str, no_context: bool = False, language: str = "") -> Any:
        row = self.by_audio[audio]
        text = row["text"] if language else "错"
        return SimpleNamespace(alternatives=[SimpleNamespace(text=text)], language=language or "zh")


class FakeWhisper:
    last_language = "en"

    def __call__(self, audio: str, prompt: str = "", language: Any = "en", candidates: Any = ()) -> str:
        self.last_language = language or "es"
        return "hola" if language is None else "hola mundo"


def test_each_way_of_recognising_a_row_has_its_own_column() -> None:
    rows = [{"audio": "a.wav", "text": "Hola mundo.", "duration": 2.0, "language": "es"},
            {"audio": "b.wav", "text": "Hola mundo.", "duration": 2.0, "language": "es"}]
    res = eval_language_set("dev_es", rows, FakeOurs(rows), FakeWhisper())  # type: ignore[arg-type]
    assert res.rate("ours given") == 0.0 and res.rate("ours identified") == 1.0
    assert res.rate("fw given") == 0.0 and res.rate("fw identified") == 0.5
    assert res.lid("ours") == 0.0 and res.lid("fw") == 1.0
    row = language_table([res], peer=True)[2]
    assert row.startswith("| dev_es | es | 2 | WER | 0.0% | 0.0% | 100.0% | 50.0% | 0.0% | 100.0% | 0.250 |")
    assert lid_table(res, peer=True)[-1] == "| all | 2 | 0.0% | 100.0% |"


def test_a_set_states_its_language_in_its_rows(tmp_path: Path) -> None:
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"text": "你好", "language": "zh"}) + "\n")
    assert set_language(tmp_path / "manifest.jsonl") == "zh"
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"text": "hello"}) + "\n")
    assert set_language(tmp_path / "manifest.jsonl") is None


def test_the_section_replaces_its_old_self_in_the_card() -> None:
    from training.eval.languages import with_section

    card = "# Evaluation\n\n## WER\n\nx\n\n## Long-form\n\ny\n"
    once = with_section(card, "## Languages\n\nfirst\n")
    assert once == "# Evaluation\n\n## WER\n\nx\n\n## Languages\n\nfirst\n\n## Long-form\n\ny\n"
    assert with_section(once, "## Languages\n\nsecond\n") == once.replace("first", "second")
    assert with_section("# E\n", "## Languages\n\nz\n") == "# E\n\n## Languages\n\nz\n"
