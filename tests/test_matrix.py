"""The comparison matrix (issue #14): every (method, benchmark) pair through main_matrix.py, the colour-only g's
blindness to shape, the settings each cell trains with, scripts/matrix.sh and the matrix report."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import main_matrix
from bench import hsic_kernel_scale
from datasets.disent_data import DataMismatchError, load_split_tensor
from datasets.make_disent_data import cmnist
from models.matrix_models import MATRIX_MODELS, ColourHistogramNet, ConvClassifier
from models.mnist_models import SimpleConvNet
from reports import matrix_report
from tasks.disent import to_unit_range
from tasks.matrix import MatrixTask
from tests.test_sweep_scripts import FAKE_PYTHON, flag
from utils.config import ConfigError
from utils.matrix import (BENCHMARKS, DISENT_CURR_STEP_FRACTION, FAMILIES, FG_RECIPES, STEP_RECIPES,
                          TRAINED_METHODS, VARIANTS, cell, method_settings, own_settings, rows)
from utils.protocol import run_protocol

REPO = Path(__file__).resolve().parents[1]
SHORT = dict(n_epochs=2, steps_per_epoch=3, limit_eval_batches=2, progress=False, device="cpu")


@pytest.fixture(scope="module")
def cmnist_dirs(tmp_path_factory, fake_mnist_root) -> dict[str, Path]:
    """Tiny Colored MNIST at 1 pct in the two layouts the Colored MNIST benchmarks read."""
    root = tmp_path_factory.mktemp("matrix_data")
    lff = Path(cmnist(str(fake_mnist_root), str(root / "lff_paper"), percents="1", preset="lff_paper")).parent
    disent = Path(cmnist(str(fake_mnist_root), str(root / "lff_lff"), percents="1", n_valid=200, palette="lff",
                         render="lff")).parent
    return {"cmnist_lff_1pct": lff, "cmnist_disent_1pct": disent}


@pytest.mark.parametrize("column", ["cmnist_lff_1pct", "cmnist_disent_1pct"])
def test_colored_mnist_columns_feed_unit_range_images(cmnist_dirs, column):
    """The matrix's networks take [0, 1] images (its MLPs divide by 255 themselves, its colour histogram expects the
    unit range), not the MLP inputs DisEntTask stores for its own runs."""
    config, _ = main_matrix.resolve({"benchmark": column, "method": "lff", "data_dir": str(cmnist_dirs[column]),
                                     "device": "cpu"})
    task = MatrixTask(config, torch.device("cpu"))
    raw, _, _ = load_split_tensor(cmnist_dirs[column], "cmnist", "train", "1pct")
    assert not task.inner.divided_at_load
    assert torch.equal(task.train_loader.images, to_unit_range(raw))


@pytest.mark.slow
@pytest.mark.parametrize("column", list(BENCHMARKS))
@pytest.mark.parametrize("method", TRAINED_METHODS)
def test_every_method_runs_on_every_benchmark_through_the_entry_point(tmp_path, fake_mnist_root, cmnist_dirs,
                                                                       column, method):
    data_dir = cmnist_dirs.get(column)
    main_matrix.main(benchmark=column, method=method, root=str(fake_mnist_root), save_dir=str(tmp_path),
                     **({"data_dir": str(data_dir)} if data_dir else {}), **SHORT)
    run_dir = tmp_path / f"{method}_n_epochs-2_limit_eval_batches-2_steps_per_epoch-3_seed0"
    results = json.loads((run_dir / "results.json").read_text())
    split = BENCHMARKS[column].unbiased_split
    assert (results["task"], results["benchmark"], results["family"], results["matrix_method"]) == (
        "matrix", column, "mlp", method)
    assert results["protocol"]["name"] == f"matrix_{column}" and results["protocol"]["trained"] == 2
    assert results["protocol"]["paper_length"] is False
    phases = [record["phase"] for record in results["history"]]
    assert phases == ["pretrain_g"] * (5 if method == "learnedmixin" else 0) + ["main"] * 2
    assert 0.0 <= results["final_metrics"][split] <= 100.0 and f"{split}_cell_mean" in results["final_metrics"]
    assert results["networks"] == FAMILIES["mlp"].networks(BENCHMARKS[column])
    if method == "rebias":
        assert results["sigmas"]["outer_sigma_x"] == results["sigmas"]["outer_sigma_y"] == 1.0
    if method in FG_RECIPES:
        assert len(results["g_metrics"]) == 1 and split in results["g_metrics"][0]
    else:
        assert set(results["predictor_metrics"]) == {"f", "bias"} and results["g_metrics"] == []
    assert matrix_report.cell_value(results, "f", BENCHMARKS[column]) == results["final_metrics"][split]


@pytest.mark.slow
def test_the_median_variant_trains_through_the_entry_point_with_median_radii(tmp_path, cmnist_dirs):
    main_matrix.main(benchmark="cmnist_lff_1pct", method="rebias_median", save_dir=str(tmp_path),
                     data_dir=str(cmnist_dirs["cmnist_lff_1pct"]), **SHORT)
    results = json.loads((tmp_path / "rebias_median_n_epochs-2_limit_eval_batches-2_steps_per_epoch-3_seed0"
                          / "results.json").read_text())
    sigmas = results["sigmas"]
    assert results["matrix_method"] == "rebias_median" and results["config"]["rbf_sigma_x"] == "median"
    assert sigmas["outer_sigma_x"] != 1.0 and sigmas["outer_sigma_x"] != sigmas["outer_sigma_y"]
    assert (sigmas["inner_sigma_x"], sigmas["inner_sigma_y"]) == (sigmas["outer_sigma_y"], sigmas["outer_sigma_x"])


def test_each_method_trains_with_its_own_settings_and_the_benchmark_shared_ones():
    for name, benchmark in BENCHMARKS.items():
        for method in TRAINED_METHODS:
            config, registry = main_matrix.resolve({"benchmark": name, "method": method, "root": "r"})
            assert (config.lr, config.weight_decay, config.batch_size) == (benchmark.lr, benchmark.weight_decay, 256)
            assert (config.n_epochs, config.steps_per_epoch) == (benchmark.epochs, benchmark.steps_per_epoch)
            for key, value in own_settings(benchmark, method, "mlp").items():
                assert config[key] == value, (name, method, key)
            if method in STEP_RECIPES:
                assert registry == method and config.num_steps == benchmark.num_steps
                assert config.valid_freq == benchmark.steps_per_epoch
                if method not in benchmark.native_settings:
                    assert config.lr_decay_start == 0
                    assert config.use_lr_decay == (benchmark.lr_decay_epochs is not None)
                expected_curr = round(DISENT_CURR_STEP_FRACTION * benchmark.num_steps) if method == "disent" else 0
                assert config.curr_step == expected_curr
            else:
                assert registry == "rebias"
                assert config.scheduler == ("StepLR" if benchmark.lr_decay_epochs else "none")
    bm, _ = main_matrix.resolve({"benchmark": "biased_mnist_rho0.997", "method": "disent", "root": "r"})
    assert (bm.num_steps, bm.curr_step, bm.lr_decay_step, bm.lr_gamma) == (18_800, 3_760, 4_700, 0.1)
    mixin, _ = main_matrix.resolve({"benchmark": "cmnist_lff_1pct", "method": "learnedmixin"})
    assert (mixin.n_g_pretrain_epochs, mixin.n_g_update, mixin.outer_criterion) == (5, 0, "LearnedMixin")
    native = main_matrix.resolve({"benchmark": "cmnist_disent_1pct", "method": "disent", "family": "conv"})[0]
    assert (native.num_steps, native.curr_step, native.use_lr_decay) == (50_000, 10_000, True)
    assert (native.lr_decay_step, native.lr_gamma, native.lr_decay_start, native.lr) == (10_000, 0.5, 10_000, 0.01)
    elsewhere = main_matrix.resolve({"benchmark": "cmnist_lff_1pct", "method": "disent"})[0]
    assert (elsewhere.use_lr_decay, elsewhere.curr_step, elsewhere.lr) == (False, 4_700, 1e-3)
    rubi = main_matrix.resolve({"benchmark": "cmnist_disent_1pct", "method": "rubi"})[0]
    assert (rubi.scheduler, rubi.lr, rubi.weight_decay) == ("none", 0.01, 0)
    assert rubi.n_epochs * rubi.steps_per_epoch == 50_000
    with pytest.raises(ConfigError, match="--method"):
        main_matrix.resolve({"benchmark": "cmnist_lff_1pct", "method": "biased"})
    with pytest.raises(ConfigError, match="--root is required"):
        main_matrix.resolve({"benchmark": "biased_mnist_rho0.990", "method": "rubi"})
    with pytest.raises(KeyError):
        method_settings(BENCHMARKS["cmnist_lff_1pct"], "unknown", "mlp")


def test_rebias_keeps_its_biased_mnist_radius_and_the_mlp_family_variant_has_median_radii():
    radii = ("rbf_sigma_x", "rbf_sigma_y", "update_sigma_per_epoch")
    for name in BENCHMARKS:
        for family in FAMILIES:
            config, _ = main_matrix.resolve({"benchmark": name, "method": "rebias", "family": family, "root": "r"})
            assert tuple(config[key] for key in radii) == (1, 1, False)
        variant, registry = main_matrix.resolve({"benchmark": name, "method": "rebias_median", "root": "r"})
        assert tuple(variant[key] for key in radii) == ("median", "median", True) and registry == "rebias"
        assert variant.run_name == "rebias_median_seed0" and variant.f_lambda_outer == variant.g_lambda_inner == 1
    assert set(VARIANTS["rebias_median"].families) == {"mlp"}
    with pytest.raises(ConfigError, match="--method must be one of"):
        main_matrix.resolve({"benchmark": "cmnist_lff_1pct", "method": "rebias_median", "family": "conv"})
    with pytest.raises(KeyError, match="for family 'conv'"):
        own_settings(BENCHMARKS["cmnist_lff_1pct"], "rebias_median", "conv")
    with pytest.raises(ConfigError, match="--method rebias_median does not read --q"):
        main_matrix.resolve({"benchmark": "cmnist_lff_1pct", "method": "rebias_median", "q": 0.5})


def test_kernel_scale_bench_separates_a_saturated_fixed_radius_from_the_scale_free_median():
    generator = torch.Generator().manual_seed(0)
    f = [torch.randn(16, 5, generator=generator, dtype=torch.float64) for _ in range(2)]
    g = [torch.randn(16, 3, generator=generator, dtype=torch.float64) for _ in range(2)]
    unit = hsic_kernel_scale.kernel_scale(f, g, fixed_sigma=1.0)
    large = hsic_kernel_scale.kernel_scale([x * 1000 for x in f], g, fixed_sigma=1.0)
    tiny = hsic_kernel_scale.kernel_scale([x / 1000 for x in f], g, fixed_sigma=1.0)
    assert large["median_sigma_f"] == pytest.approx(1000 * unit["median_sigma_f"], rel=1e-4)  # float32 distances
    assert large["k_f_fixed"] < 1e-12 and tiny["k_f_fixed"] > 1 - 1e-5 and 0.01 < unit["k_f_fixed"] < 0.95
    for scaled in (large, tiny):
        assert scaled["k_f_median"] == pytest.approx(unit["k_f_median"], rel=1e-4)
        assert scaled["hsic_median"] == pytest.approx(unit["hsic_median"], rel=1e-3)
        assert abs(scaled["hsic_fixed"]) < 1e-3 * abs(unit["hsic_median"])
    kernel = torch.tensor([[1.0, 0.2, 0.4], [0.2, 1.0, 0.6], [0.4, 0.6, 1.0]])
    assert hsic_kernel_scale.mean_off_diagonal(kernel) == pytest.approx(0.4)


@pytest.mark.slow
def test_kernel_scale_bench_reads_a_matrix_run_at_initialisation_and_end(tmp_path, cmnist_dirs, capsys):
    main_matrix.main(benchmark="cmnist_lff_1pct", method="rebias", save_dir=str(tmp_path), run_name="run",
                     data_dir=str(cmnist_dirs["cmnist_lff_1pct"]), **SHORT)
    capsys.readouterr()
    threads = torch.get_num_threads()
    try:
        hsic_kernel_scale.main(str(tmp_path / "run"), batches=2)
    finally:
        torch.set_num_threads(threads)  # the bench sets it for the process; later in-process runs must not inherit it
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines[1:]] == ["init", "end"]
    assert all(len(line.split()) == 10 for line in lines[1:])


@pytest.mark.parametrize("method, flag", [("rubi", "q"), ("lff", "optim"), ("lff", "curr_step"),
                                          ("disent", "hsic_alg"), ("vanilla", "lambda_swap")])
def test_a_flag_the_method_would_not_read_is_refused(method, flag):
    with pytest.raises(ConfigError, match=f"--method {method} does not read --{flag}"):
        main_matrix.resolve({"benchmark": "cmnist_lff_1pct", "method": method, flag: 1})


def test_a_run_with_other_steps_per_epoch_is_not_the_matrix_protocol():
    config, _ = main_matrix.resolve({"benchmark": "cmnist_lff_1pct", "method": "lff", "steps_per_epoch": 3})
    assert run_protocol("matrix", config, epochs=100, steps=300)["paper_length"] is False
    full, _ = main_matrix.resolve({"benchmark": "cmnist_lff_1pct", "method": "lff"})
    assert run_protocol("matrix", full, epochs=100, steps=23_500)["paper_length"] is True


def test_colored_mnist_of_the_other_layout_is_refused(tmp_path, cmnist_dirs):
    with pytest.raises(DataMismatchError, match="n_valid 200, but cmnist_lff_1pct"):
        main_matrix.main(benchmark="cmnist_lff_1pct", method="rubi", data_dir=str(cmnist_dirs["cmnist_disent_1pct"]),
                         save_dir=str(tmp_path), **SHORT)


def permute_pixels(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    order = torch.randperm(x.shape[2] * x.shape[3], generator=generator)
    return x.flatten(2)[:, :, order].view_as(x)


@pytest.mark.parametrize("network", [
    lambda: ColourHistogramNet(10, value_range=(-1.0, 1.0)),
    lambda: SimpleConvNet(10, kernel_size=1),
])
@pytest.mark.parametrize("train_mode", [True, False])
def test_colour_only_g_is_blind_to_shape(network, train_mode):
    """Permuting pixel positions (the same permutation for every image) leaves g's logits and features unchanged,
    in training mode (batch statistics) and evaluation mode; f with 7x7 kernels does see the permutation."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    x = (torch.rand(8, 3, 28, 28, generator=generator, dtype=torch.float64) * 2 - 1)
    g = network().double().train(train_mode)
    permuted = permute_pixels(x, generator)
    for original, shuffled in zip(g(x), g(permuted), strict=True):
        scale = original.abs().max().item() + 1.0
        assert torch.allclose(original, shuffled, atol=1e-9 * scale, rtol=0)
    f = ConvClassifier(10).double().train(train_mode)
    assert not torch.allclose(f(x), f(permuted), atol=1e-3, rtol=0)


