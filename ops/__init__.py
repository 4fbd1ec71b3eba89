"""Operating the stacks: `python -m ops COMMAND` (the Makefile targets call it).

One module per concern, in the layout of Terraform's own CLI (one file per command, the shared
plumbing apart):

- `cli`: argument parsing and exit codes, nothing else; no other module imports it;
- `tools`: the one injectable object through which commands reach processes, AWS and the terminal;
- `errors`, `targets` (which stack a name means), `project` (configuration, confirmation,
  preflight gate), `terraform` (synthesis and the Terraform runner);
- the commands: `deploy` (plan, deploy, destroy, the bootstrap, the data-loss guard), `drift`,
  `database_bootstrap`, `restore`, `preflight` (with `locks`), `local` (local-up, local-down);
- `plan_report` (reading plans), `unaccounted` (what a state holds beyond its managed resources),
  `policy_documents` and `policy_validation` (IAM Access Analyzer judges every policy),
  `emulator` (its gap table and workarounds) and `emulator_server` (moto on loopback with them).
"""
