"""Ephemeral values (Terraform 1.10+): generated or read during a run, never stored in the plan or the state.

cdktf 0.21 has no construct for Terraform's `ephemeral` blocks, so they are written into the stack's JSON as
an override at the stack's root, where Terraform's JSON syntax expects them (Terraform docs, "Ephemeral
resource configuration reference"). Their values may only flow into write-only arguments (Terraform 1.11,
`*_wo` with a `*_wo_version` that says when to send them again) and other ephemeral contexts; Terraform
refuses any other use when it validates the stack, which every synthesized stack goes through.
"""

from __future__ import annotations

import re

from cdktf import TerraformStack
from constructs import Construct

_NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9_]")


def random_password(scope: Construct, id: str, length: int, exclude_punctuation: bool = True) -> str:
    """A password Secrets Manager generates for this run (`aws_secretsmanager_random_password`, the ephemeral
    resource): returns the expression that reads it, for write-only arguments in the same stack."""
    stack = TerraformStack.of(scope)
    path = scope.node.path.split("/", 1)[1] if "/" in scope.node.path else ""
    name = _NOT_IN_A_NAME.sub("_", f"{path}_{id}".strip("_"))
    stack.add_override(f"ephemeral.aws_secretsmanager_random_password.{name}", {
        "password_length": length, "exclude_punctuation": exclude_punctuation, "require_each_included_type": True,
    })
    return f"ephemeral.aws_secretsmanager_random_password.{name}.random_password"
