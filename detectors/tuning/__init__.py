"""Site tuning: the facts only a site knows (trusted registries, known deployers, rule exceptions, severity
overrides, disabled rules), read from one YAML file and applied to the alerts of every rule format."""
