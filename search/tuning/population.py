"""Population-based training (`scheduler: pbt` or `pb2`) kept in the Optuna study.

Ray Tune's `PopulationBasedTraining` and `PB2` refuse a search algorithm beside them, so the
study's searcher cannot hand out the members. Instead the population is taken from the study
up front (the reference recipe and the rest of its WAITING trials, sampled from the space by the
study's sampler), given to Ray Tune as points of its basic generator, and recorded by a Tune
callback (`PopulationRecorder`) through the same evaluation record and verdicts as any trial:

- each member is one Optuna trial: its starting parameters, its score at every evaluation as
  intermediate values, its `lineage` (at which kimg it copied whom, and what it switched to),
  and, once it has copied, its `trained_config`: the config that replays its weights;
- a member that copies another restores everything from the other's checkpoint (both networks,
  both optimisers, G's average, the random state and the data cursor: `Trainer.resume`) and
  switches to its perturbed settings there as schedule entries (`Config.switched`);
- Ray keeps every checkpoint while the population trains and the study's retention runs once
  every member has ended, so no checkpoint a member may still copy is deleted;
- an interrupted population is not continued: Ray Tune does not restore PBT's own state (who is
  in which quantile, when each last copied), so its members are marked FAIL and `--resume`
  starts a new population (`fail_members`).

Copies are synchronous (`synch=True`): every member reaches the interval before any copies, so a
member copies a checkpoint taken at the same kimg as its own last evaluation. A member's report
at the end of its budget is exempt (`no_copy_at_the_end`): a copy there would train nothing, yet
hand the member the source's final weights and, through Ray's restore, the source's result as its
own, under a schedule that did not make them.
"""

from __future__ import annotations

import functools
from typing import Any

import optuna
from optuna.trial import TrialState
from ray import tune
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from voxgan.config import Config, dotted
from voxgan.config.schema import ScheduleKey
from voxgan_search.coordination.slots import take
from voxgan_search.records.searcher import StudySearcher
from voxgan_search.records.trial_record import (
    CHECKPOINT_ATTR, LINEAGE_ATTR, RAY_TRIAL_ATTR, REASON_ATTR, TRAINED_CONFIG_ATTR, Report, Status, is_confirmation,
)
from voxgan_search.study.space import DIMS
from voxgan_search.study.space_model import Between
from voxgan_search.study.spec import Range, StudySpec
from voxgan_search.tuning.checkpoint_store import remove_other_checkpoints
from voxgan_search.tuning.lineage import Copy, member_folder

SCHEDULABLE = set(ScheduleKey.__args__)
LOG_SPAN = 10.0
"""A range from low > 0 spanning at least this factor is perturbed on a log scale (learning rates)."""


def perturbed_keys(spec: StudySpec) -> dict[str, Range | list[float]]:
    """What a copy perturbs: the study's `population.perturb`, or every schedulable key the space
    searches (a range, or for pbt several numeric choices), with its domain there."""
    if spec.population.perturb is not None:
        return dict(spec.population.perturb)
    keys: dict[str, Range | list[float]] = {}
    for d in DIMS:
        if d.key not in SCHEDULABLE or d.key in keys or not asked_of_every_member(d, spec):
            continue
        domain = d.domain(spec.space)
        if isinstance(domain, Between) and domain.low < domain.high:
            keys[d.key] = Range(low=domain.low, high=domain.high)
        elif isinstance(domain, list) and spec.scheduler == "pbt" and len(domain) > 1 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in domain):
            keys[d.key] = [float(v) for v in domain]
    return keys


def asked_of_every_member(d, spec: StudySpec) -> bool:
    """Whether every point of the space has dimension `d`: it has no condition, or every choice
    of the parameter its condition names meets it (beta1 when every optimiser is Adam). A key
    some members do not use (WGAN-GP's lambda beside a batch-norm D) is left out."""
    if d.when is None:
        return True
    parent = next(p for p in DIMS if p.param == d.when[0])
    domain = parent.domain(spec.space)
    return isinstance(domain, list) and all(value in d.when[1] for value in domain)


def mutation(domain: Range | list[float]) -> Any:
    """PBT's resampling distribution for one key."""
    if isinstance(domain, list):
        return domain
    if domain.low > 0 and domain.high / domain.low >= LOG_SPAN:
        return tune.loguniform(domain.low, domain.high)
    return tune.uniform(domain.low, domain.high)


def within_ranges(config: dict[str, Any], ranges: dict[str, Range]) -> dict[str, Any]:
    """PBT's perturbation scales a value by 0.8 or 1.2 with no bounds: keep it in its range."""
    config["perturb"] = {key: min(max(value, ranges[key].low), ranges[key].high) if key in ranges else value
                         for key, value in config["perturb"].items()}
    return config


def no_copy_at_the_end(scheduler: type[PopulationBasedTraining]) -> type[PopulationBasedTraining]:
    """`scheduler` (PBT or PB2) that lets a member's report at the end of its budget pass
    untouched: Ray's PBT knows no budget, and where the budget is a whole number of intervals it
    would copy a source into a member on its last report (module docstring)."""

    class NoCopyAtTheEnd(scheduler):
        def on_trial_result(self, tune_controller, trial, result: dict) -> str:
            report = Report.from_result(result)
            if report is not None and report.status == Status.FINISHED:
                return TrialScheduler.CONTINUE
            return super().on_trial_result(tune_controller, trial, result)

    NoCopyAtTheEnd.__name__ = NoCopyAtTheEnd.__qualname__ = f"{scheduler.__name__}NoCopyAtTheEnd"
    return NoCopyAtTheEnd


