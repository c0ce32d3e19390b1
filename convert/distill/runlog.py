"""The training log both distillers keep: one CSV row per epoch, rewritten whole so new columns
(a loss term switched on later, a resumed run) line up with the old rows."""
from __future__ import annotations

import csv
from pathlib import Path


def append_csv_row(path: Path, row: dict) -> None:
    rows = list(csv.DictReader(path.open())) if path.exists() else []
    rows.append({k: str(v) for k, v in row.items()})
    keys = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
