"""The strategy comparison's table pairs each pick with the reference recipe of its own study."""

from __future__ import annotations

from pathlib import Path

from benchmarks.machine import cpu_name
from benchmarks.search_strategies import table


def result(seed: int, pick_mean: float, difference: float | None, reference: float, cpu: str) -> dict:
    return {"study": "default", "strategy": "pbt", "seed": seed, "budget_kimg": 96.0, "settings": [],
            "seconds": 300.0, "cpu": cpu, "trials": {"COMPLETE": 8}, "kimg_spent": 96.0,
            "pick": {"trial": 3, "mean": pick_mean, "std": 0.01, "difference": difference,
                     "interval": None if difference is None else [difference - 0.05, difference + 0.05]},
            "reference": {"mean": reference, "std": 0.02}}


def test_the_table_gives_each_pick_its_difference_to_its_own_studys_reference():
    # Two machines whose reference recipes score 0.30 and 0.36 on the same seeds: a pick 0.02
    # below the first machine's reference and a pick that is the second's reference recipe.
    rows = table([result(0, 0.28, -0.02, 0.30, "cpu A"), result(1, 0.36, None, 0.36, "cpu B")]).splitlines()
    pbt = next(row for row in rows if row.startswith("| pbt |"))
    cells = [cell.strip() for cell in pbt.strip("|").split("|")]
    assert cells[3] == "0.320 (0.280 to 0.360)"        # the scores, which mix the machines
    assert cells[4] == "-0.010 (-0.020 to +0.000)"     # the paired differences, which do not
    assert cells[5] == "0 of 2"
    reference = next(row for row in rows if row.startswith("| reference (seeds only) |"))
    assert reference.startswith("| reference (seeds only) | 96 | 2 | 0.330 (0.300 to 0.360) |")


def test_the_cpu_is_named_with_its_family_and_model():
    fields = {key.strip(): value.strip() for key, _, value in
              (line.partition(":") for line in Path("/proc/cpuinfo").read_text().splitlines())}
    assert cpu_name() == f"{fields['model name']} (family {fields['cpu family']}, model {fields['model']})"
