"""edgeseg: fine-tune, compress, export and benchmark segmentation models for edge devices.

Importing the package is cheap on purpose: torch and friends load inside the functions that
need them, so ``edgeseg --help`` answers at once.
"""

__version__ = "0.2.0"
