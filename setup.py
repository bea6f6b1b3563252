"""Build hook for the optional compiled evaluation kernel; everything else is in pyproject.toml.

``wsovvis.evaluation._rle_kernel`` is plain C against the Python headers (no numpy C API). It is optional:
without a compiler the install still succeeds and the evaluator falls back to pycocotools (same numbers).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wsovvis.evaluation._rle_kernel",
            sources=["wsovvis/evaluation/_rle_kernel.c"],
            optional=True,
        )
    ]
)
