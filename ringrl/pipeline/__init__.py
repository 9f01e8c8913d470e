"""The recipe as one pipeline: stages from a YAML config, each resuming from the last."""

from ringrl.pipeline.runner import run_pipeline
from ringrl.pipeline.spec import PipelineSpec, Stage, load_pipeline, parse_pipeline

__all__ = ["PipelineSpec", "Stage", "load_pipeline", "parse_pipeline", "run_pipeline"]
