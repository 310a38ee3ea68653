"""The `auditwatch` command and the wiring of each process: serve, ingest, detect, api, replay."""
