"""Evaluation harness: scenario suites (S1-S10), metrics (M1-M19), reports, codec quality.

Definitions follow shared/reference/evaluation.md §9 (scenario ids S*, metric ids M*).
"""
