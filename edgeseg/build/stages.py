"""The stages of ``edgeseg build``, as data: what each reads, what it follows, what it runs.

``STAGES`` is the build's order. Each entry names the recipe fields in its cache key (``spec``),
the stages whose outputs it reads (``upstream``) and the function that writes its files
(``run(ctx, out, target) -> info``). ``pipeline.build`` loops over it; ``--force`` takes its
names. Adding a stage means one entry here and one run function.

Nothing heavy is imported at module level: the CLI reads the stage names from here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclass_fields
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from edgeseg.build.devices import LOCAL
from edgeseg.build.names import bench_dir, export_dir, export_target, instance_dir, stage_family

if TYPE_CHECKING:  # the CLI reads STAGE_NAMES at start-up: no pydantic, no torch
    from edgeseg.recipe import ExportTarget, Recipe, RemoteDevice


@dataclass(frozen=True)
class StageInfo:
    """What a stage reports: the ``info`` of its ``stage.json``, the build's line for it, the
    figures tracking logs. Each stage has its own subclass (``Stage.info``)."""

    def as_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> StageInfo:
        """Read back from ``stage.json``; a field an older edgeseg did not write is None."""
        return cls(**{f.name: data.get(f.name) for f in dataclass_fields(cls)})


@dataclass(frozen=True)
class DataInfo(StageInfo):
    samples: dict[str, int]  # per split
    leaked: dict[str, float]  # per held-out split: the share of its images near-duplicating training


@dataclass(frozen=True)
class TrainInfo(StageInfo):
    best_val_miou: float
    epochs: int


@dataclass(frozen=True)
class AdaptInfo(StageInfo):
    rounds: int
    images: int
    shipped: str  # the model the stage ships: "fine-tuned" or a student
    val_miou: float
    class_shifts: list


@dataclass(frozen=True)
class EvalInfo(StageInfo):
    miou: float  # on the headline split
    split: str
    splits: dict[str, float]


@dataclass(frozen=True)
class CompressInfo(StageInfo):
    steps: list[str]
    val_miou: float
    miou_delta: float
    gmacs: float
    checkpoints: dict  # what each export precision takes (float.pt / model.pt)


@dataclass(frozen=True)
class ExportInfo(StageInfo):
    agreement: float | None  # with its reference, at export; None where no runtime here ran it
    reference: str
    size_mb: float


@dataclass(frozen=True)
class BenchInfo(StageInfo):
    artifacts: int
    not_run: list[str]


@dataclass(frozen=True)
class DeviceBenchInfo(StageInfo):
    artifacts: int
    device: dict


@dataclass(frozen=True)
class SelectInfo(StageInfo):
    chosen: str | None
    within_noise: str | None


@dataclass(frozen=True)
class ReportInfo(StageInfo):
    pareto_front: list[str]


@dataclass(frozen=True)
class StageResult:
    """A published stage: its directory, whether this build found it cached, and its
    ``stage.json`` record (key, inputs, outputs with sha256, times, info)."""

    name: str
    root: Path
    cached: bool
    record: dict

    @property
    def key(self) -> str:
        return self.record["key"]

    @property
    def outputs(self) -> dict[str, str]:
        return self.record["outputs"]

    @property
    def seconds(self) -> float:
        return self.record["seconds"]

    @property
    def info(self) -> StageInfo:
        return stage_of(self.name).info.from_json(self.record.get("info", {}))


@dataclass
class BuildContext:
    """One build's recipe, run directory and the stages published (or found cached) so far."""

    recipe: Recipe
    run_dir: Path
    results: dict[str, StageResult] = field(default_factory=dict)

    def model_source(self, target: ExportTarget | None = None) -> tuple[Path, tuple[str, ...]]:
        """The checkpoint ``target`` is made from (None: the float model), and its stages.

        With compression steps every artifact ships the compressed architecture: NNCF int8 the
        quantized model when the recipe quantizes (else it calibrates its own at export); fp32,
        fp16 and pt2e int8 (which quantizes at export, for its runtime) the float model before
        quantization (pruned, sparse).
        """
        from edgeseg.formats import get_format

        trained, stages = self.fine_tuned()
        compressed = self.results.get("compress")
        if compressed is None:
            return trained, stages
        checkpoints = compressed.info.checkpoints
        if target is not None and target.precision == "int8" and get_format(target.format).quantizer == "nncf":
            return compressed.root / checkpoints["final"], (*stages, "compress")
        if checkpoints["float"]:
            return compressed.root / checkpoints["float"], (*stages, "compress")
        return trained, stages

    def fine_tuned(self) -> tuple[Path, tuple[str, ...]]:
        """The fine-tuned float checkpoint (self-trained on ``data.unlabeled`` when the build
        adapts) and the stages it comes from."""
        adapted = self.results.get("adapt")
        if adapted is not None:
            return adapted.root / "best.pt", ("train", "adapt")
        return self.results["train"].root / "best.pt", ("train",)

    @property
    def exports(self) -> list[StageResult]:
        return [r for name, r in self.results.items() if export_target(name)]

    @cached_property
    def bench_results(self) -> list[dict]:
        return json.loads((self.results["bench"].root / "bench.json").read_text())["results"]

    def device_results(self, device: str) -> list[dict]:
        """The bench results measured on ``device`` (``local``: this machine's bench stage)."""
        if device == "local":
            return self.bench_results
        return json.loads((self.results[bench_dir(device)].root / "bench.json").read_text())["results"]

    @property
    def decision(self) -> dict | None:
        stage = self.results.get("select")
        return None if stage is None else json.loads((stage.root / "decision.json").read_text())

    @cached_property
    def rejected(self) -> dict[str, list[str]]:
        """Artifact name -> the gates it missed (empty when every artifact passes)."""
        from edgeseg.select.gates import check_gates

        return check_gates(self.recipe.gates, self.bench_results)