def test_colour_histogram_counts_pixels_per_quantised_colour():
    net = ColourHistogramNet(10, value_range=(0.0, 1.0), levels=2)
    image = torch.zeros(1, 3, 2, 2)
    image[0, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0])
    image[0, :, 0, 1] = torch.tensor([0.9, 0.2, 0.7])
    histogram = net.histogram(image)
    expected = torch.zeros(1, 8)
    expected[0, 0] = 0.5
    expected[0, 4] = 0.25
    expected[0, 5] = 0.25
    assert torch.equal(histogram, expected)


def fake_results(path: Path, **fields) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps(fields))


def data_fields(benchmark: str, **variant) -> dict:
    """The data entries of a results.json on ``benchmark`` (``variant`` overrides palette/render/n_valid)."""
    bench = BENCHMARKS[benchmark]
    if bench.n_valid is None:
        return {"train_correlation": bench.rho}
    return {"percent": 1.0, "data_variant": {"palette": "lff", "render": "lff", "n_valid": bench.n_valid, **variant}}


def matrix_run(root: Path, benchmark: str, method: str, seed: int, unbiased: float, g: float | None = None,
               paper_length: bool = True, family: str = "mlp", **overrides) -> None:
    split = BENCHMARKS[benchmark].unbiased_split
    trained = "vanilla" if method == "biased" else method
    fields = {"benchmark": benchmark, "family": family, "matrix_method": trained, "seed": seed,
              "config": own_settings(BENCHMARKS[benchmark], trained, family), **data_fields(benchmark),
              "protocol": {"name": f"matrix_{benchmark}", "paper_length": paper_length},
              "final_metrics": {split: unbiased}, "metrics": {split: -1.0},
              "g_metrics": [] if g is None else [{split: g}], **overrides}
    fake_results(root / cell(family, benchmark, method, seed, root=str(root / "results/matrix")).run_dir, **fields)


