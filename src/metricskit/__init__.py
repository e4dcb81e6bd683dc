"""metricskit."""
