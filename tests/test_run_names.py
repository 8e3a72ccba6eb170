"""Default run names differ whenever the commands train or measure different things, and a finished run's
results.json is never replaced unless --overwrite (or --resume of that run) says so."""
import json
from pathlib import Path

import pytest
from munch import Munch

import main_action
import main_biased_mnist
import main_imagenet
from experiment import COMMON_DEFAULTS, MAX_RUN_NAME, default_run_name, refuse_finished_runs
from trainer import SeedStackedTrainer, Trainer
from utils.config import ConfigError

README_COMMANDS = {
    "adam": {},
    "adamp": {"optim": "AdamP"},
    "vanilla": {"f_lambda_outer": 0, "g_lambda_inner": 0},
    "learned_mixin": {"outer_criterion": "LearnedMixin", "g_lambda_inner": 0, "n_g_pretrain_epochs": 5,
                      "n_g_update": 0},
    "rubi": {"outer_criterion": "RUBi", "g_lambda_inner": 0},
}
"""The original README's Table 1 commands (after --root and --train_correlation 0.999)."""

RESULT_FLAGS = [{"optim": "AdamP"}, {"inner_criterion": "RbfHSIC"}, {"f_lambda_outer": 2}, {"g_lambda_inner": 0.5},
                {"rbf_sigma_x": 2}, {"rbf_sigma_y": 2}, {"rbf_sigma_x": "median", "rbf_sigma_y": "median"},
                {"swap_inner_sigma": True}, {"hsic_alg": "biased"}, {"feature_pos": "pre"}, {"lr": 1e-4},
                {"n_epochs": 2}, {"limit_train_batches": 3}, {"limit_eval_batches": 0.5}, {"batch_size": 64},
                {"g_kernel_size": 3}, {"amp": "bf16"}, {"seed": 1}, {"train_correlation": 0.99}]
"""Single changes that change what a Biased MNIST run trains or measures."""


def captured_run_names(monkeypatch: pytest.MonkeyPatch, module, **flags) -> list[str]:
    """The run names (one per seed with --seeds) an entry script would write to, without training."""
    names: list[str] = []

    def record(task: str, method: str, config: Munch, *args, **kwargs) -> None:
        names.extend(config.get("seed_run_names") or [config.run_name])

    monkeypatch.setattr(module, "run_experiment", record)
    module.main(**flags)
    return names


def mnist_name(monkeypatch: pytest.MonkeyPatch, **flags) -> str:
    (name,) = captured_run_names(monkeypatch, main_biased_mnist, root="data", **flags)
    return name


def test_readme_commands_get_distinct_default_names(monkeypatch):
    names = {key: mnist_name(monkeypatch, train_correlation=0.999, **flags) for key, flags in README_COMMANDS.items()}
    assert len(set(names.values())) == len(names), names
    assert names["adam"] == "biased_mnist_ReBias_rho0.999_seed0"
    assert names["adamp"] == "biased_mnist_ReBias_rho0.999_optim-AdamP_seed0"
    assert names["vanilla"] == "biased_mnist_Vanilla_rho0.999_seed0"


def test_every_result_changing_flag_changes_the_default_name(monkeypatch):
    names = [mnist_name(monkeypatch)] + [mnist_name(monkeypatch, **flags) for flags in RESULT_FLAGS]
    assert len(set(names)) == len(names), names


def test_run_control_flags_and_spelled_out_defaults_keep_the_name(monkeypatch):
    plain = mnist_name(monkeypatch)
    assert mnist_name(monkeypatch, device="cpu", progress=False, tensorboard=True, save_dir="elsewhere",
                      checkpoint_every_steps=5, resume="auto", overwrite=True, optim="Adam", rbf_sigma_x=1.0) == plain


def test_seeds_share_the_names_of_separate_runs(monkeypatch):
    stacked = captured_run_names(monkeypatch, main_biased_mnist, root="data", seeds="0,1", optim="Adam", lr=1e-4)
    separate = [mnist_name(monkeypatch, seed=seed, lr=1e-4) for seed in (0, 1)]
    assert stacked == separate


