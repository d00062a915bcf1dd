"""The one table of input limits: every input edgeseg reads is bounded before it is allocated.

Each limit is checked where the input is first read (the recipe loader, the sweep grid, the
image decoder, the remote bench's reply), and the README's limits table is this table (a test
compares them). Torch-free: the recipe loader and ``edgeseg --help`` read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeseg.registry import table


@dataclass(frozen=True)
class Limit:
    """One bound: its value, the unit it counts, what it applies to and the exit code past it."""

    name: str
    value: int
    unit: str
    applies_to: str
    exit_code: int
    why: str


LIMITS = table(
    (
        Limit(
            "recipe_bytes",
            1 << 20,
            "bytes",
            "a recipe file (a FIFO or device is read no further)",
            2,
            "a full recipe is a few KB",
        ),
        Limit(
            "recipe_values",
            10_000,
            "values",
            "a recipe after YAML aliases, merge keys (`<<`) and every --set / --grid value",
            2,
            "a full recipe has a few hundred; an alias bomb would expand to billions",
        ),
        Limit(
            "recipe_depth",
            32,
            "levels",
            "nesting of mappings and lists in a recipe or a --set value",
            2,
            "recipes are a few levels deep",
        ),
        Limit(
            "name_chars",
            100,
            "characters",
            "a recipe name, and a sweep variant's directory name",
            2,
            "names become directory names (255 bytes on most file systems)",
        ),
        Limit("size_side", 8192, "pixels", "each side of every [H, W] in a recipe", 2, "8K frames fit"),
        Limit(
            "sweep_variants",
            256,
            "variants",
            "the combinations of a sweep grid",
            2,
            "each variant is a build; 256 builds are days on one machine",
        ),
        Limit(
            "sweep_jobs",
            32,
            "builds",
            "--jobs / sweep.jobs (and never more than the variants)",
            2,
            "each build uses every core",
        ),
        Limit(
            "image_pixels",
            64_000_000,
            "pixels",
            "an image or mask edgeseg decodes: a dataset's samples, predict's inputs",
            10,
            "checked from the header before decoding: a 300 KB PNG can decode to 6 GB",
        ),
        Limit(
            "synthetic_images",
            100_000,
            "images",
            "data.synthetic.num_train / num_val",
            2,
            "the synthetic scenes are generated in memory",
        ),
        Limit(
            "remote_result_bytes",
            64 << 20,
            "bytes",
            "the result.json a remote bench device sends back",
            12,
            "a bench result is tens of KB",
        ),
    ),
    "limit",
)


def limit(name: str) -> int:
    """The value of limit ``name`` (a KeyError is a programming error: the table is fixed)."""
    return LIMITS[name].value


def markdown_table() -> str:
    """The README's limits table."""
    rows = ["| limit | value | applies to | exit code | why this much |", "|---|---|---|---|---|"]
    rows += [
        f"| `{lim.name}` | {lim.value:,} {lim.unit} | {lim.applies_to} | {lim.exit_code} | {lim.why} |"
        for lim in LIMITS.values()
    ]
    return "\n".join(rows)
