import torch
from torch.utils.data import Dataset

from datasets.loaders import DeviceLoader


class Items(Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, index):
        return torch.tensor([float(index)]), index % 3, index % 2, index


def order(loader, epoch):
    loader.set_epoch(epoch)
    return torch.cat([batch.index for batch in loader]).tolist()


def test_device_loader_yields_batches_and_epoch_seeded_order():
    loader = DeviceLoader(Items(), batch_size=4, shuffle=True, device=torch.device("cpu"), seed=3, num_workers=0)
    assert len(loader) == 3
    first = order(loader, 0)
    assert sorted(first) == list(range(10))
    assert first == order(loader, 0)
    assert first != order(loader, 1)
    batch = next(iter(loader))
    assert torch.equal(batch.target, batch.index % 3) and torch.equal(batch.bias, batch.index % 2)
    assert order(DeviceLoader(Items(), 4, shuffle=False, device=torch.device("cpu"), num_workers=0), 5) == \
        list(range(10))
