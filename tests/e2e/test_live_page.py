"""The live page (services/http/static) in headless Chromium: a fake microphone plays a sample, the page streams it
over /v1/stream to the embedded server with the real default bundle, and shows interims, the final and the
session's history. SEEDASR_SCREENSHOT=1 also rewrites docs/live-page.png."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.e2e
CHROMIUM = Path("/usr/bin/chromium")
SAMPLE = ROOT / "samples" / "dialogue" / "user-2.wav"  # "remind me to stop at kilbride street on the way home"
SCREENSHOT = ROOT / "docs" / "live-page.png"
RATE = 16_000

# Records every text #interim shows, however briefly (the page itself knows nothing of this).
RECORD_INTERIMS = """
window.__interims = [];
document.addEventListener("DOMContentLoaded", () => {
  const el = document.getElementById("interim");
  new MutationObserver(() => { if (el.textContent) window.__interims.push(el.textContent); })
    .observe(el, {childList: true, characterData: true, subtree: true});
});
"""


@pytest.fixture
def server(tmp_path: Path):
    from services.app import serve_embedded
    from shared.settings import load_settings

    settings = load_settings(model=str(ROOT / "bundles" / "default"), rl_store=str(tmp_path / "rl.jsonl"))
    running = serve_embedded(settings, port=free_port(), http_port=0)
    try:
        yield running
    finally:
        running.stop(1)


@pytest.fixture
def microphone(tmp_path: Path) -> Path:
    """The sample with 1 s of silence before and 3 s after (Chromium loops the file; the VAD ends a turn after
    600 ms of silence), as 16-bit PCM WAV, which Chromium's fake capture device reads."""
    speech, rate = sf.read(SAMPLE, dtype="int16")
    assert rate == RATE and speech.ndim == 1
    wav = tmp_path / "microphone.wav"
    sf.write(wav, np.concatenate([np.zeros(RATE, np.int16), speech, np.zeros(3 * RATE, np.int16)]), RATE,
             subtype="PCM_16")
    return wav


@pytest.fixture
def browser(microphone: Path):
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the live page's test drives Debian's Chromium (apt-get install chromium)")
    args = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}", "--autoplay-policy=no-user-gesture-required",
            "--no-sandbox"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            yield browser
        finally:
            browser.close()


def test_live_page_streams_the_microphone_and_shows_the_session(server, browser) -> None:
    base = f"http://127.0.0.1:{server.http_port}"
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    page.set_default_timeout(15_000)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(RECORD_INTERIMS)

    page.goto(base + "/")
    page.wait_for_selector("#history-empty:not([hidden])")  # a new session: no history yet
    session_id = page.input_value("#session")
    assert session_id
    page.fill("#hotwords", "Kilbride Street")
    page.click("#start")
    page.wait_for_function("document.getElementById('status').textContent === 'listening'")

    first = page.locator("#transcript li").first
    first.wait_for(timeout=60_000)
    assert "stop at kilbride street" in first.inner_text().lower()
    assert first.locator(".confidence").inner_text().endswith("%")
    interims = page.evaluate("window.__interims")
    assert interims and any("remind" in t.lower() for t in interims), interims

    history = page.locator("#history li")  # refreshed after the final
    history.first.wait_for()
    assert "kilbride street" in history.first.inner_text().lower()
    if os.environ.get("SEEDASR_SCREENSHOT") == "1":
        page.evaluate("document.activeElement.blur()")
        page.screenshot(path=str(SCREENSHOT))

    page.click("#start")  # stop: {"type": "end"}, then the server closes
    page.wait_for_function("document.getElementById('status').textContent === 'stopped'")
    assert page.inner_text("#start") == "Start"

    page.reload()  # the session id is kept, and its history is loaded again
    assert page.input_value("#session") == session_id
    history.first.wait_for()
    assert "stop at kilbride street" in history.first.inner_text().lower()
    assert "user" in history.first.inner_text().lower()

    assert not errors, errors
    outside = [u for u in requests if urlparse(u).netloc != urlparse(base).netloc and not u.startswith("data:")]
    assert not outside, f"the page fetched from elsewhere: {outside}"
    page.close()
