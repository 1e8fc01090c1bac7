"""What `ima fleet list` shows: the fleet's users, and the workers `ima serve` last saw.

The supervisor writes what it sees (`members.json`, every 2 s) beside the credentials;
this joins the two, so a registered worker that never joined shows too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ima.fleet.credentials import Credentials

STATE_FILE = "members.json"
WRITER_METRICS = "writer.prom"


def state_file(data_dir: Path) -> Path:
    return Credentials(data_dir).dir / STATE_FILE


def reputation_file(data_dir: Path, side: str) -> Path:
    """Where a supervisor keeps its workers' reputations across restarts: `side` is the
    process it runs in (`api`, which composes and generates, or `writer`, which embeds)."""
    return Credentials(data_dir).dir / f"reputations-{side}.json"


def writer_metrics_file(data_dir: Path) -> Path:
    """Where the writer process, which embeds through the fleet, leaves its metrics for
    the API process's /metrics (Prometheus text format)."""
    return Credentials(data_dir).dir / WRITER_METRICS


def listing(data_dir: Path) -> dict[str, Any]:
    """Workers by name: credentials (registered, revoked) and the last state seen."""
    credentials = Credentials(data_dir)
    try:
        seen = json.loads(state_file(data_dir).read_text())
    except (OSError, ValueError):
        seen = {"at": None, "workers": []}
    workers: dict[str, dict[str, Any]] = {}
    for cred in credentials.list():
        workers[cred.name] = {"name": cred.name, "registered": cred.created,
                              "revoked": cred.revoked, "state": "never seen"}  # fmt: skip
    for worker in seen.get("workers", []):
        workers.setdefault(worker["name"], {"registered": None, "revoked": None})
        workers[worker["name"]].update(worker)
    return {"seen_at": seen.get("at"), "workers": sorted(workers.values(), key=lambda w: w["name"])}


def lines(report: dict[str, Any]) -> list[str]:
    """The listing as a table for a terminal."""
    now = time.time()
    out = [f"{'NAME':<24} {'KINDS':<14} {'STATE':<12} {'JOBS/S':>7} {'REPUTATION':>10}  LAST SEEN"]
    for w in report["workers"]:
        state = "revoked" if w.get("revoked") else w.get("state", "")
        seen = f"{now - w['last_seen']:.0f} s ago" if w.get("last_seen") else "-"
        out.append(f"{w['name']:<24} {','.join(w.get('kinds', [])) or '-':<14} {state:<12} "
                   f"{w.get('jobs_per_s', 0):>7} {w.get('reputation', '-'):>10}  {seen}"
                   + (f"  ({w['reason']})" if w.get("reason") else ""))  # fmt: skip
    return out