if TYPE_CHECKING:
    Target = ExportTarget | RemoteDevice | None
    SpecOf = Callable[[BuildContext, Target], dict]
    UpstreamOf = Callable[[BuildContext, Target], tuple[str, ...]]


@dataclass(frozen=True)
class Stage:
    """One step of the build.

    ``per_target`` stages run once per ``export.targets`` entry, as ``<name>-<target>``;
    ``per_device`` ones once per ``bench.remote`` device, as ``<name>-<device>``.
    ``toolchain`` adds the export toolchain's versions to the key; ``resumable`` keeps the
    scratch directory of a killed run for the next build with the same key (training and
    compression pick up their last finished epoch and step there). ``gate`` runs once the stage
    is published or found cached; raising GateError there stops the build before later stages.
    ``times_on`` names the device whose latency the stage measures: one stage times on it at a time.
    """

    name: str
    run: Callable[[BuildContext, Path, Target], StageInfo]
    info: type[StageInfo]
    spec: SpecOf
    upstream: UpstreamOf
    enabled: Callable[[Recipe], bool] = lambda recipe: True
    per_target: bool = False
    per_device: bool = False
    toolchain: bool = False
    resumable: bool = False
    gate: Callable[[BuildContext], None] | None = None
    # the device a stage times on (``edgeseg.build.devices``): it holds that device's lease
    times_on: Callable[[Target], str] | None = None

    def instances(self, recipe: Recipe) -> list[tuple[str, Target]]:
        """``(stage directory name, target)`` for each run of this stage in ``recipe``."""
        if not self.enabled(recipe):
            return []
        if self.per_target:
            return [(instance_dir(self.name, t.name), t) for t in recipe.export.targets]
        if self.per_device:
            return [(instance_dir(self.name, d.name), d) for d in recipe.bench.remote]
        return [(self.name, None)]


def fields(*names: str) -> SpecOf:
    """A spec of whole recipe sections. ``data.unlabeled`` is the adapt stage's alone: adding
    a folder of unlabelled images must not retrain or rescore what came before."""
    return lambda ctx, target: ctx.recipe.model_dump(mode="json", include=set(names), exclude={"data": {"unlabeled"}})


def after(*names: str) -> UpstreamOf:
    """Fixed upstream stages; an optional one the recipe does not run is left out."""
    return lambda ctx, target: tuple(n for n in names if n in ctx.results)


# --------------------------------------------------------------------------------------------
# What each stage does


def _data_spec(ctx: BuildContext, target: Target) -> dict:
    from edgeseg.data.check import source_fingerprint, splits_read

    recipe = ctx.recipe
    return {
        **fields("seed", "data")(ctx, target),
        "splits": splits_read(recipe),
        "source": source_fingerprint(recipe.data),
    }


