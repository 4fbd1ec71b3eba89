"""The configuration as the commands see it, the typed confirmation, and the preflight gate."""

from __future__ import annotations

from typing import TYPE_CHECKING

from environments.loader import ConfigError, load_project
from environments.model import ProjectConfig
from ops import preflight
from ops.errors import Refused, UsageError
from ops.targets import Kind, Target, UnknownStack, resolve

if TYPE_CHECKING:
    from ops.tools import Tools

EMULATOR_VARIABLE = "INFRA_AWS_ENDPOINT"


def load(tools: Tools, endpoint: str | None = None) -> ProjectConfig:
    """The validated configuration.

    The emulator endpoint is `endpoint`, else INFRA_AWS_ENDPOINT, exactly as main.py will see it.
    """
    try:
        return load_project(tools.root / "environments", endpoint or tools.environ.get(EMULATOR_VARIABLE) or None)
    except ConfigError as error:
        raise UsageError(f"configuration error: {error}") from None


def target(project: ProjectConfig, name: str, *kinds: Kind) -> Target:
    """The stack `name` names; a usage error listing the stacks when there is none (or not of `kinds`)."""
    try:
        found = resolve(project, name)
    except UnknownStack as error:
        raise UsageError(str(error)) from None
    if kinds and found.kind not in kinds:
        raise UsageError(f"{name} is a {found.kind} stack; this command takes "
                         f"{' or '.join(f'an {kind}' if kind[0] in 'aeiou' else f'a {kind}' for kind in kinds)}")
    return found


def load_target(tools: Tools, name: str, *kinds: Kind) -> tuple[ProjectConfig, Target]:
    project = load(tools)
    return project, target(project, name, *kinds)


def confirm(tools: Tools, stack: str, action: str, yes: bool, by_name: bool, losses: tuple[str, ...] = (),
            doing: str | None = None) -> None:
    """Ask for the typed confirmation `action` needs; raise Refused unless the answer is exact.

    Production, the shared stacks and every destroy must be named, not just approved: typing a
    name is a deliberate act that `yes`-by-habit is not. `losses` (stateful resources the plan
    replaces or destroys) are named in the question, so nobody approves them unseen.
    """
    if yes:
        return
    doing = doing or f"{action.lower()}ing"
    expected = stack if by_name else "yes"
    what = f"type its name ({stack})" if by_name else "type yes"
    warning = "".join(f"\n  loses data: {address}" for address in losses)
    try:
        answer = tools.ask(f"{action} {stack}?{warning}\nTo continue, {what}: " if losses
                           else f"{action} {stack}? To continue, {what}: ")
    except EOFError:
        raise Refused(f"not {doing} {stack}: confirmation needed, but there is no terminal to "
                      "ask (pass --yes where an approval happened elsewhere)") from None
    if answer != expected:
        raise Refused(f"not {doing} {stack}: the answer {answer!r} is not {expected!r}")


def require_preflight(tools: Tools, project: ProjectConfig, stack: Target, action: str = "Deploy",
                      doing: str | None = None) -> None:
    """Run ops/preflight.py's checks for `stack`, show them, and stop unless every one passed."""
    result = tools.run_preflight(project, stack.name)
    preflight.report(result, tools.out, tools.err)
    if not result.ok:
        raise Refused(f"not {doing or action.lower() + 'ing'} {stack.name}: preflight failed "
                      f"({', '.join(check.name for check in result.failures)}); fix the lines above first")
