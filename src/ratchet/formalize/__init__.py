"""Formalization: the passes that turn new data into a decision, a study or reuse, and a candidate.

`policy` decides what a pass must do and records why; `passes` runs one pass.
"""
