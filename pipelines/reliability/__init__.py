"""The reliability suite: fuzz, faults under load, security checks and a soak (`fitrec check reliability`)."""
