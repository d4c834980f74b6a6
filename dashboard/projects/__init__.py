"""Projects app: projects, who belongs to them, and the one rule for what a user may see; API tokens."""
