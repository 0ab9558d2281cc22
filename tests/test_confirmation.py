"""A study's confirmation, its score's standard error, and the stop for degenerate samples.

Known answers for the pieces (the bootstrap's resampled score, the paired interval, the
degeneracy verdicts), then one real `voxgan-search` with Ray and SQLite: the degenerate trials
of its search stop at their first evaluation with the reason, the driver is killed (SIGKILL)
while a confirmation run is RUNNING, `--resume` ends the confirmation with exactly
(top + 1) x seeds runs, and `export` writes the confirmed pick.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from voxgan import metrics
from voxgan.config import Config
from voxgan.degeneracy import degenerate_reason
from voxgan.scoring import score_parts
from voxgan_search.coordination.storage import open_existing_study
from voxgan_search.records import confirmation
from voxgan_search.records.confirmation import paired
from voxgan_search.records.trial_record import CONFIG_ATTR, REFERENCE_ATTR
from voxgan_search.study.spec import StudySpec

from test_metrics import random_boxes
from test_resume import STUDY as RESUME_STUDY
from conftest import kill_process_group

BIN = Path(os.environ.get("VOXGAN_BIN", Path(__import__("sys").executable).parent))
TOP, SEEDS = 1, 2
STUDY = {**RESUME_STUDY, "name": "confirm", "stop_degenerate": True,
         "confirm": {"top": TOP, "seeds": SEEDS, "kimg": 0.64}}  # runs long enough to be killed in one


def evaluation(fake: np.ndarray, real: np.ndarray, train: np.ndarray):
    return score_parts(torch.from_numpy(fake), torch.from_numpy(fake[::-1].copy()), torch.from_numpy(real),
                       torch.from_numpy(train[: len(fake)]), torch.from_numpy(train), 0.0, c2st_epochs=1, seed=0)[0]


def test_the_resampled_score_of_the_drawn_sets_is_the_score():
    real, fake, train = random_boxes(12, 8, 1), random_boxes(10, 8, 2), random_boxes(20, 8, 3)
    parts = evaluation(fake, real, train)
    n_real, n_fake, n_heldout = parts.sizes
    same = parts.resampled_score(np.arange(n_real), np.arange(n_fake), np.arange(n_heldout))
    assert same == pytest.approx(parts.scores()["score"], abs=1e-12)
    assert parts.standard_error() > 0


def test_drawn_copies_are_left_out_of_their_own_neighbour_search():
    # real = shape A drawn twice, generated = shape B, disjoint from A (IoU 0)
    rr, ff, rf = np.ones((2, 2)), np.ones((1, 1)), np.zeros((2, 1))
    # as two real shapes, each A's nearest is the other (IoU 1): 1, 1, and B's is an A: 0
    assert metrics.one_nna_from_iou(rr, ff, rf) == pytest.approx(2 / 3)
    # as one shape drawn twice, an A's only candidate is B: 0, 0, 0
    assert metrics.one_nna_from_iou(rr, ff, rf, origin=np.array([0, 0, 1])) == 0.0
    # coverage counts every copy of a real shape that is some sample's nearest
    real = np.array([0, 0, 1])
    assert metrics.cov_from_iou(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), real_origin=real) == 1.0
    assert metrics.cov_from_iou(np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]]), real_origin=real) == pytest.approx(2 / 3)


def test_the_standard_error_matches_the_spread_over_fresh_draws():
    """Evaluations of 30 fresh draws from fixed populations of real shapes and of samples
    (boxes; half boxes, half rods): the bootstrap's standard error of one evaluation is about
    the spread of the score over the draws (measured 0.028 against 0.024)."""
    real_pool = random_boxes(3000, 8, 1)
    fake_pool = np.concatenate([random_boxes(1500, 8, 3), random_boxes(1500, 8, 2, thin=True)])
    rng = np.random.default_rng(0)
    scores, errors = [], []
    for draw in range(30):
        real, fake = real_pool[rng.choice(3000, 64, replace=False)], fake_pool[rng.choice(3000, 96, replace=False)]
        learn = torch.from_numpy(real_pool[rng.choice(3000, 32, replace=False)])
        parts, _ = score_parts(torch.from_numpy(fake[:32]), torch.from_numpy(fake[32:]), torch.from_numpy(real), learn,
                               learn, 0.0, c2st_epochs=1, seed=draw)
        scores.append(parts.scores()["score"])
        errors.append(parts.standard_error(seed=draw))
    assert 0.5 < statistics.fmean(errors) / statistics.stdev(scores) < 2.0


def test_the_paired_interval_is_students_t():
    config = {1: 0.3, 2: 0.4, 3: 0.5}
    reference = {1: 0.4, 2: 0.5, 3: 0.7, 4: 0.1}  # seed 4 has no partner: left out
    mean, (low, high) = paired(config, reference)
    differences = [-0.1, -0.1, -0.2]
    half = 4.302652729911275 * statistics.stdev(differences) / 3 ** 0.5  # t(0.975, 2 degrees of freedom)
    assert mean == pytest.approx(-0.4 / 3)
    assert (low, high) == pytest.approx((mean - half, mean + half))


def outcome_of(pick: dict[int, float], reference: dict[int, float]) -> confirmation.Outcome:
    configs = [confirmation.Confirmed(1, "trial 1", pick, {}, *paired(pick, reference)),
               confirmation.Confirmed(0, "reference recipe", reference, {})]
    return confirmation.Outcome(configs, expected=2 * len(reference), finished=2 * len(reference))


def test_a_win_over_few_seeds_is_called_a_lead_and_over_more_a_win():
    # The default study's PB2 pick (study seed 1) and the reference recipe, seeds 1-9 as scored:
    # below it at seeds 1-3 with a narrow interval, above it at every one of seeds 4-9.
    pick = dict(enumerate([0.441, 0.305, 0.293, 0.305, 0.364, 0.333, 0.340, 0.380, 0.377], start=1))
    reference = dict(enumerate([0.456, 0.319, 0.312, 0.303, 0.353, 0.303, 0.328, 0.358, 0.276], start=1))
    first = {seed: pick[seed] for seed in (1, 2, 3)}
    three = outcome_of(first, {seed: reference[seed] for seed in (1, 2, 3)}).verdict()
    assert three.startswith("The search beat the reference recipe: its pick, trial 1, scores 0.016 lower over 3")
    assert three.endswith("that is a lead: `--resume --set confirm.seeds=9` retrains every confirmed config on 6 more.")
    nine = outcome_of(pick, reference)
    assert nine.pick is nine.reference and nine.verdict().startswith("The search did not beat the reference recipe")
    # six seeds at a steady gap are a win, said without the caution
    steady = outcome_of({seed: reference[seed] - 0.02 - 0.001 * seed for seed in range(1, 7)},
                        {seed: reference[seed] for seed in range(1, 7)}).verdict()
    assert steady.startswith("The search beat the reference recipe") and steady.endswith(").")


def test_degenerate_samples_are_named_and_others_pass():
    assert degenerate_reason(np.zeros((10, 8, 8, 8), bool)).startswith("degenerate samples: empty")
    assert degenerate_reason(np.ones((10, 8, 8, 8), bool)).startswith("degenerate samples: nearly full")
    assert degenerate_reason(np.repeat(random_boxes(1, 8, 9), 10, axis=0)).startswith("degenerate samples: collapsed")
    assert degenerate_reason(random_boxes(10, 8, 10)) is None


def confirmation_running(db: Path) -> bool:
    """Whether a confirmation run is RUNNING, read with plain SQL (not the code under test)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            rows = con.execute("SELECT t.state FROM trials t JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
                               "WHERE a.key = 'confirms'").fetchall()
    except sqlite3.OperationalError:
        return False
    return any(state == "RUNNING" for (state,) in rows)


