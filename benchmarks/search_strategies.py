"""Search strategies side by side, at equal kimg: which one's confirmed pick is best?

Each (strategy, study seed, kimg budget) runs one `voxgan-search` of the study with
`--kimg-budget` (no new trial once the search's trials have trained that many kimg) and its
confirmation (the top trials and the reference recipe retrained over the study's confirmation
seeds, `voxgan_search.records.confirmation`). Its result, one JSON line, is appended to `--results`
as soon as the study ends, so a comparison interrupted or extended later continues instead of
rerunning: a (strategy, seed, budget) already in the file is skipped. `--set` settings are
recorded with each result, and only results of the same study and settings are compared, so a
cheaper confirmation (`--set confirm.top=1`) never mixes with the study's own.

    python -m benchmarks.search_strategies --study default --budgets 800 --seeds 0 1 2
    python -m benchmarks.search_strategies --plot-only        # the picture and table from the results
    python -m benchmarks.search_strategies --study chairs32-cpu --budgets 32 --seeds 0 1 \
        --strategies tpe-asha random-asha --set confirm.top=1  # plot: docs/images/search-strategies-chairs32-cpu.png

Strategies:
- tpe-asha: today's default (TPE, ASHA);
- random-asha: random sampling with ASHA;
- tpe-fifo: TPE without pruning (every trial trains its whole budget);
- gp-asha: Optuna's Gaussian-process sampler with ASHA;
- pbt, pb2: population-based training (Ray Tune's PopulationBasedTraining, PB2): the budget buys
  budget / budget.kimg members (the reference recipe among them), each trained its whole budget;
- reference: no search; the same kimg spent on seeds of the reference recipe. Its pick's
  retrained score is the reference recipe's confirmed mean, since a seed does not carry over to a
  retraining; it is read from the other strategies' confirmations of the same study seed.

The plot (`--plot`): the confirmed pick's mean score minus the reference recipe's, both
retrained on the same seeds in the same study (0 where the pick is the reference recipe), against
kimg spent, median and range over study seeds per strategy. The difference, not the score, is
drawn because results appended on different machines compare only that way: another CPU's
arithmetic sends the same seed down another path (each result records its `cpu`).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import cpu_name

STRATEGIES = {
    "tpe-asha": ["--set", "sampler=tpe", "--set", "scheduler=asha"],
    "random-asha": ["--set", "sampler=random", "--set", "scheduler=asha"],
    "tpe-fifo": ["--set", "sampler=tpe", "--set", "scheduler=fifo"],
    "gp-asha": ["--set", "sampler=gp", "--set", "scheduler=asha"],
    "pbt": ["--set", "scheduler=pbt"],
    "pb2": ["--set", "scheduler=pb2"],
}
SEARCHED = tuple(STRATEGIES)
DODGE_KIMG = 0.8
"""The plot draws strategies this many kimg apart, so that equal results do not hide each other."""
POPULATIONS = ("pbt", "pb2")
"""Population-based training: the budget buys members (budget / budget.kimg of them), none stopped."""


def most_trials(study: str, budget: float) -> int:
    """--trials for a study the kimg budget ends: every trial trains at least to its first
    evaluation, so no more than this many fit in the budget (and a few in flight)."""
    from voxgan_search.study.spec import load_study

    return math.ceil(budget / load_study(study).budget.marks()[0]) + 8


def population_size(study: str, budget: float) -> int:
    """Members of a population that spends `budget` kimg: each trains the study's whole budget."""
    from voxgan_search.study.spec import load_study

    return max(2, round(budget / load_study(study).budget.kimg))


