"""A reachability model of a synthesized environment stack: which TCP flows get through, and why not.

`read_topology(stack)` reads the network of one stack's Terraform JSON (`topology.py`);
`check(topology, source, destination, port)` follows one flow hop by hop, there and back, and names
the hop and rule that stop it (`evaluate.py`); `spec_flows(env)` lists the flows SPEC section 4.1
requires and forbids, and `evaluate_flows` judges them for every pair of zones (`flows.py`).
`tools/reachability.py` writes the table in `docs/reachability.md` from it.

Why a model and not the emulator: moto evaluates neither network ACLs nor security groups, so only a
model can answer "can this flow get through?" before AWS does.
"""
