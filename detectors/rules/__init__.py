"""auditwatch's own rule format: the native rule types, their shared header, conditions and built-in pack."""