def test_matrix_report_from_synthetic_results(tmp_path):
    matrix_run(tmp_path, "biased_mnist_rho0.997", "vanilla", 0, 30.0, g=10.0)
    matrix_run(tmp_path, "biased_mnist_rho0.997", "vanilla", 1, 34.0, g=12.0)
    matrix_run(tmp_path, "biased_mnist_rho0.997", "rebias", 0, 60.0)
    matrix_run(tmp_path, "biased_mnist_rho0.997", "rebias", 1, 99.0, paper_length=False)
    shared = tmp_path / cell("mlp", "cmnist_disent_1pct", "disent", 2).run_dir
    fake_results(shared, seed=2, method="DisEnt", config={"backbone": None}, **data_fields("cmnist_disent_1pct"),
                 protocol={"name": "disent", "paper_length": True}, final_metrics={"test": 75.5},
                 metrics={"test": 80.0})
    collected = matrix_report.collect("mlp", tmp_path, root=str(tmp_path / "results/matrix"))
    table = matrix_report.render("mlp", collected)
    table_rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in table.splitlines()[2:10]}
    assert table_rows["Vanilla"][0] == "32.0 ± 2.8 (n=2)" and table_rows["Biased"][0] == "11.0 ± 1.4 (n=2)"
    assert table_rows["ReBias"][0] == "60.0 ± – (n=1)"
    assert table_rows["DisEnt"][3].rstrip(" |") == "75.5 ± – (n=1) [paper, unverified 81.3] †"
    assert table_rows["RUBi"][0] == "missing" and all("0.0" not in value for value in table_rows["RUBi"])
    assert "1 finished run(s) not at the matrix's length" in table and "[paper X]" in table
    out = tmp_path / "report"
    matrix_report.build("mlp", out, tmp_path, root=str(tmp_path / "results/matrix"))
    assert {p.name for p in out.iterdir()} == {"matrix_mlp.md", "matrix_mlp.csv", "matrix_mlp_heatmap.png"}
    csv_rows = (out / "matrix_mlp.csv").read_text().splitlines()
    assert "mlp,biased_mnist_rho0.997,RUBi,,,0,,,," in csv_rows


