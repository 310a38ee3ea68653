"""Format-neutral rule loading: the format protocol, strict YAML, the loader and the rule-test runner.

Rule formats (native, Falco, Sigma) depend on this package; it depends on none of them: the loader is
handed the list of formats (`detectors.registry` binds it to the known ones).
"""
