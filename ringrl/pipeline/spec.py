"""Pipeline specs: an ordered list of stages, each starting from an earlier stage's output.

YAML form (``ringrl pipeline CONFIG``)::

    out: runs/my-pipeline
    stages:
      - {name: sft, kind: sft, config: {epochs: 4}}
      - {name: select, kind: select, from: sft, band: [0.3, 0.5]}
      - {name: rl-math, kind: rl, from: select, config: {data: {tasks: [math]}, steps: 40}}
      - {name: eval, kind: eval, models: [select, rl-math], benchmarks: [synthetic-math]}
      - {name: report, kind: report}

Stage kinds: ``curate``, ``sft``, ``select``, ``rl``, ``eval``, ``report``; an sft or rl
stage may take ``data_from: CURATE_STAGE`` to train on that stage's output. ``config`` holds
dotted-key overrides (or nested mappings) of that stage's config; ``from`` names the
stage whose output model this one starts from (an ``sft`` stage may also take ``from``).
Every stage writes ``OUT/NAME/``. Validation runs before any stage starts.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from ringrl.errors import UserError

STAGE_KINDS = ("curate", "sft", "select", "rl", "eval", "report")
# the keys a stage of each kind may have besides name, kind, from and config
STAGE_OPTIONS: dict[str, tuple[str, ...]] = {
    "curate": ("input", "data_dir", "benchmarks"),
    "sft": ("data_from",),
    "select": ("band", "epoch"),
    "rl": ("data_from",),
    "eval": ("models", "benchmarks"),
    "report": (),
}
CONFIGURED_KINDS = ("sft", "rl", "eval")  # the kinds that take a 'config' section


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str
    source: str | None = None  # 'from': the stage whose output model this one starts from
    config: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # kind-specific keys (band, models, benchmarks, ...)
    line: int | None = None


@dataclass(frozen=True)
class PipelineSpec:
    out: str
    stages: list[Stage]
    path: str = "<pipeline>"

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = cast(dict[str, Any], yaml.SafeLoader.construct_mapping(loader, node))
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _strip_lines(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_lines(v) for k, v in obj.items() if k != "__line__"}
    if isinstance(obj, list):
        return [_strip_lines(v) for v in obj]
    return obj


def load_pipeline(path: str | Path, out: str | None = None) -> PipelineSpec:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: pipeline config not found")
    try:
        data = yaml.load(p.read_text(), Loader=_LineLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise UserError(f"{p}:{mark.line + 1 if mark else '?'}: invalid YAML ({getattr(e, 'problem', e)})") from None
    return parse_pipeline(data, str(p), out)


def parse_pipeline(data: Any, where: str, out: str | None = None) -> PipelineSpec:
    if not isinstance(data, dict) or not isinstance(data.get("stages"), list):
        raise UserError(f"{where}: a pipeline config is a mapping with a 'stages' list")
    unknown = set(data) - {"out", "stages", "__line__"}
    if unknown:
        raise UserError(f"{where}:{data.get('__line__', 1)}: unknown key '{sorted(unknown)[0]}' (expected out, stages)")
    stages: list[Stage] = []
    for i, raw in enumerate(data["stages"]):
        line = raw.get("__line__") if isinstance(raw, dict) else None
        at = f"{where}:{line}" if line else f"{where}: stages[{i}]"
        if not isinstance(raw, dict) or "name" not in raw or "kind" not in raw:
            raise UserError(f"{at}: each stage needs 'name' and 'kind'")
        kind = raw["kind"]
        if kind not in STAGE_KINDS:
            raise UserError(f"{at}: unknown stage kind '{kind}' (known: {', '.join(STAGE_KINDS)})")
        raw = _strip_lines(raw)
        options = {k: v for k, v in raw.items() if k not in ("name", "kind", "from", "config")}
        for key in options:
            if key not in STAGE_OPTIONS[kind]:
                known = ", ".join(
                    ("name", "kind", "from", *(("config",) if kind in CONFIGURED_KINDS else ()), *STAGE_OPTIONS[kind])
                )
                close = difflib.get_close_matches(str(key), STAGE_OPTIONS[kind] + ("config", "from"), n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise UserError(f"{at}: unknown key '{key}' in a {kind} stage ({hint}known: {known})")
        if raw.get("config") and kind not in CONFIGURED_KINDS:
            raise UserError(
                f"{at}: a {kind} stage has no 'config' (its settings are the keys {', '.join(STAGE_OPTIONS[kind])})"
            )
        config = raw.get("config") or {}
        if not isinstance(config, dict):
            raise UserError(f"{at}: 'config' must be a mapping of config keys to values")
        stages.append(Stage(str(raw["name"]), kind, raw.get("from"), config, options, line))
    spec = PipelineSpec(out or str(data.get("out", "runs/pipeline")), stages, where)
    validate_pipeline(spec)
    return spec


def validate_pipeline(spec: PipelineSpec) -> None:
    """Names unique (so no two stages write one directory), sources exist and come earlier."""
    seen: dict[str, Stage] = {}
    for s in spec.stages:
        at = f"{spec.path}:{s.line}" if s.line else spec.path
        if s.name in seen:
            raise UserError(
                f"{at}: stage '{s.name}' writes the same directory as the stage at line {seen[s.name].line}"
            )
        if s.source is not None:
            if s.source not in seen:
                raise UserError(f"{at}: stage '{s.name}' starts from '{s.source}', which is not an earlier stage")
            if seen[s.source].kind in ("eval", "report"):
                raise UserError(f"{at}: stage '{s.name}' starts from '{s.source}', which produces no model")
        if s.kind in ("select",) and (s.source is None or seen[s.source].kind != "sft"):
            raise UserError(f"{at}: a select stage needs 'from' naming an earlier sft stage")
        if s.kind == "rl" and s.source is None and "model.path" not in s.config and "model" not in s.config:
            raise UserError(f"{at}: rl stage '{s.name}' needs 'from' (an earlier stage) or config model.path")
        data_from = s.options.get("data_from")
        if data_from is not None:
            if s.kind not in ("sft", "rl"):
                raise UserError(f"{at}: 'data_from' applies to sft and rl stages, not '{s.kind}'")
            if data_from not in seen or seen[data_from].kind != "curate":
                raise UserError(
                    f"{at}: stage '{s.name}' takes data from '{data_from}', which is not an earlier curate stage"
                )
        band = s.options.get("band")
        if band is not None and not (
            isinstance(band, list)
            and len(band) == 2
            and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in band)
            and band[0] <= band[1]
        ):
            raise UserError(
                f"{at}: stage '{s.name}': 'band' must be [LOW, HIGH] (two numbers, LOW <= HIGH), got {band!r}"
            )
        epoch = s.options.get("epoch")
        if epoch is not None and (not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1):
            raise UserError(f"{at}: stage '{s.name}': 'epoch' must be an epoch number >= 1, got {epoch!r}")
        if s.kind == "curate" and "input" not in s.options:
            raise UserError(f"{at}: curate stage '{s.name}' needs 'input' (a JSONL file)")
        if s.kind == "eval":
            for m in s.options.get("models", []):
                if m not in seen:
                    raise UserError(f"{at}: eval stage '{s.name}' names model '{m}', which is not an earlier stage")
            if not s.options.get("benchmarks"):
                raise UserError(f"{at}: eval stage '{s.name}' needs a 'benchmarks' list")
        seen[s.name] = s
