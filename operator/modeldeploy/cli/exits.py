"""Exit status of every `modeldeploy` command: one meaning per number, whichever command.

Scripts and CI branch on these, so they never change meaning; `--help` of each command and
the README's command table say them in the words of EXIT_STATUS_HELP. The one exception is
`download`, which runs inside the shared cache's Job and speaks that Job's podFailurePolicy
(render/cache.py EXIT_PERMANENT = 3: do not retry; 1: retry), a contract with Jobs already
running that a renumbering would break.
"""

from __future__ import annotations

EXIT_INVALID = 2  # the input is wrong (a file, a flag, a kubeconfig): fix it and run again
EXIT_INFEASIBLE = 3  # some plan is infeasible, or nothing knows its model
EXIT_UNAVAILABLE = 4  # something outside could not be asked (the hub, the API server): retry or fix access

EXIT_STATUS_HELP = (
    "Exit status: 0 every plan is feasible; 2 some input is invalid (fix the file); 3 some plan is "
    "infeasible or its model unknown; 4 some model's facts could not be fetched from the hub (retry, "
    "or check access). When several apply: 2, then 4, then 3."
)
DOCUMENTS_HELP = (
    "Each ModelDeployment document stands alone: an invalid one is reported (one line naming file, "
    "object and field) and is its own result, the others are still planned. An unreadable file, "
    "broken YAML or an invalid GPUPool stops the run: every plan depends on the pools."
)
