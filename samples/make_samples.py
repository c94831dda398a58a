"""Regenerate the bundled sample dialogue (flite slt: a reserved voice, never used for training).

    python samples/make_samples.py
"""

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import soundfile as sf

from shared.audio import decode_audio

HERE = Path(__file__).resolve().parent
DIALOGUE: dict[str, Any] = {
    "session_id": "demo-dialogue",
    "steps": [
        {"role": "assistant", "text": "I found two contacts, Siobhan McGillicuddy and Tomasz Wrobel."},
        {"role": "user", "audio": "dialogue/user-1.wav", "reference": "call tomasz wrobel please"},
        {"role": "assistant", "text": "Calling Tomasz Wrobel. Your pharmacy on Kilbride Street closes at six."},
        {"role": "user", "audio": "dialogue/user-2.wav", "reference": "remind me to stop at kilbride street on the way home",
         "hotwords": ["Kilbride Street"]},
    ],
}


def main() -> None:
    for step in DIALOGUE["steps"]:
        if "audio" in step:
            with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
                subprocess.run(["flite", "-voice", "slt", "-t", step["reference"], "-o", tmp.name], check=True)
                sf.write(HERE / step["audio"], decode_audio(Path(tmp.name).read_bytes()), 16_000, subtype="PCM_16")
    (HERE / "dialogue.json").write_text(json.dumps(DIALOGUE, indent=2) + "\n")


if __name__ == "__main__":
    main()
