"""Choosing what ships: ``gates`` (a build's pass/fail limits) and ``decide`` (the most accurate
artifact within a latency, memory, size and mIoU budget, with margins, noise and ties)."""
