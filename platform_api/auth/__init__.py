"""Authentication and authorisation: users, sessions, OIDC, service API keys, ownership."""
