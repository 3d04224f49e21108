"""The learning-rate schedule, and with --max-minutes the plan that makes it end at the time budget.

Why a plan: a cosine schedule laid out for --epochs and then cut by the clock stops at peak learning rate
with an unfinished model (a budget that fits 11 of 20 epochs leaves the "best" checkpoint an early one). With a budget,
the run measures its own throughput on the first steps, fits as many whole epochs as the remaining time
allows (validation and checkpoints included, a safety margin kept), never more than --epochs, and lays
warm-up and decay over exactly those steps, so the run ends annealed at the budget. Throughput is checked
again every few steps and at every epoch end; when it drifts the rest of the run is re-planned. A re-plan
after the warm-up continues the cosine from the progress the run has reached (the share of the decay
done) to the new end, so the lr never rises again and never stalls: laid out afresh, a plan extended
near its end restarted the cosine (bench_quality: an lr of 2.9e-5 back up to 1.7e-4 one epoch before the
end), and a fresh half-cosine from the lr reached starts flat, so a run re-planned every few epochs on a
busy machine held its lr near 0.7x and then fell in the last three epochs.
Without a budget the plan is --epochs x steps per epoch, the same schedule as always.

`plan_steps` is a pure function of the measurements (tests call it without a clock); `BudgetPlanner`
keeps the measurements and decides when to re-plan, from times the loop passes in.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

# Share of the budget kept free for start-up jitter, the last checkpoint and the run record.
SAFETY_FRAC = 0.03
# Steps (after the first, which pays one-off costs) measured before the first plan.
MEASURE_STEPS = 5
# Throughput is re-checked every this many steps (sooner near the plan's end, so a plan made on a slow
# start is corrected before it ends); a change of more than DRIFT re-plans.
CHECK_EVERY = 20
DRIFT = 0.10
FINAL_LR_FRAC = 0.01
# An epoch that ends past warm-up at no more than this share of the peak learning rate is annealed. best.pt
# is chosen by validation among annealed epochs as soon as there is one; earlier epochs only stand in until
# then. Why: on a small validation set (bench_quality: 3 photos) the lowest val loss of all epochs was
# an early, unfinished one in 3 of 5 runs (epochs 2, 2 and 4 of 13-15), 0.4-1.0 dB PSNR worse on the
# held-out photos than the annealed ones, with a stronger cast.
ANNEALED_LR_FRAC = 0.25


@dataclass(frozen=True)
class Plan:
    """How many optimizer steps the run makes, and why."""

    total_steps: int
    warmup_steps: int
    epoch_steps: int
    basis: str  # "epochs" or "steps" (no budget, or the budget fits them all) or "budget"
    step_s: float | None = None  # measured seconds per step the plan assumes
    epoch_end_s: float | None = None  # measured seconds per validation + checkpoints
    budget_s: float | None = None
    at_step: int = 0  # the step at which this plan was made
    # A re-plan after warm-up continues the decay from the progress reached (start_t, 0..1) at decay_from.
    decay_from: int | None = None
    start_t: float = 0.0

    @property
    def decay_start(self) -> int:
        """The step where this plan's cosine decay begins (the end of warm-up, or where a re-plan took over)."""
        return self.warmup_steps if self.decay_from is None else self.decay_from

    @property
    def epochs(self) -> float:
        return self.total_steps / max(1, self.epoch_steps)

    def record(self) -> dict[str, Any]:
        out = asdict(self) | {"epochs": round(self.epochs, 3)}
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}

    def line(self) -> str:
        how = (f"{self.basis}: {self.total_steps} steps = {self.epochs:.2f} epochs of {self.epoch_steps}, "
               f"warm-up {self.warmup_steps}, cosine decay to {FINAL_LR_FRAC:g}x at the end")
        if self.decay_from is not None:
            how += f" (continuing from {self.start_t:.0%} of the decay at step {self.decay_from})"
        if self.step_s is not None:
            how += (f" (measured {self.step_s:.3f} s/step, {self.epoch_end_s or 0:.1f} s per validation, "
                    f"budget {self.budget_s:.0f} s, planned at step {self.at_step})")
        return how


def decay_progress(step: int, plan: Plan) -> float:
    """How much of the cosine decay is done after `step`: 0 at its start, 1 at plan.total_steps."""
    start = plan.decay_start
    return min(1.0, plan.start_t + (1.0 - plan.start_t) * max(0, step - start) / max(1, plan.total_steps - start))


def lr_factor(step: int, plan: Plan) -> float:
    """Linear warm-up over plan.warmup_steps, then cosine decay to FINAL_LR_FRAC at plan.total_steps."""
    if plan.decay_from is None and step < plan.warmup_steps:
        return (step + 1) / plan.warmup_steps
    t = decay_progress(step, plan)
    return FINAL_LR_FRAC + (1 - FINAL_LR_FRAC) * 0.5 * (1 + math.cos(math.pi * t))


def is_annealed(step: int, plan: Plan) -> bool:
    """Whether the learning rate after `step` is past warm-up and decayed to ANNEALED_LR_FRAC or below."""
    return step >= plan.decay_start and lr_factor(step, plan) <= ANNEALED_LR_FRAC


def better_checkpoint(score: float, annealed: bool, best_score: float, best_annealed: bool) -> bool:
    """Whether an epoch (its validation score, lower is better; annealed or not) replaces best.pt.

    An annealed epoch beats any unannealed one; among equals the lower score wins."""
    if not math.isfinite(score):
        return False
    if annealed != best_annealed:
        return annealed
    return score < best_score


def _warmup(total_steps: int, warmup_frac: float) -> int:
    return max(1, int(total_steps * warmup_frac))


