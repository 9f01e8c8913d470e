"""Run a pipeline: stages in order, each from an earlier stage's output model.

A finished stage leaves ``OUT/NAME/stage.json`` (its outputs) and is skipped on a
re-run; an SFT or RL stage that was interrupted resumes from its latest checkpoint; any
other interrupted stage starts again (its outputs are only ever written atomically). The
pipeline's ``OUT/summary.json`` lists the stages and their directories.

Under ``torchrun`` the ``sft`` and ``rl`` stages train data parallel on every rank
(:mod:`ringrl.distributed`); the other stages (curate, select, eval, report) run on
rank 0 while the others wait, and every rank then holds the stage's outputs. Rank 0
alone decides what is done and writes ``stage.json`` and ``summary.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ringrl.config import merge
from ringrl.distributed import broadcast_object, init_distributed
from ringrl.errors import UserError
from ringrl.pipeline.spec import PipelineSpec, Stage
from ringrl.utils.io import read_json, write_json

console = Console(stderr=True)


def _nested(config: dict[str, Any]) -> dict[str, Any]:
    """Config mapping whose keys may be dotted (``optim.lr``) -> nested mapping."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        parts = str(key).split(".")
        nested: Any = value
        for part in reversed(parts[1:]):
            nested = {part: nested}
        out = merge(out, {parts[0]: nested})
    return out


def stage_done(out: Path, stage: Stage) -> dict[str, Any] | None:
    f = out / stage.name / "stage.json"
    return read_json(f) if f.is_file() else None


DATA_PARALLEL_KINDS = ("sft", "rl")  # run on every rank under torchrun; the other kinds on rank 0


def check_stage_configs(spec: PipelineSpec, extra_overrides: dict[str, list[str]] | None = None) -> None:
    """Build and validate the config of every sft, rl and eval stage (with the command-line
    overrides) before any stage runs: a bad value in the last stage fails at once, naming the
    stage. What an earlier stage will produce (its model, curated data) stands in as a placeholder."""
    from ringrl.config import load_config
    from ringrl.errors import ConfigError
    from ringrl.eval.config import EvalConfig
    from ringrl.rl.config import RLConfig
    from ringrl.sft.config import SFTConfig

    classes = {"sft": SFTConfig, "rl": RLConfig, "eval": EvalConfig}
    for stage in spec.stages:
        if stage.kind not in classes:
            continue
        base = _nested(stage.config)
        if stage.kind != "eval":
            base = merge(base, {"out": str(Path(spec.out) / stage.name)})
            if stage.source:
                base = merge(base, {"model": {"path": f"<model of stage {stage.source}>"}})
            if stage.options.get("data_from"):
                base = merge(base, {"data": {"train": f"<data of stage {stage.options['data_from']}>"}})
        at = f"{spec.path}:{stage.line}" if stage.line else spec.path
        try:
            cfg: Any = load_config(
                classes[stage.kind], base=base, overrides=(extra_overrides or {}).get(stage.name, [])
            )
        except ConfigError as e:
            raise UserError(f"{at}: stage '{stage.name}': {e}") from None
        if stage.kind in ("sft", "rl") and not stage.options.get("data_from"):
            try:
                _check_data(cfg)
            except UserError as e:
                raise UserError(f"{at}: stage '{stage.name}': {e}") from None


def _check_data(cfg: Any) -> None:
    """Read and validate a training stage's own data files as the stage will (one extra pass over
    them), so a bad row in the last stage's data fails before the first stage trains."""
    from ringrl.rl.config import RLConfig
    from ringrl.rl.data import load_rl_rows
    from ringrl.sft.trainer import load_sft_data

    if isinstance(cfg, RLConfig):
        if cfg.data.train:
            load_rl_rows(cfg.data, custom_reward=bool(cfg.reward.functions()))
    elif cfg.data.train or cfg.data.eval:
        load_sft_data(cfg)


