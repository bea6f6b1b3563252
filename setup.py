"""Build hook for the optional compiled kernels; everything else is in pyproject.toml.

``wsovvis.evaluation._rle_kernel`` (sources in ``wsovvis/evaluation/csrc``) is plain C against the Python headers
(no numpy C API). It is optional: without a compiler the install still succeeds (with a warning) and the evaluator
falls back to its pycocotools path, which gives the same numbers. ``wsovvis.data._rle_encode``
(``wsovvis/data/csrc/rle_encode.c``, same rules) encodes id maps for the converter, whose numpy encoder is the
fallback with identical output.
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
        ),
        Extension(
            "wsovvis.data._rle_encode",
            sources=["wsovvis/data/csrc/rle_encode.c"],
            optional=True,
        ),
    ]
)
