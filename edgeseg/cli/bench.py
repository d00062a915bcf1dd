"""``edgeseg bench ARTIFACT...``: latency percentiles, memory and accuracy of built artifacts.

Needs no torch: ``pip install "edgeseg[bench]"`` on the target device is enough for ONNX,
OpenVINO and TensorRT bundles (a PyTorch checkpoint as ARTIFACT or --reference needs torch).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.options import Overrides, writable_file
from edgeseg.corruptions import CORRUPTION_NAMES, CORRUPTIONS, SEVERITIES
from edgeseg.formats import EXECUTION_PRECISIONS, RUNTIME_NAMES, cli_help
from edgeseg.registry import lookup
from edgeseg.targets import ISAS


def bench(
    artifacts: Annotated[
        list[Path],
        typer.Argument(
            help="Bundle directories (from edgeseg export/build, or a model file inside one), or an edgeseg "
            "checkpoint (.pt).",
            show_default=False,
            exists=True,
        ),
    ],
    runtime: Annotated[
        list[str] | None,
        typer.Option(
            "--runtime",
            "-r",
            help=f"{cli_help(RUNTIME_NAMES)}; repeat to compare [default: the artifact's own].",
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda/gpu, npu (what the runtime supports).")] = "cpu",
    precision: Annotated[
        str | None,
        typer.Option(
            help=f"Execution precision: {', '.join(EXECUTION_PRECISIONS)} (openvino; default is its own choice, "
            "bf16 where the CPU has it) [default: f32, what the file holds].",
        ),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="Intra-op threads; also pins the process to that many cores.")
    ] = None,
    batch: Annotated[
        list[int] | None, typer.Option("--batch", "-b", help="Batch sizes to sweep (repeatable) [default: 1].")
    ] = None,
    iterations: Annotated[int, typer.Option(help="Timed calls per batch size, over all rounds.")] = 100,
    time_budget: Annotated[
        float | None, typer.Option(help="Seconds of timed calls per batch size (instead of --iterations).")
    ] = None,
    warmup: Annotated[int, typer.Option(help="Minimum warm-up calls (warm-up also lasts at least 1 s).")] = 10,
    rounds: Annotated[
        int, typer.Option(help="Rounds the timed calls are split into (their p50 spread is the CV).")
    ] = 5,
    recipe: Annotated[Path | None, typer.Option(help="Score accuracy on this recipe's dataset split.")] = None,
    split: Annotated[
        str, typer.Option(help="Split to score on: train, val, test, or fold (the recipe's validation fold).")
    ] = "val",
    max_images: Annotated[int | None, typer.Option(help="Score on the first N images only.")] = None,
    reference: Annotated[
        Path | None,
        typer.Option(help="fp32 reference for pixel agreement: a checkpoint (.pt, needs torch) or an fp32 bundle."),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write every figure and the environment here.")
    ] = None,
    overrides: Overrides = None,
    remote: Annotated[
        list[str] | None,
        typer.Option(
            help="Bench on this device over SSH instead: [user@]host[:port] or an ~/.ssh/config alias "
            "(repeat for several). The device needs edgeseg[bench] of this version.",
        ),
    ] = None,
    remote_edgeseg: Annotated[
        str, typer.Option(help="The edgeseg command on the device (e.g. ~/venv/bin/edgeseg).")
    ] = "edgeseg",
    ssh_config: Annotated[Path | None, typer.Option(help="An ssh_config file to use instead of ~/.ssh/config.")] = None,
    emulate: Annotated[
        list[str] | None,
        typer.Option(
            help=f"With --recipe: score again on {' or '.join(ISAS)} int8 numerics, under qemu user-mode "
            "emulation (repeatable); accuracy and agreement with the native run, no latency.",
        ),
    ] = None,
    robustness: Annotated[
        bool, typer.Option("--robustness", help="Score on corrupted copies of the images too (needs --recipe).")
    ] = False,
    end_to_end: Annotated[
        bool,
        typer.Option(
            "--end-to-end",
            help="Also time frame to class map through the deployment kit, stage by stage, on the recipe's images "
            "as encoded files (needs --recipe).",
        ),
    ] = False,
    frame_encoding: Annotated[
        str, typer.Option(help="With --end-to-end: how the frames arrive, jpeg (as a camera sends) or png.")
    ] = "jpeg",
    profile: Annotated[
        bool,
        typer.Option(
            "--profile",
            help="Also take a per-op profile with the runtime's own profiler (ONNX Runtime, OpenVINO): ms per "
            "call by op type and the slowest nodes, with the kernel each ran.",
        ),
    ] = False,
    corruption: Annotated[
        list[str] | None,
        typer.Option(help=f"With --robustness: {', '.join(CORRUPTION_NAMES)} (repeatable) [default: all]."),
    ] = None,
    severity: Annotated[
        list[int] | None,
        typer.Option(
            min=min(SEVERITIES),
            max=max(SEVERITIES),
            help="With --robustness: severities 1-5 (repeatable) [default: 1, 3, 5].",
        ),
    ] = None,
) -> None:
    """Time each artifact (warm-up, p50/p90/p99, throughput, batch sweep), its memory and accuracy.

    Exit codes with --remote: 12 device unreachable, 13 SSH authentication refused, 9 the
    device's disk is full, 7 edgeseg or a runtime missing on the device.
    """
    from edgeseg.bench.environment import environment
    from edgeseg.bench.run import SCHEMA, BenchSpec
    from edgeseg.errors import RecipeError

    writable_file(json_out, "--json")
    if precision is not None:
        lookup(dict.fromkeys(EXECUTION_PRECISIONS), precision, "precision")  # exit 2, with the known ones
    data, seed = _recipe_data(recipe, overrides or [])
    if reference is not None and data is None:
        raise RecipeError("--reference needs --recipe: agreement is measured on the recipe's images")
    corrupted = _robustness_settings(robustness, corruption, severity, max_images, data)
    _check_end_to_end(end_to_end, frame_encoding, data)
    common = {
        "device": device,
        "threads": threads,
        "batches": tuple(batch or (1,)),
        "iterations": iterations,
        "budget_s": time_budget,
        "warmup": warmup,
        "rounds": rounds,
        "data": data,
        "split": split,
        "seed": seed,
        "max_images": max_images,
        "robustness": corrupted,
        "emulate": _emulated_isas(emulate or [], data),
        "end_to_end": end_to_end,
        "frame_encoding": frame_encoding,
        "profile": profile,
    }
    if remote:
        _refuse_with_remote(precision, reference, corrupted is not None or common["emulate"] or end_to_end or profile)
        from edgeseg.bench.remote import bench_options

        timing = bench_options(
            iterations=iterations, warmup=warmup, rounds=rounds, batches=batch or (), threads=threads,
            time_budget=time_budget, runtimes=runtime or (), device=device,
        )  # fmt: skip
        devices = [_device(host, remote_edgeseg, ssh_config) for host in remote]
        results, measured_on = _bench_remote(devices, artifacts, timing, data, split, seed, max_images)
        # the top-level environment is the (first) device's: each result also carries its own
        document = {"schema": SCHEMA, "results": results, "environment": measured_on[0]["environment"]}
        _write_json(json_out, {**document, "devices": measured_on})
        return
    specs = [
        BenchSpec(artifact=str(path), name=_name(path, *how), runtime=how[0], precision_hint=how[1], **common)
        for path in artifacts
        for how in _how_to_run(path, runtime, precision)
    ]
    ref = (
        BenchSpec(artifact=str(reference), name=f"{_name(reference, None)} (reference)", **common)
        if reference
        else None
    )
    results = _bench_here(specs, ref)
    _write_json(json_out, {"schema": SCHEMA, "results": results, "environment": environment()})


def _bench_here(specs, ref) -> list[dict]:
    """Time on this CPU once no build or other bench is timing on it (not beside one); what
    cannot run (file type, runtime, precision) is refused first, not after the wait."""
    from edgeseg.bench.run import bench as run_bench
    from edgeseg.build.devices import LOCAL, host_lease
    from edgeseg.runtimes.session import resolve_runtime

    for spec in (ref, *specs) if ref else specs:
        resolve_runtime(spec.artifact, spec.runtime, spec.precision_hint)
    with host_lease(LOCAL, on_wait=lambda line: typer.echo(line, err=True)):
        return run_bench(specs, ref, on_result=_print_result)


def _robustness_settings(enabled: bool, corruption, severity, max_images, data) -> dict | None:
    """``BenchSpec.robustness`` from the options, checked against the corruption table."""
    from edgeseg.errors import RecipeError
    from edgeseg.recipe import RobustnessSpec

    if not enabled:
        if corruption or severity:
            raise RecipeError("--corruption and --severity go with --robustness")
        return None
    if data is None:
        raise RecipeError("--robustness needs --recipe: it scores the recipe's images, corrupted")
    for name in corruption or ():
        lookup(CORRUPTIONS, name, "corruption")
    chosen = {"corruptions": corruption, "severities": severity, "max_images": max_images}
    return RobustnessSpec(enabled=True, **{k: v for k, v in chosen.items() if v}).bench_settings()


def _refuse_with_remote(precision: str | None, reference: Path | None, here_only: bool) -> None:
    from edgeseg.errors import RecipeError

    if precision is not None:
        raise RecipeError("--precision applies to local runs: bench on the device with it there")
    if reference is not None:
        raise RecipeError("--reference runs the fp32 model here; with --remote, bench it as one more bundle")
    if here_only:
        raise RecipeError(
            "--robustness, --emulate, --end-to-end and --profile run here only: "
            "run them with edgeseg bench on the device"
        )


def _check_end_to_end(enabled: bool, encoding: str, data) -> None:
    from edgeseg.bench.end_to_end import ENCODINGS
    from edgeseg.errors import RecipeError

    lookup(ENCODINGS, encoding, "frame encoding")
    if enabled and data is None:
        raise RecipeError("--end-to-end needs --recipe: frames are the recipe's images, encoded as files")


def _recipe_data(recipe: Path | None, overrides: list[str]) -> tuple[dict | None, int]:
    """The recipe's data section and seed (what accuracy is scored on), or none without --recipe."""
    from edgeseg.errors import RecipeError

    if recipe is None:
        if overrides:
            raise RecipeError("--set needs --recipe (it overrides the recipe's fields)")
        return None, 0
    from edgeseg.recipe import load_recipe

    loaded = load_recipe(recipe, overrides)
    return loaded.data.model_dump(mode="json"), loaded.seed


