"""The database bootstrap task (issue 14): its SQL on a real PostgreSQL, its task definition and roles.

The SQL test runs the synthesized container's own command (psql and its arguments, taken from
the dev stack's task definition) against a PostgreSQL server started on loopback, twice, as a
master user set up the way Aurora sets it up. What the test server cannot reproduce, and what is
therefore not proven here:

- `rds_iam` is created by the test as a plain role: Aurora's IAM token check is not exercised;
- the master user is a CREATEROLE/CREATEDB role holding `rds_iam` WITH ADMIN OPTION, standing in
  for Aurora's `rds_superuser` membership; the server is Debian's PostgreSQL (15 today), Aurora
  runs 16;
- the connection is plain TCP on loopback; the task itself uses `PGSSLMODE=require`.
"""

from __future__ import annotations

import json
import re

import pytest

from modules.database import DATABASE_NAME, MASTER_USERNAME
from modules.database_bootstrap import APP_SCHEMA, APP_USER, IAM_AUTH_ROLE
from tests.conftest import resources_of
from tests.postgres_server import PostgresServer, loopback_postgres, run_psql

pytestmark = pytest.mark.postgres

# The only privileges the application role may end up with (modules/database_bootstrap.py).
DATABASE_PRIVILEGES = {"CONNECT", "TEMPORARY"}
SCHEMA_PRIVILEGES = {"USAGE", "CREATE"}
# How PostgreSQL refuses what a role may not do (the wording differs by statement and version).
REFUSED = re.compile(r"permission denied|must be owner|must have admin option")
ROLE_ATTRIBUTES = {"rolcanlogin": "t", "rolinherit": "t", "rolsuper": "f", "rolcreaterole": "f",
                   "rolcreatedb": "f", "rolreplication": "f", "rolbypassrls": "f"}


def bootstrap_container(stack: dict) -> dict:
    (definition,) = [d for d in resources_of(stack, "aws_ecs_task_definition").values()
                     if d["family"].endswith("-db-bootstrap")]
    (container,) = json.loads(definition["container_definitions"])
    return container


@pytest.fixture(scope="module")
def server():
    # The cluster parameter group's statement logging, so the test can read what Aurora would log.
    with loopback_postgres({"log_statement": "ddl"}) as running:
        running.psql(f"CREATE ROLE {IAM_AUTH_ROLE} NOLOGIN")
        running.psql(f"CREATE ROLE {MASTER_USERNAME} LOGIN CREATEROLE CREATEDB")
        running.psql(f"GRANT {IAM_AUTH_ROLE} TO {MASTER_USERNAME} WITH ADMIN OPTION")
        running.psql(f"CREATE DATABASE {DATABASE_NAME} OWNER {MASTER_USERNAME}")
        yield running


def run_bootstrap(server: PostgresServer, container: dict) -> None:
    """The container's command with its PG* settings, pointed at the test server as the master user."""
    env = {item["name"]: item["value"] for item in container["environment"]}
    local = server.environ(MASTER_USERNAME, env["PGDATABASE"])
    run_psql(container["command"], local)


# What the bootstrap can change, read from the catalogs: the app role (attributes, memberships, per-database
# settings), every database's and schema's owner and ACL, and the set of roles.
CATALOG_QUERIES = {
    "roles": "SELECT rolname, rolcanlogin, rolinherit, rolsuper, rolcreaterole, rolcreatedb, rolpassword IS NULL "
             "FROM pg_authid ORDER BY rolname",
    "memberships": "SELECT m.roleid::regrole, m.member::regrole, m.admin_option FROM pg_auth_members m ORDER BY 1, 2",
    "settings": "SELECT setdatabase, setrole::regrole, setconfig FROM pg_db_role_setting ORDER BY 1, 2",
    "databases": "SELECT datname, datdba::regrole, datacl FROM pg_database ORDER BY datname",
    "schemas": "SELECT nspname, nspowner::regrole, nspacl FROM pg_namespace ORDER BY nspname",
}


def catalog_snapshot(server: PostgresServer) -> dict[str, list[str]]:
    return {name: query(server, sql, database=DATABASE_NAME) for name, sql in CATALOG_QUERIES.items()}


@pytest.fixture(scope="module")
def runs(server, stacks) -> tuple[PostgresServer, dict, dict]:
    """(server, catalogs after the first run, catalogs after the second run) of the synthesized task's SQL."""
    container = bootstrap_container(stacks["dev"])
    run_bootstrap(server, container)
    first = catalog_snapshot(server)
    run_bootstrap(server, container)  # idempotent: the second run must succeed and change nothing
    return server, first, catalog_snapshot(server)


@pytest.fixture(scope="module")
def bootstrapped(runs) -> PostgresServer:
    return runs[0]


