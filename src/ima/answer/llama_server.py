"""llama.cpp with plain CPU buffers, in this process or as its OpenAI-compatible server.

On a CPU that reports AMX, llama.cpp packs a model's weights for AMX and multiplies them
with its AMX kernel, and on this project's machines that kernel crashed the process (a
segmentation fault in `ggml_backend_amx_mul_mat`, llama-cpp-python 0.3.36, SmolLM2-135M
Q4_1, for some prompts and not others), taking `ima` or the server down with it. The
model parameter `use_extra_bufts` turns such packing off (and with it the AVX2 repacking
of some quantizations, a speed-up these small models do without). llama-cpp-python takes
no argument for it, so `plain_cpu_buffers` wraps its default model parameters, once for
the process. `python -m ima.answer.llama_server ARGS` is `python -m llama_cpp.server
ARGS` with that done first.
"""

from __future__ import annotations

import runpy
from typing import Any


def plain_cpu_buffers() -> None:
    """Make every model llama-cpp-python loads from now on use plain CPU buffers."""
    import llama_cpp.llama_cpp as library

    defaults = library.llama_model_default_params
    if getattr(defaults, "plain", False):
        return

    def plain() -> Any:
        params = defaults()
        if hasattr(params, "use_extra_bufts"):  # llama.cpp from late 2025 on
            params.use_extra_bufts = False
        return params

    plain.plain = True  # type: ignore[attr-defined]
    library.llama_model_default_params = plain


if __name__ == "__main__":
    plain_cpu_buffers()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
