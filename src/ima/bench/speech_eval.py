"""Word error rate of `ima`'s speech recognizer on recorded speech, beside a baseline.

Reads a set built by `python -m ima.bench.speech_set` and transcribes every recording
with Whisper base (`ima.voice.stt`, language given as English) and with PocketSphinx's
bundled US English model (the baseline: an older recognizer from the same wheel that
ships the pronunciation dictionary). Both hypotheses and references are normalized
alike (lower case, no punctuation, numbers as words, "mr" read as "mister").

Run: `python -m ima.bench.speech_eval SET_DIR` (prints JSON).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ima.voice.decode import RATE, decode
from ima.voice.phonemes import number_words

_SAID = {"mr": "mister", "mrs": "missus", "dr": "doctor"}


def normalize(text: str) -> list[str]:
    words = []
    for token in re.findall(r"[a-z0-9']+", text.lower().replace("-", " ")):
        token = token.strip("'")
        if token.isdigit():
            words.extend(number_words(int(token[:12])).split())
        elif token:
            words.append(_SAID.get(token, token))
    return words


def errors(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level edit distance (substitutions, deletions, insertions)."""
    previous = list(range(len(hypothesis) + 1))
    for i, word in enumerate(reference, 1):
        current = [i]
        for j, heard in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (word != heard)))  # fmt: skip
        previous = current
    return previous[-1]


def _pocketsphinx() -> Any:
    from pocketsphinx import Decoder

    decoder = Decoder(loglevel="FATAL")

    def transcribe(samples: np.ndarray) -> str:
        decoder.start_utt()
        decoder.process_raw((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes(),
                            full_utt=True)  # fmt: skip
        decoder.end_utt()
        hyp = decoder.hyp()
        return "" if hyp is None else hyp.hypstr

    return transcribe


def run(folder: Path) -> dict[str, Any]:
    from ima.voice.stt import Transcriber

    whisper = Transcriber()
    systems = {"whisper-base": lambda s: whisper.transcribe(s, language="en").text,
               "pocketsphinx-en-us": _pocketsphinx()}  # fmt: skip
    items = [json.loads(line) for line in (folder / "set.jsonl").read_text().splitlines()]
    report: dict[str, Any] = {"utterances": len(items), "systems": {}}
    audio = {i["file"]: decode((folder / i["file"]).read_bytes(), max_seconds=60) for i in items}
    report["audio_seconds"] = round(sum(a.seconds for a in audio.values()), 1)
    for name, transcribe in systems.items():
        wrong, total, spent = defaultdict(int), defaultdict(int), 0.0
        misses = []
        for item in items:
            started = time.perf_counter()
            heard = transcribe(audio[item["file"]].samples)
            spent += time.perf_counter() - started
            reference = normalize(item["text"])
            count = errors(reference, normalize(heard))
            for group in (item["group"], "all"):
                wrong[group] += count
                total[group] += len(reference)
            if count:
                misses.append({"file": item["file"], "said": item["text"], "heard": heard})
        report["systems"][name] = {
            "wer": {g: round(wrong[g] / total[g], 4) for g in total},
            "real_time_factor": round(spent / report["audio_seconds"], 3),
            "misses": misses,
        }
    report["sample_rate"] = RATE
    return report


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    print(json.dumps(run(Path(argv[0])), indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