def run_one(study: str, strategy: str, seed: int, budget: float, settings: list[str], keep: Path | None = None) -> dict:
    """One study under one strategy: its search, its confirmation, and what they cost.

    With `keep`, the study's folder stays there (for `voxgan-search report` on it); otherwise it is
    temporary."""
    with tempfile.TemporaryDirectory() as folder:
        out = (keep / f"{Path(study).stem}-{strategy}-seed{seed}-{budget:g}kimg") if keep else Path(folder) / "run"
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            raise SystemExit(f"{out} exists: --keep never overwrites a study folder")
        limit = (["--trials", str(population_size(study, budget))] if strategy in POPULATIONS else
                 ["--trials", str(most_trials(study, budget)), "--kimg-budget", str(budget)])
        command = [sys.executable, "-m", "voxgan_search.cli", "--study", study, "--out", str(out), "--quiet",
                   *limit, "--set", f"seed={seed}", *STRATEGIES[strategy],
                   *[word for pair in settings for word in ("--set", pair)]]
        start = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.monotonic() - start
        if done.returncode != 0:
            raise SystemExit(f"{strategy} seed {seed}: voxgan-search exited {done.returncode}: {done.stderr[-2000:]}")
        summary = json.loads((out / "summary.json").read_text())
    confirmed = summary.get("confirmation") or {}
    configs = confirmed.get("configs", [])
    pick = min((c for c in configs if c["scores"]), key=lambda c: c["mean"], default=None)
    reference = next((c for c in configs if c["label"] == "reference recipe"), None)
    return {
        "study": study, "strategy": strategy, "seed": seed, "budget_kimg": budget, "settings": settings,
        "seconds": round(seconds, 1), "cpu": cpu_name(),
        "trials": summary["trials"], "kimg_spent": summary.get("kimg_spent"),
        "search_best": (summary.get("best") or {}).get("metrics", {}).get("score"),
        "pick": pick and {"trial": pick["trial"], "mean": pick["mean"], "std": pick["std"],
                          "difference": pick["difference"], "interval": pick["interval"]},
        "reference": reference and {"mean": reference["mean"], "std": reference["std"]},
        "verdict": confirmed.get("verdict"),
        "lines": confirmed.get("lines"),
    }


def read_results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def comparable(results: list[dict], study: str, settings: list[str]) -> list[dict]:
    """The results of `study` run with the same `--set` settings: only those compare."""
    return [r for r in results if r["study"] == study and r.get("settings", []) == settings]


