"""The rollout: how a new pod template replaces the live one, and how a failed one is undone.
Pure, like the rest of the controller; the shell only applies what `decide` returns.

One pass, in order (`controller.decide` calls `workload.prepare`, then `layout.layout_change`):

1. `workload`: render the workload with the rollout inputs recorded on it (the capacity seen
   when its revision started), step the rollout, and when a revision is about to go live,
   render again with the capacity observed now: that strategy is kept until the rollout ends.
2. `revisions`: the step itself: record a revision that became Ready, classify a stuck one,
   decide a rollback (or keep holding one), and the `status.rollout` block.
3. `upgrades`: a rendering change of an unchanged spec (an operator upgrade) rolls a few
   models at a time (`UpgradeSlots`, held by the shell across passes).
4. `layout`: a change between Deployment and LeaderWorkerSet surges the new group beside the
   old one when the pool has the GPUs, else removes the old one first with a status reason.
5. `memory`: the annotations on the workload that carry all of this across passes and
   restarts (never status, never process memory).

The rules these steps read sit below the renderer, because the renderer writes the strategy
into the workload and the startup watchdog reads vLLM's failure words: the strategy, stuck-pod,
deadline and rollback tables in `decisions.rollout`, and `render.rollout`, which turns the
observed capacity (`RolloutInputs`) into the workload's RollingUpdate and progress deadline.
"""
