"""INT8 with NNCF, shaped so that every runtime executes the quantized graph in integer kernels.

NNCF's default Q/DQ export runs 2.5-3x *slower* than fp32 in ONNX Runtime (benchmarks/results/
export_mv3_large.json and export_camvid_lite0.json, row "nncf default export, unprepared").
Four causes, found by counting which Convs ORT fused into QLinearConv; each is fixed here or in
``edgeseg.exporters.qdq``:

1. BatchNorm left between Conv and its output quantizer: ORT cannot fold it once weights are
   fake-quantized, so the Conv stays float. -> ``edgeseg.models.replay.fold_batchnorm`` before quantizing.
2. Per-channel *activation* quantizers that NNCF puts before depthwise convs: ORT's QLinearConv
   needs a per-tensor input scale. -> activations quantized per tensor.
3. HardSwish between Conv and the next quantizer: ORT has no integer HardSwish, so the Conv has
   no output Q and stays float. -> ``edgeseg.models.replay.decompose_hardswish`` into x * relu6(x + 3) / 6, the same
   function, whose Add/Mul inputs NNCF quantizes, giving each Conv an output quantizer.
4. Signed int8 activations mixed with unsigned: ORT fuses a Conv only when input and output
   types agree. -> rewritten exactly to uint8 at export (``exporters.qdq``).

With these and ``exporters.qdq.scalars_into_quantizers`` (HardSwish's +3 and /6 moved into the
quantizers, so its Add and Mul run as QLinearAdd/QLinearMul), EfficientNet-Lite0 (ReLU6) runs
at 0.43-0.48x ORT fp32 and MobileNetV3-Large at 0.80-0.87x.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from edgeseg.models.replay import prepare_for_int8

log = logging.getLogger(__name__)


def quantization_parameters():
    """NNCF settings: symmetric per-channel weights, symmetric per-tensor activations.

    NNCF's ``OverflowFix`` stays off: it widens the ranges of 8-bit quantizers, which QAT then
    trains back to 8 bits. Targets that need 7-bit weights get :func:`seven_bit_weights` instead.
    """
    from nncf import QuantizationPreset
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
        QuantizationParameters,
    )

    return QuantizationPreset.PERFORMANCE, AdvancedQuantizationParameters(
        activations_quantization_params=QuantizationParameters(per_channel=False),
        overflow_fix=OverflowFix.DISABLE,
    )


def seven_bit_weights(model: nn.Module) -> int:
    """Make every weight quantizer 7-bit, for targets whose int8 kernels saturate (``edgeseg.targets``).

    NNCF's half-range quantizers: fake quantization (and so QAT) uses 7-bit levels [-64, 63]
    over the calibrated range, and the ONNX export writes them as ordinary int8 Q/DQ. With
    u8 activations, 2 x 255 x 64 = 32,640 fits the 16-bit pair sums of ``VPMADDUBSW``. Weight
    quantizers are the narrow-range ones (NNCF's symmetric weights use [-127, 127]; the
    half range needs the full [-64, 63], the only layout NNCF exports as 256 levels).

    Returns:
        How many quantizers were changed (those already 7-bit are left alone).
    """
    from nncf.torch.quantization.layers import SymmetricQuantizer

    changed = 0
    for module in model.modules():
        if isinstance(module, SymmetricQuantizer) and module.narrow_range and not module.is_half_range:
            module._qspec.half_range, module._half_range = True, True  # the spec is what get_config saves
            module._qspec.narrow_range, module._narrow_range = False, False
            module.set_levels()
            changed += 1
    return changed


def force_signed(model: nn.Module) -> int:
    """Make every unsigned quantizer signed (same scale: [0, s] becomes [-s, s], 7 bits for >= 0).

    TensorRT accepts only signed symmetric int8. NNCF 3.4 rejects ``signedness_to_force`` against
    every hardware config, so the flip happens after calibration; QAT then trains with it.
    """
    from nncf.torch.quantization.layers import SymmetricQuantizer

    flipped = 0
    for module in model.modules():
        if isinstance(module, SymmetricQuantizer) and not module.signed:
            module.signed = True
            flipped += 1
    return flipped


def quantize_ptq(
    model: nn.Module,
    calibration: list[torch.Tensor],
    *,
    signed_activations: bool = False,
    seven_bit: bool = False,
    ignored: list[str] | None = None,
) -> nn.Module:
    """Post-training INT8: NNCF inserts fake quantizers calibrated on ``calibration`` batches.

    Args:
        model: the fp32 model (not modified).
        calibration: normalised float batches from the training split.
        signed_activations: every quantizer signed and symmetric, as TensorRT requires
            (:func:`force_signed`); otherwise activations after ReLU keep the unsigned range.
        seven_bit: 7-bit weights (:func:`seven_bit_weights`), for a target that saturates.
        ignored: module-name patterns (regular expressions) kept in float.

    Returns:
        The fake-quantized torch model: the reference an int8 artifact is verified against, and
        the starting point of quantization-aware training.
    """
    import nncf

    from edgeseg.console import route_nncf_output

    route_nncf_output()
    prepared = prepare_for_int8(model, calibration[0][:1])
    preset, advanced = quantization_parameters()
    scope = nncf.IgnoredScope(patterns=ignored or [], validate=False)
    quantized = nncf.quantize(
        prepared,
        nncf.Dataset(calibration),
        preset=preset,
        subset_size=len(calibration),
        ignored_scope=scope,
        advanced_parameters=advanced,
    )
    if signed_activations:
        log.info("int8 for TensorRT: %d unsigned quantizers made signed", force_signed(quantized))
    if seven_bit:
        log.info("int8 weights in 7 bits (the target saturates 8-bit ones): %d", seven_bit_weights(quantized))
    return quantized.eval()


def set_qdq_export(model: nn.Module) -> int:
    """Make NNCF's quantizers export as standard ONNX QuantizeLinear/DequantizeLinear pairs.

    NNCF's default export is ``org.openvinotoolkit:FakeQuantize``, which only OpenVINO reads.
    """
    from nncf.torch.quantization.layers import BaseQuantizer, QuantizerExportMode

    count = 0
    for module in model.modules():
        if isinstance(module, BaseQuantizer):
            module._export_mode = QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS
            count += 1
    return count


# --------------------------------------------------------------------------------------------
# Saving and rebuilding a quantized model (never as a pickle)


def quantized_facts(model: nn.Module, *, target: str, fallback: list[dict]) -> dict:
    """JSON-able description from which :func:`edgeseg.models.replay.rebuild_quantized` recreates the quantizers."""
    import json

    import nncf.torch

    config = json.loads(json.dumps(nncf.torch.get_config(model)))  # NNCF's enums are str: plain JSON
    return {"kind": "nncf-int8", "target": target, "nncf_config": config, "fallback": fallback}


def is_quantized(model: nn.Module) -> bool:
    from nncf.torch.quantization.layers import BaseQuantizer

    return any(isinstance(m, BaseQuantizer) for m in model.modules())


# --------------------------------------------------------------------------------------------
# When INT8 hurts: per-group sensitivity and fallback to float


def quantizer_groups(model: nn.Module) -> dict[str, list[nn.Module]]:
    """Quantizers grouped by the graph node they sit on (weights and inputs of one op together).

    NNCF names hooks ``pre_hooks.<node>__<port>`` (inputs of ``<node>``) and
    ``post_hooks.<node>__<port>`` (its output, i.e. the next op's input).
    """
    from nncf.torch.quantization.layers import BaseQuantizer

    groups: dict[str, list[nn.Module]] = {}
    for name, module in model.named_modules():
        if isinstance(module, BaseQuantizer):
            hook = name.split("pre_hooks.", 1)[-1].split("post_hooks.", 1)[-1]
            node = hook.rsplit("__", 1)[0]
            groups.setdefault(node, []).append(module)
    return groups


def _set_enabled(modules, enabled: bool) -> None:
    for module in modules:
        module.enable_quantization() if enabled else module.disable_quantization()


@torch.no_grad()
def layer_sensitivity(model: nn.Module, evaluate) -> list[dict]:
    """mIoU cost of each quantizer group quantized alone (all others float), worst first.

    Args:
        model: a quantized model (its quantizers are restored as they were).
        evaluate: ``model -> mIoU``.
    """
    groups = quantizer_groups(model)
    everything = [m for ms in groups.values() for m in ms]
    was = {id(m): m.is_enabled_quantization() for m in everything}
    _set_enabled(everything, False)
    base = evaluate(model)
    ranking = []
    try:
        for node, modules in groups.items():
            _set_enabled(modules, True)
            ranking.append({"group": node, "quantizers": len(modules), "miou_drop": round(base - evaluate(model), 4)})
            _set_enabled(modules, False)
    finally:
        for m in everything:
            _set_enabled([m], was[id(m)])
    return sorted(ranking, key=lambda r: -r["miou_drop"])


@torch.no_grad()
def fall_back_to_float(model: nn.Module, evaluate, fp32_miou: float, budget: float, max_groups: int) -> dict:
    """Disable the most sensitive quantizer groups until the mIoU drop is within ``budget``.

    Disabled quantizers stay in the model (and its saved config) as pass-throughs, so the
    layers they guarded export, train and run in float.

    Returns:
        ``{"kept_in_float": [...], "drop_before", "drop_after", "within_budget", "sensitivity"}``.
    """
    full = evaluate(model)
    report = {"drop_before": round(fp32_miou - full, 4), "kept_in_float": [], "sensitivity": []}
    if fp32_miou - full <= budget:
        report.update(drop_after=report["drop_before"], within_budget=True)
        return report
    ranking = layer_sensitivity(model, evaluate)
    report["sensitivity"] = ranking
    groups = quantizer_groups(model)
    drop = fp32_miou - full
    for entry in ranking[:max_groups]:
        _set_enabled(groups[entry["group"]], False)
        drop = fp32_miou - evaluate(model)
        report["kept_in_float"].append({**entry, "drop_after_keeping": round(drop, 4)})
        log.info(
            "int8 fallback: %s kept in float (alone it cost %.2f mIoU); drop now %.2f",
            entry["group"],
            entry["miou_drop"],
            drop,
        )
        if drop <= budget:
            break
    report.update(drop_after=round(drop, 4), within_budget=drop <= budget)
    return report
