"""What every worker process `ima` starts does first.

Worker processes (ingest's preparers, the answerers) are started by spawning, and
a spawned child is not told when its parent dies: killed with SIGKILL, or ended by
uvicorn re-raising the signal it caught, the parent leaves them running, holding
memory and the parent's stderr. Each therefore watches its parent and ends with it.
"""

from __future__ import annotations

import os
import threading
import time


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def exit_with_parent() -> None:
    """Start watching: this process exits within a second of its parent's end."""
    threading.Thread(
        target=_exit_with, args=(os.getppid(),), name="ima-parent-watch", daemon=True
    ).start()
