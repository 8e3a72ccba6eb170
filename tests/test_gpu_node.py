"""scripts/gpu_node.py and its bundle: the node job's plan, its limits on what comes back, resuming from a returned
OUT, the CPU dry run end to end under a deadline (no child left behind), the bundle's size check, and the GPU path's
imports without PyAV."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from bench import throughput_biased_mnist as bench
from scripts import gpu_node as node
from scripts.gpu_session import METHOD_FLAGS

REPO = Path(__file__).resolve().parents[1]
TABLE = Path("/t")


# ---------------------------------------------------------------------------------------------------- the plan
def test_first_wave_is_table1_rho0997_seed0_with_the_paper_flags():
    first = node.waves(stack_further_seeds=True)[0]
    assert [(run.method, run.rho, run.seeds) for run in first] == [
        (method, "0.997", (0,)) for method in ("ReBias", "Vanilla", "LearnedMixin", "RUBi")]
    command = first[2].command("py", Path("/mnist"), TABLE, "bf16", node.GPU)
    text = " ".join(command)
    assert "--train_correlation 0.997 --seed 0 --run_name biased_mnist_LearnedMixin_rho0.997_seed0" in text
    assert " ".join(METHOD_FLAGS["LearnedMixin"]) in text and "--amp bf16" in text and "--resume auto" in text
    for shortening in ("--n_epochs", "--batch_size", "--limit_train_batches", "--limit_eval_batches"):
        assert shortening not in command
    assert command[command.index("--val_epoch_step") + 1] == "80"
    assert first[2].results(TABLE) == (TABLE / "biased_mnist_LearnedMixin_rho0.997_seed0" / "results.json",)


def test_further_waves_stack_seeds_or_run_them_one_wave_each():
    stacked = node.waves(stack_further_seeds=True)
    assert [run.seeds for run in stacked[1]] == [(1, 2)] * 4
    run = stacked[1][0]
    assert "--seeds 1,2 --run_name biased_mnist_ReBias_rho0.997" in " ".join(run.command("py", Path("/m"), TABLE,
                                                                                            "none", node.GPU))
    assert run.checkpoint(TABLE) == TABLE / "biased_mnist_ReBias_rho0.997_seeds1-2" / "last.pth"
    assert [path.parent.name for path in run.results(TABLE)] == ["biased_mnist_ReBias_rho0.997_seed1",
                                                                 "biased_mnist_ReBias_rho0.997_seed2"]
    separate = node.waves(stack_further_seeds=False)
    assert [wave[0].seeds for wave in separate[1:3]] == [(1,), (2,)]
    assert [wave[0].rho for wave in separate[3:]] == ["0.999", "0.995", "0.99"]
    assert node.projected_seconds(stacked[1], 100.0) == 200.0 and node.projected_seconds(separate[1], 100.0) == 100


def test_stacking_is_chosen_from_the_bench_rows():
    def rows(one: float, three: float) -> list[dict]:
        return [{"method": method, "stacked_seeds": seeds, "images_per_second": speed}
                for method in ("Vanilla", "ReBias") for seeds, speed in ((1, one), (3, three))]

    assert node.stacking_is_faster(rows(1000.0, 2500.0))
    assert not node.stacking_is_faster(rows(1000.0, 1050.0))
    assert not node.stacking_is_faster([])


def test_epoch_progress_counts_every_phase():
    log = ("$ python main_biased_mnist.py\n[pretrain_g 5/5] 900.0 img/s, data 1.00% of the time\n"
           "[train 1/80] 1000.5 img/s, data 0.50% of the time\n[train 2/80] 1001.0 img/s, data 0.5% of the time\n")
    assert node.epoch_progress(log) == (7, 85)
    assert node.epoch_progress("$ python main_biased_mnist.py\n") is None


def test_the_node_peak_is_the_bench_peak_of_the_h200():
    assert node.H200_BF16_TFLOPS == bench.peak_tflops_for("NVIDIA H200") == 790.0


# ------------------------------------------------------------------------------------------ what comes back
def test_output_problems_name_every_limit(tmp_path):
    out = tmp_path / "out"
    for index in range(node.MAX_FILES):
        (out / f"f{index}.json").parent.mkdir(parents=True, exist_ok=True)
        (out / f"f{index}.json").write_text("{}")
    assert node.output_problems(out) == []
    deep = out / "a" / "b" / "c" / "x.json"
    deep.parent.mkdir(parents=True)
    deep.write_text("{}")
    (out / "bad name.txt").write_bytes(b"x")
    with open(out / "big.bin", "wb") as handle:
        handle.truncate(node.MAX_FILE_BYTES + 1)
    problems = " | ".join(node.output_problems(out))
    assert f"11 files (at most {node.MAX_FILES})" in problems
    assert "more than 2 folders deep" in problems and "big.bin is 16.0 MiB" in problems
    assert "bad name.txt has a character" in problems


def test_restore_unpacks_an_earlier_out_without_overwriting_the_state(tmp_path):
    earlier_state = tmp_path / "earlier"
    finished = earlier_state / node.TABLE_DIR / "biased_mnist_ReBias_rho0.997_seed0" / "results.json"
    finished.parent.mkdir(parents=True)
    finished.write_text('{"from": "earlier"}')
    returned = tmp_path / "returned"
    (returned / "checkpoints").mkdir(parents=True)
    with tarfile.open(returned / "results.tar.gz", "w:gz") as tar:
        tar.add(finished, arcname=str(finished.relative_to(earlier_state)))
    (returned / "checkpoints" / "biased_mnist_RUBi_rho0.997_seed0.pth").write_bytes(b"checkpoint")
    state = tmp_path / "state"
    kept = state / node.TABLE_DIR / "biased_mnist_Vanilla_rho0.997_seed0" / "last.pth"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"newer")
    (returned / "checkpoints" / "biased_mnist_Vanilla_rho0.997_seed0.pth").write_bytes(b"older")
    node.restore(returned, state)
    assert json.loads((state / finished.relative_to(earlier_state)).read_text()) == {"from": "earlier"}
    assert (state / node.TABLE_DIR / "biased_mnist_RUBi_rho0.997_seed0" / "last.pth").read_bytes() == b"checkpoint"
    assert kept.read_bytes() == b"newer"


# ------------------------------------------------------------------------------------------------ the dry run
def own_processes(marker: str) -> list[str]:
    """Command lines of live processes that mention ``marker`` (a test's own temporary path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in command:
            found.append(command)
    return found


def dry_run(tmp_path: Path, root: Path, deadline_s: float, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "OUT": str(tmp_path / "out"), "ROOT": str(root), "STATE": str(tmp_path / "state"),
           "DEADLINE_S": str(deadline_s), "WANDB_MODE": "offline", "PYTHON": sys.executable}
    start = time.monotonic()
    result = subprocess.run(["bash", "scripts/gpu_node.sh", "--dry_run", *extra], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=deadline_s + 120)
    return result, time.monotonic() - start


def assert_within_the_limits(out: Path) -> None:
    files = [path for path in out.rglob("*") if path.is_file()]
    assert 0 < len(files) <= 8
    assert all(path.stat().st_size <= 16 * 2**20 and len(path.relative_to(out).parts) <= 3 for path in files)


@pytest.mark.slow
def test_dry_run_trains_the_column_reports_and_packs(tmp_path, fake_mnist_root):
    deadline = 240
    result, seconds = dry_run(tmp_path, fake_mnist_root, deadline, "--max_waves", "1")
    print(f"dry run: {seconds:.1f} s wall")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert seconds < deadline
    assert own_processes(str(tmp_path)) == []
    out = tmp_path / "out"
    assert_within_the_limits(out)
    with tarfile.open(out / "results.tar.gz") as tar:
        names = set(tar.getnames())
    for method in ("ReBias", "Vanilla", "LearnedMixin", "RUBi"):
        run = f"{node.TABLE_DIR}/biased_mnist_{method}_rho0.997_seed0"
        assert {f"{run}/results.json", f"{run}/config.json"} <= names
    assert f"{node.TABLE_DIR}/report/biased_mnist_table.md" in names and "tests/junit.xml" in names
    assert not any(name.endswith(".pth") for name in names)
    results = json.loads((tmp_path / "state" / node.TABLE_DIR / "biased_mnist_ReBias_rho0.997_seed0"
                          / "results.json").read_text())
    assert results["protocol"]["precision"] == "bf16" and results["config"]["amp"] == "bf16"
    summary = (out / "SESSION.md").read_text()
    assert "biased_mnist_Vanilla_rho0.997_seed0: finished; unbiased accuracy f " in summary
    assert "| smoke_bench | done |" in summary and "| Vanilla |" in summary
    assert "wall time" in result.stdout
    assert "biased_mnist_ReBias_rho0.999_seed0: not started" in summary  # --max_waves 1


@pytest.mark.slow
def test_dry_run_under_a_tight_deadline_stops_in_time_and_leaves_nothing_running(tmp_path, fake_mnist_root):
    deadline = 40
    result, seconds = dry_run(tmp_path, fake_mnist_root, deadline)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    assert seconds < deadline, result.stdout[-3000:]
    assert own_processes(str(tmp_path)) == []
    assert_within_the_limits(tmp_path / "out")
    assert (tmp_path / "out" / "SESSION.md").exists()


def test_missing_data_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "scripts/gpu_node.py", "--dry_run", "--out", str(tmp_path / "out"),
                             "--root", str(tmp_path / "none"), "--state", str(tmp_path / "state")], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")


