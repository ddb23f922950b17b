"""Spreadsheets: a plan's tables, or a study's points, as one .xlsx workbook.

Budget studies end in a spreadsheet, so `fleet plan --output DIR` writes `plan.xlsx` beside its
CSVs (one sheet per table) and `fleet sweep|pareto|budget --xlsx` writes the study's points beside
its CSV. The sheets hold the same columns as the CSVs, whose names carry their units (`power_kw`,
`usd_per_mtok`); lists and records are JSON text, missing figures empty cells. openpyxl writes the
file (pandas' own xlsx engine); the bytes go through `reports.write_atomic` like every output.
"""
from __future__ import annotations

import io
import json
import math
from typing import Any, Mapping

import pandas as pd

SHEET_NAME_MAX = 31  # Excel's limit on a sheet name
_FORBIDDEN = set('[]:*?/\\')


def sheet_name(name: str) -> str:
    """A valid Excel sheet name: no []:*?/\\, at most 31 characters."""
    clean = "".join("_" if ch in _FORBIDDEN else ch for ch in name).strip("'") or "sheet"
    return clean[:SHEET_NAME_MAX]


def _cell(value: Any) -> Any:
    """A value openpyxl stores as it is: numbers and text; NaN/None empty; lists and dicts as JSON."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple, dict, set)):
        return json.dumps(sorted(value) if isinstance(value, set) else value, default=str, sort_keys=True)
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def workbook_bytes(sheets: Mapping[str, pd.DataFrame]) -> bytes:
    """One sheet per frame, in order: a bold header row (frozen), one row per record."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    wb.remove(wb.active)
    used: set[str] = set()
    for name, df in sheets.items():
        title = sheet_name(name)
        i = 2
        while title in used:  # two frames whose names clash once cut to 31 characters
            title = f"{sheet_name(name)[:SHEET_NAME_MAX - len(str(i)) - 1]}_{i}"
            i += 1
        used.add(title)
        ws = wb.create_sheet(title)
        ws.append([str(c) for c in df.columns])
        for cell in ws[1]:
            cell.font = Font(bold=True)
        ws.freeze_panes = "A2"
        for row in df.itertuples(index=False, name=None):
            ws.append([_cell(v) for v in row])
        for j, col in enumerate(df.columns, start=1):
            width = max([len(str(col))] + [len(str(v)) for v in df[col].head(200)]) if len(df) else len(str(col))
            ws.column_dimensions[ws.cell(row=1, column=j).column_letter].width = min(60, max(8, width + 2))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
