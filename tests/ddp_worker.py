"""Run by ``torchrun`` in tests/test_train.py: train the tiny recipe, report what each rank saw."""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from edgeseg.recipe import recipe_from_dict  # noqa: E402
from edgeseg.train.loop import fit  # noqa: E402

from conftest import tiny_recipe_dict  # noqa: E402

torch.set_num_threads(1)
out = Path(sys.argv[1])
result = fit(recipe_from_dict(tiny_recipe_dict(train={"epochs": 2, "batch_size": 2})), out, show_progress=False)
# One file per rank: the test compares what each process saw.
(out / f"rank{dist.get_rank()}.json").write_text(json.dumps({"history": result.history, "best_miou": result.best_miou}))
