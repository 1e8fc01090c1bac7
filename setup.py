"""The one compiled part: duplicate fingerprints (`src/ima/ingest/_fingerprints.c`).
Everything else is declared in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "ima.ingest._fingerprints",
            ["src/ima/ingest/_fingerprints.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall"],
        )
    ]
)
