"""Rendering changes (an operator upgrade) roll a few models at a time; spec edits at once."""

from __future__ import annotations

import dataclasses

from tests.unit.test_controller_rollouts import NOW, live, view

from modeldeploy.controller.rollout.revisions import revision_of, step, workload_to_apply
from modeldeploy.controller.rollout.upgrades import (
    CAUSE_OPERATOR,
    CAUSE_SPEC,
    RENDERED_GENERATION,
    ROLLOUT_CAUSE,
    UpgradeSlots,
    rendered_generation,
)
from modeldeploy.render import RolloutInputs


def test_spec_edit_rolls_at_once_without_a_slot() -> None:
    current = live("a", **{RENDERED_GENERATION: "1", ROLLOUT_CAUSE: CAUSE_SPEC})
    decided = step(dataclasses.replace(view("b", current, generation=2), upgrade_slot=False))
    assert not decided.queued and decided.target.hash == "b" and decided.cause == CAUSE_SPEC
    assert not decided.upgrading


def test_rendering_change_waits_for_a_slot_and_keeps_the_live_template() -> None:
    """Same generation, new template: an operator upgrade. Without a slot the live revision
    stays (nothing restarts); with one it rolls, marked `operator` until complete."""
    current = live("a", **{RENDERED_GENERATION: "2", ROLLOUT_CAUSE: CAUSE_SPEC})
    queued = step(dataclasses.replace(view("b", current, generation=2), upgrade_slot=False))
    assert queued.queued and queued.target.hash == "a" and not queued.upgrading
    applied = workload_to_apply({"kind": "Deployment", "metadata": {}, "spec": {
        "template": {"metadata": {"annotations": {}}}}}, queued, RolloutInputs(), 2)
    assert revision_of(applied) == "a" and rendered_generation(applied) == 2
    started = step(view("b", current, generation=2))
    assert started.target.hash == "b" and started.cause == CAUSE_OPERATOR and started.upgrading
    # Later passes: the live revision is the operator's until it completes.
    rolling = live("b", ready=0, **{RENDERED_GENERATION: "2", ROLLOUT_CAUSE: CAUSE_OPERATOR})
    assert step(view("b", rolling, generation=2)).upgrading
    done = live("b", **{RENDERED_GENERATION: "2", ROLLOUT_CAUSE: CAUSE_OPERATOR})
    assert not step(view("b", done, generation=2)).upgrading


def test_workload_from_an_older_operator_counts_as_a_rendering_change() -> None:
    decided = step(dataclasses.replace(view("b", live("a"), generation=7), upgrade_slot=False))
    assert decided.queued and decided.target.hash == "a"


def test_slots_limit_concurrent_upgrades_and_expire() -> None:
    slots = UpgradeSlots(limit=2, expiry=180)
    assert slots.may_start("m1", NOW) and slots.may_start("m2", NOW)
    slots.record("m1", True, NOW)
    slots.record("m2", True, NOW)
    assert not slots.may_start("m3", NOW)
    assert slots.may_start("m1", NOW)  # a holder continues
    slots.record("m1", False, NOW + 10)  # m1's rollout completed
    assert slots.may_start("m3", NOW + 10)
    slots.record("m3", True, NOW + 10)
    assert not slots.may_start("m4", NOW + 100)
    assert slots.may_start("m4", NOW + 181)  # m2 was deleted: never seen again, expired
    assert slots.acquire("m4", NOW + 181) and not slots.acquire("m5", NOW + 181)
