"""Who may use premium content: a trial, an active subscription, or credits."""