def _check_data(ctx: BuildContext, out: Path, target: Target) -> DataInfo:
    """Decode and describe every split, and measure how much each held-out one overlaps training."""
    from edgeseg.data.check import recipe_data_report

    report = recipe_data_report(ctx.recipe)
    (out / "data.json").write_text(json.dumps(report, indent=2))
    leaks = {split: facts["leaked_fraction"] for split, facts in report["overlap"].items()}
    return DataInfo(samples={split: facts["samples"] for split, facts in report["splits"].items()}, leaked=leaks)


def _data_gate(ctx: BuildContext) -> None:
    from edgeseg.data.check import check_overlap_gate

    recipe = ctx.recipe
    overlap = json.loads((ctx.results["data"].root / "data.json").read_text())["overlap"]
    check_overlap_gate(recipe.gates.max_eval_overlap, recipe.eval.split, overlap)


def _train(ctx: BuildContext, out: Path, target: Target) -> TrainInfo:
    from edgeseg.train.loop import fit

    result = fit(ctx.recipe, out, resume=True)
    return TrainInfo(best_val_miou=result.best_miou, epochs=len(result.history))


def _adapt_spec(ctx: BuildContext, target: Target) -> dict:
    from edgeseg._io import folder_fingerprint

    spec = fields("seed", "data", "train", "adapt")(ctx, target)
    return {**spec, "unlabeled": folder_fingerprint(ctx.recipe.data.unlabeled)}


def _adapt(ctx: BuildContext, out: Path, target: Target) -> AdaptInfo:
    """Self-training on ``data.unlabeled``: pseudo-label, train a student, repeat."""
    from edgeseg.train.selftrain import self_train

    data = json.loads((ctx.results["data"].root / "data.json").read_text())  # counted there, not decoded again
    training = [data["splits"][split] for split in data["training_splits"]]
    labelled = sum(split["samples"] for split in training)
    shares = [[s["samples"] * f for f in s["class_pixel_fraction"].values()] for s in training]
    mix = [sum(column) for column in zip(*shares, strict=True)]  # per class, splits weighted by images
    report = self_train(ctx.recipe, ctx.results["train"].root / "best.pt", out, labelled, mix)
    return AdaptInfo(
        rounds=len(report["rounds"]),
        images=report["images"],
        shipped=report["shipped"],
        val_miou=report["shipped_val_miou"],
        class_shifts=report["class_shifts"],
    )


def _evaluate(ctx: BuildContext, out: Path, target: Target) -> EvalInfo:
    """The fp32 model on every ``eval.splits`` entry, each broken down by group."""
    from edgeseg.eval import evaluate_checkpoint

    checkpoint, _ = ctx.fine_tuned()
    splits = {split: evaluate_checkpoint(checkpoint, split) for split in ctx.recipe.eval.splits}
    headline = splits[ctx.recipe.eval.split]
    (out / "metrics.json").write_text(json.dumps({**headline, "splits": splits}, indent=2))
    return EvalInfo(
        miou=headline["miou"], split=ctx.recipe.eval.split, splits={s: m["miou"] for s, m in splits.items()}
    )


def _compress(ctx: BuildContext, out: Path, target: Target) -> CompressInfo:
    from edgeseg.compress.steps import compress_checkpoint

    report = compress_checkpoint(ctx.recipe, ctx.fine_tuned()[0], out)
    last = report["steps"][-1]
    return CompressInfo(
        steps=[s["kind"] for s in report["steps"]],
        val_miou=last["miou"],
        miou_delta=last["miou_delta"],
        gmacs=last["gmacs"],
        checkpoints=report["checkpoints"],
    )


def _export_spec(ctx: BuildContext, target: Target) -> dict:
    from edgeseg.bundle import BUNDLE_FORMAT  # a new bundle format rebuilds the exports it changes

    spec = ctx.recipe.export.model_dump(mode="json", exclude={"targets"})  # holds export.target, the default
    # The artifact with the target it is built for, its own or export.target's: int8 follows it.
    # Runtimes and compute are bench's: changing them measures again, it does not re-export.
    artifact = target.model_dump(mode="json", exclude={"runtimes", "compute"})
    artifact["target"] = target.deployed_on(ctx.recipe.export.target)
    return {**spec, "artifact": artifact, "bundle": BUNDLE_FORMAT}


def _export_upstream(ctx: BuildContext, target: Target) -> tuple[str, ...]:
    return ctx.model_source(target)[1]


