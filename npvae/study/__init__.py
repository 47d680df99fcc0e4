"""Studies of what the source texts claim: evaluation, PPCA and EM, amortised inference,
regularity."""