def test_matrix_report_refuses_a_run_of_another_cell(tmp_path):
    matrix_run(tmp_path, "cmnist_lff_1pct", "rubi", 0, 40.0)
    path = tmp_path / cell("mlp", "cmnist_lff_1pct", "rubi", 0, root=str(tmp_path / "results/matrix")).run_dir
    data = json.loads((path / "results.json").read_text())
    data["family"] = "conv"
    (path / "results.json").write_text(json.dumps(data))
    with pytest.raises(matrix_report.MatrixError, match="family 'conv'"):
        matrix_report.collect("mlp", tmp_path, root=str(tmp_path / "results/matrix"))
    data["family"] = "mlp"
    data["data_variant"]["n_valid"] = 5000
    (path / "results.json").write_text(json.dumps(data))
    with pytest.raises(matrix_report.MatrixError, match=r"n_valid, percent\) \('lff', 'lff', 5000"):
        matrix_report.collect("mlp", tmp_path, root=str(tmp_path / "results/matrix"))


def test_matrix_report_variant_row_and_runs_with_the_other_kernel_radii_refused(tmp_path):
    root = str(tmp_path / "results/matrix")
    median = own_settings(BENCHMARKS["cmnist_lff_1pct"], "rebias_median", "mlp")
    sigma1 = own_settings(BENCHMARKS["cmnist_lff_1pct"], "rebias", "mlp")
    matrix_run(tmp_path, "cmnist_lff_1pct", "rebias_median", 0, 45.0, matrix_method="rebias")
    matrix_run(tmp_path, "cmnist_lff_1pct", "rebias_median", 1, 47.0)
    matrix_run(tmp_path, "cmnist_lff_1pct", "rebias", 0, 55.0)
    table = matrix_report.render("mlp", matrix_report.collect("mlp", tmp_path, root=root))
    table_rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in table.splitlines()[2:10]}
    assert table_rows["ReBias"][2] == "55.0 ± – (n=1)"
    assert table_rows["ReBias, median σ (variant)"][2] == "46.0 ± 1.4 (n=2)"
    assert "`METHODS=rebias_median bash scripts/matrix.sh`" in table
    assert "median σ" not in matrix_report.render("conv", matrix_report.collect("conv", tmp_path, root=root))
    matrix_run(tmp_path, "cmnist_lff_1pct", "rebias", 0, 45.0, config=median)
    with pytest.raises(matrix_report.MatrixError, match="rbf_sigma_x 'median' \\(cell: 1\\)"):
        matrix_report.collect("mlp", tmp_path, root=root)
    matrix_run(tmp_path, "cmnist_lff_1pct", "rebias", 0, 55.0)
    matrix_run(tmp_path, "cmnist_lff_1pct", "rebias_median", 0, 45.0, matrix_method="rebias", config=sigma1)
    with pytest.raises(matrix_report.MatrixError, match="rbf_sigma_x 1 \\(cell: 'median'\\)"):
        matrix_report.collect("mlp", tmp_path, root=root)
    matrix_run(tmp_path, "cmnist_lff_1pct", "rebias_median", 0, 45.0, matrix_method="rubi", config=median)
    with pytest.raises(matrix_report.MatrixError, match="matrix_method 'rubi'"):
        matrix_report.collect("mlp", tmp_path, root=root)


