"""Data curation (the Ring-lite paper's data curation; docs/curate.md).

Cleansing rules, exact and near de-duplication, benchmark decontamination and
model-aware difficulty, each a pure function over rows returning what it kept and what
it removed with a reason; :func:`curate_file` chains them and writes the report.
"""

from ringrl.curate.cleansing import CLEANSING_RULES, cleansing_reason
from ringrl.curate.core import (
    FILTERS,
    REPORT_NAME,
    CurateConfig,
    CurationResult,
    ParseError,
    apply_cleansing,
    curate_entries,
    curate_file,
    read_entries,
)
from ringrl.curate.data_dir import find_data_dir
from ringrl.curate.decontam import (
    BenchmarkItem,
    ContaminationIndex,
    benchmark_files,
    build_index,
    drop_contaminated,
    load_benchmark_items,
)
from ringrl.curate.dedup import NearDupConfig, drop_exact_duplicates, drop_near_duplicates, jaccard
from ringrl.curate.difficulty import SolveRateFn, drop_by_solve_rate
from ringrl.curate.text import normalize_text, word_ngrams
from ringrl.curate.types import Entry, Removal, StageResult

__all__ = [
    "CLEANSING_RULES",
    "FILTERS",
    "REPORT_NAME",
    "BenchmarkItem",
    "ContaminationIndex",
    "CurateConfig",
    "CurationResult",
    "Entry",
    "NearDupConfig",
    "ParseError",
    "Removal",
    "SolveRateFn",
    "StageResult",
    "apply_cleansing",
    "benchmark_files",
    "build_index",
    "cleansing_reason",
    "curate_entries",
    "curate_file",
    "drop_by_solve_rate",
    "drop_contaminated",
    "drop_exact_duplicates",
    "drop_near_duplicates",
    "find_data_dir",
    "jaccard",
    "load_benchmark_items",
    "normalize_text",
    "read_entries",
    "word_ngrams",
]