def run_pipeline(spec: PipelineSpec, extra_overrides: dict[str, list[str]] | None = None) -> dict[str, Any]:
    check_stage_configs(spec, extra_overrides)  # every stage's config, before any stage runs
    dist, _ = init_distributed("auto")
    main = dist.is_main
    out = Path(spec.out)
    if main:
        out.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, dict[str, Any]] = {}
    for stage in spec.stages:
        done = broadcast_object(stage_done(out, stage) if main else None, dist)
        if done is not None:
            if main:
                console.print(f"[dim]stage {stage.name} ({stage.kind}): done, skipped[/dim]")
            outputs[stage.name] = done
            continue
        if main:
            console.rule(f"stage {stage.name} ({stage.kind})")
        t0 = time.perf_counter()
        args = (spec, stage, outputs, (extra_overrides or {}).get(stage.name, []))
        if stage.kind in DATA_PARALLEL_KINDS:
            result = RUNNERS[stage.kind](*args)
        else:
            result = broadcast_object(RUNNERS[stage.kind](*args) if main else None, dist)
        result.update(
            {
                "name": stage.name,
                "kind": stage.kind,
                "dir": str(out / stage.name),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        outputs[stage.name] = result
        if main:
            write_json(out / stage.name / "stage.json", result)
            _write_summary(spec, outputs)
    if main:
        _write_summary(spec, outputs)
    return {"kind": "pipeline", "stages": [outputs[s.name] for s in spec.stages]}


def _write_summary(spec: PipelineSpec, outputs: dict[str, dict[str, Any]]) -> None:
    stages = [outputs[s.name] for s in spec.stages if s.name in outputs]
    write_json(Path(spec.out) / "summary.json", {"kind": "pipeline", "stages": stages})


def _source_model(stage: Stage, outputs: dict[str, dict[str, Any]]) -> str | None:
    if stage.source is None:
        return None
    model = outputs[stage.source].get("model")
    if not model:
        raise UserError(f"stage '{stage.name}': stage '{stage.source}' produced no model")
    return model


def _with_curated_data(stage: Stage, outputs: dict[str, dict[str, Any]], base: dict[str, Any]) -> dict[str, Any]:
    """``data_from: CURATE_STAGE`` makes a curate stage's output this stage's training data."""
    name = stage.options.get("data_from")
    if not name:
        return base
    return merge(base, {"data": {"train": outputs[name]["data"]}})


def with_wandb(spec: PipelineSpec, overrides: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """``overrides`` plus ``logger.wandb=true`` for every SFT and RL stage (``--wandb``); a stage's
    own override still wins, being later."""
    out = {name: list(items) for name, items in (overrides or {}).items()}
    for stage in spec.stages:
        if stage.kind in ("sft", "rl"):
            out[stage.name] = ["logger.wandb=true", *out.get(stage.name, [])]
    return out


def _wandb_names(spec: PipelineSpec, stage: Stage) -> dict[str, Any]:
    """One W&B run per training stage, named PIPELINE/STAGE and grouped under the pipeline's name."""
    name = Path(spec.out).resolve().name
    return {"logger": {"wandb_group": name, "wandb_name": f"{name}/{stage.name}"}}


# --------------------------------------------------------------------------- stage kinds
def _run_sft(spec: PipelineSpec, stage: Stage, outputs, overrides: list[str]) -> dict[str, Any]:
    from ringrl.config import load_config
    from ringrl.sft.config import SFTConfig
    from ringrl.sft.trainer import train_sft

    base = merge(_wandb_names(spec, stage), _nested(stage.config))
    base = merge(base, {"out": str(Path(spec.out) / stage.name), "resume": True})
    src = _source_model(stage, outputs)
    if src:
        base = merge(base, {"model": {"path": src}})
    base = _with_curated_data(stage, outputs, base)
    cfg = load_config(SFTConfig, base=base, overrides=overrides)
    summary = train_sft(cfg)
    last = summary["checkpoints"][-1]
    return {
        "model": str((Path(cfg.out) / last["path"]).resolve()),
        "checkpoints": summary["checkpoints"],
        "tokens_seen": summary["tokens_seen"],
    }


def adopt_sft_run(out: Path, name: str, sft_dir: Path) -> bool:
    """Mark stage ``name`` of the pipeline in ``out`` as done by the finished SFT run in
    ``sft_dir`` (its ``summary.json`` lists the checkpoints), so that a re-run trains no
    SFT. Returns False, changing nothing, when that stage already has a result."""
    if (out / name / "stage.json").is_file():
        return False
    try:
        summary = read_json(sft_dir / "summary.json")
        last = summary["checkpoints"][-1]
    except (UserError, OSError, ValueError, KeyError, IndexError, TypeError):
        raise UserError(f"--sft {sft_dir}: not a finished SFT run (no summary.json with checkpoints)") from None
    result = {
        "model": str((sft_dir / last["path"]).resolve()),
        "checkpoints": summary["checkpoints"],
        "tokens_seen": summary.get("tokens_seen"),
        "name": name,
        "kind": "sft",
        "dir": str(sft_dir.resolve()),
        "seconds": 0.0,
        "adopted": True,
    }
    write_json(out / name / "stage.json", result)
    return True


def _run_select(spec: PipelineSpec, stage: Stage, outputs, overrides: list[str]) -> dict[str, Any]:
    from ringrl.sft.select import PAPER_BAND
    from ringrl.sft.selectcli import print_checkpoints, select_run, selection_record

    band = stage.options.get("band", list(PAPER_BAND))
    sft_dir = Path(outputs[stage.source]["dir"])
    if "epoch" in stage.options:  # a fixed epoch (experiments compare every epoch)
        ckpts = read_json(sft_dir / "summary.json")["checkpoints"]
        chosen = next((c for c in ckpts if c.get("epoch") == stage.options["epoch"]), None)
        if chosen is None:
            raise UserError(f"stage '{stage.name}': {sft_dir} has no checkpoint for epoch {stage.options['epoch']}")
        record = selection_record(sft_dir, chosen, None, None, f"epoch {stage.options['epoch']} as configured")
        write_json(Path(spec.out) / stage.name / "selection.json", record)
        return {"model": record["path"], "selection": record}
    sel, record = select_run(sft_dir, float(band[0]), float(band[1]))
    print_checkpoints(read_json(sft_dir / "summary.json")["checkpoints"], chosen=record["chosen"])
    console.print(("" if sel.in_band else "[yellow]warning:[/yellow] ") + sel.reason)
    (Path(spec.out) / stage.name).mkdir(parents=True, exist_ok=True)
    write_json(Path(spec.out) / stage.name / "selection.json", record)
    return {"model": record["path"], "selection": record}


def _run_rl(spec: PipelineSpec, stage: Stage, outputs, overrides: list[str]) -> dict[str, Any]:
    from ringrl.config import load_config
    from ringrl.rl.config import RLConfig
    from ringrl.rl.trainer import train_rl

    base = merge({"save_every": 10, **_wandb_names(spec, stage)}, _nested(stage.config))
    base = merge(base, {"out": str(Path(spec.out) / stage.name), "resume": True})
    src = _source_model(stage, outputs)
    if src:
        base = merge(base, {"model": {"path": src}})
    base = _with_curated_data(stage, outputs, base)
    cfg = load_config(RLConfig, base=base, overrides=overrides)
    summary = train_rl(cfg)
    return {
        "model": str((Path(cfg.out) / "checkpoints" / "final").resolve()),
        **{k: summary[k] for k in ("algo", "steps", "rl_tokens", "sft_tokens", "reward_first", "reward_last")},
    }


def _run_eval(spec: PipelineSpec, stage: Stage, outputs, overrides: list[str]) -> dict[str, Any]:
    from ringrl.config import load_config
    from ringrl.eval.config import EvalConfig
    from ringrl.eval.runner import run_eval

    cfg = load_config(EvalConfig, base=_nested(stage.config), overrides=overrides)
    stage_dir = Path(spec.out) / stage.name
    results: dict[str, Any] = {}
    for name in stage.options.get("models", []):
        model = outputs[name].get("model")
        if not model:
            raise UserError(f"stage '{stage.name}': stage '{name}' produced no model")
        console.print(f"evaluating {name}: {model}")
        results[name] = run_eval(model, list(stage.options["benchmarks"]), cfg, output=stage_dir / f"{name}.json")
    write_json(
        stage_dir / "summary.json",
        {"kind": "eval", "models": results, "eval": results[stage.options["models"][-1]] if results else {}},
    )
    print_eval(results)
    return {"eval": results}


def _run_report(spec: PipelineSpec, stage: Stage, outputs, overrides: list[str]) -> dict[str, Any]:
    from ringrl.report import build_report

    _write_summary(spec, outputs)
    out = Path(spec.out) / stage.name / "report.html"
    build_report([Path(spec.out)], out)
    console.print(f"report: {out}")
    return {"report": str(out)}


def _run_curate(spec: PipelineSpec, stage: Stage, outputs, overrides: list[str]) -> dict[str, Any]:
    from ringrl.curate import CurateConfig, benchmark_files, curate_file, find_data_dir

    opts = stage.options
    if "input" not in opts:
        raise UserError(f"stage '{stage.name}': a curate stage needs 'input' (a JSONL file)")
    data_dir = Path(opts["data_dir"]) if opts.get("data_dir") else find_data_dir()
    files = benchmark_files(data_dir, opts.get("benchmarks")) if data_dir else []
    out_file = Path(spec.out) / stage.name / "curated.jsonl"
    curate_file(Path(opts["input"]), out_file, CurateConfig(), files)
    return {"data": str(out_file)}


RUNNERS = {
    "sft": _run_sft,
    "select": _run_select,
    "rl": _run_rl,
    "eval": _run_eval,
    "report": _run_report,
    "curate": _run_curate,
}


def print_eval(results: dict[str, dict[str, Any]]) -> None:
    if not results:
        return
    table = Table(title="evaluation (pass@1, avg over samples)")
    table.add_column("model")
    benches = sorted({b for r in results.values() for b in r})
    for b in benches:
        table.add_column(b, justify="right")
    for model, res in results.items():
        row = [model]
        for b in benches:
            e = res.get(b, {})
            v = e.get("pass_at_1", e.get("avg@k"))
            row.append("-" if v is None else f"{100 * v:.1f}")
        table.add_row(*row)
    Console().print(table)