@pytest.mark.parametrize("change, message", [
    ({"method": "LfF"}, "method 'LfF'"), ({"config": {"backbone": "mlp_lff"}}, "backbone 'mlp_lff'"),
    ({"protocol": {"name": "lff_paper", "paper_length": True}}, "protocol 'lff_paper'"),
    (data_fields("cmnist_disent_1pct", render="disent_figure"), "'disent_figure'")])
def test_matrix_report_refuses_a_shared_run_of_another_method_network_protocol_or_data(tmp_path, change, message):
    fields = {"seed": 0, "method": "Vanilla", "config": {"backbone": None}, **data_fields("cmnist_disent_1pct"),
              "protocol": {"name": "disent", "paper_length": True}, "final_metrics": {"test": 50.0}, **change}
    fake_results(tmp_path / cell("mlp", "cmnist_disent_1pct", "vanilla", 0).run_dir, **fields)
    with pytest.raises(matrix_report.MatrixError, match=message):
        matrix_report.collect("mlp", tmp_path, root=str(tmp_path / "results/matrix"))


def test_paper_values_only_where_a_paper_reported_that_exact_cell():
    assert matrix_report.paper_value("conv", "biased_mnist_rho0.997", "rebias") == 64.2
    assert matrix_report.paper_value("mlp", "biased_mnist_rho0.997", "rebias") is None
    assert matrix_report.paper_value("mlp", "cmnist_lff_1pct", "lff") == pytest.approx(74.01)
    assert matrix_report.paper_value("conv", "cmnist_lff_1pct", "lff") is None
    assert matrix_report.paper_value("mlp", "cmnist_lff_1pct", "disent") is None


