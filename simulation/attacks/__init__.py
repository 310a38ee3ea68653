"""Malicious traffic: the attack story and the catalogue techniques that campaigns run, all labelled."""