def _emulated_isas(names: list[str], data) -> tuple[str, ...]:
    """``--emulate`` values, checked against the instruction-set table; emulation scores accuracy."""
    from edgeseg.errors import RecipeError, UnknownNameError
    from edgeseg.registry import did_you_mean

    for name in names:
        if name not in ISAS:
            raise UnknownNameError(
                f"--emulate {name}: unknown instruction set{did_you_mean(name, ISAS)}; known: {', '.join(ISAS)}"
            )
    if names and data is None:
        raise RecipeError("--emulate scores accuracy: give --recipe (whose images it is scored on)")
    return tuple(dict.fromkeys(names))


def _write_json(path: Path | None, content: dict) -> None:
    from edgeseg._io import write_text_atomic

    if path is not None:
        write_text_atomic(path, json.dumps(content, indent=2))
        typer.echo(f"-> {path}")


def _device(host: str, edgeseg: str, ssh_config: Path | None):
    from edgeseg.bench.remote import Device

    return Device.parse(host, edgeseg=edgeseg, ssh_config=str(ssh_config) if ssh_config else None)


def _bench_remote(devices, artifacts: list[Path], timing: list[str], data, split, seed, max_images):
    """Every bundle on every device: the results, and each device's facts and environment."""
    from edgeseg.bench.remote import bench_on_device, scoring_set
    from edgeseg.build.devices import host_lease
    from edgeseg.errors import RecipeError

    for path in artifacts:
        if not (path / "model.json").is_file():
            raise RecipeError(f"{path}: --remote takes bundle directories (with model.json), not model files")
    bundles = {path.name: path for path in artifacts}
    scoring = scoring_set(data, split, seed, max_images) if data is not None else None
    results, measured_on = [], []
    for device in devices:
        typer.echo(f"benching {len(bundles)} bundle(s) on {device.name} ({device.host})", err=True)
        # as a build's bench stage for that device holds it
        with host_lease(f"ssh:{device.host}", on_wait=lambda line: typer.echo(line, err=True)):
            measured = bench_on_device(
                device, bundles, timing, scoring=scoring, split=split, on_line=lambda line: typer.echo(line, err=True)
            )
        for result in measured["results"]:
            _print_result(result)
        results += measured["results"]
        measured_on.append({**measured["device"], "environment": measured["environment"]})
    return results, measured_on


