"""The evaluation learning-rate schedules against the papers' formulas, written out by hand here, at the
papers' epoch counts (CIFAR retraining 600 epochs, ImageNet transfer 250)."""

from __future__ import annotations

import math

import pytest

from pipeline.train import LrSchedule

IMAGENET_EPOCHS = 250
CIFAR_EPOCHS = 600


def released_linear(epoch: int, lr: float, epochs: int) -> float:
    """`adjust_lr` of the released train_imagenet.py (PC-DARTS, DrNAS, DDSAS), transcribed by hand."""
    if epochs - epoch > 5:
        return lr * (epochs - 5 - epoch) / (epochs - 5)
    return lr * (epochs - epoch) / ((epochs - 5) * 5)


def pc_darts_ddsas_rate(epoch: int, lr: float = 0.5, epochs: int = IMAGENET_EPOCHS) -> float:
    """PC-DARTS' and DDSAS' loop: the decayed rate, scaled by (epoch + 1) / 5 in the first five epochs."""
    current = released_linear(epoch, lr, epochs)
    return current * (epoch + 1) / 5.0 if epoch < 5 else current


def drnas_rate(epoch: int, lr: float = 0.5, epochs: int = IMAGENET_EPOCHS) -> float:
    """DrNAS' loop: the first five epochs ramp the initial rate instead of the decayed one."""
    return lr * (epoch + 1) / 5.0 if epoch < 5 else released_linear(epoch, lr, epochs)


def test_linear_schedule_is_the_released_one_at_250_epochs_with_scheduled_warm_up() -> None:
    schedule = LrSchedule("linear", 0.5, IMAGENET_EPOCHS, warmup_epochs=5, warmup_base="scheduled")
    for epoch in range(IMAGENET_EPOCHS):
        assert schedule.at(epoch) == pytest.approx(pc_darts_ddsas_rate(epoch), rel=1e-12, abs=1e-15)


def test_linear_schedule_is_the_released_one_at_250_epochs_with_drnas_warm_up() -> None:
    schedule = LrSchedule("linear", 0.5, IMAGENET_EPOCHS, warmup_epochs=5, warmup_base="initial")
    for epoch in range(IMAGENET_EPOCHS):
        assert schedule.at(epoch) == pytest.approx(drnas_rate(epoch), rel=1e-12, abs=1e-15)


def test_linear_schedule_hand_worked_values_at_250_epochs() -> None:
    schedule = LrSchedule("linear", 0.5, IMAGENET_EPOCHS, warmup_epochs=5, warmup_base="initial")
    # Warm-up 0.1, 0.2, ... 0.5; then 0.5 (245 - e) / 245; the tail 0.5 (250 - e) / 1225.
    assert [schedule.at(e) for e in range(6)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.5 * 240 / 245])
    assert schedule.at(244) == pytest.approx(0.5 / 245)
    assert [schedule.at(e) for e in range(245, 250)] == pytest.approx([0.5 * k / 1225 for k in (5, 4, 3, 2, 1)])
    # What the issue measured against the plain lr (1 - e/E): 1e-2 apart at epoch 244, 4.9x in the tail.
    assert 0.5 * (1 - 244 / 250) - schedule.at(244) == pytest.approx(0.00996, abs=1e-5)
    assert 0.5 * (1 - 245 / 250) / schedule.at(245) == pytest.approx(4.9)


def test_scheduled_warm_up_scales_the_decayed_rate() -> None:
    schedule = LrSchedule("linear", 0.5, IMAGENET_EPOCHS, warmup_epochs=5, warmup_base="scheduled")
    assert schedule.at(0) == pytest.approx(0.5 * 245 / 245 / 5)
    assert schedule.at(4) == pytest.approx(0.5 * 241 / 245)


def test_linear_schedule_refuses_runs_without_a_head() -> None:
    with pytest.raises(ValueError, match="more than 5 epochs"):
        LrSchedule("linear", 0.5, 5)


def test_step_schedule_is_darts_at_250_epochs() -> None:
    schedule = LrSchedule("step", 0.1, IMAGENET_EPOCHS, gamma=0.97)
    for epoch in (0, 1, 2, 100, 249):
        assert schedule.at(epoch) == pytest.approx(0.1 * 0.97**epoch, rel=1e-12)


def test_step_schedule_warm_up_ramps_the_scheduled_rate() -> None:
    schedule = LrSchedule("step", 0.1, epochs=10, gamma=0.97, warmup_epochs=2)
    assert [schedule.at(e) for e in range(4)] == pytest.approx([0.1 * 0.5, 0.1 * 0.97, 0.1 * 0.97**2, 0.1 * 0.97**3])


def test_poly_schedule_is_datas_plain_linear_decay_at_250_epochs() -> None:
    schedule = LrSchedule("poly", 0.1, IMAGENET_EPOCHS)
    assert [schedule.at(e) for e in (0, 125, 249)] == pytest.approx([0.1, 0.05, 0.1 / 250])


def test_cosine_schedule_is_the_cifar_retrain_one_at_600_epochs() -> None:
    schedule = LrSchedule("cosine", 0.025, CIFAR_EPOCHS, lr_min=0.0)
    for epoch in (0, 1, 150, 300, 450, 599):
        assert schedule.at(epoch) == pytest.approx(0.025 * (1 + math.cos(math.pi * epoch / 600)) / 2, rel=1e-12)
    assert schedule.at(300) == pytest.approx(0.0125)
