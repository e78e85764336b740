"""`shopsight train ...` and `shopsight eval ...` commands, one module per capability.

Each module exposes `register(train_app, eval_app)`; `assistant.cli` calls them all.
"""
