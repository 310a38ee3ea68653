"""The detection core: pure and synchronous (no I/O, no clock). Audit events in, alerts out."""
