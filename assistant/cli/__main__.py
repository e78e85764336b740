"""`python -m assistant.cli`: the same as the `shopsight` command."""

from assistant.cli import main

main()
