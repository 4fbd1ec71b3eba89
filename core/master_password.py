"""The master password of a global database's primary: what Terraform and `python -m ops` agree on.

RDS may not manage the master password of an Aurora global database's member (Aurora User Guide, "Password
management with Amazon Aurora and AWS Secrets Manager", Limitations). So modules/database.py creates the
cluster with a throwaway password and an empty secret, and ops/master_password.py sets the real password on
the cluster and in the secret. Both sides take the secret's name and the password's form from here.
"""

from __future__ import annotations

# The ending of the secret: `<app>-<env>-database-master`.
OWN_MASTER_SECRET_SUFFIX = "-database-master"
# RDS API Reference, CreateDBCluster/ModifyDBCluster MasterUserPassword: 8 to 41 printable characters without
# "/", '"' or "@"; 41 letters and digits (about 240 bits) avoid every excluded character and quoting rule.
MASTER_PASSWORD_LENGTH = 41
# Terraform sends the throwaway password once, when it creates the cluster (or takes the password from RDS);
# the version is never raised, because ops owns the password from then on.
THROWAWAY_PASSWORD_VERSION = 1


def own_master_secret_name(prefix: str) -> str:
    """`<prefix>-database-master`, for `<prefix>` = `<app>-<env>`."""
    return f"{prefix}{OWN_MASTER_SECRET_SUFFIX}"