def test_a_killed_confirmation_resumes_to_exactly_its_runs_and_export_takes_the_pick(tmp_path):
    study_file = tmp_path / "confirm.yaml"
    study_file.write_text(yaml.safe_dump(STUDY))
    out = tmp_path / "run"
    argv = [str(BIN / "voxgan-search"), "--study", str(study_file), "--out", str(out), "--trials", "4",
            "--max-concurrent", "2"]
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not confirmation_running(out / "study.db"):
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "no confirmation run started in time"
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        log_text = (tmp_path / "first.log").read_text()
        assert "confirmation: trial " in log_text and "run(s) to go" in log_text, log_text
        resumed = subprocess.run([*argv, "--resume"], capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
    finally:
        kill_process_group(first)

    trials = open_existing_study(None, out, None).trials
    search = [t for t in trials if "confirms" not in t.user_attrs]
    runs = [t for t in trials if "confirms" in t.user_attrs]
    assert len(search) == 4
    assert len(runs) == (TOP + 1) * SEEDS
    assert all(t.state == TrialState.COMPLETE for t in runs), [t.state for t in runs]
    assert len({(t.user_attrs["confirms"], t.user_attrs["confirm_seed"]) for t in runs}) == len(runs)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]

    # the search's degenerate trials (empty samples after one pass) stopped at their first evaluation, saying why
    stopped = [t for t in search if "prune_reason" in t.user_attrs]
    assert stopped, [t.user_attrs.get("degenerate_at_first") for t in search]
    for trial in stopped:
        assert trial.state == TrialState.PRUNED
        assert trial.user_attrs["prune_reason"].startswith("degenerate samples: ")
        assert [kimg for kimg, _ in trial.user_attrs["curve"]] == [0.032]
    recipes = [t for t in search if t.user_attrs.get("baseline") or t.user_attrs.get("reference")]
    assert all(t.user_attrs["curve"][-1][0] == 0.096 for t in recipes)  # the comparison trains on

    # each run retrains its source's config with its own seed, the confirmation's budget and every test shape
    for run in runs:
        source = Config.from_dict(trials[run.user_attrs["confirms"]].user_attrs["config"])
        retrained = Config.from_dict(run.user_attrs["config"])
        assert retrained.seed == run.user_attrs["confirm_seed"] and retrained.kimg == 0.64
        assert retrained.eval.max_real is None and retrained.eval.n_samples == 2 * source.eval.n_samples
        assert retrained.generator == source.generator and retrained.latent_std == source.latent_std
    assert "The search" in resumed.stdout and f"confirmation: {len(runs)} of {len(runs)} runs" in resumed.stdout

    by_config: dict[int, list] = {}
    for run in runs:
        by_config.setdefault(run.user_attrs["confirms"], []).append(run)
    pick = min(by_config.values(), key=lambda rs: statistics.fmean(r.user_attrs["score"] for r in rs))
    best_run = min(pick, key=lambda r: r.user_attrs["score"])
    exported = tmp_path / "pick.yaml"
    done = subprocess.run([str(BIN / "voxgan-search"), "export", "--run", str(out), "--out", str(exported)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"trial {best_run.number} (the confirmed pick" in done.stdout
    assert Config.from_dict(yaml.safe_load(exported.read_text())) == Config.from_dict(best_run.user_attrs["config"])
    assert exported.with_suffix(".pt").is_file()

    # a resume with more seeds adds their runs to every confirmed config, and nothing else
    more = subprocess.run([*argv, "--resume", "--set", f"confirm.seeds={SEEDS + 1}"], capture_output=True, text=True,
                          timeout=300)
    assert more.returncode == 0, more.stderr
    runs = [t for t in open_existing_study(None, out, None).trials if "confirms" in t.user_attrs]
    assert len(runs) == (TOP + 1) * (SEEDS + 1) and all(t.state == TrialState.COMPLETE for t in runs)
    assert {t.user_attrs["confirm_seed"] for t in runs} == set(range(1, SEEDS + 2))
    assert f"confirmation: {len(runs)} of {len(runs)} runs" in more.stdout



def test_a_study_that_ends_before_the_reference_recipe_trained_says_why_it_has_no_confirmation(tmp_path):
    """A kimg budget that the first trial (the tutorial's recipe) spends alone: the comparison
    never trained, so nothing is retrained, and the user is told why, even with --quiet."""
    study_file = tmp_path / "confirm.yaml"
    study_file.write_text(yaml.safe_dump({**STUDY, "confirm": {"top": TOP, "seeds": SEEDS}}))
    out = tmp_path / "run"
    done = subprocess.run([str(BIN / "voxgan-search"), "--study", str(study_file), "--out", str(out), "--trials", "4",
                           "--max-concurrent", "1", "--kimg-budget", "0.01", "--quiet"],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "no confirmation: the reference recipe, which the confirmation compares with, has not trained" in done.stderr
    trials = open_existing_study(None, out, None).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] + [TrialState.WAITING] * 3
    assert "confirmation:" not in done.stdout


def test_a_search_with_no_finished_trial_but_the_reference_says_so_with_its_counts():
    """The reference recipe finished and every searched trial was stopped or failed: nothing to confirm."""
    spec = StudySpec.model_validate({**STUDY, "confirm": {"top": TOP, "seeds": SEEDS}})
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(value=0.3, user_attrs={REFERENCE_ATTR: True, CONFIG_ATTR: {}}))
    for state in (TrialState.PRUNED, TrialState.PRUNED, TrialState.FAIL):
        study.add_trial(optuna.trial.create_trial(state=state))
    assert confirmation.plan(study, spec) is None
    assert confirmation.nothing_to_confirm(study, spec) == (
        "no confirmation: no trial of the search finished besides the reference recipe (2 stopped early, 1 failed); "
        "`--resume` with a larger --kimg-budget or --time-budget searches on")
    study.add_trial(optuna.trial.create_trial(value=0.2, user_attrs={CONFIG_ATTR: {}}))
    assert confirmation.nothing_to_confirm(study, spec) is None  # one finished: it is confirmed
    assert confirmation.nothing_to_confirm(study, StudySpec.model_validate({**STUDY, "confirm": {"top": 0}})) is None
