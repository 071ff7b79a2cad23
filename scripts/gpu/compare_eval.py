"""Print and save the before/after table of two `hifigan evaluate` runs (their metrics.json)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

# (key, label, higher is better)
METRICS = [("mel_l1", "mel L1", False), ("mr_stft", "MR-STFT", False), ("pesq", "PESQ", True),
           ("stoi", "STOI", True), ("mcd", "MCD dB", False), ("f0_rmse_cents", "F0 RMSE cents", False),
           ("vuv_f1", "V/UV F1", True)]


def summary(path: Path) -> dict:
    return json.loads(path.read_text())["summary"]["hifigan"]


def main(before_path: str, after_path: str, out_path: str) -> None:
    before, after = summary(Path(before_path)), summary(Path(after_path))
    rows = []
    print(f"{'metric':<15}{'before':>12}{'after':>12}{'change':>12}  better")
    for key, label, higher in METRICS:
        b, a = before.get(key, {}).get("mean"), after.get(key, {}).get("mean")
        if b is None or a is None:
            print(f"{label:<15}{'n/a':>12}{'n/a':>12}")
            continue
        improved = (a > b) if higher else (a < b)
        print(f"{label:<15}{b:>12.4f}{a:>12.4f}{a - b:>+12.4f}  {'yes' if improved else 'no'}")
        rows.append({"metric": key, "before": b, "after": a, "higher_is_better": higher, "improved": improved,
                     "clips": after.get(key, {}).get("n")})
    Path(out_path).write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
