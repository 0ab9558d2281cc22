"""A real Ray Tune search on a real Optuna SQLite storage, through the `voxgan-search` CLI.

One tiny study (16^3, a few passes over its 48 shapes) runs twice: a first run of 6 trials, then `--resume` to 8
trials with a trial forced to diverge enqueued in between. Then: states, params, metrics,
the baseline, export + retrain to the same metrics, the report, the samples' pictures and meshes,
and the dashboard: its API, and a trial's page in a real browser.
"""

import contextlib
import io
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import matplotlib.image
import optuna
import pytest
import torch
import trimesh
import yaml
from optuna.trial import TrialState

from voxgan_search.cli import dispatch as _dispatch
from voxgan.metrics import with_score as derived
from voxgan_search.tuning.progress import best_score_so_far
from voxgan_search.records.ranking import best_trial
from voxgan_search.records.trial_record import CURVE_ATTR
from voxgan_search.study.space import tutorial_params
from voxgan_search.coordination.storage import artifact_store_for, open_existing_study
from voxgan_search.tuning.trainable import MESH_SAMPLES, SAMPLES_NAME, mesh_name
from voxgan.cli import run_cli
from voxgan.config import Config
from voxgan.mesh_sheet import MAX_TRIANGLES_PER_SHAPE
from voxgan.trainer import Trainer

TUTORIAL = tutorial_params()

def dispatch(argv: list[str]) -> int:
    """The CLI as a user runs it: user errors become exit status 2."""
    return run_cli(_dispatch, argv)


STUDY = {
    "name": "tiny",
    "data": {"source": "procedural", "resolution": 16, "n_shapes": 60, "test_fraction": 0.2},
    "base": {"eval": {"n_samples": 12, "max_real": 12, "c2st_epochs": 1}},
    "budget": {"kimg": 0.192, "eval_every_kimg": 0.048, "grace_kimg": 0.096, "reduction_factor": 2},
    "confirm": {"top": 0}, "stop_degenerate": False,  # single-run behaviour: no confirmation runs, no early stop
    "objectives": ["score"],
    "scheduler": "asha",
    "resources": {"cpus_per_trial": 1},
    "keep_checkpoints": 8,  # every trial keeps its checkpoint: the checks below open each one
    "space": {
        "batch_size": [16, 32],
        "loss": ["bce", "lsgan", "hinge"],
        "d_steps": 1,
        "generator": {"width": 4, "extra_depth": {"low": 0, "high": 1}, "optimizer": ["adam", "sgd", "adadelta"],
                      },
        "discriminator": {"width": 4, "extra_depth": {"low": 0, "high": 0}},
        "latent_size": [16, 200],
        "latent_std": {"low": 0.1, "high": 1e38},
    },
}
DIVERGING = {  # z ~ N(0, 1e38) overflows to inf in float32: NaN from the first batch
    "batch_size": 16, "latent_size": 16, "latent_dist": "normal", "latent_std": 1e38, "d_accuracy_threshold": None,
    "loss": "bce", "g_optimizer": "adam", "g_lr": 1e-3, "g_beta1": 0.5, "g_activation": "relu", "g_width": 4,
    "g_extra_depth": 0, "d_optimizer": "adam", "d_lr": 1e-3, "d_beta1": 0.5, "d_activation": "relu", "d_width": 4,
    "d_extra_depth": 0,
}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    study_file = root / "tiny.yaml"
    study_file.write_text(yaml.safe_dump(STUDY))
    out = root / "run"
    # One trial at a time: ASHA then sees every trial reach a rung in the same order on every run
    # (two at once race to it, and a trial that reaches it first is never stopped there).
    args = ["--study", str(study_file), "--out", str(out), "--max-concurrent", "1", "--quiet"]
    assert dispatch([*args, "--trials", "6"]) == 0

    study = open_existing_study(None, out, None)
    assert len(study.trials) == 6
    study.enqueue_trial(DIVERGING, user_attrs={"forced": "diverge"})
    before = min(value for trial in study.trials for value in trial.intermediate_values.values())
    (root / "best_before_resume.txt").write_text(repr(before))
    progress = io.StringIO()
    with contextlib.redirect_stderr(progress):  # not --quiet: the resumed run's progress lines are checked
        assert dispatch([*args[:-1], "--trials", "8", "--resume"]) == 0
    (root / "resumed_progress.txt").write_text(progress.getvalue())
    return root, out, study_file


