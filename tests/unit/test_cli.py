"""`seedasr transcribe` follows its documented contract (README), manifest mode included."""

import json
import subprocess
import sys

from tests.conftest import ROOT, tone, wav_bytes


def run_cli(*args: str, env_model: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, env={"PATH": "/usr/bin:/bin", "SEEDASR_MODEL": env_model, "HOME": "/tmp"})


def test_manifest_mode_keeps_order_and_reports_bad_lines(tmp_path, tiny_bundle) -> None:
    good = tmp_path / "a.wav"
    good.write_bytes(wav_bytes(tone(1.0)))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    manifest = tmp_path / "in.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in [
        {"id": "u1", "audio": str(good), "history": ["call zorblatt"], "hotwords": ["zorblatt"], "language": "en"},
        {"id": "u2", "audio": str(bad)},
        {"audio": str(good)},
        {"id": "u4", "audio": str(tmp_path / "missing.wav")},
        {"id": "u5", "audio": str(good), "history": [{"role": "user", "text": "hi"}]},
        "a.wav",  # valid JSON, not an object
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    proc = run_cli("transcribe", "--manifest", str(manifest), "--output", str(out), env_model=str(tiny_bundle))
    assert proc.returncode == 3, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["u1", "u2", "3", "u4", "u5", "6"]
    assert {"id", "audio", "text", "normalized_text", "language", "language_probability", "confidence", "words",
            "alternatives"} == set(rows[0])
    assert set(rows[1]) == set(rows[0]) | {"error"}  # a failed line has every field, empty, and its error
    assert rows[0]["alternatives"] and {"text", "normalized_text", "confidence", "score"} == set(rows[0]["alternatives"][0])
    assert rows[0]["text"] == rows[0]["alternatives"][0]["text"]
    assert "cannot decode" in rows[1]["error"] and "not found" not in rows[1]["error"]
    assert "missing.wav" in proc.stderr
    assert rows[4]["error"] == "\"history\" must be a list of strings"
    assert "JSON object" in rows[5]["error"] and rows[5]["audio"] is None
    no_ctx = tmp_path / "out2.jsonl"
    proc = run_cli("transcribe", "--manifest", str(manifest), "--output", str(no_ctx), "--no-context",
                   env_model=str(tiny_bundle))
    assert len(no_ctx.read_text().splitlines()) == 6


def test_file_mode_and_usage_errors(tmp_path, tiny_bundle) -> None:
    wav = tmp_path / "x.wav"
    wav.write_bytes(wav_bytes(tone(0.8)))
    proc = run_cli("transcribe", str(wav), env_model=str(tiny_bundle))
    assert proc.returncode == 0 and proc.stdout.startswith(str(wav) + "\t")
    assert run_cli("transcribe", env_model=str(tiny_bundle)).returncode == 2
    missing = run_cli("transcribe", str(wav), env_model=str(tmp_path / "no-bundle"))
    assert missing.returncode != 0 and "lacks config.json" in missing.stderr