def plan_steps(epoch_steps: int, epochs: int, warmup_frac: float, budget_s: float | None = None,
               elapsed_s: float = 0.0, steps_done: int = 0, step_s: float | None = None,
               epoch_end_s: float = 0.0, safety_frac: float = SAFETY_FRAC, steps: int | None = None) -> Plan:
    """The plan for a run of `epochs` x `epoch_steps` steps, fitted into `budget_s` when one is given.

    With a budget and a measured `step_s`, the remaining time (budget less safety, less `elapsed_s`) buys
    whole epochs at `epoch_steps * step_s + epoch_end_s` each; if not even the current epoch fits, the
    run ends inside it (the loop then validates there). The plan never asks for fewer steps than are done,
    nor more than `epochs` allow (or `steps`, when given: a planned number of steps in place of epochs).
    Warm-up is `warmup_frac` of the planned steps, as without a budget.
    """
    epoch_steps = max(1, int(epoch_steps))
    cap = max(1, int(steps)) if steps is not None else max(1, int(epochs)) * epoch_steps
    fixed = "epochs" if steps is None else "steps"
    if budget_s is None or step_s is None:
        return Plan(cap, _warmup(cap, warmup_frac), epoch_steps, fixed, budget_s=budget_s)
    left = budget_s * (1.0 - safety_frac) - elapsed_s
    epoch_s = epoch_steps * step_s + epoch_end_s
    whole = steps_done // epoch_steps  # epochs finished
    in_epoch = steps_done - whole * epoch_steps
    first_s = (epoch_steps - in_epoch) * step_s + epoch_end_s  # the rest of the current epoch
    if left >= first_s:
        epochs_fit = whole + 1 + int((left - first_s) // epoch_s)
        total = epochs_fit * epoch_steps
    else:  # not even this epoch fits: end inside it, with time for its validation
        total = steps_done + max(0, int((left - epoch_end_s) // step_s))
    total = max(steps_done, min(cap, total), 1)
    basis = fixed if total == cap else "budget"
    return Plan(total, _warmup(total, warmup_frac), epoch_steps, basis, step_s, epoch_end_s, budget_s, steps_done)


@dataclass
class BudgetPlanner:
    """Measures throughput as the loop reports steps and epoch ends, and re-plans when it drifts.

    `step(step, now)` and `epoch_end(seconds)` return a new Plan when the plan changes, else None.
    Times are passed in (seconds since the run started), so the decisions are testable without a clock.
    """

    epoch_steps: int
    epochs: int
    warmup_frac: float
    budget_s: float | None
    steps: int | None = None  # a planned number of steps in place of `epochs` (TrainConfig.steps)
    plan: Plan = field(init=False)
    history: list[Plan] = field(default_factory=list)
    _mark: tuple[int, float] | None = None  # (step, time) where the current measuring window began
    _epoch_end_s: float = 0.0
    _step_s: float | None = None

    def __post_init__(self) -> None:
        self.plan = plan_steps(self.epoch_steps, self.epochs, self.warmup_frac, steps=self.steps)
        self.history.append(self.plan)

    def _replan(self, steps_done: int, now: float) -> Plan | None:
        new = plan_steps(self.epoch_steps, self.epochs, self.warmup_frac, self.budget_s, now, steps_done,
                         self._step_s, self._epoch_end_s, steps=self.steps)
        if new.total_steps == self.plan.total_steps and self.plan.step_s is not None:
            return None
        if steps_done >= self.plan.decay_start:  # past warm-up: carry on down from where the lr is now
            new = replace(new, warmup_steps=self.plan.warmup_steps, decay_from=steps_done,
                          start_t=decay_progress(steps_done, self.plan))
        self.plan = new
        self.history.append(new)
        return new

    def wants_time(self, steps_done: int, first_step: int = 1) -> bool:
        """Whether `step` would read the clock at this step (multi-GPU runs agree on `now` only then)."""
        if self.budget_s is None:
            return False
        if self._mark is None:
            return steps_done >= first_step
        return steps_done - self._mark[0] >= self._due()

    def _due(self) -> int:
        """Steps in the next measuring window: MEASURE_STEPS first, then CHECK_EVERY or half of what is left."""
        if self._step_s is None:
            return MEASURE_STEPS
        left = self.plan.total_steps - (self._mark[0] if self._mark else 0)
        return max(1, min(CHECK_EVERY, left // 2))

    def step(self, steps_done: int, now: float, first_step: int = 1) -> Plan | None:
        """After optimizer step `steps_done` (the run's first step in this process is `first_step`)."""
        if self.budget_s is None:
            return None
        if self._mark is None:
            if steps_done >= first_step:  # the first step pays one-off costs: measure from its end
                self._mark = (steps_done, now)
            return None
        n = steps_done - self._mark[0]
        if n < self._due():
            return None
        measured = (now - self._mark[1]) / n
        self._mark = (steps_done, now)
        if self._step_s is not None and abs(measured / self._step_s - 1.0) <= DRIFT:
            return None
        self._step_s = measured
        return self._replan(steps_done, now)

    def epoch_end(self, steps_done: int, now: float, seconds: float) -> Plan | None:
        """After an epoch's validation and checkpoints, which took `seconds`."""
        if self.budget_s is None:
            return None
        self._epoch_end_s = max(self._epoch_end_s, seconds)
        if self._mark is not None:  # validation time is not step time: take it out of the window
            self._mark = (self._mark[0], self._mark[1] + seconds)
        if self._step_s is None or steps_done >= self.plan.total_steps:  # a finished plan stays finished
            return None
        return self._replan(steps_done, now)

    def record(self) -> dict[str, Any]:
        return {"final": self.plan.record(), "plans": [p.record() for p in self.history]}
