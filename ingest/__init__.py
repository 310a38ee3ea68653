"""Getting audit events in: the webhook the kube-apiserver posts to, the Kafka producer, archive readers."""
