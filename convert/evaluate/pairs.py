"""Pair lists for verification: LFW `pairs.txt` (View 2) or TSV `a<TAB>b<TAB>same<TAB>fold`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate.edge.errors import DatasetError
from facegate.edge.images import list_images


@dataclass(frozen=True)
class Pair:
    a: Path
    b: Path
    same: bool
    fold: int


def _lfw_path(root: Path, name: str, idx: str) -> Path:
    return root / name / f"{name}_{int(idx):04d}.jpg"


def read_lfw_pairs(pairs_file: str | Path, images_root: str | Path) -> list[Pair]:
    """Parse LFW's pairs.txt: header 'folds<TAB>n', then per fold n same lines and n different lines."""
    pairs_file, root = Path(pairs_file), Path(images_root)
    lines = _read_lines(pairs_file)
    try:
        n_folds, per = (int(v) for v in lines[0].split())
    except ValueError as exc:
        raise DatasetError(f"{pairs_file}: first line must be '<folds> <pairs per half-fold>'") from exc
    body = lines[1:]
    if len(body) != n_folds * 2 * per:
        raise DatasetError(f"{pairs_file}: expected {n_folds * 2 * per} pair lines, found {len(body)}")
    pairs = []
    for i, line in enumerate(body):
        fold = i // (2 * per)
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) == 3:
            pairs.append(Pair(_lfw_path(root, parts[0], parts[1]), _lfw_path(root, parts[0], parts[2]), True, fold))
        elif len(parts) == 4:
            pairs.append(Pair(_lfw_path(root, parts[0], parts[1]), _lfw_path(root, parts[2], parts[3]), False, fold))
        else:
            raise DatasetError(f"{pairs_file}:{i + 2}: cannot parse pair line {line!r}")
    return pairs


def read_tsv_pairs(pairs_file: str | Path, root: str | Path) -> list[Pair]:
    """Parse `path_a<TAB>path_b<TAB>same(1|0)<TAB>fold(0-9)` lines; '#' starts a comment."""
    pairs_file, root = Path(pairs_file), Path(root)
    pairs = []
    for i, line in enumerate(_read_lines(pairs_file), start=1):
        if line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 4 or parts[2] not in ("0", "1") or not parts[3].isdigit():
            raise DatasetError(f"{pairs_file}:{i}: expected 'path_a<TAB>path_b<TAB>same(1|0)<TAB>fold', got {line!r}")
        pairs.append(Pair(root / parts[0], root / parts[1], parts[2] == "1", int(parts[3])))
    return pairs


def read_pairs(pairs_file: str | Path, root: str | Path) -> list[Pair]:
    """Either format, told apart by the first line (LFW's header is two integers)."""
    lines = _read_lines(Path(pairs_file))
    head = lines[0].split()
    if len(head) == 2 and all(h.isdigit() for h in head):
        return read_lfw_pairs(pairs_file, root)
    return read_tsv_pairs(pairs_file, root)


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        raise DatasetError(f"pairs file not found: {path}")
    lines = [ln.rstrip("\r\n") for ln in path.read_text().splitlines() if ln.strip()]
    if not lines:
        raise DatasetError(f"pairs file is empty: {path}")
    return lines


def balanced_subset(pairs: list[Pair], max_pairs: int | None, seed: int = 0) -> list[Pair]:
    """At most max_pairs pairs, the same number from every fold and half same / half different,
    chosen with a fixed seed so quick runs are comparable with each other."""
    if not max_pairs or max_pairs >= len(pairs):
        return pairs
    folds = sorted({p.fold for p in pairs})
    per_cell = max(1, max_pairs // (2 * len(folds)))
    rng = np.random.default_rng(seed)
    out = []
    for f in folds:
        for same in (True, False):
            cell = [p for p in pairs if p.fold == f and p.same == same]
            take = rng.choice(len(cell), size=min(per_cell, len(cell)), replace=False)
            out.extend(cell[i] for i in sorted(take))
    return out


def check_images_exist(pairs: list[Pair]) -> None:
    missing = sorted({str(p) for pair in pairs for p in (pair.a, pair.b) if not p.exists()})
    if missing:
        raise DatasetError(f"{len(missing)} images named in the pairs file are missing, e.g. {missing[0]}")


def identity_images(folder: Path, per_identity: int) -> tuple[list[Path], list[str]]:
    """Up to `per_identity` images of every identity folder that has two or more (where pairs exist)."""
    if not folder.is_dir():
        raise DatasetError(f"identity folder not found: {folder}")
    paths, labels = [], []
    for person in sorted(p for p in folder.iterdir() if p.is_dir()):
        imgs = list_images(person)[:per_identity]
        if len(imgs) >= 2:
            paths += imgs
            labels += [person.name] * len(imgs)
    if len(set(labels)) < 2:
        raise DatasetError(f"need at least two identity folders with 2+ images under {folder}")
    return paths, labels