def _export(ctx: BuildContext, out: Path, target: Target) -> ExportInfo:
    from edgeseg.exporters.export import export_bundle, prepare_job

    source, _ = ctx.model_source(target)
    meta = export_bundle(prepare_job(source, ctx.recipe, target), out)
    v = meta["verification"]
    return ExportInfo(
        agreement=None if v["agreement"] is None else round(v["agreement"], 6),
        reference=v["reference"],
        size_mb=round(meta["artifact"]["size_bytes"] / 1e6, 3),
    )


def _bench_upstream(ctx: BuildContext, target: Target) -> tuple[str, ...]:
    return (*(e.name for e in ctx.exports), *ctx.model_source()[1])


def _bench_spec(ctx: BuildContext, target: Target) -> dict:
    """The bench settings, and the points each bundle is measured at (its runtimes x compute)."""
    points = {t.name: [list(point) for point in t.points()] for t in ctx.recipe.export.targets}
    return {**fields("bench", "data", "eval", "seed")(ctx, target), "points": points}


def _bench(ctx: BuildContext, out: Path, target: Target) -> BenchInfo:
    """Every exported bundle at each of its points (runtime x compute precision), plus the fp32
    PyTorch model as the reference."""
    from edgeseg.bench.run import BenchSpec, bench
    from edgeseg.report.render import prediction_file

    recipe, settings = ctx.recipe, ctx.recipe.bench
    predictions = out / "predictions"
    predictions.mkdir(exist_ok=True)
    common = {
        "threads": settings.threads,
        "batches": tuple(settings.batches),
        "iterations": settings.iterations,
        "budget_s": settings.time_budget_s,
        "warmup": settings.warmup,
        "rounds": settings.rounds,
        "max_images": settings.max_images,
        "split": recipe.eval.split,
        "seed": recipe.seed,
        "data": recipe.data.model_dump(mode="json") if settings.accuracy else None,
        "robustness": settings.robustness.bench_settings(),
        "end_to_end": settings.end_to_end,
        "frame_encoding": settings.frame_encoding,
        "profile": settings.profile,
    }

    def spec(artifact: Path, name: str, **kw) -> BenchSpec:
        saved = str(prediction_file(predictions, name)) if settings.accuracy else None
        return BenchSpec(artifact=str(artifact), name=name, save_predictions=saved, **common, **kw)

    points, not_run = bench_points(ctx)
    specs = [
        spec(p.bundle, p.name, runtime=p.runtime, precision_hint=p.compute, emulate=p.emulate, extra=p.extra)
        for p in points
    ]
    ref = spec(ctx.model_source()[0], "pytorch-fp32", runtime="torch") if settings.reference else None
    results = bench(specs, ref)
    (out / "bench.json").write_text(json.dumps({"results": results, "not_run": not_run}, indent=2))
    return BenchInfo(artifacts=len(results), not_run=[n["name"] for n in not_run])


@dataclass(frozen=True)
class Point:
    """One bundle run by one runtime computing in one precision: what the build measures."""

    name: str  # names.point_name
    bundle: Path
    artifact: str  # the export target's name (its bundle is export-<artifact>)
    runtime: str
    compute: str
    target: str  # the deployment target it is offered for
    emulate: tuple[str, ...]

    @property
    def extra(self) -> dict:
        """What its bench result carries of the point (for candidates and deploy/)."""
        point = {"artifact": self.artifact, "runtime": self.runtime, "compute": self.compute, "target": self.target}
        return {"point": point}


def bench_points(ctx: BuildContext) -> tuple[list[Point], list[dict]]:
    """The points this machine can measure, and why the others are not measured here: a bundle
    no runtime here runs (Core ML off macOS), or a precision this CPU does not compute natively."""
    import logging

    from edgeseg.build.names import point_name
    from edgeseg.formats import get_format
    from edgeseg.targets import BF16_FLAGS, host_compute

    runnable, not_run = _runnable_exports(ctx)
    wanted = {t.name: t for t in ctx.recipe.export.targets}
    emulate = ctx.recipe.bench.accuracy and ctx.recipe.bench.emulate
    native = host_compute()  # f32 everywhere; bf16 with BF16_FLAGS (the only precision a CPU may lack)
    points = []
    for stage in runnable:
        artifact = export_target(stage.name)
        spec = wanted[artifact]
        default = get_format(spec.format).runtimes[0]
        where = spec.deployed_on(ctx.recipe.export.target)
        for runtime, compute in spec.points():
            name = point_name(artifact, runtime, compute, default)
            if compute not in native:
                flags = " or ".join(sorted(BF16_FLAGS))
                reason = f"this CPU does not compute {compute} natively (no {flags}): measure it on a {where} host"
                not_run.append({"name": name, "reason": reason})
                logging.getLogger(__name__).warning("bench: %s is not timed here: %s", name, reason)
                continue
            isas = _emulated_for(stage.root, runtime) if emulate and compute == "f32" else ()
            points.append(Point(name, stage.root, artifact, runtime, compute, where, isas))
    return points, not_run


