"""Two checkouts side by side: every line of ``run_all.py`` for a base revision and for this
tree, in one run, alternating part by part, with the change of each line.

Run: ``python benchmarks/compare.py --base de42418`` (about twice ``run_all.py``'s time per
round; ``--rounds 2`` keeps each line's best of two; ``--only p1,p2`` picks parts). The base
is checked out into a temporary git worktree (removed at the end); each side runs its own
``benchmarks/run_all.py`` against its own sources (``PYTHONPATH`` puts them first), so a
benchmark script adapted to a new internal API still measures the same thing on both. The
table goes to standard output and, with ``--out FILE``, to a Markdown file.

A line's change is this tree's figure over the base's, turned so that above 1 is better
(rates: higher is better; latency and memory: lower is better). Lines that exist on one
side only are listed as such. This is a report: it never fails on speed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOURCES = ("src", "bindings/anyio/src", "bindings/asyncio/src", "bindings/trio/src")
PARTS = ("p1", "p2", "p3", "p4", "p5", "p6", "p7")
SCALE = {"": 1.0, "k": 1e3, "M": 1e6}
LOWER_IS_BETTER = ("us", "KiB")
WORSE = 0.90
"""A line whose change is under this (more than 10 % worse) is flagged."""

Key = tuple[str, str]
"""(benchmark, line), as run_all.py's table names them."""


def parse_value(text: str) -> tuple[float, str]:
    """``"226.2 kframes/s"`` -> (226200.0, "frames/s"); ``"157.4 us"`` -> (157.4, "us")."""
    number, unit = text.split()[:2]
    if unit in LOWER_IS_BETTER or unit[:1] not in ("k", "M"):
        return float(number), unit
    return float(number) * SCALE[unit[0]], unit[1:]


def parse_results(markdown: str) -> dict[Key, tuple[float, str, float]]:
    """run_all.py's RESULTS.md rows: (bench, line) -> (roomwire figure, unit, ratio)."""
    rows: dict[Key, tuple[float, str, float]] = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 7 or not re.fullmatch(r"P\d", cells[0]):
            continue
        value, unit = parse_value(cells[2])
        rows[(cells[0], cells[1])] = (value, unit, float(cells[4]))
    return rows


def better(old: float, new: float, unit: str) -> float:
    """How much better ``new`` is than ``old`` (1.0 = the same, 1.1 = 10 % better)."""
    if not old or not new:
        return float("nan")
    return old / new if unit in LOWER_IS_BETTER else new / old


def run_side(tree: Path, part: str, timeout: float) -> dict[Key, tuple[float, str, float]]:
    """One part of ``run_all.py`` in ``tree``, with ``tree``'s sources first on the path."""
    env_path = ":".join(str(tree / s) for s in SOURCES)
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, str(tree / "benchmarks" / "run_all.py"), "--only", part]
        cmd += ["--out", out]
        proc = subprocess.run(
            cmd,
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONPATH": env_path},
            cwd=tree,
        )
        results = Path(out, "RESULTS.md")
        if not results.exists():
            print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
            return {}
        return parse_results(results.read_text(encoding="utf-8"))


def best(
    a: dict[Key, tuple[float, str, float]], b: dict[Key, tuple[float, str, float]]
) -> dict[Key, tuple[float, str, float]]:
    """Each line's better figure of two rounds."""
    merged = dict(a)
    for key, (value, unit, ratio) in b.items():
        old = merged.get(key)
        if old is None or better(old[0], value, unit) > 1:
            merged[key] = (value, unit, ratio)
    return merged


def table(
    base: dict[Key, tuple[float, str, float]],
    head: dict[Key, tuple[float, str, float]],
    base_name: str,
) -> list[str]:
    lines = [
        f"| benchmark | line | {base_name} | this tree | change (>1 better) |"
        " ratio to reference, base -> this | flag |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in [*base, *(k for k in head if k not in base)]:
        old, new = base.get(key), head.get(key)
        if old is None or new is None:
            side = "base only" if new is None else "this tree only"
            lines.append(f"| {key[0]} | {key[1]} | {_fig(old)} | {_fig(new)} | - | - | {side} |")
            continue
        change = better(old[0], new[0], new[1])
        flag = "**worse by more than 10 %**" if change < WORSE else ""
        lines.append(
            f"| {key[0]} | {key[1]} | {_fig(old)} | {_fig(new)} | {change:.2f} |"
            f" {old[2]:.2f} -> {new[2]:.2f} | {flag} |"
        )
    return lines


def _fig(row: tuple[float, str, float] | None) -> str:
    if row is None:
        return "-"
    value, unit, _ = row
    if unit in LOWER_IS_BETTER:
        return f"{value:.1f} {unit}"
    return f"{value / 1e6:.2f} M{unit}" if value >= 1e6 else f"{value / 1e3:.1f} k{unit}"


@contextmanager
def base_worktree(rev: str) -> Iterator[Path]:
    """``rev`` checked out in a temporary git worktree, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp, "base")
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
            check=True,
            capture_output=True,
        )
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                check=False,
                capture_output=True,
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--only", default=",".join(PARTS), help="parts to run (p1..p7)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per side; best is kept")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per part and side")
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    wanted = [p for p in PARTS if p in args.only.lower().split(",")]
    # run_all.py runs core.py once for p1 and p2, and loopback.py once for p3-p5.
    groups = [g for g in ("p1,p2", "p3,p4,p5", "p6", "p7") if set(g.split(",")) & set(wanted)]
    rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.base],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    started = time.perf_counter()
    base_rows: dict[Key, tuple[float, str, float]] = {}
    head_rows: dict[Key, tuple[float, str, float]] = {}
    with base_worktree(rev) as base_tree:
        for group in groups:
            for round_ in range(args.rounds):
                # Alternate which side goes first, so neither always gets the warmer machine.
                sides = [(base_tree, base_rows), (ROOT, head_rows)]
                for tree, rows in sides if round_ % 2 == 0 else sides[::-1]:
                    label = "base" if tree is base_tree else "this tree"
                    print(f"[{group}] round {round_ + 1}: {label}", flush=True)
                    rows.update(best(rows, run_side(tree, group, args.timeout)))
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Side by side: {rev} (base) and {head} (this tree)",
        "",
        f"Generated by `python benchmarks/compare.py --base {args.base}"
        f" --only {','.join(wanted)} --rounds {args.rounds}` on {date},"
        f" {time.perf_counter() - started:.0f} s; each"
        " figure is the best of its rounds, both sides measured in this one run, alternating.",
        "",
        *table(base_rows, head_rows, f"{rev} (base)"),
    ]
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
