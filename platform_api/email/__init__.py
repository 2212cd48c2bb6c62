"""Outgoing email behind one Protocol: SMTP in production, a dev mailbox in the database by default."""
