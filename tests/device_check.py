"""A check that a training step computes only on the model's device.

The model is built on PyTorch's ``meta`` device (shapes, no data), so a CPU machine can tell a tensor
that followed the model from one that stayed behind: every operation a step runs is recorded with the
devices of its tensors. Moving a batch (``.to``) is not computation and is not recorded; 0-d CPU tensors
(Python scalars, which PyTorch lets mix with any device) are ignored. ``.item()`` on a meta tensor returns 0.5
so steps can log numbers.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

_MOVES = {torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default}


class DeviceRecorder(TorchDispatchMode):
    """``with DeviceRecorder() as rec: ...``; then ``rec.off_device`` lists (device, op) pairs that were not meta."""

    def __init__(self):
        super().__init__()
        self.off_device: list[tuple[str, str]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in _MOVES:
            for t in tree_flatten((args, kwargs))[0]:
                if isinstance(t, torch.Tensor) and t.device.type != "meta" and not (t.device.type == "cpu" and t.ndim == 0):
                    self.off_device.append((t.device.type, str(func)))
        if func is torch.ops.aten._local_scalar_dense.default and args[0].device.type == "meta":
            return 0.5
        return func(*args, **kwargs)


def watched(step, recorder: DeviceRecorder):
    """``step`` run under ``recorder``: what a training step computes is recorded, not the data preparation
    (collation on the CPU) around it."""
    def run(*args, **kwargs):
        with recorder:
            return step(*args, **kwargs)
    return run


def assert_on_model_device(run) -> None:
    """Call ``run(watch)``, where ``watch(step)`` wraps a training step to be recorded (a model built on
    ``meta``), and fail if any recorded operation touched a tensor on another device, or if the run failed
    because of one."""
    recorder = DeviceRecorder()
    try:
        run(lambda step: watched(step, recorder))
    except RuntimeError as error:
        if "device" in str(error):
            raise AssertionError(f"a tensor was not on the model's device: {error}") from error
        raise
    assert not recorder.off_device, f"computed off the model's device: {sorted(set(recorder.off_device))[:5]}"
