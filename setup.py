"""Build hook for the optional compiled evaluation kernel; everything else is in pyproject.toml.

``wsovvis.evaluation._rle_kernel`` (sources in ``wsovvis/evaluation/csrc``) is plain C against the Python headers
(no numpy C API). It is optional: without a compiler the install still succeeds (with a warning) and the evaluator
falls back to its pycocotools path, which gives the same numbers.
"""

from glob import glob

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wsovvis.evaluation._rle_kernel",
            sources=sorted(glob("wsovvis/evaluation/csrc/*.c")),
            depends=sorted(glob("wsovvis/evaluation/csrc/*.h")),
            optional=True,
        )
    ]
)
