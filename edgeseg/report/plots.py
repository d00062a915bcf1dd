"""The report's figures, rendered with matplotlib's Agg backend to PNG bytes."""

from __future__ import annotations

import io

import numpy as np


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def accuracy_vs_latency(rows: list[dict], front: set[str]) -> bytes:
    """mIoU against p50 latency, one labelled point per artifact, the Pareto front drawn."""
    plt = _pyplot()
    scored = [r for r in rows if r["miou"] is not None and r["latency_ms"]["p50"] is not None]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colours = plt.get_cmap("tab10")
    for i, r in enumerate(scored):
        on_front = r["name"] in front
        label = (
            f"{r['name']} ({r['runtime']})" + (" rejected" if r["rejected"] else "") + (" ★ front" if on_front else "")
        )
        marker = "x" if r["rejected"] else ("*" if on_front else "o")
        ax.scatter(
            r["latency_ms"]["p50"],
            r["miou"],
            s=110 if on_front else 45,
            marker=marker,
            color="#999" if r["rejected"] else colours(i % 10),
            edgecolors="black" if on_front else "none",
            linewidths=0.6,
            zorder=3,
            label=label,
        )
    line = sorted((r for r in scored if r["name"] in front), key=lambda r: r["latency_ms"]["p50"])
    if len(line) > 1:
        ax.step(
            [r["latency_ms"]["p50"] for r in line],
            [r["miou"] for r in line],
            where="post",
            color="#d62728",
            alpha=0.5,
            label="Pareto front",
        )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # labels beside, not on top of, close points
    ax.set_xlabel("p50 latency at batch 1 (ms)")
    ax.set_ylabel("val mIoU (%)")
    ax.grid(alpha=0.3)
    return _png(fig)


def per_class_iou(results: list[dict], reference: dict | None) -> bytes:
    """Per class: the fp32 IoU (bars) and each artifact's difference to it (points, right axis)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.2))
    if reference is None or not reference["accuracy"]:
        ax.text(0.5, 0.5, "no fp32 reference in this run", ha="center", transform=ax.transAxes)
        return _png(fig)
    ref = reference["accuracy"]["per_class_iou"]
    classes = list(ref)
    x = np.arange(len(classes))
    ax.bar(x, [ref[c] or 0 for c in classes], color="#ddd", label="fp32 IoU (left axis)")
    ax.set_ylabel("fp32 IoU (%)")
    ax.set_xticks(x, classes, rotation=35, ha="right", fontsize=8)
    delta_ax = ax.twinx()
    others = [r for r in results if r is not reference and r["accuracy"]]
    width = 0.7 / max(len(others), 1)
    largest = 1.0
    for i, r in enumerate(others):
        iou = r["accuracy"]["per_class_iou"]
        deltas = [np.nan if iou[c] is None or ref[c] is None else iou[c] - ref[c] for c in classes]
        delta_ax.scatter(x - 0.35 + (i + 0.5) * width, deltas, s=18, label=r["name"], zorder=3)
        largest = max(largest, float(np.nanmax(np.abs(deltas))) if not np.isnan(deltas).all() else 0.0)
    delta_ax.set_ylim(-1.15 * largest, 1.15 * largest)  # zero in the middle: losses and gains read alike
    delta_ax.axhline(0, color="#555", lw=0.8)
    delta_ax.set_ylabel("artifact IoU − fp32 IoU (points)")
    handles = ax.get_legend_handles_labels()[0] + delta_ax.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + delta_ax.get_legend_handles_labels()[1]
    delta_ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.08, 1.0))
    return _png(fig)


def sample_predictions(samples, predictions: dict[str, list[np.ndarray]], palette: np.ndarray, count: int = 4) -> bytes:
    """Rows of validation images: image, ground truth, then each named prediction."""
    plt = _pyplot()
    scored = min(len(samples.images), *(len(p) for p in predictions.values()))  # bench may have scored a prefix
    indices = np.linspace(0, scored - 1, num=min(count, scored)).round().astype(int)
    columns = ["image", "ground truth", *predictions]
    fig, axes = plt.subplots(
        len(indices), len(columns), figsize=(3.2 * len(columns), 2.5 * len(indices)), squeeze=False
    )
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(palette)] = palette
    for row, i in enumerate(indices):
        panels = [samples.images[i], lut[samples.masks[i]], *(lut[p[i]] for p in predictions.values())]
        for col, (panel, name) in enumerate(zip(panels, columns, strict=True)):
            ax = axes[row][col]
            ax.imshow(panel)
            ax.set_axis_off()
            if row == 0:
                ax.set_title(name, fontsize=9)
    return _png(fig)
