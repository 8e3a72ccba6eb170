"""The sweep scripts' loop, flags and skip-if-done logic, with a stand-in for python that records its calls."""
import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FAKE_PYTHON = r'''#!/usr/bin/env python3
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["CALL_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
if os.environ.get("ALSO_FINISH"):
    Path(os.environ["ALSO_FINISH"]).parent.mkdir(parents=True, exist_ok=True)
    Path(os.environ["ALSO_FINISH"]).write_text("{}")
if args[0] == "main_biased_mnist.py":
    name = args[args.index("--run_name") + 1]
    seeds = args[args.index("--seeds") + 1].split(",") if "--seeds" in args else [None]
    for seed in seeds:
        run_dir = Path(args[args.index("--save_dir") + 1]) / (name if seed is None else f"{name}_seed{seed}")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "results.json").write_text("{}")
'''


def run_script(tmp_path: Path, args: list[str], env: dict[str, str]) -> list[list[str]]:
    """Run a sweep script with the recording stand-in for python; return the calls it made."""
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    log.unlink(missing_ok=True)
    result = subprocess.run(["bash", *args], cwd=REPO, env={**os.environ, "PYTHON": str(fake), "CALL_LOG": str(log),
                                                            **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def run_sweep(tmp_path: Path, **env_overrides: str) -> list[list[str]]:
    return run_script(tmp_path, ["scripts/biased_mnist_table1.sh"],
                      {"OUT": str(tmp_path / "out"), "SEEDS": "0 1", "RHOS": "0.99 0.997", "EPOCHS": "3",
                       **env_overrides})


def flag(call: list[str], name: str) -> str:
    return call[call.index(name) + 1]


def test_sweep_runs_every_combination_with_method_flags(tmp_path):
    calls = run_sweep(tmp_path)
    training = [c for c in calls if c[0] == "main_biased_mnist.py"]
    assert len(training) == 4 * 2 * 2
    names = {flag(c, "--run_name") for c in training}
    assert "biased_mnist_LearnedMixin_rho0.997_seed1" in names
    vanilla = next(c for c in training if "Vanilla" in flag(c, "--run_name"))
    assert flag(vanilla, "--f_lambda_outer") == "0" and flag(vanilla, "--g_lambda_inner") == "0"
    mixin = next(c for c in training if "LearnedMixin" in flag(c, "--run_name"))
    assert flag(mixin, "--outer_criterion") == "LearnedMixin" and flag(mixin, "--n_g_update") == "0"
    assert flag(mixin, "--n_g_pretrain_epochs") == "5"
    rebias = next(c for c in training if "ReBias" in flag(c, "--run_name"))
    assert "--outer_criterion" not in rebias and flag(rebias, "--n_epochs") == "3"
    assert all(flag(c, "--resume") == "auto" for c in training)
    assert calls[-1][0] == "scripts/report.py"


def test_sweep_skips_finished_runs(tmp_path):
    done = tmp_path / "out" / "biased_mnist_RUBi_rho0.99_seed0"
    done.mkdir(parents=True)
    (done / "results.json").write_text("{}")
    unfinished = tmp_path / "out" / "biased_mnist_RUBi_rho0.99_seed1"
    unfinished.mkdir(parents=True)
    (unfinished / "last.pth").write_text("")
    calls = run_sweep(tmp_path, METHODS="RUBi", EXTRA="--limit_train_batches 2")
    names = [flag(c, "--run_name") for c in calls if c[0] == "main_biased_mnist.py"]
    assert "biased_mnist_RUBi_rho0.99_seed0" not in names
    assert "biased_mnist_RUBi_rho0.99_seed1" in names and len(names) == 3
    assert all(flag(c, "--limit_train_batches") == "2" for c in calls if c[0] == "main_biased_mnist.py")
    assert run_sweep(tmp_path, METHODS="RUBi")[0][0] == "scripts/report.py"


def test_sweep_stacks_unfinished_seeds_in_one_process(tmp_path):
    done = tmp_path / "out" / "biased_mnist_ReBias_rho0.99_seed1"
    done.mkdir(parents=True)
    (done / "results.json").write_text("{}")
    calls = run_sweep(tmp_path, METHODS="ReBias", STACK_SEEDS="1", SEEDS="0 1 2")
    training = [c for c in calls if c[0] == "main_biased_mnist.py"]
    assert [(flag(c, "--run_name"), flag(c, "--seeds")) for c in training] == [
        ("biased_mnist_ReBias_rho0.99", "0,2"), ("biased_mnist_ReBias_rho0.997", "0,1,2")]
    assert all("--seed" not in c and flag(c, "--resume") == "auto" for c in training)
    again = run_sweep(tmp_path, METHODS="ReBias", STACK_SEEDS="1", SEEDS="0 1 2")
    assert [c[0] for c in again] == ["scripts/report.py"]


def run_disent_sweep(tmp_path: Path, methods: str, **env_overrides: str) -> list[list[str]]:
    return run_script(tmp_path, ["scripts/disent_sweep.sh", "cmnist", methods],
                      {"LOG_DIR": str(tmp_path / "logs"), "DATA_DIR": str(tmp_path / "data"), "SEEDS": "0 1",
                       "PERCENTS": "1pct 5pct", **env_overrides})


def test_disent_sweep_lff_protocol_uses_the_preset_and_runs_jobs_in_parallel(tmp_path):
    done = tmp_path / "logs" / "cmnist" / "cmnist_5pct_lff_seed1"
    done.mkdir(parents=True)
    (done / "results.json").write_text("{}")
    calls = run_disent_sweep(tmp_path, "vanilla lff", PROTOCOL="lff_paper", JOBS="2", REPORT="0")
    training = [c for c in calls if c[0] == "train_disent.py"]
    names = sorted(flag(c, "--exp") for c in training)
    assert len(names) == 2 * 2 * 2 - 1 and "cmnist_5pct_lff_seed1" not in names
    lff = next(c for c in training if flag(c, "--exp") == "cmnist_1pct_lff_seed0")
    assert flag(lff, "--preset") == "lff_paper" and "--train_lff" in lff and "--lr" not in lff
    assert flag(lff, "--progress") == "False" and flag(lff, "--resume") == "auto"
    assert all(c[0] != "scripts/report.py" for c in calls)


def test_disent_sweep_original_flags_and_unknown_protocol(tmp_path):
    calls = run_disent_sweep(tmp_path, "ours", SEEDS="3", PERCENTS="1pct", EXTRA="--render disent_figure")
    (ours,) = [c for c in calls if c[0] == "train_disent.py"]
    assert flag(ours, "--lr") == "0.01" and flag(ours, "--curr_step") == "10000" and flag(ours, "--seed") == "3"
    assert flag(ours, "--lambda_dis_align") == "10" and flag(ours, "--render") == "disent_figure"
    assert calls[-1][0] == "scripts/report.py"
    bad = subprocess.run(["bash", "scripts/disent_sweep.sh", "cmnist", "lff"], cwd=REPO, capture_output=True,
                         text=True, env={**os.environ, "PROTOCOL": "other"}, timeout=60)
    assert bad.returncode == 2 and "unknown protocol" in bad.stderr


def test_disent_sweep_skips_a_run_another_sweep_finished_meanwhile(tmp_path):
    """The first run's (fake) training finishes the second run, as a parallel sweep would: it is not run again."""
    other = tmp_path / "logs" / "cmnist" / "cmnist_1pct_lff_seed1" / "results.json"
    calls = run_disent_sweep(tmp_path, "lff", PERCENTS="1pct", REPORT="0", ALSO_FINISH=str(other))
    assert [flag(c, "--exp") for c in calls if c[0] == "train_disent.py"] == ["cmnist_1pct_lff_seed0"]
