"""reproduce.py and its table registry (reports/tables.py): every table plans exactly the runs, data steps and report
of its sweep script (run with a stand-in python that records its calls), finished runs are skipped and interrupted
ones resumed, bad input is one line, and the README's first command works in its exact form at a reduced length."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reports.tables import TABLES, Settings, get_table
from utils.config import ConfigError
from tests.conftest import make_fake_mnist

REPO = Path(__file__).resolve().parents[1]
FIRST_COMMAND = ["reproduce.py", "lff_cmnist", "--cells", "0.5pct", "--seeds", "0"]
SHORT = "--num_steps 4 --valid_freq 2"
"""REPRODUCE_EXTRA of the CI runs: 4 steps instead of LfF's 23,500."""

RECORDING_PYTHON = r'''#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
if args[:2] == ["-m", "utils.matrix"]:
    os.execv(sys.executable, [sys.executable, *args])
with open(os.environ["CALL_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
'''
ENTRY_SCRIPTS = ("main_biased_mnist.py", "main_imagenet.py", "main_action.py", "train_disent.py", "main_matrix.py")


def script_plan(tmp_path: Path, script: list[str], env: dict[str, str]) -> dict[str, list]:
    """What a sweep script runs, with a python that records its calls: data commands, training runs, reports."""
    fake = tmp_path / "recording_python"
    fake.write_text(RECORDING_PYTHON)
    fake.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    log.unlink(missing_ok=True)
    log.touch()
    result = subprocess.run(["bash", *script], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHON": str(fake), "CALL_LOG": str(log), **env})
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return {"data": list(dict.fromkeys(tuple(c) for c in calls if c[:2] == ["-m", "datasets.make_disent_data"])),
            "runs": [tuple(c) for c in calls if c[0] in ENTRY_SCRIPTS],
            "report": [tuple(c) for c in calls if c[0] == "scripts/report.py"]}


def registry_plan(name: str, settings: Settings) -> dict[str, list]:
    plan = TABLES[name].build(settings)
    return {"data": list(dict.fromkeys(step.argv for step in plan.data if not step.done())),
            "runs": [run.argv for run in plan.runs if not run.finished()],
            "report": [("scripts/report.py", *plan.report)]}


def settings_for(name: str, out: Path, inputs: dict[str, str], cells=None, seeds=None, device=None,
                 quiet=False) -> Settings:
    return TABLES[name].settings(cells, seeds, str(out), inputs, device, quiet)


def test_rebias_tables_plan_the_scripts_runs(tmp_path, fake_mnist_root):
    out = tmp_path / "t1"
    expected = registry_plan("rebias_table1", settings_for("rebias_table1", out, {"mnist_root": str(fake_mnist_root)}))
    assert len(expected["runs"]) == 4 * 4 * 3
    assert script_plan(tmp_path, ["scripts/biased_mnist_table1.sh"], {"ROOT": str(fake_mnist_root), "OUT": str(out)}
                       ) == expected
    subset = settings_for("rebias_table1", out, {"mnist_root": "m"}, cells="0.99,0.997", seeds="1", device="cpu")
    assert script_plan(tmp_path, ["scripts/biased_mnist_table1.sh"], {
        "ROOT": "m", "OUT": str(out), "RHOS": "0.997 0.99", "SEEDS": "1", "DEVICE": "cpu"}) == registry_plan(
        "rebias_table1", subset)
    imagenet = {"train_root": "/tr", "val_root": "/va", "imageneta_root": "/ia"}
    assert script_plan(tmp_path, ["scripts/imagenet_table2.sh"], {
        "TRAIN_ROOT": "/tr", "VAL_ROOT": "/va", "IMAGENETA_ROOT": "/ia", "OUT": str(tmp_path / "t2")}
    ) == registry_plan("rebias_table2", settings_for("rebias_table2", tmp_path / "t2", imagenet))
    action = {"train_root": "/k", "train_annotation": "/k.json", "eval_root": "/m"}
    assert script_plan(tmp_path, ["scripts/action_table3.sh"], {
        "TRAIN_ROOT": "/k", "TRAIN_ANNOTATION": "/k.json", "EVAL_ROOT": "/m", "OUT": str(tmp_path / "t3"),
        "SEEDS": "4", "DEVICE": "cuda:1"}) == registry_plan("rebias_table3", settings_for(
            "rebias_table3", tmp_path / "t3", action, seeds=4, device="cuda:1"))


def test_colored_mnist_tables_plan_the_scripts_data_runs_and_reports(tmp_path):
    data = tmp_path / "data"
    lff = settings_for("lff_cmnist", tmp_path / "lff", {"mnist_root": "/mnist", "data_dir": str(data / "lff")})
    expected = registry_plan("lff_cmnist", lff)
    assert len(expected["data"]) == 4 and len(expected["runs"]) == 4 * 2 * 3
    assert script_plan(tmp_path, ["scripts/lff_cmnist_table.sh"], {
        "MNIST_ROOT": "/mnist", "DATA_DIR": str(data / "lff"), "OUT": str(tmp_path / "lff")}) == expected
    disent = settings_for("disent_cmnist", tmp_path / "dis", {"mnist_root": "/mnist",
                                                              "data_dir": str(data / "cmnist_lff_lff")})
    expected = registry_plan("disent_cmnist", disent)
    assert len(expected["runs"]) == 4 * 3 * 3
    assert script_plan(tmp_path, ["scripts/disent_cmnist_table.sh"], {
        "MNIST_ROOT": "/mnist", "DATA_ROOT": str(data), "OUT": str(tmp_path / "dis")}) == expected


def test_parallel_sweeps_plan_the_same_runs_without_progress_bars(tmp_path):
    """JOBS=2 (runs in any order) = the registry's quiet plan, which adds --progress False as the scripts do."""
    quiet = settings_for("lff_cmnist", tmp_path / "lff", {"mnist_root": "/m", "data_dir": str(tmp_path / "d")},
                         cells="1pct", seeds="0,2", device="cpu", quiet=True)
    expected = registry_plan("lff_cmnist", quiet)
    assert all(run[run.index("--progress") + 1] == "False" for run in expected["runs"])
    found = script_plan(tmp_path, ["scripts/lff_cmnist_table.sh"], {
        "MNIST_ROOT": "/m", "DATA_DIR": str(tmp_path / "d"), "OUT": str(tmp_path / "lff"), "PERCENTS": "1pct",
        "SEEDS": "0 2", "DEVICE": "cpu", "JOBS": "2"})
    assert sorted(found["runs"]) == sorted(expected["runs"]) and found["data"] == expected["data"]


@pytest.mark.parametrize("dataset", ["cifar10c", "bffhq"])
def test_disent_sweeps_plan_the_scripts_runs(tmp_path, dataset):
    settings = settings_for(f"disent_{dataset}", tmp_path / "logs", {"data_dir": str(tmp_path / "dataset")})
    expected = registry_plan(f"disent_{dataset}", settings)
    assert len(expected["runs"]) == (4 if dataset == "cifar10c" else 1) * 3 * 5
    assert script_plan(tmp_path, ["scripts/disent_sweep.sh", dataset, "vanilla lff ours"], {
        "DATA_DIR": str(tmp_path / "dataset"), "LOG_DIR": str(tmp_path / "logs")}) == expected


@pytest.mark.parametrize("family", ["mlp", "conv"])
def test_matrix_plans_the_scripts_runs_including_the_shared_paper_cells(tmp_path, family, monkeypatch):
    """scripts/matrix.sh's data, main_matrix.py runs and report; its shared cells are the runs of the paper tables'
    commands it issues for them (run here on their own), resolved from the repository as the script resolves them:
    seed 0's may be finished there (skipped by both), seed 7's are not."""
    monkeypatch.chdir(REPO)
    out = tmp_path / "matrix"
    expected = registry_plan(f"matrix_{family}", settings_for(f"matrix_{family}", out, {"mnist_root": "/m"},
                                                              seeds="0,7"))
    found = script_plan(tmp_path, ["scripts/matrix.sh"], {"FAMILY": family, "SEEDS": "0 7", "OUT": str(out),
                                                          "MNIST_ROOT": "/m"})
    assert found["data"] == expected["data"]
    assert [run for run in found["runs"] if run[0] == "main_matrix.py"] == [
        run for run in expected["runs"] if run[0] == "main_matrix.py"]
    assert found["report"][-1] == expected["report"][0]
    plan = subprocess.run([sys.executable, "-m", "utils.matrix", "plan", "--family", family, "--seeds", "0 7",
                           "--root", str(out), "--mnist_root", "/m"], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=True)
    shared = []
    for command in [line.split("\t")[1] for line in plan.stdout.splitlines() if "bash scripts/" in line]:
        shared += script_plan(tmp_path, ["-c", command], {})["runs"]
    assert shared == [run for run in expected["runs"] if run[0] == "train_disent.py"]
    assert len([run for run in shared if run[run.index("--seed") + 1] == "7"]) == (5 if family == "mlp" else 0)


def test_finished_runs_are_skipped_and_interrupted_ones_resumed(tmp_path, fake_mnist_root):
    out = tmp_path / "t1"
    settings = settings_for("rebias_table1", out, {"mnist_root": str(fake_mnist_root)}, cells="0.99", seeds="0,1")
    runs = TABLES["rebias_table1"].plan(settings).runs
    finished, interrupted = runs[0], runs[1]
    Path(finished.run_dir).mkdir(parents=True)
    finished.results_path.write_text("{}")
    Path(interrupted.run_dir).mkdir(parents=True)
    (Path(interrupted.run_dir) / "last.pth").write_text("")
    assert all(run.argv[run.argv.index("--resume") + 1] == "auto" for run in runs)
    found = script_plan(tmp_path, ["scripts/biased_mnist_table1.sh"], {
        "ROOT": str(fake_mnist_root), "OUT": str(out), "RHOS": "0.99", "SEEDS": "0 1"})
    assert found["runs"] == [run.argv for run in runs[1:]]
    listed = subprocess.run([sys.executable, str(REPO / "reproduce.py"), "rebias_table1", "--cells", "0.99",
                             "--seeds", "0,1", "--out", str(out), "--mnist_root", str(fake_mnist_root), "--dry_run"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    states = [line.split()[:2] for line in listed.stdout.splitlines()[1:]]
    assert states[:3] == [["skip", finished.name], ["resume", interrupted.name], ["run", runs[2].name]]
    assert f"(80 epochs): python {os.path.relpath(REPO, tmp_path)}/main_biased_mnist.py --root" in listed.stdout
    assert "8 run(s)" in listed.stdout and "(1 finished, 1 to resume, 6 to start)" in listed.stdout


@pytest.mark.parametrize("flags, message", [
    (["nope"], "unknown table 'nope'"),
    (["lff_cmnist", "--cells", "3pct"], "unknown cell '3pct' of table lff_cmnist"),
    (["lff_cmnist", "--seeds", "0,x"], "--seeds expects distinct non-negative integers"),
    (["lff_cmnist", "--launcher", "pbs"], "unknown launcher 'pbs'"),
    (["lff_cmnist", "--launcher", "multi_gpu", "--devices", "cuda:7"], "--devices: cuda:7 is not available"),
    (["lff_cmnist", "--devices", "tpu"], "--devices: 'tpu' is not a device"),
    (["lff_cmnist", "--launcher", "slurm", "--devices", "cpu"], "--devices does not apply to --launcher slurm"),
    (["lff_cmnist", "--jobs", "0"], "--jobs must be a positive integer"),
    (["lff_cmnist", "--root", "x"], "unknown flag --root for table lff_cmnist"),
    (["rebias_table2"], "table rebias_table2 needs --train_root"),
    (FIRST_COMMAND[1:], "MNIST not found in '../shared/data'"),
])
def test_bad_input_is_one_line(tmp_path, flags, message):
    result = subprocess.run([sys.executable, str(REPO / "reproduce.py"), *flags], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_tables_by_their_scripts_names_and_cells_by_their_run_names():
    table = get_table("biased_mnist_table1")
    assert table is TABLES["rebias_table1"] and get_table("imagenet_table2") is TABLES["rebias_table2"]
    assert get_table("action_table3") is TABLES["rebias_table3"]
    assert table.select_cells("rho0.997") == table.select_cells(0.997) == ("0.997",)
    assert table.select_cells("rho0.99,0.999") == ("0.999", "0.99")
    with pytest.raises(ConfigError, match="unknown cell 'rho0.5'"):
        table.select_cells("rho0.5")


def test_list_names_every_table():
    result = subprocess.run([sys.executable, str(REPO / "reproduce.py"), "list"], capture_output=True, text=True,
                            timeout=60, check=True)
    assert all(f"{name} " in result.stdout for name in TABLES)


@pytest.mark.slow
def test_the_first_command_in_its_exact_form_at_reduced_length(tmp_path):
    """The README's first command from a checkout whose ../shared/data holds (here: generated) MNIST: LfF's data,
    Vanilla and LfF at 0.5 pct, their numbers beside the paper's, the command of the whole table; again: skipped."""
    make_fake_mnist(tmp_path / "shared" / "data")
    work = tmp_path / "checkout"
    work.mkdir()
    env = {**os.environ, "REPRODUCE_EXTRA": SHORT}
    first = subprocess.run([sys.executable, str(REPO / FIRST_COMMAND[0]), *FIRST_COMMAND[1:]], cwd=work, env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert (work / "data/cmnist_lff_paper/cmnist/0.5pct/manifest.json").exists()
    for method, paper in (("Vanilla", "35.34 ± 0.13"), ("LfF", "63.39 ± 1.97")):
        (line,) = [line for line in out.splitlines() if line.startswith(f"{method} ") and "0.5 pct seed 0" in line]
        assert f"| paper, unverified {paper}" in line and "SHORTENED: 4 steps" in line
    assert "launched: 2 finished" in out and "| LfF | paper (LfF) | 63.39 ± 1.97" in out
    assert "the whole table (4 percent cells x 3 seeds): python reproduce.py lff_cmnist" in out
    for method in ("vanilla", "lff"):
        results = json.loads((work / f"runs/lff_cmnist/cmnist/cmnist_0.5pct_{method}_seed0/results.json").read_text())
        assert results["global_step"] == 4 and results["config"]["preset"] == "lff_paper"
    again = subprocess.run([sys.executable, str(REPO / FIRST_COMMAND[0]), *FIRST_COMMAND[1:]], cwd=work, env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "(2 finished)" in again.stdout and "launched" not in again.stdout
