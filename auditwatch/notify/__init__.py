"""Notifications: alerts pushed to Alertmanager, webhooks, falcosidekick and Slack from an outbox."""
