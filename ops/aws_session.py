"""boto3 sessions as the stack's own identity: what `restore` and the database bootstrap run as.

Terraform reaches an environment through its deploy role (core/access.py); the commands that call
AWS around a deploy go the same way, so they need no permission in the environment's account that
the deploy itself does not have, and CloudTrail shows them under the stack's session name.
"""

from __future__ import annotations

from core.access import AssumedRole
from environments.model import ProjectConfig


def session_for(project: ProjectConfig, role: AssumedRole | None, region: str):
    """The caller's session, or `role`'s (STS AssumeRole with the caller's credentials, at the emulator if any)."""
    import boto3

    session = boto3.session.Session()
    if role is None:
        return session
    endpoint = project.emulator.endpoint if project.emulator else None
    sts = session.client("sts", region_name=region, endpoint_url=endpoint)
    credentials = sts.assume_role(RoleArn=role.role_arn, RoleSessionName=role.session_name)["Credentials"]
    return boto3.session.Session(aws_access_key_id=credentials["AccessKeyId"],
                                 aws_secret_access_key=credentials["SecretAccessKey"],
                                 aws_session_token=credentials["SessionToken"])
