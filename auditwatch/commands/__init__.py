"""The `auditwatch` subcommands, one module per group: processes, archives, rules, policy."""