def trials(out: Path) -> list[optuna.trial.FrozenTrial]:
    return open_existing_study(None, out, None).trials


def test_trial_states(searched):
    _, out, _ = searched
    all_trials = trials(out)
    states = [t.state for t in all_trials]
    assert len(all_trials) == 8
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    assert TrialState.COMPLETE in states
    assert TrialState.PRUNED in states, "ASHA stopped no trial: states were " + str(states)
    forced = [t for t in all_trials if t.user_attrs.get("forced")]
    assert len(forced) == 1 and forced[0].state == TrialState.FAIL
    assert "diverged at epoch" in forced[0].user_attrs["fail_reason"]


def test_pruned_trials_keep_their_last_value(searched):
    _, out, _ = searched
    for trial in trials(out):
        if trial.state == TrialState.PRUNED:
            assert trial.intermediate_values, f"pruned trial {trial.number} has no intermediate value"
            last_step = max(trial.intermediate_values)  # training shapes shown
            assert last_step < STUDY["budget"]["kimg"] * 1000
            assert trial.user_attrs["score"] == pytest.approx(trial.intermediate_values[last_step])


def test_a_resumed_search_reports_the_studys_best_so_far(searched):
    """The progress line's "best" after --resume starts from every earlier evaluation."""
    root, out, _ = searched
    study = open_existing_study(None, out, None)
    lowest = min(value for trial in study.trials for value in trial.intermediate_values.values())
    assert best_score_so_far(study) == pytest.approx(lowest)
    assert best_score_so_far(optuna.create_study()) == float("inf")

    best = float((root / "best_before_resume.txt").read_text())
    lines = re.findall(r"score (\S+) .*\(best (\S+)\)", (root / "resumed_progress.txt").read_text())
    assert lines, "the resumed run printed no progress line"
    for score, shown in lines:
        best = min(best, float(score))
        assert shown == f"{best:.3f}"


def test_baseline_is_the_tutorial_recipe_first(searched):
    _, out, _ = searched
    first = trials(out)[0]
    assert first.user_attrs["baseline"] is True
    for key in ("g_optimizer", "g_lr", "g_beta1", "d_lr", "d_beta1", "g_activation", "d_activation", "loss", "batch_size"):
        assert first.params[key] == TUTORIAL[key]
    assert first.user_attrs["baseline_deviations"] == {"g_width": 4, "d_width": 4}


def test_every_metric_is_stored_on_the_trial(searched):
    _, out, _ = searched
    for trial in trials(out):
        if trial.state != TrialState.COMPLETE:
            continue
        assert trial.values == [trial.user_attrs["score"]]
        metrics = {k: trial.user_attrs[k] for k in ("iou_mmd", "iou_cov", "iou_1nna", "c2st_acc", "structure_gap", "copy_gap")}
        assert trial.user_attrs["score"] == pytest.approx(derived(metrics)["score"])
        assert Path(trial.user_attrs["checkpoint"]).is_file()
        assert trial.user_attrs["ray_trial_id"]
        assert sorted(trial.intermediate_values) == [48, 96, 144, 192]
        assert Config.from_dict(trial.user_attrs["config"]).kimg == 0.192
        artifacts = optuna.artifacts.get_all_artifact_meta(trial, storage=open_existing_study(None, out, None)._storage)
        assert any(a.filename == "samples.png" for a in artifacts)


