"""Criteria in full precision: every loss of this project is computed in float32 with autocast disabled, whatever
precision the networks run in (``--amp bf16``). Under autocast a ``.float()`` cast is not enough: the matrix
products inside (HSIC's pairwise distances, the comparison methods' fc layers) would run in bf16 again."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor

Function = TypeVar("Function", bound=Callable[..., Any])


LOW_PRECISION = (torch.float16, torch.bfloat16)


def _float32(value: Any) -> Any:
    return value.float() if isinstance(value, Tensor) and value.dtype in LOW_PRECISION else value


def _device_type(values: tuple[Any, ...]) -> str:
    return next((value.device.type for value in values if isinstance(value, Tensor)), "cpu")


def full_precision(function: Function) -> Function:
    """Decorate a criterion (a function or a ``forward``): its half-precision tensor arguments are cast to float32
    (float32 and float64 stay as they are) and it runs with autocast disabled on their device."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(_device_type((*args, *kwargs.values())), enabled=False):
            return function(*(_float32(value) for value in args),
                            **{key: _float32(value) for key, value in kwargs.items()})

    return wrapper  # type: ignore[return-value]
