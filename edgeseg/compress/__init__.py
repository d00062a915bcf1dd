"""Compression: INT8 quantization (NNCF) and pruning, producing models the exporters consume."""