def test_export_retrains_to_the_same_metrics(searched, tmp_path):
    _, out, _ = searched
    best = best_trial(open_existing_study(None, out, None))
    assert dispatch(["export", "--run", str(out), "--out", str(tmp_path / "best.yaml")]) == 0
    assert (tmp_path / "best.pt").is_file()
    cfg = Config.load(tmp_path / "best.yaml")
    assert cfg.to_dict() == best.user_attrs["config"]
    assert dispatch(["export", "--run", str(out), "--out", str(tmp_path / "best.yaml")]) == 2  # never overwrites
    assert dispatch(["export", "--run", str(out), "--trial", "0", "--out", str(tmp_path / "baseline.yaml")]) == 0
    assert Config.load(tmp_path / "baseline.yaml").generator.lr == TUTORIAL["g_lr"]
    assert dispatch(["export", "--run", str(out), "--trial", "99", "--out", str(tmp_path / "x.yaml")]) == 2

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the trial trained with one thread; reductions then add up identically
    try:
        trainer = Trainer(cfg)
        for _ in trainer.train_budget():
            pass
        scores = derived(trainer.evaluate())
    finally:
        torch.set_num_threads(threads)
    for key in ("score", "iou_mmd", "iou_cov", "iou_1nna", "c2st_acc"):
        assert scores[key] == pytest.approx(best.user_attrs[key], abs=1e-6), key


def test_report_writes_plots(searched, tmp_path):
    _, out, _ = searched
    assert dispatch(["report", "--run", str(out), "--out", str(tmp_path / "report")]) == 0
    for name in ("history.png", "importances.png", "learning_curves.png", "best.json"):
        assert (tmp_path / "report" / name).stat().st_size > 1000 or name == "best.json"
    summary = json.loads((tmp_path / "report" / "best.json").read_text())
    assert summary["baseline"]["number"] == 0 and summary["best"]["state"] == "COMPLETE"


def test_dashboard_api_lists_the_study_and_its_trials(searched):
    import optuna_dashboard

    _, out, _ = searched
    app = optuna_dashboard.wsgi(f"sqlite:///{out / 'study.db'}", artifact_store=artifact_store_for(out))

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = make_server("127.0.0.1", port, app, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        studies = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies"))["study_summaries"]
        assert [s["study_name"] for s in studies] == ["tiny"]
        detail = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}?after=0"))
        assert len(detail["trials"]) == 8
        assert any(t["artifacts"] for t in detail["trials"])
        assert {"score", "iou_1nna", "c2st_acc"} <= {a["key"] for t in detail["trials"] for a in t["user_attrs"]}
    finally:
        server.shutdown()


def test_a_second_run_into_the_same_folder_is_refused(searched):
    _, out, study_file = searched
    assert dispatch(["--study", str(study_file), "--out", str(out), "--trials", "2", "--quiet"]) == 2


