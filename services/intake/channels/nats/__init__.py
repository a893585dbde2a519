"""Department systems' CloudEvents on NATS: the reader and the ingress consumer."""