def _emulated_for(bundle: Path, runtime: str) -> tuple[str, ...]:
    """The instruction sets an int8 bundle is scored on under emulation: its target's, less this
    host's and those ``runtime`` cannot run emulated (the export recorded those as not checked)."""
    from edgeseg.formats import get_runtime
    from edgeseg.runtimes.emulate import emulation_plan

    meta = json.loads((bundle / "model.json").read_text())
    if meta["artifact"]["precision"] != "int8":
        return ()
    on = get_runtime(runtime).emulated_on
    return tuple(isa for isa in emulation_plan(meta["target"]["name"]) if isa in on)


def _runnable_exports(ctx: BuildContext) -> tuple[list[StageResult], list[dict]]:
    """Exports this machine can run, and why the others cannot (a Core ML package off macOS)."""
    import logging

    runnable, not_run = [], []
    for stage in ctx.exports:
        verification = json.loads((stage.root / "model.json").read_text())["verification"]
        if verification.get("on_device") is False:
            name = export_target(stage.name)
            not_run.append({"name": name, "reason": verification["method"]})
            logging.getLogger(__name__).warning("bench: %s is not timed here: %s", name, verification["method"])
        else:
            runnable.append(stage)
    return runnable, not_run


def _device_spec(ctx: BuildContext, target: Target) -> dict:
    return {**fields("bench", "data", "eval", "seed")(ctx, target), "device": target.model_dump(mode="json")}


def _device_upstream(ctx: BuildContext, target: Target) -> tuple[str, ...]:
    return tuple(e.name for e in ctx.exports)


def _bench_device(ctx: BuildContext, out: Path, target: Target) -> DeviceBenchInfo:
    """Every exported bundle benched on a ``bench.remote`` device, over SSH."""
    from edgeseg.bench.remote import Device, bench_on_device, bench_options, scoring_set

    recipe = ctx.recipe
    device = Device(**target.model_dump())
    runnable, not_run = _runnable_exports(ctx)
    bundles = {export_target(stage.name): stage.root for stage in runnable}
    scoring = None
    if recipe.bench.accuracy:
        data = recipe.data.model_dump(mode="json")
        scoring = scoring_set(data, recipe.eval.split, recipe.seed, recipe.bench.max_images)
    settings = recipe.bench
    options = bench_options(
        iterations=settings.iterations, warmup=settings.warmup, rounds=settings.rounds, batches=settings.batches,
        threads=settings.threads, time_budget=settings.time_budget_s,
    )  # fmt: skip
    measured = bench_on_device(device, bundles, options, scoring=scoring, split=recipe.eval.split, on_line=_log_line)
    document = {"results": measured["results"], "not_run": not_run, "device": measured["device"]}
    (out / "bench.json").write_text(json.dumps(document, indent=2))
    return DeviceBenchInfo(artifacts=len(measured["results"]), device=measured["device"])


def _log_line(line: str) -> None:
    import logging

    logging.getLogger("edgeseg.bench.remote").info(line)


def _select_spec(ctx: BuildContext, target: Target) -> dict:
    return {**fields("select")(ctx, target), "gates": ctx.recipe.gates.model_dump(mode="json")}


def _select_upstream(ctx: BuildContext, target: Target) -> tuple[str, ...]:
    device = ctx.recipe.select.device
    return (bench_dir(device), *(e.name for e in ctx.exports))