def test_the_second_run_changes_nothing_in_the_catalogs(runs):
    _, first, second = runs
    assert first["roles"] and any(APP_USER in row for row in first["roles"]), "the snapshot must see the app role"
    assert second == first


def test_the_catalog_snapshot_sees_a_change_a_rerun_could_make(server):
    """The comparison above bites: a grant the SQL might repeat differently shows in the snapshot."""
    before = catalog_snapshot(server)
    server.psql(f"CREATE ROLE snapshot_probe NOLOGIN; GRANT CONNECT ON DATABASE {DATABASE_NAME} TO snapshot_probe")
    try:
        after = catalog_snapshot(server)
    finally:
        server.psql(f"REVOKE CONNECT ON DATABASE {DATABASE_NAME} FROM snapshot_probe; DROP ROLE snapshot_probe")
    assert {name for name in CATALOG_QUERIES if before[name] != after[name]} == {"roles", "databases"}


def query(server: PostgresServer, sql: str, **kwargs) -> list[str]:
    return server.psql(sql, **kwargs).stdout.splitlines()


def acl_privileges(server: PostgresServer, acl_column: str, catalog: str, where: str) -> set[str]:
    rows = query(server, f"SELECT a.privilege_type FROM {catalog}, aclexplode({acl_column}) a "
                         f"JOIN pg_roles r ON r.oid = a.grantee WHERE {where} AND r.rolname = '{APP_USER}'",
                 database=DATABASE_NAME)
    return set(rows)


def test_the_sql_never_carries_a_password(stacks):
    """log_statement = ddl would write a password literal into CloudWatch Logs."""
    command = " ".join(bootstrap_container(stacks["dev"])["command"]).lower()
    assert "password" not in command
    assert f"grant {IAM_AUTH_ROLE} to {APP_USER}" in command


def test_the_role_exists_once_after_two_runs(bootstrapped):
    assert query(bootstrapped, f"SELECT count(*) FROM pg_roles WHERE rolname = '{APP_USER}'") == ["1"]


def test_the_role_logs_in_by_iam_only_with_no_power_over_roles_or_databases(bootstrapped):
    columns = ", ".join(ROLE_ATTRIBUTES)
    (row,) = query(bootstrapped, f"SELECT {columns}, rolpassword IS NULL FROM pg_authid WHERE rolname = '{APP_USER}'")
    assert dict(zip([*ROLE_ATTRIBUTES, "no_password"], row.split("|"), strict=True)) == {
        **ROLE_ATTRIBUTES, "no_password": "t"}
    member_of = query(bootstrapped, "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
                                    f"JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = '{APP_USER}'")
    assert member_of == [IAM_AUTH_ROLE]


def test_the_role_has_exactly_the_intended_privileges(bootstrapped):
    assert acl_privileges(bootstrapped, "datacl", "pg_database", f"datname = '{DATABASE_NAME}'") == DATABASE_PRIVILEGES
    assert acl_privileges(bootstrapped, "nspacl", "pg_namespace", f"nspname = '{APP_SCHEMA}'") == SCHEMA_PRIVILEGES
    owner = query(bootstrapped, f"SELECT nspowner::regrole FROM pg_namespace WHERE nspname = '{APP_SCHEMA}'",
                  database=DATABASE_NAME)
    assert owner == [MASTER_USERNAME], "the app must not own (and so re-grant or drop) its schema"
    granted_elsewhere = query(bootstrapped, "SELECT count(*) FROM pg_database, aclexplode(datacl) a "
                                            f"WHERE a.grantee = '{APP_USER}'::regrole AND datname <> '{DATABASE_NAME}'")
    assert granted_elsewhere == ["0"]


def test_the_app_can_work_in_its_schema_and_nothing_more(bootstrapped):
    as_app = {"user": APP_USER, "database": DATABASE_NAME}
    assert query(bootstrapped, "SHOW search_path", **as_app) == [APP_SCHEMA]
    bootstrapped.psql("CREATE TABLE IF NOT EXISTS probe (id int); DROP TABLE probe", **as_app)
    for statement in ("CREATE ROLE intruder", "CREATE DATABASE intruder", f"DROP SCHEMA {APP_SCHEMA}",
                      f"GRANT {IAM_AUTH_ROLE} TO {MASTER_USERNAME}", "CREATE TABLE public.probe (id int)"):
        refused = bootstrapped.psql(statement, check=False, **as_app)
        assert refused.returncode != 0 and REFUSED.search(refused.stderr), (statement, refused.stderr)


def test_the_statement_log_shows_the_role_but_no_secret(bootstrapped):
    log = bootstrapped.log.read_text()
    assert f"CREATE ROLE {APP_USER} LOGIN" in log
    assert "PASSWORD" not in log.upper()