def make_population_scheduler(spec: StudySpec) -> PopulationBasedTraining:
    keys = perturbed_keys(spec)
    if not keys:
        raise ValueError("the population has nothing to perturb: give population.perturb")
    ranges = {key: domain for key, domain in keys.items() if isinstance(domain, Range)}
    common = dict(time_attr="kimg", metric="score", mode="min",
                  perturbation_interval=spec.population.interval_kimg or spec.budget.eval_every_kimg,
                  quantile_fraction=spec.population.quantile, synch=True, log_config=False,
                  require_attrs=False,  # a failed member's last report has no kimg
                  custom_explore_fn=functools.partial(within_ranges, ranges=ranges))
    if spec.scheduler == "pb2":
        from ray.tune.schedulers.pb2 import PB2  # its own module: it needs scikit-learn

        return no_copy_at_the_end(PB2)(
            hyperparam_bounds={"perturb": {key: [r.low, r.high] for key, r in ranges.items()}}, **common)
    return no_copy_at_the_end(PopulationBasedTraining)(
        hyperparam_mutations={"perturb": {key: mutation(d) for key, d in keys.items()}},
        resample_probability=spec.population.resample_probability, **common)


def member_config(number: int, cfg: Config, keys: list[str]) -> dict[str, Any]:
    """A member's Ray config: its number, its starting voxgan config, and the values PBT perturbs."""
    return {"member": number, "voxgan": cfg.to_dict(), "perturb": {key: float(dotted.get(cfg, key)) for key in keys}}


def enlist(searcher: StudySearcher, keys: list[str]) -> list[dict[str, Any]]:
    """Take every WAITING trial of the search as a member (the reference recipe first) and
    record each under its folder's name until Ray Tune names its trial."""
    members = []
    while (trial := take(searcher.study, searcher.storage)) is not None:
        searcher.start_record(member_folder(trial.number), trial, [])
        members.append(member_config(trial.number, searcher.trial_config(trial), keys))
    return members


class PopulationRecorder(tune.Callback):
    """Records a population's members in the study: evaluations, copies, verdicts (the searcher's
    own `on_trial_result` / `on_trial_complete`), and the retention once all have ended."""

    def __init__(self, searcher: StudySearcher):
        self.searcher = searcher

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        if trial.trial_id not in self.searcher.records:  # its first start: its config is still its own
            record = self.searcher.records.pop(member_folder(trial.config["member"]))
            self.searcher.records[trial.trial_id] = record
            record.trial.set_user_attr(RAY_TRIAL_ATTR, trial.trial_id)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.searcher.on_trial_result(trial.trial_id, result)
        report = Report.from_result(result)
        if report is not None and report.copy and trial.trial_id in self.searcher.records:
            copied = Copy.from_json(report.copy)
            member = self.searcher.records[trial.trial_id].trial
            lineage = member.user_attrs.get(LINEAGE_ATTR, [])
            member.set_user_attr(LINEAGE_ATTR, [*lineage, copied.lineage_entry()])
            member.set_user_attr(TRAINED_CONFIG_ATTR, copied.config)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.searcher.on_trial_complete(trial.trial_id, trial.last_result)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.searcher.on_trial_complete(trial.trial_id, error=True)

    def on_experiment_end(self, trials, **info) -> None:
        """Every member has ended (or the run was interrupted): each keeps its last checkpoint
        only, and the study's retention decides about those."""
        if any(record.trial.number not in self.finished() for record in self.searcher.records.values()):
            return  # interrupted: `fail_members` comes next, then the sweep
        for record in self.searcher.records.values():
            stored = self.searcher.study.get_trials(deepcopy=False)[record.trial.number]
            remove_other_checkpoints(record.folder, stored.user_attrs.get(CHECKPOINT_ATTR))
        self.searcher.retention.sweep()

    def finished(self) -> set[int]:
        return {t.number for t in self.searcher.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))}


INTERRUPTED_SHORT = "interrupted"
INTERRUPTED = (f"{INTERRUPTED_SHORT}: a population is not continued (Ray Tune does not restore population-based "
               "training's own state); `--resume` starts a new population")


def fail_members(study: optuna.Study, numbers: list[int], storage: optuna.storages.BaseStorage) -> None:
    """Mark an interrupted population's RUNNING members FAIL with the reason, so none is left RUNNING."""
    study_id = storage.get_study_id_from_name(study.study_name)
    for number in numbers:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
        if storage.get_trial(trial_id).state == TrialState.RUNNING:
            storage.set_trial_user_attr(trial_id, REASON_ATTR, INTERRUPTED)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)


def was_interrupted(study: optuna.Study, trial: optuna.trial.FrozenTrial | None = None) -> bool:
    """Whether `trial` (default: the search's last trial) is a member of an interrupted population."""
    if trial is None:
        search = [t for t in study.get_trials(deepcopy=False) if not is_confirmation(t)]
        trial = search[-1] if search else None
    return trial is not None and trial.state == TrialState.FAIL and trial.user_attrs.get(REASON_ATTR) == INTERRUPTED