def _select(ctx: BuildContext, out: Path, target: Target) -> SelectInfo:
    """``select:``: the best artifact within every limit, copied to deploy/, and why."""
    from edgeseg.select.decide import candidates_from_bench, copy_bundle, decide
    from edgeseg.select.gates import mark_rejected

    spec = ctx.recipe.select
    decision = decide(candidates_from_bench(mark_rejected(ctx.device_results(spec.device), ctx.rejected)), spec)
    if decision["chosen"] is not None:
        chosen = decision["chosen"]
        copy_bundle(ctx.results[export_dir(chosen["artifact"])].root, out / "deploy", chosen, spec.device)
        decision["chosen"]["bundle"] = "deploy"
    (out / "decision.json").write_text(json.dumps(decision, indent=2))
    return SelectInfo(chosen=decision["chosen"] and decision["chosen"]["name"], within_noise=decision["note"] or None)


def _report_spec(ctx: BuildContext, target: Target) -> dict:
    return {"name": ctx.recipe.name, "gates": ctx.recipe.gates.model_dump(mode="json")}


def _report_upstream(ctx: BuildContext, target: Target) -> tuple[str, ...]:
    devices = tuple(bench_dir(d.name) for d in ctx.recipe.bench.remote)
    return after("data", "eval", "bench", *devices, "select")(ctx, target)


def _report(ctx: BuildContext, out: Path, target: Target) -> ReportInfo:
    from edgeseg.data import dataset_info, load_split
    from edgeseg.report.render import write_report
    from edgeseg.select.gates import mark_rejected

    recipe = ctx.recipe
    results = mark_rejected(ctx.bench_results, ctx.rejected)
    samples = load_split(recipe.data, recipe.eval.split, recipe.seed, arrays=True) if recipe.bench.accuracy else None
    predictions = ctx.results["bench"].root / "predictions"
    metrics = write_report(
        results,
        out,
        title=recipe.name,
        samples=samples,
        palette=dataset_info(recipe.data).palette,
        predictions_dir=predictions,
        generalisation={
            "overlap": json.loads((ctx.results["data"].root / "data.json").read_text())["overlap"],
            "evaluation": json.loads((ctx.results["eval"].root / "metrics.json").read_text())["splits"],
        },
        not_run=json.loads((ctx.results["bench"].root / "bench.json").read_text()).get("not_run"),
        decision=ctx.decision,
        devices={d.name: ctx.device_results(d.name) for d in recipe.bench.remote},
    )
    return ReportInfo(pareto_front=metrics["pareto_front"])


STAGES: tuple[Stage, ...] = (
    Stage("data", _check_data, DataInfo, _data_spec, after(), gate=_data_gate),
    Stage("train", _train, TrainInfo, fields("seed", "data", "model", "train"), after("data"), resumable=True),
    Stage(
        "adapt",
        _adapt,
        AdaptInfo,
        _adapt_spec,
        after("train"),
        enabled=lambda recipe: recipe.data.unlabeled is not None,
        resumable=True,
    ),
    Stage("eval", _evaluate, EvalInfo, fields("eval"), after("data", "train", "adapt")),
    Stage(
        "compress",
        _compress,
        CompressInfo,
        fields("compress"),
        after("train", "adapt"),
        enabled=lambda recipe: bool(recipe.compress.steps),
        toolchain=True,
        resumable=True,
    ),
    Stage("export", _export, ExportInfo, _export_spec, _export_upstream, per_target=True, toolchain=True),
    Stage("bench", _bench, BenchInfo, _bench_spec, _bench_upstream, toolchain=True, times_on=lambda _: LOCAL),
    Stage(
        "bench",
        _bench_device,
        DeviceBenchInfo,
        _device_spec,
        _device_upstream,
        per_device=True,
        toolchain=True,
        times_on=lambda device: f"ssh:{device.host}",  # the device itself, whatever the recipe calls it
    ),
    Stage(
        "select", _select, SelectInfo, _select_spec, _select_upstream, enabled=lambda recipe: recipe.select is not None
    ),
    Stage("report", _report, ReportInfo, _report_spec, _report_upstream),
)
STAGE_NAMES = tuple(dict.fromkeys(stage.name for stage in STAGES))


def stage_of(directory: str) -> Stage:
    """The table entry a published stage directory belongs to: ``train``; ``export-onnx-int8``
    (a per-target stage); ``bench`` (local) or ``bench-jetson`` (a per-device one)."""
    single = {s.name: s for s in STAGES if not (s.per_target or s.per_device)}
    if directory in single:
        return single[directory]
    return next(s for s in STAGES if s.name == stage_family(directory) and (s.per_target or s.per_device))
