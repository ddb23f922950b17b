"""Benchmark imports (#25 item 1): read what AIPerf, GuideLLM, vLLM, SGLang, inference-perf and MLPerf
wrote, and write the project's measured-point CSV (the columns `calibrate.load_points` reads, plus
unit-named distribution columns)."""
from .importer import COLUMNS, import_files, is_benchmark_file, write_points

__all__ = ["COLUMNS", "import_files", "is_benchmark_file", "write_points"]