# ------------------------------------------------------------------------------------------------- the bundle
def bundle_repo(tmp_path: Path, fake_mnist_root: Path) -> Path:
    """A git repository holding the bundle script and the project's .gitignore, and a raw MNIST folder."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "gpu_node_bundle.sh", repo / "scripts")
    shutil.copy(REPO / ".gitignore", repo)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    return repo


def run_bundle(repo: Path, raw: Path, limit_mib: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "BUILD_WHEELS": "0", "MNIST_RAW": str(raw), "LIMIT_MIB": str(limit_mib)}
    return subprocess.run(["bash", "scripts/gpu_node_bundle.sh"], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=120)


def test_bundle_gzips_mnist_and_refuses_a_tree_over_the_limit(tmp_path, fake_mnist_root):
    repo = bundle_repo(tmp_path, fake_mnist_root)
    raw = fake_mnist_root / "MNIST" / "raw"
    result = run_bundle(repo, raw, 64)
    assert result.returncode == 0, result.stderr
    assert "carry: .whl .node/mnist" in result.stdout and "travels:" in result.stdout
    for source in raw.iterdir():
        packed = repo / ".node" / "mnist" / "MNIST" / "raw" / f"{source.name}.gz"
        assert gzip.decompress(packed.read_bytes()) == source.read_bytes()
    with open(repo / "large_untracked.bin", "wb") as handle:
        handle.truncate(2 * 2**20)
    refused = run_bundle(repo, raw, 1.5)
    assert refused.returncode == 1
    assert "over the 1.5 MiB limit" in refused.stderr and "carry:" not in refused.stdout


# -------------------------------------------------------------------------------------------- without PyAV
BLOCK_AV = "import sys; sys.modules['av'] = None\n"


def test_entry_scripts_and_benches_import_without_av():
    modules = ("main_biased_mnist", "main_matrix", "main_imagenet", "main_action", "train_disent", "test",
               "bench.throughput_biased_mnist", "bench.cmnist_floor", "bench.reproduction_cost", "scripts.gpu_node")
    code = BLOCK_AV + "import importlib\n" + "".join(f"importlib.import_module({name!r})\n" for name in modules)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_decoding_a_video_without_av_is_a_one_line_error(tmp_path):
    code = BLOCK_AV + ("from datasets.kinetics import read_video_info\nfrom utils.config import ConfigError\n"
                       f"try:\n    read_video_info({str(tmp_path / 'x.mp4')!r})\n"
                       "except ConfigError as error:\n    print('refused:', error)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "refused: decoding videos needs PyAV" in result.stdout, result.stderr[-2000:]


@pytest.mark.slow
def test_cuda_tests_collect_without_av():
    code = BLOCK_AV + "import pytest\nsys.exit(pytest.main(['-m', 'cuda', '--collect-only', '-q', '-p', " \
                      "'no:cacheprovider']))\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "test_cuda.py::test_resume_on_cuda_continues_to_the_uninterrupted_run" in result.stdout
