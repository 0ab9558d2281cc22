"""What stopping degenerate trials at their first evaluation saves, read from a study run without it.

Run a study with `--set stop_degenerate=false`: every search trial still records whether its
first samples were degenerate (`degenerate_at_first`) and trains on as ASHA decides. Then

    python -m benchmarks.degeneracy_savings runs/default

prints how many trials were flagged, how far ASHA let them train, the seconds they spent after
their first evaluation (what the stop saves: each flagged trial's time less the median time of
the trials ASHA stopped at its first rung, which trained to the first evaluation only), and
whether any flagged trial ended better than the median finished trial (a false alarm).
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter
from pathlib import Path

from optuna.trial import TrialState

from voxgan_search.coordination.storage import open_existing_study
from voxgan_search.records.trial_record import CURVE_ATTR, DEGENERATE_ATTR, SECONDS_ATTR, is_confirmation


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="the study's output folder")
    args = p.parse_args()
    study = open_existing_study(None, args.run, None)
    trials = [t for t in study.get_trials(deepcopy=False) if not is_confirmation(t) and t.user_attrs.get(CURVE_ATTR)]
    first_mark = min(t.user_attrs[CURVE_ATTR][0][0] for t in trials)
    only_first = [t.user_attrs[SECONDS_ATTR] for t in trials if len(t.user_attrs[CURVE_ATTR]) == 1
                  and t.state == TrialState.PRUNED and SECONDS_ATTR in t.user_attrs]
    to_first = statistics.median(only_first) if only_first else 0.0
    flagged = [t for t in trials if DEGENERATE_ATTR in t.user_attrs]
    saved = sum(max(0.0, t.user_attrs.get(SECONDS_ATTR, 0.0) - to_first) for t in flagged)
    total = sum(t.user_attrs.get(SECONDS_ATTR, 0.0) for t in trials)
    finished = sorted(t.user_attrs["score"] for t in trials if t.state == TrialState.COMPLETE)
    print(f"{len(trials)} search trials, first evaluation at {first_mark:g} kimg ({to_first:.1f} s median to it)")
    print(f"degenerate at the first evaluation: {len(flagged)}  ({dict(Counter(t.user_attrs[DEGENERATE_ATTR].split(' (')[0] for t in flagged))})")
    print(f"  how far ASHA let them train (kimg): {dict(Counter(t.user_attrs[CURVE_ATTR][-1][0] for t in flagged))}")
    print(f"  seconds they spent after their first evaluation: {saved:.0f} of the trials' {total:.0f} "
          f"({saved / max(total, 1e-9):.1%} of the search's trial-seconds; the wall time saved is that share of the search's)")
    if finished:
        median = finished[len(finished) // 2]
        good = [t.number for t in flagged if t.state == TrialState.COMPLETE and t.user_attrs["score"] <= median]
        best = min((t.user_attrs["score"] for t in flagged if t.state == TrialState.COMPLETE), default=None)
        print(f"  flagged trials that finished at or below the median finished score ({median:.3f}): {good or 'none'}"
              + (f"; the best flagged finished {best:.3f}, the study's best {finished[0]:.3f}" if best is not None else ""))


if __name__ == "__main__":
    main()
