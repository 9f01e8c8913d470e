"""Dataset rows (DESIGN.md), loading from JSONL/Parquet/`datasets` folders, prompts."""
