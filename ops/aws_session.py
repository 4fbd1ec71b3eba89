"""boto3 sessions as the stack's own identity: what `restore` and the database bootstrap run as.

Terraform reaches an environment through its deploy role (core/access.py); the commands that call
AWS around a deploy go the same way, so they need no permission in the environment's account that
the deploy itself does not have, and CloudTrail shows them under the stack's session name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.config import Config

from core.access import AssumedRole
from environments.model import ProjectConfig

# Fail fast on an unreachable endpoint instead of botocore's default minutes of retries.
CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2, "mode": "standard"})


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


@dataclass(frozen=True)
class AwsClients:
    sts: Any
    s3: Any
    dynamodb: Any

    @classmethod
    def for_project(cls, project: ProjectConfig, session: Any = None) -> AwsClients:
        """Clients in the state backend's region, pointed at the emulator when one is configured."""
        import boto3

        session = session or boto3.session.Session()
        endpoint = project.emulator.endpoint if project.emulator else None

        def client(service: str):
            return session.client(service, region_name=project.state.region, endpoint_url=endpoint,
                                  config=CLIENT_CONFIG)

        return cls(sts=client("sts"), s3=client("s3"), dynamodb=client("dynamodb"))

    def assume(self, project: ProjectConfig, role: AssumedRole) -> AwsClients:
        """The same clients with `role`'s temporary credentials (STS AssumeRole with these clients' own)."""
        import boto3

        credentials = self.sts.assume_role(RoleArn=role.role_arn, RoleSessionName=role.session_name)["Credentials"]
        session = boto3.session.Session(aws_access_key_id=credentials["AccessKeyId"],
                                        aws_secret_access_key=credentials["SecretAccessKey"],
                                        aws_session_token=credentials["SessionToken"])
        return AwsClients.for_project(project, session)
