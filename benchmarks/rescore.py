"""Recompute a suite folder's BD figures, strongest variants and summary.md from the points its
reports measured, under this checkout's rules (codec.measure.bd): for reports written before a
change of those rules. The points, the plots and everything measured stay as they are.

Usage: python benchmarks/rescore.py SUITE_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from codec.measure.bd import compare
from codec.measure.bench import suite_clips
from codec.measure.tables import summary_markdown


def main(folder: Path) -> None:
    reports = {}
    for name in suite_clips():
        path = folder / f"{name}.json"
        report = json.loads(path.read_text())
        report.update(compare(report["points"], list(report["strongest"])))
        path.write_text(json.dumps(report, indent=2) + "\n")
        reports[name] = report
    minutes = {r["model"]["trained_here_minutes"] for r in reports.values()}
    if len(minutes) != 1:
        sys.exit(f"the reports were trained for different budgets: {minutes}")
    (folder / "summary.md").write_text(summary_markdown(reports, minutes.pop()))
    print(f"rescored {', '.join(reports)}; wrote {folder / 'summary.md'}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
