import pytest
import torch

from datasets.tensor_loader import TensorLoader
from evaluator import CellAccuracy, evaluate
from models.mnist_models import SimpleConvNet


@pytest.mark.parametrize("feature_pos, shape", [("post", (2, 128)), ("pre", (2, 128, 28, 28)), ("logits", (2, 10))])
def test_simple_conv_net_shapes(feature_pos, shape):
    net = SimpleConvNet(kernel_size=3, feature_pos=feature_pos)
    logits, features = net(torch.randn(2, 3, 28, 28))
    assert logits.shape == (2, 10)
    assert features.shape == shape
    assert net(torch.randn(2, 3, 28, 28), logits_only=True).shape == (2, 10)


def changed_locations(kernel_size: int) -> torch.Tensor:
    torch.manual_seed(0)
    net = SimpleConvNet(kernel_size=kernel_size, feature_pos="pre").eval()
    x = torch.randn(1, 3, 28, 28)
    perturbed = x.clone()
    perturbed[0, :, 14, 14] += 5.0
    with torch.no_grad():
        difference = (net(x)[1] - net(perturbed)[1]).abs().sum(dim=(0, 1))
    return difference > 1e-6


def test_g_with_kernel_one_sees_single_pixels():
    changed = changed_locations(1)
    assert changed[14, 14]
    assert int(changed.sum()) == 1


def test_f_with_kernel_seven_sees_neighbourhood():
    changed = changed_locations(7)
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert int(changed.sum()) > 1
    assert rows.min() == 14 - 12 and rows.max() == 14 + 12 and cols.min() == 2 and cols.max() == 26


def make_loader(shuffle: bool) -> TensorLoader:
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)
    return TensorLoader(images, torch.arange(10), torch.arange(10) % 3, batch_size=4, shuffle=shuffle,
                        transform=lambda x: x.float(), seed=5)


def test_tensor_loader_covers_everything_once_and_is_seeded():
    loader = make_loader(True)
    assert len(loader) == 3
    loader.set_epoch(0)
    first = torch.cat([batch.index for batch in loader])
    assert sorted(first.tolist()) == list(range(10))
    assert torch.equal(first, torch.cat([batch.index for batch in loader]))
    loader.set_epoch(1)
    assert not torch.equal(first, torch.cat([batch.index for batch in loader]))
    batch = next(iter(loader))
    assert torch.equal(batch.x.view(-1), batch.index.float())
    assert torch.equal(batch.bias, batch.index % 3)


def test_cell_accuracy_hand_example():
    cells = CellAccuracy.zeros(2, 2)
    cells.update(torch.tensor([0, 1, 1, 0, 1]), torch.tensor([0, 0, 1, 1, 1]), torch.tensor([0, 1, 1, 0, 0]))
    assert cells.total.tolist() == [[1, 1], [2, 1]]
    assert cells.correct.tolist() == [[1, 0], [1, 1]]
    assert cells.accuracy() == pytest.approx(60.0)
    assert cells.per_cell() == [[100.0, 0.0], [50.0, 100.0]]
    assert cells.cell_mean() == pytest.approx(62.5)
    assert cells.cell_mean(min_count=2) == pytest.approx(50.0)


def test_worst_group_skips_empty_cells():
    cells = CellAccuracy.zeros(2, 2)
    assert cells.worst_group() is None
    cells.update(torch.tensor([0, 1, 0]), torch.tensor([0, 1, 1]), torch.tensor([0, 1, 1]))
    assert cells.per_cell() == [[100.0, None], [None, 50.0]] and cells.worst_group() == 50.0


def test_evaluate_restores_train_mode():
    net = torch.nn.Linear(1, 2)
    net.train()
    loader = [(torch.ones(3, 1), torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long))]
    result = evaluate({"f": net}, {"set": loader}, num_classes=2, num_biases=1)
    assert net.training
    assert int(result["set"]["f"].total.sum()) == 3


@pytest.mark.parametrize("limit, batches", [(None, 8), (3, 3), (20, 8), (0.5, 4), (0.3, 2), (0.01, 1), (1.0, 8)])
def test_evaluate_limit_is_a_count_or_a_fraction_of_each_loader(limit, batches):
    """--limit_eval_batches as in Lightning: an int caps the batches, a float in (0, 1] takes that share."""
    net = torch.nn.Linear(1, 2)
    loader = [(torch.ones(2, 1), torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long))] * 8
    result = evaluate({"f": net}, {"set": loader}, num_classes=2, num_biases=1, limit_batches=limit)
    assert int(result["set"]["f"].total.sum()) == 2 * batches
