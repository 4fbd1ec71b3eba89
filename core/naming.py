"""Resource names that fit AWS's per-service length limits without colliding."""

from __future__ import annotations

import hashlib

# Hex characters of the prefix's digest kept when a name has to be shortened.
DIGEST_LENGTH = 6


def bounded_name(prefix: str, component: str, limit: int) -> str:
    """`<prefix>-<component>`, or, when that exceeds `limit`, a shortened prefix plus a digest of the full one.

    Some services cap names well below what `<app>-<env>` can reach (a load balancer at 32
    characters, an ElastiCache replication group at 40). Cutting the name off would let two
    environments with a long common prefix collide and could leave a trailing hyphen; the digest
    keeps shortened names distinct and the result still ends with the component, so it stays readable.
    """
    name = f"{prefix}-{component}"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(prefix.encode()).hexdigest()[:DIGEST_LENGTH]
    keep = limit - len(component) - DIGEST_LENGTH - 2
    if keep < 1:
        raise ValueError(f"a {limit}-character limit leaves no room for {component!r} and a digest")
    return f"{prefix[:keep].rstrip('-')}-{digest}-{component}"


def database_cluster_identifier(prefix: str, restore_from_snapshot: str | None) -> str:
    """`<prefix>-db`, or `<prefix>-db-r<digest of the snapshot>` for a cluster restored from a snapshot.

    A restored cluster gets a name of its own so that it can be created next to the cluster it
    replaces (create before destroy): the old one keeps serving until the new one is up, its final
    snapshot gets a name no earlier cluster used, and a snapshot of the old cluster is never deleted
    (with it) before the restore has read it.
    """
    if restore_from_snapshot is None:
        return f"{prefix}-db"
    return f"{prefix}-db-r{hashlib.sha256(restore_from_snapshot.encode()).hexdigest()[:8]}"
