"""The time-budget plan: warm-up and decay laid over exactly the steps that fit, re-planned on drift.

All pure: measured times are passed in, no test waits for a clock.
"""

from __future__ import annotations

import pytest

from colorize.models.train.schedule import (
    ANNEALED_LR_FRAC,
    CHECK_EVERY,
    FINAL_LR_FRAC,
    MEASURE_STEPS,
    SAFETY_FRAC,
    BudgetPlanner,
    better_checkpoint,
    is_annealed,
    lr_factor,
    plan_steps,
)


def test_without_a_budget_the_plan_is_epochs_times_steps_and_the_old_schedule():
    plan = plan_steps(epoch_steps=37, epochs=20, warmup_frac=0.05)
    assert (plan.total_steps, plan.warmup_steps, plan.basis) == (740, 37, "epochs")
    assert lr_factor(0, plan) == pytest.approx(1 / 37)
    assert lr_factor(36, plan) == pytest.approx(1.0)
    assert lr_factor(740, plan) == pytest.approx(FINAL_LR_FRAC)


def test_the_plan_fits_whole_epochs_into_the_budget_and_ends_annealed_at_it():
    # 480 s budget, 10 s spent, 0.5 s/step, 37 steps/epoch, 6 s of validation per epoch: 24.5 s an epoch
    plan = plan_steps(37, 20, 0.05, budget_s=480, elapsed_s=10, steps_done=6, step_s=0.5, epoch_end_s=6)
    usable = 480 * (1 - SAFETY_FRAC) - 10
    epochs = plan.total_steps // 37
    assert plan.total_steps % 37 == 0 and plan.basis == "budget"
    assert epochs * 24.5 - 6 * 0.5 <= usable < (epochs + 1) * 24.5  # as many whole epochs as fit, no more
    assert plan.warmup_steps == int(plan.total_steps * 0.05)
    assert lr_factor(plan.total_steps, plan) == pytest.approx(FINAL_LR_FRAC)  # the budget ends annealed
    assert lr_factor(plan.total_steps // 2, plan) > 0.4


def test_the_plan_never_exceeds_epochs_nor_undoes_steps():
    assert plan_steps(37, 3, 0.05, budget_s=3600, step_s=0.1).total_steps == 111  # budget would allow far more
    assert plan_steps(37, 3, 0.05, budget_s=3600, step_s=0.1).basis == "epochs"
    late = plan_steps(37, 20, 0.05, budget_s=60, elapsed_s=70, steps_done=50, step_s=0.5)
    assert late.total_steps == 50  # over budget already: end where we are


def test_an_epoch_longer_than_the_budget_ends_inside_it_with_time_to_validate():
    plan = plan_steps(10_000, 20, 0.05, budget_s=100, elapsed_s=5, steps_done=3, step_s=0.5, epoch_end_s=10)
    assert plan.total_steps == 3 + int((100 * (1 - SAFETY_FRAC) - 5 - 10) // 0.5)
    assert plan.total_steps < 10_000


def test_planner_measures_first_steps_then_replans_only_on_drift():
    p = BudgetPlanner(epoch_steps=37, epochs=20, warmup_frac=0.05, budget_s=480)
    assert p.plan.basis == "epochs" and p.plan.total_steps == 740  # provisional until measured
    assert p.step(1, now=5.0) is None  # the first step's end starts the measuring window
    for s in range(2, 1 + MEASURE_STEPS):
        assert p.step(s, now=5.0 + (s - 1) * 0.8) is None
    t, s = 5.0 + MEASURE_STEPS * 0.8, 1 + MEASURE_STEPS
    first = p.step(s, now=t)
    assert first is not None and first.step_s == pytest.approx(0.8) and first.basis == "budget"
    assert first.total_steps < 740 and first.total_steps % 37 == 0
    # about the same speed: no new plan
    t, s = t + CHECK_EVERY * 0.84, s + CHECK_EVERY
    assert p.step(s, now=t) is None
    # twice as slow (another job took a core): fewer steps, still ending at the budget
    t, s = t + CHECK_EVERY * 1.6, s + CHECK_EVERY
    slower = p.step(s, now=t)
    assert slower is not None and slower.total_steps < first.total_steps
    assert slower.step_s == pytest.approx(1.6)
    # validation time is learnt at an epoch end and taken into the plan
    with_val = p.epoch_end(37, now=t + 30, seconds=30.0)
    assert with_val is not None and with_val.epoch_end_s == 30.0 and with_val.total_steps < slower.total_steps
    rec = p.record()
    assert rec["final"]["total_steps"] == with_val.total_steps and len(rec["plans"]) == 4


def test_planner_without_budget_never_replans():
    p = BudgetPlanner(epoch_steps=5, epochs=2, warmup_frac=0.05, budget_s=None)
    assert not p.wants_time(10)
    assert all(p.step(s, now=s * 9.0) is None for s in range(1, 50))
    assert p.epoch_end(5, now=100, seconds=50) is None
    assert p.plan.total_steps == 10


def test_a_plan_made_on_a_slow_start_is_corrected_before_it_ends():
    # data loading makes the first steps 3 s each, later steps take 0.1 s (seen in the demo)
    p = BudgetPlanner(epoch_steps=52, epochs=4, warmup_frac=0.05, budget_s=45)
    t = 5.0
    p.step(1, now=t)
    for s in range(2, 2 + MEASURE_STEPS):
        t += 3.0
        p.step(s, now=t)
    slow = p.plan
    assert slow.basis == "budget" and slow.total_steps < 15
    s = 1 + MEASURE_STEPS
    while s < slow.total_steps and p.plan is slow:  # re-checked while the slow plan still runs
        s += 1
        t += 0.1
        p.step(s, now=t)
    assert s < slow.total_steps and p.plan.total_steps > 3 * slow.total_steps
    done = p.plan.total_steps
    assert p.epoch_end(done, now=t + 2, seconds=0.5) is None  # a finished plan is not extended


def test_a_replan_after_warm_up_never_raises_the_learning_rate_and_still_ends_annealed():
    # planned at 1 s/step; near the plan's end the machine gets 4x faster, so the plan is extended
    p = BudgetPlanner(epoch_steps=20, epochs=50, warmup_frac=0.05, budget_s=200)
    t = 1.0
    p.step(1, now=t)
    factors, s = [], 1
    while s < p.plan.total_steps:
        s += 1
        t += 1.0 if s < 150 else 0.25
        new = p.step(s, now=t)
        if new is not None and new.decay_from is not None:
            assert new.total_steps > 150 and new.start_t > 0.7  # extended late in the decay
        factors.append(lr_factor(s, p.plan))
    extended = [plan for plan in p.history if plan.decay_from is not None]
    assert extended and extended[-1].total_steps > extended[0].at_step + 20
    after_warmup = factors[p.history[1].warmup_steps:]
    assert all(b <= a + 1e-12 for a, b in zip(after_warmup, after_warmup[1:]))  # never back up
    assert lr_factor(p.plan.total_steps, p.plan) == pytest.approx(FINAL_LR_FRAC)
    assert "continuing from" in p.plan.line()


def test_best_checkpoint_is_chosen_among_annealed_epochs_once_there_is_one():
    plan = plan_steps(epoch_steps=50, epochs=13, warmup_frac=0.05)
    annealed = [is_annealed(e * 50, plan) for e in range(1, 14)]
    assert annealed == [False] * 8 + [True] * 5  # the cosine's last ~third, never warm-up
    assert not is_annealed(0, plan_steps(epoch_steps=1, epochs=100, warmup_frac=0.05))  # warm-up's low lr
    assert lr_factor(8 * 50, plan) > ANNEALED_LR_FRAC >= lr_factor(9 * 50, plan)
    # val losses of a real small-data run (bench_quality, seed 3): the lowest, 2.765, is epoch 4
    val = [3.357, 3.039, 2.788, 2.765, 2.969, 2.809, 3.018, 2.971, 3.006, 2.891, 2.916, 2.933, 3.013]
    best, best_annealed, chosen = float("inf"), False, 0
    for epoch, (score, ann) in enumerate(zip(val, annealed), start=1):
        if better_checkpoint(score, ann, best, best_annealed):
            best, best_annealed, chosen = score, ann, epoch
    assert chosen == 10 and best_annealed  # the lowest among the annealed epochs 9-13
    assert not better_checkpoint(float("nan"), True, 3.0, False)
    assert better_checkpoint(2.9, False, float("inf"), False)  # before any annealed epoch: stands in


def test_replans_on_a_busy_machine_do_not_hold_the_learning_rate_up():
    """Throughput wobbling by 40 % every two check windows re-plans again and again; the lr must still follow a
    cosine over the run, not restart a flat cosine top at each re-plan."""
    p = BudgetPlanner(epoch_steps=20, epochs=100, warmup_frac=0.05, budget_s=600)
    t, s = 1.0, 1
    p.step(1, now=t)
    while s < p.plan.total_steps:
        s += 1
        t += 0.5 if (s // (2 * CHECK_EVERY)) % 2 else 0.7
        p.step(s, now=t)
        if s == p.plan.total_steps // 2:
            halfway = lr_factor(s, p.plan)
    assert len(p.history) > 10  # it did re-plan, many times
    assert 0.3 < halfway < 0.7  # about the cosine's 0.5 at half-way (a fresh cosine at each re-plan: ~0.9)
    assert lr_factor(p.plan.total_steps, p.plan) == pytest.approx(FINAL_LR_FRAC)


def test_planned_steps_replace_epochs_and_a_budget_only_shortens_them():
    plan = plan_steps(epoch_steps=37, epochs=20, warmup_frac=0.05, steps=100)
    assert (plan.total_steps, plan.warmup_steps, plan.basis) == (100, 5, "steps")  # 2.7 epochs: ends inside one
    assert lr_factor(100, plan) == pytest.approx(FINAL_LR_FRAC) and is_annealed(100, plan)
    assert plan_steps(37, 20, 0.05, budget_s=3600, step_s=0.1, steps=100).total_steps == 100  # never more
    short = plan_steps(37, 20, 0.05, budget_s=10, step_s=0.5, steps=100)
    assert short.basis == "budget" and short.total_steps < 100
    p = BudgetPlanner(epoch_steps=37, epochs=20, warmup_frac=0.05, budget_s=None, steps=100)
    assert p.plan.total_steps == 100 and p.step(50, now=1e6) is None  # no clock in the plan
