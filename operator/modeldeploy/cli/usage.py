"""Usage errors of every `modeldeploy` command as one line naming the flag, exit 2.

click prints a usage error as the usage line, a hint and the message, and typer with rich
draws them in a box: several lines for one mistake, and a script's log gets the box. The house
rule for bad input is one line (`error: …`, as `plan` and `run` print for bad files and flag
values), so the command group below catches click's UsageError itself and prints
`error: modeldeploy plan: --output: 'xml' is not one of 'table', 'json', 'yaml' (see
modeldeploy plan --help)`. `--help` keeps typer's rich layout.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from .exits import EXIT_INVALID

# click's exception classes as typer raises them: recent typer releases carry their own copy of
# click (typer._click), older ones use click itself; typer's BadParameter lives beside them.
click = importlib.import_module(typer.BadParameter.__module__)


def _param_name(param: Any, hint: object) -> str | None:
    """The flag (its long form) or argument (FILES) the error is about, if click knows it."""
    kind = getattr(param, "param_type_name", None)
    if kind == "option":
        return str(max(param.opts, key=len))
    if kind == "argument":
        return str(param.name or "").upper()
    if isinstance(hint, str):
        return hint.strip("'\"")
    if isinstance(hint, Sequence) and hint:
        return str(hint[0]).strip("'\"")
    return None


def _suggest(possibilities: Sequence[str] | None) -> str:
    return f" (did you mean {' or '.join(possibilities)}?)" if possibilities else ""


def _what_and_why(error: Any) -> tuple[str | None, str]:
    """(flag or argument, why) of one usage error, in click's facts, without its decoration."""
    if isinstance(error, click.MissingParameter):
        return _param_name(error.param, error.param_hint), "missing"
    if isinstance(error, click.BadParameter):
        why = error.message.removeprefix("Value error, ").rstrip(".")
        return _param_name(error.param, error.param_hint), why
    if isinstance(error, click.NoSuchOption):
        return error.option_name, "no such option" + _suggest(error.possibilities)
    if isinstance(error, click.BadOptionUsage):
        why = error.message.rstrip(".").replace(f"Option {error.option_name!r} requires",
                                                "option requires")
        return error.option_name, why
    return None, error.format_message().rstrip(".")


def usage_error_line(error: Any, command: str) -> str:
    """`error: COMMAND: FLAG: why (see COMMAND --help)`: one line whatever click raised;
    `command` names the command when click's error carries no context (BadOptionUsage)."""
    command = error.ctx.command_path if error.ctx else command
    what, why = _what_and_why(error)
    where = f"{command}: {what}" if what else command
    return f"error: {where}: {' '.join(why.split())} (see {command} --help)"


class OneLineErrors(TyperGroup):
    """The `modeldeploy` command group: click's usage errors as usage_error_line, exit 2."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """An unknown command is refused naming the commands it most likely means."""
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            ctx.fail(f"no such command {name!r}{_suggest(difflib.get_close_matches(name, self.list_commands(ctx)))}")
        return super().resolve_command(ctx, args)

    def _command_of(self, args: Sequence[str] | None, prog_name: str | None) -> str:
        """`modeldeploy plan`: the program and the first command among the arguments."""
        words = list(sys.argv[1:] if args is None else args)
        sub = next((w for w in words if w in self.commands), None)
        program = prog_name or self.name or "modeldeploy"
        return f"{program} {sub}" if sub else program

    def main(  # type: ignore[override]  # click's signature, the mode forced below
        self, args: Sequence[str] | None = None, prog_name: str | None = None,
        complete_var: str | None = None, standalone_mode: bool = True, **extra: Any,
    ) -> Any:
        if not standalone_mode:  # a caller that handles click's exceptions itself
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            status = super().main(args, prog_name, complete_var, False, **extra)
        except click.NoArgsIsHelpError as exc:
            sys.exit(exc.exit_code)  # typer printed the help when click built the error
        except click.UsageError as exc:
            typer.echo(usage_error_line(exc, self._command_of(args, prog_name)), err=True)
            sys.exit(EXIT_INVALID)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(status if isinstance(status, int) else 0)
