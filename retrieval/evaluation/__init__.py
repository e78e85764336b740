"""The evaluation harness behind `shopsight eval`: one module per task, one report format."""
