"""flarelib: the library behind flare-study (FLARE24 Task 3: CT-labelled, MR-unlabelled segmentation).

Arrays are (z, y, x); spacings say their order in the name (``spacing_zyx``) and are in mm.
Labels are uint8 with FLARE24 ids (see :mod:`flarelib.labels`).
"""

import os as _os

# torch's oneDNN caps its CPU kernels at AVX512-BF16 unless the user chose otherwise (before any
# convolution runs): its AMX kernels crash (SIGSEGV) or hang in the bf16 backward pass of a
# convolution with few input channels, the U-Net's first, on AMX CPUs (flarelib.precision).
_os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")

__version__ = "0.1.0"