@pytest.mark.parametrize("module, required", [
    (main_imagenet, {"train_root": "t", "val_root": "v"}),
    (main_action, {"train_root": "t", "train_annotation_file": "a.json", "eval_root": "e"})])
def test_imagenet_and_action_names_follow_the_same_rule(monkeypatch, module, required):
    (plain,) = captured_run_names(monkeypatch, module, **required)
    (adamp,) = captured_run_names(monkeypatch, module, **required, optim="AdamP")
    (radii,) = captured_run_names(monkeypatch, module, **required, rbf_sigma_x=2, rbf_sigma_y=2)
    assert len({plain, adamp, radii}) == 3 and plain.endswith("_ReBias_seed0") and "optim-AdamP" in adamp


def test_very_long_names_are_hashed_deterministically():
    defaults = {f"flag{i}": 0 for i in range(40)}
    config = {key: 123456 for key in defaults}
    name = default_run_name("prefix", config, defaults)
    assert len(name) <= MAX_RUN_NAME and name == default_run_name("prefix", config, defaults)
    assert name != default_run_name("prefix", {**config, "flag0": 1}, defaults)


def finished_config(tmp_path: Path, **flags) -> Munch:
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    (run_dir / "results.json").write_text("{}")
    return Munch({**COMMON_DEFAULTS, "save_dir": str(tmp_path), "run_name": "run", **flags})


def test_finished_run_is_refused_unless_overwrite_or_resumed_from_its_checkpoint(tmp_path):
    config = finished_config(tmp_path)
    with pytest.raises(ConfigError, match="already holds a finished run.*--overwrite"):
        refuse_finished_runs(config, Trainer.results_paths(config))
    refuse_finished_runs(finished_config(tmp_path, overwrite=True), Trainer.results_paths(config))
    with pytest.raises(ConfigError, match="finished run"):  # --resume auto without a checkpoint starts afresh
        refuse_finished_runs(finished_config(tmp_path, resume="auto"), Trainer.results_paths(config))
    (tmp_path / "run" / "last.pth").write_bytes(b"")
    for resume in (True, "auto", str(tmp_path / "run" / "last.pth")):
        refuse_finished_runs(finished_config(tmp_path, resume=resume), Trainer.results_paths(config))
    with pytest.raises(ConfigError, match="finished run"):  # another run's checkpoint
        refuse_finished_runs(finished_config(tmp_path, resume=str(tmp_path / "other.pth")),
                             Trainer.results_paths(config))


def test_seed_stacked_run_is_refused_when_one_seed_has_finished(tmp_path):
    config = finished_config(tmp_path, run_name="run_seeds0-1", seed_run_names=["fresh", "run"])
    with pytest.raises(ConfigError, match=f"{tmp_path / 'run'} already holds"):
        refuse_finished_runs(config, SeedStackedTrainer.results_paths(config))


def test_second_identical_command_keeps_the_first_results(tmp_path, fake_mnist_root):
    flags = dict(root=str(fake_mnist_root), save_dir=str(tmp_path), f_lambda_outer=0, g_lambda_inner=0, n_epochs=1,
                 batch_size=16, limit_train_batches=1, limit_eval_batches=1, f_kernel_size=3, progress=False,
                 device="cpu")
    main_biased_mnist.main(**flags)
    (run_dir,) = tmp_path.iterdir()
    results = run_dir / "results.json"
    first, config = results.read_text(), (run_dir / "config.json").read_text()
    with pytest.raises(ConfigError, match="already holds a finished run"):
        main_biased_mnist.main(**flags, lr=0.001)
    assert results.read_text() == first and (run_dir / "config.json").read_text() == config
    main_biased_mnist.main(**flags, overwrite=True)
    assert json.loads(results.read_text())["wall_seconds"] != json.loads(first)["wall_seconds"]