def test_plan_shares_the_paper_tables_runs_and_names_each_cell_once():
    result = subprocess.run([sys.executable, "-m", "utils.matrix", "plan", "--seeds", "7", "--root", "/nonexistent"],
                            cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    commands = [command for _, command in lines]
    assert len(commands) == len(set(commands))
    assert "OUT= EXTRA= PERCENTS=1pct SEEDS=7 JOBS=1 bash scripts/lff_cmnist_table.sh" in commands
    assert "OUT= EXTRA= PERCENTS=1pct SEEDS=7 METHODS=ours JOBS=1 bash scripts/disent_cmnist_table.sh" in commands
    trained = [c for c in commands if "main_matrix.py" in c]
    assert len(trained) == 6 * 2 + 5 + 4
    assert not any("--method biased" in c for c in commands)
    assert not any("cmnist_disent_1pct --method lff" in c for c in trained)
    assert not any("rebias_median" in c for c in commands)


def test_plan_runs_a_variant_row_only_where_named_and_only_in_its_family():
    plan = [sys.executable, "-m", "utils.matrix", "plan", "--seeds", "7", "--root", "/nonexistent", "--methods",
            "rebias_median"]
    result = subprocess.run(plan, cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [path for path, _ in lines] == [f"/nonexistent/mlp/{b}/rebias_median_seed7/results.json" for b in BENCHMARKS]
    assert all("--method rebias_median --seed 7" in command for _, command in lines)
    refused = subprocess.run(plan + ["--family", "conv"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "rebias_median" in refused.stderr


def test_matrix_script_runs_missing_cells_once_and_skips_finished_ones(tmp_path):
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_PYTHON.replace("args = sys.argv[1:]", "args = sys.argv[1:]" + RUN_MATRIX_MODULE) + MATRIX_FAKE)
    fake.chmod(0o755)
    out = tmp_path / "out"
    done = out / "mlp" / "biased_mnist_rho0.990" / "rubi_seed0"
    done.mkdir(parents=True)
    (done / "results.json").write_text("{}")
    log = tmp_path / "calls.jsonl"
    env = {**os.environ, "PYTHON": str(fake), "CALL_LOG": str(log), "OUT": str(out), "SEEDS": "0",
           "BENCHMARKS": "biased_mnist_rho0.997 biased_mnist_rho0.990", "METHODS": "vanilla biased rubi",
           "JOBS": "2", "DEVICE": "cpu"}
    subprocess.run(["bash", "scripts/matrix.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                   check=True)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    training = [c for c in calls if c[0] == "main_matrix.py"]
    assert sorted((flag(c, "--benchmark"), flag(c, "--method")) for c in training) == [
        ("biased_mnist_rho0.990", "vanilla"), ("biased_mnist_rho0.997", "rubi"), ("biased_mnist_rho0.997", "vanilla")]
    assert all(flag(c, "--device") == "cpu" and flag(c, "--progress") == "False" and flag(c, "--resume") == "auto"
               for c in training)
    assert calls[-1][:2] == ["scripts/report.py", "matrix"]
    log.unlink()
    subprocess.run(["bash", "scripts/matrix.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                   check=True)
    again = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c[0] for c in again if not c[0].startswith("-")] == ["scripts/report.py"]


RUN_MATRIX_MODULE = r'''
if args[:2] == ["-m", "utils.matrix"]:
    os.execv(sys.executable, [sys.executable, *args])'''
MATRIX_FAKE = r'''
if args[0] == "main_matrix.py":
    run_dir = Path(args[args.index("--save_dir") + 1]) / args[args.index("--run_name") + 1]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text("{}")
'''


def test_every_row_has_a_source_on_every_benchmark():
    for benchmark in BENCHMARKS:
        for method in rows("mlp"):
            entry = cell("mlp", benchmark, method, 0)
            assert entry.predictor == ("g_0" if method == "biased" else "f")
            assert entry.shared_with is not None or "main_matrix.py" in entry.command
        assert cell("conv", benchmark, "lff", 0).shared_with is None


def test_unit_input_lff_mlp_equals_the_original_on_255_times_the_input():
    """``mlp_lff_unit`` (Biased MNIST in the matrix) is LfF's MLP without the originals' division by 255."""
    torch.manual_seed(0)
    original = MATRIX_MODELS["mlp_lff"](10).double()
    unit = MATRIX_MODELS["mlp_lff_unit"](10).double()
    unit.load_state_dict(original.state_dict())
    x = torch.rand(4, 3, 28, 28, dtype=torch.float64)
    assert torch.allclose(unit(x), original(255 * x), rtol=1e-12, atol=1e-12)
    encoder = MATRIX_MODELS["mlp_lff_unit_disentangle"](10)
    assert encoder(x.float()).shape == (4, 100) and encoder.fc.in_features == 200


@pytest.mark.parametrize("flush", [True, False])
def test_runs_flush_denormals_on_the_cpu_unless_told_not_to(tmp_path, cmnist_dirs, flush, monkeypatch):
    """Flushing is on for the run and off again afterwards. Also: the Colored MNIST benchmarks' f/g methods keep a
    constant learning rate (``--scheduler none``)."""
    calls = []
    monkeypatch.setattr(torch, "set_flush_denormal", lambda enabled: calls.append(enabled) or True)
    main_matrix.main(benchmark="cmnist_lff_1pct", method="vanilla", data_dir=str(cmnist_dirs["cmnist_lff_1pct"]),
                     save_dir=str(tmp_path), flush_denormal=flush, **{**SHORT, "n_epochs": 3})
    assert calls == ([True, False] if flush else [False])
    results = json.loads(next(tmp_path.glob("vanilla_*/results.json")).read_text())
    assert [record["lr_f"] for record in results["history"]] == [1e-3] * 3


def test_matrix_script_leaves_a_shared_cells_lock_to_its_paper_table_script(tmp_path):
    """A shared cell's command is a paper table's script, which takes the run's lock itself: the matrix sweep must
    not hold it around that command (the inner script would find it held and skip the run)."""
    run_dir = tmp_path / "lff_cmnist" / "vanilla_seed0"
    marker = tmp_path / "trained"
    inner = f"flock -n -E 75 {run_dir}.lock touch {marker}"
    fake = tmp_path / "fake_python"
    fake.write_text("#!/usr/bin/env bash\n"
                    f"if [[ \"$3\" == plan ]]; then printf '%s\\t%s\\n' '{run_dir}/results.json' 'bash -c \"{inner}\"'; fi\n")
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake), "OUT": str(tmp_path / "out"), "REPORT": "0", "DEVICE": "cpu"}
    result = subprocess.run(["bash", "scripts/matrix.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert marker.exists()