def test_multi_objective_study_gets_a_pareto_front(tmp_path):
    """Two objectives: values per objective, no intermediate values (Optuna refuses them), a
    Pareto front plot, and export of the front's trial with the lowest combined score."""
    study_file = tmp_path / "pareto.yaml"
    spec = {**STUDY, "name": "pareto", "objectives": ["iou_mmd", "c2st_gap"],
            "budget": {"kimg": 0.096, "eval_every_kimg": 0.048, "grace_kimg": 0.048, "reduction_factor": 2}}
    study_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / "run"
    assert dispatch(["--study", str(study_file), "--out", str(out), "--trials", "4", "--max-concurrent", "2", "--quiet"]) == 0
    study = open_existing_study(None, out, None)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"] and study.metric_names == ["iou_mmd", "c2st_gap"]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert complete and all(len(t.values) == 2 and not t.intermediate_values for t in complete)
    for trial in complete:
        assert trial.values == [trial.user_attrs["iou_mmd"], trial.user_attrs["c2st_gap"]]
    assert dispatch(["report", "--run", str(out), "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "pareto_front.png").stat().st_size > 1000
    assert dispatch(["export", "--run", str(out), "--out", str(tmp_path / "best.yaml")]) == 0
    chosen = min(study.best_trials, key=lambda t: t.user_attrs["score"])
    assert Config.load(tmp_path / "best.yaml").to_dict() == chosen.user_attrs["config"]


def test_report_says_optunas_warnings_in_a_line_each(searched, tmp_path, capsys):
    """No raw UserWarning with Optuna's file paths: one `note:` line each, or nothing."""
    _, out, _ = searched
    capsys.readouterr()
    assert dispatch(["report", "--run", str(out), "--out", str(tmp_path / "report")]) == 0
    err = capsys.readouterr().err
    assert "Warning" not in err and ".py:" not in err, err
    assert all(line.startswith("note: ") for line in err.splitlines()), err


def budgeted_run(tmp_path: Path, *budget: str) -> Path:
    """The tiny study, one trial at a time, 40 trials asked for, ended early by `budget`'s flag."""
    study_file = tmp_path / "tiny.yaml"
    study_file.write_text(yaml.safe_dump(STUDY))
    out = tmp_path / "run"
    assert dispatch(["--study", str(study_file), "--out", str(out), "--max-concurrent", "1", "--quiet",
                     "--trials", "40", *budget]) == 0
    return out


def test_time_budget_starts_no_new_trial_and_lets_running_ones_finish(tmp_path, capsys):
    out = budgeted_run(tmp_path, "--time-budget", "2")
    states = [t.state for t in trials(out)]
    finished = [s for s in states if s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]
    assert 1 <= len(finished) < 40
    assert TrialState.RUNNING not in states  # Ray Tune's own time budget would have left them RUNNING
    assert f"the study has {len(finished)} of 40 trials" in capsys.readouterr().err


def test_kimg_budget_starts_no_new_trial_once_the_trials_have_trained_that_much(tmp_path, capsys):
    out = budgeted_run(tmp_path, "--kimg-budget", "0.2")
    ended = [t for t in trials(out) if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]
    spent = sum(t.user_attrs.get("kimg", 0.0) for t in trials(out))
    most = STUDY["budget"]["kimg"]
    # each trial is taken while less than 0.2 kimg is spent; one runs and one may wait meanwhile
    assert 0.2 <= spent < 0.2 + 2 * most and len(ended) < 40
    assert TrialState.RUNNING not in {t.state for t in trials(out)}
    assert f"--kimg-budget reached: the study has {len(ended)} of 40 trials" in capsys.readouterr().err


def test_each_evaluation_records_a_small_mesh_beside_its_picture(searched):
    """A samples_<kimg>kimg.stl per evaluation whose samples are not all empty: a watertight
    surface within the triangle budget, in a binary STL of 50 bytes a triangle."""
    _, out, _ = searched
    study = open_existing_study(None, out, None)
    store = artifact_store_for(out)
    meshes = 0
    for trial in study.trials:
        found = [a for a in optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
                 if a.filename.endswith(".stl")]
        names = [a.filename for a in found]
        assert len(set(names)) == len(names)
        assert set(names) <= {mesh_name(kimg) for kimg, _ in trial.user_attrs.get(CURVE_ATTR, [])}
        for artifact in found:
            assert artifact.mimetype == "model/stl"
            with store.open_reader(artifact.artifact_id) as reader:
                data = reader.read()
            mesh = trimesh.load(io.BytesIO(data), file_type="stl")
            mesh.merge_vertices()
            assert mesh.is_watertight and 0 < len(mesh.faces) <= MESH_SAMPLES * MAX_TRIANGLES_PER_SHAPE
            assert len(data) == 84 + 50 * len(mesh.faces)
            meshes += 1
    assert meshes > 0


@contextlib.contextmanager
def dashboard(out: Path, log: Path) -> Iterator[str]:
    """`voxgan-search dashboard --run OUT` on a free port, as a user starts it; its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with log.open("w") as stderr:
        command = [sys.executable, "-m", "voxgan_search.cli", "dashboard", "--run", str(out), "--port", str(port)]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/api/studies"):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def listening_addresses(port: int) -> set[str]:
    """The local IPv4/IPv6 addresses (hex, as Linux writes them) listening on TCP `port`."""
    found = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        for line in table.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, local_port = local.split(":")
            if int(local_port, 16) == port and state == "0A":  # 0A: LISTEN
                found.add(address)
    return found


def colourful_share(png: bytes) -> float:
    """The share of a screenshot's pixels that are clearly coloured (not white, grey or black):
    the dashboard's 3D view colours faces by their normals and draws its floor grid in grey."""
    rgb = matplotlib.image.imread(io.BytesIO(png))[..., :3]
    return float(((rgb.max(axis=-1) - rgb.min(axis=-1)) > 0.15).mean())


def test_a_trials_page_shows_its_sample_pictures_and_meshes_in_a_browser(searched, chromium, tmp_path):
    """Chromium opens a trial's page in `voxgan-search dashboard`: it lists every samples.png and
    samples_<kimg>kimg.stl of the trial, every picture loads, and every mesh is drawn in 3D (its
    canvas shows coloured faces). Screenshots in the test's tmp dir: trial.png, and mesh.png of
    the last evaluation's mesh."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, out, _ = searched
    study = open_existing_study(None, out, None)
    trial = max(study.trials, key=lambda t: sum(a.filename.endswith(".stl") for a in
                                                optuna.artifacts.get_all_artifact_meta(t, storage=study._storage)))
    names = [a.filename for a in optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)]
    pictures = names.count(SAMPLES_NAME)
    meshes = [mesh_name(kimg) for kimg, _ in trial.user_attrs[CURVE_ATTR] if mesh_name(kimg) in names]  # in order
    assert meshes
    with dashboard(out, tmp_path / "dashboard.log") as url:
        assert f"Optuna Dashboard on {url}" in (tmp_path / "dashboard.log").read_text()
        if Path("/proc/net/tcp").is_file():  # Linux: this machine only, unless --host says otherwise
            assert listening_addresses(int(url.rsplit(":", 1)[1])) == {"0100007F"}
        with urllib.request.urlopen(url + "/api/studies") as response:
            study_id = json.load(response)["study_summaries"][0]["study_id"]
        chromium.get(f"{url}/dashboard/studies/{study_id}/trials?numbers={trial.number}")

        def views(name: str, inner: str) -> list:
            """The `inner` elements (img or canvas) of the artifact cards titled `name`."""
            return chromium.find_elements(By.XPATH, f"//*[text()='{name}']/ancestor::div[.//{inner}][1]//{inner}")

        def canvases() -> list:
            """The 3D views of the trial's meshes, evaluation by evaluation."""
            return [canvas for name in meshes for canvas in views(name, "canvas")]

        wait = WebDriverWait(chromium, 90, poll_frequency=0.5)
        wait.until(lambda _: len(views(SAMPLES_NAME, "img")) == pictures and len(canvases()) == len(meshes))
        chromium.execute_script("arguments[0].scrollIntoView()", canvases()[0])
        loaded = "return arguments[0].complete && arguments[0].naturalWidth > 0"
        wait.until(lambda _: all(chromium.execute_script(loaded, img) for img in views(SAMPLES_NAME, "img")))
        wait.until(lambda _: all(colourful_share(canvas.screenshot_as_png) > 0.05 for canvas in canvases()))
        chromium.save_screenshot(str(tmp_path / "trial.png"))
        (tmp_path / "mesh.png").write_bytes(canvases()[-1].screenshot_as_png)


def test_a_study_whose_every_trial_failed_exits_1_saying_why(tmp_path):
    """z ~ N(0, 1e38) overflows in every trial, the recipes' included: the run found nothing,
    and says so in its exit status and its summary's reasons."""
    out = tmp_path / "run"
    proc = subprocess.run([str(Path(sys.executable).parent / "voxgan-search"), "--trials", "2", "--out", str(out),
                           "--quiet", "--set", "space.latent_std.low=1e38", "--set", "space.latent_std.high=1e38",
                           "--set", "budget.kimg=0.1", "--set", "budget.eval_every_kimg=0.1",
                           "--set", "budget.grace_kimg=0.1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "failed: 2 x diverged at epoch 1: loss is not finite" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith("error: every trial of study 'default' failed")
    assert json.loads((out / "summary.json").read_text())["trials"] == {"FAIL": 2}