def table(results: list[dict]) -> str:
    """Markdown: per strategy and budget, the confirmed pick's score (median, range over seeds),
    its paired difference to its own study's reference recipe, how often it beat the reference
    recipe (interval below 0) among the studies that confirmed one, kimg and minutes spent."""
    rows = ["| strategy | budget (kimg) | study seeds | confirmed pick, median (range) | pick - reference | "
            "beat the reference | kimg spent | minutes |", "|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["strategy"], r["budget_kimg"]), []).append(r)
    references: dict[tuple, list[float]] = {}
    for r in results:
        if r["reference"]:
            references.setdefault((r["budget_kimg"], r["seed"], r.get("cpu")), []).append(r["reference"]["mean"])
    for (strategy, budget), rs in sorted(groups.items()):
        picks = [r["pick"]["mean"] for r in rs if r["pick"]]
        beat = sum(1 for r in rs if r["pick"] and r["pick"]["interval"] and r["pick"]["interval"][1] < 0)
        unconfirmed = len(rs) - len(picks)  # a study with nothing to confirm is not a loss to the reference
        count = f"{beat} of {len(picks)}" + (f" ({unconfirmed} had nothing to confirm)" if unconfirmed else "")
        differences = [paired_difference(r) for r in rs if r["pick"]]
        rows.append(f"| {strategy} | {budget:g} | {len(rs)} | {median_range(picks)} | "
                    f"{median_range(differences, '+.3f')} | {count} | "
                    f"{median_range([r['kimg_spent'] for r in rs if r['kimg_spent']], '.1f')} | "
                    f"{median_range([r['seconds'] / 60 for r in rs], '.1f')} |")
    for budget in sorted({b for b, _, _ in references}):  # one mean per study seed and machine
        means = [statistics.fmean(v) for (b, _, _), v in references.items() if b == budget]
        seeds = len({seed for b, seed, _ in references if b == budget})
        rows.append(f"| reference (seeds only) | {budget:g} | {seeds} | {median_range(means)} | - | - | - | - |")
    return "\n".join(rows)


def paired_difference(result: dict) -> float:
    """The pick's mean score minus the reference recipe's over the same seeds, in the same study
    on the same machine: 0 when the pick is the reference recipe. Unlike the scores themselves it
    compares across machines, whose arithmetic sends the same seed down different paths."""
    return result["pick"]["difference"] or 0.0


def median_range(values: list[float], fmt: str = ".3f") -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}} to {max(values):{fmt}})"


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for index, strategy in enumerate(SEARCHED):
        dodge = (index - (len(SEARCHED) - 1) / 2) * DODGE_KIMG  # strategies at the same point stay visible
        rs = [r for r in results if r["strategy"] == strategy and r["pick"] and r["kimg_spent"]]
        budgets = sorted({r["budget_kimg"] for r in rs})
        if not budgets:
            continue
        x = [statistics.median([r["kimg_spent"] for r in rs if r["budget_kimg"] == b]) + dodge for b in budgets]
        scores = [[paired_difference(r) for r in rs if r["budget_kimg"] == b] for b in budgets]
        mid = [statistics.median(s) for s in scores]
        ax.errorbar(x, mid, yerr=[[m - min(s) for m, s in zip(mid, scores)], [max(s) - m for m, s in zip(mid, scores)]],
                    marker="o", capsize=3, label=strategy)
    ax.axhline(0.0, color="k", ls="--", lw=1, label="reference recipe")
    ax.set_xlabel(f"kimg spent by the search (median over study seeds; strategies {DODGE_KIMG:g} kimg apart)")
    ax.set_title(f"{results[0]['study']} study: confirmed pick - reference recipe (same seeds), "
                 "median and range over study seeds", fontsize=7.5)
    ax.set_ylabel("confirmed pick - reference recipe (lower is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--study", default="default")
    p.add_argument("--strategies", nargs="+", default=list(SEARCHED), choices=SEARCHED)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="study seeds (the sampler's)")
    p.add_argument("--budgets", nargs="+", type=float, default=[800.0], help="kimg each study's search may train")
    p.add_argument("--results", type=Path, default=Path("benchmarks/results-strategies.jsonl"))
    p.add_argument("--plot", type=Path, default=None,
                   help="default: docs/images/search-strategies.png for the default study, "
                        "search-strategies-<study>.png for another")
    p.add_argument("--plot-only", action="store_true")
    p.add_argument("--keep", type=Path, default=None, metavar="DIR",
                   help="keep each study's folder under DIR (default: temporary)")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="passed to voxgan-search as --set (e.g. confirm.seeds=5); recorded with each result, "
                        "and only results of the same settings are compared")
    args = p.parse_args()
    if not args.plot_only:
        for budget in args.budgets:
            for seed in args.seeds:
                for strategy in args.strategies:
                    done = {(r["study"], r["strategy"], r["seed"], r["budget_kimg"]) for r in comparable(
                        read_results(args.results), args.study, args.settings)}
                    if (args.study, strategy, seed, budget) in done:
                        continue
                    result = run_one(args.study, strategy, seed, budget, args.settings, args.keep)
                    with args.results.open("a") as f:
                        f.write(json.dumps(result) + "\n")
                    print(f"{strategy} seed {seed} budget {budget:g}: pick {result['pick'] and result['pick']['mean']}, "
                          f"{result['seconds']:.0f} s; {result['verdict']}", flush=True)
    results = comparable(read_results(args.results), args.study, args.settings)
    print(table(results))
    if results:
        path = args.plot or Path("docs/images") / (
            "search-strategies.png" if args.study == "default" else f"search-strategies-{Path(args.study).stem}.png")
        plot(results, path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
