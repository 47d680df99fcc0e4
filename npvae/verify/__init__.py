"""The checks a reader runs: finite differences, objective checks, planted bugs."""
