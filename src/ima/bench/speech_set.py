"""Build the recorded-speech set that `python -m ima.bench.speech_eval` scores.

Real recordings with their transcripts, from two public repositories (not part of
`ima`; pass checkouts of them):

- PocketSphinx's test data (`cmusphinx/pocketsphinx`, BSD-2-Clause): five sentences
  of a LibriVox reading of *Sense and Sensibility* (public domain) and five spoken
  card names (`test/data/librivox`, `test/data/cards`).
- The Free Spoken Digit Dataset (`Jakobovski/free-spoken-digit-dataset`, CC BY-SA
  4.0): the first recording of each digit by each of its six speakers (60 words).

Run: `python -m ima.bench.speech_set POCKETSPHINX_DIR FSDD_DIR OUT_DIR`; it writes
the WAV files and `set.jsonl` (`{"file", "text", "group"}` a line) into OUT_DIR.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

DIGITS = "zero one two three four five six seven eight nine".split()
_LINE = re.compile(r"<s>(.*)</s>\s*\((\S+)\)")


def _sphinx(root: Path, folder: str, transcripts: str) -> list[tuple[Path, str]]:
    data = root / "test" / "data" / folder
    found = []
    for line in (data / transcripts).read_text(encoding="utf-8").splitlines():
        if match := _LINE.search(line):
            found.append((data / f"{match.group(2)}.wav", " ".join(match.group(1).split())))
    return found


def build(pocketsphinx: Path, fsdd: Path, out: Path) -> int:
    """Copy the recordings into `out` and write `set.jsonl`; returns how many."""
    items = [(p, t, "librivox") for p, t in _sphinx(pocketsphinx, "librivox", "transcription")]
    items += [(p, t, "cards") for p, t in _sphinx(pocketsphinx, "cards", "cards.transcription")]
    speakers = sorted({p.stem.split("_")[1] for p in (fsdd / "recordings").glob("*_*_0.wav")})
    for speaker in speakers:
        for digit, word in enumerate(DIGITS):
            items.append((fsdd / "recordings" / f"{digit}_{speaker}_0.wav", word, "digits"))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "set.jsonl", "w", encoding="utf-8") as listing:
        for path, text, group in items:
            name = f"{group}-{path.name}"
            shutil.copyfile(path, out / name)
            listing.write(json.dumps({"file": name, "text": text, "group": group}) + "\n")
    return len(items)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    count = build(Path(argv[0]), Path(argv[1]), Path(argv[2]))
    print(f"{count} recordings in {argv[2]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
