"""Payment gateways behind one Protocol: Stripe, a regional provider, and the embedded sandbox."""