def _how_to_run(path: Path, runtimes: list[str] | None, precision: str | None) -> list[tuple]:
    """(runtime, precision) for each run of ``path``: as asked, else as a deployed bundle's
    model.json ``deployment`` says (what ``select:`` chose it at), else the runtime's defaults."""
    from edgeseg.bundle import SIDECAR

    sidecar = path / SIDECAR if path.is_dir() else None
    deployed = (json.loads(sidecar.read_text()).get("deployment") or {}) if sidecar and sidecar.is_file() else {}
    chosen = runtimes or [deployed.get("runtime")]
    return [(rt, precision or (deployed.get("compute") if rt == deployed.get("runtime") else None)) for rt in chosen]


def _name(path: Path, runtime: str | None, precision: str | None = None) -> str:
    name = path.name if path.is_dir() else f"{path.parent.name}/{path.name}"
    tags = [t for t in (runtime, precision) if t]
    return f"{name} [{' '.join(tags)}]" if tags else name


def _print_result(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    session = result["session"]
    accuracy = result["accuracy"] or {}
    title = (
        f"{result['name']}: {session['runtime']} on {session['device']}, {session['threads'] or 'default'} threads, "
        f"computes in {session['precision']}; session created in {session['create_s'] * 1000:.0f} ms"
    )
    table = Table(
        "batch",
        "warm-up",
        "iters",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "mean±std ms",
        "img/s",
        "CV(p50)",
        title=title,
        title_justify="left",
    )
    skipped = [f"  batch {row['batch']}: {row['skipped']}" for row in result["latency"] if "skipped" in row]
    for row in result["latency"]:
        if "skipped" in row:
            continue
        table.add_row(
            str(row["batch"]),
            str(row["warmup"]["calls"]),
            str(row["iterations"]),
            f"{row['p50_ms']:.2f}",
            f"{row['p90_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            f"{row['mean_ms']:.2f}±{row['std_ms']:.2f}",
            f"{row['throughput_ips']:.1f}",
            "" if row["p50_cv"] is None else f"{100 * row['p50_cv']:.1f}%",
        )
    console = Console()
    console.print(table)
    for note in skipped:
        console.print(note)
    memory = result["memory"]
    line = f"  memory: session +{memory['session_mb']} MB, peak +{memory['peak_mb']} MB RSS"
    if memory["gpu_mb"] is not None:
        line += f", GPU +{memory['gpu_mb']} MB"
    model = result["model"]
    if model.get("gmacs") is not None:
        line += f"; {model['gmacs']} GMACs, {model['params_m']} M params"
    line += f"; {result['artifact']['size_mb']} MB file" + _floor_line(result.get("floor"))
    if accuracy:
        line += _accuracy_lines(accuracy)
    if result.get("end_to_end"):
        line += "\n" + _end_to_end_line(result["end_to_end"])
    if result.get("profile"):
        from edgeseg.bench.profile import profile_lines

        line += "".join(f"\n  {text}" for text in profile_lines(result["profile"]))
    console.print(line)


def _floor_line(floor: dict | None) -> str:
    if not floor:
        return ""
    return (
        f"\n  compute floor {floor['compute_floor_ms']} ms ({floor['gmacs']} GMACs at the host's {floor['peak']} "
        f"GEMM peak, {floor['peak_gmacs_per_s']} GMAC/s): p50 is {floor['p50_over_floor']}x it"
    )


def _accuracy_lines(accuracy: dict) -> str:
    line = f"\n  accuracy ({accuracy['split']}, {accuracy['images']} images): mIoU {accuracy['miou']}, "
    line += f"pixel acc {accuracy['pixel_accuracy']}"
    if accuracy["agreement_with_reference"] is not None:
        line += f", {100 * accuracy['agreement_with_reference']:.3f}% of pixels agree with the reference"
    if accuracy.get("robustness"):
        line += "\n" + _robustness_line(accuracy["robustness"])
    for check in accuracy.get("on_target", []):
        line += "\n" + _on_target_line(check)
    return line


def _end_to_end_line(section: dict) -> str:
    from edgeseg.predict.kit import speed_line

    if "skipped" in section:
        return f"  frame to class map: not measured ({section['skipped']})"
    ratio = f", {section['ratio_p50']:.2f}x model-only p50" if section["ratio_p50"] else ""
    return (
        f"  frame to class map ({section['encoding']} files, {section['frames']} frames): {speed_line(section)}{ratio}"
    )


def _on_target_line(check: dict) -> str:
    stand_in = f" (emulated as {check['emulated']})" if check["emulated"] != check["isa"] else ""
    return (
        f"  on emulated {check['isa']}{stand_in}: mIoU {check['miou']}, "
        f"{100 * check['agreement_with_native']:.3f}% of pixels agree with the native run "
        f"({check['seconds_per_image']} s per image under qemu)"
    )


def _robustness_line(rob: dict) -> str:
    worst = min(rob["corruptions"].items(), key=lambda kv: kv[1]["miou"] if kv[1]["miou"] is not None else 1e9)
    return (
        f"  robustness ({rob['images']} images): clean mIoU {rob['clean_miou']}, corrupted {rob['mean_miou']} "
        f"(retention {rob['retention']}); worst: {worst[0]} {worst[1]['miou']} (retention {worst[1]['retention']})"
    )
