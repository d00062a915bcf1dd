"""int8 by PyTorch 2 export quantization (pt2e): the flow ExecuTorch and LiteRT read.

The float deploy module (pruned or sparse if the recipe compresses) is captured with
``torch.export``, observed on ``export.calibration.num_samples`` training images and converted.
The converted module, whose quantize/dequantize ops run in PyTorch, is the reference the
artifact is verified against; agreement with the fp32 model is reported beside it.

``export.pt2e.float_modules`` keeps modules in float; with ``export.pt2e.max_miou_drop`` the
modules are ranked by what each costs quantized alone (on the selection split) and the worst
fall back to float until the drop is within budget, as ``qat``/``ptq`` steps do for NNCF.
Measured on CamVid EfficientNet-Lite0 before the clamp fix below: the stem and first block cost
most of the 2.2 mIoU that plain pt2e PTQ lost (benchmarks/README.md section 10).

XNNPACK's and LiteRT's quantizers fuse a conv with a following ReLU, not with ReLU6
(``hardtanh``): left alone they quantize each conv's output before its clamp, on a grid spread
over the negatives and the values above 6 that the clamp throws away, and again after it.
``ClampsAfterConvs`` moves that quantization after the clamp, where NNCF and OpenVINO put it; the
runtimes then fuse conv, clamp and requantization into one int8 op. The ranges come from NNCF
(``quantize_pt2e`` on the same annotations: its statistics, then its fast bias correction); an op
whose range the quantizer fixes (LiteRT's sigmoid) stays float, since NNCF cannot calibrate it.
Measured on the quickstart, median of three calibration draws: plain PTQ with the quantizers'
observers lost 2.2 mIoU; with the clamp fused 0.50; with NNCF's calibration too 0.27
(benchmarks/README.md section 30).

A recipe's ``qat`` step trains NNCF's quantizers, which neither runtime reads: these formats
calibrate their own (PTQ) and say so in model.json.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch

from edgeseg.errors import ExportError


def quantize(job, make_quantizer: Callable, *, fold_quantize: bool = True) -> tuple[torch.nn.Module, dict]:
    """``job.fp32`` quantized with ``make_quantizer()``; returns it and the facts for model.json."""
    spec = job.spec.pt2e
    floats = _checked_modules(job, spec.float_modules)
    facts: dict = {}
    if spec.max_miou_drop is not None:
        floats, facts["fallback"] = fall_back(job, make_quantizer, floats, fold_quantize)
    module = _calibrated(job, _annotating(make_quantizer(), floats), job.calibration_images, fold_quantize)
    return module, {**facts, "float_modules": floats}


def _annotating(quantizer, floats: list[str]):
    """The quantizer, with ReLU6 quantized after its clamp, fixed-range ops and ``floats`` in float."""
    quantizer = FixedRangesInFloat(ClampsAfterConvs(quantizer))
    if floats:
        quantizer = FloatModules(quantizer, [f"model.{name}" for name in floats])  # inside DeployModel
    return quantizer


def _calibrated(job, quantizer, images, fold_quantize: bool) -> torch.nn.Module:
    """The quantizer's annotations calibrated by NNCF: its ranges, then its fast bias correction
    (on the quickstart: a 0.27 mIoU drop, against 0.50 with XNNPACK's own observers)."""
    import nncf
    from nncf.experimental.torch.fx import quantize_pt2e

    from edgeseg.console import route_nncf_output

    route_nncf_output()
    inputs = [job.model_input(image[None]) for image in images]
    with torch.no_grad():
        return quantize_pt2e(
            copy.deepcopy(job.captured_fp32),  # quantized in place
            quantizer,
            nncf.Dataset(inputs),
            subset_size=len(inputs),
            fast_bias_correction=True,
            fold_quantize=fold_quantize,
        )


def _checked_modules(job, names: list[str]) -> list[str]:
    from edgeseg.registry import did_you_mean

    known = dict(job.loaded.model.named_modules())
    for i, name in enumerate(names):
        if name not in known:
            groups = conv_groups(job.loaded.model)
            raise ExportError(
                f"export.pt2e.float_modules[{i}]: no module '{name}' in the model{did_you_mean(name, groups)}; "
                f"its blocks: {', '.join(groups)}"
            )
    return list(names)


def conv_groups(model: torch.nn.Module) -> list[str]:
    """The model's blocks, in order: each conv's name up to its first numeric part (a stage or
    layer index), or the whole name (a stem, a classifier)."""
    groups = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            parts = name.split(".")
            cut = next((i for i, part in enumerate(parts) if part.isdigit()), len(parts) - 1)
            groups.append(".".join(parts[: cut + 1]))
    return list(dict.fromkeys(groups))


def fall_back(job, make_quantizer, floats: list[str], fold_quantize: bool) -> tuple[list[str], dict]:
    """Keep the most sensitive blocks in float until the mIoU drop is within budget (ranking and
    search calibrate on 16 images; the artifact is then calibrated on all of them)."""
    spec, started = job.spec.pt2e, time.monotonic()
    images, masks = _sensitivity_set(job)
    calibration = job.calibration_images[: min(16, len(job.calibration_images))]
    fp32 = _miou(job, job.fp32, images, masks)

    def drop(kept_float: list[str]) -> float:
        model = _calibrated(job, _annotating(make_quantizer(), kept_float), calibration, fold_quantize)
        return round(fp32 - _miou(job, model, images, masks), 3)

    groups = [g for g in conv_groups(job.loaded.model) if g not in floats]
    ranking = [{"module": g, "miou_drop": drop([x for x in groups if x != g] + floats)} for g in groups]
    ranking.sort(key=lambda entry: -entry["miou_drop"])  # each block quantized alone, worst first
    chosen, measured = list(floats), [drop(floats)]
    for entry in ranking[: spec.max_fallback_groups]:
        if measured[-1] <= spec.max_miou_drop:
            break
        chosen.append(entry["module"])
        measured.append(drop(chosen))
    return chosen, {
        "budget_miou_drop": spec.max_miou_drop,
        "images": len(images),
        "fp32_miou": round(fp32, 3),
        "miou_drop_before": measured[0],
        "miou_drop_after": measured[-1],
        "within_budget": measured[-1] <= spec.max_miou_drop,
        "ranking": ranking,
        "seconds": round(time.monotonic() - started, 1),
    }


def _sensitivity_set(job) -> tuple[torch.Tensor, torch.Tensor]:
    """``pt2e.sensitivity_images`` selection-split images and masks at the export size."""
    from edgeseg.data import load_split
    from edgeseg.data.splits import selection_split
    from edgeseg.data.transforms import resize_images

    samples = load_split(job.recipe.data, selection_split(job.recipe.data), job.recipe.seed)
    n = min(job.spec.pt2e.sensitivity_images, len(samples))
    masks = torch.stack([m[None].float() for m in samples.masks[:n]])
    masks = torch.nn.functional.interpolate(masks, size=job.input_size, mode="nearest")[:, 0].long()
    return resize_images(samples.images[:n], job.input_size), masks


@torch.no_grad()
def _miou(job, module, images, masks) -> float:
    from edgeseg.eval.metrics import confusion_matrix, summarize

    names = list(job.loaded.class_names)
    cm = 0
    for image, mask in zip(images, masks, strict=True):
        out = module(job.model_input(image[None]))
        classes = out if job.spec.output == "class_map" else out.argmax(1)
        if classes.shape[-2:] != mask.shape:  # export.output_stride > 1: ids back to the mask's size, as bench does
            classes = torch.nn.functional.interpolate(classes[:, None].float(), size=mask.shape, mode="nearest")[:, 0]
        cm = cm + confusion_matrix(classes.long().numpy(), mask[None].numpy(), len(names))
    return summarize(cm, names)["miou"]


def facts(job, quantizer_name: str, quantized: dict) -> dict:
    """What model.json says about how the int8 artifact was quantized."""
    steps = [step.kind for step in job.recipe.compress.steps]
    note = {
        "quantization": f"pt2e PTQ ({quantizer_name}, per-channel symmetric int8 weights, "
        "ReLU6 quantized after its clamp; NNCF ranges and fast bias correction)",
        "calibration_images": len(job.calibration_images),
        **quantized,
    }
    if "qat" in steps or "ptq" in steps:
        note["recipe_quantization_not_used"] = (
            "the recipe's NNCF quantizers are not read by this runtime; this artifact is calibrated from the "
            "float model with the runtime's own quantizer"
        )
    return note


class _Rewrapped:
    """A pt2e quantizer that edits another's annotations; everything else is the inner one's."""

    def __init__(self, inner):
        self.inner = inner

    def transform_for_annotation(self, model):
        return self.inner.transform_for_annotation(model)

    def validate(self, model) -> None:
        self.inner.validate(model)

    def prepare_obs_or_fq_callback(self, model, edge_or_node_to_obs_or_fq) -> None:
        callback = getattr(self.inner, "prepare_obs_or_fq_callback", None)
        if callback:
            callback(model, edge_or_node_to_obs_or_fq)


class ClampsAfterConvs(_Rewrapped):
    """A ``hardtanh`` (ReLU6) whose only input is an annotated conv (or conv + BN) output takes
    that output's quantization spec: the conv's output is observed after the clamp, and no
    quantize/dequantize pair sits between them (as the quantizers do for ReLU). The quantizers
    annotate the clamp too, sharing the conv output's range (the wide one): that is replaced."""

    def annotate(self, model):
        from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

        model = self.inner.annotate(model)
        for node in model.graph.nodes:
            if node.op != "call_function" or node.target not in _CLAMPS:
                continue
            source = node.args[0]
            annotation = source.meta.get("quantization_annotation")
            if annotation is None or annotation.output_qspec is None or len(source.users) != 1:
                continue
            node.meta["quantization_annotation"] = QuantizationAnnotation(
                output_qspec=annotation.output_qspec, _annotated=True
            )
            annotation.output_qspec = None
        return model


_CLAMPS = (torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default)


class FixedRangesInFloat(_Rewrapped):
    """Ops whose output range the quantizer fixes stay float: NNCF 3.4's ``quantize_pt2e`` cannot
    calibrate a ``FixedQParamsQuantizationSpec``. LiteRT's quantizer fixes the sigmoid's (TFLite's
    int8 LOGISTIC needs scale 1/256); in LRASPP that is one sigmoid on the pooled 1x1 branch."""

    def annotate(self, model):
        from torchao.quantization.pt2e.quantizer import FixedQParamsQuantizationSpec

        def fixed(node) -> bool:
            annotation = node.meta.get("quantization_annotation")
            return annotation is not None and isinstance(annotation.output_qspec, FixedQParamsQuantizationSpec)

        model = self.inner.annotate(model)
        _unannotate(model, {node for node in model.graph.nodes if fixed(node)})
        return model


class FloatModules(_Rewrapped):
    """Wraps a pt2e quantizer: nodes inside the named modules (and their submodules) stay float.

    The quantizers' own ``set_module_name`` cannot say "no quantization" (XNNPACK's and LiteRT's
    assert on None), so the annotations they made are removed from those nodes after annotating,
    with any spec another node shares with them; the runtime then runs those nodes in float
    between dequantize and quantize ops.
    """

    def __init__(self, inner, modules: list[str]):
        super().__init__(inner)
        self.modules = tuple(modules)

    def _in_float_module(self, node) -> bool:
        paths = [path for path, _ in node.meta.get("nn_module_stack", {}).values()]
        return any(path == m or path.startswith(m + ".") for m in self.modules for path in paths)

    def annotate(self, model):
        model = self.inner.annotate(model)
        _unannotate(model, {node for node in model.graph.nodes if self._in_float_module(node)})
        return model


def _unannotate(model, floated: set) -> None:
    """``floated`` nodes lose their annotations, and other nodes the specs they shared with them."""
    for node in floated:
        node.meta.pop("quantization_annotation", None)
    for node in model.graph.nodes:  # specs shared with a float node's edges have nothing to share
        annotation = node.meta.get("quantization_annotation")
        if annotation is not None:
            _drop_shared(annotation, floated)


def _drop_shared(annotation, floated: set) -> None:
    from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec

    def refers_to_float(spec) -> bool:
        if not isinstance(spec, SharedQuantizationSpec):
            return False
        edge_or_node = spec.edge_or_node
        nodes = edge_or_node if isinstance(edge_or_node, tuple) else (edge_or_node,)
        return any(n in floated for n in nodes)

    for source, spec in list(annotation.input_qspec_map.items()):
        if refers_to_float(spec):
            del annotation.input_qspec_map[source]
    if refers_to_float(annotation.output_qspec):
        annotation.output_qspec = None
