"""Activities: thin steps that validate, call an adapter from spool/, and heartbeat."""
