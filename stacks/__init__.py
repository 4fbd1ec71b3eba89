"""Environment stacks: the modules composed into one deployable unit per environment."""
