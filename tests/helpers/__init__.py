"""Builders and test doubles that test modules in different folders share."""
